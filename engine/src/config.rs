//! The one place configuration is read: compiled-in defaults (`config.default.toml`) → an
//! optional TOML file → `TANDEM_…` environment variables (`__` separates sections). Everything
//! is validated into typed values at start-up; a bad value stops the process with a message
//! naming the key.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize, Serializer};

/// The compiled-in defaults, with a comment on every key.
pub const DEFAULTS_TOML: &str = include_str!("../../config.default.toml");

/// The shortest admin token or API key tandem accepts.
pub const MIN_SECRET_LEN: usize = 16;

/// File read when no `--config` is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "tandem.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("invalid configuration: `{key}` {problem}")]
    Key { key: &'static str, problem: String },
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
}

/// A secret that never shows in `Debug` output, logs or `tandem config`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Redacted<T>(T);

impl<T> Redacted<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> Serialize for Redacted<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("[redacted]")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub telemetry: TelemetrySettings,
    pub workers: WorkerSettings,
    pub security: SecuritySettings,
    pub pipedrive: PipedriveSettings,
    pub salesforce: SalesforceSettings,
    pub admin: AdminSettings,
    pub app_webhooks: AppWebhookSettings,
    pub mirror: MirrorSettings,
    pub metrics: MetricsSettings,
}

/// The Pipedrive mirror (`tandem extract` and the live mirror of connections that switch it on).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorSettings {
    /// Seconds between two incremental passes of every stream (the webhooks' backstop).
    pub poll_interval_secs: u64,
    /// Seconds between two full passes that mark rows Pipedrive no longer lists as deleted.
    pub delete_pass_interval_secs: u64,
    /// Days a row marked deleted is kept; 0 keeps it for ever.
    pub purge_deleted_after_days: u64,
    /// Most pages (of up to 500 records) one round of a connection's live mirror reads before
    /// the worker comes back to it; at least 1.
    pub pages_per_round: u64,
}

/// `GET /metrics` and the console's minute series ([`crate::meter`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Bearer token for `/metrics`; set, it serves `/metrics` on the main port.
    pub token: Redacted<String>,
    /// `host:port` of a listener of its own for `/metrics`; empty for none.
    pub addr: String,
    /// Days the console's minute series are kept; 0 keeps them forever.
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    pub sync_log_retention_days: u32,
    pub idempotency_key_ttl_hours: u32,
    pub session_ttl_minutes: u32,
    pub stuck_after_minutes: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub host: IpAddr,
    pub port: u16,
    pub body_limit_bytes: usize,
    pub public_url: String,
    /// Reverse proxies (addresses or networks) whose `X-Forwarded-For` names the client;
    /// empty: the TCP peer is the client and the header is ignored.
    pub trusted_proxies: Vec<IpNetwork>,
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `fd00::/8`; a bare address is a network of one.
/// Host bits right of the prefix are ignored (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Whether `address` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }

    /// The prefix length: 0 is every address of its family.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl std::str::FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address
            .parse::<IpAddr>()
            .map_err(|_| {
                format!("{text:?} is not an IP address or network such as 10.0.0.0/8 or fd00::/8")
            })?
            .to_canonical();
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a prefix length that is not 0 to {max}"))?,
        };
        Ok(Self { address, prefix })
    }
}

