//! Helpers for tandem's integration tests: a fresh database per test (SQLite file, or a new
//! Postgres database when `TANDEM_TEST_DATABASE_URL` names a server), and `spawn_app()` which
//! starts tandem on `127.0.0.1:0`.

// Helpers may unwrap: a failure is a failed test.
#![allow(clippy::unwrap_used)]

pub mod chaos;
pub mod child;
pub mod fields;
pub mod mirror;
pub mod mirror_chaos;
pub mod receiver;
pub mod salesforce;
pub mod sf_chaos;
pub mod trigger_chaos;

use std::net::SocketAddr;

use anyhow::Context;
use pipedrive_sim::{SimConfig, Simulator};
use sea_orm::{ConnectionTrait, Database, Statement};
use tandem_engine::app::Application;
use tandem_engine::config::{Redacted, Settings};
use tandem_engine::store::Store;
use tandem_engine::sync::{connections, worker, Engine};
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

/// A database created for one test. It is removed when the last clone is dropped (the SQLite
/// file with its journal files, or the Postgres database), so a whole run leaves no databases
/// behind on the disk.
#[derive(Debug, Clone)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    _removal: Option<std::sync::Arc<Removal>>,
}

/// What removes a test database once nothing uses it any more.
#[derive(Debug)]
enum Removal {
    SqliteFile(std::path::PathBuf),
    Postgres { server: String, name: String },
}

impl Drop for Removal {
    fn drop(&mut self) {
        match self {
            Removal::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    // Absent journal files are normal; nothing else can be done about the rest.
                    std::fs::remove_file(file).ok();
                }
            }
            Removal::Postgres { server, name } => {
                let server = server.clone();
                let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                // Drop may run inside the test's runtime, which cannot be blocked on: the
                // statement runs on a thread of its own. `WITH (FORCE)` ends sessions a
                // stopped app or child process left open.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        let admin = Database::connect(&server).await?;
                        admin
                            .execute(Statement::from_string(
                                admin.get_database_backend(),
                                statement,
                            ))
                            .await?;
                        admin.close().await?;
                        anyhow::Ok(())
                    })
                })
                .join();
                if let Ok(Err(error)) = dropped {
                    eprintln!("the test database {name} was not dropped: {error:#}");
                }
            }
        }
    }
}

impl TestDatabase {
    /// A database at `url` that the test itself cleans up.
    pub fn at(url: String, name: &str) -> Self {
        Self {
            url,
            name: name.to_owned(),
            _removal: None,
        }
    }

    pub async fn create() -> anyhow::Result<Self> {
        Self::create_on(postgres_server_url().as_deref()).await
    }

    /// A fresh Postgres database on `server`, or `None` without a server (the caller then uses
    /// a SQLite file beside its other files).
    pub async fn on_postgres(server: Option<&str>) -> anyhow::Result<Option<Self>> {
        match server {
            Some(server) => Ok(Some(Self::create_on(Some(server)).await?)),
            None => Ok(None),
        }
    }

    /// A fresh database on the Postgres server `server` (a maintenance-database URL), or a
    /// SQLite file when `None`.
    pub async fn create_on(server: Option<&str>) -> anyhow::Result<Self> {
        let name = format!("tandem_test_{}", Uuid::new_v4().simple());
        match server.map(str::to_owned) {
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
                let url = format!("{base}/{name}");
                Ok(Self {
                    url,
                    _removal: Some(std::sync::Arc::new(Removal::Postgres {
                        server,
                        name: name.clone(),
                    })),
                    name,
                })
            }
            None => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                Ok(Self {
                    url: format!("sqlite://{}", path.display()),
                    name,
                    _removal: Some(std::sync::Arc::new(Removal::SqliteFile(path))),
                })
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres")
    }
}

/// Settings for a test: defaults, a fresh database, port 0, workers off (tests drive them),
/// fast retries, a fresh encryption key.
pub fn test_settings(database: &TestDatabase) -> Settings {
    let mut settings = figment_free_defaults();
    settings.http.port = 0;
    settings.database.url = Redacted::new(database.url.clone());
    settings.database.max_connections = 5;
    settings.workers.enabled = false;
    settings.workers.retry_initial_ms = 2;
    settings.workers.retry_cap_ms = 40;
    settings.workers.max_attempts = 40;
    settings.security.admin_token = Redacted::new("test-admin-token".to_owned());
    settings.security.encryption_keys =
        vec![Redacted::new(tandem_engine::crypto::Vault::generate_key())];
    settings.security.api_keys = vec![Redacted::new(TEST_API_KEY.to_owned())];
    settings.app_webhooks.inbound_secrets = vec![Redacted::new(TEST_APP_SECRET.to_owned())];
    settings.app_webhooks.retry_initial_ms = 2;
    settings.app_webhooks.retry_cap_ms = 40;
    // The tests' receivers listen on the loopback (production allows no such host).
    settings.security.egress_allowed_hosts = vec!["127.0.0.1".to_owned()];
    settings
}

/// The API key tests present on `/api/v1`.
pub const TEST_API_KEY: &str = "test-api-key-0123456789";

