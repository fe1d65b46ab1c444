//! An e-mail belongs to a tenant (issue 24, ADR 26): its `message_id` is unique within its
//! tenant, not across tenants, and a thread is a tenant's. Existing rows take the tenant of
//! the connection they were logged in (`default` when they have none).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

fn index(name: &'static str, columns: &[&'static str], unique: bool) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(id("email_log"));
    for column in columns {
        index.col(id(column));
    }
    if unique {
        index.unique();
    }
    index.to_owned()
}

fn drop(name: &'static str) -> IndexDropStatement {
    Index::drop().name(name).table(id("email_log")).to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(id("email_log"))
                    .add_column(
                        ColumnDef::new(id("tenant"))
                            .text()
                            .not_null()
                            .default("default"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE email_log SET tenant = (SELECT connection.tenant FROM connection \
                 WHERE connection.id = email_log.connection_id) \
                 WHERE connection_id IS NOT NULL \
                 AND EXISTS (SELECT 1 FROM connection WHERE connection.id = email_log.connection_id)",
            )
            .await?;
        manager.drop_index(drop("email_log_message_id_key")).await?;
        manager.drop_index(drop("email_log_thread_idx")).await?;
        manager
            .create_index(index(
                "email_log_tenant_message_id_key",
                &["tenant", "message_id"],
                true,
            ))
            .await?;
        manager
            .create_index(index(
                "email_log_tenant_thread_idx",
                &["tenant", "thread_key", "sent_at"],
                false,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(drop("email_log_tenant_thread_idx"))
            .await?;
        manager
            .drop_index(drop("email_log_tenant_message_id_key"))
            .await?;
        manager
            .create_index(index(
                "email_log_thread_idx",
                &["thread_key", "sent_at"],
                false,
            ))
            .await?;
        manager
            .create_index(index("email_log_message_id_key", &["message_id"], true))
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(id("email_log"))
                    .drop_column(id("tenant"))
                    .to_owned(),
            )
            .await
    }
}
