//! The type of a kept activity (a Salesforce Task's `Type`, else its `TaskSubtype`), lower
//! case, for the contacts-list filter `crm.activity.open_type`. A column rather than a look
//! into `raw`: SQLite's and Postgres's JSON functions differ. Null for every other kind of
//! record, for a Task without a type, and for the Tasks read before this column existed (the
//! reads did not ask for `Type`) until Salesforce changes them or an initial sync runs again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("crm_related_record"))
                    .add_column(ColumnDef::new(Alias::new("activity_type")).text())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("crm_related_record"))
                    .drop_column(Alias::new("activity_type"))
                    .to_owned(),
            )
            .await
    }
}
