//! Journey triggers (issue 22): the newest CRM change seen per record, so a webhook that
//! arrives after a newer one is announced as late rather than as the current state
//! (`crm_event_version`), and what each app subscription wants to hear
//! (`webhook_subscription.filter`: event types, pipelines, stages, as JSON; `NULL` = the
//! contact and action events it always had).

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
                    .table(id("crm_event_version"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("object")).text().not_null())
                    .col(ColumnDef::new(id("object_id")).text().not_null())
                    .col(ColumnDef::new(id("version")).text().not_null())
                    .primary_key(
                        Index::create()
                            .name("crm_event_version_pkey")
                            .col(id("connection_id"))
                            .col(id("object"))
                            .col(id("object_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_event_version_connection_fkey")
                            .from(id("crm_event_version"), id("connection_id"))
                            .to(id("connection"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(id("webhook_subscription"))
                    .add_column(ColumnDef::new(id("filter")).text().null().to_owned())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(id("webhook_subscription"))
                    .drop_column(id("filter"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(id("crm_event_version"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
