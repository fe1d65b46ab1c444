//! Cursors and markers kept per connection (`sync_cursor`): the poller's `updated_since`, the
//! initial sync's page and progress, "initial sync done".

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{EntityTrait, Set};
use tandem_core::ConnectionId;

use super::entities::sync_cursor;
use super::{Conn, StoreError};

/// The value stored under `name` for the connection, if any.
pub async fn get(
    db: &impl Conn,
    connection: ConnectionId,
    name: &str,
) -> Result<Option<String>, StoreError> {
    let connection = connection.uuid();
    Ok(
        sync_cursor::Entity::find_by_id((connection, name.to_owned()))
            .one(db.raw())
            .await?
            .map(|c| c.value),
    )
}

/// Stores `value` under `name` for the connection (replacing what was there).
pub async fn set(
    db: &impl Conn,
    connection: ConnectionId,
    name: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection = connection.uuid();
    sync_cursor::Entity::insert(sync_cursor::ActiveModel {
        connection_id: Set(connection),
        name: Set(name.to_owned()),
        value: Set(value.to_owned()),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([sync_cursor::Column::ConnectionId, sync_cursor::Column::Name])
            .update_columns([sync_cursor::Column::Value, sync_cursor::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(db.raw())
    .await?;
    Ok(())
}

/// Forgets what is stored under `name` for the connection.
pub async fn clear(db: &impl Conn, connection: ConnectionId, name: &str) -> Result<(), StoreError> {
    let connection = connection.uuid();
    sync_cursor::Entity::delete_by_id((connection, name.to_owned()))
        .exec(db.raw())
        .await?;
    Ok(())
}
