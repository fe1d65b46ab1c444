//! The command line, shared by the `pipedrive-sim` binary and `tandem sim`.

use std::io::Write;
use std::time::Duration;

use crate::config::{Plan, RateLimits, SimConfig};
use crate::faults::FaultSpec;

/// Command-line arguments of `pipedrive-sim` (embed with `#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Persons to seed (realistic names, e-mails, phones, custom fields, a few duplicates).
    #[arg(long, default_value_t = 0)]
    pub persons: usize,
    /// Organizations to seed (persons get one of them; custom fields of every type).
    #[arg(long, default_value_t = 0)]
    pub organizations: usize,
    /// Deals to seed (linked to persons and organizations; custom fields of every type).
    #[arg(long, default_value_t = 0)]
    pub deals: usize,
    /// Activities to seed (on deals, or persons).
    #[arg(long, default_value_t = 0)]
    pub activities: usize,
    /// Notes to seed (on deals, persons, organizations, leads; one file per five notes).
    #[arg(long, default_value_t = 0)]
    pub notes: usize,
    /// Leads to seed (linked to persons and organizations).
    #[arg(long, default_value_t = 0)]
    pub leads: usize,
    /// Products to seed.
    #[arg(long, default_value_t = 0)]
    pub products: usize,
    /// The accepted API token (`x-api-token` header or `api_token` query).
    #[arg(long, default_value = "sim-api-token")]
    pub api_token: String,
    /// OAuth client id.
    #[arg(long, default_value = "sim-client")]
    pub client_id: String,
    /// OAuth client secret.
    #[arg(long, default_value = "sim-secret")]
    pub client_secret: String,
    /// `api_domain` in token responses (default: the simulator's own address).
    #[arg(long)]
    pub api_domain: Option<String>,
    /// Plan whose documented limits apply: lite, growth, premium, ultimate (default: no
    /// practical limits).
    #[arg(long)]
    pub plan: Option<Plan>,
    /// Seats (the daily budget is 30,000 × plan multiplier × seats).
    #[arg(long, default_value_t = 1)]
    pub seats: u64,
    /// Requests per 2-second window per token (overrides the plan's, both auth types).
    #[arg(long)]
    pub burst: Option<u32>,
    /// Daily token budget per company (overrides the plan's).
    #[arg(long)]
    pub daily_budget: Option<u64>,
    /// Fault specification, e.g. `persons.patch:5xx=0.2;*:latency_ms=5;webhooks:drop=0.1`.
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed for generated data and fault draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Multiplies webhook retry delays and the ban duration (0.001: 3 s becomes 3 ms).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Also serve the legacy v1 reads Pipedrive put out of support on 2026-08-01 (`GET
    /// /v1/deals`, `/v1/persons`, `/v1/organizations`, `/v1/activities`, `/v1/products`,
    /// their single reads, `/v1/deals/{id}/products` and `/v1/deals/{id}/flow`), as the
    /// January 2026 v1 document describes them, for extractors that still call them.
    /// Without it they answer 410 Gone, as Pipedrive does.
    #[arg(long)]
    pub legacy_v1: bool,
    /// Access-token lifetime in seconds.
    #[arg(long, default_value_t = 3599)]
    pub token_ttl: u64,
}

impl SimArgs {
    /// The configuration these arguments describe.
    pub fn to_config(&self) -> anyhow::Result<SimConfig> {
        let mut limits = match self.plan {
            Some(plan) => RateLimits::for_plan(plan, self.seats),
            None => RateLimits::generous(),
        };
        if let Some(b) = self.burst {
            limits.api_token_burst = b;
            limits.oauth_burst = b;
        }
        if let Some(d) = self.daily_budget {
            limits.daily_budget = d;
        }
        if !(self.time_scale.is_finite() && self.time_scale >= 0.0) {
            anyhow::bail!("--time-scale must be a non-negative number");
        }
        Ok(SimConfig {
            port: self.port,
            persons: self.persons,
            objects: crate::config::SeedCounts {
                organizations: self.organizations,
                deals: self.deals,
                activities: self.activities,
                notes: self.notes,
                leads: self.leads,
                products: self.products,
            },
            api_token: self.api_token.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            api_domain: self.api_domain.clone(),
            rate_limits: limits,
            faults: FaultSpec::parse(&self.faults)?,
            seed: self.seed,
            time_scale: self.time_scale,
            access_token_ttl: Duration::from_secs(self.token_ttl),
            legacy_v1: self.legacy_v1,
            ..SimConfig::default()
        })
    }
}

/// Starts the simulator and serves until Ctrl-C. The first line printed is
/// `listening on http://127.0.0.1:PORT`.
pub async fn run_cli(args: SimArgs) -> anyhow::Result<()> {
    let config = args.to_config()?;
    let sim = crate::start(config).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", sim.base_url())?;
    writeln!(
        out,
        "api v2: {}/api/v2  api v1: {}/v1  oauth: {}/oauth",
        sim.base_url(),
        sim.base_url(),
        sim.base_url()
    )?;
    writeln!(
        out,
        "api token: {}  oauth client: {} / {}",
        args.api_token, args.client_id, args.client_secret
    )?;
    out.flush()?;
    drop(out);
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
