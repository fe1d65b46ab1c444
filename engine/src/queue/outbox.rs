//! The outbox: writes to the CRM, as rows in `outbox_job`, enqueued in the same transaction as
//! the change that caused them, strictly ordered per `ordering_key` (one person / contact) and
//! concurrent across keys. Pending pushes of one contact coalesce; a paced push waits on
//! purpose ([`defer`], [`PACED`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tandem_core::ConnectionId;
use tandem_core::{ContactId, PersonId};
use uuid::Uuid;

use super::claim::lease_end;
use super::QueueError;
use crate::store::queue::{self as rows, AttemptEnd, Lane, NewJob};
use crate::store::Conn;

/// Job states stored in `outbox_job.state`.
pub mod state {
    pub const PENDING: &str = "pending";
    pub const RUNNING: &str = "running";
    pub const DEAD: &str = "dead";
}

/// Higher runs first when the budget is short: user-visible edits and journey actions before
/// backfill and reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
    Background = 0,
    Edit = 10,
    Action = 20,
}

/// What a job does; the payload carries its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobPayload {
    /// Bring the linked (or to-be-created) person of a contact up to date with the contact.
    /// Coalescing: one pending push per contact at most; it sends the latest values at run time.
    PushContact { contact_id: ContactId },
    /// A journey action recorded in `payload` (see `sync::actions`).
    Action {
        action_id: Uuid,
        contact_id: ContactId,
    },
    /// Re-read a person from Pipedrive and merge it: a webhook was ambiguous (its
    /// whole-second `update_time` ties with what was merged, and its values differ).
    RefreshPerson {
        contact_id: ContactId,
        person_id: PersonId,
    },
    /// Log an e-mail on the CRM's timeline (`sync::emails`); `contact_id` is its first linked
    /// participant.
    LogEmail {
        email_id: Uuid,
        contact_id: ContactId,
    },
    /// Bring a logged e-mail's CRM record up to date (its events, a manual link).
    /// Coalescing: many opens and clicks make one pending update, which writes the latest.
    UpdateEmail {
        email_id: Uuid,
        contact_id: ContactId,
    },
}

impl JobPayload {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PushContact { .. } => "push_contact",
            Self::Action { .. } => "action",
            Self::RefreshPerson { .. } => "refresh_person",
            Self::LogEmail { .. } => "log_email",
            Self::UpdateEmail { .. } => "update_email",
        }
    }

    /// The contact the job is about.
    pub fn contact_id(&self) -> ContactId {
        match self {
            Self::PushContact { contact_id }
            | Self::Action { contact_id, .. }
            | Self::RefreshPerson { contact_id, .. }
            | Self::LogEmail { contact_id, .. }
            | Self::UpdateEmail { contact_id, .. } => *contact_id,
        }
    }

    fn coalesces(&self) -> bool {
        matches!(
            self,
            Self::PushContact { .. } | Self::RefreshPerson { .. } | Self::UpdateEmail { .. }
        )
    }
}

/// A job as the worker sees it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub connection_id: ConnectionId,
    pub ordering_key: String,
    pub attempts: u32,
    pub payload: JobPayload,
    /// When the job was enqueued (the change that caused it happened no later).
    pub created_at: DateTime<Utc>,
}

/// Enqueues a job inside the caller's transaction. A push for a contact that already has a
/// pending (not yet running) push is coalesced into it. Returns whether a row was inserted.
pub async fn enqueue(
    txn: &impl Conn,
    connection_id: ConnectionId,
    ordering_key: &str,
    priority: Priority,
    payload: &JobPayload,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    if payload.coalesces() {
        let pending = rows::job_of_key(
            txn,
            connection_id,
            ordering_key,
            payload.kind(),
            state::PENDING,
        )
        .await?;
        if let Some(existing) = pending {
            // Keep the earliest due time and the highest priority; a paced job keeps its time
            // (it waits on purpose, collecting edits).
            let run_at = if existing.last_error.as_deref() == Some(PACED) {
                existing.run_at
            } else {
                existing.run_at.min(now)
            };
            if existing.priority < priority as i32 || existing.run_at != run_at {
                rows::reschedule_job(
                    txn,
                    existing.id,
                    existing.priority.max(priority as i32),
                    run_at,
                )
                .await?;
            }
            return Ok(false);
        }
    }
    let payload_json =
        serde_json::to_value(payload).map_err(|e| QueueError::Payload(Uuid::nil(), e))?;
    let job = NewJob {
        connection_id: connection_id.uuid(),
        kind: payload.kind(),
        ordering_key,
        priority: priority as i32,
        payload: payload_json,
        state: state::PENDING,
    };
    rows::insert_job(txn, job, now).await?;
    Ok(true)
}

