//! The one place that turns errors into HTTP responses, for every router tandem serves.
//! Bodies are `{"code": "snake_case_id", "detail": "human text"}` with a closed set of codes;
//! 5xx bodies are opaque (the cause goes to the log, never to the client).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// Stable error codes. Adding one is fine; renaming one breaks clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    MalformedJson,
    UnknownObject,
    UnknownField,
    ValidationFailed,
    Unauthorized,
    InvalidSignature,
    TimestampOutOfTolerance,
    Forbidden,
    CsrfFailed,
    NotFound,
    MethodNotAllowed,
    Conflict,
    IdempotencyKeyReused,
    IdempotencyKeyRequired,
    SecretNotReplayed,
    TooManyAttempts,
    PayloadTooLarge,
    UnsupportedMediaType,
    NoPipedrivePerson,
    /// The action needs a Salesforce Contact, and the contact's record is a Lead.
    LeadNotConverted,
    /// The connection's CRM has no such action (add_to_campaign on Pipedrive).
    ActionNotSupported,
    ConnectionUnavailable,
    /// A request named a connection (`connection_id`) that does not exist.
    UnknownConnection,
    /// A request named a connection that is disconnected.
    ConnectionDisconnected,
    /// The contact is linked in several connections and the request named none.
    ConnectionRequired,
    /// The `Tandem-Tenant` header is not a tenant id (1 to 64 of `A-Z a-z 0-9 . _ -`).
    InvalidTenant,
    /// The API key is one tenant's, and the request names another.
    TenantForbidden,
    CompanyChanged,
    OauthStateInvalid,
    OauthDenied,
    OauthNotConfigured,
    PipedriveRejected,
    PipedriveUnavailable,
    PipedriveRateLimited,
    PipedriveAdminRequired,
    AdminDisabled,
    NotReady,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest
            | Self::MalformedJson
            | Self::UnknownObject
            | Self::InvalidTenant
            | Self::OauthStateInvalid
            | Self::OauthDenied => StatusCode::BAD_REQUEST,
            Self::PipedriveRejected => StatusCode::BAD_GATEWAY,
            Self::PipedriveAdminRequired | Self::AdminDisabled | Self::TenantForbidden => {
                StatusCode::FORBIDDEN
            }
            Self::OauthNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Self::UnknownField
            | Self::ValidationFailed
            | Self::NoPipedrivePerson
            | Self::LeadNotConverted
            | Self::ActionNotSupported
            | Self::UnknownConnection
            | Self::ConnectionRequired => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized | Self::InvalidSignature | Self::TimestampOutOfTolerance => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden | Self::CsrfFailed => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict
            | Self::IdempotencyKeyReused
            | Self::CompanyChanged
            | Self::ConnectionDisconnected
            | Self::SecretNotReplayed => StatusCode::CONFLICT,
            Self::IdempotencyKeyRequired => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ConnectionUnavailable
            | Self::NotReady
            | Self::PipedriveUnavailable
            | Self::PipedriveRateLimited => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A field-level validation message, for 422 bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// An error as an HTTP client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub fields: Vec<FieldError>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            fields: Vec::new(),
        }
    }

    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.fields = fields;
        self
    }

    /// A 500 whose cause is logged here and never shown to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Request failed with an internal error.");
        Self::new(ErrorCode::Internal, "internal error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            serde_json::to_value(self.code).unwrap_or_default(),
            self.detail
        )
    }
}

impl std::error::Error for ApiError {}

/// The body of every error response but an opaque 5xx (which is `{}`); its schema is the
/// OpenAPI document's `Error`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    /// The stable code: what went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub detail: &'a str,
    /// One message per field, for 422s (absent otherwise).
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    #[schema(required = false)]
    pub fields: &'a [FieldError],
}

impl ApiError {
    /// The error that stands for a bare `status` (a framework rejection, a missing route), so
    /// that every 4xx tandem answers has the same JSON shape.
    pub fn for_status(status: StatusCode, detail: impl Into<String>) -> Option<Self> {
        let code = match status {
            StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::CONFLICT => ErrorCode::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::ValidationFailed,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyAttempts,
            _ => return None,
        };
        Some(Self::new(code, detail))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        if status.is_server_error() && self.code == ErrorCode::Internal {
            return (status, Json(serde_json::json!({}))).into_response();
        }
        (
            status,
            Json(ErrorBody {
                code: self.code,
                detail: &self.detail,
                fields: &self.fields,
            }),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serialises_as_snake_case() {
        let code = serde_json::to_value(ErrorCode::TimestampOutOfTolerance).unwrap();
        assert_eq!(code, "timestamp_out_of_tolerance");
    }

    #[test]
    fn client_errors_keep_their_detail_and_server_errors_are_opaque() {
        let bad =
            ApiError::new(ErrorCode::MalformedJson, "expected value at line 1").into_response();
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let internal = ApiError::internal(&"disk on fire").into_response();
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
