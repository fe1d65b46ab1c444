//! tandem as a real process, killed with SIGKILL: nothing is lost, nothing happens twice.

use std::time::Duration;

use pipedrive_sim::SimConfig;
use tandem_engine::sync::app::local;
use tandem_tests::chaos::{self, connect_and_sync, count, ChaosConfig, Harness};
use tandem_tests::child::TandemProcess;
use tandem_tests::fields::{email, fields, name};
use tandem_tests::TestDatabase;

fn scratch_dir(label: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tandem-{label}-{}", uuid::Uuid::new_v4().simple()))
}

/// Waits (bounded by `timeout`) until `done` holds, checking every 20 ms: the child is another
/// process, so there is nothing to be notified by.
async fn eventually<F, Fut>(timeout: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandem_killed_in_the_middle_of_five_thousand_jobs_completes_every_job_exactly_once_after_a_restart(
) {
    const JOBS: i64 = 5_000;
    let dir = scratch_dir("crash");
    let sim = pipedrive_sim::start(SimConfig::default()).await.unwrap();
    let handle = sim.handle();
    let db = format!("sqlite://{}", dir.join("tandem.db").display());
    std::fs::create_dir_all(&dir).unwrap();
    let harness = Harness::new(&dir, &db, sim.base_url()).await.unwrap();
    let engine = &harness.engine;
    connect_and_sync(engine, &handle).await.unwrap();
    for i in 0..JOBS {
        local::create_contact(
            engine,
            fields([
                name(&format!("Queued {i}")),
                email(&format!("q{i}@crash.example")),
            ]),
            true,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        count(engine, "SELECT count(*) FROM outbox_job")
            .await
            .unwrap(),
        JOBS
    );

    let tandem = TandemProcess::start(&harness.child).await.unwrap();
    let started = eventually(Duration::from_secs(120), || async {
        handle.calls("v2.addPerson") >= 1_000
    })
    .await;
    assert!(started, "tandem started working through the queue");
    tandem.kill().await.unwrap();
    let left = count(engine, "SELECT count(*) FROM outbox_job")
        .await
        .unwrap();
    assert!(
        left > 0 && left < JOBS,
        "killed mid-queue: {left} jobs left"
    );

    let tandem = TandemProcess::start(&harness.child).await.unwrap();
    let drained = eventually(Duration::from_secs(300), || async {
        count(engine, "SELECT count(*) FROM outbox_job")
            .await
            .unwrap_or(-1)
            == 0
    })
    .await;
    tandem.kill().await.unwrap();
    assert!(drained, "the queue drained after the restart");

    let persons = handle.persons();
    assert_eq!(persons.len() as i64, JOBS, "one person per job, none twice");
    let mut emails: Vec<String> = persons
        .iter()
        .filter_map(|p| p["emails"][0]["value"].as_str().map(str::to_owned))
        .collect();
    emails.sort();
    emails.dedup();
    assert_eq!(emails.len() as i64, JOBS, "every e-mail exactly once");
    assert_eq!(
        count(engine, "SELECT count(*) FROM person_link")
            .await
            .unwrap(),
        JOBS
    );
    drop(std::fs::remove_dir_all(&dir));
}

async fn chaos(label: &str, faults: &str) -> chaos::ChaosReport {
    let dir = scratch_dir(label);
    let mut config = ChaosConfig::new(50, 200, 2, 20_261_123, dir.clone());
    config.faults = faults.to_owned();
    // A fresh Postgres database when the suite runs on Postgres (dropped at the end), else
    // a SQLite file in `dir`, kept with the logs when the run fails.
    let database = TestDatabase::on_postgres(tandem_tests::postgres_server_url().as_deref())
        .await
        .unwrap();
    config.database_url = database.as_ref().map(|database| database.url.clone());
    config.drain_timeout = Duration::from_secs(60);
    let report = chaos::run(config).await.unwrap();
    assert_eq!(report.edits_made, 200);
    assert_eq!(report.kills, 2);
    assert!(
        report.clean(),
        "divergent {}, duplicates {}, lost {}: {:?} (files kept in {})",
        report.divergent_records,
        report.duplicates_created,
        report.edits_lost,
        report.examples,
        dir.display()
    );
    drop(std::fs::remove_dir_all(&dir));
    report
}

/// The small chaos run: 50 contacts, 200 edits, two SIGKILLs, API faults, dropped webhooks,
/// access tokens expired at random points. The app edits through `/api/v1`, so tandem alone
/// writes its database (an earlier harness wrote app edits into the SQLite file from a second
/// process, which ADR 1 does not support, and occasionally lost an edit that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_random_edits_over_fifty_contacts_with_api_faults_dropped_webhooks_expired_tokens_and_two_kills_converge_with_nothing_lost_or_duplicated(
) {
    let report = chaos(
        "chaos",
        "persons:5xx=0.05,429=0.05,hang=0.005;webhooks:drop=0.1",
    )
    .await;
    assert!(report.token_expiries >= 1);
}

/// Every fault the simulator has, including duplicated and reordered webhooks. This harness
/// found a bug: a duplicated or reordered webhook of tandem's own earlier write, carrying the
/// same whole-second `update_time` as the latest one, was merged as a remote change and brought
/// back an older value (fixed: a tie from a webhook re-reads the person through a
/// `refresh_person` job serialised with the contact's writes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_random_edits_with_every_fault_including_duplicated_and_reordered_webhooks_converge(
) {
    chaos(
        "chaos-all",
        &ChaosConfig::new(0, 0, 0, 0, scratch_dir("unused")).faults,
    )
    .await;
}

