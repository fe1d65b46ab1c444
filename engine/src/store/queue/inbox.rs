//! The SQL of the inbox's claims (`inbox_event`); its policy (states, backoff, the lane) is
//! `crate::queue::inbox`'s.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use uuid::Uuid;

use super::claim::{self, Lane};
use crate::store::{Conn, StoreError};

/// A claimed event.
#[derive(Debug, Clone, FromQueryResult)]
pub struct ClaimedEvent {
    pub id: Uuid,
    pub connection_id: Option<Uuid>,
    pub source: String,
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i32,
    pub received_at: DateTime<Utc>,
    /// This claim's lease end; ending the claim checks the claim is still this one.
    pub locked_until: DateTime<Utc>,
}

/// Claims up to `limit` events of `lane` until `lease_end` (`store::queue::claim`).
pub async fn claim_events(
    db: &impl Conn,
    lane: &Lane,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<ClaimedEvent>, StoreError> {
    claim::claim(db, lane, now, lease_end, limit, None).await
}

/// What ending a claim writes, for [`end_event_claim`].
#[derive(Debug, Clone, Copy)]
pub enum EventEnd<'a> {
    /// Done with (applied, or failed for good): `processed_at` is set, and the error if any.
    Processed {
        state: &'a str,
        now: DateTime<Utc>,
        error: Option<&'a str>,
    },
    /// To run again at `run_at`.
    Retry {
        state: &'a str,
        run_at: DateTime<Utc>,
        error: &'a str,
    },
}

/// Ends the claim of `event` that `running` state and its lease end still show: `SET … WHERE`
/// this claim still holds it. Returns whether it did (if its lease ran out and another worker
/// claimed it, nothing is written).
pub async fn end_event_claim(
    db: &impl Conn,
    event: &ClaimedEvent,
    running: &str,
    end: EventEnd<'_>,
) -> Result<bool, StoreError> {
    let (set, mut values): (&str, Vec<sea_orm::Value>) = match end {
        EventEnd::Processed {
            state,
            now,
            error: None,
        } => (
            "state = $1, processed_at = $2",
            vec![state.into(), now.into()],
        ),
        EventEnd::Processed {
            state,
            now,
            error: Some(error),
        } => (
            "state = $1, processed_at = $2, last_error = $3",
            vec![state.into(), now.into(), error.into()],
        ),
        EventEnd::Retry {
            state,
            run_at,
            error,
        } => (
            "state = $1, run_at = $2, last_error = $3",
            vec![state.into(), run_at.into(), error.into()],
        ),
    };
    let n = values.len();
    values.push(event.id.into());
    values.push(event.locked_until.into());
    let sql = format!(
        "UPDATE inbox_event SET {set}, attempts = attempts + 1, locked_until = NULL \
         WHERE id = ${} AND state = '{running}' AND locked_until = ${}",
        n + 1,
        n + 2
    );
    let db = db.raw();
    let statement = Statement::from_sql_and_values(db.get_database_backend(), sql, values);
    Ok(db.execute(statement).await?.rows_affected() == 1)
}

#[derive(Debug, FromQueryResult)]
struct Due {
    at: Option<DateTime<Utc>>,
}

/// The earliest time an unfinished event that is not claimable now becomes so (a retry's
/// `run_at`, a claim's lease end), if any.
pub async fn next_event_due(db: &impl Conn) -> Result<Option<DateTime<Utc>>, StoreError> {
    let db = db.raw();
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