/// Whether a job of `kind` waits (not yet running) under `ordering_key`: it will read the
/// latest state when it runs, so a follow-up write is not needed.
pub async fn is_pending(
    txn: &impl Conn,
    connection_id: ConnectionId,
    ordering_key: &str,
    kind: &str,
) -> Result<bool, QueueError> {
    Ok(
        rows::job_of_key(txn, connection_id, ordering_key, kind, state::PENDING)
            .await?
            .is_some(),
    )
}

/// The outbox in the shared claim statement: per (connection, ordering key) in creation
/// order, only for connections that are active and not paused, highest priority first.
const LANE: Lane = Lane {
    table: "outbox_job",
    pending: state::PENDING,
    running: state::RUNNING,
    run_at: "run_at",
    due_nullable: false,
    locked_until: "locked_until",
    same_key: "o.connection_id = j.connection_id AND o.ordering_key = j.ordering_key",
    earlier: "o.created_at < j.created_at OR (o.created_at = j.created_at AND o.id < j.id)",
    // Active connections whose lease this replica holds (ADR 0014).
    eligible: "j.connection_id IN (SELECT c.id FROM connection c \
               JOIN connection_lease l ON l.connection_id = c.id \
               WHERE c.paused = $4 AND c.state IN ('connected', 'syncing') \
                 AND l.owner = $5 AND l.expires_at > $2)",
    order_by: "j.priority DESC, j.run_at ASC",
    // SQLite's planner would collect every pending job through the OR and sort them; walking
    // the claim-order index stops after `limit` claimable jobs (migration 4).
    sqlite_index: "outbox_job_claim_idx",
    also_set: ", updated_at = $2",
    returning: "id, connection_id, ordering_key, attempts, payload, created_at",
};

/// [`LANE`] for one connection's contact pushes (`$6`), which a batching connector sends
/// together.
const PUSH_LANE: Lane = Lane {
    eligible: "j.connection_id IN (SELECT c.id FROM connection c \
               JOIN connection_lease l ON l.connection_id = c.id \
               WHERE c.paused = $4 AND c.state IN ('connected', 'syncing') \
                 AND l.owner = $5 AND l.expires_at > $2) \
               AND j.connection_id = $6 AND j.kind = 'push_contact'",
    ..LANE
};

/// Claims up to `limit` due contact pushes of one connection, by the rules of [`claim`] (the
/// oldest unfinished job of each contact only, never a contact whose job is running): the
/// pushes a batching connector sends in one call.
pub async fn claim_pushes(
    db: &impl Conn,
    replica: &str,
    connection_id: ConnectionId,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u32,
) -> Result<Vec<Job>, QueueError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let claimed = rows::claim_connection_jobs(
        db,
        &PUSH_LANE,
        now,
        lease_end(now, lease),
        limit,
        replica,
        connection_id,
    )
    .await?;
    claimed.into_iter().map(job_of_row).collect()
}

fn job_of_row(row: rows::ClaimedJob) -> Result<Job, QueueError> {
    let payload =
        serde_json::from_value(row.payload).map_err(|e| QueueError::Payload(row.id, e))?;
    Ok(Job {
        id: row.id,
        connection_id: row.connection_id.into(),
        ordering_key: row.ordering_key,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        payload,
        created_at: row.created_at,
    })
}

