//! The HTTP surface tandem serves: health and readiness now; the REST API, admin console and
//! webhook receivers are mounted here as they land.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tandem_webhooks::{ApiError, ErrorCode};
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
