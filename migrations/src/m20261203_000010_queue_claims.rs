//! One claimable work queue (ADR 3): inbox events get what outbox jobs have, a due time for
//! retries with backoff (`run_at`, `NULL` = due at once, so rows stored without it are due) and
//! a lease (`locked_until`); indexes let the claim find the earlier rows of an event's object
//! and of a delivery's (subscription, contact) without scanning the table.
//!
//! SQLite adds one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

const INBOX_INDEX: &str = "inbox_event_object_received_idx";
const DELIVERY_INDEX: &str = "outbound_delivery_subscription_contact_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["run_at", "locked_until"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("inbox_event"))
                        .add_column(
                            ColumnDef::new(id(column))
                                .timestamp_with_time_zone()
                                .null()
                                .to_owned(),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(INBOX_INDEX)
                    .table(id("inbox_event"))
                    .col(id("object_id"))
                    .col(id("received_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DELIVERY_INDEX)
                    .table(id("outbound_delivery"))
                    .col(id("subscription_id"))
                    .col(id("contact_id"))
                    .col(id("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(DELIVERY_INDEX)
                    .table(id("outbound_delivery"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(INBOX_INDEX)
                    .table(id("inbox_event"))
                    .to_owned(),
            )
            .await?;
        for column in ["run_at", "locked_until"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(id("inbox_event"))
                        .drop_column(id(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
