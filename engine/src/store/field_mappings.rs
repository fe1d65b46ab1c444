//! Field mappings (`field_mapping`): which local field is written to which CRM field.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use tandem_core::ConnectionId;
use uuid::Uuid;

use super::entities::field_mapping;
use super::{Conn, StoreError};

/// The values of `field_mapping.entity`.
pub mod entity {
    /// A field of the CRM's person (every mapping before organization fields).
    pub const PERSON: &str = "person";
    /// A field of the person's organization.
    pub const ORGANIZATION: &str = "organization";
}

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
    /// Whose field `remote_field` is: [`entity::PERSON`] or [`entity::ORGANIZATION`] (the
    /// person's organization).
    pub entity: String,
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
            entity: row.entity,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The connection's mappings, by local field.
pub async fn of_connection(
    db: &impl Conn,
    connection: ConnectionId,
) -> Result<Vec<FieldMappingRow>, StoreError> {
    let connection = connection.uuid();
    Ok(field_mapping::Entity::find()
        .filter(field_mapping::Column::ConnectionId.eq(connection))
        .order_by_asc(field_mapping::Column::LocalField)
        .all(db.raw())
        .await?
        .into_iter()
        .map(FieldMappingRow::from)
        .collect())
}

/// The connection's mapping of `local_field`, if any.
pub async fn of_local_field(
    db: &impl Conn,
    connection: ConnectionId,
    local_field: &str,
) -> Result<Option<FieldMappingRow>, StoreError> {
    let connection = connection.uuid();
    Ok(field_mapping::Entity::find()
        .filter(field_mapping::Column::ConnectionId.eq(connection))
        .filter(field_mapping::Column::LocalField.eq(local_field))
        .one(db.raw())
        .await?
        .map(FieldMappingRow::from))
}

/// Stores `row`: a new mapping, or (with `exists`) the new values of the mapping `row.id`.
pub async fn save(
    db: &impl Conn,
    row: FieldMappingRow,
    exists: bool,
) -> Result<FieldMappingRow, StoreError> {
    let model = field_mapping::ActiveModel {
        id: Set(row.id),
        connection_id: Set(row.connection_id),
        local_field: Set(row.local_field),
        remote_field: Set(row.remote_field),
        remote_type: Set(row.remote_type),
        direction: Set(row.direction),
        owner: Set(row.owner),
        currency: Set(row.currency),
        entity: Set(row.entity),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    };
    let saved = if exists {
        model.update(db.raw()).await?
    } else {
        model.insert(db.raw()).await?
    };
    Ok(saved.into())
}

/// Deletes the connection's mapping of `local_field`; returns whether there was one.
pub async fn delete(
    db: &impl Conn,
    connection: ConnectionId,
    local_field: &str,
) -> Result<bool, StoreError> {
    let connection = connection.uuid();
    Ok(field_mapping::Entity::delete_many()
        .filter(field_mapping::Column::ConnectionId.eq(connection))
        .filter(field_mapping::Column::LocalField.eq(local_field))
        .exec(db.raw())
        .await?
        .rows_affected
        > 0)
}