impl TryFrom<String> for IpNetwork {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl From<IpNetwork> for String {
    fn from(network: IpNetwork) -> Self {
        network.to_string()
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: Redacted<String>,
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub migrate_on_start: bool,
}

impl DatabaseSettings {
    pub fn kind(&self) -> DatabaseKind {
        if self.url.expose().starts_with("sqlite:") {
            DatabaseKind::Sqlite
        } else {
            DatabaseKind::Postgres
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub filter: String,
    pub format: LogFormat,
    /// OTLP/HTTP collector base URL for traces; empty: off.
    pub otlp_endpoint: String,
    pub service_name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    pub enabled: bool,
    pub poll_interval_secs: u64,
    pub concurrency: u32,
    pub idle_poll_ms: u64,
    pub retry_initial_ms: u64,
    pub retry_cap_ms: u64,
    pub max_attempts: u32,
    pub min_write_interval_ms: u64,
    /// Seconds a connection lease lasts without renewal (`sync::ownership`).
    pub lease_secs: u64,
    /// This replica's name; empty: generated.
    pub replica_id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecuritySettings {
    pub admin_token: Redacted<String>,
    pub encryption_keys: Vec<Redacted<String>>,
    pub key_file: String,
    /// Keys the app presents as `Authorization: Bearer <key>` on `/api/v1`; several for rotation.
    /// A request with one of them may act for any tenant (`Tandem-Tenant`).
    pub api_keys: Vec<Redacted<String>>,
    /// Keys bound to one tenant each: a request with one acts for that tenant only.
    pub tenant_api_keys: Vec<TenantApiKey>,
    /// Hosts (or `host:port`) the app's webhook subscriptions may reach although not https or
    /// not public ([`crate::egress`]).
    pub egress_allowed_hosts: Vec<String>,
}

/// An API key bound to one tenant (`security.tenant_api_keys`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantApiKey {
    /// Checked when the configuration is read (a malformed tenant is refused there).
    pub tenant: tandem_core::TenantId,
    pub key: Redacted<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveSettings {
    pub request_timeout_secs: u64,
    pub plan: String,
    pub oauth_base_url: String,
    /// Hosts (`*.pipedrive.com`) an `api_domain` may have ([`crate::egress::check_crm_url`]).
    pub allowed_api_domains: Vec<String>,
    pub client_id: String,
    pub client_secret: Redacted<String>,
    pub archive_on_person_delete: bool,
    pub poll_overlap_secs: u64,
    pub reconcile_interval_secs: u64,
    pub register_webhooks: bool,
    /// Seconds between two listings of a connection's webhooks, which find the ones Pipedrive
    /// has banned or deleted (`sync::connections::webhooks`); 0: never.
    pub webhook_check_interval_secs: u64,
}

/// The Salesforce connector (issue 19, ADR 0013): `Crm::salesforce` builds it for production
/// and for the sandbox login host.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSettings {
    pub request_timeout_secs: u64,
    /// Production login host (`https://login.salesforce.com`, or a My Domain host).
    pub login_url: String,
    /// Sandbox login host (`https://test.salesforce.com`, or a sandbox My Domain host).
    pub sandbox_login_url: String,
    pub client_id: String,
    pub client_secret: Redacted<String>,
    /// REST API version, `vNN.0`.
    pub api_version: String,
    /// The external-id custom field (on Lead and Contact) that carries the apId.
    pub external_id_field: String,
    /// `LastName` written on a Lead (or Contact) when the app has no last name.
    pub lead_last_name_placeholder: String,
    /// `Company` written on a Lead when the app has none.
    pub lead_company_placeholder: String,
    /// Daily API calls left for other tools: tandem stops calling below this.
    pub api_reserve: u64,
    /// Seconds between change-capture polls (SOQL on `SystemModstamp`).
    pub poll_interval_secs: u64,
    /// Seconds between reads of the changed Accounts, Opportunities, contact roles and Tasks
    /// (journey conditions and triggers come from them); each read is a query and a `deleted`
    /// call per object.
    pub related_poll_interval_secs: u64,
    /// The client id sent in `Sforce-Call-Options: client=…` on every write.
    pub call_options_client: String,
    /// What a new app contact becomes in Salesforce: `Lead` or `Contact`.
    pub create_as: String,
    /// Hosts an `instance_url` may name (`*.my.salesforce.com`), or origins
    /// (`http://127.0.0.1:4000`): tokens are only ever sent there.
    pub allowed_instance_domains: Vec<String>,
    /// Seconds each poll reaches back before its cursor (`SystemModstamp` is written at commit
    /// and the `deleted` resource covers whole minutes).
    pub poll_overlap_secs: u64,
    /// Milliseconds pushes wait for company after a batch that was not full (sObject
    /// Collections carry up to 200 records per call), counted from the oldest waiting push and
    /// less the time recent batches took to reach the CRM: a trickle of edits goes out as about
    /// one call per window instead of one per edit, each in the CRM a window after it was made
    /// (`tandem_core::plan_batches`). 0 sends every batch at once.
    pub write_batch_window_ms: u64,
    /// The first initial sync of a new connection reads only the Leads and Contacts modified in
    /// this many days before it (the guide's pre-connection window); 0 reads every record.
    /// "Run initial sync" always reads every record.
    pub initial_sync_window_days: u32,
    /// Seconds tandem waits after Salesforce's daily allocation ran out
    /// (`REQUEST_LIMIT_EXCEEDED`), or while the budget is inside `api_reserve`, before calling
    /// again.
    pub quota_backoff_secs: u64,
}

/// Webhooks between tandem and the app (Standard Webhooks, both ways).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AppWebhookSettings {
    /// `whsec_<base64>` secrets accepted on `POST /webhooks/app`; several during a rotation.
    pub inbound_secrets: Vec<Redacted<String>>,
    pub request_timeout_secs: u64,
    pub retry_initial_ms: u64,
    pub retry_cap_ms: u64,
    pub max_attempts: u32,
    pub disable_after_failures: u32,
}

impl SalesforceSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        let key = |key: &'static str, problem: &str| {
            Err(ConfigError::Key {
                key,
                problem: problem.to_owned(),
            })
        };
        if self.request_timeout_secs == 0 {
            return key("salesforce.request_timeout_secs", "must be at least 1");
        }
        if !self.login_url.starts_with("http") {
            return key("salesforce.login_url", "must be an http(s) URL");
        }
        if !self.sandbox_login_url.starts_with("http") {
            return key("salesforce.sandbox_login_url", "must be an http(s) URL");
        }
        let version = self.api_version.strip_prefix('v').unwrap_or("");
        if version.parse::<f32>().is_err() || !version.contains('.') {
            return key("salesforce.api_version", "must look like v62.0");
        }
        if !self.external_id_field.ends_with("__c") {
            return key(
                "salesforce.external_id_field",
                "must be a custom field's API name (ending in __c)",
            );
        }
        if self.lead_last_name_placeholder.trim().is_empty()
            || self.lead_company_placeholder.trim().is_empty()
        {
            return key(
                "salesforce.lead_company_placeholder",
                "the lead placeholders must not be empty",
            );
        }
        if self.poll_interval_secs == 0 {
            return key("salesforce.poll_interval_secs", "must be at least 1");
        }
        if !matches!(self.create_as.as_str(), "Lead" | "Contact") {
            return key("salesforce.create_as", "must be Lead or Contact");
        }
        Ok(())
    }
}

