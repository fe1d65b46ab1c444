//! The `person_link` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "person_link")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connection_id: Uuid,
    pub contact_id: Uuid,
    pub person_id: i64,
    #[sea_orm(column_type = "JsonBinary")]
    pub base: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub last_written: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub uncertain: Option<Json>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub refused: Option<Json>,
    pub last_write_at: Option<DateTimeUtc>,
    pub remote_version: i64,
    pub local_version: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
