//! A stateful Salesforce REST API simulator for tests, benchmarks and demos: OAuth (web-server
//! flow with PKCE, refresh, revoke, userinfo) on a production and a sandbox login host, an
//! instance with sObject rows, external-id upserts, describe, SOQL query with paging,
//! getUpdated/getDeleted, sObject Collections, limits, the Tooling API pieces for custom
//! fields, users, profiles, permission sets, field-level security, sharing, validation and
//! duplicate rules, test hooks and fault injection. It listens on 127.0.0.1 only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), salesforce_sim::SfSimError> {
//! use salesforce_sim::{OrgKind, SfSimConfig};
//! let sim = salesforce_sim::start(SfSimConfig { leads: 100, ..SfSimConfig::default() }).await?;
//! let tokens = sim.handle().issue_tokens(OrgKind::Production, None)?;
//! println!("API at {}/services/data/v59.0 with {}", tokens.instance_url, tokens.access_token);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod api;
mod cli;
mod config;
mod error;
mod faults;
mod hooks;
mod ids;
mod ops;
mod schema;
mod seed;
mod server;
mod shared;
pub mod soql;
mod state;
mod tokens;

pub use cli::{run_cli, SfSimArgs};
pub use config::SfSimConfig;
pub use error::SfSimError;
pub use faults::{Fault, FaultRule, FaultSpec, Selector};
pub use hooks::{DuplicateRule, OrgKind};
pub use ops::Op;
pub use server::{start, SfSim, SfSimHandle, Tokens, TLS_CERT_PEM};
pub use state::Permissions;
