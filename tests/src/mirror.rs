//! Helpers for the mirror's tests: a source on a test app's connection, extraction of every
//! stream, and reading the mirror's tables.

use pipedrive_sim::SeedCounts;
use tandem_engine::crm::pipedrive::client::Priority;
use tandem_engine::mirror::{self, ExtractOptions, Replication, Source, StreamReport};
use tandem_engine::store::mirror::MirrorDb;
use uuid::Uuid;

use crate::TestApp;

/// A small company with every kind of object.
pub fn small_company() -> SeedCounts {
    SeedCounts {
        organizations: 40,
        deals: 1_200,
        activities: 120,
        notes: 60,
        leads: 30,
        products: 10,
    }
}

/// The mirror's source for a connection of `app` (background priority, as the live mirror).
pub async fn source(app: &TestApp, connection: Uuid) -> Source {
    let conn = tandem_engine::sync::connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    Source::new(&app.engine.crm, conn.session, Priority::Background).unwrap()
}

/// Extracts every stream (the connector's default modes) into `db`.
pub async fn extract_all(
    source: &Source,
    db: &MirrorDb,
    options: ExtractOptions,
) -> Vec<StreamReport> {
    mirror::extract(
        source,
        db,
        &Replication::all(None).streams,
        options,
        &|_, _, _| {},
    )
    .await
    .unwrap()
}

/// The report of `stream`.
pub fn report<'a>(reports: &'a [StreamReport], stream: &str) -> &'a StreamReport {
    reports.iter().find(|r| r.stream == stream).unwrap()
}

/// The first column of a query's rows, as text.
pub async fn texts(db: &MirrorDb, sql: &str) -> Vec<Option<String>> {
    db.query_texts(sql).await.unwrap()
}

/// One number from a query (`SELECT COUNT(*) …`).
pub async fn number(db: &MirrorDb, sql: &str) -> i64 {
    texts(db, sql).await[0]
        .as_deref()
        .unwrap()
        .parse::<f64>()
        .unwrap() as i64
}

/// The quoted name of `stream`'s table in `db`.
pub fn table(db: &MirrorDb, stream: &str) -> String {
    db.sql_name(&db.table(stream))
}

/// Live rows of a stream's table.
pub async fn live_rows(db: &MirrorDb, stream: &str) -> i64 {
    number(
        db,
        &format!(
            "SELECT COUNT(*) FROM {} WHERE deleted_at IS NULL",
            table(db, stream)
        ),
    )
    .await
}
