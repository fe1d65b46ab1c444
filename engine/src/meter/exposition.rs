//! `GET /metrics` in the Prometheus text format. The recorder is
//! `metrics-exporter-prometheus`'s, render-only (no HTTP server or push of its own); it is
//! installed once per process, and only when the endpoint is enabled:
//!
//! - `metrics.token` set: `/metrics` on the main port, `Authorization: Bearer <token>` required
//!   (and on the separate listener too, when there is one);
//! - `metrics.addr` set: `/metrics` on a listener of its own (for a port that only the
//!   monitoring network reaches), without a token unless one is set;
//! - neither: no endpoint, no recorder, and one log line at start-up saying how to enable it.
//!
//! Queue depths, dead letters, budgets, initial-sync and mirror progress are gauges sampled when the
//! page is scraped (a few grouped `COUNT` queries).

use std::sync::OnceLock;
use tandem_core::ConnectionId;

use chrono::Utc;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::name;
use crate::config::MetricsSettings;
use crate::sync::Engine;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Histogram buckets (seconds) of every `*_seconds` metric: from a fast CRM call to an hour's
/// propagation delay.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Whether `/metrics` is served anywhere.
pub fn enabled(settings: &MetricsSettings) -> bool {
    !settings.token.expose().is_empty() || !settings.addr.is_empty()
}

/// Whether tandem's recorder is installed: the hot paths (every accepted webhook) build their
/// labels only then.
pub fn installed() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// Installs the process's recorder (once; later calls return the same handle). `None` when
/// another recorder was installed first (an embedding program's).
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(error = %error, "Could not install the metrics recorder; /metrics stays empty.");
                    None
                }
            }
        })
        .as_ref()
}

/// Drains the histograms' recorded samples into their buckets every 5 s (what the crate's
/// own exporter does; `install_recorder` leaves it to the caller). Without it the samples pile
/// up in memory between scrapes, without bound when nothing scrapes. A thread, not a task:
/// the recorder may be installed before (or without) a runtime.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            handle.run_upkeep();
        });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "Could not start the metrics upkeep thread; histograms are drained only when /metrics is scraped.");
    }
}

