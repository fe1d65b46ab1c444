//! The work queue's rows: `outbox_job`, `inbox_event`, `outbound_delivery` (ADR 3). The
//! queue's semantics (claims, leases, retries) are `crate::queue`'s; this is their SQL.

use std::collections::HashSet;
use tandem_core::ConnectionId;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement,
};
use uuid::Uuid;

use super::entities::{inbox_event, outbound_delivery, outbox_job};
use super::{Conn, StoreError};

mod claim;
mod delivery;
mod inbox;
mod outbox;

pub use claim::Lane;
pub use delivery::*;
pub use inbox::*;
pub use outbox::*;

/// Deletes inbox events in one of `states` received before `cutoff`; returns how many.
pub async fn prune_inbox_events(
    db: &impl Conn,
    states: &[&str],
    cutoff: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(inbox_event::Entity::delete_many()
        .filter(inbox_event::Column::State.is_in(states.iter().copied()))
        .filter(inbox_event::Column::ReceivedAt.lt(cutoff))
        .exec(db.raw())
        .await?
        .rows_affected)
}

/// Deletes app deliveries in one of `states` last updated before `cutoff`; returns how many.
pub async fn prune_deliveries(
    db: &impl Conn,
    states: &[&str],
    cutoff: DateTime<Utc>,
) -> Result<u64, StoreError> {
    Ok(outbound_delivery::Entity::delete_many()
        .filter(outbound_delivery::Column::State.is_in(states.iter().copied()))
        .filter(outbound_delivery::Column::UpdatedAt.lt(cutoff))
        .exec(db.raw())
        .await?
        .rows_affected)
}

/// An event to store in `inbox_event`.
#[derive(Debug, Clone)]
pub struct NewInboxEvent {
    pub connection_id: Option<Uuid>,
    pub source: String,
    pub delivery_id: String,
    pub object: String,
    pub action: String,
    pub object_id: Option<String>,
    pub payload: String,
}

/// The columns [`insert_inbox_events`] writes, in its statement's order.
const INBOX_INSERT_COLUMNS: [&str; 11] = [
    "id",
    "connection_id",
    "source",
    "delivery_id",
    "object",
    "action",
    "object_id",
    "payload",
    "state",
    "attempts",
    "received_at",
];

/// The most events [`insert_inbox_events`] writes in one statement (2,816 parameters, well
/// under both databases' limits); more are written in several statements.
const INBOX_INSERT_MAX_ROWS: usize = 256;

/// The text of the multi-row insert of `rows` inbox events, made once per backend and row
/// count. The ingest path writes one of these per group commit: building it with the query
/// builder each time cost more than SQLite's whole insert, and the same text for the same
/// row count is what lets the driver reuse its prepared statement.
fn inbox_insert_sql(backend: sea_orm::DatabaseBackend, rows: usize) -> &'static str {
    use std::sync::OnceLock;
    static SQLITE: [OnceLock<String>; INBOX_INSERT_MAX_ROWS] =
        [const { OnceLock::new() }; INBOX_INSERT_MAX_ROWS];
    static POSTGRES: [OnceLock<String>; INBOX_INSERT_MAX_ROWS] =
        [const { OnceLock::new() }; INBOX_INSERT_MAX_ROWS];
    let postgres = backend == sea_orm::DatabaseBackend::Postgres;
    let cache = if postgres { &POSTGRES } else { &SQLITE };
    cache[rows - 1].get_or_init(|| {
        let columns: Vec<String> = INBOX_INSERT_COLUMNS
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect();
        let mut sql = format!(
            "INSERT INTO \"inbox_event\" ({}) VALUES ",
            columns.join(", ")
        );
        let mut n = 0;
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..INBOX_INSERT_COLUMNS.len() {
                n += 1;
                if column > 0 {
                    sql.push_str(", ");
                }
                if postgres {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                } else {
                    sql.push('?');
                }
            }
            sql.push(')');
        }
        sql.push_str(" ON CONFLICT (\"source\", \"delivery_id\") DO NOTHING");
        sql
    })
}

