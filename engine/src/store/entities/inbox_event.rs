//! The `inbox_event` table. Its claim columns (`run_at`, `locked_until`) are read and written
//! only by the work queue (`queue::inbox`), in SQL; they are not fields here, so the receivers
//! store rows without naming them.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "inbox_event")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connection_id: Option<Uuid>,
    pub source: String,
    pub delivery_id: String,
    pub object: String,
    pub action: String,
    pub object_id: Option<String>,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub received_at: DateTimeUtc,
    pub processed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
