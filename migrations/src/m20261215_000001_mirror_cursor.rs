//! The Pipedrive mirror (issue 20): each stream's cursor (`mirror_cursor`, written in the same
//! transaction as the page it follows, so a killed extraction resumes where it stopped) and
//! each connection's mirror switch (`mirror_connection`). The mirror's own tables are created
//! at runtime from each company's fields, not here.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut cursor = Table::create();
        cursor
            .table(id("mirror_cursor"))
            .if_not_exists()
            .col(ColumnDef::new(id("scope")).text().not_null())
            .col(ColumnDef::new(id("stream")).text().not_null());
        for column in [
            "page_cursor",
            "run_since",
            "run_started_at",
            "run_max",
            "high_water",
            "completed_at",
        ] {
            cursor.col(ColumnDef::new(id(column)).text().null());
        }
        cursor
            .col(
                ColumnDef::new(id("pages"))
                    .big_integer()
                    .not_null()
                    .default(0),
            )
            .primary_key(
                Index::create()
                    .name("mirror_cursor_pkey")
                    .col(id("scope"))
                    .col(id("stream")),
            );
        manager.create_table(cursor.to_owned()).await?;
        manager
            .create_table(
                Table::create()
                    .table(id("mirror_connection"))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(id("connection_id"))
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(id("enabled"))
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(id("initial_done_at")).text().null())
                    .col(ColumnDef::new(id("last_poll_at")).text().null())
                    .col(ColumnDef::new(id("last_delete_pass_at")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(id("mirror_connection")).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(id("mirror_cursor")).to_owned())
            .await
    }
}
