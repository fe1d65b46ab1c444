//! The persons tandem saw merged away into another (a Salesforce Lead converted into its
//! Contact, a merge's losing record): a read of such a person as live is older than the merge,
//! never a new person (a converted Lead, a merged record do not come back).

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
                    .table(id("merged_person"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("person_id")).big_integer().not_null())
                    .col(ColumnDef::new(id("merged_into")).big_integer().not_null())
                    .col(
                        ColumnDef::new(id("merged_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("merged_person_pkey")
                            .col(id("connection_id"))
                            .col(id("person_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("merged_person_connection_fkey")
                            .from(id("merged_person"), id("connection_id"))
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
                    .table(id("merged_person"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
