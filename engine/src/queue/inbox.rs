//! Received events to merge (`inbox_event`): stored by the webhook receivers (`sync::ingest`),
//! claimed here with a lease, one at a time per object (a person, a contact) in received order,
//! so an event is never applied by two workers and a person's events are applied in order.
//! An event that failed for a transient reason is retried with backoff (`run_at`); one that can
//! never apply stays `failed`, kept for inspection.
//!
//! `run_at` and `locked_until` (migration `m20261203_000010`) are written only here, so the
//! entity and the receivers' inserts do not name them (`NULL` `run_at` means due at once).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use uuid::Uuid;

use super::claim::{self, Lane};
use super::QueueError;

/// States of `inbox_event.state`.
pub mod state {
    pub const PENDING: &str = "pending";
    /// Claimed by a worker until `locked_until`.
    pub const RUNNING: &str = "running";
    pub const APPLIED: &str = "applied";
    /// Could not be applied (for good, or after every retry): the inbox's dead letters.
    pub const FAILED: &str = "failed";
    /// Refused by the receiver; never applied.
    pub const REJECTED: &str = "rejected";
}

/// A claimed event.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Event {
    pub id: Uuid,
    pub connection_id: Option<Uuid>,
    pub source: String,
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    /// This claim's lease end; completing the event checks the claim is still this one.
    locked_until: DateTime<Utc>,
}

/// Events of one object (same source, connection, object type and id; events without an id
/// share one lane) in received order.
const LANE: Lane = Lane {
    table: "inbox_event",
    pending: state::PENDING,
    running: state::RUNNING,
    run_at: "run_at",
    due_nullable: true,
    locked_until: "locked_until",
    same_key: "o.source = j.source AND o.object = j.object \
        AND o.object_id <=> j.object_id AND o.connection_id <=> j.connection_id",
    earlier: "o.received_at < j.received_at OR (o.received_at = j.received_at AND o.id < j.id)",
    eligible: "",
    order_by: "j.received_at ASC, j.id ASC",
    sqlite_index: "",
    also_set: "",
    returning: "id, connection_id, source, payload, attempts, received_at, locked_until",
};

/// Claims up to `limit` due events (the oldest unfinished one of each object), oldest first.
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u32,
) -> Result<Vec<Event>, QueueError> {
    let statement = claim::statement(
        &LANE,
        db.get_database_backend(),
        now,
        claim::lease_end(now, lease),
        limit,
    );
    let mut events = Event::find_by_statement(statement).all(db).await?;
    // RETURNING does not keep the subquery's order.
    events.sort_by_key(|a| (a.received_at, a.id));
    Ok(events)
}

/// Ends this claim of `event`: `SET … WHERE` this claim still holds it. Returns whether it did
/// (if its lease ran out and another worker claimed it, nothing is written).
async fn end<C: ConnectionTrait>(
    db: &C,
    event: &Event,
    set: &str,
    mut values: Vec<sea_orm::Value>,
) -> Result<bool, QueueError> {
    let n = values.len();
    values.push(event.id.into());
    values.push(event.locked_until.into());
    let sql = format!(
        "UPDATE inbox_event SET {set}, attempts = attempts + 1, locked_until = NULL \
         WHERE id = ${} AND state = '{}' AND locked_until = ${}",
        n + 1,
        state::RUNNING,
        n + 2
    );
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
    Ok(db.execute(statement).await?.rows_affected() == 1)
}

/// The event was applied (call in the transaction that applied it; roll back on `false`).
pub async fn complete<C: ConnectionTrait>(
    txn: &C,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    end(
        txn,
        event,
        "state = $1, processed_at = $2",
        vec![state::APPLIED.into(), now.into()],
    )
    .await
}

/// The event failed for a transient reason and runs again at `run_at`.
pub async fn retry<C: ConnectionTrait>(
    db: &C,
    event: &Event,
    run_at: DateTime<Utc>,
    error: &str,
) -> Result<bool, QueueError> {
    end(
        db,
        event,
        "state = $1, run_at = $2, last_error = $3",
        vec![state::PENDING.into(), run_at.into(), error.into()],
    )
    .await
}

/// The event can never be applied (or every retry failed): it stays `failed`, with its error.
pub async fn bury<C: ConnectionTrait>(
    txn: &C,
    event: &Event,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    end(
        txn,
        event,
        "state = $1, processed_at = $2, last_error = $3",
        vec![state::FAILED.into(), now.into(), error.into()],
    )
    .await
}

#[derive(Debug, FromQueryResult)]
struct Due {
    at: Option<DateTime<Utc>>,
}

/// The earliest time an unfinished event that is not claimable now becomes so (a retry's
/// `run_at`, a claim's lease end), if any.
pub async fn next_due<C: ConnectionTrait>(db: &C) -> Result<Option<DateTime<Utc>>, QueueError> {
    let backend = db.get_database_backend();
    let mut earliest: Option<DateTime<Utc>> = None;
    for sql in [
        "SELECT run_at AS at FROM inbox_event \
         WHERE state = 'pending' AND run_at IS NOT NULL ORDER BY run_at LIMIT 1",
        "SELECT locked_until AS at FROM inbox_event \
         WHERE state = 'running' ORDER BY locked_until LIMIT 1",
    ] {
        let found = Due::find_by_statement(Statement::from_string(backend, sql))
            .one(db)
            .await?
            .and_then(|due| due.at);
        earliest = match (earliest, found) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(earliest)
}
