//! The e-mail logging benchmark (issue 23): N campaign e-mails to N linked contacts, sent by
//! the app in batches to a `tandem serve` child, written to the simulator under a burst
//! limit. Measures API calls per e-mail, the time against the rate-limit bound, and (with a
//! SIGKILL of tandem in the middle, the app re-sending its batches) duplicates and losses.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use pipedrive_sim::{RateLimits, SimConfig};
use serde_json::{json, Value};
use tandem_tests::chaos::{self, count, Harness, CHAOS_API_KEY};
use tandem_tests::child::TandemProcess;

use crate::report::{verdict, Section};

/// One run's numbers.
struct Run {
    emails: usize,
    killed: bool,
    elapsed: Duration,
    requests: u64,
    rate_limited: u64,
    activities: usize,
    distinct: usize,
}

const BATCH: usize = 500;

/// Sends one batch until tandem takes it (it may be down: the app retries; the batch is
/// idempotent per message_id, so a batch cut off by the kill is simply sent again).
async fn send_batch(http: &reqwest::Client, base_url: &str, batch: &[Value]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let response = http
            .post(format!("{base_url}/api/v1/emails/batch"))
            .bearer_auth(CHAOS_API_KEY)
            .json(&json!({ "emails": batch }))
            .send()
            .await;
        if let Ok(r) = response {
            if r.status().is_success() {
                let body: Value = r.json().await?;
                let refused: Vec<&Value> = body["results"]
                    .as_array()
                    .context("results")?
                    .iter()
                    .filter(|r| !matches!(r["status"].as_u64(), Some(200 | 202)))
                    .collect();
                anyhow::ensure!(refused.is_empty(), "refused: {refused:?}");
                return Ok(());
            }
            anyhow::ensure!(
                !r.status().is_client_error(),
                "the batch answered {}",
                r.status()
            );
        }
        anyhow::ensure!(Instant::now() < deadline, "tandem did not take a batch");
        // Another process (possibly restarting): nothing to be notified by.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(emails: usize, burst: u32, kill: bool) -> anyhow::Result<Run> {
    let dir = std::env::temp_dir().join(format!("tandem-emails-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let sim = pipedrive_sim::start(SimConfig {
        persons: emails,
        time_scale: 0.01,
        seed: 7,
        rate_limits: RateLimits::generous(),
        ..SimConfig::default()
    })
    .await?;
    let handle = sim.handle();
    let db = format!("sqlite://{}", dir.join("tandem.db").display());
    let mut harness = Harness::new(&dir, &db, sim.base_url()).await?;
    harness.child.lease_secs = Some(3);
    let engine = harness.engine.clone();
    let mut tandem = TandemProcess::start(&harness.child).await?;
    chaos::oauth_connect_and_wait_for_initial_sync(
        &engine,
        &harness.child.base_url(),
        Duration::from_secs(600),
    )
    .await?;
    let linked = count(&engine, "SELECT count(*) FROM person_link").await?;
    anyhow::ensure!(linked as usize >= emails, "only {linked} linked contacts");
    // One address per person (the seed may give two persons one address: each address once).
    let mut addresses: Vec<String> = handle
        .persons()
        .iter()
        .filter_map(|p| p["emails"][0]["value"].as_str().map(str::to_lowercase))
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses.truncate(emails);
    let emails = addresses.len();
    let mails: Vec<Value> = addresses
        .iter()
        .enumerate()
        .map(|(i, to)| {
            json!({
                "message_id": format!("<campaign-{i}@bench.example>"),
                "direction": "sent",
                "from": "news@bench.example",
                "to": [to],
                "subject": format!("December campaign ({i})"),
                "sent_at": "2026-12-04T09:00:00Z",
                "snippet": "Our December offer",
                "campaign": "December",
            })
        })
        .collect();

    let mut limits = RateLimits::generous();
    limits.api_token_burst = burst;
    limits.oauth_burst = burst;
    handle.set_rate_limits(limits);
    handle.reset_counts();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let base_url = harness.child.base_url();
    let started = Instant::now();
    let sender = {
        let (http, base_url, mails) = (http.clone(), base_url.clone(), mails.clone());
        tokio::spawn(async move {
            for batch in mails.chunks(BATCH) {
                send_batch(&http, &base_url, batch).await?;
            }
            anyhow::Ok(())
        })
    };
    let logged = || async {
        count(
            &engine,
            "SELECT count(*) FROM email_log WHERE state = 'logged'",
        )
        .await
        .unwrap_or(0) as usize
    };
    if kill {
        while logged().await < emails / 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tandem.kill().await?;
        tandem = TandemProcess::start(&harness.child).await?;
    }
    sender.await??;
    let deadline = Instant::now() + Duration::from_secs(3_600);
    while logged().await < emails {
        anyhow::ensure!(Instant::now() < deadline, "not every e-mail was logged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let requests = handle.total_calls();
    let rate_limited = handle.rate_limited();
    let mut by_message: HashMap<String, usize> = HashMap::new();
    let mut activities = 0;
    for activity in handle.activities() {
        if activity["type"] != "email" {
            continue;
        }
        activities += 1;
        let id = activity["note"]
            .as_str()
            .and_then(|n| n.lines().find_map(|l| l.strip_prefix("Message-ID: ")))
            .unwrap_or_default()
            .to_owned();
        *by_message.entry(id).or_default() += 1;
    }
    tandem.kill().await?;
    drop(harness);
    drop(std::fs::remove_dir_all(&dir));
    Ok(Run {
        emails,
        killed: kill,
        elapsed,
        requests,
        rate_limited,
        activities,
        distinct: by_message.len(),
    })
}

pub(crate) async fn bench(emails: usize, burst: u32) -> anyhow::Result<Section> {
    let runs = [
        run(emails, burst, false).await?,
        run(emails, burst, true).await?,
    ];
    let rows = runs
        .iter()
        .map(|r| {
            let bound = r.emails as f64 * 2.0 / f64::from(burst);
            let ratio = r.elapsed.as_secs_f64() / bound;
            let per_email = r.requests as f64 / r.emails as f64;
            let duplicates = r.activities - r.distinct;
            let missing = r.emails - r.distinct;
            vec![
                if r.killed {
                    "SIGKILL at half, restarted"
                } else {
                    "no kill"
                }
                .to_owned(),
                r.emails.to_string(),
                format!("{burst} / 2 s"),
                r.requests.to_string(),
                format!("{per_email:.3}"),
                format!("{bound:.1}"),
                format!("{:.1}", r.elapsed.as_secs_f64()),
                format!("{ratio:.2}"),
                r.rate_limited.to_string(),
                duplicates.to_string(),
                missing.to_string(),
                format!(
                    "{} / {} / {}",
                    verdict(per_email <= 1.05),
                    verdict(ratio <= 1.1),
                    verdict(duplicates == 0 && missing == 0)
                ),
            ]
        })
        .collect();
    Ok(Section {
        id: "emails",
        title: format!("{emails} campaign e-mails to {emails} linked contacts (issue 23)"),
        command: format!(
            "cargo run {}-p tandem-bench -- emails --emails {emails} --burst {burst} --write",
            if cfg!(debug_assertions) { "" } else { "--release " }
        ),
        header: vec![
            "run",
            "e-mails",
            "burst limit",
            "API requests",
            "requests / e-mail",
            "bound (s)",
            "measured (s)",
            "× bound",
            "429s",
            "duplicates",
            "missing",
            "goals ≤ 1.05 / ≤ 1.1× / 0",
        ],
        rows,
        notes: vec![
            format!("The simulator (in this process) seeds {emails} persons; `tandem serve` (a child process, SQLite file, workers on, `workers.lease_secs = 3`) is connected through OAuth and its initial sync links them (not counted). Then the simulator's burst limit is set and its counters reset, and the app sends one campaign e-mail to each person's address through `POST /api/v1/emails/batch` ({BATCH} per request). Measured from the first batch until every e-mail is `logged`; requests are every request tandem made to the simulator meanwhile (the e-mail writes, and after the restart its webhook check). Bound = e-mails × 2 s / burst limit (one write each). The mirror is off: every e-mail goes to its person only (deciding a deal from the mirror costs no request either)."),
            "Kill run: tandem is SIGKILLed once half the e-mails are logged and started again at once; the app re-sends the batch that was cut off (idempotent per message_id). Duplicates and missing e-mails are counted from the simulator's e-mail activities by the `Message-ID:` line each carries. The measured time of the kill run includes the restart and the 3 s lease the new process waits out for the jobs the killed one held.".to_owned(),
            format!(
                "Build: {} (tandem, the simulator and this program); the machine's load is in the header above.",
                if cfg!(debug_assertions) { "debug (unoptimised)" } else { "release" }
            ),
        ],
    })
}
