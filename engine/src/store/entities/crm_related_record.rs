//! The `crm_related_record` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "crm_related_record")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connection_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub kind: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub record_id: i64,
    pub name: Option<String>,
    pub company_id: Option<i64>,
    pub deal_id: Option<i64>,
    pub person_id: Option<i64>,
    pub stage: Option<String>,
    pub stage_id: Option<i64>,
    pub status: Option<String>,
    pub owner_id: Option<i64>,
    pub due_on: Option<String>,
    pub created_in_crm: Option<String>,
    pub modified_in_crm: Option<String>,
    pub raw: Option<Json>,
    pub deleted_at: Option<DateTimeUtc>,
    pub synced_at: DateTimeUtc,
    /// An activity's type, lower case (a Salesforce Task's `Type`, else its `TaskSubtype`).
    pub activity_type: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
