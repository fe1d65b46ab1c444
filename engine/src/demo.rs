//! `tandem demo`: tandem on a throw-away SQLite database against the built-in Pipedrive
//! simulator, end to end in well under a minute. Part of the command line (it reports with
//! `anyhow` and prints to the terminal).

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use tandem_core::{ConnectionId, PersonId};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pipedrive_sim::{Plan, RateLimits, SimConfig, SimHandle};
use tandem_core::{FieldKey, FieldValue, LabeledValue};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod salesforce;

use crate::app::{cancel_on_signal, Application};
use crate::config::{Redacted, Settings};
use crate::crypto::Vault;
use crate::store::stats;
use crate::sync::{app::contacts, app::local, connections, inbound::poller, links, Engine};

/// Options of `tandem demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Persons seeded in the simulated Pipedrive (about 2 % share an e-mail).
    #[arg(long, default_value_t = 400)]
    pub persons: usize,
    /// Contacts seeded in the app, some with the e-mail of an existing person.
    #[arg(long, default_value_t = 200)]
    pub contacts: usize,
    /// Live edits made on each side after the initial sync.
    #[arg(long, default_value_t = 4)]
    pub edits: usize,
    /// Port for tandem's HTTP server (admin console, API, webhooks); 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Leave tandem and the simulator running after the summary (until ctrl-c).
    #[arg(long)]
    pub keep_running: bool,
    /// Which CRM to simulate: `pipedrive` (default) or `salesforce` (the Salesforce simulator:
    /// Leads and Contacts, OAuth with PKCE, SOQL polling).
    #[arg(long, default_value = "pipedrive", value_parser = ["pipedrive", "salesforce"])]
    pub crm: String,
}

pub(crate) const BOLD: &str = "\x1b[1m";
pub(crate) const GREEN: &str = "\x1b[32m";
pub(crate) const YELLOW: &str = "\x1b[33m";
pub(crate) const RESET: &str = "\x1b[0m";

fn key(name: &str) -> FieldKey {
    FieldKey::new(name).unwrap_or_else(|_| unreachable_key())
}

#[allow(clippy::panic)]
fn unreachable_key() -> FieldKey {
    panic!("literal field names are valid keys")
}

pub(crate) fn name_field(name: &str) -> (FieldKey, FieldValue) {
    (key("name"), FieldValue::text(name))
}

pub(crate) fn email_field(address: &str) -> (FieldKey, FieldValue) {
    (
        key("email"),
        FieldValue::Emails(vec![LabeledValue::new(address, Some("work"), true)]),
    )
}

pub(crate) fn text_of(fields: &BTreeMap<FieldKey, FieldValue>, name: &str) -> Option<String> {
    match fields.get(name)? {
        FieldValue::Text(t) => Some(t.clone()),
        FieldValue::Emails(list) | FieldValue::Phones(list) => {
            list.first().map(|l| l.value.clone())
        }
        _ => None,
    }
}

/// A progress bar (indicatif) on a terminal. Elsewhere (CI logs, a pipe) a bar redrawn in place
/// would be noise: one plain line is printed at each quarter instead, and at the end.
pub struct Progress {
    bar: ProgressBar,
    label: &'static str,
    total: u64,
    /// On a terminal: `None`. Otherwise the last quarter printed.
    plain: Option<u64>,
}

impl Progress {
    pub fn new(label: &'static str, total: u64) -> Self {
        let terminal = std::io::stdout().is_terminal();
        let bar = if terminal {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout())
        } else {
            ProgressBar::hidden()
        };
        let style = ProgressStyle::with_template(
            "  {prefix:<14} {bar:30.cyan} {pos:>6}/{len:<6} {wide_msg:.dim}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█░");
        bar.set_style(style);
        bar.set_prefix(label);
        Self {
            bar,
            label,
            total,
            plain: (!terminal).then_some(0),
        }
    }

    pub fn update(&mut self, done: u64, extra: &str) {
        self.bar.set_position(done);
        self.bar.set_message(extra.to_owned());
        if let Some(printed) = self.plain {
            let quarter = (done.min(self.total) * 4)
                .checked_div(self.total)
                .unwrap_or(4);
            if quarter > printed {
                println!("  {:<14} {done:>6}/{:<6} {extra}", self.label, self.total);
                self.plain = Some(quarter);
            }
        }
    }

    /// Leaves the bar as it is on screen.
    pub fn finish(self) {
        self.bar.abandon();
    }
}

