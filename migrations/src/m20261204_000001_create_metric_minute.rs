//! The console's own time series: one row per (connection, series, minute) with a count, a
//! sum and, for latencies, p50 and p95. Written once a minute from in-memory counters, pruned
//! after the retention period; the charts read it instead of scanning the sync log.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(id("metric_minute"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("series")).text().not_null())
                    .col(
                        ColumnDef::new(id("minute"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(id("count")).big_integer().not_null())
                    .col(ColumnDef::new(id("sum")).double().not_null())
                    .col(ColumnDef::new(id("p50")).double().null())
                    .col(ColumnDef::new(id("p95")).double().null())
                    .primary_key(
                        Index::create()
                            .name("metric_minute_pkey")
                            .col(id("connection_id"))
                            .col(id("series"))
                            .col(id("minute")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("metric_minute_minute_idx")
                    .table(id("metric_minute"))
                    .col(id("minute"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(id("metric_minute"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
