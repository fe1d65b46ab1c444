//! The HTTP API: one module per resource behind one dispatch.
//!
//! - `dispatch`: the entry point; routing, call counters, faults, the session, API access,
//!   the daily allocation and `Sforce-Limit-Info`; then the resource's handler.
//! - `request` (the handler's view of a request), `response` (Salesforce's error array,
//!   JSON answers).
//! - Resources: `oauth` (authorize, token, revoke, userinfo, identity), `sobjects` (rows and
//!   external ids), `describe`, `query` (query, queryAll, more, updated, deleted),
//!   `composite` (sObject Collections), `composite_call` (Composite, `POST /composite`:
//!   subrequests through the same handlers, one API call), `limits` (limits, versions, resources), `tooling`,
//!   and `admin` (the test hooks under `/__sim`).
//!
//! Imports point down only: `dispatch` → resources → `request`/`response`.

mod admin;
mod composite;
mod composite_call;
mod describe;
mod dispatch;
mod limits;
mod oauth;
mod query;
mod request;
mod response;
mod sobjects;
mod tooling;

pub(crate) use dispatch::{dispatch, App};
