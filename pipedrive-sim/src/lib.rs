//! A faithful, stateful Pipedrive simulator (OAuth, API v1 and v2, rate limits, webhooks,
//! fault injection) for tests, benchmarks and `tandem demo`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pipedrive_sim::SimError> {
//! let sim = pipedrive_sim::start(pipedrive_sim::SimConfig::default()).await?;
//! let handle = sim.handle();
//! handle.seed_persons(100);
//! println!("API v2 at {}/api/v2", sim.base_url());
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

#![recursion_limit = "256"]

mod api;
mod cli;
mod config;
mod error;
mod faults;
mod model;
mod ops;
mod records;
mod seed;
mod server;
mod shared;
mod state;
mod table;
mod webhooks;

pub use cli::{run_cli, SimArgs};
pub use config::{default_scopes, Plan, RateLimits, SeedCounts, SimConfig};
pub use error::SimError;
pub use faults::{Fault, FaultRule, FaultSpec, Selector};
pub use ops::Op;
pub use server::{start, CompanyAccess, CompanyTraffic, SimHandle, Simulator};
pub use state::Delivery;
