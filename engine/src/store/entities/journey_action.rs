//! The `journey_action` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "journey_action")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connection_id: Uuid,
    pub contact_id: Uuid,
    pub action: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub params: Json,
    pub idempotency_key: String,
    /// The app's account that asked (`tandem_core::TenantId`); the key is unique per tenant.
    pub tenant: String,
    pub request_hash: String,
    pub state: String,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub result: Option<Json>,
    pub error: Option<String>,
    pub status: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
