//! `tandem demo --crm salesforce`: tandem on a throw-away SQLite database against the built-in
//! Salesforce simulator (issue 19): Leads and Contacts seeded, "Connect Salesforce" over OAuth
//! with PKCE, the initial sync with a progress bar, the app's new contacts pushed as Leads, live
//! edits both ways (app → Salesforce through the outbox, Salesforce → app through SOQL polling
//! on `SystemModstamp`), a journey action adding a contact to a campaign, and a summary with the
//! API calls used of the org's daily allocation. Part of the command line, like `demo`.

use std::time::{Duration, Instant};

use anyhow::Context;
use salesforce_sim::{OrgKind, SfSimConfig};
use tandem_core::ConnectionId;
use tokio_util::sync::CancellationToken;

use super::{
    demo_settings, email_field, initial_sync_shown, name_field, push_shown, report_edit, step,
    text_of, wait_until, wait_until_async, DemoArgs, BOLD, GREEN, RESET,
};
use crate::app::{cancel_on_signal, Application};
use crate::crm::salesforce::ids::person_surrogate;
use crate::store::stats;
use crate::sync::outbound::actions::{self, ContactRef, Submit};
use crate::sync::{app::contacts, app::local, connections, links, Engine};

const ORG: OrgKind = OrgKind::Production;
/// The simulated org's daily API allocation.
const DAILY_API_REQUESTS: u64 = 15_000;

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("{BOLD}tandem demo --crm salesforce{RESET}: two-way sync between your app's contacts and a simulated Salesforce org.");

    // 1. The simulated Salesforce org: Leads and Contacts.
    let leads = args.persons / 2;
    let sf_contacts = args.persons - leads;
    let sim = salesforce_sim::start(SfSimConfig {
        leads,
        contacts: sf_contacts,
        accounts: (sf_contacts / 10).max(1),
        daily_api_requests: DAILY_API_REQUESTS,
        seed: 42,
        ..SfSimConfig::default()
    })
    .await
    .context("starting the Salesforce simulator")?;
    let handle = sim.handle();
    step(&format!(
        "Simulated Salesforce: instance {}, login host {}, with {leads} Leads and {sf_contacts} Contacts ({DAILY_API_REQUESTS} API calls a day)",
        sim.instance_url(),
        sim.login_url(false)
    ));

    // 2. tandem on a fresh SQLite database, workers on, polling Salesforce every second.
    let dir = std::env::temp_dir().join(format!("tandem-demo-sf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut settings = demo_settings(&dir, args.port, "http://127.0.0.1:9");
    settings.salesforce.login_url = sim.login_url(false).to_owned();
    settings.salesforce.sandbox_login_url = sim.login_url(true).to_owned();
    settings.salesforce.client_id = handle.config().client_id.clone();
    settings.salesforce.client_secret =
        crate::config::Redacted::new(handle.config().client_secret.clone());
    settings.salesforce.allowed_instance_domains = vec![sim.instance_url().to_owned()];
    settings.salesforce.poll_interval_secs = 1;
    let app = match Application::build(settings.clone()).await {
        Ok(app) => app,
        Err(_) if args.port != 0 => {
            let mut settings = settings;
            settings.http.port = 0;
            Application::build(settings).await?
        }
        Err(error) => return Err(error),
    };
    let base = format!("http://{}", app.addr());
    let engine = app.engine().clone();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    step(&format!(
        "tandem at {base} (SQLite database in {})",
        dir.display()
    ));

    // 3. The app's contacts: some share an e-mail with a Salesforce Contact or Lead.
    let mut existing = Vec::new();
    for object in ["Contact", "Lead"] {
        for id in handle.ids(ORG, object) {
            if let Some(email) = handle
                .record(ORG, object, &id)
                .and_then(|r| r["Email"].as_str().map(str::to_owned))
            {
                existing.push(email);
            }
        }
    }
    let shared = (args.contacts / 5).min(existing.len());
    let mut app_contacts = Vec::new();
    for i in 0..args.contacts {
        let (name, email) = match existing.get(i * 7).filter(|_| i < shared) {
            Some(email) => (format!("Shared Contact {i} (app)"), email.clone()),
            None => (
                format!("App Contact {i}"),
                format!("app.contact.{i}@example.org"),
            ),
        };
        let created = local::create_contact(
            &engine,
            [name_field(&name), email_field(&email)]
                .into_iter()
                .collect(),
            false,
        )
        .await?;
        app_contacts.push(created.contact_id);
    }
    println!(
        "  {} app contacts, {shared} of them with the e-mail of an existing Lead or Contact",
        args.contacts
    );

    // 4. Connect over OAuth with PKCE, as the console's "Connect Salesforce" does.
    step("Connecting with OAuth (web-server flow with PKCE; the simulator's org admin consents)");
    let connection_id = connect(&engine, &base).await?;
    let ctx = connections::load(&engine, connection_id).await?;
    println!(
        "  GET {base}/connections/salesforce/connect → {} → callback: connected org {} as its admin; calls go to the token answer's instance_url {}; external id field {}",
        sim.login_url(false),
        ctx.company_id.unwrap_or_default(),
        ctx.session.api_domain,
        ctx.map.apid_key.as_deref().unwrap_or("?")
    );

    // 5. The initial sync: every Lead and Contact, with a progress bar.
    step("Initial sync: every unconverted Lead and every Contact is matched by e-mail or becomes a contact");
    let total = (leads + sf_contacts) as u64;
    let progress = initial_sync_shown(&engine, connection_id, total, "records").await?;

    // 6. The app's other contacts become Leads.
    step("Pushing the app's new contacts to Salesforce (new Leads, owned by the connecting user)");
    push_shown(&engine, connection_id, &app_contacts).await?;

    // 7. Live edits both ways.
    step("Live edits (each line: where the edit was made, and when the other side had it)");
    let mut latencies = Vec::new();
    for round in 0..args.edits {
        let contact = app_contacts[(round * 13) % app_contacts.len()];
        let Some((object, record)) = record_of(&engine, &handle, connection_id, contact).await?
        else {
            continue;
        };
        let new_name = format!("Renamed{round}");
        let t0 = Instant::now();
        local::update_contact(
            &engine,
            contact,
            [name_field(&format!("App {new_name}"))]
                .into_iter()
                .collect(),
        )
        .await?;
        let arrived = wait_until(Duration::from_secs(10), || {
            handle
                .record(ORG, object, &record)
                .is_some_and(|r| r["LastName"] == new_name.as_str())
        })
        .await;
        report_edit(
            "app → Salesforce",
            &format!("App {new_name}"),
            arrived.then(|| t0.elapsed()),
        );
        latencies.push(t0.elapsed());

        let from_sf = format!("Salesforce{round}");
        let t0 = Instant::now();
        handle.update_record_as_user(
            ORG,
            object,
            &record,
            serde_json::json!({ "FirstName": "Edited", "LastName": from_sf }),
        )?;
        let wanted = format!("Edited {from_sf}");
        let arrived = wait_until_async(Duration::from_secs(10), || async {
            contacts::load(&engine.store, contact)
                .await
                .ok()
                .flatten()
                .and_then(|c| text_of(&c.fields, "name"))
                .as_deref()
                == Some(wanted.as_str())
        })
        .await;
        report_edit("Salesforce → app", &wanted, arrived.then(|| t0.elapsed()));
        latencies.push(t0.elapsed());
    }

    // 8. A journey action: add a contact to a Salesforce campaign (a CampaignMember).
    let campaign = handle.insert_record(
        ORG,
        "Campaign",
        serde_json::json!({ "Name": "Winter webinar", "IsActive": true }),
    )?;
    if let Some(contact) = app_contacts.first() {
        let submitted = actions::submit(
            &engine,
            Submit {
                action: actions::parse_action("add_to_campaign")?,
                contact: ContactRef::Id {
                    contact_id: *contact,
                },
                params: serde_json::json!({ "campaign_id": campaign, "status": "Responded" }),
                idempotency_key: "demo-campaign-1".into(),
                connection_id: None,
            },
        )
        .await?;
        let done = wait_until_async(Duration::from_secs(10), || async {
            actions::get(&engine, submitted.record.id)
                .await
                .ok()
                .flatten()
                .is_some_and(|a| a.state != actions::state::QUEUED)
        })
        .await;
        let members = handle.count(ORG, "CampaignMember");
        println!(
            "  {GREEN}journey action{RESET}  add_to_campaign \"Winter webinar\" → {} ({members} campaign member)",
            if done { "done" } else { "still queued" }
        );
    }

    // 9. Summary.
    let synced = stats::count_links(&engine.store, connection_id).await?;
    let (used, allocation) = handle.api_usage(ORG);
    step("Summary");
    println!("  synced                {BOLD}{synced}{RESET} contacts linked to Leads and Contacts");
    println!(
        "  duplicates avoided    {BOLD}{}{RESET} app contacts matched an existing record by e-mail (no duplicate created)",
        progress.linked
    );
    println!(
        "  API calls used        {BOLD}{used}{RESET} of the org's {allocation} a day ({:.2} %)",
        used as f64 * 100.0 / allocation.max(1) as f64
    );
    if !latencies.is_empty() {
        latencies.sort();
        println!(
            "  propagation latency   median {} ms, worst {} ms (Salesforce → app waits for the 1 s poll)",
            latencies[latencies.len() / 2].as_millis(),
            latencies[latencies.len() - 1].as_millis()
        );
    }
    println!(
        "  admin console         {BOLD}{base}/admin{RESET}  (admin token: {})",
        engine.settings.security.admin_token.expose()
    );
    println!(
        "  took                  {:.1} s",
        started.elapsed().as_secs_f64()
    );

    if args.keep_running {
        println!("\n{GREEN}tandem and the simulator keep running; ctrl-c stops them.{RESET}");
        cancel_on_signal(shutdown.clone()).await;
    } else {
        println!("\nRun `tandem demo --crm salesforce --keep-running` to click around the admin console afterwards.");
        shutdown.cancel();
    }
    server.await??;
    sim.shutdown().await;
    drop(std::fs::remove_dir_all(&dir));
    Ok(())
}

/// "Connect Salesforce" over HTTP: tandem's connect endpoint redirects to the login host's
/// authorize (with a PKCE challenge), which consents and redirects back to tandem's callback.
async fn connect(engine: &Engine, tandem_url: &str) -> anyhow::Result<ConnectionId> {
    super::oauth_click_through(engine, tandem_url, "salesforce", true).await
}

/// The Salesforce record (object, id) a contact is linked to.
async fn record_of(
    engine: &Engine,
    handle: &salesforce_sim::SfSimHandle,
    connection: ConnectionId,
    contact: tandem_core::ContactId,
) -> anyhow::Result<Option<(&'static str, String)>> {
    let Some(link) = links::by_contact(&engine.store, connection, contact).await? else {
        return Ok(None);
    };
    for object in ["Lead", "Contact"] {
        if let Some(id) = handle
            .ids(ORG, object)
            .into_iter()
            .find(|id| person_surrogate(id) == link.person_id)
        {
            return Ok(Some((object, id)));
        }
    }
    Ok(None)
}
