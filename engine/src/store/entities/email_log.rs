//! The `email_log` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "email_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub message_id: String,
    pub request_hash: String,
    pub connection_id: Option<Uuid>,
    pub thread_key: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub email: Json,
    pub state: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub persons: Json,
    pub item: Option<String>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub candidates: Option<Json>,
    pub activity_id: Option<i64>,
    pub error: Option<String>,
    pub sent_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub events: Option<Json>,
    pub record_kind: String,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub waiting_addresses: Option<Json>,
    pub relink: bool,
    pub tenant: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
