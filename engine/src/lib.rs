//! tandem's engine: configuration, telemetry, storage, the durable queue, CRM adapters, the
//! sync use-cases and the HTTP surface. `main.rs` only parses the command line and calls in here.

pub mod app;
pub mod bulk;
pub mod cli;
pub mod cli_extract;
pub mod cli_sync;
pub mod clock;
pub mod config;
pub mod crm;
pub mod crypto;
pub mod demo;
pub mod egress;
pub mod http;
pub mod meter;
pub mod mirror;
pub mod queue;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod value_json;
