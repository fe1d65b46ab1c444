//! Pipedrive failures, classified into the core's `CrmError` (retry / don't retry /
//! re-authenticate / pause).

use std::time::Duration;

use tandem_core::CrmError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PipedriveError {
    #[error("Pipedrive answered {status}: {message}")]
    Status {
        status: u16,
        code: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("Pipedrive did not answer in time")]
    Timeout,
    #[error("cannot reach Pipedrive: {0}")]
    Transport(String),
    #[error("Pipedrive answered with an unexpected body: {0}")]
    Decode(String),
}

impl From<reqwest::Error> for PipedriveError {
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

impl From<PipedriveError> for CrmError {
    fn from(error: PipedriveError) -> Self {
        match error {
            PipedriveError::Status {
                status,
                code,
                message,
                retry_after,
            } => CrmError::from_response(Some(status), code.as_deref(), message, retry_after),
            PipedriveError::Timeout => {
                let mut error = CrmError::from_response(None, None, "request timed out", None);
                error.kind = tandem_core::CrmErrorKind::Timeout;
                error
            }
            PipedriveError::Transport(message) => {
                CrmError::from_response(None, None, message, None)
            }
            // A 2xx we cannot read will not become readable on retry.
            PipedriveError::Decode(message) => {
                CrmError::from_response(Some(422), None, message, None)
            }
        }
    }
}

/// Pulls Pipedrive's error text out of an error body: `error` (+ `error_info`), `message`, or
/// `errors` (webhooks API), verbatim.
pub(crate) fn error_text(body: &serde_json::Value, raw: &str) -> (Option<String>, String) {
    let code = body
        .get("code")
        .and_then(|c| c.as_str().map(str::to_owned))
        .or_else(|| {
            body.get("error")
                .and_then(|e| e.as_str())
                .filter(|e| e.starts_with("invalid_"))
                .map(str::to_owned)
        });
    let oauth_message = body
        .get("message")
        .and_then(|m| m.as_str())
        .filter(|_| code.as_deref().is_some_and(|c| c.starts_with("invalid_")));
    let message = if let Some(message) = oauth_message {
        // OAuth errors: `error` is the code, `message` the text.
        message.to_owned()
    } else if let Some(error) = body.get("error").and_then(|e| e.as_str()) {
        match body.get("error_info").and_then(|e| e.as_str()) {
            Some(info) if !info.is_empty() => format!("{error} ({info})"),
            _ => error.to_owned(),
        }
    } else if let Some(message) = body.get("message").and_then(|m| m.as_str()) {
        message.to_owned()
    } else if let Some(errors) = body.get("errors") {
        errors.to_string()
    } else {
        raw.chars().take(500).collect()
    };
    (code, message)
}
