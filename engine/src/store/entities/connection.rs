//! The `connection` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "connection")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub crm: String,
    pub name: String,
    pub state: String,
    pub auth_kind: String,
    pub api_domain: String,
    pub company_id: Option<i64>,
    pub user_id: Option<i64>,
    pub plan: Option<String>,
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub access_token_enc: Option<Vec<u8>>,
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub refresh_token_enc: Option<Vec<u8>>,
    pub token_expires_at: Option<DateTimeUtc>,
    pub webhook_user: Option<String>,
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub webhook_password_enc: Option<Vec<u8>>,
    pub apid_field_key: Option<String>,
    pub paused: bool,
    pub receives_list: bool,
    /// The app's account this row belongs to (`tandem_core::TenantId`).
    pub tenant: String,
    pub last_success_at: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