/// Stores `events` in state `state` (their values are moved into the statement) with
/// multi-row `INSERT … ON CONFLICT DO NOTHING`s, and says, for each, whether its row was
/// inserted: `false` for a delivery already stored, or repeated earlier in the batch (the
/// `inbox_event_source_delivery_key` constraint). Each row gets its id here; when fewer rows
/// than events were inserted, the ids that made it are read back.
pub async fn insert_inbox_events<'a>(
    db: &impl Conn,
    events: impl Iterator<Item = &'a mut NewInboxEvent>,
    state: &str,
    now: DateTime<Utc>,
) -> Result<Vec<bool>, StoreError> {
    use inbox_event::Column as C;
    use sea_orm::Value;
    let db = db.raw();
    let backend = db.get_database_backend();
    let mut ids = Vec::new();
    // Every statement's values first: the events are not held across an await.
    let mut statements: Vec<(usize, Vec<Value>)> = Vec::new();
    for event in events {
        if statements
            .last()
            .is_none_or(|(rows, _)| *rows == INBOX_INSERT_MAX_ROWS)
        {
            statements.push((0, Vec::with_capacity(INBOX_INSERT_COLUMNS.len() * 16)));
        }
        let Some((rows, values)) = statements.last_mut() else {
            break;
        };
        let id = Uuid::now_v7();
        ids.push(id);
        *rows += 1;
        values.extend([
            Value::from(id),
            Value::from(event.connection_id),
            Value::from(std::mem::take(&mut event.source)),
            Value::from(std::mem::take(&mut event.delivery_id)),
            Value::from(std::mem::take(&mut event.object)),
            Value::from(std::mem::take(&mut event.action)),
            Value::from(event.object_id.take()),
            Value::from(std::mem::take(&mut event.payload)),
            Value::from(state),
            Value::from(0i32),
            Value::from(now),
        ]);
    }
    let mut inserted = 0u64;
    for (rows, values) in statements {
        inserted += db
            .execute(Statement::from_sql_and_values(
                backend,
                inbox_insert_sql(backend, rows),
                values,
            ))
            .await?
            .rows_affected();
    }
    if usize::try_from(inserted).is_ok_and(|n| n == ids.len()) {
        return Ok(vec![true; ids.len()]);
    }
    let (sql, values) = build(
        backend,
        Query::select()
            .column(C::Id)
            .from(inbox_event::Entity)
            .and_where(Expr::col(C::Id).is_in(ids.iter().copied())),
    );
    let stored: HashSet<Uuid> = db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .into_iter()
        .map(|row| row.try_get::<Uuid>("", "id"))
        .collect::<Result<_, _>>()?;
    Ok(ids.iter().map(|id| stored.contains(id)).collect())
}

/// Keeps a rejected delivery for inspection (in state `state`, never applied). The body is
/// stored as received, but for NUL characters, which Postgres refuses in `text`.
#[allow(clippy::too_many_arguments)]
pub async fn insert_rejected_inbox_event(
    db: &impl Conn,
    connection_id: Option<ConnectionId>,
    source: &str,
    object_id: Option<String>,
    payload: &str,
    reason: &str,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection_id = connection_id.map(ConnectionId::uuid);
    inbox_event::Entity::insert(inbox_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        connection_id: Set(connection_id),
        source: Set(source.to_owned()),
        delivery_id: Set(format!("rejected:{}", Uuid::now_v7())),
        object: Set(String::new()),
        action: Set(String::new()),
        object_id: Set(object_id),
        payload: Set(payload.replace('\0', "\u{FFFD}")),
        state: Set(state.to_owned()),
        attempts: Set(0),
        last_error: Set(Some(reason.to_owned())),
        received_at: Set(now),
        processed_at: Set(Some(now)),
    })
    .exec_without_returning(db.raw())
    .await?;
    Ok(())
}

fn build<Q: sea_orm::sea_query::QueryStatementWriter>(
    backend: sea_orm::DatabaseBackend,
    query: &Q,
) -> (String, sea_orm::sea_query::Values) {
    match backend {
        sea_orm::DatabaseBackend::Postgres => query.build(sea_orm::sea_query::PostgresQueryBuilder),
        _ => query.build(sea_orm::sea_query::SqliteQueryBuilder),
    }
}

/// Deletes the connection's jobs with `ordering_key` that are not in state `spare_state`
/// (running jobs are left to finish).
pub async fn delete_jobs_of_key(
    db: &impl Conn,
    connection: ConnectionId,
    ordering_key: &str,
    spare_state: &str,
) -> Result<u64, StoreError> {
    let connection = connection.uuid();
    Ok(outbox_job::Entity::delete_many()
        .filter(outbox_job::Column::ConnectionId.eq(connection))
        .filter(outbox_job::Column::OrderingKey.eq(ordering_key))
        .filter(outbox_job::Column::State.ne(spare_state))
        .exec(db.raw())
        .await?
        .rows_affected)
}

