//! The one place where the engine's errors become HTTP errors, for every surface tandem serves:
//! the app's REST API (`/api/v1`), the admin API, the console's pages and JSON endpoints, and the
//! OAuth connect flow.
//!
//! The codes, their statuses and the body shape (`{"code", "detail", "fields"?}`, opaque 5xx)
//! are [`tandem_webhooks::ApiError`]'s closed table; this module only decides which code a
//! use-case error is. Every known error class has its own code: a CRM failure is a 502/503 with
//! the CRM's text, a company change a 409 `company_changed`, a validation error a 422. Only what
//! the client cannot act on (the database, the queue, a secret that does not decrypt, corrupt
//! rows) is an opaque 500, its cause logged.

use tandem_core::{CrmError, CrmErrorKind};
pub(crate) use tandem_webhooks::{ApiError, ErrorCode, FieldError};

use crate::store::StoreError;
use crate::sync::connections::route::RouteError;
use crate::sync::emails::EmailError;
use crate::sync::outbound::actions::ActionError;
use crate::sync::SyncError;

impl From<SyncError> for ApiError {
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::ConnectionNotFound(id) => {
                Self::new(ErrorCode::NotFound, format!("connection {id} does not exist"))
            }
            SyncError::ContactNotFound(id) => {
                Self::new(ErrorCode::NotFound, format!("contact {id} does not exist"))
            }
            error @ SyncError::Archived(_) => Self::new(ErrorCode::Conflict, error.to_string()),
            SyncError::Invalid(message) => Self::new(ErrorCode::ValidationFailed, message),
            SyncError::Validation { field, message } => {
                Self::new(ErrorCode::ValidationFailed, format!("{field}: {message}"))
                    .with_fields(vec![FieldError { field, message }])
            }
            error @ SyncError::CompanyChanged { .. } => Self::new(
                ErrorCode::CompanyChanged,
                format!("{error}. Sign in with the original company, or confirm a reset (links to the old company's persons are dropped; contacts stay)."),
            ),
            SyncError::AdminRequired(message) => {
                Self::new(ErrorCode::PipedriveAdminRequired, message)
            }
            SyncError::Crm(error) => crm_error(&error),
            error @ (SyncError::Store(_)
            | SyncError::Queue(_)
            | SyncError::Crypto(_)
            | SyncError::Corrupt(_)
            | SyncError::LostRace(_)) => Self::internal(&error),
        }
    }
}

impl From<StoreError> for ApiError {
    /// The database is nothing the client can act on: an opaque 500, its cause logged.
    fn from(error: StoreError) -> Self {
        Self::internal(&error)
    }
}

/// A CRM failure as the client sees it: what went wrong upstream, with the CRM's own text.
/// - 401 from the CRM: 503 `connection_unavailable` (reconnect);
/// - 402/403: 403 `pipedrive_admin_required` (rights or scopes);
/// - 429: 503 `pipedrive_rate_limited` (try again later);
/// - no answer or a timeout: 503 `pipedrive_unavailable`;
/// - a 5xx, a refusal of the data or anything else: 502 `pipedrive_rejected`.
pub(crate) fn crm_error(error: &CrmError) -> ApiError {
    let answered = |what: &str| match error.status {
        Some(status) => format!("Pipedrive answered {status}: {}{what}", error.message),
        None => format!("Pipedrive could not be reached: {}{what}", error.message),
    };
    match error.kind {
        CrmErrorKind::Unauthorized => ApiError::new(
            ErrorCode::ConnectionUnavailable,
            format!(
                "Pipedrive refused the token (401: {}); reconnect Pipedrive",
                error.message
            ),
        ),
        CrmErrorKind::Forbidden => ApiError::new(
            ErrorCode::PipedriveAdminRequired,
            format!(
                "Pipedrive refused the request ({}: {}); the connecting user lacks rights or scopes",
                error.status.unwrap_or(403),
                error.message
            ),
        ),
        CrmErrorKind::RateLimited => {
            let wait = error
                .retry_after
                .map(|d| format!("; try again in {} s", d.as_secs().max(1)))
                .unwrap_or_else(|| "; try again later".to_owned());
            ApiError::new(ErrorCode::PipedriveRateLimited, answered(&wait))
        }
        CrmErrorKind::Transport | CrmErrorKind::Timeout => {
            ApiError::new(ErrorCode::PipedriveUnavailable, answered(""))
        }
        CrmErrorKind::NotFound
        | CrmErrorKind::Rejected
        | CrmErrorKind::Server
        | CrmErrorKind::Other => ApiError::new(ErrorCode::PipedriveRejected, answered("")),
    }
}

