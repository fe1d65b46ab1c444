//! The `contact_list_member` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "contact_list_member")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub list_key: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub contact_id: Uuid,
    pub added_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