impl Settings {
    /// The compiled-in defaults alone, without reading any file or environment.
    pub fn defaults() -> Self {
        #[allow(clippy::expect_used)]
        Figment::from(Toml::string(DEFAULTS_TOML))
            .extract()
            .expect("config.default.toml is valid (checked by a unit test)")
    }

    /// Loads the settings: defaults, then `file` (which must exist) or `tandem.toml` if
    /// present, then the `TANDEM_…` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULTS_TOML));
        figment = match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => figment.merge(Toml::file(path)),
            None => figment.merge(Toml::file(DEFAULT_CONFIG_FILE)),
        };
        // Only `TANDEM_<SECTION>__<KEY>` variables are settings; other `TANDEM_…` variables
        // (test switches, scripts) are not ours to refuse. A misspelt section still fails.
        let figment = figment.merge(
            Env::prefixed("TANDEM_")
                .filter(|key| key.as_str().contains("__"))
                .split("__"),
        );
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(&e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Key {
                key: "database.url",
                problem: "must start with sqlite: or postgres://".into(),
            });
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Key {
                key: "database.max_connections",
                problem: "must be at least 1".into(),
            });
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(ConfigError::Key {
                key: "http.body_limit_bytes",
                problem: "must be at least 1024".into(),
            });
        }
        if self.pipedrive.request_timeout_secs == 0 {
            return Err(ConfigError::Key {
                key: "pipedrive.request_timeout_secs",
                problem: "must be at least 1".into(),
            });
        }
        if !self.pipedrive.oauth_base_url.starts_with("http") {
            return Err(ConfigError::Key {
                key: "pipedrive.oauth_base_url",
                problem: "must be an http(s) URL".into(),
            });
        }
        self.salesforce.validate()?;
        if let Some(i) = self.security.encryption_keys.iter().position(|k| {
            crate::crypto::Vault::from_base64_keys(std::slice::from_ref(k.expose())).is_err()
        }) {
            return Err(ConfigError::Key {
                key: "security.encryption_keys",
                problem: format!("entry {i} is not 32 bytes of base64"),
            });
        }
        if self.admin.session_ttl_minutes == 0 {
            return Err(ConfigError::Key {
                key: "admin.session_ttl_minutes",
                problem: "must be at least 1".into(),
            });
        }
        if let Some(i) = self
            .app_webhooks
            .inbound_secrets
            .iter()
            .position(|k| tandem_webhooks::standard::Secret::parse(k.expose()).is_err())
        {
            return Err(ConfigError::Key {
                key: "app_webhooks.inbound_secrets",
                problem: format!("entry {i} is not whsec_<base64> of at least 16 bytes"),
            });
        }
        let admin_token = self.security.admin_token.expose().trim();
        if !admin_token.is_empty() && admin_token.len() < MIN_SECRET_LEN {
            return Err(ConfigError::Key {
                key: "security.admin_token",
                problem: format!("is shorter than {MIN_SECRET_LEN} characters, the minimum for API keys: it opens the console and every connection's data, and a short token can be guessed. Generate one, e.g. `openssl rand -base64 24`, or leave it empty to close the admin surface"),
            });
        }
        if self
            .security
            .api_keys
            .iter()
            .any(|k| k.expose().trim().len() < MIN_SECRET_LEN)
        {
            return Err(ConfigError::Key {
                key: "security.api_keys",
                problem: "every key must have at least 16 characters".into(),
            });
        }
        for bound in &self.security.tenant_api_keys {
            if bound.key.expose().trim().len() < MIN_SECRET_LEN {
                return Err(ConfigError::Key {
                    key: "security.tenant_api_keys",
                    problem: "every key must have at least 16 characters".into(),
                });
            }
        }
        if self.app_webhooks.request_timeout_secs == 0 || self.app_webhooks.max_attempts == 0 {
            return Err(ConfigError::Key {
                key: "app_webhooks",
                problem: "request_timeout_secs and max_attempts must be at least 1".into(),
            });
        }
        let metrics_token = self.metrics.token.expose().trim();
        if !metrics_token.is_empty() && metrics_token.len() < MIN_SECRET_LEN {
            return Err(ConfigError::Key {
                key: "metrics.token",
                problem: format!("is shorter than {MIN_SECRET_LEN} characters; generate one, e.g. `openssl rand -base64 24`, or leave it empty"),
            });
        }
        if !self.metrics.addr.is_empty()
            && self.metrics.addr.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(ConfigError::Key {
                key: "metrics.addr",
                problem: "must be an address and port such as 127.0.0.1:9090, or empty".into(),
            });
        }
        if self.workers.poll_interval_secs == 0 {
            return Err(ConfigError::Key {
                key: "workers.poll_interval_secs",
                problem: "must be at least 1".into(),
            });
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.telemetry.filter) {
            return Err(ConfigError::Key {
                key: "telemetry.filter",
                problem: format!("is not a valid filter: {e}"),
            });
        }
        if let Some(network) = self.http.trusted_proxies.iter().find(|n| n.prefix() == 0) {
            return Err(ConfigError::Key {
                key: "http.trusted_proxies",
                problem: format!("trusts every address ({network}): any client could then choose the address it is throttled under; list the load balancer's address or network"),
            });
        }
        if !self.http.public_url.is_empty() && !self.http.public_url.starts_with("http") {
            return Err(ConfigError::Key {
                key: "http.public_url",
                problem: "must be an http(s) URL or empty".into(),
            });
        }
        Ok(())
    }

    /// The settings as TOML, secrets replaced by `[redacted]`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }

    /// The base URL other systems use to reach this tandem.
    pub fn public_url(&self, bound_port: u16) -> String {
        if self.http.public_url.is_empty() {
            format!("http://{}:{bound_port}", self.http.host)
        } else {
            self.http.public_url.trim_end_matches('/').to_owned()
        }
    }
}

