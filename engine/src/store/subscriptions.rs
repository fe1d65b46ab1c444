//! The app's webhook subscriptions (`webhook_subscription`) and what was sent to them
//! (`outbound_delivery`: enqueued here; claimed and ended through `store::queue`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde_json::Value;
use tandem_core::{ContactId, TenantId};
use uuid::Uuid;

use super::entities::{outbound_delivery, webhook_subscription};
use super::{Conn, StoreError};

/// A subscription's row.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: Uuid,
    /// The app's account that subscribed: it hears only its own contacts and connections.
    pub tenant: TenantId,
    pub url: String,
    /// The `whsec_` secret, sealed by the vault.
    pub secret_enc: Option<Vec<u8>>,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<DateTime<Utc>>,
    /// What it wants to hear, as JSON (`sync::app::EventFilter`); `None`: contact and action
    /// events.
    pub filter: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<webhook_subscription::Model> for SubscriptionRow {
    type Error = StoreError;
    fn try_from(row: webhook_subscription::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id,
            tenant: super::parse_tenant(&row.tenant)?,
            url: row.url,
            secret_enc: row.secret_enc,
            enabled: row.enabled,
            consecutive_failures: row.consecutive_failures,
            disabled_at: row.disabled_at,
            filter: row.filter,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn rows(models: Vec<webhook_subscription::Model>) -> Result<Vec<SubscriptionRow>, StoreError> {
    models.into_iter().map(SubscriptionRow::try_from).collect()
}

/// Every subscription of `tenant`, oldest first.
pub async fn list(db: &impl Conn, tenant: &TenantId) -> Result<Vec<SubscriptionRow>, StoreError> {
    rows(
        webhook_subscription::Entity::find()
            .filter(webhook_subscription::Column::Tenant.eq(tenant.as_str()))
            .order_by_asc(webhook_subscription::Column::CreatedAt)
            .all(db.raw())
            .await?,
    )
}

/// The enabled subscriptions of every tenant (the delivery worker's view).
pub async fn enabled(db: &impl Conn) -> Result<Vec<SubscriptionRow>, StoreError> {
    rows(
        webhook_subscription::Entity::find()
            .filter(webhook_subscription::Column::Enabled.eq(true))
            .all(db.raw())
            .await?,
    )
}

/// The enabled subscriptions of `tenant`: the ones that hear its contacts and connections.
pub async fn enabled_of(
    db: &impl Conn,
    tenant: &TenantId,
) -> Result<Vec<SubscriptionRow>, StoreError> {
    rows(
        webhook_subscription::Entity::find()
            .filter(webhook_subscription::Column::Tenant.eq(tenant.as_str()))
            .filter(webhook_subscription::Column::Enabled.eq(true))
            .all(db.raw())
            .await?,
    )
}

/// Whether any subscription is enabled.
pub async fn any_enabled(db: &impl Conn) -> Result<bool, StoreError> {
    Ok(webhook_subscription::Entity::find()
        .filter(webhook_subscription::Column::Enabled.eq(true))
        .count(db.raw())
        .await?
        > 0)
}

/// One subscription.
pub async fn get(db: &impl Conn, id: Uuid) -> Result<Option<SubscriptionRow>, StoreError> {
    webhook_subscription::Entity::find_by_id(id)
        .one(db.raw())
        .await?
        .map(SubscriptionRow::try_from)
        .transpose()
}

/// Stores a new subscription.
pub async fn insert(db: &impl Conn, row: SubscriptionRow) -> Result<SubscriptionRow, StoreError> {
    webhook_subscription::ActiveModel {
        id: Set(row.id),
        tenant: Set(row.tenant.as_str().to_owned()),
        url: Set(row.url),
        secret_enc: Set(row.secret_enc),
        enabled: Set(row.enabled),
        consecutive_failures: Set(row.consecutive_failures),
        disabled_at: Set(row.disabled_at),
        filter: Set(row.filter),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    }
    .insert(db.raw())
    .await?
    .try_into()
}

/// Deletes a subscription and its deliveries; returns whether it existed.
pub async fn delete(db: &impl Conn, id: Uuid) -> Result<bool, StoreError> {
    outbound_delivery::Entity::delete_many()
        .filter(outbound_delivery::Column::SubscriptionId.eq(id))
        .exec(db.raw())
        .await?;
    Ok(webhook_subscription::Entity::delete_by_id(id)
        .exec(db.raw())
        .await?
        .rows_affected
        > 0)
}

/// Enables a subscription with a clean failure count; returns whether it exists.
pub async fn enable(db: &impl Conn, id: Uuid, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let result = webhook_subscription::Entity::update_many()
        .col_expr(webhook_subscription::Column::Enabled, Expr::value(true))
        .col_expr(
            webhook_subscription::Column::ConsecutiveFailures,
            Expr::value(0),
        )
        .col_expr(
            webhook_subscription::Column::DisabledAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(webhook_subscription::Column::UpdatedAt, Expr::value(now))
        .filter(webhook_subscription::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(result.rows_affected > 0)
}

/// A delivery succeeded: the subscription's failure count starts again.
pub async fn reset_failures(db: &impl Conn, id: Uuid) -> Result<(), StoreError> {
    webhook_subscription::Entity::update_many()
        .col_expr(
            webhook_subscription::Column::ConsecutiveFailures,
            Expr::value(0),
        )
        .filter(webhook_subscription::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// A delivery failed: counts it, and disables the subscription once `threshold` failures in a
/// row are reached. Returns the failure count when this call disabled it.
pub async fn count_failure(
    db: &impl Conn,
    id: Uuid,
    threshold: i32,
    now: DateTime<Utc>,
) -> Result<Option<i32>, StoreError> {
    use webhook_subscription::Column as C;
    webhook_subscription::Entity::update_many()
        .col_expr(
            C::ConsecutiveFailures,
            Expr::col(C::ConsecutiveFailures).add(1),
        )
        .filter(C::Id.eq(id))
        .exec(db.raw())
        .await?;
    let disabled = webhook_subscription::Entity::update_many()
        .col_expr(C::Enabled, Expr::value(false))
        .col_expr(C::DisabledAt, Expr::value(Some(now)))
        .col_expr(C::UpdatedAt, Expr::value(now))
        .filter(C::Id.eq(id))
        .filter(C::Enabled.eq(true))
        .filter(C::ConsecutiveFailures.gte(threshold))
        .exec(db.raw())
        .await?
        .rows_affected;
    if disabled == 0 {
        return Ok(None);
    }
    Ok(get(db, id).await?.map(|s| s.consecutive_failures))
}

/// A delivery's row, as the subscription's log shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub contact_id: Option<Uuid>,
    pub event_type: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The newest `limit` deliveries of a subscription, newest first.
pub async fn deliveries(
    db: &impl Conn,
    subscription: Uuid,
    limit: u64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    Ok(outbound_delivery::Entity::find()
        .filter(outbound_delivery::Column::SubscriptionId.eq(subscription))
        .order_by_desc(outbound_delivery::Column::CreatedAt)
        .order_by_desc(outbound_delivery::Column::Id)
        .limit(limit)
        .all(db.raw())
        .await?
        .into_iter()
        .map(|row| DeliveryRow {
            id: row.id,
            contact_id: row.contact_id,
            event_type: row.event_type,
            state: row.state,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
        .collect())
}

/// When the earliest delivery in one of `states` to one of `subscriptions` is due.
pub async fn next_delivery_due(
    db: &impl Conn,
    subscriptions: &[Uuid],
    states: &[&str],
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(outbound_delivery::Entity::find()
        .filter(outbound_delivery::Column::State.is_in(states.iter().copied()))
        .filter(outbound_delivery::Column::SubscriptionId.is_in(subscriptions.iter().copied()))
        .order_by_asc(outbound_delivery::Column::NextAttemptAt)
        .one(db.raw())
        .await?
        .map(|d| d.next_attempt_at))
}

/// Where a delivery goes: a subscription, and the contact it is about (if any).
pub type Target = (Uuid, Option<ContactId>);

/// One payload and the targets it goes to (see [`enqueue_many`]).
pub type Delivery<'a> = (&'a [Target], &'a Value);

/// Enqueues one delivery per (subscription, contact) pair given, due at `now`.
pub async fn enqueue_each(
    db: &impl Conn,
    targets: &[Target],
    event_type: &str,
    payload: &Value,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    enqueue_many(db, &[(targets, payload)], event_type, state, now).await
}

/// [`enqueue_each`] of several payloads (each to its own targets), in order, in multi-row
/// statements.
pub async fn enqueue_many(
    db: &impl Conn,
    deliveries: &[Delivery<'_>],
    event_type: &str,
    state: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rows = deliveries
        .iter()
        .flat_map(|(targets, payload)| {
            targets.iter().map(move |(subscription_id, contact_id)| {
                outbound_delivery::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    subscription_id: Set(*subscription_id),
                    contact_id: Set(contact_id.map(ContactId::uuid)),
                    event_type: Set(event_type.to_owned()),
                    payload: Set((*payload).clone()),
                    state: Set(state.to_owned()),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    last_status: Set(None),
                    last_error: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
            })
        })
        .collect();
    super::insert_chunked(db.raw(), rows, 12).await
}
