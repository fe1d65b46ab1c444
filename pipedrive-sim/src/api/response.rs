//! What every answer is made of: the error type handlers return ([`ApiErr`]) and the
//! Pipedrive envelopes it renders as (400/404/422, 401, 429, injected 5xx), the JSON and
//! pre-serialized byte responses, and `{"success": true, "data": ...}`.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::state::Event;

/// `error_info` of most envelopes.
pub(super) const ERROR_INFO: &str = "Please check developers.pipedrive.com";

/// An API error, rendered as Pipedrive's envelope for its status.
#[derive(Debug)]
pub(super) enum ApiErr {
    BadRequest(String),
    NotFound(String),
    Unprocessable(String),
    /// A body in the v1 webhooks API's own error shape.
    Raw(StatusCode, Value),
}

/// A JSON handler's answer: status, body, and the changes to send as webhooks.
pub(super) type HResult = Result<(StatusCode, Value, Vec<Event>), ApiErr>;

/// A handler's answer body: a `Value`, or bytes serialized straight from the store.
pub(super) enum Out {
    Json(Value),
    Bytes(Vec<u8>),
}

/// A JSON answer already serialized.
pub(super) fn bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// A JSON answer.
pub(super) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Pipedrive's error envelope.
pub(super) fn envelope(status: StatusCode, error: &str, info: &str) -> Response {
    json_response(
        status,
        &json!({"success": false, "error": error, "error_info": info, "data": null, "additional_data": null}),
    )
}

/// 401, for a missing, unknown, expired or revoked token.
pub(super) fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"success": false, "error": "unauthorized access", "errorCode": 401, "error_info": ERROR_INFO}),
    )
}

/// 429, for an exhausted burst window or daily budget.
pub(super) fn too_many() -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"success": false, "error": "Request over limit", "errorCode": 429, "error_info": ERROR_INFO}),
    )
}

/// The answer of an injected status fault (429 with its rate-limit headers).
pub(super) fn injected_status(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code == StatusCode::TOO_MANY_REQUESTS {
        let mut r = too_many();
        let h = r.headers_mut();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("2"));
        return r;
    }
    let msg = match status {
        502 => "Bad gateway",
        503 => "Whoops! Something broke in our servers. Please try again later.",
        504 => "Gateway timeout",
        _ => "Internal server error",
    };
    envelope(code, msg, ERROR_INFO)
}

impl ApiErr {
    pub(super) fn into_response(self) -> Response {
        match self {
            ApiErr::BadRequest(m) => envelope(StatusCode::BAD_REQUEST, &m, ERROR_INFO),
            ApiErr::NotFound(m) => envelope(StatusCode::NOT_FOUND, &m, "Object was not found."),
            ApiErr::Unprocessable(m) => envelope(StatusCode::UNPROCESSABLE_ENTITY, &m, ERROR_INFO),
            ApiErr::Raw(s, v) => json_response(s, &v),
        }
    }
}

/// `{"success": true, "data": data}`.
pub(super) fn ok_data(data: Value) -> Value {
    json!({"success": true, "data": data})
}