/// Keys that hold secrets, with the shape they expect. An error about one of them names the key
/// and the shape, never the value (which may be the secret itself, or a part of it).
const SECRET_KEYS: &[(&str, &str)] = &[
    (
        "security.admin_token",
        "a string of at least 16 characters",
    ),
    (
        "security.api_keys",
        "a list of strings of at least 16 characters, e.g. TANDEM_SECURITY__API_KEYS='[\"key-1\", \"key-2\"]'",
    ),
    (
        "security.tenant_api_keys",
        "a list of tables {tenant, key} (key: at least 16 characters), e.g. TANDEM_SECURITY__TENANT_API_KEYS='[{tenant=\"acme\", key=\"key-1\"}]'",
    ),
    (
        "security.encryption_keys",
        "a list of base64 strings of 32 bytes, e.g. TANDEM_SECURITY__ENCRYPTION_KEYS='[\"<openssl rand -base64 32>\"]'",
    ),
    (
        "app_webhooks.inbound_secrets",
        "a list of whsec_<base64> strings, e.g. TANDEM_APP_WEBHOOKS__INBOUND_SECRETS='[\"whsec_...\"]'",
    ),
    ("pipedrive.client_secret", "a string"),
    ("salesforce.client_secret", "a string"),
    ("metrics.token", "a string of at least 16 characters"),
    (
        "database.url",
        "a string such as sqlite://tandem.db or postgres://user:password@host/db",
    ),
];

