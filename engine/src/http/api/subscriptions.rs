//! `/api/v1/webhook-subscriptions`: where tandem sends the app its contact events (Standard
//! Webhooks). The secret is returned once, at creation, and stored encrypted.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tandem_core::TenantId;
use tandem_webhooks::standard::Secret;
use tandem_webhooks::{ApiError, ErrorCode};

use super::{api_error, invalid, json_object, only_keys, page_limit, path_id};
use crate::http::AppState;
use crate::sync::app::{self, Subscription};

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The subscription as the API shows it, with the event types it names that cannot fire with
/// today's connections (`unavailable_event_types`: `{type, reason}`).
async fn render(state: &AppState, subscription: &Subscription) -> Result<Value, ApiError> {
    let unavailable: Vec<Value> =
        crate::sync::triggers::unavailable(&state.store, &subscription.filter.types())
            .await
            .map_err(api_error)?
            .into_iter()
            .map(|(kind, reason)| json!({ "type": kind, "reason": reason }))
            .collect();
    Ok(json!({
        "id": subscription.id,
        "url": subscription.url,
        "enabled": subscription.enabled,
        "consecutive_failures": subscription.consecutive_failures,
        "disabled_at": subscription.disabled_at.map(time),
        "created_at": time(subscription.created_at),
        "event_types": subscription.filter.types(),
        "pipeline_ids": subscription.filter.pipeline_ids,
        "stage_ids": subscription.filter.stage_ids,
        "unavailable_event_types": unavailable,
    }))
}

/// `POST /api/v1/webhook-subscriptions` `{url, secret?}`: 201 with the secret (shown only now).
#[utoipa::path(
    post,
    path = "/api/v1/webhook-subscriptions",
    operation_id = "createWebhookSubscription",
    summary = "Subscribe a URL to contact events. The `whsec_` secret is returned only in this response.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a POST safely: the same key with the same body returns the first response; with another body, 409 idempotency_key_reused.")),
    request_body = crate::http::api::openapi::SubscriptionCreate,
    responses((status = 201, description = "Created, with its secret (shown only in this answer; `Cache-Control: no-store`).", body = crate::http::api::openapi::SubscriptionCreated), (status = 409, description = "A replay of an Idempotency-Key whose first answer carried the secret (`secret_not_replayed`): secrets are never stored in clear nor shown twice.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "A bad URL (not https, or not public: see `security.egress_allowed_hosts`) or secret.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = json_object(&headers, &body)?;
    only_keys(
        &object,
        &["url", "secret", "event_types", "pipeline_ids", "stage_ids"],
        "",
    )?;
    let filter = event_filter(&object)?;
    let url = match object.get("url") {
        Some(Value::String(text)) => {
            let parsed =
                url::Url::parse(text).map_err(|e| invalid("url", format!("is not a URL: {e}")))?;
            if !["http", "https"].contains(&parsed.scheme()) || parsed.host().is_none() {
                return Err(invalid("url", "must be an absolute http(s) URL"));
            }
            crate::egress::EgressPolicy::from_settings(&state.settings)
                .check_resolved(&parsed)
                .await
                .map_err(|e| invalid("url", e.to_string()))?;
            parsed.to_string()
        }
        Some(_) => return Err(invalid("url", "must be a string")),
        None => return Err(invalid("url", "is required")),
    };
    let secret = match object.get("secret") {
        None | Some(Value::Null) => app::generate_secret(),
        Some(Value::String(text)) => Secret::parse(text)
            .map_err(|_| invalid("secret", "must be whsec_<base64> of at least 16 bytes"))?,
        Some(_) => return Err(invalid("secret", "must be a string")),
    };
    let (subscription, secret) =
        app::create_subscription_with(&state.engine, &tenant, &url, secret, filter)
            .await
            .map_err(api_error)?;
    let mut body = render(&state, &subscription).await?;
    body["secret"] = Value::String(secret.to_whsec());
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    response
        .extensions_mut()
        .insert(super::CarriesSecret { keys: &["secret"] });
    Ok(response)
}

/// The subscription's filter from the request: `event_types` (known types or `*`),
/// `pipeline_ids` and `stage_ids` (integers, for deal events).
fn event_filter(object: &serde_json::Map<String, Value>) -> Result<app::EventFilter, ApiError> {
    let known = app::known_event_types();
    let event_types = match object.get("event_types") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut types = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(t) if t == "*" || known.contains(&t) => types.push(t.to_owned()),
                    _ => {
                        return Err(invalid(
                            "event_types",
                            format!(
                                "{item} is not an event type; use \"*\" or some of {}",
                                known.join(", ")
                            ),
                        ))
                    }
                }
            }
            Some(types)
        }
        Some(_) => {
            return Err(invalid(
                "event_types",
                "must be a non-empty array of event types",
            ))
        }
    };
    let ids = |key: &str| -> Result<Vec<i64>, ApiError> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_i64()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| invalid(key, "must be an array of positive integer ids"))
                })
                .collect(),
            Some(_) => Err(invalid(key, "must be an array of positive integer ids")),
        }
    };
    Ok(app::EventFilter {
        event_types,
        pipeline_ids: ids("pipeline_ids")?,
        stage_ids: ids("stage_ids")?,
    })
}

