//! Journey actions over HTTP: `POST /api/v1/actions/{action}` (Idempotency-Key required) and
//! `GET /api/v1/actions/{id}`. The rules live in `sync::actions`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;
use tandem_webhooks::{ApiError, ErrorCode, FieldError};
use uuid::Uuid;

use super::{api_error, json_object, only_keys};
use crate::http::AppState;
use crate::sync::actions::{self, ContactRef, Submit};

pub(super) async fn submit(
    State(state): State<AppState>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let action = actions::parse_action(&action).map_err(api_error)?;
    let key = headers
        .get(super::idempotency::HEADER)
        .and_then(|k| k.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::IdempotencyKeyRequired,
                "journey actions need an `Idempotency-Key` header, so a retried journey step never acts twice",
            )
        })?
        .to_owned();
    let object = json_object(&headers, &body)?;
    only_keys(&object, &["contact_id", "email", "params"], "")?;
    let contact = match (object.get("contact_id"), object.get("email")) {
        (Some(Value::String(id)), None) => ContactRef::Id {
            contact_id: Uuid::parse_str(id).map_err(|_| {
                ApiError::new(ErrorCode::ValidationFailed, "contact_id must be a UUID").with_fields(
                    vec![FieldError {
                        field: "contact_id".into(),
                        message: "must be a UUID".into(),
                    }],
                )
            })?,
        },
        (None, Some(Value::String(email))) => ContactRef::Email {
            email: email.clone(),
        },
        _ => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "give exactly one of `contact_id` or `email`",
            )
            .with_fields(vec![FieldError {
                field: "contact_id".into(),
                message: "give exactly one of contact_id or email".into(),
            }]))
        }
    };
    let params = object
        .get("params")
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let submitted = actions::submit(
        &state.engine,
        Submit {
            action,
            contact,
            params,
            idempotency_key: key,
        },
    )
    .await
    .map_err(api_error)?;
    let status = if submitted.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(submitted.record)))
}

pub(super) async fn get(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    match actions::get(&state.engine, id).await.map_err(api_error)? {
        Some(record) => Ok(Json(record)),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no action {id}"),
        )),
    }
}
