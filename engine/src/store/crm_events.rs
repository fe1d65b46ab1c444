//! The newest CRM change seen per record (`crm_event_version`), for journey triggers: a
//! change older than it arrived late (webhooks are not delivered in order).

use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use tandem_core::ConnectionId;

use super::{Conn, StoreError};

/// Records `version` for the record if it is newer than the stored one (or the first);
/// returns whether it was not older (`false`: the change arrived after a newer one).
pub async fn advance(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
    object_id: &str,
    version: &str,
) -> Result<bool, StoreError> {
    let connection = connection.uuid();
    #[derive(FromQueryResult)]
    struct Row {
        version: String,
    }
    let backend = db.raw().get_database_backend();
    let stored = Row::find_by_statement(Statement::from_sql_and_values(
        backend,
        "SELECT version FROM crm_event_version \
         WHERE connection_id = $1 AND object = $2 AND object_id = $3",
        [connection.into(), object.into(), object_id.into()],
    ))
    .one(db.raw())
    .await?;
    if stored
        .as_ref()
        .is_some_and(|s| s.version.as_str() > version)
    {
        return Ok(false);
    }
    db.raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO crm_event_version (connection_id, object, object_id, version) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, object, object_id) \
             DO UPDATE SET version = excluded.version",
            [
                connection.into(),
                object.into(),
                object_id.into(),
                version.into(),
            ],
        ))
        .await?;
    Ok(true)
}

/// Records that trigger `kind` was announced for the record under `key` (for
/// `activity.overdue`, the due time); returns whether this call recorded it (`false`: it was
/// already announced under this key, by an earlier scan or another replica).
pub async fn announce_once(
    db: &impl Conn,
    connection: ConnectionId,
    kind: &str,
    object_id: &str,
    key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let backend = db.raw().get_database_backend();
    let done = db
        .raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO crm_trigger_announced \
             (connection_id, kind, object_id, announced, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection_id, kind, object_id) \
             DO UPDATE SET announced = excluded.announced, updated_at = excluded.updated_at \
             WHERE crm_trigger_announced.announced <> excluded.announced",
            [
                connection.uuid().into(),
                kind.into(),
                object_id.into(),
                key.into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The key trigger `kind` was last announced under for each of these records.
pub async fn announced(
    db: &impl Conn,
    connection: ConnectionId,
    kind: &str,
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    #[derive(FromQueryResult)]
    struct Row {
        object_id: String,
        announced: String,
    }
    let backend = db.raw().get_database_backend();
    let rows = Row::find_by_statement(Statement::from_sql_and_values(
        backend,
        "SELECT object_id, announced FROM crm_trigger_announced \
         WHERE connection_id = $1 AND kind = $2",
        [connection.uuid().into(), kind.into()],
    ))
    .all(db.raw())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.object_id, r.announced))
        .collect())
}
