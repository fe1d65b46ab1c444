//! Error types shared across the core: parse failures of domain types and classified CRM errors.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What the worker should do about a failed CRM call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Transient: retry with backoff (429, 408, 5xx, transport errors).
    Retry,
    /// The request cannot succeed as sent: dead-letter it with the CRM's text (400, 404, 410,
    /// 422, other 4xx).
    DontRetry,
    /// The token is invalid: refresh it once, then mark the connection "Token expired" (401).
    Reauthenticate,
    /// The connection lacks rights (missing admin rights or scopes, account not open): pause
    /// its writes, do not drop them, until an operator reconnects (402, 403).
    PauseConnection,
}

/// Classifies a CRM failure from its HTTP status (`None` = no response: a transport error or a
/// client timeout) and Pipedrive's error code, if any.
///
/// A 403 whose code starts with `feature_capping` is an account limit on one kind of object
/// (e.g. open deals), not missing rights, so only that request fails.
pub fn classify(status: Option<u16>, code: Option<&str>) -> ErrorClass {
    match status {
        None | Some(408 | 429 | 500..=599) => ErrorClass::Retry,
        Some(401) => ErrorClass::Reauthenticate,
        Some(403) if code.is_some_and(|c| c.starts_with("feature_capping")) => {
            ErrorClass::DontRetry
        }
        Some(402 | 403) => ErrorClass::PauseConnection,
        Some(_) => ErrorClass::DontRetry,
    }
}

/// Why a raw value could not be turned into a domain type.
///
/// Messages never repeat e-mail addresses or phone numbers (they are personal data, C5).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The e-mail address is empty after trimming.
    #[error("the email address is empty")]
    EmptyEmail,
    /// The e-mail address is longer than 254 characters.
    #[error("the email address is longer than 254 characters")]
    EmailTooLong,
    /// The e-mail address does not contain exactly one `@`.
    #[error("the email address must contain exactly one '@'")]
    EmailAtSign,
    /// The part before the `@` is empty or longer than 64 characters.
    #[error("the email address has an empty or over-long local part")]
    EmailLocalPart,
    /// The part after the `@` is not a dotted domain name.
    #[error("the email address has an invalid domain")]
    EmailDomain,
    /// The e-mail address contains a character Pipedrive does not accept
    /// (whitespace, control characters, or one of `\ , / " : < > | * ~`).
    #[error("the email address contains the unsupported character {0:?}")]
    EmailInvalidCharacter(char),
    /// The phone number is empty after trimming.
    #[error("the phone number is empty")]
    EmptyPhone,
    /// The phone number contains something other than digits, spaces and `+ - ( ) . /`.
    #[error("the phone number contains the unsupported character {0:?}")]
    PhoneInvalidCharacter(char),
    /// The phone number has too few or too many digits, or a `+` that is not leading.
    #[error("the phone number must have 3 to 20 digits and at most one leading '+'")]
    PhoneShape,
    /// A Pipedrive person id must be a positive integer.
    #[error("a person id must be a positive integer, got {0:?}")]
    InvalidPersonId(String),
    /// A UUID-based id could not be parsed.
    #[error("{kind} is not a valid UUID: {input:?}")]
    InvalidUuid {
        /// Which id was being parsed (`contact id`, `connection id`).
        kind: &'static str,
        /// The rejected text.
        input: String,
    },
    /// An apId is empty, contains whitespace or is longer than 255 characters.
    #[error("an apId must be 1 to 255 characters without whitespace, got {0:?}")]
    InvalidApId(String),
    /// A field key is neither a snake_case field name nor a 40-hex Pipedrive custom-field key.
    #[error("{0:?} is neither a snake_case field name nor a 40-hex Pipedrive custom-field key")]
    InvalidFieldKey(String),
    /// A date is not a valid `YYYY-MM-DD` calendar date.
    #[error("{0:?} is not a valid YYYY-MM-DD calendar date")]
    InvalidDate(String),
    /// A number is NaN or infinite.
    #[error("a number must be finite")]
    NonFiniteNumber,
    /// A currency is not a three-letter ISO 4217 code.
    #[error("{0:?} is not a three-letter currency code (ISO 4217, e.g. EUR)")]
    InvalidCurrency(String),
    /// A time of day is not `HH:MM` or `HH:MM:SS` (24 h).
    #[error("{0:?} is not a time of day HH:MM:SS")]
    InvalidTime(String),
    /// A range ends before it starts.
    #[error("the range ends before it starts: {0}")]
    InvalidRange(String),
    /// A tenant id is not 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
    #[error("a tenant must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-', got {0:?}")]
    InvalidTenant(String),
}

