//! `GET /metrics` (see [`crate::meter::exposition`] for what it serves and when): on the main
//! router, where it answers 404 unless `metrics.token` is set, and on the separate listener of
//! `metrics.addr`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;
use crate::meter::exposition;

/// The `/metrics` route for the main router (it answers 404 unless `metrics.token` is set).
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(main_port))
        .with_state(state)
}

/// The router of the separate listener (`metrics.addr`).
pub fn separate_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(separate_port))
        .with_state(state)
}

async fn main_port(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.settings.metrics.token.expose().is_empty() {
        return (StatusCode::NOT_FOUND, "").into_response();
    }
    scrape(&state, &headers).await
}

async fn separate_port(State(state): State<AppState>, headers: HeaderMap) -> Response {
    scrape(&state, &headers).await
}

async fn scrape(state: &AppState, headers: &HeaderMap) -> Response {
    let token = state.settings.metrics.token.expose();
    if !token.is_empty() && !exposition::token_matches(super::bearer_token(headers), token) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "",
        )
            .into_response();
    }
    let Some(page) = exposition::render(&state.engine).await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "").into_response();
    };
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], page).into_response()
}
