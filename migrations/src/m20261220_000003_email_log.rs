//! E-mails the app logs in the CRM (issue 23): one row per `message_id` (the idempotency key),
//! with what was sent or received, the links decided by Pipedrive's rules, and the outcome.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let time = |name: &'static str| {
            ColumnDef::new(id(name))
                .timestamp_with_time_zone()
                .not_null()
                .to_owned()
        };
        manager
            .create_table(
                Table::create()
                    .table(id("email_log"))
                    .col(ColumnDef::new(id("id")).uuid().not_null())
                    .col(ColumnDef::new(id("message_id")).text().not_null())
                    .col(ColumnDef::new(id("request_hash")).text().not_null())
                    .col(ColumnDef::new(id("connection_id")).uuid().null())
                    .col(ColumnDef::new(id("thread_key")).text().not_null())
                    .col(ColumnDef::new(id("email")).json_binary().not_null())
                    .col(ColumnDef::new(id("state")).text().not_null())
                    .col(ColumnDef::new(id("persons")).json_binary().not_null())
                    .col(ColumnDef::new(id("item")).text().null())
                    .col(ColumnDef::new(id("candidates")).json_binary().null())
                    .col(ColumnDef::new(id("activity_id")).big_integer().null())
                    .col(ColumnDef::new(id("error")).text().null())
                    .col(time("sent_at"))
                    .col(time("created_at"))
                    .col(time("updated_at"))
                    .primary_key(Index::create().name("email_log_pkey").col(id("id")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_log_message_id_key")
                    .table(id("email_log"))
                    .col(id("message_id"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("email_log_thread_idx")
                    .table(id("email_log"))
                    .col(id("thread_key"))
                    .col(id("sent_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(id("email_log")).if_exists().to_owned())
            .await
    }
}
