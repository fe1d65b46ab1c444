//! The live mirror's background passes (issue 20): on each connection's switch
//! (`mirror_connection`) the pass in progress (`pass_kind`, `pass_started_at`: an initial
//! extraction, a backstop incremental pass or a delete pass, resumed stream by stream), the last
//! purge of deleted rows and the last error; on each stream's cursor (`mirror_cursor`) the
//! stream's last error.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

const CONNECTION_COLUMNS: [&str; 4] = [
    "pass_kind",
    "pass_started_at",
    "last_purge_at",
    "last_error",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in CONNECTION_COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("mirror_connection"))
                        .add_column(ColumnDef::new(id(column)).text().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(id("mirror_cursor"))
                    .add_column(ColumnDef::new(id("last_error")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(id("mirror_cursor"))
                    .drop_column(id("last_error"))
                    .to_owned(),
            )
            .await?;
        for column in CONNECTION_COLUMNS.iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("mirror_connection"))
                        .drop_column(id(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
