//! The records a CRM relates to its people, kept per connection for the journey actions
//! (issue 19): Salesforce Accounts, Opportunities and OpportunityContactRoles, read by the
//! initial sync and kept current by each poll. Ids are the boundary's surrogates
//! (`crm_record_key` keeps the way back to the CRM's keys); `raw` is the record as the CRM
//! answered it. A record deleted in the CRM keeps its row with `deleted_at` set.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let optional_id = |name: &'static str| ColumnDef::new(id(name)).big_integer().to_owned();
        let optional_text = |name: &'static str| ColumnDef::new(id(name)).text().to_owned();
        manager
            .create_table(
                Table::create()
                    .table(id("crm_related_record"))
                    .if_not_exists()
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("kind")).text().not_null())
                    .col(ColumnDef::new(id("record_id")).big_integer().not_null())
                    .col(optional_text("name"))
                    .col(optional_id("company_id"))
                    .col(optional_id("deal_id"))
                    .col(optional_id("person_id"))
                    .col(optional_text("stage"))
                    .col(optional_id("stage_id"))
                    .col(optional_text("status"))
                    .col(optional_id("owner_id"))
                    .col(optional_text("due_on"))
                    .col(optional_text("created_in_crm"))
                    .col(optional_text("modified_in_crm"))
                    .col(ColumnDef::new(id("raw")).json())
                    .col(ColumnDef::new(id("deleted_at")).timestamp_with_time_zone())
                    .col(
                        ColumnDef::new(id("synced_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("crm_related_record_pkey")
                            .col(id("connection_id"))
                            .col(id("kind"))
                            .col(id("record_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_related_record_connection_fkey")
                            .from(id("crm_related_record"), id("connection_id"))
                            .to(id("connection"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("crm_related_record_person_idx")
                    .table(id("crm_related_record"))
                    .col(id("connection_id"))
                    .col(id("person_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(id("crm_related_record")).to_owned())
            .await
    }
}
