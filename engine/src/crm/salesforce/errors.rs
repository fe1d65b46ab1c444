//! Salesforce failures, classified into the core's `CrmError`. Salesforce answers errors as a
//! JSON array of `{message, errorCode, fields}` (per-record errors of sObject Collections as
//! `{statusCode, message, fields}`; OAuth as `{error, error_description}`). The message is
//! kept verbatim, the code in `CrmError.code`, and the troubleshooting guide's fix in
//! `CrmError.hint`.

use std::time::Duration;

use serde_json::Value;
use tandem_core::{CrmError, CrmErrorKind, ErrorClass};

/// How long to wait after `REQUEST_LIMIT_EXCEEDED` for concurrent long-running requests. (For
/// the daily allocation, and while the budget is inside tandem's reserve, the client sets
/// `salesforce.quota_backoff_secs`: calls free up as old ones leave the rolling 24 hours.)
pub(crate) const CONCURRENCY_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub(crate) enum SalesforceError {
    #[error("Salesforce answered {status}: {code:?}: {message}")]
    Api {
        status: u16,
        code: Option<String>,
        message: String,
        fields: Vec<String>,
    },
    #[error("Salesforce did not answer in time")]
    Timeout,
    #[error("cannot reach Salesforce: {0}")]
    Transport(String),
    #[error("Salesforce answered with an unexpected body: {0}")]
    Decode(String),
    #[error("the daily API budget is down to the reserve kept for other tools ({left} left)")]
    Reserve { left: i64 },
    #[error("{message}")]
    Unsupported { message: String, hint: &'static str },
    #[error("{0}")]
    UnknownId(String),
}

impl From<reqwest::Error> for SalesforceError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else if error.is_decode() {
            Self::Decode(error.to_string())
        } else {
            // reqwest's Display includes the URL, which holds no secret (tokens go in headers).
            Self::Transport(error.to_string())
        }
    }
}

/// The guide's fix for a Salesforce error code.
pub(crate) fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "INVALID_SESSION_ID" => "The session expired or was revoked between cycles: tandem refreshes the token; if that fails, click Reconnect on the Salesforce card.",
        "REQUEST_LIMIT_EXCEEDED" => "The org's API call quota (rolling 24 hours) is used up: tandem backs off and resumes by itself when calls free up. A Salesforce admin can check daily API usage at Setup -> System Overview and look for other tools consuming the quota.",
        "API_DISABLED_FOR_ORG" => "API access is turned off for the org or the connecting user: enable API Enabled in Setup -> Profiles or Permission Sets, or reconnect with a user who has it.",
        "INSUFFICIENT_ACCESS_OR_READONLY" => "The connecting user lacks rights on this record or object: grant Modify All Data (and Customize Application to create fields), or reconnect with a System Administrator.",
        "INVALID_FIELD_FOR_INSERT_UPDATE" => "A mapped field does not exist or is not writable by the connecting user (field-level security): grant Edit on it in Setup -> Profiles -> [profile] -> Field-Level Security, or remove or remap it in the Field Mapping tab.",
        "INVALID_FIELD" => "A mapped field does not exist on the object (renamed or deleted in Salesforce): remove or remap it in the Field Mapping tab.",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" => "A Salesforce validation rule rejected the record: adjust the rule, or pre-populate the field it requires (e.g. LeadSource).",
        "REQUIRED_FIELD_MISSING" => "Salesforce requires the named fields (a Lead needs LastName and Company): map them, or set tandem's lead placeholders.",
        "DUPLICATES_DETECTED" => "A Salesforce duplicate rule blocked the save (the e-mail matches an existing Lead or Contact): link the existing record, or set the rule's action to Alert.",
        "UNABLE_TO_LOCK_ROW" => "Another process held the record: tandem retries.",
        "STRING_TOO_LONG" => "The app's value is longer than the Salesforce field allows (the message gives its max length): shorten it in the app, or lengthen the field in Salesforce (Setup -> Object Manager -> [object] -> Fields & Relationships).",
        "INVALID_EMAIL_ADDRESS" => "Salesforce refuses the e-mail address as written: correct it in the app (one address, no spaces or display name).",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" => "The value is not one of the restricted picklist's values: use one of them in the app, or add the value to the picklist in Salesforce (Setup -> Object Manager -> [object] -> Fields & Relationships).",
        "VALUE_NOT_OF_FIELD_TYPE" => "The app's value does not fit the Salesforce field's type (a checkbox takes true or false, a number field a number, a date field YYYY-MM-DD): correct the value in the app, or map the app field to a Salesforce field of its type in the Field Mapping tab. tandem refused it before sending, so nothing changed in Salesforce and the other contacts of its batch were written.",
        "JSON_PARSER_ERROR" => "Salesforce could not read a value of the request as its field's type and refused the whole call: correct the value, or remap the field in the Field Mapping tab.",
        "CANNOT_UPDATE_CONVERTED_LEAD" => "The Lead was converted: tandem follows the Contact it became.",
        "invalid_grant" => "The refresh token was revoked or expired (the app was removed from Connected Apps OAuth Usage, or a session policy rotated tokens): click Reconnect as the same Salesforce user.",
        "Bad_OAuth_Token" => "The session is invalid: click Reconnect.",
        _ => return None,
    })
}

