//! Tenants (issue 24): the app's account each contact, connection, webhook subscription,
//! journey action and OAuth state belongs to. Every existing row is the tenant `default`, so a deployment that
//! never names a tenant keeps working unchanged (ADR 26). The e-mail and page indexes of
//! `contact` lead with the tenant, as every lookup of them is scoped by it, and a journey
//! action's `Idempotency-Key` is unique per tenant. List memberships have no column of their
//! own: a membership is its contact's, and is scoped through it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

/// The tables that gain a `tenant` column.
const TABLES: &[&str] = &[
    "contact",
    "connection",
    "webhook_subscription",
    "oauth_state",
    "journey_action",
];

/// New indexes: (name, table, columns).
const INDEXES: &[(&str, &str, &[&str])] = &[
    ("contact_tenant_email_idx", "contact", &["tenant", "email"]),
    (
        "contact_tenant_updated_at_idx",
        "contact",
        &["tenant", "updated_at", "id"],
    ),
    (
        "connection_tenant_idx",
        "connection",
        &["tenant", "created_at"],
    ),
    (
        "webhook_subscription_tenant_idx",
        "webhook_subscription",
        &["tenant"],
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            manager
                .alter_table(
                    Table::alter()
                        .table(id(table))
                        .add_column(
                            ColumnDef::new(id("tenant"))
                                .text()
                                .not_null()
                                .default("default"),
                        )
                        .to_owned(),
                )
                .await?;
        }
        // Superseded by `contact_tenant_email_idx`, which leads with the tenant.
        manager
            .drop_index(
                Index::drop()
                    .name("contact_email_idx")
                    .table(id("contact"))
                    .to_owned(),
            )
            .await?;
        // Superseded by `journey_action_tenant_idempotency_key_key`: two tenants may use the
        // same key.
        manager
            .drop_index(
                Index::drop()
                    .name("journey_action_idempotency_key_key")
                    .table(id("journey_action"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("journey_action_tenant_idempotency_key_key")
                    .table(id("journey_action"))
                    .col(id("tenant"))
                    .col(id("idempotency_key"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (name, table, columns) in INDEXES {
            let mut index = Index::create();
            index.name(*name).table(id(table));
            for column in *columns {
                index.col(id(column));
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("journey_action_tenant_idempotency_key_key")
                    .table(id("journey_action"))
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
            .await?;
        for (name, table, _) in INDEXES.iter().rev() {
            manager
                .drop_index(Index::drop().name(*name).table(id(table)).to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("contact_email_idx")
                    .table(id("contact"))
                    .col(id("email"))
                    .to_owned(),
            )
            .await?;
        for table in TABLES.iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(id(table))
                        .drop_column(id("tenant"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
