//! Counts for the admin console, the demo, benchmarks and tests.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use super::entities::{contact, inbox_event, person_link};

pub async fn count_contacts<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    contact::Entity::find().count(db).await
}

pub async fn count_links<C: ConnectionTrait>(db: &C, connection: Uuid) -> Result<u64, DbErr> {
    person_link::Entity::find()
        .filter(person_link::Column::ConnectionId.eq(connection))
        .count(db)
        .await
}

/// Inbox events by state (`pending`, `applied`, `failed`, `rejected`); `None` counts all.
pub async fn count_inbox_events<C: ConnectionTrait>(
    db: &C,
    state: Option<&str>,
) -> Result<u64, DbErr> {
    let mut query = inbox_event::Entity::find();
    if let Some(state) = state {
        query = query.filter(inbox_event::Column::State.eq(state));
    }
    query.count(db).await
}
