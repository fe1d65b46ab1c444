//! Catch-up triggers (issue 22): per connection, the start of the last mirror pass whose
//! catch-up completed (`crm_trigger_catch_up`), so a catch-up cut off by a restart is redone
//! from there.

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
                    .table(id("crm_trigger_catch_up"))
                    .col(
                        ColumnDef::new(id("connection_id"))
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(id("since")).text().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_trigger_catch_up_connection_fkey")
                            .from(id("crm_trigger_catch_up"), id("connection_id"))
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
                    .table(id("crm_trigger_catch_up"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
