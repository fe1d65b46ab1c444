use sea_orm_migration::SchemaManager;
use tandem_engine::config::Redacted;
use tandem_engine::store::Store;
use tandem_tests::{test_settings, TestDatabase};

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
    "journey_action",
    "revoked_session",
];

async fn existing_tables(store: &Store) -> Vec<&'static str> {
    let manager = SchemaManager::new(store.db());
    let mut present = Vec::new();
    for table in TABLES {
        if manager.has_table(*table).await.unwrap() {
            present.push(*table);
        }
    }
    present
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again_on_an_empty_database() {
    let database = TestDatabase::create().await.unwrap();
    let mut settings = test_settings(&database);
    settings.database.url = Redacted::new(database.url.clone());
    let store = Store::connect(&settings.database).await.unwrap();
    assert!(existing_tables(&store).await.is_empty());

    store.migrate_up().await.unwrap();
    assert_eq!(existing_tables(&store).await, TABLES);
    let status = store.migration_status().await.unwrap();
    assert!(status.pending.is_empty());
    assert!(!status.applied.is_empty());

    store.migrate_down(None).await.unwrap();
    assert!(
        existing_tables(&store).await.is_empty(),
        "down removes every table"
    );
    assert!(store.migration_status().await.unwrap().applied.is_empty());

    store.migrate_up().await.unwrap();
    assert_eq!(existing_tables(&store).await, TABLES);
    store.readiness().await.unwrap();
}

#[tokio::test]
async fn named_unique_constraints_reject_a_second_link_for_the_same_person() {
    use sea_orm::{ConnectionTrait, Statement};
    let database = TestDatabase::create().await.unwrap();
    let store = Store::connect(&test_settings(&database).database)
        .await
        .unwrap();
    store.migrate_up().await.unwrap();
    let db = store.db();
    let backend = db.get_database_backend();
    let now = "2026-11-23T00:00:00Z";
    let conn = uuid::Uuid::new_v4();
    let (c1, c2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    db.execute(Statement::from_sql_and_values(
        backend,
        "INSERT INTO connection (id, crm, name, state, auth_kind, api_domain, paused, created_at, updated_at) VALUES ($1, 'pipedrive', 'x', 'connected', 'api_token', 'http://127.0.0.1', false, $2, $2)",
        [conn.into(), chrono_now(now).into()],
    ))
    .await
    .unwrap();
    for contact in [c1, c2] {
        db.execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO contact (id, email, version, created_at, updated_at) VALUES ($1, NULL, 1, $2, $2)",
            [contact.into(), chrono_now(now).into()],
        ))
        .await
        .unwrap();
    }
    let link = |contact: uuid::Uuid| {
        Statement::from_sql_and_values(
            backend,
            "INSERT INTO person_link (id, connection_id, contact_id, person_id, base, last_written, remote_version, local_version, created_at, updated_at) VALUES ($1, $2, $3, 42, '{}', '{}', 0, 0, $4, $4)",
            [uuid::Uuid::new_v4().into(), conn.into(), contact.into(), chrono_now(now).into()],
        )
    };
    db.execute(link(c1)).await.unwrap();
    let error = db
        .execute(link(c2))
        .await
        .expect_err("person 42 is already linked")
        .to_string();
    assert!(
        error.contains("person_link_connection_person_key")
            || error.contains(
                "UNIQUE constraint failed: person_link.connection_id, person_link.person_id"
            ),
        "{error}"
    );
}

fn chrono_now(text: &str) -> chrono::DateTime<chrono::Utc> {
    text.parse().unwrap()
}
