//! A mapping of a local number field onto a Pipedrive `monetary` field needs the currency the
//! numbers are in: API v2 takes monetary values as `{"value": 1234.5, "currency": "EUR"}`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("field_mapping"))
                    .add_column(ColumnDef::new(Alias::new("currency")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("field_mapping"))
                    .drop_column(Alias::new("currency"))
                    .to_owned(),
            )
            .await
    }
}
