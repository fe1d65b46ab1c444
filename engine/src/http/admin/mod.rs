//! The admin surface: a JSON API under `/admin/api/...` (Bearer `security.admin_token`, or the
//! console's session cookie plus an `x-csrf-token` header for writes) and the server-rendered
//! console under `/admin/...` (login with the admin token into an HttpOnly, SameSite=Strict,
//! HMAC-signed session cookie; every form carries a CSRF token bound to the session).

mod api;
mod layout;
mod pages;
pub(crate) mod session;

use axum::Router;
use tandem_webhooks::{ApiError, ErrorCode, FieldError};

pub(crate) use layout::{error_page, STYLE};

use super::AppState;
use crate::sync::SyncError;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .with_state(state)
}

/// How a use-case error reads to an admin client.
pub(crate) fn api_error(error: SyncError) -> ApiError {
    match error {
        SyncError::ConnectionNotFound(id) => {
            ApiError::new(ErrorCode::NotFound, format!("connection {id} does not exist"))
        }
        SyncError::ContactNotFound(id) => {
            ApiError::new(ErrorCode::NotFound, format!("contact {id} does not exist"))
        }
        SyncError::Invalid(message) => ApiError::new(ErrorCode::ValidationFailed, message),
        SyncError::Validation { field, message } => ApiError::new(
            ErrorCode::ValidationFailed,
            format!("{field}: {message}"),
        )
        .with_fields(vec![FieldError { field, message }]),
        error @ SyncError::CompanyChanged { .. } => {
            ApiError::new(ErrorCode::CompanyChanged, format!("{error}. Sign in with the original company, or confirm a reset (links to the old company's persons are dropped; contacts stay)."))
        }
        SyncError::AdminRequired(message) => {
            ApiError::new(ErrorCode::PipedriveAdminRequired, message)
        }
        SyncError::Crm(error) => match error.kind {
            tandem_core::CrmErrorKind::Unauthorized => ApiError::new(
                ErrorCode::ConnectionUnavailable,
                format!(
                    "Pipedrive refused the token (401: {}); reconnect Pipedrive",
                    error.message
                ),
            ),
            tandem_core::CrmErrorKind::Forbidden => ApiError::new(
                ErrorCode::PipedriveAdminRequired,
                format!(
                    "Pipedrive refused the request ({}: {}); the connecting user lacks rights or scopes",
                    error.status.unwrap_or(403),
                    error.message
                ),
            ),
            _ => ApiError::new(
                ErrorCode::PipedriveRejected,
                match error.status {
                    Some(status) => format!("Pipedrive answered {status}: {}", error.message),
                    None => format!("Pipedrive could not be reached: {}", error.message),
                },
            ),
        },
        other => ApiError::internal(&other),
    }
}
