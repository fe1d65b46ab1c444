//! The `sync_log` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sync_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connection_id: Option<Uuid>,
    pub at: DateTimeUtc,
    pub level: String,
    pub direction: String,
    pub kind: String,
    pub contact_id: Option<Uuid>,
    pub person_id: Option<i64>,
    pub status: Option<i32>,
    pub message: String,
    pub remote_error: Option<String>,
    pub hint: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub detail: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
