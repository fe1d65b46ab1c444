//! Catch-up triggers (issue 22): the state of each deal, activity and person as the app last
//! heard it (`crm_trigger_state`: the fields triggers read, the record's version, and how far
//! a catch-up event already covered), so a change the mirror's backstop finds without a
//! webhook is announced once, marked catch-up, and its webhook arriving later is not.

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
                    .table(id("crm_trigger_state"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("object")).text().not_null())
                    .col(ColumnDef::new(id("object_id")).text().not_null())
                    .col(ColumnDef::new(id("state")).text().not_null())
                    .col(ColumnDef::new(id("version")).text().not_null())
                    .col(ColumnDef::new(id("covered")).text().null())
                    .primary_key(
                        Index::create()
                            .name("crm_trigger_state_pkey")
                            .col(id("connection_id"))
                            .col(id("object"))
                            .col(id("object_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_trigger_state_connection_fkey")
                            .from(id("crm_trigger_state"), id("connection_id"))
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
                    .table(id("crm_trigger_state"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
