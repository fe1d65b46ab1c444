//! Once a minute: the finished minutes of the in-memory series, plus a sample of every
//! connection's queues and budget, go to `metric_minute`; minutes older than
//! `metrics.retention_days` are deleted. `flush` is public so tests drive it with a moved clock.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use super::series::{self, MinutePoint};
use super::series_name;
use crate::store::metrics as repo;
use crate::store::StoreError;
use crate::sync::Engine;

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub written: usize,
    pub pruned: u64,
}

/// Writes the minutes that ended before `now` (all of them when `everything`, at shutdown) and
/// a sample of the queues at `now`, then prunes what is past the retention.
pub async fn flush(
    engine: &Engine,
    now: DateTime<Utc>,
    everything: bool,
) -> Result<Flushed, StoreError> {
    let db = &engine.store;
    let mut points = series::drain(now, everything);
    points.extend(sample(engine, now).await?);
    repo::write_minutes(db, &points).await?;
    let days = engine.settings.metrics.retention_days;
    let pruned = if days > 0 {
        repo::prune_minutes(db, now - chrono::Duration::days(i64::from(days))).await?
    } else {
        0
    };
    Ok(Flushed {
        written: points.len(),
        pruned,
    })
}

/// One point per gauge and connection, in the minute of `now`.
async fn sample(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<MinutePoint>, StoreError> {
    let db = &engine.store;
    let connections = repo::connections(db).await?;
    let gauges = repo::queue_gauges(db).await?;
    let minute = Utc
        .timestamp_opt(series::minute_of(now), 0)
        .single()
        .unwrap_or(now);
    let point = |connection_id, series: &str, value: f64| MinutePoint {
        connection_id,
        minute,
        series: series.to_owned(),
        count: 1,
        sum: value,
        p50: None,
        p95: None,
    };
    let mut points = Vec::new();
    for (id, _, _) in connections {
        let g = gauges
            .iter()
            .find(|g| g.connection_id == id)
            .cloned()
            .unwrap_or_default();
        points.push(point(id, series_name::INBOX_DEPTH, g.inbox_pending as f64));
        points.push(point(
            id,
            series_name::OUTBOX_DEPTH,
            g.outbox_pending as f64,
        ));
        if let Some(budget) = engine.crm.limiters().get(id) {
            if let Some(left) = budget.daily_left() {
                points.push(point(id, series_name::BUDGET_LEFT, left as f64));
            }
            if let Some(total) = budget.daily_total() {
                points.push(point(id, series_name::BUDGET_TOTAL, total as f64));
            }
        }
    }
    Ok(points)
}

/// The background task of `tandem serve`: a flush at the start of every minute, and a last one
/// (everything still in memory) at shutdown.
pub fn spawn(engine: Engine, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = Utc::now();
            let into_minute = u64::try_from(now.timestamp().rem_euclid(60)).unwrap_or(0);
            let pause = Duration::from_secs(60 - into_minute) + Duration::from_millis(200);
            tokio::select! {
                () = shutdown.cancelled() => {
                    if let Err(error) = flush(&engine, Utc::now(), true).await {
                        tracing::warn!(error = %error, "Could not write the last minute of metrics.");
                    }
                    return;
                }
                () = tokio::time::sleep(pause) => {}
            }
            if let Err(error) = flush(&engine, Utc::now(), false).await {
                tracing::warn!(error = %error, "Could not write a minute of metrics; that minute is missing from the charts.");
            }
        }
    })
}
