//! axum routers for inbound webhook deliveries (Pipedrive, the app): verify, persist through the
//! [`pipedrive::Inbox`] / [`app::AppInbox`] ports, acknowledge with 2xx. [`standard`] signs and
//! verifies Standard Webhooks (the app's inbound events and tandem's outbound ones). Also the one
//! place that maps errors to HTTP responses ([`error`]), used by every router tandem serves.

pub mod app;
pub mod error;
pub mod pipedrive;
pub mod standard;

pub use error::{ApiError, ErrorCode, FieldError};