/// An outbox job's row, as the admin sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<outbox_job::Model> for JobRow {
    fn from(row: outbox_job::Model) -> Self {
        Self {
            id: row.id,
            connection_id: row.connection_id,
            kind: row.kind,
            payload: row.payload,
            state: row.state,
            attempts: row.attempts,
            last_error: row.last_error,
            last_status: row.last_status,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The connection's jobs in one of `states` that have been tried at least once.
pub async fn count_tried_jobs(
    db: &impl Conn,
    connection: ConnectionId,
    states: &[&str],
) -> Result<u64, StoreError> {
    let connection = connection.uuid();
    Ok(outbox_job::Entity::find()
        .filter(outbox_job::Column::ConnectionId.eq(connection))
        .filter(outbox_job::Column::State.is_in(states.iter().copied()))
        .filter(outbox_job::Column::Attempts.gt(0))
        .count(db.raw())
        .await?)
}

/// The connection's jobs in `state`, last updated first.
pub async fn jobs_in_state(
    db: &impl Conn,
    connection: ConnectionId,
    state: &str,
) -> Result<Vec<JobRow>, StoreError> {
    let connection = connection.uuid();
    Ok(outbox_job::Entity::find()
        .filter(outbox_job::Column::ConnectionId.eq(connection))
        .filter(outbox_job::Column::State.eq(state))
        .order_by_desc(outbox_job::Column::UpdatedAt)
        .all(db.raw())
        .await?
        .into_iter()
        .map(JobRow::from)
        .collect())
}

/// One job of the connection, if it is in `state`.
pub async fn job_in_state(
    db: &impl Conn,
    id: Uuid,
    connection: ConnectionId,
    state: &str,
) -> Result<Option<JobRow>, StoreError> {
    let connection = connection.uuid();
    Ok(outbox_job::Entity::find_by_id(id)
        .filter(outbox_job::Column::ConnectionId.eq(connection))
        .filter(outbox_job::Column::State.eq(state))
        .one(db.raw())
        .await?
        .map(JobRow::from))
}

/// Deletes one job.
/// Deletes these jobs (a batch's finished ones) in one statement.
pub async fn delete_jobs(db: &impl Conn, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    outbox_job::Entity::delete_many()
        .filter(outbox_job::Column::Id.is_in(ids.iter().copied()))
        .exec(db.raw())
        .await?;
    Ok(())
}

pub async fn delete_job(db: &impl Conn, id: Uuid) -> Result<(), StoreError> {
    outbox_job::Entity::delete_by_id(id).exec(db.raw()).await?;
    Ok(())
}

/// Which of `ordering_keys` have a job of the connection (in any state).
pub async fn keys_with_jobs(
    db: &impl Conn,
    connection: ConnectionId,
    ordering_keys: &[String],
) -> Result<HashSet<String>, StoreError> {
    let connection = connection.uuid();
    let mut found = HashSet::new();
    for chunk in ordering_keys.chunks(super::MAX_BIND_PARAMS - 1) {
        found.extend(
            outbox_job::Entity::find()
                .select_only()
                .column(outbox_job::Column::OrderingKey)
                .filter(outbox_job::Column::ConnectionId.eq(connection))
                .filter(outbox_job::Column::OrderingKey.is_in(chunk.iter().cloned()))
                .into_tuple::<String>()
                .all(db.raw())
                .await?,
        );
    }
    Ok(found)
}

/// When the earliest pending or running job of one of `connections` is due: a pending job's
/// `run_at`, a running job's lease end.
pub async fn next_job_due(
    db: &impl Conn,
    connections: &[ConnectionId],
    pending: &str,
    running: &str,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let connections: Vec<Uuid> = connections.iter().map(|id| id.uuid()).collect();
    Ok(outbox_job::Entity::find()
        .filter(outbox_job::Column::State.is_in([pending, running]))
        .filter(outbox_job::Column::ConnectionId.is_in(connections.iter().copied()))
        .order_by_asc(outbox_job::Column::RunAt)
        .one(db.raw())
        .await?
        .map(|job| {
            job.locked_until
                .filter(|_| job.state == running)
                .unwrap_or(job.run_at)
        }))
}
