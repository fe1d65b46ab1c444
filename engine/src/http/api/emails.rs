//! `/api/v1/emails`: e-mails the app sent or received, logged in the CRM where Pipedrive would
//! link them (issue 23; `sync::emails`).

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use tandem_core::TenantId;
use tandem_webhooks::{ApiError, ErrorCode};

use super::{api_error, invalid, json_content, json_object};
use crate::http::AppState;
use crate::sync::emails::{self, EmailError};

/// [`ApiError::from`] for an e-mail's error (the mapping is in `http::error`).
pub(crate) fn email_error(error: EmailError) -> ApiError {
    api_error(error)
}

/// An error as its response body would carry it (an internal one stays opaque).
fn error_json(error: &ApiError) -> Value {
    if error.code == ErrorCode::Internal {
        return json!({});
    }
    serde_json::to_value(tandem_webhooks::error::ErrorBody {
        code: error.code,
        detail: &error.detail,
        fields: &error.fields,
    })
    .unwrap_or_default()
}

/// `POST /api/v1/emails`: log an e-mail, idempotent on `message_id`.
#[utoipa::path(
    post,
    path = "/api/v1/emails",
    operation_id = "logEmail",
    summary = "Log an e-mail the app sent or received on the CRM's timeline (Pipedrive: a done activity of type email), linked to every participant who is a linked contact's person and to a deal or lead only as Pipedrive would link it: the single open deal or lead across the participants that existed when it was sent (several: persons only, listed for a manual link), a reply stays on its thread's item. Idempotent on message_id. Body: {message_id, direction: sent|received, from, to[], cc[], subject, sent_at, snippet?, html?, campaign?, journey?, thread_id?, in_reply_to?, connection_id?}. The connection it is logged in: `connection_id` if given (unknown: 422 unknown_connection; disconnected: 409 connection_disconnected), else the one that links the participants' contacts (several: 422 connection_required, name one), else the oldest active connection.",
    request_body = Object,
    responses((status = 202, description = "Decided and queued (or `no_person`: nothing to log).", body = Object), (status = 200, description = "A replay of the same message_id and e-mail: the first record, as it is now.", body = Object), (status = 409, description = "The message_id was logged with a different e-mail (`idempotency_key_reused`), or `connection_id` names a disconnected connection (`connection_disconnected`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "A missing or malformed field (`validation_failed`), a `connection_id` that names no connection (`unknown_connection`), or participants linked in several connections and no `connection_id` (`connection_required`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 503, description = "No CRM connection is active (`connection_unavailable`).", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let object = json_object(&headers, &body)?;
    let (row, replayed) = emails::submit(&state.engine, &tenant, &Value::Object(object))
        .await
        .map_err(email_error)?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(emails::view(&row))))
}

/// `POST /api/v1/emails/batch`: log several e-mails, each as `POST /api/v1/emails` would.
#[utoipa::path(
    post,
    path = "/api/v1/emails/batch",
    operation_id = "logEmails",
    summary = "Log up to 500 e-mails in one request (a JSON array, or {\"emails\": [...]}), each exactly as POST /api/v1/emails would (idempotent per message_id). The answer has one result per e-mail, in order: {index, message_id, status (202 new, 200 replay, 409, 422, 503), email | error}.",
    request_body = Object,
    responses((status = 200, description = "One result per e-mail.", body = Object), (status = 413, description = "More than 500 e-mails (`payload_too_large`): nothing was logged.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "Not an array of e-mails.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn create_batch(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    json_content(&headers)?;
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, e.to_string()))?;
    let items = match parsed {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("emails") {
            Some(Value::Array(items)) if object.is_empty() => items,
            _ => {
                return Err(invalid(
                    "emails",
                    "send an array of e-mails, or {\"emails\": [...]}",
                ))
            }
        },
        _ => {
            return Err(invalid(
                "emails",
                "send an array of e-mails, or {\"emails\": [...]}",
            ))
        }
    };
    if items.len() > emails::MAX_BATCH {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "a batch carries at most {} e-mails; this one has {}: split it (nothing was logged)",
                emails::MAX_BATCH,
                items.len()
            ),
        ));
    }
    let results = emails::submit_batch(&state.engine, &tenant, &items).await;
    let results: Vec<Value> = results
        .into_iter()
        .zip(&items)
        .enumerate()
        .map(|(index, (result, raw))| {
            let message_id = raw.get("message_id").cloned().unwrap_or(Value::Null);
            match result {
                Ok((row, replayed)) => json!({
                    "index": index,
                    "message_id": message_id,
                    "status": if replayed { 200 } else { 202 },
                    "email": emails::view(&row),
                }),
                Err(error) => {
                    let error = email_error(error);
                    json!({
                        "index": index,
                        "message_id": message_id,
                        "status": error.code.status().as_u16(),
                        "error": error_json(&error),
                    })
                }
            }
        })
        .collect();
    Ok(Json(json!({ "results": results })))
}

/// `POST /api/v1/emails/{message_id}/events`: an open, click, bounce or reply.
#[utoipa::path(
    post,
    path = "/api/v1/emails/{message_id}/events",
    operation_id = "recordEmailEvent",
    summary = "Record what happened to a logged e-mail: {type: opened|clicked|bounced|replied, at, url?, reply_message_id?, event_id?}. It updates the e-mail's CRM record (its text: counts and last times), never adds one; many events before the update runs make one write. A repeated event_id is counted once.",
    params(("message_id" = String, Path, description = "The e-mail's message_id.")),
    request_body = Object,
    responses((status = 202, description = "Recorded; the e-mail as it is now.", body = Object), (status = 200, description = "An event_id seen before: nothing changed.", body = Object), (status = 404, description = "No e-mail with this message_id.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "A missing or malformed field.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn event(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let object = json_object(&headers, &body)?;
    // Another tenant's e-mail is not there (record_event looks it up in this tenant).
    let (row, new) =
        emails::record_event(&state.engine, &tenant, &message_id, &Value::Object(object))
            .await
            .map_err(email_error)?;
    let status = if new {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
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
    Extension(tenant): Extension<TenantId>,
    Path(message_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = emails::get_for(&state.engine, &tenant, &message_id)
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no e-mail with this message_id"))?;
    Ok(Json(emails::view(&row)))
}
