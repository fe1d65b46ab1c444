//! What every answer is made of: [`ApiErr`] (Salesforce's `[{message, errorCode, fields}]`
//! array with its status), OAuth's `{error, error_description}`, and JSON answers.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::state::DmlError;

/// An API error: one or more `{message, errorCode, fields}` with one status.
#[derive(Debug)]
pub(super) struct ApiErr {
    pub(super) status: StatusCode,
    pub(super) body: Value,
}

impl ApiErr {
    /// An error without `fields` (session, limits, routing).
    pub(super) fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        ApiErr {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            body: json!([{"message": message.into(), "errorCode": code}]),
        }
    }

    pub(super) fn not_found() -> Self {
        ApiErr::new(404, "NOT_FOUND", "The requested resource does not exist")
    }

    pub(super) fn invalid_session() -> Self {
        ApiErr::new(401, "INVALID_SESSION_ID", "Session expired or invalid")
    }

    pub(super) fn bad_json(detail: &str) -> Self {
        ApiErr::new(400, "JSON_PARSER_ERROR", detail.to_owned())
    }

    pub(super) fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

impl From<DmlError> for ApiErr {
    fn from(e: DmlError) -> Self {
        let mut item = json!({"message": e.message, "errorCode": e.code, "fields": e.fields});
        if let Some(d) = e.duplicate {
            // Salesforce's REST answers spell it this way.
            item["duplicateResut"] = d;
        }
        ApiErr {
            status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            body: json!([item]),
        }
    }
}

/// One per-record error of sObject Collections: `{statusCode, message, fields}`.
pub(super) fn item_error(e: &DmlError) -> Value {
    let mut item = json!({"statusCode": e.code, "message": e.message, "fields": e.fields});
    if let Some(d) = &e.duplicate {
        item["duplicateResult"] = d.clone();
    }
    item
}

/// A handler's answer.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) body: Option<Value>,
}

impl Answer {
    pub(super) fn ok(body: Value) -> Self {
        Answer {
            status: StatusCode::OK,
            body: Some(body),
        }
    }

    pub(super) fn with(status: StatusCode, body: Value) -> Self {
        Answer {
            status,
            body: Some(body),
        }
    }

    pub(super) fn no_content() -> Self {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: None,
        }
    }

    pub(super) fn into_response(self) -> Response {
        match self.body {
            Some(b) => json_response(self.status, &b),
            None => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = self.status;
                r
            }
        }
    }
}

pub(super) type HResult = Result<Answer, ApiErr>;

/// A JSON answer.
pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    r
}

/// An OAuth error: `{"error": ..., "error_description": ...}`.
pub(super) fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({"error": error, "error_description": description}),
    )
}

/// The answer of an injected 5xx: Salesforce's error array for 500 and 503, a proxy's
/// HTML page for 502 and 504.
pub(super) fn injected_status(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match status {
        503 => ApiErr::new(503, "SERVER_UNAVAILABLE", "Server Unavailable").into_response(),
        502 | 504 => {
            let mut r = Response::new(Body::from(format!(
                "<html><body><h1>{} {}</h1></body></html>",
                code.as_u16(),
                code.canonical_reason().unwrap_or("")
            )));
            *r.status_mut() = code;
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            r
        }
        _ => ApiErr::new(
            500,
            "UNKNOWN_EXCEPTION",
            "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
        )
        .into_response(),
    }
}
