//! The REST API's idempotency keys (`idempotency_key`): a key is claimed by the first request
//! (in progress), then holds its response.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;

use super::entities::idempotency_key;
use super::{Conn, StoreError};

/// A key's row: which request claimed it and, once it finished, its response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub request_hash: String,
    /// The response's status; [`IN_PROGRESS`] while the first request runs.
    pub response_status: i32,
    pub response_body: Value,
}

/// The status of a key whose request is still running.
pub const IN_PROGRESS: i32 = 0;

/// Claims `(scope, key)` for the request hashed `request_hash`; `false` if it is taken.
pub async fn claim(
    db: &impl Conn,
    scope: &str,
    key: &str,
    request_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = idempotency_key::Entity::insert(idempotency_key::ActiveModel {
        scope: Set(scope.to_owned()),
        key: Set(key.to_owned()),
        request_hash: Set(request_hash.to_owned()),
        response_status: Set(IN_PROGRESS),
        response_body: Set(Value::Null),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([idempotency_key::Column::Scope, idempotency_key::Column::Key])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db.raw())
    .await?;
    Ok(inserted == 1)
}

/// The row of `(scope, key)`, if any.
pub async fn get(db: &impl Conn, scope: &str, key: &str) -> Result<Option<StoredKey>, StoreError> {
    Ok(
        idempotency_key::Entity::find_by_id((scope.to_owned(), key.to_owned()))
            .one(db.raw())
            .await?
            .map(|row| StoredKey {
                request_hash: row.request_hash,
                response_status: row.response_status,
                response_body: row.response_body,
            }),
    )
}

/// Releases a claim (the request failed with a 5xx: the client may retry).
pub async fn release(db: &impl Conn, scope: &str, key: &str) -> Result<(), StoreError> {
    idempotency_key::Entity::delete_by_id((scope.to_owned(), key.to_owned()))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Stores the response of the request that claimed `(scope, key)`.
pub async fn complete(
    db: &impl Conn,
    scope: &str,
    key: &str,
    status: i32,
    body: Value,
) -> Result<(), StoreError> {
    idempotency_key::ActiveModel {
        scope: Set(scope.to_owned()),
        key: Set(key.to_owned()),
        response_status: Set(status),
        response_body: Set(body),
        ..Default::default()
    }
    .update(db.raw())
    .await?;
    Ok(())
}

/// Deletes keys created before `cutoff`; returns how many.
pub async fn prune(db: &impl Conn, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(cutoff))
        .exec(db.raw())
        .await?
        .rows_affected)
}