impl From<ActionError> for ApiError {
    fn from(error: ActionError) -> Self {
        match error {
            ActionError::Invalid(text) => Self::new(ErrorCode::ValidationFailed, text.clone())
                .with_fields(vec![FieldError {
                    field: "params".into(),
                    message: text,
                }]),
            error @ (ActionError::UnknownAction(_) | ActionError::UnknownContact) => {
                Self::new(ErrorCode::NotFound, error.to_string())
            }
            error @ ActionError::NoPipedrivePerson(_) => {
                Self::new(ErrorCode::NoPipedrivePerson, error.to_string())
            }
            error @ ActionError::LeadNotConverted => {
                Self::new(ErrorCode::LeadNotConverted, error.to_string())
            }
            error @ ActionError::NotSupported(..) => {
                Self::new(ErrorCode::ActionNotSupported, error.to_string())
            }
            error @ ActionError::KeyReused => {
                Self::new(ErrorCode::IdempotencyKeyReused, error.to_string())
            }
            ActionError::Route(error) => error.into(),
            ActionError::Sync(error) => error.into(),
        }
    }
}

impl From<EmailError> for ApiError {
    fn from(error: EmailError) -> Self {
        match error {
            error @ EmailError::NotFound => Self::new(ErrorCode::NotFound, error.to_string()),
            EmailError::Invalid { field, message } => {
                Self::new(ErrorCode::ValidationFailed, "some fields are invalid").with_fields(vec![
                    FieldError {
                        field: field.to_owned(),
                        message,
                    },
                ])
            }
            error @ EmailError::KeyReused => {
                Self::new(ErrorCode::IdempotencyKeyReused, error.to_string())
            }
            EmailError::Route(error) => error.into(),
            EmailError::Sync(error) => error.into(),
        }
    }
}

/// Why a request about a contact found no connection to go to:
/// - a named connection that does not exist: 422 `unknown_connection`;
/// - a named connection that is disconnected: 409 `connection_disconnected`;
/// - no connection named and the contact linked in several: 422 `connection_required`;
/// - no connection active at all: 503 `connection_unavailable`.
impl From<RouteError> for ApiError {
    fn from(error: RouteError) -> Self {
        let field = |error: &RouteError| FieldError {
            field: "connection_id".into(),
            message: error.to_string(),
        };
        match error {
            error @ RouteError::Unknown(_) => {
                let fields = vec![field(&error)];
                Self::new(ErrorCode::UnknownConnection, error.to_string()).with_fields(fields)
            }
            error @ RouteError::Disconnected(_) => {
                Self::new(ErrorCode::ConnectionDisconnected, error.to_string())
            }
            error @ RouteError::Ambiguous { .. } => {
                let fields = vec![field(&error)];
                Self::new(ErrorCode::ConnectionRequired, error.to_string()).with_fields(fields)
            }
            error @ RouteError::NotConnected => {
                Self::new(ErrorCode::ConnectionUnavailable, error.to_string())
            }
            RouteError::Sync(error) => error.into(),
        }
    }
}

