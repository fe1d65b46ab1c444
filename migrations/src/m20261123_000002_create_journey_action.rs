//! Journey actions (Add Deal, Assign Person Owner, …): one row per request, keyed by the
//! caller's idempotency key, with its status and Pipedrive's result or error.

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
                    .table(id("journey_action"))
                    .col(ColumnDef::new(id("id")).uuid().not_null().primary_key())
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("contact_id")).uuid().not_null())
                    .col(ColumnDef::new(id("action")).text().not_null())
                    .col(ColumnDef::new(id("params")).json_binary().not_null())
                    .col(ColumnDef::new(id("idempotency_key")).text().not_null())
                    .col(ColumnDef::new(id("request_hash")).text().not_null())
                    .col(ColumnDef::new(id("state")).text().not_null())
                    .col(ColumnDef::new(id("result")).json_binary().null())
                    .col(ColumnDef::new(id("error")).text().null())
                    .col(ColumnDef::new(id("status")).integer().null())
                    .col(
                        ColumnDef::new(id("created_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(id("updated_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("journey_action_contact_id_fkey")
                            .from(id("journey_action"), id("contact_id"))
                            .to(id("contact"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("journey_action_idempotency_key_key")
                    .table(id("journey_action"))
                    .col(id("idempotency_key"))
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(id("journey_action"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
