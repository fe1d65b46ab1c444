//! Duplicate groups (`duplicate_group`) with their remembered state, and the contacts' e-mails
//! the report groups by.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use tandem_core::ConnectionId;
use uuid::Uuid;

use super::entities::{contact, duplicate_group};
use super::{Conn, StoreError};

/// A stored group: its members as the JSON the report wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    pub id: Uuid,
    pub kind: String,
    pub key: String,
    pub state: String,
    pub members: Value,
}

impl From<duplicate_group::Model> for GroupRow {
    fn from(row: duplicate_group::Model) -> Self {
        Self {
            id: row.id,
            kind: row.kind,
            key: row.group_key,
            state: row.state,
            members: row.members,
        }
    }
}

/// `(e-mail, contact)` of every live contact of `tenant` with an e-mail, by e-mail.
pub async fn live_contact_emails(
    db: &impl Conn,
    tenant: &tandem_core::TenantId,
) -> Result<Vec<(String, Uuid)>, StoreError> {
    Ok(contact::Entity::find()
        .filter(contact::Column::Tenant.eq(tenant.as_str()))
        .filter(contact::Column::ArchivedAt.is_null())
        .filter(contact::Column::Email.is_not_null())
        .order_by_asc(contact::Column::Email)
        .all(db.raw())
        .await?
        .into_iter()
        .filter_map(|row| Some((row.email?, row.id)))
        .collect())
}

/// Inserts the group `(connection, kind, key)` in state `open_state`, or updates its members;
/// returns the stored group.
pub async fn upsert(
    db: &impl Conn,
    connection: ConnectionId,
    kind: &str,
    key: &str,
    members: Value,
    open_state: &str,
    now: DateTime<Utc>,
) -> Result<GroupRow, StoreError> {
    let connection = connection.uuid();
    duplicate_group::Entity::insert(duplicate_group::ActiveModel {
        id: Set(Uuid::now_v7()),
        connection_id: Set(Some(connection)),
        kind: Set(kind.to_owned()),
        group_key: Set(key.to_owned()),
        state: Set(open_state.to_owned()),
        members: Set(members),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([
            duplicate_group::Column::ConnectionId,
            duplicate_group::Column::Kind,
            duplicate_group::Column::GroupKey,
        ])
        .update_columns([
            duplicate_group::Column::Members,
            duplicate_group::Column::UpdatedAt,
        ])
        .to_owned(),
    )
    .exec_without_returning(db.raw())
    .await?;
    duplicate_group::Entity::find()
        .filter(duplicate_group::Column::ConnectionId.eq(connection))
        .filter(duplicate_group::Column::Kind.eq(kind))
        .filter(duplicate_group::Column::GroupKey.eq(key))
        .one(db.raw())
        .await?
        .map(GroupRow::from)
        .ok_or_else(|| StoreError::Corrupt("duplicate group vanished".into()))
}

/// Moves the connection's groups of `kinds` in state `from` whose key is not in `keep` to
/// state `to`.
pub async fn set_state_except(
    db: &impl Conn,
    connection: ConnectionId,
    kinds: &[&str],
    from: &str,
    to: &str,
    keep: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection = connection.uuid();
    duplicate_group::Entity::update_many()
        .col_expr(duplicate_group::Column::State, Expr::value(to))
        .col_expr(duplicate_group::Column::UpdatedAt, Expr::value(now))
        .filter(duplicate_group::Column::ConnectionId.eq(connection))
        .filter(duplicate_group::Column::Kind.is_in(kinds.iter().copied()))
        .filter(duplicate_group::Column::State.eq(from))
        .filter(duplicate_group::Column::GroupKey.is_not_in(keep))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// The connection's groups of `kinds`, in `state` if given.
pub async fn list(
    db: &impl Conn,
    connection: ConnectionId,
    kinds: &[&str],
    state: Option<&str>,
) -> Result<Vec<GroupRow>, StoreError> {
    let connection = connection.uuid();
    let mut query = duplicate_group::Entity::find()
        .filter(duplicate_group::Column::ConnectionId.eq(connection))
        .filter(duplicate_group::Column::Kind.is_in(kinds.iter().copied()));
    if let Some(state) = state {
        query = query.filter(duplicate_group::Column::State.eq(state));
    }
    Ok(query
        .all(db.raw())
        .await?
        .into_iter()
        .map(GroupRow::from)
        .collect())
}

/// Sets a group's state; returns whether the group exists.
pub async fn set_state(
    db: &impl Conn,
    group: Uuid,
    state: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let result = duplicate_group::Entity::update_many()
        .col_expr(duplicate_group::Column::State, Expr::value(state))
        .col_expr(duplicate_group::Column::UpdatedAt, Expr::value(now))
        .filter(duplicate_group::Column::Id.eq(group))
        .exec(db.raw())
        .await?;
    Ok(result.rows_affected > 0)
}
