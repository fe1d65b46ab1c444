//! The `field_mapping` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "field_mapping")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connection_id: Uuid,
    pub local_field: String,
    pub remote_field: String,
    pub remote_type: String,
    pub direction: String,
    pub owner: Option<String>,
    /// For a local number field mapped to a `monetary` field: the numbers' currency.
    pub currency: Option<String>,
    /// `person` (the default) or `organization`: whose field `remote_field` is.
    pub entity: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
