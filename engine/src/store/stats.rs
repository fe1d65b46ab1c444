//! Counts for the admin console, the demo, benchmarks and tests.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use tandem_core::ConnectionId;

use super::entities::{contact, inbox_event, person_link, sync_log};
use super::{Conn, StoreError};

pub async fn count_contacts(db: &impl Conn) -> Result<u64, StoreError> {
    Ok(contact::Entity::find().count(db.raw()).await?)
}

pub async fn count_links(db: &impl Conn, connection: ConnectionId) -> Result<u64, StoreError> {
    let connection = connection.uuid();
    Ok(person_link::Entity::find()
        .filter(person_link::Column::ConnectionId.eq(connection))
        .count(db.raw())
        .await?)
}

/// Inbox events by state (`pending`, `applied`, `failed`, `rejected`); `None` counts all.
pub async fn count_inbox_events(db: &impl Conn, state: Option<&str>) -> Result<u64, StoreError> {
    let mut query = inbox_event::Entity::find();
    if let Some(state) = state {
        query = query.filter(inbox_event::Column::State.eq(state));
    }
    Ok(query.count(db.raw()).await?)
}

/// Sync-log entries of one kind (`conflict_resolved`, ...).
pub async fn count_sync_log_kind(db: &impl Conn, kind: &str) -> Result<u64, StoreError> {
    Ok(sync_log::Entity::find()
        .filter(sync_log::Column::Kind.eq(kind))
        .count(db.raw())
        .await?)
}
