//! Retention: what tandem keeps only for a while. The poller's loop runs [`prune`] after each
//! poll; everything still needed (pending events, queued jobs, deliveries still being tried)
//! is never touched.

use chrono::{DateTime, Duration, Utc};

use crate::config::AdminSettings;
use crate::queue::inbox::state as inbox_state;
use crate::store::{idempotency, oauth_states, queue, sessions, synclog, Conn};
use crate::sync::app::delivery_state;
use crate::sync::{Engine, SyncError};

/// OAuth `state` nonces are good for ten minutes; their rows are kept a day for inspection.
const OAUTH_STATE_KEEP_HOURS: i64 = 24;

/// How many rows each kind of record lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sync_log: u64,
    pub idempotency_keys: u64,
    pub inbox_events: u64,
    pub deliveries: u64,
    pub oauth_states: u64,
    pub revoked_sessions: u64,
}

/// Deletes what is past its retention at `now`: sync-log entries, applied or rejected webhook
/// events and delivered or failed app deliveries older than `sync_log_retention_days` (0 keeps
/// them forever), idempotency keys older than `idempotency_key_ttl_hours`, used or expired
/// OAuth states older than a day, revoked console sessions whose cookie has expired anyway.
pub async fn prune(
    db: &impl Conn,
    settings: &AdminSettings,
    now: DateTime<Utc>,
) -> Result<Pruned, SyncError> {
    let mut pruned = Pruned {
        sync_log: synclog::prune(db, settings.sync_log_retention_days, now).await?,
        ..Pruned::default()
    };
    if settings.sync_log_retention_days > 0 {
        let cutoff = now - Duration::days(i64::from(settings.sync_log_retention_days));
        pruned.inbox_events =
            queue::prune_inbox_events(db, &[inbox_state::APPLIED, inbox_state::REJECTED], cutoff)
                .await?;
        pruned.deliveries = queue::prune_deliveries(
            db,
            &[delivery_state::DELIVERED, delivery_state::FAILED],
            cutoff,
        )
        .await?;
    }
    pruned.idempotency_keys = idempotency::prune(
        db,
        now - Duration::hours(i64::from(settings.idempotency_key_ttl_hours)),
    )
    .await?;
    pruned.oauth_states =
        oauth_states::prune(db, now - Duration::hours(OAUTH_STATE_KEEP_HOURS)).await?;
    pruned.revoked_sessions = sessions::prune(db, now).await?;
    Ok(pruned)
}

/// [`prune`] at the engine's clock's time, with the engine's retention settings.
pub async fn prune_due(engine: &Engine) -> Result<Pruned, SyncError> {
    prune(&engine.store, &engine.settings.admin, engine.now()).await
}
