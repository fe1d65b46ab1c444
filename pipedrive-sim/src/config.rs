//! Simulator configuration.

use std::time::Duration;

use crate::faults::FaultSpec;

/// Pipedrive subscription plan: sets the burst limits and the daily token multiplier
/// (api-notes §5.2, §5.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Lite: 20 (api token) / 80 (OAuth) requests per 2 s, multiplier 1.
    Lite,
    /// Growth: 40 / 160, multiplier 2.
    Growth,
    /// Premium: 100 / 400, multiplier 5.
    Premium,
    /// Ultimate: 120 / 480, multiplier 7.
    Ultimate,
}

impl Plan {
    /// Requests per 2-second window for an API-token caller.
    pub fn api_token_burst(self) -> u32 {
        match self {
            Plan::Lite => 20,
            Plan::Growth => 40,
            Plan::Premium => 100,
            Plan::Ultimate => 120,
        }
    }

    /// Requests per 2-second window for an OAuth caller.
    pub fn oauth_burst(self) -> u32 {
        self.api_token_burst() * 4
    }

    /// Daily token budget multiplier.
    pub fn multiplier(self) -> u64 {
        match self {
            Plan::Lite => 1,
            Plan::Growth => 2,
            Plan::Premium => 5,
            Plan::Ultimate => 7,
        }
    }
}

impl std::str::FromStr for Plan {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "lite" => Ok(Plan::Lite),
            "growth" => Ok(Plan::Growth),
            "premium" => Ok(Plan::Premium),
            "ultimate" => Ok(Plan::Ultimate),
            other => Err(format!(
                "unknown plan {other:?} (lite, growth, premium, ultimate)"
            )),
        }
    }
}

/// Rate limits enforced by the simulator (api-notes §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests per window per API token.
    pub api_token_burst: u32,
    /// Requests per window per OAuth access token.
    pub oauth_burst: u32,
    /// Search requests per window per token (documented: 10 on every plan).
    pub search_burst: u32,
    /// The burst window (documented: 2 s).
    pub window: Duration,
    /// Daily token budget per company, charged by each operation's `x-token-cost`.
    pub daily_budget: u64,
    /// Legacy fair-use POST/PUT/PATCH requests per day reported in `x-daily-requests-left`.
    pub daily_write_requests: u64,
}

impl RateLimits {
    /// The documented limits of a plan for a company with `seats` seats.
    pub fn for_plan(plan: Plan, seats: u64) -> Self {
        RateLimits {
            api_token_burst: plan.api_token_burst(),
            oauth_burst: plan.oauth_burst(),
            search_burst: 10,
            window: Duration::from_secs(2),
            daily_budget: 30_000 * plan.multiplier() * seats.max(1),
            daily_write_requests: 10_000,
        }
    }

    /// Limits so high that no test or benchmark meets them (the default).
    pub fn generous() -> Self {
        RateLimits {
            api_token_burst: 1_000_000,
            oauth_burst: 1_000_000,
            search_burst: 1_000_000,
            window: Duration::from_secs(2),
            daily_budget: 10_000_000_000,
            daily_write_requests: 10_000_000_000,
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::generous()
    }
}

/// Everything the simulator needs to start. `Default` gives a ready-to-use configuration.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Port to bind on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// The API token accepted in `x-api-token` / `?api_token=`.
    pub api_token: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: String,
    /// The company the admin user and the API token belong to.
    pub company_id: i64,
    /// The company's name.
    pub company_name: String,
    /// The admin user's id.
    pub user_id: i64,
    /// The admin user's name.
    pub user_name: String,
    /// The admin user's e-mail.
    pub user_email: String,
    /// `expires_in` of OAuth access tokens.
    pub access_token_ttl: Duration,
    /// Scopes granted to OAuth tokens (comma-separated in the token response).
    pub scopes: Vec<String>,
    /// `api_domain` in token responses (`None` = the simulator's own base URL).
    pub api_domain: Option<String>,
    /// Multiplies every webhook delay (retries after 3/30/150 s, the 30-minute ban);
    /// 0.001 makes a 3 s retry happen after 3 ms.
    pub time_scale: f64,
    /// Timeout of one webhook delivery attempt (documented: 10 s; not scaled).
    pub webhook_timeout: Duration,
    /// Rate limits.
    pub rate_limits: RateLimits,
    /// Seed for data generation and fault injection.
    pub seed: u64,
    /// Faults to inject.
    pub faults: FaultSpec,
    /// Persons to seed at start.
    pub persons: usize,
    /// The other objects to seed at start (after the persons).
    pub objects: SeedCounts,
    /// Also serve the legacy v1 reads of deals, persons, organizations, activities and
    /// products (lists with `start`/`limit`, single reads, a deal's products and updates) as
    /// the January 2026 v1 document describes them. Off by default: Pipedrive put them out
    /// of support on 2026-08-01 and answers 410 Gone, as the simulator does without this.
    /// For running older extractors that still call them (`--legacy-v1`).
    pub legacy_v1: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            api_token: "sim-api-token".to_owned(),
            client_id: "sim-client".to_owned(),
            client_secret: "sim-secret".to_owned(),
            company_id: 1,
            company_name: "Sim Company".to_owned(),
            user_id: 1,
            user_name: "Ada Admin".to_owned(),
            user_email: "ada.admin@example.com".to_owned(),
            access_token_ttl: Duration::from_secs(3599),
            scopes: default_scopes(),
            api_domain: None,
            time_scale: 1.0,
            webhook_timeout: Duration::from_secs(10),
            rate_limits: RateLimits::generous(),
            seed: 0,
            faults: FaultSpec::default(),
            persons: 0,
            objects: SeedCounts::default(),
            legacy_v1: false,
        }
    }
}

/// The scopes a contact sync needs (api-notes §1.6).
pub fn default_scopes() -> Vec<String> {
    [
        "base",
        "contacts:full",
        "deals:full",
        "activities:full",
        "products:full",
        "leads:full",
        "contact-fields:full",
        "search:read",
        "users:read",
        "recents:read",
        "admin",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// How many of each object to seed besides persons (`--deals`, `--organizations`, ...).
/// Seeded objects are linked: persons to organizations, deals to persons and organizations,
/// activities to deals (or persons), notes to deals, persons, organizations and leads, leads
/// to persons and organizations; files (one per five notes) to deals and persons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SeedCounts {
    /// Organizations.
    pub organizations: usize,
    /// Deals.
    pub deals: usize,
    /// Activities.
    pub activities: usize,
    /// Notes (and a fifth as many files).
    pub notes: usize,
    /// Leads.
    pub leads: usize,
    /// Products.
    pub products: usize,
}

impl SeedCounts {
    /// Whether anything is to be seeded.
    pub fn any(&self) -> bool {
        *self != SeedCounts::default()
    }
}