/// The secret tests sign `POST /webhooks/app` events with.
pub const TEST_APP_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The compiled-in defaults, without reading any file or environment.
fn figment_free_defaults() -> Settings {
    Settings::defaults()
}

/// A running tandem for one test, with its own Pipedrive simulator.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub store: Store,
    pub engine: Engine,
    pub database: TestDatabase,
    pub http: reqwest::Client,
    pub sim: Simulator,
    pub settings: Settings,
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

impl TestApp {
    /// A request to the REST API with the test API key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(TEST_API_KEY)
    }

    /// `POST /api/v1/actions/{action}` with an idempotency key; (status, body: `null` when
    /// the answer is not JSON).
    pub async fn post_action(
        &self,
        action: &str,
        key: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let answer = self
            .api(reqwest::Method::POST, &format!("/api/v1/actions/{action}"))
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("the app API answers");
        let status = answer.status();
        (
            status,
            answer.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// `POST /webhooks/app`, signed with `secret` as message `id` at `timestamp`.
    pub async fn post_app_event(
        &self,
        secret: &str,
        id: &str,
        timestamp: i64,
        body: &str,
    ) -> reqwest::Response {
        let secret = tandem_webhooks::standard::Secret::parse(secret).unwrap();
        let signed = tandem_webhooks::standard::sign(&secret, id, timestamp, body.as_bytes());
        self.http
            .post(format!("{}/webhooks/app", self.base_url))
            .header("content-type", "application/json")
            .header("webhook-id", signed.id)
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", signed.signature)
            .body(body.to_owned())
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

/// Starts tandem on `127.0.0.1:0` with a fresh, migrated database, and a simulator with
/// fast webhook retries.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(
        SimConfig {
            time_scale: 0.001,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await
}

/// As [`spawn_app`], with a simulator configuration and a settings tweak.
pub async fn spawn_app_with(sim_config: SimConfig, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let database = TestDatabase::create().await.expect("test database");
    spawn_app_on(database, sim_config, tweak).await
}

/// As [`spawn_app_with`], on a given database (benchmarks pick SQLite or Postgres per run).
pub async fn spawn_app_on(
    database: TestDatabase,
    sim_config: SimConfig,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    tandem_engine::telemetry::init_for_tests(test_log_enabled());
    let sim = pipedrive_sim::start(sim_config)
        .await
        .expect("simulator starts");
    let mut settings = test_settings(&database);
    settings.pipedrive.oauth_base_url = sim.base_url().to_owned();
    // The simulator under its other name too (tests move the api_domain there).
    settings
        .pipedrive
        .allowed_api_domains
        .push(sim.base_url().replace("127.0.0.1", "localhost"));
    settings.pipedrive.client_id = "sim-client".to_owned();
    settings.pipedrive.client_secret = Redacted::new("sim-secret".to_owned());
    tweak(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("tandem builds");
    let engine = app.engine().clone();
    let addr = app.addr();
    let store = app.state().store.clone();
    let shutdown = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        store,
        engine,
        database,
        http: reqwest::Client::builder().build().expect("http client"),
        sim,
        settings,
        shutdown,
    }
}

impl TestApp {
    /// Stops this tandem without draining anything (as a crash would leave it) and starts a
    /// new one on the same database and simulator.
    pub async fn restart(&mut self) {
        self.shutdown.cancel();
        let app = Application::build(self.settings.clone())
            .await
            .expect("tandem restarts");
        self.addr = app.addr();
        self.base_url = format!("http://{}", self.addr);
        self.store = app.state().store.clone();
        self.engine = app.engine().clone();
        self.shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(self.shutdown.clone()));
    }

    /// Posts a Pipedrive webhook body to this tandem with the connection's credentials.
    pub async fn post_pipedrive_webhook(
        &self,
        connection: Uuid,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let (user, password) =
            connections::webhook_credentials(&self.engine, self.store.db(), connection.into())
                .await
                .unwrap()
                .expect("the connection has webhook credentials");
        self.http
            .post(format!("{}/webhooks/pipedrive/{connection}", self.base_url))
            .basic_auth(user, Some(password))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Connects the simulator's company with its API token (as `tandem connections add`).
    pub async fn connect_pipedrive(&self) -> Uuid {
        let connected = connections::connect(
            &self.engine,
            connections::NewConnection {
                api_domain: self.sim.base_url().to_owned(),
                auth_kind: "api_token",
                access_token: self.sim.handle().config().api_token.clone(),
                refresh_token: None,
                token_expires_at: None,
            },
        )
        .await
        .expect("connects to the simulator");
        connected.id.uuid()
    }

    /// Connects one more simulator company (its own API token and persons) alongside the
    /// connections the database already has, for the default tenant, and runs its initial sync.
    pub async fn connect_another_company(
        &self,
        persons: usize,
    ) -> (Uuid, pipedrive_sim::CompanyAccess) {
        self.connect_company_for(&tandem_core::TenantId::default(), persons)
            .await
    }

    /// Connects one more simulator company (its own API token and `persons` persons) for
    /// `tenant`, alongside the connections the database already has, and runs its initial
    /// sync.
    pub async fn connect_company_for(
        &self,
        tenant: &tandem_core::TenantId,
        persons: usize,
    ) -> (Uuid, pipedrive_sim::CompanyAccess) {
        let company = self.sim.handle().add_company(persons);
        let connected = tandem_engine::sync::connections::connect_alongside(
            &self.engine,
            tandem_engine::sync::connections::NewConnection {
                api_domain: self.sim.base_url().to_owned(),
                auth_kind: "api_token",
                access_token: company.api_token.clone(),
                refresh_token: None,
                token_expires_at: None,
            },
            tenant,
        )
        .await
        .expect("another company connects");
        tandem_engine::sync::inbound::poller::initial_sync(&self.engine, connected.id, |_| {})
            .await
            .expect("its initial sync");
        (connected.id.uuid(), company)
    }

    /// Connects and runs the initial sync to the end.
    pub async fn connect_and_sync(&self) -> Uuid {
        let id = self.connect_pipedrive().await;
        tandem_engine::sync::inbound::poller::initial_sync(&self.engine, id.into(), |_| {})
            .await
            .expect("initial sync");
        id
    }

    /// Runs tandem's workers until nothing is pending.
    pub async fn drive(&self) {
        worker::drive_until_idle(&self.engine)
            .await
            .expect("workers run");
    }

    /// Waits (bounded) until the simulator has delivered at least `count` person webhooks
    /// to tandem, then drives the workers.
    pub async fn await_person_webhooks(&self, count: usize) {
        self.sim
            .handle()
            .wait_for_deliveries(std::time::Duration::from_secs(20), |deliveries| {
                deliveries
                    .iter()
                    .filter(|d| d.delivered && d.entity == "person")
                    .count()
                    >= count
            })
            .await;
        self.drive().await;
    }

    /// A local contact's fields.
    pub async fn contact(&self, id: Uuid) -> tandem_engine::sync::app::contacts::LocalContact {
        tandem_engine::sync::app::contacts::load(self.store.db(), id.into())
            .await
            .expect("db")
            .expect("contact exists")
    }
}

impl TestApp {
    /// An admin API request with the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth("test-admin-token")
    }

    /// An admin console page's HTML, fetched with the admin token.
    pub async fn admin_page(&self, path: &str) -> String {
        self.admin(reqwest::Method::GET, path)
            .send()
            .await
            .expect("the console answers")
            .text()
            .await
            .expect("a page")
    }

    /// Runs "Connect with Pipedrive" end to end over HTTP (start → the simulator's consent →
    /// callback) and returns the callback's answer.
    pub async fn oauth_connect(&self, confirm_reset: bool) -> reqwest::Response {
        let query = if confirm_reset {
            "?confirm_reset=true"
        } else {
            ""
        };
        self.admin(
            reqwest::Method::GET,
            &format!("/connections/pipedrive/connect{query}"),
        )
        .send()
        .await
        .expect("the OAuth dance reaches tandem")
    }

    /// The only connection's id.
    pub async fn connection_id(&self) -> Uuid {
        connections::active_id(self.store.db(), &tandem_core::TenantId::default())
            .await
            .unwrap()
            .expect("a connection exists")
            .uuid()
    }

    /// Replaces tandem's person webhook at the simulator with one sending `password`, as
    /// someone with the API token would (tandem then refuses its deliveries with 401).
    pub async fn replace_person_webhook(&self, password: &str) {
        let sim = self.sim.handle();
        let token = sim.config().api_token.clone();
        let hook = sim
            .webhooks()
            .into_iter()
            .find(|w| w["event_object"] == "person")
            .expect("tandem's person webhook");
        let v1 = format!("{}/v1/webhooks", sim.base_url());
        let deleted = self
            .http
            .delete(format!("{v1}/{}", hook["id"]))
            .header("x-api-token", &token)
            .send()
            .await
            .expect("the simulator answers");
        assert!(deleted.status().is_success());
        let created = self
            .http
            .post(&v1)
            .header("x-api-token", &token)
            .json(&serde_json::json!({
                "subscription_url": hook["subscription_url"], "event_action": "*",
                "event_object": "person", "http_auth_user": hook["http_auth_user"],
                "http_auth_password": password, "version": "2.0", "name": "someone else",
            }))
            .send()
            .await
            .expect("the simulator answers");
        let status = created.status();
        assert!(
            status.is_success(),
            "{status}: {}",
            created.text().await.unwrap_or_default()
        );
    }

    /// Sync-log entries of a kind, newest first.
    pub async fn log_entries(&self, kind: &str) -> Vec<tandem_engine::sync::synclog::LogRow> {
        tandem_engine::sync::synclog::list(
            self.store.db(),
            &tandem_engine::sync::synclog::LogFilter {
                kind: Some(kind.to_owned()),
                limit: 500,
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }
}

/// A person id from a number the simulator handed out (always positive).
pub fn pid(id: i64) -> tandem_core::PersonId {
    tandem_core::PersonId::new(id).expect("a person id is positive")
}
