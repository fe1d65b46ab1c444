//! tandem as a child process (`tandem serve`), for crash tests, chaos runs and benchmarks that
//! must SIGKILL it or measure its memory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};

/// The `tandem` binary next to the running executable (`target/<profile>/tandem`), built with
/// cargo when it is missing. `TANDEM_BIN` overrides.
#[allow(clippy::disallowed_methods)] // the harness's own switch, not tandem's settings
pub fn tandem_binary() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("TANDEM_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().context("locating the running executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf);
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("tandem");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    // Not built yet (e.g. only the test binary was compiled): build it into the same target dir.
    let profile_dir = exe
        .parent()
        .and_then(|p| {
            if p.ends_with("deps") {
                p.parent()
            } else {
                Some(p)
            }
        })
        .context("the executable has no parent directory")?
        .to_path_buf();
    let release = profile_dir.ends_with("release");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "-q", "-p", "tandem-engine", "--bin", "tandem"]);
    if release {
        build.arg("--release");
    }
    if let Some(target) = profile_dir.parent() {
        build.env("CARGO_TARGET_DIR", target);
    }
    let status = build.status().context("running cargo build for tandem")?;
    if !status.success() {
        bail!("building the tandem binary failed");
    }
    let built = profile_dir.join("tandem");
    anyhow::ensure!(built.is_file(), "no tandem binary at {}", built.display());
    Ok(built)
}

/// A free port on 127.0.0.1 (bound and released; fine for tests on one machine).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// What a `tandem serve` child needs: its configuration file is written from this.
#[derive(Debug, Clone)]
pub struct ChildConfig {
    pub dir: PathBuf,
    pub database_url: String,
    pub port: u16,
    pub encryption_key: String,
    pub poll_interval_secs: u64,
    pub request_timeout_secs: u64,
    pub retry_initial_ms: u64,
    pub retry_cap_ms: u64,
    pub max_attempts: u32,
    pub log_filter: String,
    /// `security.api_keys`: the app's key for `/api/v1` (none: the API is closed).
    pub api_key: Option<String>,
    /// `security.admin_token` (none: the admin surface is closed).
    pub admin_token: Option<String>,
    /// Pipedrive's OAuth server (the simulator) and its client credentials, for OAuth connects.
    pub oauth: Option<OAuthClient>,
    /// The live mirror's pass intervals (none: the defaults).
    pub mirror: Option<MirrorIntervals>,
    /// `workers.lease_secs` (none: the default), so a restarted child takes its connections
    /// back sooner after a SIGKILL.
    pub lease_secs: Option<u64>,
    /// `workers.replica_id` (none: generated), so a harness knows which replica is which.
    pub replica_id: Option<String>,
    /// `database.max_connections` (the pool of this process).
    pub max_connections: u32,
    /// `workers.idle_poll_ms` (5 for tests; 100 is the default of a deployment).
    pub idle_poll_ms: u64,
    /// `[salesforce]`: the Salesforce simulator's hosts and connected app (none: the defaults).
    pub salesforce: Option<SalesforceChild>,
}

/// The `[salesforce]` settings of a child that connects to the Salesforce simulator.
#[derive(Debug, Clone)]
pub struct SalesforceChild {
    pub login_url: String,
    pub sandbox_login_url: String,
    pub client_id: String,
    pub client_secret: String,
    /// The simulator's instance, the one `instance_url` tokens may be sent to.
    pub instance_url: String,
    pub poll_interval_secs: u64,
    pub quota_backoff_secs: u64,
    pub request_timeout_secs: u64,
}

impl SalesforceChild {
    /// The settings for `sim`, polling every second and backing off a second on the quota.
    pub fn for_sim(sim: &salesforce_sim::SfSim) -> Self {
        let config = sim.handle().config().clone();
        Self {
            login_url: sim.login_url(false).to_owned(),
            sandbox_login_url: sim.login_url(true).to_owned(),
            client_id: config.client_id,
            client_secret: config.client_secret,
            instance_url: sim.instance_url().to_owned(),
            poll_interval_secs: 1,
            quota_backoff_secs: 1,
            request_timeout_secs: 2,
        }
    }

    fn toml(&self) -> String {
        format!(
            "[salesforce]\nlogin_url = \"{}\"\nsandbox_login_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nallowed_instance_domains = [\"{}\"]\npoll_interval_secs = {}\nquota_backoff_secs = {}\nrequest_timeout_secs = {}\n",
            self.login_url,
            self.sandbox_login_url,
            self.client_id,
            self.client_secret,
            self.instance_url,
            self.poll_interval_secs,
            self.quota_backoff_secs,
            self.request_timeout_secs
        )
    }
}

