//! Organization fields in the field mapping (issue 20): `crm_organization_snapshot` keeps, per
//! (connection, organization id), the values of the organization's mapped fields as tandem last
//! read or wrote them, so a person's snapshot gets its organization's fields without a CRM
//! call, and tandem's own writes to an organization are recognised when they come back.

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
                    .table(id("crm_organization_snapshot"))
                    .if_not_exists()
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("org_id")).big_integer().not_null())
                    .col(ColumnDef::new(id("fields")).json_binary().not_null())
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
                            .name("crm_organization_snapshot_pkey")
                            .col(id("connection_id"))
                            .col(id("org_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("crm_organization_snapshot_connection_fkey")
                            .from(id("crm_organization_snapshot"), id("connection_id"))
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
                    .table(id("crm_organization_snapshot"))
                    .to_owned(),
            )
            .await
    }
}