/// The retry class, kind and delay of an error code at a status.
fn classify(
    status: u16,
    code: Option<&str>,
    message: &str,
) -> (ErrorClass, CrmErrorKind, Option<Duration>) {
    let kind = CrmErrorKind::from_status(Some(status));
    match code {
        Some("INVALID_SESSION_ID" | "invalid_grant" | "Bad_OAuth_Token") => {
            (ErrorClass::Reauthenticate, CrmErrorKind::Unauthorized, None)
        }
        Some("REQUEST_LIMIT_EXCEEDED") => {
            let delay = message
                .contains("Concurrent")
                .then_some(CONCURRENCY_BACKOFF);
            (ErrorClass::Retry, CrmErrorKind::RateLimited, delay)
        }
        Some("UNABLE_TO_LOCK_ROW") => (ErrorClass::Retry, kind, None),
        Some("API_DISABLED_FOR_ORG" | "INSUFFICIENT_ACCESS_OR_READONLY") => {
            (ErrorClass::PauseConnection, CrmErrorKind::Forbidden, None)
        }
        Some(
            "INVALID_FIELD_FOR_INSERT_UPDATE"
            | "FIELD_CUSTOM_VALIDATION_EXCEPTION"
            | "REQUIRED_FIELD_MISSING"
            | "DUPLICATES_DETECTED"
            | "VALUE_NOT_OF_FIELD_TYPE"
            | "JSON_PARSER_ERROR",
        ) => (ErrorClass::DontRetry, CrmErrorKind::Rejected, None),
        other => (tandem_core::classify(Some(status), other), kind, None),
    }
}

/// A classified error from Salesforce's status, code and message.
pub(crate) fn crm_error(status: u16, code: Option<&str>, message: impl Into<String>) -> CrmError {
    let message = message.into();
    let (retry, kind, retry_after) = classify(status, code, &message);
    let mut error = CrmError::from_response(Some(status), code, message, None);
    error.retry = retry;
    error.kind = kind;
    error.retry_after = retry_after;
    error.code = code.map(str::to_owned);
    error.hint = code.and_then(hint).map(str::to_owned).or_else(|| {
        (status >= 500).then(|| "Salesforce failed to answer: tandem retries.".to_owned())
    });
    error
}

impl From<SalesforceError> for CrmError {
    fn from(error: SalesforceError) -> Self {
        match error {
            SalesforceError::Api {
                status,
                code,
                message,
                ..
            } => crm_error(status, code.as_deref(), message),
            SalesforceError::Timeout => {
                let mut error = CrmError::from_response(None, None, "request timed out", None);
                error.kind = CrmErrorKind::Timeout;
                error
            }
            SalesforceError::Transport(message) => {
                CrmError::from_response(None, None, message, None)
            }
            // A 2xx we cannot read will not become readable on retry.
            SalesforceError::Decode(message) => {
                CrmError::from_response(Some(422), None, message, None)
            }
            SalesforceError::Reserve { left } => {
                let mut error = CrmError::from_response(
                    None,
                    Some("RESERVE"),
                    format!("the daily API budget is down to the reserve kept for other tools ({left} left)"),
                    None,
                );
                error.kind = CrmErrorKind::RateLimited;
                error.retry = ErrorClass::Retry;
                error.hint = Some("tandem keeps `salesforce.api_reserve` daily calls for other tools and resumes when the rolling 24-hour window frees calls.".into());
                error
            }
            SalesforceError::Unsupported { message, hint } => {
                let mut error =
                    CrmError::from_response(Some(422), Some("unsupported"), message, None);
                error.code = Some("unsupported".into());
                error.hint = Some(hint.to_owned());
                error
            }
            SalesforceError::UnknownId(message) => {
                let mut error = CrmError::from_response(Some(404), None, message, None);
                error.hint = Some("Run a sync so tandem reads the record again.".into());
                error
            }
        }
    }
}

/// Salesforce's error text out of an error body: the first entry of the array
/// (`{message, errorCode, fields}`), an OAuth error (`{error, error_description}`), else the
/// raw text. Returns (code, message, fields).
pub(crate) fn error_text(body: &Value, raw: &str) -> (Option<String>, String, Vec<String>) {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    if let Some(first) = body.as_array().and_then(|a| a.first()) {
        let code = text(first, "errorCode").or_else(|| text(first, "statusCode"));
        let message = text(first, "message").unwrap_or_default();
        let fields = first
            .get("fields")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        return (code, message, fields);
    }
    if let Some(error) = text(body, "error") {
        let message = text(body, "error_description").unwrap_or_else(|| error.clone());
        return (Some(error), message, Vec::new());
    }
    // The identity endpoints answer a bare code as text (`Bad_OAuth_Token`).
    let bare = raw.trim();
    let code = (!bare.is_empty()
        && bare.len() <= 64
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then(|| bare.to_owned());
    (code, raw.chars().take(500).collect(), Vec::new())
}

/// One per-record error of an sObject Collections answer as a classified error. The record was
/// not written; the status is the one Salesforce gives the same error on a single-record call.
pub(crate) fn record_error(code: Option<&str>, message: &str) -> CrmError {
    let status = match code {
        Some("NOT_FOUND" | "ENTITY_IS_DELETED") => 404,
        Some("REQUEST_LIMIT_EXCEEDED" | "API_DISABLED_FOR_ORG") => 403,
        Some("INVALID_SESSION_ID") => 401,
        _ => 400,
    };
    crm_error(status, code, message)
}