/// The small Salesforce chaos run (issue 19): 40 contacts (half Leads and Contacts made in
/// Salesforce, half pushed from the app as Leads), 200 edits (names, companies as Lead
/// `Company` and Contact Accounts, phones), two SIGKILLs, 5xx, hangs, lost
/// answers and resets on batched writes and queries, sessions expired, the daily allocation used
/// up and freed, Leads converted mid-run: both sides converge with nothing lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_random_edits_against_salesforce_with_faults_expired_sessions_quota_exhaustion_conversions_and_two_kills_converge(
) {
    use tandem_tests::sf_chaos::{self, SfChaosConfig};
    let dir = scratch_dir("sf-chaos");
    let mut config = SfChaosConfig::new(40, 200, 2, 20_261_205, dir.clone());
    let database = TestDatabase::on_postgres(tandem_tests::postgres_server_url().as_deref())
        .await
        .unwrap();
    config.database_url = database.as_ref().map(|database| database.url.clone());
    config.drain_timeout = Duration::from_secs(60);
    let report = sf_chaos::run(config).await.unwrap();
    assert!(
        report.clean(),
        "divergent {}, duplicates {}, lost {}, dead letters {}: {:?} (files kept in {})",
        report.divergent_records,
        report.duplicates_created,
        report.edits_lost,
        report.dead_letters,
        report.examples,
        dir.display()
    );
    assert_eq!(report.edits_made, 200);
    assert_eq!(report.kills, 2);
    assert!(
        report.conversions >= 1 && report.quota_exhaustions == 1 && report.salesforce_edits > 0
    );
    assert!(
        report.company_edits > 0 && report.accounts > 0,
        "companies were changed and Accounts created: {} edits, {} Accounts",
        report.company_edits,
        report.accounts
    );
    drop(std::fs::remove_dir_all(&dir));
}

/// The small trigger chaos run (issue 22): 150 random deal changes (stage moves, wins, losses,
/// reopenings, owner changes, creates, deletes) with dropped, duplicated and reordered webhooks
/// and one SIGKILL of tandem; the app's events equal the true changes per deal.
///
/// It found that a deal whose create webhook was lost and that was deleted before a backstop
/// pass read it was told deleted, never created (fixed; see
/// `triggers::a_deal_whose_create_webhook_was_lost_and_that_is_then_deleted_…`). A failure
/// keeps its files for the post-mortem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_deal_changes_under_webhook_faults_and_a_kill_reach_the_app_with_none_missing_extra_or_out_of_order(
) {
    use tandem_tests::trigger_chaos::{self, TriggerChaosConfig};
    let dir = scratch_dir("trigger-chaos");
    let mut config = TriggerChaosConfig::new(150, 1, 7, dir.clone());
    config.deals = 30;
    // A fresh Postgres database when the suite runs on Postgres (dropped at the end), else
    // a SQLite file in `dir`, kept with the logs when the run fails.
    let database = TestDatabase::on_postgres(tandem_tests::postgres_server_url().as_deref())
        .await
        .unwrap();
    config.database_url = database.as_ref().map(|database| database.url.clone());
    let report = trigger_chaos::run(config).await.unwrap();
    assert!(
        report.clean(),
        "missing {}, extra {}, out of order {}: {:?} (files kept in {})",
        report.missing,
        report.extra,
        report.out_of_order,
        report.samples,
        dir.display()
    );
    assert_eq!(report.kills, 1);
    assert!(report.events > 0, "{report:?}");
    drop(std::fs::remove_dir_all(&dir));
}
