//! Helpers for tandem's integration tests: a fresh database per test (SQLite file, or a new
//! Postgres database when `TANDEM_TEST_DATABASE_URL` names a server), and `spawn_app()` which
//! starts tandem on `127.0.0.1:0`.

use std::net::SocketAddr;

use anyhow::Context;
use sea_orm::{ConnectionTrait, Database, Statement};
use tandem_engine::app::Application;
use tandem_engine::config::{Redacted, Settings};
use tandem_engine::store::Store;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The Postgres server URL (a maintenance database such as `/postgres`) the suite runs
/// against, if any. Without it, every test gets its own SQLite file.
#[allow(clippy::disallowed_methods)] // tests read their own switches, not tandem's settings
pub fn postgres_server_url() -> Option<String> {
    std::env::var("TANDEM_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

#[allow(clippy::disallowed_methods)]
fn test_log_enabled() -> bool {
    std::env::var_os("TEST_LOG").is_some()
}

/// A database created for one test.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

impl TestDatabase {
    pub async fn create() -> anyhow::Result<Self> {
        let name = format!("tandem_test_{}", Uuid::new_v4().simple());
        match postgres_server_url() {
            Some(server) => {
                let admin = Database::connect(&server)
                    .await
                    .context("connecting to the test Postgres")?;
                admin
                    .execute(Statement::from_string(
                        admin.get_database_backend(),
                        format!("CREATE DATABASE \"{name}\""),
                    ))
                    .await?;
                admin.close().await?;
                let base = server
                    .rsplit_once('/')
                    .map_or(server.as_str(), |(base, _)| base);
                Ok(Self {
                    url: format!("{base}/{name}"),
                    name,
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Ok(Self {
                    url: format!("sqlite://{}", path.display()),
                    name,
                })
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

/// Settings for a test: defaults, a fresh database, port 0, workers off (tests drive them).
pub fn test_settings(database: &TestDatabase) -> Settings {
    let mut settings = figment_free_defaults();
    settings.http.port = 0;
    settings.database.url = Redacted::new(database.url.clone());
    settings.database.max_connections = 5;
    settings.workers.enabled = false;
    settings.security.admin_token = Redacted::new("test-admin-token".to_owned());
    settings
}

/// The compiled-in defaults, without reading any file or environment.
fn figment_free_defaults() -> Settings {
    Settings::defaults()
}

/// A running tandem for one test.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub store: Store,
    pub database: TestDatabase,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl TestApp {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request reaches tandem")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts tandem on `127.0.0.1:0` with a fresh, migrated database.
pub async fn spawn_app() -> TestApp {
    tandem_engine::telemetry::init_for_tests(test_log_enabled());
    let database = TestDatabase::create().await.expect("test database");
    let settings = test_settings(&database);
    let app = Application::build(settings).await.expect("tandem builds");
    let addr = app.addr();
    let store = app.state().store.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        store,
        database,
        http: reqwest::Client::builder().build().expect("http client"),
        shutdown,
    }
}