/// [`ApiError::from`] as a function, for `map_err` and the console's error pages.
pub(crate) fn api_error(error: impl Into<ApiError>) -> ApiError {
    error.into()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;

    use super::*;

    fn status_and_code(error: impl Into<ApiError>) -> (StatusCode, String) {
        let error = error.into();
        let code = serde_json::to_value(error.code).unwrap();
        (error.code.status(), code.as_str().unwrap().to_owned())
    }

    #[test]
    fn a_company_change_is_a_409_company_changed_wherever_it_comes_from() {
        let error = SyncError::CompanyChanged {
            connected: Some(1),
            offered: Some(2),
        };
        assert_eq!(
            status_and_code(error),
            (StatusCode::CONFLICT, "company_changed".into())
        );
        let through_an_action = ActionError::Sync(SyncError::CompanyChanged {
            connected: Some(1),
            offered: Some(2),
        });
        assert_eq!(
            status_and_code(through_an_action),
            (StatusCode::CONFLICT, "company_changed".into())
        );
    }

    #[test]
    fn crm_errors_are_upstream_errors_with_the_crms_text_never_a_bare_500() {
        let cases = [
            (
                Some(401),
                "unauthorized",
                StatusCode::SERVICE_UNAVAILABLE,
                "connection_unavailable",
            ),
            (
                Some(403),
                "forbidden",
                StatusCode::FORBIDDEN,
                "pipedrive_admin_required",
            ),
            (
                Some(429),
                "slow down",
                StatusCode::SERVICE_UNAVAILABLE,
                "pipedrive_rate_limited",
            ),
            (
                None,
                "connection refused",
                StatusCode::SERVICE_UNAVAILABLE,
                "pipedrive_unavailable",
            ),
            (
                Some(408),
                "timeout",
                StatusCode::SERVICE_UNAVAILABLE,
                "pipedrive_unavailable",
            ),
            (
                Some(500),
                "boom",
                StatusCode::BAD_GATEWAY,
                "pipedrive_rejected",
            ),
            (
                Some(400),
                "bad field",
                StatusCode::BAD_GATEWAY,
                "pipedrive_rejected",
            ),
        ];
        for (status, text, expected, code) in cases {
            let crm = CrmError::from_response(status, None, text, Some(Duration::from_secs(7)));
            let error = ApiError::from(SyncError::Crm(crm));
            assert_eq!(error.code.status(), expected, "{status:?}");
            assert_eq!(
                serde_json::to_value(error.code).unwrap(),
                code,
                "{status:?}"
            );
            assert!(error.detail.contains(text), "{}", error.detail);
        }
    }

    #[test]
    fn validation_errors_are_422_with_the_field_named() {
        let error = ApiError::from(SyncError::Validation {
            field: "name".into(),
            message: "is required".into(),
        });
        assert_eq!(error.code.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(error.fields[0].field, "name");
        let action = ApiError::from(ActionError::Invalid("unknown stage 9".into()));
        assert_eq!(action.code, ErrorCode::ValidationFailed);
    }

    #[test]
    fn a_request_that_cannot_be_routed_to_a_connection_says_why_with_its_own_code() {
        let id = tandem_core::ConnectionId::new(uuid::Uuid::nil());
        let cases = [
            (
                RouteError::Unknown(id),
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_connection",
            ),
            (
                RouteError::Disconnected(id),
                StatusCode::CONFLICT,
                "connection_disconnected",
            ),
            (
                RouteError::Ambiguous {
                    what: "the contact is",
                    connections: vec![id, id],
                },
                StatusCode::UNPROCESSABLE_ENTITY,
                "connection_required",
            ),
            (
                RouteError::NotConnected,
                StatusCode::SERVICE_UNAVAILABLE,
                "connection_unavailable",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(
                status_and_code(ActionError::Route(error)),
                (status, code.to_owned())
            );
        }
    }

    #[test]
    fn an_archived_contact_is_a_409_with_the_reason() {
        let error = ApiError::from(SyncError::Archived(uuid::Uuid::nil()));
        assert_eq!(error.code, ErrorCode::Conflict);
        assert!(error.detail.contains("archived"), "{}", error.detail);
    }
}
