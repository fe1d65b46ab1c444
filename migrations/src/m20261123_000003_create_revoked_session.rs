//! Console sessions ended by "Log out": the session cookie is stateless (signed), so a logout
//! records the session's nonce until the cookie would have expired, and a replayed cookie is
//! refused.

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
                    .table(id("revoked_session"))
                    .col(ColumnDef::new(id("nonce")).text().not_null().primary_key())
                    .col(
                        ColumnDef::new(id("expires_at"))
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(id("revoked_session"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