/// Runs the initial sync of `connection_id` with a progress bar over `total` records (`unit`:
/// what they are called), then prints what it did.
async fn initial_sync_shown(
    engine: &Engine,
    connection_id: ConnectionId,
    total: u64,
    unit: &str,
) -> anyhow::Result<poller::Progress> {
    let sync_started = Instant::now();
    let mut bar = Progress::new("initial sync", total);
    let progress = poller::initial_sync(engine, connection_id, |p| {
        bar.update(
            p.done,
            &format!(
                "{} created, {} matched by e-mail, {:.0} {unit}/s",
                p.created, p.linked, p.persons_per_sec
            ),
        );
    })
    .await?;
    bar.finish();
    println!(
        "  {} {unit} in {:.1} s: {} new contacts, {} matched to existing app contacts",
        progress.done,
        sync_started.elapsed().as_secs_f64(),
        progress.created,
        progress.linked
    );
    Ok(progress)
}

/// Puts `contacts` in the CRM list and shows the workers pushing them, until each is linked
/// (or a minute passed).
async fn push_shown(
    engine: &Engine,
    connection_id: ConnectionId,
    contacts: &[tandem_core::ContactId],
) -> anyhow::Result<()> {
    for id in contacts {
        local::add_to_pipedrive_list(engine, *id).await?;
    }
    let total = contacts.len() as u64;
    let push_started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut bar = Progress::new("writeback", total);
    loop {
        let mut linked = 0;
        for id in contacts {
            if links::by_contact(&engine.store, connection_id, *id)
                .await?
                .is_some()
            {
                linked += 1;
            }
        }
        bar.update(
            linked,
            &format!("{:.1} s", push_started.elapsed().as_secs_f64()),
        );
        if linked >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish();
    Ok(())
}

pub(crate) fn step(text: &str) {
    println!("\n{BOLD}▸ {text}{RESET}");
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.crm == "salesforce" {
        return salesforce::run(args).await;
    }
    let started = Instant::now();
    println!("{BOLD}tandem demo{RESET}: two-way sync between your app's contacts and a simulated Pipedrive.");

    // 1. The simulated Pipedrive, with the Lite plan's documented limits.
    let limits = RateLimits::for_plan(Plan::Lite, 1);
    let daily_budget = limits.daily_budget;
    let sim = pipedrive_sim::start(SimConfig {
        rate_limits: limits,
        time_scale: 0.01,
        seed: 42,
        ..SimConfig::default()
    })
    .await
    .context("starting the Pipedrive simulator")?;
    let handle = sim.handle();
    handle.seed_persons(args.persons);
    step(&format!(
        "Simulated Pipedrive at {} with {} persons (Lite plan limits: {} requests / 2 s per OAuth token, {} tokens a day)",
        sim.base_url(),
        args.persons,
        handle.config().rate_limits.oauth_burst,
        daily_budget
    ));

    // 2. tandem on a fresh SQLite database, workers on.
    let dir = std::env::temp_dir().join(format!("tandem-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let settings = demo_settings(&dir, args.port, sim.base_url());
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

    // 3. The app's contacts: some share an e-mail with a Pipedrive person (duplicates).
    let persons = handle.persons();
    let mut app_contacts = Vec::new();
    let shared = args.contacts / 5;
    for i in 0..args.contacts {
        let (name, email) = match persons.get(i * 7).filter(|_| i < shared) {
            Some(person) => (
                format!("{} (app)", person["name"].as_str().unwrap_or("Someone")),
                person["emails"][0]["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ),
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
            true,
        )
        .await?;
        app_contacts.push(created.contact_id);
    }
    println!(
        "  {} app contacts in the \"Pipedrive contacts\" list, {shared} of them with the e-mail of an existing Pipedrive person",
        args.contacts
    );

    // 4. Connect with OAuth, as "Connect with Pipedrive" does.
    step("Connecting with OAuth (the simulator's consent screen approves)");
    let (connection_id, ctx) = connect_with_oauth(&engine, &base).await?;
    println!(
        "  GET {base}/connections/pipedrive/connect → consent → callback: connected company {} as user {} with OAuth; apId field {}; {} webhooks registered",
        ctx.company_id.unwrap_or_default(),
        ctx.default_owner.unwrap_or_default(),
        ctx.map.apid_key.as_deref().map_or("?", |k| &k[..8.min(k.len())]),
        handle.webhooks().len()
    );

    // 5. Initial sync with a progress bar.
    step("Initial sync: every Pipedrive person is matched or created");
    let total = handle.persons().len() as u64;
    let progress = initial_sync_shown(&engine, connection_id, total, "persons").await?;

    // 6. App contacts not yet in Pipedrive are pushed by the workers.
    step("Pushing the app's new contacts to Pipedrive (paced to the plan's burst limit)");
    push_shown(&engine, connection_id, &app_contacts).await?;

    // 7. Live edits on both sides, each with its propagation latency.
    step("Live edits (each line: where the edit was made, and when the other side had it)");
    let mut latencies = Vec::new();
    for round in 0..args.edits {
        let contact = app_contacts[(round * 13) % app_contacts.len()];
        let Some(link) = links::by_contact(&engine.store, connection_id, contact).await? else {
            continue;
        };
        let new_name = format!("Renamed in the app #{round}");
        let t0 = Instant::now();
        local::update_contact(
            &engine,
            contact,
            [name_field(&new_name)].into_iter().collect(),
        )
        .await?;
        let arrived = wait_until(Duration::from_secs(10), || {
            handle
                .person(link.person_id.get())
                .is_some_and(|p| p["name"] == new_name.as_str())
        })
        .await;
        report_edit("app → Pipedrive", &new_name, arrived.then(|| t0.elapsed()));
        latencies.push(t0.elapsed());

        let person = link_person(&handle, &engine, connection_id, round).await?;
        if let Some((person_id, contact_id)) = person {
            let new_name = format!("Renamed in Pipedrive #{round}");
            let t0 = Instant::now();
            handle.update_person_as_user(person_id, serde_json::json!({ "name": new_name }))?;
            let arrived = wait_until_async(Duration::from_secs(10), || async {
                contacts::load(&engine.store, contact_id.into())
                    .await
                    .ok()
                    .flatten()
                    .and_then(|c| text_of(&c.fields, "name"))
                    .as_deref()
                    == Some(new_name.as_str())
            })
            .await;
            report_edit("Pipedrive → app", &new_name, arrived.then(|| t0.elapsed()));
            latencies.push(t0.elapsed());
        }
    }

    // 8. A conflict: the same field changed on both sides while writes are paused.
    if let Some((person_id, contact_id)) =
        link_person(&handle, &engine, connection_id, args.edits + 1).await?
    {
        connections::set_paused(&engine.store, connection_id, true, engine.now()).await?;
        local::update_contact(
            &engine,
            contact_id.into(),
            [name_field("Conflict: app's name")].into_iter().collect(),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        handle.update_person_as_user(
            person_id,
            serde_json::json!({ "name": "Conflict: Pipedrive's name" }),
        )?;
        let conflicts_before = conflicts(&engine).await?;
        wait_until_async(Duration::from_secs(10), || async {
            conflicts(&engine).await.unwrap_or(0) > conflicts_before
        })
        .await;
        connections::set_paused(&engine.store, connection_id, false, engine.now()).await?;
        let mut converged = None;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let local = contacts::load(&engine.store, contact_id.into())
                .await?
                .and_then(|c| text_of(&c.fields, "name"));
            let remote = handle
                .person(person_id)
                .and_then(|p| p["name"].as_str().map(str::to_owned));
            if local.is_some() && local == remote {
                converged = local;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "  {YELLOW}conflict{RESET}        name changed on both sides (the app first, Pipedrive 1 s later) → both now say {BOLD}{}{RESET} (last writer wins)",
            converged.as_deref().unwrap_or("(not converged yet)")
        );
    }

    // 9. Summary.
    let synced = stats::count_links(&engine.store, connection_id).await?;
    let mut by_email: HashMap<String, usize> = HashMap::new();
    for person in handle.persons() {
        if let Some(email) = person["emails"][0]["value"].as_str() {
            *by_email.entry(email.to_lowercase()).or_default() += 1;
        }
    }
    let duplicate_persons: usize = by_email.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    let budget = engine.crm.limiters().budget(connection_id, 80);
    let rate_limited = handle.rate_limited();
    step("Summary");
    println!("  synced                {BOLD}{synced}{RESET} contacts linked to Pipedrive persons");
    println!(
        "  conflicts resolved    {BOLD}{}{RESET}",
        conflicts(&engine).await?
    );
    println!(
        "  duplicates found      {BOLD}{}{RESET} app contacts matched existing persons by e-mail (no duplicate created); {duplicate_persons} Pipedrive persons share an e-mail with another",
        progress.linked
    );
    println!(
        "  API calls used        {BOLD}{}{RESET} requests, {} of {} daily tokens ({:.2} %), {} answered 429",
        handle.total_calls(),
        handle.tokens_spent(),
        daily_budget,
        handle.tokens_spent() as f64 * 100.0 / daily_budget as f64,
        rate_limited
    );
    if !latencies.is_empty() {
        latencies.sort();
        println!(
            "  propagation latency   median {} ms, worst {} ms",
            latencies[latencies.len() / 2].as_millis(),
            latencies[latencies.len() - 1].as_millis()
        );
    }
    drop(budget);
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
        println!(
            "\nRun `tandem demo --keep-running` to click around the admin console afterwards."
        );
        shutdown.cancel();
    }
    server.await??;
    sim.shutdown().await;
    drop(std::fs::remove_dir_all(&dir));
    Ok(())
}

pub(crate) fn demo_settings(dir: &std::path::Path, port: u16, sim_url: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.http.port = port;
    settings.database.url = Redacted::new(format!("sqlite://{}", dir.join("tandem.db").display()));
    settings.workers.enabled = true;
    settings.workers.poll_interval_secs = 5;
    settings.workers.idle_poll_ms = 10;
    settings.workers.retry_initial_ms = 200;
    settings.workers.retry_cap_ms = 5_000;
    settings.security.admin_token = Redacted::new("demo-admin-token".to_owned());
    settings.security.encryption_keys = vec![Redacted::new(Vault::generate_key())];
    settings.pipedrive.oauth_base_url = sim_url.to_owned();
    settings.pipedrive.client_id = "sim-client".to_owned();
    settings.pipedrive.client_secret = Redacted::new("sim-secret".to_owned());
    settings.pipedrive.plan = "lite".to_owned();
    settings.telemetry.filter = "warn".to_owned();
    settings
}

/// "Connect with Pipedrive" over HTTP, as the admin console's button does: tandem's connect
/// endpoint redirects to the simulator's consent screen, which approves and redirects back to
/// tandem's callback, which exchanges the code and connects.
async fn connect_with_oauth(
    engine: &Engine,
    tandem_url: &str,
) -> anyhow::Result<(ConnectionId, connections::ConnectionCtx)> {
    let id = oauth_click_through(engine, tandem_url, "pipedrive", false).await?;
    Ok((id, connections::load(engine, id).await?))
}

/// Follows `GET /connections/{crm}/connect` → the CRM's consent (the simulator approves) →
/// tandem's callback, as a browser would, and returns the connection the callback made. The
/// callback must answer 2xx, or also a redirect when `redirect_is_done`.
pub(crate) async fn oauth_click_through(
    engine: &Engine,
    tandem_url: &str,
    crm: &str,
    redirect_is_done: bool,
) -> anyhow::Result<ConnectionId> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let location = |response: &reqwest::Response| {
        response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned)
    };
    let start = http
        .get(format!("{tandem_url}/connections/{crm}/connect"))
        .bearer_auth(engine.settings.security.admin_token.expose())
        .send()
        .await?;
    let authorize =
        location(&start).with_context(|| format!("tandem did not redirect to {crm}"))?;
    let consent = http.get(&authorize).send().await?;
    let callback = location(&consent).context("the consent screen did not redirect back")?;
    let done = http.get(&callback).send().await?;
    anyhow::ensure!(
        done.status().is_success() || (redirect_is_done && done.status().is_redirection()),
        "the OAuth callback answered {}: {}",
        done.status(),
        done.text().await.unwrap_or_default()
    );
    connections::active_id(&engine.store, &tandem_core::TenantId::default())
        .await?
        .context("no connection after the OAuth callback")
}

/// A linked (person, contact) pair, picked by `index` among persons tandem created contacts for.
async fn link_person(
    handle: &SimHandle,
    engine: &Engine,
    connection: ConnectionId,
    index: usize,
) -> anyhow::Result<Option<(i64, Uuid)>> {
    let persons = handle.persons();
    if persons.is_empty() {
        return Ok(None);
    }
    for offset in 0..persons.len() {
        let person = &persons[(index * 31 + offset) % persons.len()];
        let Some(id) = person["id"].as_i64() else {
            continue;
        };
        let Ok(person) = PersonId::new(id) else {
            continue;
        };
        if let Some(link) = links::by_person(&engine.store, connection, person).await? {
            return Ok(Some((id, link.contact_id.uuid())));
        }
    }
    Ok(None)
}

async fn conflicts(engine: &Engine) -> anyhow::Result<u64> {
    Ok(stats::count_sync_log_kind(&engine.store, "conflict_resolved").await?)
}

pub(crate) fn report_edit(direction: &str, value: &str, latency: Option<Duration>) {
    match latency {
        Some(latency) => println!(
            "  {GREEN}{direction}{RESET}  name = {value:<28} arrived after {BOLD}{:>5.1} ms{RESET}",
            latency.as_secs_f64() * 1000.0
        ),
        None => println!("  {YELLOW}{direction}{RESET}  name = {value:<28} not there after 10 s"),
    }
}

pub(crate) async fn wait_until(timeout: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}

pub(crate) async fn wait_until_async<F, Fut>(timeout: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    false
}
