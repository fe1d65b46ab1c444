//! The persons of a CRM without a live mirror (Salesforce's Leads and Contacts) as tandem last
//! read them, for the contacts list's `crm.owner_id` and `crm.org_id` filters (ADR 25): the
//! owner and the organization (a Contact's Account; a Lead has none) as the boundary's
//! surrogates, and the record's change time, so a late read never replaces a newer one. A
//! deleted person keeps its row with neither. Written by the initial sync and the change poll,
//! one multi-row statement per page.

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
                    .table(id("crm_person"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("person_id")).big_integer().not_null())
                    .col(ColumnDef::new(id("lead")).boolean().not_null())
                    .col(ColumnDef::new(id("owner_id")).big_integer())
                    .col(ColumnDef::new(id("org_id")).big_integer())
                    .col(ColumnDef::new(id("modified_ms")).big_integer())
                    .col(
                        ColumnDef::new(id("synced_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("crm_person_pkey")
                            .col(id("connection_id"))
                            .col(id("person_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_person_connection_fkey")
                            .from(id("crm_person"), id("connection_id"))
                            .to(id("connection"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("crm_person_owner_idx", "owner_id"),
            ("crm_person_org_idx", "org_id"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(id("crm_person"))
                        .col(id("connection_id"))
                        .col(Alias::new(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(id("crm_person")).if_exists().to_owned())
            .await
    }
}
