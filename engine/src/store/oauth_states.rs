//! OAuth `state` nonces (`oauth_state`): stored when the connect flow starts, consumed once by
//! the callback.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::entities::oauth_state;
use super::{Conn, StoreError};

/// Stores a new, unused nonce created at `now`.
pub async fn insert(db: &impl Conn, nonce: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    oauth_state::Entity::insert(oauth_state::ActiveModel {
        nonce: Set(nonce.to_owned()),
        connection_id: Set(None),
        created_at: Set(now),
        used_at: Set(None),
    })
    .exec_without_returning(db.raw())
    .await?;
    Ok(())
}

/// Marks the nonce used at `now` if it is unused and younger than `ttl`; returns whether it
/// was (a nonce is consumed once).
pub async fn consume(
    db: &impl Conn,
    nonce: &str,
    now: DateTime<Utc>,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let used = oauth_state::Entity::update_many()
        .col_expr(oauth_state::Column::UsedAt, Expr::value(now))
        .filter(oauth_state::Column::Nonce.eq(nonce))
        .filter(oauth_state::Column::UsedAt.is_null())
        .filter(oauth_state::Column::CreatedAt.gt(now - ttl))
        .exec(db.raw())
        .await?;
    Ok(used.rows_affected == 1)
}

/// Deletes nonces created before `cutoff`; returns how many.
pub async fn prune(db: &impl Conn, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(oauth_state::Entity::delete_many()
        .filter(oauth_state::Column::CreatedAt.lt(cutoff))
        .exec(db.raw())
        .await?
        .rows_affected)
}
