//! `Idempotency-Key` on POSTs. The first request with a key is executed and its response (2xx
//! or 4xx) stored in `idempotency_key`, scoped to the API key that sent it; a retry with the
//! same key and the same request gets the stored response (`Idempotent-Replayed: true`), one with
//! a different request gets 409 `idempotency_key_reused`, and one arriving while the first is
//! still running gets 409 `conflict`. A 5xx is not stored, so the client can retry.
//!
//! A response that carries a secret shown once ([`CarriesSecret`]) is stored without it (under
//! [`WITHHELD`]), and its replay is refused with 409 `secret_not_replayed`, naming what was
//! created: the secret never rests in the database in clear and is never shown twice.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tandem_webhooks::{ApiError, ErrorCode};

use super::{ApiClient, CarriesSecret};
use crate::http::AppState;
use crate::store::idempotency::{self, IN_PROGRESS};

pub(super) const HEADER: &str = "idempotency-key";
/// Key of a stored body whose secrets were withheld (no API body has keys starting with `$`).
const WITHHELD: &str = "$secret_withheld";

pub(super) async fn layer(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.method() != Method::POST {
        return Ok(next.run(request).await);
    }
    let Some(key) = request.headers().get(HEADER).cloned() else {
        return Ok(next.run(request).await);
    };
    let key = key
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::BadRequest,
                "Idempotency-Key must be 1 to 255 visible characters",
            )
        })?
        .to_owned();
    let client = request
        .extensions()
        .get::<ApiClient>()
        .map(|c| c.fingerprint.clone())
        .unwrap_or_default();
    // Keys are per tenant as well: two tenants may use the same key (the default tenant's
    // scope is the one it always had).
    let tenant = request
        .extensions()
        .get::<tandem_core::TenantId>()
        .filter(|t| !t.is_default())
        .map(|t| format!(":tenant:{t}"))
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let limit = state.settings.http.body_limit_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes"),
        )
    })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.path().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let request_hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let scope = format!("api:{client}{tenant}");
    let db = &state.store;
    let claimed = idempotency::claim(db, &scope, &key, &request_hash, state.engine.now())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if !claimed {
        let stored = idempotency::get(db, &scope, &key)
            .await
            .map_err(|e| ApiError::internal(&e))?
            .ok_or_else(|| ApiError::new(ErrorCode::Conflict, "retry the request"))?;
        if stored.request_hash != request_hash {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was used for a different request",
            ));
        }
        if stored.response_status == IN_PROGRESS {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "a request with this Idempotency-Key is still being processed",
            ));
        }
        return Ok(replay(stored.response_status, &stored.response_body));
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (mut parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if parts.status.is_server_error() {
        idempotency::release(db, &scope, &key)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    } else {
        let mut stored: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(secret) = parts.extensions.get::<CarriesSecret>() {
            stored = withhold(stored, secret.keys);
        }
        let status = i32::from(parts.status.as_u16());
        idempotency::complete(db, &scope, &key, status, stored)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The body without its secret keys, marked so that a replay is refused.
fn withhold(body: Value, keys: &[&str]) -> Value {
    match body {
        Value::Object(mut object) => {
            for key in keys {
                object.remove(*key);
            }
            object.insert(WITHHELD.to_owned(), Value::Bool(true));
            Value::Object(object)
        }
        _ => serde_json::json!({ WITHHELD: true }),
    }
}

fn replay(status: i32, body: &Value) -> Response {
    if body.get(WITHHELD).is_some() {
        let id = body
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("(unknown)");
        return ApiError::new(
            ErrorCode::SecretNotReplayed,
            format!("the first request with this Idempotency-Key created {id}, whose secret is shown only once and is not kept; if it was lost, delete {id} and create it again"),
        )
        .into_response();
    }
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = if body.is_null() {
        status.into_response()
    } else {
        (status, axum::Json(body.clone())).into_response()
    };
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}
