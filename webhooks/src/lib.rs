//! axum routers for inbound webhook deliveries (Pipedrive, the app): verify, persist through the
//! [`pipedrive::Inbox`] port, acknowledge with 2xx. Also the one place that maps errors to HTTP
//! responses ([`error`]), used by every router tandem serves.

pub mod error;
pub mod pipedrive;

pub use error::{ApiError, ErrorCode, FieldError};
