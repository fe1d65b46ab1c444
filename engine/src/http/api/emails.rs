//! `/api/v1/emails`: e-mails the app sent or received, logged in the CRM where Pipedrive would
//! link them (issue 23; `sync::emails`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;
use tandem_webhooks::{ApiError, ErrorCode};

use super::{api_error, invalid, json_object};
use crate::http::AppState;
use crate::sync::emails::{self, EmailError};

fn email_error(error: EmailError) -> ApiError {
    match error {
        EmailError::Invalid { field, message } => invalid(field, message),
        error @ EmailError::KeyReused => {
            ApiError::new(ErrorCode::IdempotencyKeyReused, error.to_string())
        }
        error @ EmailError::NotConnected => {
            ApiError::new(ErrorCode::ConnectionUnavailable, error.to_string())
        }
        EmailError::Sync(error) => api_error(error),
    }
}

/// `POST /api/v1/emails`: log an e-mail, idempotent on `message_id`.
#[utoipa::path(
    post,
    path = "/api/v1/emails",
    operation_id = "logEmail",
    summary = "Log an e-mail the app sent or received on the CRM's timeline (Pipedrive: a done activity of type email), linked to every participant who is a linked contact's person and to a deal or lead only as Pipedrive would link it: the single open deal or lead across the participants that existed when it was sent (several: persons only, listed for a manual link), a reply stays on its thread's item. Idempotent on message_id. Body: {message_id, direction: sent|received, from, to[], cc[], subject, sent_at, snippet?, html?, campaign?, journey?, thread_id?, in_reply_to?}.",
    request_body = Object,
    responses((status = 202, description = "Decided and queued (or `no_person`: nothing to log).", body = Object), (status = 200, description = "A replay of the same message_id and e-mail: the first record, as it is now.", body = Object), (status = 409, description = "The message_id was logged with a different e-mail (`idempotency_key_reused`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "A missing or malformed field.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 503, description = "No CRM connection is active (`connection_unavailable`).", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let object = json_object(&headers, &body)?;
    let (row, replayed) = emails::submit(&state.engine, &Value::Object(object))
        .await
        .map_err(email_error)?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(emails::view(&row))))
}

/// `GET /api/v1/emails/{message_id}`: where an e-mail was logged, or why not.
#[utoipa::path(
    get,
    path = "/api/v1/emails/{message_id}",
    operation_id = "getEmail",
    summary = "The outcome of a logged e-mail: state (queued, logged, failed, no_person), persons, item (deal:<id> or lead:<id>), candidates when it waits for a manual link, the CRM activity, the CRM's error, and why in words.",
    params(("message_id" = String, Path, description = "The e-mail's message_id.")),
    responses((status = 200, description = "The e-mail's outcome.", body = Object), (status = 404, description = "No e-mail with this message_id.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Path(message_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = emails::get(&state.engine, &message_id)
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no e-mail with this message_id"))?;
    Ok(Json(emails::view(&row)))
}