/// What went wrong talking to a CRM, as the adapter saw it (the adapter maps its own transport
/// errors to this; core never sees HTTP client types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrmErrorKind {
    /// No HTTP response: connection refused, reset, DNS, TLS.
    Transport,
    /// The request timed out (client side, or HTTP 408).
    Timeout,
    /// HTTP 429: the rate limit or the daily budget is exhausted.
    RateLimited,
    /// HTTP 401: the token is invalid or expired.
    Unauthorized,
    /// HTTP 402/403: missing permission, scope, admin rights, or the account is not open.
    Forbidden,
    /// HTTP 404 or 410: the object does not exist (any more).
    NotFound,
    /// HTTP 400/422 and other 4xx: the CRM rejected the data.
    Rejected,
    /// HTTP 5xx: the CRM failed.
    Server,
    /// Anything else (an unexpected status).
    Other,
}

impl CrmErrorKind {
    /// Whether a write that failed this way may still have been applied: no answer, a
    /// timeout, a server failure. (A 4xx or a 429 says it was not.)
    pub const fn outcome_unknown(self) -> bool {
        matches!(
            self,
            Self::Transport | Self::Timeout | Self::Server | Self::Other
        )
    }

    /// The kind for an HTTP status, or `Transport` when there was no response.
    pub fn from_status(status: Option<u16>) -> Self {
        match status {
            None => Self::Transport,
            Some(408) => Self::Timeout,
            Some(429) => Self::RateLimited,
            Some(401) => Self::Unauthorized,
            Some(402 | 403) => Self::Forbidden,
            Some(404 | 410) => Self::NotFound,
            Some(500..=599) => Self::Server,
            Some(400..=499) => Self::Rejected,
            Some(_) => Self::Other,
        }
    }
}

/// A classified CRM error: the worker reads `retry` and never parses `message`.
///
/// `message` is the CRM's own error text, kept verbatim for the sync log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} from the CRM ({status}): {message}", status = DisplayStatus(*.status))]
pub struct CrmError {
    /// What happened.
    pub kind: CrmErrorKind,
    /// What the worker should do about it.
    pub retry: ErrorClass,
    /// The HTTP status, if there was a response.
    pub status: Option<u16>,
    /// The CRM's `Retry-After`/reset hint; only ever kept on a 429.
    pub retry_after: Option<Duration>,
    /// The CRM's error text, verbatim.
    pub message: String,
    /// The CRM's own error code when it names one (Salesforce's `errorCode`, e.g.
    /// `INVALID_SESSION_ID`), verbatim.
    pub code: Option<String>,
    /// What the user can do about it (the CRM guide's fix), for the sync log.
    pub hint: Option<String>,
    /// With [`CrmErrorKind::NotFound`]: the person this one lives on now (a Salesforce Lead
    /// converted into a Contact), where its writes go instead. Boxed: rare, and errors travel
    /// in every `Result`.
    pub moved_to: Option<Box<crate::PersonId>>,
}

impl CrmError {
    /// Builds a classified error from what the adapter saw: the status (`None` = transport error),
    /// the CRM's error code if any (Pipedrive's `code`/`errorCode`), its message, and the
    /// `Retry-After`/`x-ratelimit-reset` hint, which is dropped unless the status is 429.
    pub fn from_response(
        status: Option<u16>,
        code: Option<&str>,
        message: impl Into<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            kind: CrmErrorKind::from_status(status),
            retry: classify(status, code),
            status,
            retry_after: if status == Some(429) {
                retry_after
            } else {
                None
            },
            message: message.into(),
            code: None,
            hint: None,
            moved_to: None,
        }
    }
}

struct DisplayStatus(Option<u16>);

impl std::fmt::Display for DisplayStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(status) => write!(f, "HTTP {status}"),
            None => f.write_str("no response"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crm_error_displays_its_kind_status_and_verbatim_message() {
        let err = CrmError::from_response(Some(429), None, "Request over limit", None);
        assert_eq!(
            err.to_string(),
            "RateLimited from the CRM (HTTP 429): Request over limit"
        );
        let err = CrmError::from_response(None, None, "connection reset", None);
        assert_eq!(
            err.to_string(),
            "Transport from the CRM (no response): connection reset"
        );
    }

    #[test]
    fn a_retry_after_hint_is_kept_only_on_a_429() {
        let hint = Some(Duration::from_secs(2));
        assert_eq!(
            CrmError::from_response(Some(429), None, "", hint).retry_after,
            hint
        );
        assert_eq!(
            CrmError::from_response(Some(503), None, "", hint).retry_after,
            None
        );
    }

    #[test]
    fn a_crm_error_carries_its_retry_class() {
        assert_eq!(
            CrmError::from_response(Some(401), None, "unauthorized access", None).retry,
            ErrorClass::Reauthenticate
        );
        assert_eq!(
            CrmError::from_response(Some(422), None, "", None).kind,
            CrmErrorKind::Rejected
        );
    }
}
