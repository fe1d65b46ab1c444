//! The integration test binary: every module drives a real tandem on 127.0.0.1 against a fresh
//! database (SQLite, or Postgres when `TANDEM_TEST_DATABASE_URL` is set).

// Test helpers outside #[test] functions may unwrap too: a failure is a failed test.
#![allow(clippy::unwrap_used)]

mod actions;
mod actions_routing;
mod admin;
mod app_api;
mod connections;
mod crash;
mod disconnected_queue;
mod duplicates;
mod emails;
mod emails_routing;
mod fields;
mod fuzz;
mod health;
mod inbound;
mod lists;
mod live;
mod metrics;
mod migrations;
mod mirror;
mod organizations;
mod queue;
mod races;
mod record_check;
mod replicas;
mod salesforce;
mod salesforce_actions;
mod salesforce_related;
mod salesforce_triggers;
mod security;
mod tenants;
mod triggers;
mod writeback;
