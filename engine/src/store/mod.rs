//! Storage: the only module that talks to sea-orm. SQLite (the embedded default, WAL, one
//! writer connection) or Postgres (the scale-out store), chosen by the URL.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, SqlxSqliteConnector};
use tandem_migrations::{Migrator, MigratorTrait};

use crate::config::{DatabaseKind, DatabaseSettings};

mod conn;
pub mod connections;
pub mod contact_search;
pub mod contacts;
pub mod crm_conditions;
pub mod crm_events;
pub mod crm_persons;
pub mod crm_related;
pub mod cursors;
pub mod duplicates;
pub mod emails;
mod entities;
mod error;
pub mod field_mappings;
pub mod idempotency;
pub mod journey_actions;
pub mod leases;
pub mod links;
pub mod merged_persons;
pub mod metrics;
pub mod mirror;
pub mod oauth_states;
pub mod organizations;
pub mod queue;
pub mod record_keys;
pub mod sessions;
pub mod stats;
pub mod subscriptions;
pub mod synclog;

pub use conn::{Conn, Tx};
pub use error::{Constraint, StoreError};

/// Log directives that keep sea-orm's statement spans (which carry bound values: e-mail
/// addresses, names, tokens) out of the log, whatever the configuration says.
pub const PII_SAFE_LOG_DIRECTIVES: &[&str] = &["sea_orm=warn"];

/// Most bind parameters one statement carries. SQLite's own limit is 32,766 (999 before 3.32)
/// and Postgres' 65,535; multi-row statements stay far below both, and the prepared statement
/// of a full chunk is reused from the statement cache.
pub const MAX_BIND_PARAMS: usize = 900;

/// `$a, $b, …`: `count` numbered placeholders for a row of a multi-row statement, after the
/// `bound` values already in it.
pub(crate) fn placeholders(bound: usize, count: usize) -> String {
    (bound + 1..=bound + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Inserts `rows` (each with `columns` bound values) in multi-row statements of at most
/// [`MAX_BIND_PARAMS`] parameters each.
pub(crate) async fn insert_chunked<A, C>(
    db: &C,
    rows: Vec<A>,
    columns: usize,
) -> Result<(), StoreError>
where
    A: sea_orm::ActiveModelTrait,
    <A::Entity as sea_orm::EntityTrait>::Model: sea_orm::IntoActiveModel<A>,
    C: ConnectionTrait,
{
    use sea_orm::EntityTrait;
    let per_statement = (MAX_BIND_PARAMS / columns.max(1)).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        A::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// A stored tenant (`tenant` columns) as the typed id; a value the type refuses is corruption.
pub(crate) fn parse_tenant(text: &str) -> Result<tandem_core::TenantId, StoreError> {
    tandem_core::TenantId::parse(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A handle on the database, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    kind: DatabaseKind,
}

impl Store {
    /// Opens (and for SQLite, creates) the database. Does not migrate.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let url = settings.url.expose();
        let kind = settings.kind();
        let db = match kind {
            DatabaseKind::Sqlite => {
                create_private_sqlite_file(url)?;
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(|e| StoreError::Connect(e.to_string()))?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_millis(settings.busy_timeout_ms))
                    .foreign_keys(true)
                    .pragma("wal_autocheckpoint", "8192");
                // One connection: SQLite has one writer; a single connection serialises writers in
                // tandem instead of failing with "database is locked" under bursts.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    // The connection is a file handle in this process: pinging it before every
                    // use (sqlx's default, meant for network databases) costs a round trip to
                    // its worker thread and finds nothing.
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options)
                    .await
                    .map_err(|e| StoreError::Connect(e.to_string()))?;
                SqlxSqliteConnector::from_sqlx_sqlite_pool(pool)
            }
            DatabaseKind::Postgres => {
                let mut options = ConnectOptions::new(url.clone());
                options
                    .max_connections(settings.max_connections)
                    .min_connections(1)
                    .connect_timeout(Duration::from_secs(10))
                    .acquire_timeout(Duration::from_secs(30))
                    .sqlx_logging(false);
                Database::connect(options)
                    .await
                    .map_err(|e| StoreError::Connect(e.to_string()))?
            }
        };
        Ok(Self { db, kind })
    }

    /// Every secret stored encrypted, as `(what, ciphertext)`: connections' tokens and webhook
    /// passwords, webhook subscriptions' secrets. Start-up checks that the keys open them.
    pub async fn sealed_secrets(&self) -> Result<Vec<(&'static str, Vec<u8>)>, StoreError> {
        use sea_orm::EntityTrait;
        let mut sealed = Vec::new();
        for row in entities::connection::Entity::find().all(&self.db).await? {
            let named = [
                ("a Pipedrive access token", row.access_token_enc),
                ("a Pipedrive refresh token", row.refresh_token_enc),
                ("a Pipedrive webhook password", row.webhook_password_enc),
            ];
            sealed.extend(named.into_iter().filter_map(|(what, s)| Some((what, s?))));
        }
        for row in entities::webhook_subscription::Entity::find()
            .all(&self.db)
            .await?
        {
            if let Some(secret) = row.secret_enc {
                sealed.push(("a webhook subscription secret", secret));
            }
        }
        Ok(sealed)
    }

    /// The raw connection, for the integration tests' own SQL; engine code goes through the
    /// repositories.
    #[doc(hidden)]
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    pub async fn migrate_up(&self) -> Result<(), StoreError> {
        Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Rolls back `steps` migrations, or all of them.
    pub async fn migrate_down(&self, steps: Option<u32>) -> Result<(), StoreError> {
        Migrator::down(&self.db, steps).await?;
        Ok(())
    }

    /// Names of the applied and the pending migrations.
    pub async fn migration_status(&self) -> Result<MigrationStatus, StoreError> {
        let applied = Migrator::get_applied_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        let pending = Migrator::get_pending_migrations(&self.db)
            .await?
            .iter()
            .map(|m| m.name().to_owned())
            .collect();
        Ok(MigrationStatus { applied, pending })
    }

    /// Ready = the database answers and every migration is applied.
    pub async fn readiness(&self) -> Result<(), Unready> {
        self.db
            .execute_unprepared("SELECT 1")
            .await
            .map_err(|_| Unready::DatabaseUnreachable)?;
        let pending = Migrator::get_pending_migrations(&self.db)
            .await
            .map_err(|_| Unready::DatabaseUnreachable)?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(Unready::MigrationsPending(pending.len()))
        }
    }

    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await?;
        Ok(())
    }
}

/// Creates a new SQLite database file readable by its owner only (0600) before SQLite opens it;
/// SQLite gives its `-wal` and `-shm` files the same mode. An existing file is left as it is.
fn create_private_sqlite_file(url: &str) -> Result<(), StoreError> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Connect(format!("cannot create {path}: {e}"))),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unready {
    #[error("the database does not answer")]
    DatabaseUnreachable,
    #[error("{0} migration(s) pending")]
    MigrationsPending(usize),
}