/// Claims up to `limit` due jobs for `replica`: the oldest unfinished job of each ordering
/// key, only when no other job of that key holds a live lease, only for connections that are
/// active and whose lease `replica` holds. A job whose lease expired (its worker died) is
/// claimable again.
pub async fn claim(
    db: &impl Conn,
    replica: &str,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u32,
) -> Result<Vec<Job>, QueueError> {
    let claimed = rows::claim_jobs(db, &LANE, now, lease_end(now, lease), limit, replica).await?;
    claimed.into_iter().map(job_of_row).collect()
}

/// The job succeeded: it is removed.
pub async fn complete(db: &impl Conn, job_id: Uuid) -> Result<(), QueueError> {
    rows::delete_job(db, job_id).await?;
    Ok(())
}

/// These jobs succeeded (a batch's): they are removed together.
pub async fn complete_all(db: &impl Conn, job_ids: &[Uuid]) -> Result<(), QueueError> {
    rows::delete_jobs(db, job_ids).await?;
    Ok(())
}

/// The job failed and will run again at `run_at` (or after reconnect, for a paused connection).
pub async fn retry(
    db: &impl Conn,
    job: &Job,
    run_at: DateTime<Utc>,
    error_code: &str,
    status: Option<u16>,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    end_attempt(
        db,
        job,
        state::PENDING,
        Some(run_at),
        error_code,
        status,
        now,
    )
    .await
}

/// Why a job waits that did not fail: its contact's person was written moments ago.
pub const PACED: &str = "paced";

/// The job did not run yet on purpose (pacing): it waits until `run_at` without counting an
/// attempt; pushes enqueued meanwhile coalesce into it and do not move it earlier.
pub async fn defer(
    db: &impl Conn,
    job: &Job,
    run_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    rows::defer_job(db, job.id, state::PENDING, run_at, PACED, now).await?;
    Ok(())
}

/// The job cannot succeed: it becomes a dead letter, kept for the admin to retry or discard.
pub async fn bury(
    db: &impl Conn,
    job: &Job,
    error_code: &str,
    status: Option<u16>,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    end_attempt(db, job, state::DEAD, None, error_code, status, now).await
}

/// Records a failed attempt: the lease is released, the attempt counted, the error kept.
async fn end_attempt(
    db: &impl Conn,
    job: &Job,
    new_state: &str,
    run_at: Option<DateTime<Utc>>,
    error_code: &str,
    status: Option<u16>,
    now: DateTime<Utc>,
) -> Result<(), QueueError> {
    let end = AttemptEnd {
        state: new_state,
        attempts: i32::try_from(job.attempts + 1).unwrap_or(i32::MAX),
        run_at,
        error_code,
        status,
    };
    rows::end_job_attempt(db, job.id, end, now).await?;
    Ok(())
}

/// Dead letters back to pending (one, or all of a connection).
pub async fn revive(
    db: &impl Conn,
    connection_id: ConnectionId,
    job_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<u64, QueueError> {
    Ok(rows::revive_jobs(db, connection_id, job_id, state::DEAD, state::PENDING, now).await?)
}

/// The contact a job is about, if the job exists.
pub async fn contact_of(db: &impl Conn, job_id: Uuid) -> Result<Option<ContactId>, QueueError> {
    let Some(payload) = rows::job_payload(db, job_id).await? else {
        return Ok(None);
    };
    let payload: JobPayload =
        serde_json::from_value(payload).map_err(|e| QueueError::Payload(job_id, e))?;
    Ok(Some(payload.contact_id()))
}

/// Counts of jobs by state for a connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub pending: u64,
    pub running: u64,
    pub dead: u64,
}

pub async fn counts(
    db: &impl Conn,
    connection_id: ConnectionId,
) -> Result<QueueCounts, QueueError> {
    Ok(QueueCounts {
        pending: rows::count_jobs(db, connection_id, state::PENDING).await?,
        running: rows::count_jobs(db, connection_id, state::RUNNING).await?,
        dead: rows::count_jobs(db, connection_id, state::DEAD).await?,
    })
}
