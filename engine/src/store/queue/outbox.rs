//! The SQL of the outbox (`outbox_job`); its policy (coalescing, pacing, states) is
//! `crate::queue`'s.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, Set,
};
use tandem_core::ConnectionId;
use uuid::Uuid;

use super::claim::{self, Lane};
use crate::store::entities::outbox_job;
use crate::store::{Conn, StoreError};

/// A job claimed by [`claim_jobs`], its payload not yet read.
#[derive(Debug, FromQueryResult)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub ordering_key: String,
    pub attempts: i32,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` jobs of `lane` until `lease_end` for `replica` (`store::queue::claim`).
pub async fn claim_jobs(
    db: &impl Conn,
    lane: &Lane,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u32,
    replica: &str,
) -> Result<Vec<ClaimedJob>, StoreError> {
    claim::claim(db, lane, now, lease_end, limit, Some(replica)).await
}

/// As [`claim_jobs`], only jobs of one connection (`lane` names it as `$6`).
pub async fn claim_connection_jobs(
    db: &impl Conn,
    lane: &Lane,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u32,
    replica: &str,
    connection_id: ConnectionId,
) -> Result<Vec<ClaimedJob>, StoreError> {
    claim::claim_of(
        db,
        lane,
        now,
        lease_end,
        limit,
        Some(replica),
        Some(connection_id.uuid()),
    )
    .await
}

/// A job waiting to run, as coalescing needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingJob {
    pub id: Uuid,
    pub priority: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// The connection's job of `kind` and `ordering_key` in `state`, if any.
pub async fn job_of_key(
    db: &impl Conn,
    connection_id: ConnectionId,
    ordering_key: &str,
    kind: &str,
    state: &str,
) -> Result<Option<WaitingJob>, StoreError> {
    let connection_id = connection_id.uuid();
    Ok(outbox_job::Entity::find()
        .filter(outbox_job::Column::ConnectionId.eq(connection_id))
        .filter(outbox_job::Column::OrderingKey.eq(ordering_key))
        .filter(outbox_job::Column::Kind.eq(kind))
        .filter(outbox_job::Column::State.eq(state))
        .one(db.raw())
        .await?
        .map(|row| WaitingJob {
            id: row.id,
            priority: row.priority,
            run_at: row.run_at,
            last_error: row.last_error,
        }))
}

/// Sets a job's priority and due time.
pub async fn reschedule_job(
    db: &impl Conn,
    id: Uuid,
    priority: i32,
    run_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox_job::Entity::update_many()
        .col_expr(outbox_job::Column::Priority, Expr::value(priority))
        .col_expr(outbox_job::Column::RunAt, Expr::value(run_at))
        .filter(outbox_job::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// A job to insert, due at `now`.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub connection_id: Uuid,
    pub kind: &'a str,
    pub ordering_key: &'a str,
    pub priority: i32,
    pub payload: serde_json::Value,
    pub state: &'a str,
}

pub async fn insert_job(
    db: &impl Conn,
    job: NewJob<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox_job::ActiveModel {
        id: Set(Uuid::now_v7()),
        connection_id: Set(job.connection_id),
        kind: Set(job.kind.to_owned()),
        ordering_key: Set(job.ordering_key.to_owned()),
        priority: Set(job.priority),
        payload: Set(job.payload),
        state: Set(job.state.to_owned()),
        attempts: Set(0),
        run_at: Set(now),
        locked_until: Set(None),
        last_error: Set(None),
        last_status: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db.raw())
    .await?;
    Ok(())
}

/// Puts a job back in `state` until `run_at`, its lease released, without counting an attempt.
pub async fn defer_job(
    db: &impl Conn,
    id: Uuid,
    state: &str,
    run_at: DateTime<Utc>,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    outbox_job::Entity::update_many()
        .col_expr(outbox_job::Column::State, Expr::value(state))
        .col_expr(
            outbox_job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(outbox_job::Column::RunAt, Expr::value(run_at))
        .col_expr(outbox_job::Column::LastError, Expr::value(reason))
        .col_expr(outbox_job::Column::UpdatedAt, Expr::value(now))
        .filter(outbox_job::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// How a failed attempt ends, for [`end_job_attempt`].
#[derive(Debug, Clone, Copy)]
pub struct AttemptEnd<'a> {
    pub state: &'a str,
    /// Attempts counting this one.
    pub attempts: i32,
    /// When it runs again (unchanged when `None`).
    pub run_at: Option<DateTime<Utc>>,
    pub error_code: &'a str,
    pub status: Option<u16>,
}

/// Records a failed attempt: the lease is released, the attempt counted, the error kept.
pub async fn end_job_attempt(
    db: &impl Conn,
    id: Uuid,
    end: AttemptEnd<'_>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut update = outbox_job::Entity::update_many()
        .col_expr(outbox_job::Column::State, Expr::value(end.state))
        .col_expr(outbox_job::Column::Attempts, Expr::value(end.attempts))
        .col_expr(
            outbox_job::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(outbox_job::Column::LastError, Expr::value(end.error_code))
        .col_expr(
            outbox_job::Column::LastStatus,
            Expr::value(end.status.map(i32::from)),
        )
        .col_expr(outbox_job::Column::UpdatedAt, Expr::value(now));
    if let Some(run_at) = end.run_at {
        update = update.col_expr(outbox_job::Column::RunAt, Expr::value(run_at));
    }
    update
        .filter(outbox_job::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// The connection's jobs in `from` (one, or all) back to `to`, due now, attempts reset.
pub async fn revive_jobs(
    db: &impl Conn,
    connection_id: ConnectionId,
    job_id: Option<Uuid>,
    from: &str,
    to: &str,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let connection_id = connection_id.uuid();
    let mut update = outbox_job::Entity::update_many()
        .col_expr(outbox_job::Column::State, Expr::value(to))
        .col_expr(outbox_job::Column::Attempts, Expr::value(0))
        .col_expr(outbox_job::Column::RunAt, Expr::value(now))
        .col_expr(outbox_job::Column::UpdatedAt, Expr::value(now))
        .filter(outbox_job::Column::ConnectionId.eq(connection_id))
        .filter(outbox_job::Column::State.eq(from));
    if let Some(id) = job_id {
        update = update.filter(outbox_job::Column::Id.eq(id));
    }
    Ok(update.exec(db.raw()).await?.rows_affected)
}

/// A job's stored payload, if the job exists.
pub async fn job_payload(
    db: &impl Conn,
    id: Uuid,
) -> Result<Option<serde_json::Value>, StoreError> {
    Ok(outbox_job::Entity::find_by_id(id)
        .one(db.raw())
        .await?
        .map(|row| row.payload))
}

/// How many of the connection's jobs are in `state`.
pub async fn count_jobs(
    db: &impl Conn,
    connection_id: ConnectionId,
    state: &str,
) -> Result<u64, StoreError> {
    let connection_id = connection_id.uuid();
    Ok(outbox_job::Entity::find()
        .filter(outbox_job::Column::ConnectionId.eq(connection_id))
        .filter(outbox_job::Column::State.eq(state))
        .count(db.raw())
        .await?)
}
