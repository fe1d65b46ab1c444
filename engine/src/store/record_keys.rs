//! The CRM's own record keys behind the boundary's `i64` ids (`crm_record_key`, ADR 0013):
//! a Salesforce id is a 53-bit surrogate for the use-cases; this keeps the way back so that a
//! stored link still reaches its record after a restart. Append-only: a surrogate, once
//! stored, keeps its key (the connector refuses a colliding second key before it gets here).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set};
use tandem_core::ConnectionId;

use super::entities::crm_record_key;
use super::{Conn, StoreError};

/// Rows per insert statement (4 bound values each, far below the bind limit).
const CHUNK: usize = 200;

/// Stores `keys` (surrogate, the CRM's key) of a connection; known surrogates are kept as
/// they are.
pub async fn remember(
    db: &impl Conn,
    connection: ConnectionId,
    keys: &[(i64, String)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection = connection.uuid();
    for chunk in keys.chunks(CHUNK) {
        let rows = chunk
            .iter()
            .map(|(surrogate, key)| crm_record_key::ActiveModel {
                connection_id: Set(connection),
                surrogate: Set(*surrogate),
                record_key: Set(key.clone()),
                created_at: Set(now),
            });
        crm_record_key::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    crm_record_key::Column::ConnectionId,
                    crm_record_key::Column::Surrogate,
                ])
                .do_nothing()
                .to_owned(),
            )
            .do_nothing()
            .exec(db.raw())
            .await?;
    }
    Ok(())
}

/// Every key stored for a connection, as (surrogate, key).
pub async fn of_connection(
    db: &impl Conn,
    connection: ConnectionId,
) -> Result<Vec<(i64, String)>, StoreError> {
    let connection = connection.uuid();
    Ok(crm_record_key::Entity::find()
        .filter(crm_record_key::Column::ConnectionId.eq(connection))
        .all(db.raw())
        .await?
        .into_iter()
        .map(|row| (row.surrogate, row.record_key))
        .collect())
}
