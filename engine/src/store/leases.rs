//! Replicas and connection leases (`replica`, `connection_lease`; ADR 0014): which tandem
//! process is alive, and which one owns each connection's outbound work. Every statement is
//! one atomic row operation, so two replicas racing for a lease cannot both win it.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use tandem_core::ConnectionId;
use uuid::Uuid;

use super::{Conn, StoreError};

fn statement(db: &impl Conn, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(db.raw().get_database_backend(), sql, values)
}

/// Records that `replica` (on `host`) is alive at `now`.
pub async fn heartbeat(
    db: &impl Conn,
    replica: &str,
    host: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = "INSERT INTO replica (id, host, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
               ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";
    db.raw()
        .execute(statement(
            db,
            sql,
            vec![replica.into(), host.into(), now.into()],
        ))
        .await?;
    Ok(())
}

/// Forgets a replica (a clean stop) and every replica silent since before `stale_before`.
pub async fn forget_replicas(
    db: &impl Conn,
    replica: &str,
    stale_before: DateTime<Utc>,
) -> Result<(), StoreError> {
    let sql = "DELETE FROM replica WHERE id = $1 OR heartbeat_at < $2";
    db.raw()
        .execute(statement(
            db,
            sql,
            vec![replica.into(), stale_before.into()],
        ))
        .await?;
    Ok(())
}

/// A replica that has sent a heartbeat.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct ReplicaRow {
    pub id: String,
    pub host: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

/// The replicas heard from since `since`, by id.
pub async fn live_replicas(
    db: &impl Conn,
    since: DateTime<Utc>,
) -> Result<Vec<ReplicaRow>, StoreError> {
    let sql = "SELECT id, host, started_at, heartbeat_at FROM replica \
               WHERE heartbeat_at >= $1 ORDER BY id";
    Ok(
        ReplicaRow::find_by_statement(statement(db, sql, vec![since.into()]))
            .all(db.raw())
            .await?,
    )
}

/// Extends every lease `owner` still holds at `now` to `until`; returns the connections it
/// holds. A lease that ran out is not renewed: someone else may have it already.
pub async fn renew(
    db: &impl Conn,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ConnectionId>, StoreError> {
    let sql = "UPDATE connection_lease SET expires_at = $1 WHERE owner = $2 AND expires_at > $3";
    db.raw()
        .execute(statement(
            db,
            sql,
            vec![until.into(), owner.into(), now.into()],
        ))
        .await?;
    owned(db, owner, now).await
}

/// The connections whose lease `owner` holds at `now`, oldest lease first.
pub async fn owned(
    db: &impl Conn,
    owner: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ConnectionId>, StoreError> {
    #[derive(FromQueryResult)]
    struct Row {
        connection_id: Uuid,
    }
    let sql = "SELECT connection_id FROM connection_lease WHERE owner = $1 AND expires_at > $2 \
               ORDER BY acquired_at, connection_id";
    Ok(
        Row::find_by_statement(statement(db, sql, vec![owner.into(), now.into()]))
            .all(db.raw())
            .await?
            .into_iter()
            .map(|r| ConnectionId::from(r.connection_id))
            .collect(),
    )
}

/// Takes the lease of `connection` for `owner` until `until`, when nobody holds it or its
/// holder's ran out at `now`; returns whether `owner` holds it now.
pub async fn try_acquire(
    db: &impl Conn,
    connection: ConnectionId,
    owner: &str,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let connection = connection.uuid();
    let sql = "INSERT INTO connection_lease (connection_id, owner, acquired_at, expires_at) \
               VALUES ($1, $2, $3, $4) \
               ON CONFLICT (connection_id) DO UPDATE \
               SET owner = excluded.owner, acquired_at = excluded.acquired_at, \
                   expires_at = excluded.expires_at \
               WHERE connection_lease.expires_at <= $3 OR connection_lease.owner = excluded.owner";
    let result = db
        .raw()
        .execute(statement(
            db,
            sql,
            vec![connection.into(), owner.into(), now.into(), until.into()],
        ))
        .await;
    match result {
        Ok(done) => Ok(done.rows_affected() == 1),
        // The connection was deleted meanwhile (the foreign key): nothing to own.
        Err(error) => match StoreError::from(error) {
            StoreError::ForeignKey(_) => Ok(false),
            error => Err(error),
        },
    }
}

/// Gives up `owner`'s leases of `connections` at once (a handover: another replica may take
/// them on its next round).
pub async fn release(
    db: &impl Conn,
    owner: &str,
    connections: &[ConnectionId],
) -> Result<(), StoreError> {
    for connection in connections {
        let sql = "DELETE FROM connection_lease WHERE connection_id = $1 AND owner = $2";
        db.raw()
            .execute(statement(
                db,
                sql,
                vec![connection.uuid().into(), owner.into()],
            ))
            .await?;
    }
    Ok(())
}

/// Gives up every lease of `owner` (a clean stop).
pub async fn release_all(db: &impl Conn, owner: &str) -> Result<(), StoreError> {
    let sql = "DELETE FROM connection_lease WHERE owner = $1";
    db.raw()
        .execute(statement(db, sql, vec![owner.into()]))
        .await?;
    Ok(())
}

/// A connection's lease, as the console shows it.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct LeaseRow {
    pub connection_id: Uuid,
    pub owner: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Every lease (live or run out).
pub async fn list(db: &impl Conn) -> Result<Vec<LeaseRow>, StoreError> {
    let sql = "SELECT connection_id, owner, acquired_at, expires_at FROM connection_lease \
               ORDER BY connection_id";
    Ok(LeaseRow::find_by_statement(statement(db, sql, vec![]))
        .all(db.raw())
        .await?)
}