/// The expected shape when `key` is (inside) a secret key.
fn secret_shape(key: &str) -> Option<&'static str> {
    SECRET_KEYS.iter().find_map(|(secret, shape)| {
        (key == *secret || key.starts_with(&format!("{secret}."))).then_some(*shape)
    })
}

/// A parser's message without the quoted source lines (`3 | api_keys = MYSECRET`) that TOML
/// errors carry: the line may hold a secret.
fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| {
            let rest = line
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            !line.is_empty() && !rest.starts_with('|')
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// Figment's errors can span several lines and name the key as `default.http.port`; keep one
/// line per error and the plain key. Values of secret keys are never shown.
fn one_line(error: &figment::Error) -> String {
    error
        .clone()
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| m.name.to_string())
                .unwrap_or_default();
            let mut line = if let Some(shape) = secret_shape(&key) {
                format!("`{key}` has the wrong shape: expected {shape} (the value is a secret and is not shown)")
            } else if key.is_empty() {
                without_source_lines(&e.kind.to_string())
            } else {
                format!("`{key}`: {}", without_source_lines(&e.kind.to_string()))
            };
            if !source.is_empty() {
                line.push_str(&format!(" (from {source})"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn the_compiled_in_defaults_load_and_validate() {
        figment::Jail::expect_with(|_jail| {
            let settings = Settings::load(None).expect("defaults are valid");
            assert_eq!(settings.http.port, 8080);
            assert_eq!(settings.database.kind(), DatabaseKind::Sqlite);
            Ok(())
        });
    }

    #[test]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tandem.toml", "[http]\nport = 9000\nhost = \"0.0.0.0\"\n")?;
            jail.set_env("TANDEM_HTTP__PORT", "9100");
            let settings = Settings::load(None).expect("valid");
            assert_eq!(settings.http.port, 9100, "env beats file");
            assert_eq!(
                settings.http.host.to_string(),
                "0.0.0.0",
                "file beats defaults"
            );
            assert_eq!(
                settings.database.busy_timeout_ms, 5000,
                "defaults fill the rest"
            );
            Ok(())
        });
    }

    #[test]
    fn a_non_numeric_port_is_refused_with_a_message_naming_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TANDEM_HTTP__PORT", "abc");
            let error = Settings::load(None)
                .expect_err("abc is no port")
                .to_string();
            assert!(error.contains("http.port"), "{error}");
            assert!(!error.contains('\n'), "one line: {error}");
            Ok(())
        });
    }

    #[test]
    fn other_tandem_variables_are_ignored_but_a_misspelt_section_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TANDEM_TEST_DATABASE_URL", "postgres://x");
            jail.set_env("TANDEM_PG_PORT", "54329");
            Settings::load(None).expect("not settings, not refused");
            jail.set_env("TANDEM_HTTPP__PORT", "1");
            let error = Settings::load(None).expect_err("typo").to_string();
            assert!(error.contains("httpp"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("tandem.toml", "[http]\nprot = 1\n")?;
            let error = Settings::load(None).expect_err("typo").to_string();
            assert!(error.contains("prot"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn a_database_url_of_an_unsupported_kind_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TANDEM_DATABASE__URL", "mysql://x");
            let error = Settings::load(None).expect_err("mysql").to_string();
            assert!(error.contains("database.url"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_explicit_config_file_that_is_missing_is_an_error() {
        let error =
            Settings::load(Some(Path::new("/nonexistent/tandem.toml"))).expect_err("missing");
        assert!(matches!(error, ConfigError::MissingFile(_)));
    }

    #[test]
    fn secrets_are_redacted_in_debug_and_in_the_printed_config() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TANDEM_SECURITY__ADMIN_TOKEN", "s3cret-admin-token-0");
            jail.set_env("TANDEM_DATABASE__URL", "postgres://u:pw@localhost/db");
            let settings = Settings::load(None).expect("valid");
            assert_eq!(
                settings.security.admin_token.expose(),
                "s3cret-admin-token-0"
            );
            let printed = settings.to_redacted_toml();
            let debugged = format!("{settings:?}");
            for text in [printed, debugged] {
                assert!(!text.contains("s3cret-admin"), "{text}");
                assert!(!text.contains(":pw@"), "{text}");
                assert!(text.contains("[redacted]"));
            }
            Ok(())
        });
    }

    #[test]
    fn errors_about_secret_keys_name_the_key_and_the_shape_but_never_the_value() {
        let secret = "MYSECRETAPIKEY0123456789";
        for (variable, key) in [
            ("TANDEM_SECURITY__API_KEYS", "security.api_keys"),
            (
                "TANDEM_SECURITY__ENCRYPTION_KEYS",
                "security.encryption_keys",
            ),
            (
                "TANDEM_APP_WEBHOOKS__INBOUND_SECRETS",
                "app_webhooks.inbound_secrets",
            ),
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env(variable, secret);
                let error = Settings::load(None)
                    .expect_err("a string, not a list")
                    .to_string();
                assert!(!error.contains("MYSECRET"), "{error}");
                assert!(error.contains(key), "{error}");
                assert!(error.contains("expected a list"), "{error}");
                Ok(())
            });
        }
        // The same in the TOML file, and for a file that does not even parse.
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "tandem.toml",
                &format!("[security]\napi_keys = \"{secret}\"\n"),
            )?;
            let error = Settings::load(None).expect_err("a string").to_string();
            assert!(!error.contains("MYSECRET"), "{error}");
            assert!(error.contains("security.api_keys"), "{error}");
            jail.create_file(
                "tandem.toml",
                &format!("[security]\napi_keys = [{secret}]\n"),
            )?;
            let error = Settings::load(None).expect_err("not TOML").to_string();
            assert!(!error.contains("MYSECRET"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn an_admin_token_shorter_than_sixteen_characters_is_refused_with_the_reason() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TANDEM_SECURITY__ADMIN_TOKEN", "x");
            let error = Settings::load(None).expect_err("too short").to_string();
            assert!(error.contains("security.admin_token"), "{error}");
            assert!(error.contains("16"), "{error}");
            assert!(error.contains("guessed"), "{error}");
            jail.set_env("TANDEM_SECURITY__ADMIN_TOKEN", "0123456789abcdef");
            Settings::load(None).expect("16 characters are enough");
            Ok(())
        });
    }

    #[test]
    fn tenant_api_keys_come_from_the_environment_and_a_short_key_or_a_bad_tenant_is_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "TANDEM_SECURITY__TENANT_API_KEYS",
                r#"[{tenant="acme", key="acme-key-0123456789"}]"#,
            );
            let settings = Settings::load(None).expect("valid");
            assert_eq!(settings.security.tenant_api_keys.len(), 1);
            assert_eq!(settings.security.tenant_api_keys[0].tenant.as_str(), "acme");
            assert!(!format!("{settings:?}").contains("acme-key-0123456789"));
            jail.set_env(
                "TANDEM_SECURITY__TENANT_API_KEYS",
                r#"[{tenant="acme", key="short"}]"#,
            );
            let error = Settings::load(None).expect_err("too short").to_string();
            assert!(error.contains("security.tenant_api_keys"), "{error}");
            assert!(!error.contains("short\""), "{error}");
            jail.set_env(
                "TANDEM_SECURITY__TENANT_API_KEYS",
                r#"[{tenant="a/b", key="acme-key-0123456789"}]"#,
            );
            let error = Settings::load(None).expect_err("no tenant").to_string();
            assert!(error.contains("security.tenant_api_keys"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            assert!(Settings::load(None)
                .expect("defaults")
                .http
                .trusted_proxies
                .is_empty());
            jail.set_env(
                "TANDEM_HTTP__TRUSTED_PROXIES",
                r#"["172.28.0.2", "10.0.0.0/8", "fd00::/8", "::1"]"#,
            );
            let settings = Settings::load(None).expect("valid");
            assert!(
                settings.to_redacted_toml().contains(r#""10.0.0.0/8""#),
                "`tandem config` shows them"
            );
            let trusted = settings.http.trusted_proxies;
            let ip = |text: &str| text.parse::<IpAddr>().unwrap();
            let contains = |address: &str| trusted.iter().any(|n| n.contains(ip(address)));
            for inside in [
                "172.28.0.2",
                "10.255.1.2",
                "fd12::3",
                "::1",
                "::ffff:10.0.0.1",
            ] {
                assert!(contains(inside), "{inside}");
            }
            for outside in ["172.28.0.3", "11.0.0.1", "fe80::1", "::2", "0.0.0.0"] {
                assert!(!contains(outside), "{outside}");
            }
            assert_eq!(trusted[1].to_string(), "10.0.0.0/8");
            Ok(())
        });
    }

    #[test]
    fn a_trusted_proxy_that_is_no_network_or_trusts_everyone_is_refused() {
        for value in [
            r#"["10.0.0.0/33"]"#,
            r#"["proxy.internal"]"#,
            r#"["::/129"]"#,
            r#"["0.0.0.0/0"]"#,
            r#"["::/0"]"#,
        ] {
            figment::Jail::expect_with(|jail| {
                jail.set_env("TANDEM_HTTP__TRUSTED_PROXIES", value);
                let error = Settings::load(None).expect_err(value).to_string();
                assert!(error.contains("http.trusted_proxies"), "{error}");
                Ok(())
            });
        }
    }
}
