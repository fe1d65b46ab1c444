//! The CRM's own record keys behind the boundary's `i64` ids (issue 19, ADR 0013): a
//! Salesforce id (18 characters) is handed to the use-cases as a 53-bit surrogate, and this
//! table keeps the way back (surrogate → id) so that it survives restarts. Rows are only ever
//! added; they go with their connection.

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
                    .table(id("crm_record_key"))
                    .if_not_exists()
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("surrogate")).big_integer().not_null())
                    .col(ColumnDef::new(id("record_key")).text().not_null())
                    .col(
                        ColumnDef::new(id("created_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("crm_record_key_pkey")
                            .col(id("connection_id"))
                            .col(id("surrogate")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_record_key_connection_fkey")
                            .from(id("crm_record_key"), id("connection_id"))
                            .to(id("connection"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(id("crm_record_key")).to_owned())
            .await
    }
}
