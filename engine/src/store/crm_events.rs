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
