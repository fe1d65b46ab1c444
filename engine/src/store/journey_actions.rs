//! Journey actions (`journey_action`): each request the app made, with its idempotency key,
//! its validated parameters and its outcome.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;
use tandem_core::TenantId;
use uuid::Uuid;

use super::entities::journey_action;
use super::{Conn, StoreError};

/// An action's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionRow {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub contact_id: Uuid,
    pub action: String,
    pub params: Value,
    pub idempotency_key: String,
    /// The app's account that asked: its key, its connection, its contact.
    pub tenant: TenantId,
    pub request_hash: String,
    pub state: String,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// The CRM's HTTP status of a failed call.
    pub status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<journey_action::Model> for ActionRow {
    type Error = StoreError;
    fn try_from(m: journey_action::Model) -> Result<Self, StoreError> {
        Ok(Self {
            tenant: super::parse_tenant(&m.tenant)?,
            id: m.id,
            connection_id: m.connection_id,
            contact_id: m.contact_id,
            action: m.action,
            params: m.params,
            idempotency_key: m.idempotency_key,
            request_hash: m.request_hash,
            state: m.state,
            result: m.result,
            error: m.error,
            status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

/// The action `tenant` recorded under `key`, if any.
pub async fn by_idempotency_key(
    db: &impl Conn,
    tenant: &TenantId,
    key: &str,
) -> Result<Option<ActionRow>, StoreError> {
    journey_action::Entity::find()
        .filter(journey_action::Column::Tenant.eq(tenant.as_str()))
        .filter(journey_action::Column::IdempotencyKey.eq(key))
        .one(db.raw())
        .await?
        .map(ActionRow::try_from)
        .transpose()
}

/// One action.
pub async fn get(db: &impl Conn, id: Uuid) -> Result<Option<ActionRow>, StoreError> {
    journey_action::Entity::find_by_id(id)
        .one(db.raw())
        .await?
        .map(ActionRow::try_from)
        .transpose()
}

/// Records a new action; a key already used is a
/// [`Constraint::JourneyActionIdempotencyKey`](super::Constraint) conflict.
pub async fn insert(db: &impl Conn, row: ActionRow) -> Result<(), StoreError> {
    journey_action::Entity::insert(journey_action::ActiveModel {
        id: Set(row.id),
        connection_id: Set(row.connection_id),
        contact_id: Set(row.contact_id),
        action: Set(row.action),
        params: Set(row.params),
        idempotency_key: Set(row.idempotency_key),
        tenant: Set(row.tenant.as_str().to_owned()),
        request_hash: Set(row.request_hash),
        state: Set(row.state),
        result: Set(row.result),
        error: Set(row.error),
        status: Set(row.status),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    })
    .exec_without_returning(db.raw())
    .await?;
    Ok(())
}

/// How an action ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome<'a> {
    pub state: &'a str,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub status: Option<i32>,
}

/// Stores an action's outcome and returns the updated row (`None`: no such action).
pub async fn finish(
    db: &impl Conn,
    id: Uuid,
    outcome: Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<Option<ActionRow>, StoreError> {
    journey_action::Entity::update_many()
        .col_expr(journey_action::Column::State, Expr::value(outcome.state))
        .col_expr(journey_action::Column::Result, Expr::value(outcome.result))
        .col_expr(journey_action::Column::Error, Expr::value(outcome.error))
        .col_expr(journey_action::Column::Status, Expr::value(outcome.status))
        .col_expr(journey_action::Column::UpdatedAt, Expr::value(now))
        .filter(journey_action::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    get(db, id).await
}
