//! The Pipedrive adapter: API v2 for persons, deals, activities, person fields and search; v1 for
//! users/me and webhooks. The base URL is the connection's `api_domain`. `client` speaks HTTP,
//! `wire` holds the JSON shapes, `mapping` converts them to and from the core's snapshots, and
//! `errors` classifies failures so workers never parse strings.

pub mod client;
pub(crate) mod errors;
pub mod field_rules;
pub mod mapping;
pub(crate) mod ops;
pub mod wire;

pub use ops::OAuthApp;

#[cfg(test)]
mod tests;
