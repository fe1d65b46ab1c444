//! OAuth `state` nonces (`oauth_state`): stored when the connect flow starts, consumed once by
//! the callback.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::entities::oauth_state;
use super::{Conn, StoreError};

/// Stores a new, unused nonce created at `now`, for a connect on behalf of `tenant`.
pub async fn insert(
    db: &impl Conn,
    nonce: &str,
    tenant: &tandem_core::TenantId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    oauth_state::Entity::insert(oauth_state::ActiveModel {
        nonce: Set(nonce.to_owned()),
        connection_id: Set(None),
        created_at: Set(now),
        used_at: Set(None),
        tenant: Set(tenant.as_str().to_owned()),
    })
    .exec_without_returning(db.raw())
    .await?;
    Ok(())
}

/// Marks the nonce used at `now` if it is unused and younger than `ttl`; returns the tenant
/// it was issued for when it was (a nonce is consumed once), else `None`.
pub async fn consume(
    db: &impl Conn,
    nonce: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<Option<tandem_core::TenantId>, StoreError> {
    let used = oauth_state::Entity::update_many()
        .col_expr(oauth_state::Column::UsedAt, Expr::value(now))
        .filter(oauth_state::Column::Nonce.eq(nonce))
        .filter(oauth_state::Column::UsedAt.is_null())
        .filter(oauth_state::Column::CreatedAt.gt(now - ttl))
        .exec(db.raw())
        .await?;
    if used.rows_affected != 1 {
        return Ok(None);
    }
    let row = oauth_state::Entity::find_by_id(nonce.to_owned())
        .one(db.raw())
        .await?;
    row.map(|r| super::parse_tenant(&r.tenant)).transpose()
}

/// Deletes nonces created before `cutoff`; returns how many.
pub async fn prune(db: &impl Conn, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(oauth_state::Entity::delete_many()
        .filter(oauth_state::Column::CreatedAt.lt(cutoff))
        .exec(db.raw())
        .await?
        .rows_affected)
}
