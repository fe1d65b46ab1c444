//! Field mappings (`field_mapping`): which local field is written to which CRM field.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::entities::field_mapping;
use super::{Conn, StoreError};

/// A mapping's row.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMappingRow {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub local_field: String,
    pub remote_field: String,
    pub remote_type: String,
    pub direction: String,
    pub owner: Option<String>,
    /// For a local number field mapped to a `monetary` field: the numbers' currency.
    pub currency: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<field_mapping::Model> for FieldMappingRow {
    fn from(row: field_mapping::Model) -> Self {
        Self {
            id: row.id,
            connection_id: row.connection_id,
            local_field: row.local_field,
            remote_field: row.remote_field,
            remote_type: row.remote_type,
            direction: row.direction,
            owner: row.owner,
            currency: row.currency,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The connection's mappings.
pub async fn of_connection(
    db: &impl Conn,
    connection: Uuid,
) -> Result<Vec<FieldMappingRow>, StoreError> {
    Ok(field_mapping::Entity::find()
        .filter(field_mapping::Column::ConnectionId.eq(connection))
        .all(db.raw())
        .await?
        .into_iter()
        .map(FieldMappingRow::from)
        .collect())
}
