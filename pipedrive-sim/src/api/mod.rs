//! The HTTP API: one module per resource, each owning its operations' handlers, behind one
//! dispatch.
//!
//! - `dispatch`: the entry point; routing, call counting, fault injection, authentication,
//!   rate limits and token costs, scopes; then the resource's handler.
//! - `auth` (credentials, the caller), `limits` (burst windows, the daily budget, rate-limit
//!   headers), `request` (the handler's view of a request: query, body, company),
//!   `response` (errors and envelopes), `paging` (cursors and sorting).
//! - Resources: `persons`, `search`, `fields`, `deals`, `activities`, `pipelines` (and
//!   stages), `organizations` (and their search), `products`, `leads` (and lead labels),
//!   `notes`, `files`, `reference` (activity types, currencies, filters), `users`,
//!   `subscriptions` (webhook registration), `recents`, `oauth`, and `legacy` (the v1 reads
//!   out of support since 2026-08-01, only with `--legacy-v1`); `v1_objects` builds the
//!   legacy v1 shapes for `legacy` and `recents`.
//!
//! Imports point down only: `dispatch` → resources → `request`/`paging`/`response`; no
//! resource imports another, and nothing here imports `crate::server`.

mod activities;
mod auth;
mod deals;
mod dispatch;
mod fields;
mod files;
mod leads;
mod legacy;
mod limits;
mod notes;
mod oauth;
mod organizations;
mod paging;
mod persons;
mod pipelines;
mod products;
mod recents;
mod reference;
mod request;
mod response;
mod search;
mod subscriptions;
mod users;
mod v1_objects;

pub(crate) use dispatch::dispatch;