/// `GET /api/v1/webhook-subscriptions`.
#[utoipa::path(
    get,
    path = "/api/v1/webhook-subscriptions",
    operation_id = "listWebhookSubscriptions",
    summary = "Subscriptions (without secrets).",
    responses((status = 200, description = "The subscriptions.", body = crate::http::api::openapi::SubscriptionPage))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
) -> Result<Json<Value>, ApiError> {
    let subscriptions = app::list_subscriptions(&state.engine, &tenant)
        .await
        .map_err(api_error)?;
    let mut data = Vec::with_capacity(subscriptions.len());
    for subscription in &subscriptions {
        data.push(render(&state, subscription).await?);
    }
    Ok(Json(json!({ "data": data })))
}

/// `tenant`'s subscription `id`; another tenant's is 404 as if it did not exist.
async fn found(state: &AppState, tenant: &TenantId, id: &str) -> Result<Subscription, ApiError> {
    let id = path_id(id, "webhook subscription")?;
    app::get_subscription(&state.engine, tenant, id)
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no webhook subscription {id}")))
}

/// `GET /api/v1/webhook-subscriptions/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/webhook-subscriptions/{id}",
    operation_id = "getWebhookSubscription",
    summary = "One subscription.",
    params(("id" = Uuid, Path, description = "The subscription's id (UUID).")),
    responses((status = 200, description = "The subscription.", body = crate::http::api::openapi::Subscription), (status = 404, description = "No such subscription.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        render(&state, &found(&state, &tenant, &id).await?).await?,
    ))
}

/// `DELETE /api/v1/webhook-subscriptions/{id}`: the subscription and its delivery log.
#[utoipa::path(
    delete,
    path = "/api/v1/webhook-subscriptions/{id}",
    operation_id = "deleteWebhookSubscription",
    summary = "Delete it and its delivery log.",
    params(("id" = Uuid, Path, description = "The subscription's id (UUID).")),
    responses((status = 204, description = "Deleted."), (status = 404, description = "No such subscription.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subscription = found(&state, &tenant, &id).await?;
    app::delete_subscription(&state.engine, subscription.id)
        .await
        .map_err(api_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/webhook-subscriptions/{id}/enable`: after it was disabled for failing.
#[utoipa::path(
    post,
    path = "/api/v1/webhook-subscriptions/{id}/enable",
    operation_id = "enableWebhookSubscription",
    summary = "Re-enable a subscription that was disabled after persistent failures; its pending deliveries resume.",
    params(("id" = Uuid, Path, description = "The subscription's id (UUID)."), ("Idempotency-Key" = Option<String>, Header, description = "Repeat a POST safely: the same key with the same body returns the first response; with another body, 409 idempotency_key_reused.")),
    responses((status = 200, description = "The subscription.", body = crate::http::api::openapi::Subscription), (status = 404, description = "No such subscription.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn enable(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let subscription = found(&state, &tenant, &id).await?;
    app::enable_subscription(&state.engine, subscription.id)
        .await
        .map_err(api_error)?;
    Ok(Json(
        render(&state, &found(&state, &tenant, &id).await?).await?,
    ))
}

/// `GET /api/v1/webhook-subscriptions/{id}/deliveries?limit=`: the delivery log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhook-subscriptions/{id}/deliveries",
    operation_id = "listDeliveries",
    summary = "The delivery log, newest first.",
    params(("id" = Uuid, Path, description = "The subscription's id (UUID)."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50).")),
    responses((status = 200, description = "Deliveries.", body = crate::http::api::openapi::DeliveryPage), (status = 404, description = "No such subscription.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn deliveries(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let subscription = found(&state, &tenant, &id).await?;
    let log = app::delivery_log(&state.engine, subscription.id, page_limit(&query)?)
        .await
        .map_err(api_error)?;
    let data: Vec<Value> = log
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "webhook_id": format!("msg_{}", d.id.simple()),
                "contact_id": d.contact_id,
                "event_type": d.event_type,
                "state": d.state,
                "attempts": d.attempts,
                "next_attempt_at": time(d.next_attempt_at),
                // Only "it failed": the receiver's status or a connection error would let an
                // API-key holder probe hosts and ports through tandem. The admin's sync log
                // has the details.
                "last_error": d.last_error.as_ref().map(|_| "delivery_failed"),
                "created_at": time(d.created_at),
                "updated_at": time(d.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })))
}
