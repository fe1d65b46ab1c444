//! Retention: what tandem keeps only for a while. The poller's loop runs [`prune`] after each
//! poll; everything still needed (pending events, queued jobs, deliveries still being tried)
//! is never touched.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::app::delivery_state;
use super::SyncError;
use crate::config::AdminSettings;
use crate::queue::inbox::state as inbox_state;
use crate::store::entities::{
    idempotency_key, inbox_event, oauth_state, outbound_delivery, revoked_session,
};

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
pub async fn prune<C: ConnectionTrait>(
    db: &C,
    settings: &AdminSettings,
    now: DateTime<Utc>,
) -> Result<Pruned, SyncError> {
    let mut pruned = Pruned {
        sync_log: super::synclog::prune(db, settings.sync_log_retention_days, now).await?,
        ..Pruned::default()
    };
    if settings.sync_log_retention_days > 0 {
        let cutoff = now - Duration::days(i64::from(settings.sync_log_retention_days));
        pruned.inbox_events = inbox_event::Entity::delete_many()
            .filter(inbox_event::Column::State.is_in([inbox_state::APPLIED, inbox_state::REJECTED]))
            .filter(inbox_event::Column::ReceivedAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected;
        pruned.deliveries = outbound_delivery::Entity::delete_many()
            .filter(
                outbound_delivery::Column::State
                    .is_in([delivery_state::DELIVERED, delivery_state::FAILED]),
            )
            .filter(outbound_delivery::Column::UpdatedAt.lt(cutoff))
            .exec(db)
            .await?
            .rows_affected;
    }
    pruned.idempotency_keys = idempotency_key::Entity::delete_many()
        .filter(
            idempotency_key::Column::CreatedAt
                .lt(now - Duration::hours(i64::from(settings.idempotency_key_ttl_hours))),
        )
        .exec(db)
        .await?
        .rows_affected;
    pruned.oauth_states = oauth_state::Entity::delete_many()
        .filter(oauth_state::Column::CreatedAt.lt(now - Duration::hours(OAUTH_STATE_KEEP_HOURS)))
        .exec(db)
        .await?
        .rows_affected;
    pruned.revoked_sessions = revoked_session::Entity::delete_many()
        .filter(revoked_session::Column::ExpiresAt.lt(now))
        .exec(db)
        .await?
        .rows_affected;
    Ok(pruned)
}
