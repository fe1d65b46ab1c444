//! Received events to merge (`inbox_event`): stored by the webhook receivers (`sync::ingest`),
//! claimed here with a lease, one at a time per object (a person, a contact) in received order,
//! so an event is never applied by two workers and a person's events are applied in order.
//! An event that failed for a transient reason is retried with backoff (`run_at`); one that can
//! never apply stays `failed`, kept for inspection.
//!
//! `run_at` and `locked_until` (migration `m20261203_000010`) are written only here, so the
//! entity and the receivers' inserts do not name them (`NULL` `run_at` means due at once).

use chrono::{DateTime, Utc};

use super::claim::lease_end;
use super::QueueError;
use crate::store::queue::{self as rows, EventEnd, Lane};
use crate::store::Conn;

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

/// A claimed event (its `locked_until` is this claim's lease end; completing the event checks
/// the claim is still this one).
pub type Event = rows::ClaimedEvent;

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
pub async fn claim(
    db: &impl Conn,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u32,
) -> Result<Vec<Event>, QueueError> {
    let mut events = rows::claim_events(db, &LANE, now, lease_end(now, lease), limit).await?;
    // RETURNING does not keep the subquery's order.
    events.sort_by_key(|a| (a.received_at, a.id));
    Ok(events)
}

/// Ends this claim of `event`. Returns whether it did (if its lease ran out and another worker
/// claimed it, nothing is written).
async fn end(db: &impl Conn, event: &Event, end: EventEnd<'_>) -> Result<bool, QueueError> {
    Ok(rows::end_event_claim(db, event, state::RUNNING, end).await?)
}

/// The event was applied (call in the transaction that applied it; roll back on `false`).
pub async fn complete(
    txn: &impl Conn,
    event: &Event,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let applied = EventEnd::Processed {
        state: state::APPLIED,
        now,
        error: None,
    };
    end(txn, event, applied).await
}

/// The event failed for a transient reason and runs again at `run_at`.
pub async fn retry(
    db: &impl Conn,
    event: &Event,
    run_at: DateTime<Utc>,
    error: &str,
) -> Result<bool, QueueError> {
    let retry = EventEnd::Retry {
        state: state::PENDING,
        run_at,
        error,
    };
    end(db, event, retry).await
}

/// The event can never be applied (or every retry failed): it stays `failed`, with its error.
pub async fn bury(
    txn: &impl Conn,
    event: &Event,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let failed = EventEnd::Processed {
        state: state::FAILED,
        now,
        error: Some(error),
    };
    end(txn, event, failed).await
}

/// The earliest time an unfinished event that is not claimable now becomes so (a retry's
/// `run_at`, a claim's lease end), if any.
pub async fn next_due(db: &impl Conn) -> Result<Option<DateTime<Utc>>, QueueError> {
    Ok(rows::next_event_due(db).await?)
}
