//! The `metric_minute` table: the console's minute series.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "metric_minute")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub connection_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub series: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub minute: DateTimeUtc,
    pub count: i64,
    #[sea_orm(column_type = "Double")]
    pub sum: f64,
    #[sea_orm(column_type = "Double", nullable)]
    pub p50: Option<f64>,
    #[sea_orm(column_type = "Double", nullable)]
    pub p95: Option<f64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
