//! A link's write state beyond what tandem last wrote: values sent whose outcome is unknown
//! (recorded before the request leaves), values the CRM refused, and when tandem last wrote
//! the person (writes of one contact are paced).
//!
//! SQLite adds one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            ColumnDef::new(id("uncertain"))
                .json_binary()
                .null()
                .to_owned(),
            ColumnDef::new(id("refused"))
                .json_binary()
                .null()
                .to_owned(),
            ColumnDef::new(id("last_write_at"))
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("person_link"))
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["uncertain", "refused", "last_write_at"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("person_link"))
                        .drop_column(id(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
