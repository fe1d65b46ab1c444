//! Date triggers (issue 22): what was announced per record, so a periodic scan announces
//! `activity.overdue` once per due time however often it runs (`crm_trigger_announced`: the
//! key the trigger was announced for, e.g. the activity's due time; a new key makes it
//! eligible again).

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
                    .table(id("crm_trigger_announced"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("kind")).text().not_null())
                    .col(ColumnDef::new(id("object_id")).text().not_null())
                    .col(ColumnDef::new(id("announced")).text().not_null())
                    .col(
                        ColumnDef::new(id("updated_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("crm_trigger_announced_pkey")
                            .col(id("connection_id"))
                            .col(id("kind"))
                            .col(id("object_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_trigger_announced_connection_fkey")
                            .from(id("crm_trigger_announced"), id("connection_id"))
                            .to(id("connection"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(id("crm_trigger_announced"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
