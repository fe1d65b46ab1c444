//! E-mails, second part (issue 23): what happened to a logged e-mail afterwards (`events`:
//! opens, clicks, bounce, reply, coalesced into one update of its CRM record), the kind of
//! CRM record that holds it (`record_kind`: an activity or a note), the addresses still
//! waiting to become persons (`waiting_addresses`), whether its deal or lead was changed in
//! tandem and must be written (`relink`: a manual link), an index to find an e-mail by its CRM
//! record (a webhook says its deal changed), and the admin's e-mail settings per connection
//! (`email_setting`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in [
            ColumnDef::new(id("events")).json_binary().null().to_owned(),
            ColumnDef::new(id("record_kind"))
                .text()
                .not_null()
                .default("activity")
                .to_owned(),
            ColumnDef::new(id("waiting_addresses"))
                .json_binary()
                .null()
                .to_owned(),
            ColumnDef::new(id("relink"))
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("email_log"))
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("email_log_activity_idx")
                    .table(id("email_log"))
                    .col(id("activity_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("email_setting"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(
                        ColumnDef::new(id("create_persons"))
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(id("record_as"))
                            .text()
                            .not_null()
                            .default("activity"),
                    )
                    .col(
                        ColumnDef::new(id("updated_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("email_setting_pkey")
                            .col(id("connection_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("email_setting_connection_fkey")
                            .from(id("email_setting"), id("connection_id"))
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
                    .table(id("email_setting"))
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("email_log_activity_idx")
                    .table(id("email_log"))
                    .to_owned(),
            )
            .await?;
        for column in ["relink", "waiting_addresses", "record_kind", "events"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("email_log"))
                        .drop_column(id(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