/// At start-up: installs the recorder when the endpoint is enabled, or says how to enable it.
pub fn init(settings: &MetricsSettings) {
    if enabled(settings) {
        install();
        tracing::info!(
            token = !settings.token.expose().is_empty(),
            separate_listener = !settings.addr.is_empty(),
            "Prometheus metrics are served at /metrics."
        );
    } else {
        tracing::info!("Prometheus metrics are disabled: set metrics.token (Bearer on the main port) or metrics.addr (a listener of their own) to serve /metrics.");
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(name::WEBHOOK_EVENTS, "Webhook deliveries received, by source and outcome (accepted, duplicate, rejected, unauthorized).");
    describe_counter!(
        name::CRM_REQUESTS,
        "Calls to the CRM, by operation and outcome (2xx, 4xx, 429, 5xx, timeout, transport)."
    );
    describe_histogram!(
        name::CRM_REQUEST_DURATION,
        Unit::Seconds,
        "Duration of CRM calls, by operation."
    );
    describe_counter!(
        name::CRM_TOKENS,
        "Daily-budget tokens spent on CRM calls (by tandem's own accounting)."
    );
    describe_histogram!(
        name::RATE_LIMIT_WAIT,
        Unit::Seconds,
        "Time a CRM call waited for the connection's rate limiter."
    );
    describe_counter!(
        name::JOB_RETRIES,
        "Jobs that failed and were scheduled again."
    );
    describe_counter!(
        name::DEAD_LETTERED,
        "Jobs that gave up and became dead letters."
    );
    describe_histogram!(name::PROPAGATION, Unit::Seconds, "End-to-end propagation latency: app_to_crm from the contact's change to the CRM's success, crm_to_app from the CRM's update time to the change applied.");
    describe_counter!(
        name::APP_DELIVERIES,
        "Attempts to deliver a webhook to the app, by outcome."
    );
    describe_gauge!(name::INBOX_DEPTH, "Received events not applied yet.");
    describe_gauge!(
        name::INBOX_OLDEST,
        Unit::Seconds,
        "Age of the oldest received event not applied yet."
    );
    describe_gauge!(name::OUTBOX_DEPTH, "Writes to the CRM waiting or running.");
    describe_gauge!(
        name::OUTBOX_OLDEST,
        Unit::Seconds,
        "Age of the oldest write waiting or running."
    );
    describe_gauge!(
        name::DEAD_LETTERS,
        "Writes that gave up, waiting for an operator."
    );
    describe_gauge!(
        name::DAILY_BUDGET_LEFT,
        "Daily-budget tokens left, as the CRM last reported them."
    );
    describe_gauge!(
        name::DAILY_BUDGET_TOTAL,
        "The daily budget, as the CRM last reported it."
    );
    describe_gauge!(
        name::INITIAL_SYNC_PERSONS,
        "Persons applied so far by a running initial sync."
    );
    describe_gauge!(
        name::MIRROR_ENABLED,
        "1 while the connection's live mirror is switched on."
    );
    describe_gauge!(
        name::MIRROR_STREAMS_DONE,
        "Mirror streams done in the pass in progress (all of them between passes)."
    );
    describe_gauge!(name::MIRROR_STREAMS_TOTAL, "Mirror streams in a pass.");
    describe_gauge!(
        name::MIRROR_ROWS,
        "Rows in a mirror table, not marked deleted."
    );
    describe_gauge!(name::UP, "1 while tandem runs.");
}

/// The page: gauges sampled now, then everything recorded, in the text format. `None` when
/// no recorder could be installed.
pub async fn render(engine: &Engine) -> Option<String> {
    let handle = install()?;
    if let Err(error) = sample_gauges(engine).await {
        tracing::warn!(error = %error, "Could not sample the queue gauges for /metrics.");
    }
    handle.run_upkeep();
    Some(handle.render())
}

/// Constant-time comparison (of the digests, so the lengths leak nothing either).
pub fn token_matches(offered: Option<&str>, expected: &str) -> bool {
    let Some(offered) = offered else {
        return false;
    };
    let (a, b) = (
        Sha256::digest(offered.as_bytes()),
        Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Sets the gauges of every connection (zero where nothing is queued, so a drained queue
/// does not keep its last value), each labelled with its own CRM.
pub async fn sample_gauges(engine: &Engine) -> Result<(), crate::store::StoreError> {
    let now = Utc::now();
    let db = &engine.store;
    let connections = crate::store::metrics::connections(db).await?;
    let gauges = crate::store::metrics::queue_gauges(db).await?;
    metrics::gauge!(name::UP).set(1.0);
    let age = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or(0.0, |t| {
            ((now - t).num_milliseconds().max(0) as f64) / 1000.0
        })
    };
    let gauge_of = |id: ConnectionId| {
        gauges
            .iter()
            .find(|g| g.connection_id == id)
            .cloned()
            .unwrap_or_default()
    };
    // Events received before any connection existed (or for none) sit under the nil id.
    let unowned = gauge_of(ConnectionId::nil());
    let nil = Uuid::nil().to_string();
    metrics::gauge!(name::INBOX_DEPTH, "connection_id" => nil.clone())
        .set(unowned.inbox_pending as f64);
    metrics::gauge!(name::INBOX_OLDEST, "connection_id" => nil).set(age(unowned.inbox_oldest));
    for (id, state, kind) in &connections {
        let g = gauge_of(*id);
        let crm_of = engine.crm_of(kind);
        let crm = super::crm_label(crm_of);
        let label = id.to_string();
        metrics::gauge!(name::INBOX_DEPTH, "connection_id" => label.clone())
            .set(g.inbox_pending as f64);
        metrics::gauge!(name::INBOX_OLDEST, "connection_id" => label.clone())
            .set(age(g.inbox_oldest));
        metrics::gauge!(name::OUTBOX_DEPTH, "connection_id" => label.clone(), "crm" => crm)
            .set(g.outbox_pending as f64);
        metrics::gauge!(name::OUTBOX_OLDEST, "connection_id" => label.clone(), "crm" => crm)
            .set(age(g.outbox_oldest));
        metrics::gauge!(name::DEAD_LETTERS, "connection_id" => label.clone(), "crm" => crm)
            .set(g.dead_letters as f64);
        if let Some(budget) = crm_of.limiters().get(*id) {
            if let Some(left) = budget.daily_left() {
                metrics::gauge!(name::DAILY_BUDGET_LEFT, "connection_id" => label.clone(), "crm" => crm).set(left as f64);
            }
            if let Some(total) = budget.daily_total() {
                metrics::gauge!(name::DAILY_BUDGET_TOTAL, "connection_id" => label.clone(), "crm" => crm).set(total as f64);
            }
        }
        if state == crate::sync::connections::state::SYNCING {
            if let Ok(Some(done)) =
                crate::sync::inbound::poller::initial_sync_progress(engine, *id).await
            {
                metrics::gauge!(name::INITIAL_SYNC_PERSONS, "connection_id" => label.clone(), "crm" => crm).set(done as f64);
            }
        }
        if crm_of.has_mirror() {
            sample_mirror(engine, *id, &label, crm).await;
        }
    }
    Ok(())
}

/// The mirror's progress (streams done of all in the pass, live rows per stream), when the
/// connection's mirror was ever switched on. Stream names come from the catalog: bounded.
async fn sample_mirror(engine: &Engine, id: ConnectionId, label: &str, crm: &'static str) {
    let status = match crate::mirror::background::status(&engine.store, id).await {
        Ok(Some(status)) => status,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(connection_id = %id, error = %error, "Could not read the mirror's progress for /metrics.");
            return;
        }
    };
    let enabled = if status.enabled { 1.0 } else { 0.0 };
    metrics::gauge!(name::MIRROR_ENABLED, "connection_id" => label.to_owned(), "crm" => crm)
        .set(enabled);
    metrics::gauge!(name::MIRROR_STREAMS_DONE, "connection_id" => label.to_owned(), "crm" => crm)
        .set(status.streams_done as f64);
    metrics::gauge!(name::MIRROR_STREAMS_TOTAL, "connection_id" => label.to_owned(), "crm" => crm)
        .set(status.streams_total as f64);
    for stream in &status.streams {
        metrics::gauge!(name::MIRROR_ROWS, "connection_id" => label.to_owned(), "crm" => crm, "stream" => stream.stream)
            .set(stream.rows as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_check_needs_the_exact_token() {
        assert!(token_matches(Some("0123456789abcdef"), "0123456789abcdef"));
        assert!(!token_matches(Some("0123456789abcdeF"), "0123456789abcdef"));
        assert!(!token_matches(Some(""), "0123456789abcdef"));
        assert!(!token_matches(None, "0123456789abcdef"));
    }
}
