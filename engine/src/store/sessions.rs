//! Revoked console sessions (`revoked_session`): a logged-out session's nonce, kept until its
//! cookie would have expired.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};

use super::entities::revoked_session;
use super::{Conn, StoreError};

/// Whether the session with `nonce` was logged out.
pub async fn is_revoked(db: &impl Conn, nonce: &str) -> Result<bool, StoreError> {
    Ok(revoked_session::Entity::find_by_id(nonce.to_owned())
        .one(db.raw())
        .await?
        .is_some())
}

/// Records that the session with `nonce` was logged out (again is harmless).
pub async fn revoke(
    db: &impl Conn,
    nonce: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    revoked_session::Entity::insert(revoked_session::ActiveModel {
        nonce: Set(nonce.to_owned()),
        expires_at: Set(expires_at),
    })
    .on_conflict(
        OnConflict::column(revoked_session::Column::Nonce)
            .do_nothing()
            .to_owned(),
    )
    .do_nothing()
    .exec(db.raw())
    .await?;
    Ok(())
}

/// Forgets revocations whose cookie has expired by `now`; returns how many.
pub async fn prune(db: &impl Conn, now: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(revoked_session::Entity::delete_many()
        .filter(revoked_session::Column::ExpiresAt.lt(now))
        .exec(db.raw())
        .await?
        .rows_affected)
}
