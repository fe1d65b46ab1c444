//! The HTTP surface tandem serves: health and readiness, the admin console and API, the OAuth
//! connect flow, the app's REST API (`api`) and the webhook receivers (Pipedrive, the app).

use std::sync::Arc;

pub mod admin;
pub mod api;
pub mod connect;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tandem_webhooks::{ApiError, ErrorCode};
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::store::Store;
use crate::sync::inbox::StoreInbox;
use crate::sync::Engine;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub engine: Engine,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    let inbox = Arc::new(StoreInbox::new(state.engine.clone()));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(admin::router(state.clone()))
        .merge(connect::router(state.clone()))
        .merge(api::router(state))
        .merge(tandem_webhooks::pipedrive::router(Arc::clone(&inbox)))
        .merge(tandem_webhooks::app::router(inbox))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::map_response(json_payload_too_large))
        .layer(TraceLayer::new_for_http())
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match state.store.readiness().await {
        Ok(()) => Ok(Json(serde_json::json!({ "status": "ready" }))),
        Err(unready) => Err(ApiError::new(ErrorCode::NotReady, unready.to_string())),
    }
}

/// axum's body-limit rejection is plain text; every client of tandem gets the JSON error body.
async fn json_payload_too_large(response: axum::response::Response) -> axum::response::Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::new(
            ErrorCode::PayloadTooLarge,
            "the request body is larger than this tandem accepts (http.body_limit_bytes)",
        )
        .into_response();
    }
    response
}
