//! The HTTP surface tandem serves: health and readiness now; the REST API, admin console and
//! webhook receivers are mounted here as they land.

use std::sync::Arc;

pub mod admin;
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
        .merge(connect::router(state))
        .merge(tandem_webhooks::pipedrive::router(inbox))
        .layer(DefaultBodyLimit::max(body_limit))
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
