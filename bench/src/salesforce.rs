//! Salesforce's numbers (issue 19), against the Salesforce simulator on 127.0.0.1, with API
//! calls counted on the simulator's side: the first push of new app contacts (sObject
//! Collections creates), app edits spread over time (batched updates), and the initial sync of
//! Leads and Contacts (query pages of 2,000).

use std::time::{Duration, Instant};

use salesforce_sim::{Op, OrgKind, SfSim, SfSimConfig};
use serde_json::json;
use tandem_engine::sync::{app::local, connections, inbound::poller, links};
use tandem_tests::chaos::count;
use tandem_tests::fields::{email, fields, name};
use tandem_tests::salesforce::{spawn_sf_app, SfApp};

use crate::report::{verdict, Section};
use crate::wait_every;

/// Every call the simulator served, by operation.
fn calls(sim: &SfSim) -> std::collections::BTreeMap<&'static str, u64> {
    let h = sim.handle();
    Op::ALL
        .iter()
        .map(|op| (op.name(), h.calls(op.name())))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Calls made between two counts, by operation.
fn delta(
    before: &std::collections::BTreeMap<&'static str, u64>,
    after: &std::collections::BTreeMap<&'static str, u64>,
) -> std::collections::BTreeMap<&'static str, u64> {
    after
        .iter()
        .map(|(op, n)| (*op, n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn is_write(op: &str) -> bool {
    Op::from_name(op).is_some_and(|o| o.writes() && o.resource() != "oauth")
}

fn listing(calls: &std::collections::BTreeMap<&'static str, u64>) -> String {
    calls
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn app(workers: bool, window_ms: u64) -> anyhow::Result<SfApp> {
    Ok(spawn_sf_app(SfSimConfig::default(), |s| {
        s.workers.enabled = workers;
        s.salesforce.write_batch_window_ms = window_ms;
        // No change-capture poll during a measurement unless it is what is measured.
        s.salesforce.poll_interval_secs = 3600;
    })
    .await)
}

/// The same number of composite creates of 200 Leads, sent one after the other by a bare HTTP
/// client to a fresh simulator: the time the write calls themselves need.
async fn raw_create_time(records: usize, latency_ms: u64) -> anyhow::Result<(Duration, usize)> {
    let sim = salesforce_sim::start(SfSimConfig::default()).await?;
    set_latency(&sim, latency_ms)?;
    let tokens = sim.handle().issue_tokens(OrgKind::Production, None)?;
    let http = reqwest::Client::builder().build()?;
    let url = format!(
        "{}/services/data/v62.0/composite/sobjects",
        tokens.instance_url
    );
    let mut sent = 0;
    let mut calls = 0;
    let started = Instant::now();
    while sent < records {
        let n = (records - sent).min(200);
        let batch: Vec<_> = (sent..sent + n)
            .map(|i| {
                json!({"attributes": {"type": "Lead"}, "FirstName": "Pushed", "LastName": format!("{i}"),
                       "Company": "[not provided]", "Email": format!("raw{i}@push.example")})
            })
            .collect();
        let answer = http
            .post(&url)
            .bearer_auth(&tokens.access_token)
            .header("Sforce-Call-Options", "client=bench")
            .json(&json!({"allOrNone": false, "records": batch}))
            .send()
            .await?;
        anyhow::ensure!(
            answer.status().is_success(),
            "raw create: {}",
            answer.status()
        );
        answer.bytes().await?;
        sent += n;
        calls += 1;
    }
    let elapsed = started.elapsed();
    sim.shutdown().await;
    Ok((elapsed, calls))
}

/// Adds `latency_ms` to every `composite/sobjects` call of the simulator (0: none).
fn set_latency(sim: &SfSim, latency_ms: u64) -> anyhow::Result<()> {
    if latency_ms > 0 {
        sim.handle()
            .set_faults(salesforce_sim::FaultSpec::parse(&format!(
                "composite:latency_ms={latency_ms}"
            ))?);
    }
    Ok(())
}

/// First push of `contacts_n` new app contacts into an empty Salesforce org; with
/// `latency_ms`, every `composite/sobjects` call takes that much longer (in tandem's run and
/// in the raw one).
pub(crate) async fn push(contacts_n: usize, latency_ms: u64) -> anyhow::Result<Section> {
    let sf = app(true, 1000).await?;
    let connection = sf.connect_and_sync(false).await;
    set_latency(&sf.sf, latency_ms)?;
    let db = sf.app.store.db();
    connections::set_paused(db, connection.into(), true, chrono::Utc::now()).await?;
    for i in 0..contacts_n {
        local::create_contact(
            &sf.app.engine,
            fields([
                name(&format!("Pushed Contact{i}")),
                email(&format!("new{i}@push.example")),
            ]),
            true,
        )
        .await?;
    }
    let jobs = count(&sf.app.engine, "SELECT count(*) FROM outbox_job").await?;
    let before = calls(&sf.sf);
    let started = Instant::now();
    connections::set_paused(db, connection.into(), false, chrono::Utc::now()).await?;
    // The replica's next ownership round takes the resumed connection at once (otherwise
    // within a third of the lease, which is not the push's time).
    sf.app.engine.replica.forget();
    sf.app.engine.wake.notify_one();
    let drained = wait_every(
        Duration::from_millis(20),
        Duration::from_secs(3600),
        || async {
            count(&sf.app.engine, "SELECT count(*) FROM outbox_job")
                .await
                .unwrap_or(1)
                == 0
        },
    )
    .await;
    anyhow::ensure!(drained, "the push did not finish within an hour");
    let elapsed = started.elapsed();
    let made = delta(&before, &calls(&sf.sf));
    let writes: u64 = made
        .iter()
        .filter(|(op, _)| is_write(op))
        .map(|(_, n)| n)
        .sum();
    let total: u64 = made.values().sum();
    let linked = links::person_ids(db, connection.into()).await?.len();
    let leads = sf.sf.handle().count(OrgKind::Production, "Lead");
    let without = sf.sf.handle().writes_without_call_options();
    let (raw, raw_calls) = raw_create_time(contacts_n, latency_ms).await?;
    let ratio = elapsed.as_secs_f64() / raw.as_secs_f64();
    Ok(Section {
        id: if latency_ms > 0 {
            "salesforce-push-latency"
        } else {
            "salesforce-push"
        },
        title: if latency_ms > 0 {
            format!("Salesforce: first push of {contacts_n} new app contacts, {latency_ms} ms added to every composite call (issue 19)")
        } else {
            format!("Salesforce: first push of {contacts_n} new app contacts (issue 19)")
        },
        command: format!(
            "cargo run -p tandem-bench -- salesforce-push --contacts {contacts_n} --composite-latency-ms {latency_ms}"
        ),
        header: vec![
            "jobs",
            "write calls",
            "all calls",
            "measured (s)",
            "raw write calls (s)",
            "× raw",
            "Leads / linked",
            "goals ≤ 55 writes / ≤ 1.1× raw",
        ],
        rows: vec![vec![
            jobs.to_string(),
            writes.to_string(),
            total.to_string(),
            format!("{:.2}", elapsed.as_secs_f64()),
            format!("{:.2}", raw.as_secs_f64()),
            format!("{ratio:.2}"),
            format!("{leads} / {linked}"),
            format!(
                "{} / {}",
                verdict(writes <= 55),
                verdict(ratio <= 1.1)
            ),
        ]],
        notes: vec![
            format!("Calls by operation during the push (simulator's count): {}.", listing(&made)),
            format!("Raw = the same {raw_calls} `POST /composite/sobjects` calls of 200 Leads sent one after the other by a bare HTTP client to a fresh simulator: the time the write calls themselves need. tandem runs up to `workers.concurrency` batches at once, and reads each batch back (`GET /composite/sobjects/Lead`, one call per 200) to merge what Salesforce holds."),
            format!("The app contacts were queued with the connection paused, then it was resumed; the initial sync of the empty org ran first and is not counted. Writes without `Sforce-Call-Options`: {without}."),
        ],
    })
}

/// `edits` app edits of linked contacts, spread evenly over `spread_secs`, with the workers
/// running as in `tandem serve`.
pub(crate) async fn edits(
    edits: usize,
    spread_secs: u64,
    window_ms: u64,
) -> anyhow::Result<Section> {
    let sf = app(true, window_ms).await?;
    let h = sf.sf.handle();
    let contacts_n = edits.min(1000);
    for i in 0..contacts_n {
        h.insert_record(
            OrgKind::Production,
            "Contact",
            json!({ "FirstName": "Con", "LastName": format!("Contact{i}"), "Email": format!("contact{i}@example.com") }),
        )?;
    }
    let connection = sf.connect(false).await;
    poller::initial_sync(&sf.app.engine, connection.into(), |_| {}).await?;
    let db = sf.app.store.db();
    let mut contacts = Vec::new();
    for person in links::person_ids(db, connection.into()).await? {
        if let Some(link) = links::by_person(db, connection.into(), person).await? {
            contacts.push(link.contact_id);
        }
    }
    anyhow::ensure!(!contacts.is_empty(), "nothing linked");
    let before = calls(&sf.sf);
    let started = Instant::now();
    let every = Duration::from_secs_f64(spread_secs as f64 / edits as f64);
    for i in 0..edits {
        let at = started + every * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at.into()).await;
        let contact = contacts[(i * 7919) % contacts.len()];
        local::update_contact(
            &sf.app.engine,
            contact,
            fields([name(&format!("Edited Number{i}"))]),
        )
        .await?;
    }
    let drained = wait_every(
        Duration::from_millis(20),
        Duration::from_secs(600),
        || async {
            count(&sf.app.engine, "SELECT count(*) FROM outbox_job")
                .await
                .unwrap_or(1)
                == 0
        },
    )
    .await;
    anyhow::ensure!(drained, "the edits did not drain");
    let elapsed = started.elapsed();
    let made = delta(&before, &calls(&sf.sf));
    let writes: u64 = made
        .iter()
        .filter(|(op, _)| is_write(op))
        .map(|(_, n)| n)
        .sum();
    let total: u64 = made.values().sum();
    let goal = (edits as f64 * 60.0 / 1000.0).ceil() as u64;
    Ok(Section {
        id: "salesforce-edits",
        title: format!("Salesforce: {edits} app edits spread over {spread_secs} s (issue 19)"),
        command: format!(
            "cargo run -p tandem-bench -- salesforce-edits --edits {edits} --spread-secs {spread_secs} --window-ms {window_ms}"
        ),
        header: vec![
            "edits",
            "contacts",
            "spread (s)",
            "batch window (ms)",
            "write calls",
            "all calls",
            "drained after (s)",
            "goal ≤ 60 per 1,000 edits over a minute",
        ],
        rows: vec![vec![
            edits.to_string(),
            contacts.len().to_string(),
            spread_secs.to_string(),
            window_ms.to_string(),
            writes.to_string(),
            total.to_string(),
            format!("{:.1}", elapsed.as_secs_f64()),
            format!("{} (write calls ≤ {goal}); all calls: {}", verdict(writes <= goal), verdict(total <= goal)),
        ]],
        notes: vec![
            format!("Calls by operation during the run (simulator's count): {}.", listing(&made)),
            "One by one this would be one `PATCH /sobjects/Contact/{id}` per edit plus a read. Batched: a batch that is not full waits for the end of the window after the previous one (`salesforce.write_batch_window_ms`), so a trickle becomes one `PATCH /composite/sobjects` per window; each batch is read back with one `GET /composite/sobjects/Contact`. The change-capture poll was off (`poll_interval_secs` = 3600), as it is not what is measured.".to_owned(),
        ],
    })
}

/// The initial sync of `leads` Leads and `contacts` Contacts.
pub(crate) async fn initial_sync(leads: usize, contacts: usize) -> anyhow::Result<Section> {
    let sf = app(false, 1000).await?;
    sf.sf.handle().seed(OrgKind::Production, leads, contacts, 0);
    let connection = sf.connect(false).await;
    let before = calls(&sf.sf);
    let started = Instant::now();
    poller::initial_sync(&sf.app.engine, connection.into(), |_| {}).await?;
    let elapsed = started.elapsed();
    let made = delta(&before, &calls(&sf.sf));
    let total: u64 = made.values().sum();
    let records = leads + contacts;
    let linked = links::person_ids(sf.app.store.db(), connection.into())
        .await?
        .len();
    let bound = 1.05 * records as f64 / 2000.0;
    let per_sec = linked as f64 / elapsed.as_secs_f64();
    Ok(Section {
        id: "salesforce-initial-sync",
        title: format!("Salesforce: initial sync of {leads} Leads + {contacts} Contacts (issue 19)"),
        command: format!(
            "cargo run -p tandem-bench -- salesforce-initial-sync --leads {leads} --contacts {contacts}"
        ),
        header: vec![
            "records",
            "linked",
            "calls",
            "1.05 × records / 2,000",
            "time (s)",
            "records/s",
            "goal calls ≤ bound",
        ],
        rows: vec![vec![
            records.to_string(),
            linked.to_string(),
            total.to_string(),
            format!("{bound:.1}"),
            format!("{:.1}", elapsed.as_secs_f64()),
            format!("{per_sec:.0}"),
            verdict(total as f64 <= bound).to_string(),
        ]],
        notes: vec![format!(
            "Calls by operation during the sync (simulator's count; the connect's calls before it are not counted): {}. SQLite, one process with the simulator.",
            listing(&made)
        )],
    })
}
