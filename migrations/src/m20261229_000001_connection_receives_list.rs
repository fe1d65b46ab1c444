//! Which connections the app's CRM list reaches (issue 19: a company can have Pipedrive and
//! Salesforce, production and sandbox, at once): a new app contact in the list is created in
//! every connection with `receives_list`; a company connected alongside others (issue 24) has
//! it off, as the list holds the other companies' contacts too.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("connection"))
                    .add_column(
                        ColumnDef::new(Alias::new("receives_list"))
                            .boolean()
                            .not_null()
                            .default(true),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("connection"))
                    .drop_column(Alias::new("receives_list"))
                    .to_owned(),
            )
            .await
    }
}
