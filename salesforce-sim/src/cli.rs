//! The command line of the `salesforce-sim` binary.

use std::io::Write;
use std::time::Duration;

use crate::config::SfSimConfig;
use crate::faults::FaultSpec;

/// Command-line arguments of `salesforce-sim` (embed with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct SfSimArgs {
    /// Port of the instance (API) listener on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Port of the production login host (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub login_port: u16,
    /// Port of the sandbox login host (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub sandbox_login_port: u16,
    /// Leads to seed in each org.
    #[arg(long, default_value_t = 0)]
    pub leads: usize,
    /// Contacts to seed in each org.
    #[arg(long, default_value_t = 0)]
    pub contacts: usize,
    /// Accounts to seed in each org.
    #[arg(long, default_value_t = 0)]
    pub accounts: usize,
    /// Connected app consumer key.
    #[arg(long, default_value = "sim-consumer-key")]
    pub client_id: String,
    /// Connected app consumer secret.
    #[arg(long, default_value = "sim-consumer-secret")]
    pub client_secret: String,
    /// Refuse authorizations without a PKCE code challenge.
    #[arg(long)]
    pub require_pkce: bool,
    /// Session lifetime in seconds.
    #[arg(long, default_value_t = 7200)]
    pub session_lifetime: u64,
    /// Daily API request allocation per org.
    #[arg(long, default_value_t = 100_000)]
    pub daily_api_requests: u64,
    /// Fault specification, e.g. `sobjects.patch:503=0.2,lock=0.1;*:latency_ms=5`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed for generated data and fault draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SfSimArgs {
    /// The configuration these arguments describe.
    pub fn to_config(&self) -> anyhow::Result<SfSimConfig> {
        Ok(SfSimConfig {
            instance_port: self.port,
            login_port: self.login_port,
            sandbox_login_port: self.sandbox_login_port,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            require_pkce: self.require_pkce,
            session_lifetime: Duration::from_secs(self.session_lifetime),
            daily_api_requests: self.daily_api_requests,
            leads: self.leads,
            contacts: self.contacts,
            accounts: self.accounts,
            seed: self.seed,
            faults: FaultSpec::parse(&self.faults)?,
            ..SfSimConfig::default()
        })
    }
}

/// Starts the simulator and serves until Ctrl-C. The first line printed is
/// `listening on http://127.0.0.1:PORT` (the instance).
pub async fn run_cli(args: SfSimArgs) -> anyhow::Result<()> {
    let sim = crate::start(args.to_config()?).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", sim.instance_url())?;
    writeln!(
        out,
        "instance: {}  (http and https on the same port)",
        sim.instance_url()
    )?;
    writeln!(out, "login (production): {}", sim.login_url(false))?;
    writeln!(out, "login (sandbox): {}", sim.login_url(true))?;
    writeln!(
        out,
        "connected app: {} / {}",
        args.client_id, args.client_secret
    )?;
    writeln!(out, "test hooks: {}/__sim/...", sim.instance_url())?;
    out.flush()?;
    drop(out);
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
