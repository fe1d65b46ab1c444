//! The `webhook_subscription` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_subscription")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub url: String,
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub secret_enc: Option<Vec<u8>>,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<DateTimeUtc>,
    /// What the subscription wants to hear (JSON), `None`: contact and action events.
    pub filter: Option<String>,
    /// The app's account this row belongs to (`tandem_core::TenantId`).
    pub tenant: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
