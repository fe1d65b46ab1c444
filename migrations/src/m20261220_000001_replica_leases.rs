//! Several tandem replicas on one database (ADR 0014): each replica announces itself with a
//! heartbeat (`replica`), and each connection's outbound work belongs to one replica at a time
//! through a lease (`connection_lease`) that its owner renews and anyone may take over once it
//! has run out.

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
                    .table(id("replica"))
                    .col(ColumnDef::new(id("id")).text().not_null())
                    .col(ColumnDef::new(id("host")).text().not_null())
                    .col(
                        ColumnDef::new(id("started_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(id("heartbeat_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(Index::create().name("replica_pkey").col(id("id")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("connection_lease"))
                    .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                    .col(ColumnDef::new(id("owner")).text().not_null())
                    .col(
                        ColumnDef::new(id("acquired_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(id("expires_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .name("connection_lease_pkey")
                            .col(id("connection_id")),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("connection_lease_connection_fkey")
                            .from(id("connection_lease"), id("connection_id"))
                            .to(id("connection"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("connection_lease_owner_idx")
                    .table(id("connection_lease"))
                    .col(id("owner"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["connection_lease", "replica"] {
            manager
                .drop_table(Table::drop().table(id(table)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
