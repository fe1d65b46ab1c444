//! The first schema: connections, the local contact store, links with their merge base, the
//! durable inbox and outbox, the sync log, field mappings, duplicate groups, outbound app
//! webhooks, idempotency keys, cursors and OAuth states.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn id(name: &'static str) -> Alias {
    Alias::new(name)
}

fn uuid_pk(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name))
        .uuid()
        .not_null()
        .primary_key()
        .to_owned()
}

fn ts(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name))
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn ts_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name))
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name)).text().not_null().to_owned()
}

fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name)).text().null().to_owned()
}

fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name)).json_binary().not_null().to_owned()
}

fn json_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name)).json_binary().null().to_owned()
}

fn big(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name)).big_integer().not_null().to_owned()
}

fn big_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name)).big_integer().null().to_owned()
}

fn int(name: &'static str, default: i32) -> ColumnDef {
    ColumnDef::new(id(name))
        .integer()
        .not_null()
        .default(default)
        .to_owned()
}

fn boolean(name: &'static str, default: bool) -> ColumnDef {
    ColumnDef::new(id(name))
        .boolean()
        .not_null()
        .default(default)
        .to_owned()
}

fn blob_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(id(name)).binary().null().to_owned()
}

fn fk(
    name: &'static str,
    from: (&'static str, &'static str),
    to: (&'static str, &'static str),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(id(from.0), id(from.1))
        .to(id(to.0), id(to.1))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn unique(name: &'static str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(id(table)).unique();
    for col in cols {
        index.col(id(col));
    }
    index.to_owned()
}

fn index(name: &'static str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(id(table));
    for col in cols {
        index.col(id(col));
    }
    index.to_owned()
}

/// Tables in creation order; `down` drops them in reverse.
const TABLES: &[&str] = &[
    "connection",
    "contact",
    "contact_field",
    "contact_list_member",
    "person_link",
    "inbox_event",
    "outbox_job",
    "sync_log",
    "field_mapping",
    "duplicate_group",
    "webhook_subscription",
    "outbound_delivery",
    "idempotency_key",
    "sync_cursor",
    "oauth_state",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let tables: Vec<TableCreateStatement> = vec![
            Table::create()
                .table(id("connection"))
                .col(uuid_pk("id"))
                .col(text("crm"))
                .col(text("name"))
                .col(text("state"))
                .col(text("auth_kind"))
                .col(text("api_domain"))
                .col(big_null("company_id"))
                .col(big_null("user_id"))
                .col(text_null("plan"))
                .col(blob_null("access_token_enc"))
                .col(blob_null("refresh_token_enc"))
                .col(ts_null("token_expires_at"))
                .col(text_null("webhook_user"))
                .col(blob_null("webhook_password_enc"))
                .col(text_null("apid_field_key"))
                .col(boolean("paused", false))
                .col(ts_null("last_success_at"))
                .col(text_null("last_error"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table(id("contact"))
                .col(uuid_pk("id"))
                .col(text_null("email"))
                .col(big("version"))
                .col(ts_null("archived_at"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table(id("contact_field"))
                .col(ColumnDef::new(id("contact_id")).uuid().not_null())
                .col(text("field_key"))
                .col(json("value"))
                .col(ts("updated_at"))
                .primary_key(
                    Index::create()
                        .name("contact_field_pkey")
                        .col(id("contact_id"))
                        .col(id("field_key")),
                )
                .foreign_key(&mut fk(
                    "contact_field_contact_id_fkey",
                    ("contact_field", "contact_id"),
                    ("contact", "id"),
                ))
                .to_owned(),
            Table::create()
                .table(id("contact_list_member"))
                .col(text("list_key"))
                .col(ColumnDef::new(id("contact_id")).uuid().not_null())
                .col(ts("added_at"))
                .primary_key(
                    Index::create()
                        .name("contact_list_member_pkey")
                        .col(id("list_key"))
                        .col(id("contact_id")),
                )
                .foreign_key(&mut fk(
                    "contact_list_member_contact_id_fkey",
                    ("contact_list_member", "contact_id"),
                    ("contact", "id"),
                ))
                .to_owned(),
            Table::create()
                .table(id("person_link"))
                .col(uuid_pk("id"))
                .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                .col(ColumnDef::new(id("contact_id")).uuid().not_null())
                .col(big("person_id"))
                .col(json("base"))
                .col(json("last_written"))
                .col(big("remote_version"))
                .col(big("local_version"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .foreign_key(&mut fk(
                    "person_link_connection_id_fkey",
                    ("person_link", "connection_id"),
                    ("connection", "id"),
                ))
                .foreign_key(&mut fk(
                    "person_link_contact_id_fkey",
                    ("person_link", "contact_id"),
                    ("contact", "id"),
                ))
                .to_owned(),
            Table::create()
                .table(id("inbox_event"))
                .col(uuid_pk("id"))
                .col(ColumnDef::new(id("connection_id")).uuid().null())
                .col(text("source"))
                .col(text("delivery_id"))
                .col(text("object"))
                .col(text("action"))
                .col(text_null("object_id"))
                .col(text("payload"))
                .col(text("state"))
                .col(int("attempts", 0))
                .col(text_null("last_error"))
                .col(ts("received_at"))
                .col(ts_null("processed_at"))
                .to_owned(),
            Table::create()
                .table(id("outbox_job"))
                .col(uuid_pk("id"))
                .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                .col(text("kind"))
                .col(text("ordering_key"))
                .col(int("priority", 0))
                .col(json("payload"))
                .col(text("state"))
                .col(int("attempts", 0))
                .col(ts("run_at"))
                .col(ts_null("locked_until"))
                .col(text_null("last_error"))
                .col(ColumnDef::new(id("last_status")).integer().null())
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .foreign_key(&mut fk(
                    "outbox_job_connection_id_fkey",
                    ("outbox_job", "connection_id"),
                    ("connection", "id"),
                ))
                .to_owned(),
            Table::create()
                .table(id("sync_log"))
                .col(uuid_pk("id"))
                .col(ColumnDef::new(id("connection_id")).uuid().null())
                .col(ts("at"))
                .col(text("level"))
                .col(text("direction"))
                .col(text("kind"))
                .col(ColumnDef::new(id("contact_id")).uuid().null())
                .col(big_null("person_id"))
                .col(ColumnDef::new(id("status")).integer().null())
                .col(text("message"))
                .col(text_null("remote_error"))
                .col(text_null("hint"))
                .col(json_null("detail"))
                .to_owned(),
            Table::create()
                .table(id("field_mapping"))
                .col(uuid_pk("id"))
                .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                .col(text("local_field"))
                .col(text("remote_field"))
                .col(text("remote_type"))
                .col(text("direction"))
                .col(text_null("owner"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .foreign_key(&mut fk(
                    "field_mapping_connection_id_fkey",
                    ("field_mapping", "connection_id"),
                    ("connection", "id"),
                ))
                .to_owned(),
            Table::create()
                .table(id("duplicate_group"))
                .col(uuid_pk("id"))
                .col(ColumnDef::new(id("connection_id")).uuid().null())
                .col(text("kind"))
                .col(text("group_key"))
                .col(text("state"))
                .col(json("members"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table(id("webhook_subscription"))
                .col(uuid_pk("id"))
                .col(text("url"))
                .col(blob_null("secret_enc"))
                .col(boolean("enabled", true))
                .col(int("consecutive_failures", 0))
                .col(ts_null("disabled_at"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .to_owned(),
            Table::create()
                .table(id("outbound_delivery"))
                .col(uuid_pk("id"))
                .col(ColumnDef::new(id("subscription_id")).uuid().not_null())
                .col(ColumnDef::new(id("contact_id")).uuid().null())
                .col(text("event_type"))
                .col(json("payload"))
                .col(text("state"))
                .col(int("attempts", 0))
                .col(ts("next_attempt_at"))
                .col(ColumnDef::new(id("last_status")).integer().null())
                .col(text_null("last_error"))
                .col(ts("created_at"))
                .col(ts("updated_at"))
                .foreign_key(&mut fk(
                    "outbound_delivery_subscription_id_fkey",
                    ("outbound_delivery", "subscription_id"),
                    ("webhook_subscription", "id"),
                ))
                .to_owned(),
            Table::create()
                .table(id("idempotency_key"))
                .col(text("scope"))
                .col(text("key"))
                .col(text("request_hash"))
                .col(ColumnDef::new(id("response_status")).integer().not_null())
                .col(json("response_body"))
                .col(ts("created_at"))
                .primary_key(
                    Index::create()
                        .name("idempotency_key_pkey")
                        .col(id("scope"))
                        .col(id("key")),
                )
                .to_owned(),
            Table::create()
                .table(id("sync_cursor"))
                .col(ColumnDef::new(id("connection_id")).uuid().not_null())
                .col(text("name"))
                .col(text("value"))
                .col(ts("updated_at"))
                .primary_key(
                    Index::create()
                        .name("sync_cursor_pkey")
                        .col(id("connection_id"))
                        .col(id("name")),
                )
                .foreign_key(&mut fk(
                    "sync_cursor_connection_id_fkey",
                    ("sync_cursor", "connection_id"),
                    ("connection", "id"),
                ))
                .to_owned(),
            Table::create()
                .table(id("oauth_state"))
                .col(text("nonce").primary_key())
                .col(ColumnDef::new(id("connection_id")).uuid().null())
                .col(ts("created_at"))
                .col(ts_null("used_at"))
                .to_owned(),
        ];
        for table in tables {
            manager.create_table(table).await?;
        }

        let indexes = vec![
            index("contact_email_idx", "contact", &["email"]),
            index("contact_updated_at_idx", "contact", &["updated_at", "id"]),
            unique(
                "person_link_connection_person_key",
                "person_link",
                &["connection_id", "person_id"],
            ),
            unique(
                "person_link_connection_contact_key",
                "person_link",
                &["connection_id", "contact_id"],
            ),
            unique(
                "inbox_event_source_delivery_key",
                "inbox_event",
                &["source", "delivery_id"],
            ),
            index(
                "inbox_event_state_received_idx",
                "inbox_event",
                &["state", "received_at"],
            ),
            index(
                "outbox_job_state_run_at_idx",
                "outbox_job",
                &["state", "run_at"],
            ),
            index(
                "outbox_job_ordering_key_idx",
                "outbox_job",
                &["connection_id", "ordering_key", "state"],
            ),
            index("sync_log_at_idx", "sync_log", &["at"]),
            index("sync_log_contact_idx", "sync_log", &["contact_id"]),
            index("sync_log_person_idx", "sync_log", &["person_id"]),
            index("sync_log_kind_idx", "sync_log", &["kind"]),
            unique(
                "field_mapping_connection_local_key",
                "field_mapping",
                &["connection_id", "local_field"],
            ),
            unique(
                "field_mapping_connection_remote_key",
                "field_mapping",
                &["connection_id", "remote_field"],
            ),
            unique(
                "duplicate_group_kind_key",
                "duplicate_group",
                &["connection_id", "kind", "group_key"],
            ),
            index(
                "outbound_delivery_state_next_idx",
                "outbound_delivery",
                &["state", "next_attempt_at"],
            ),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager
                .drop_table(Table::drop().table(id(table)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
