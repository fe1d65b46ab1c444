//! The `oauth_state` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub nonce: String,
    pub connection_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    /// The app's account this row belongs to (`tandem_core::TenantId`).
    pub tenant: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
