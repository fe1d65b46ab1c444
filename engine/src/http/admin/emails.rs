//! The admin API of logged e-mails (issue 23): the e-mails waiting for a manual link with
//! their candidate deals and leads, linking one (which updates its record in the CRM), and
//! the connection's e-mail settings (persons for unknown addresses; activity or note).

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_core::ConnectionId;
use tandem_webhooks::{ApiError, ErrorCode};

use super::api_error;
use super::session::ApiAdmin;
use crate::http::api::emails::email_error;
use crate::http::AppState;
use crate::sync::emails::{self, EmailSettings, ManualLink};

type ApiResult = Result<Json<Value>, ApiError>;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/api/emails/manual", get(manual))
        .route("/admin/api/emails/{message_id}/link", post(link))
        .route(
            "/admin/api/connections/{id}/email-settings",
            get(settings).put(set_settings),
        )
}

fn body<T: serde::de::DeserializeOwned>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
) -> Result<T, ApiError> {
    body.map(|Json(b)| b).map_err(|rejection| {
        ApiError::for_status(rejection.status(), rejection.body_text())
            .unwrap_or_else(|| ApiError::new(ErrorCode::BadRequest, rejection.body_text()))
    })
}

/// One e-mail waiting for a manual link, as the API and the console show it.
pub(super) fn manual_json(link: &ManualLink) -> Value {
    let mut view = emails::view(&link.email);
    view["subject"] = json!(link.subject);
    view["candidates"] = json!(link.candidates);
    // Whose it is: linking it names the tenant with its message_id.
    view["tenant"] = json!(link.email.tenant);
    view
}

#[derive(Debug, Deserialize)]
struct ManualQuery {
    #[serde(default)]
    limit: Option<u64>,
    /// The connection (absent: the default tenant's active one).
    #[serde(default)]
    connection: Option<ConnectionId>,
}

async fn manual(
    _: ApiAdmin,
    State(state): State<AppState>,
    Query(q): Query<ManualQuery>,
) -> ApiResult {
    let conn = super::api::active_connection(&state, q.connection).await?;
    let waiting =
        emails::waiting_for_manual_link(&state.engine, conn.id, q.limit.unwrap_or(100).min(1000))
            .await
            .map_err(api_error)?;
    Ok(Json(json!({
        "emails": waiting.iter().map(manual_json).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    /// `deal:<id>` or `lead:<id>`.
    item: String,
    /// The tenant that logged the e-mail (a `message_id` is unique within its tenant);
    /// absent: `default`.
    #[serde(default)]
    tenant: Option<String>,
}

async fn link(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(message_id): Path<String>,
    request: Result<Json<LinkRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let request = body(request)?;
    let tenant = crate::http::connect::tenant_of(request.tenant.as_deref())?;
    let row = emails::link_manually(&state.engine, &tenant, &message_id, &request.item)
        .await
        .map_err(email_error)?;
    Ok(Json(emails::view(&row)))
}

fn settings_json(settings: &EmailSettings) -> Value {
    json!({ "create_persons": settings.create_persons, "record_as": settings.record_as })
}

async fn settings(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    let settings = emails::settings(&state.engine, id)
        .await
        .map_err(api_error)?;
    Ok(Json(settings_json(&settings)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsRequest {
    #[serde(default)]
    create_persons: Option<bool>,
    #[serde(default)]
    record_as: Option<String>,
}

async fn set_settings(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    request: Result<Json<SettingsRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let request = body(request)?;
    crate::sync::connections::load(&state.engine, id)
        .await
        .map_err(api_error)?;
    let mut settings = emails::settings(&state.engine, id)
        .await
        .map_err(api_error)?;
    if let Some(create) = request.create_persons {
        settings.create_persons = create;
    }
    if let Some(record_as) = request.record_as {
        settings.record_as = record_as;
    }
    emails::set_settings(&state.engine, id, &settings)
        .await
        .map_err(email_error)?;
    Ok(Json(settings_json(&settings)))
}