/// `[mirror]` intervals of a child, short for runs that must see the passes.
#[derive(Debug, Clone, Copy)]
pub struct MirrorIntervals {
    pub poll_interval_secs: u64,
    pub delete_pass_interval_secs: u64,
}

/// The OAuth client tandem is registered as (the simulator's defaults in tests).
#[derive(Debug, Clone)]
pub struct OAuthClient {
    pub base_url: String,
    pub client_id: String,
    pub client_secret: String,
}

impl ChildConfig {
    pub fn new(dir: &Path, database_url: &str, encryption_key: &str) -> anyhow::Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            database_url: database_url.to_owned(),
            port: free_port()?,
            encryption_key: encryption_key.to_owned(),
            poll_interval_secs: 1,
            request_timeout_secs: 2,
            retry_initial_ms: 50,
            retry_cap_ms: 2_000,
            max_attempts: 60,
            log_filter: "warn".to_owned(),
            api_key: None,
            admin_token: None,
            oauth: None,
            mirror: None,
            lease_secs: None,
            replica_id: None,
            max_connections: 5,
            idle_poll_ms: 5,
            salesforce: None,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn toml(&self) -> String {
        let quoted = |v: &Option<String>| v.as_deref().map(|v| format!("\"{v}\""));
        let oauth = self
            .oauth
            .as_ref()
            .map(|o| {
                format!(
                    "oauth_base_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
                    o.base_url, o.client_id, o.client_secret
                )
            })
            .unwrap_or_default();
        let mut lease = self
            .lease_secs
            .map(|s| format!("lease_secs = {s}\n"))
            .unwrap_or_default();
        if let Some(id) = &self.replica_id {
            lease.push_str(&format!("replica_id = \"{id}\"\n"));
        }
        let mirror = self
            .mirror
            .map(|m| {
                format!(
                    "[mirror]\npoll_interval_secs = {}\ndelete_pass_interval_secs = {}\n",
                    m.poll_interval_secs, m.delete_pass_interval_secs
                )
            })
            .unwrap_or_default();
        let salesforce = self
            .salesforce
            .as_ref()
            .map(SalesforceChild::toml)
            .unwrap_or_default();
        format!(
            r#"[http]
port = {port}
[database]
url = "{db}"
max_connections = {pool}
[telemetry]
filter = "{filter}"
format = "json"
[workers]
enabled = true
poll_interval_secs = {poll}
idle_poll_ms = {idle_poll}
retry_initial_ms = {ri}
retry_cap_ms = {rc}
max_attempts = {ma}
{lease}[security]
encryption_keys = ["{key}"]
api_keys = [{api_keys}]
egress_allowed_hosts = ["127.0.0.1"]
admin_token = {admin}
[pipedrive]
request_timeout_secs = {timeout}
{oauth}{mirror}{salesforce}"#,
            port = self.port,
            pool = self.max_connections,
            idle_poll = self.idle_poll_ms,
            db = self.database_url,
            filter = self.log_filter,
            poll = self.poll_interval_secs,
            ri = self.retry_initial_ms,
            rc = self.retry_cap_ms,
            ma = self.max_attempts,
            key = self.encryption_key,
            timeout = self.request_timeout_secs,
            api_keys = quoted(&self.api_key).unwrap_or_default(),
            admin = quoted(&self.admin_token).unwrap_or_else(|| "\"\"".to_owned()),
        )
    }
}

/// A running `tandem serve`.
pub struct TandemProcess {
    child: tokio::process::Child,
    pub pid: u32,
    pub base_url: String,
}

impl TandemProcess {
    /// Starts `tandem serve` and waits (bounded) until `/healthz` answers.
    pub async fn start(config: &ChildConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.dir)?;
        let file = config.dir.join("tandem.toml");
        std::fs::write(&file, config.toml())?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(config.dir.join("tandem.log"))?;
        let child = tokio::process::Command::new(tandem_binary()?)
            .arg("--config")
            .arg(&file)
            .arg("serve")
            .current_dir(&config.dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting tandem serve")?;
        let pid = child.id().context("the child has no pid")?;
        let process = Self {
            child,
            pid,
            base_url: config.base_url(),
        };
        process.wait_healthy(Duration::from_secs(30)).await?;
        Ok(process)
    }

    async fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let http = tandem_engine::crm::http::client(Duration::from_secs(2));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let url = format!("{}/healthz", self.base_url);
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("tandem did not become healthy within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no shutdown hook runs, in-flight work is lost mid-way.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Peak resident set size of the child so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        vm_hwm_kib(&format!("/proc/{}/status", self.pid))
    }
}

/// `VmHWM` from a `/proc/*/status` file, in KiB.
pub fn vm_hwm_kib(status_file: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
