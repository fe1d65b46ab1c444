//! Organizations in the two-way sync (issue 20, ADR 0017). `crm_organization` is the claim
//! that makes "find the organization by name, else create it" happen once per name: its key is
//! (connection, the name trimmed and lower-cased); a worker inserts the row (no `org_id` yet,
//! `claimed_at` set) before it asks the CRM, and the one whose insert wins searches, then
//! creates. The row keeps the organization's id and name afterwards, so it also answers
//! "which name has organization N" without a CRM call. `field_mapping.entity` says whether a
//! mapping is of the person (`person`, every row so far) or of its organization
//! (`organization`).

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
                    .table(id("crm_organization"))
                    .if_not_exists()
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("name_key")).text().not_null())
                    .col(ColumnDef::new(id("org_id")).big_integer().null())
                    .col(ColumnDef::new(id("name")).text().not_null())
                    .col(
                        ColumnDef::new(id("claimed_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
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
                    .primary_key(
                        Index::create()
                            .name("crm_organization_pkey")
                            .col(id("connection_id"))
                            .col(id("name_key")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_organization_connection_fkey")
                            .from(id("crm_organization"), id("connection_id"))
                            .to(id("connection"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("crm_organization_org_id_idx")
                    .table(id("crm_organization"))
                    .col(id("connection_id"))
                    .col(id("org_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(id("field_mapping"))
                    .add_column(
                        ColumnDef::new(id("entity"))
                            .text()
                            .not_null()
                            .default("person"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(id("field_mapping"))
                    .drop_column(id("entity"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(id("crm_organization")).to_owned())
            .await
    }
}
