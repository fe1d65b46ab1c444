//! The JSON admin API (`/admin/api/...`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tandem_core::ConnectionId;
use tandem_core::{ContactId, PersonId};
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use super::api_error;
use super::session::ApiAdmin;
use crate::http::AppState;
use crate::sync::{
    connections, connections::admin, connections::fields, inbound::duplicates, synclog, Engine,
};

type ApiResult = Result<Json<Value>, ApiError>;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/api/connections", get(list).post(add))
        .route("/admin/api/connections/{id}", get(show).delete(remove))
        .route("/admin/api/connections/{id}/pause", post(pause))
        .route("/admin/api/connections/{id}/resume", post(resume))
        .route("/admin/api/connections/{id}/resync", post(resync))
        .route(
            "/admin/api/connections/{id}/initial-sync",
            post(initial_sync),
        )
        .route(
            "/admin/api/connections/{id}/mirror",
            get(mirror_status).post(set_mirror),
        )
        .route(
            "/admin/api/connections/{id}/mirror/verify",
            post(verify_mirror),
        )
        .route("/admin/api/connections/{id}/fields", get(field_lists))
        .route(
            "/admin/api/connections/{id}/remote-fields",
            post(create_field),
        )
        .route("/admin/api/connections/{id}/mappings", put(set_mapping))
        .route(
            "/admin/api/connections/{id}/mappings/{local_field}",
            delete(delete_mapping),
        )
        .route(
            "/admin/api/connections/{id}/dead-letters",
            get(dead_letters),
        )
        .route(
            "/admin/api/connections/{id}/dead-letters/retry",
            post(retry_all),
        )
        .route(
            "/admin/api/connections/{id}/dead-letters/{job}/retry",
            post(retry_one),
        )
        .route(
            "/admin/api/connections/{id}/dead-letters/{job}/discard",
            post(discard),
        )
        .route("/admin/api/sync-log", get(sync_log))
        .route("/admin/api/duplicates", get(duplicates))
        .route("/admin/api/duplicates.csv", get(duplicates_csv))
        .route("/admin/api/duplicates/{id}/ignore", post(ignore_duplicate))
        .route("/admin/api/duplicates/{id}/reopen", post(reopen_duplicate))
        .route("/admin/api/duplicates/merge", post(merge_duplicates))
        .route("/admin/api/duplicates/link", post(link_duplicate))
        .route("/admin/api/persons/{id}/usage", get(person_usage))
        .route(
            "/admin/api/connections/{id}/record-check",
            get(record_check),
        )
}

fn ok(value: impl serde::Serialize) -> ApiResult {
    Ok(Json(
        serde_json::to_value(value).map_err(|e| ApiError::internal(&e))?,
    ))
}

/// A JSON body the extractor refused, with its own status (413 over the limit, 415, 400/422).
fn json_rejection(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
    ApiError::for_status(rejection.status(), rejection.body_text())
        .unwrap_or_else(|| ApiError::new(ErrorCode::BadRequest, rejection.body_text()))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    let body = if body.trim().is_empty() { "{}" } else { body };
    serde_json::from_str(body).map_err(|e| ApiError::new(ErrorCode::MalformedJson, e.to_string()))
}

async fn list(_: ApiAdmin, State(state): State<AppState>) -> ApiResult {
    ok(admin::list_connections(&state.engine)
        .await
        .map_err(api_error)?)
}

async fn show(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    ok(admin::connection_status(&state.engine, id)
        .await
        .map_err(api_error)?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddConnection {
    api_token: String,
    #[serde(default)]
    api_domain: Option<String>,
    #[serde(default)]
    confirm_reset: bool,
    /// The tenant (the app's account) the company is connected for; absent: `default`.
    #[serde(default)]
    tenant: Option<String>,
}

/// Adds an API-token connection (the headless alternative to OAuth).
pub(crate) async fn add_api_token(
    engine: &Engine,
    api_token: &str,
    api_domain: Option<&str>,
    confirm_reset: bool,
    tenant: Option<&str>,
) -> Result<connections::Connected, ApiError> {
    let tenant = crate::http::connect::tenant_of(tenant)?;
    let token = api_token.trim();
    if token.is_empty() {
        return Err(
            ApiError::new(ErrorCode::ValidationFailed, "api_token: is required").with_fields(vec![
                tandem_webhooks::FieldError {
                    field: "api_token".into(),
                    message: "is required".into(),
                },
            ]),
        );
    }
    let domain = api_domain
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("https://api.pipedrive.com");
    if url::Url::parse(domain).map_or(true, |u| !matches!(u.scheme(), "http" | "https")) {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("api_domain: `{domain}` is not an http(s) URL such as https://yourcompany.pipedrive.com"),
        ));
    }
    connections::connect_for(
        engine,
        connections::NewConnection {
            api_domain: domain.trim_end_matches('/').to_owned(),
            auth_kind: "api_token",
            access_token: token.to_owned(),
            refresh_token: None,
            token_expires_at: None,
        },
        confirm_reset,
        &tenant,
    )
    .await
    .map_err(api_error)
}

async fn add(
    _: ApiAdmin,
    State(state): State<AppState>,
    body: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: AddConnection = parse_json(&body)?;
    let connected = add_api_token(
        &state.engine,
        &request.api_token,
        request.api_domain.as_deref(),
        request.confirm_reset,
        request.tenant.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(connected).map_err(|e| ApiError::internal(&e))?),
    ))
}

async fn remove(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    ok(connections::disconnect(&state.engine, id)
        .await
        .map_err(api_error)?)
}

async fn pause(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    admin::set_paused(&state.engine, id, true)
        .await
        .map_err(api_error)?;
    ok(json!({ "paused": true }))
}

async fn resume(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    admin::set_paused(&state.engine, id, false)
        .await
        .map_err(api_error)?;
    ok(json!({ "paused": false }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorSwitch {
    enabled: bool,
}

/// Switches the connection's live mirror on or off (`{"enabled": true}`).
async fn set_mirror(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    body: String,
) -> ApiResult {
    let request: MirrorSwitch = parse_json(&body)?;
    ok(
        crate::sync::mirror::set_enabled(&state.engine, id, request.enabled)
            .await
            .map_err(api_error)?,
    )
}

/// Compares the connection's mirror with Pipedrive (counts, checksums, differing keys per
/// stream); answers when done, and records the outcome in the sync log.
async fn verify_mirror(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    let checks = crate::sync::mirror::verify(&state.engine, id)
        .await
        .map_err(api_error)?;
    ok(json!({
        "matches": checks.iter().all(crate::mirror::StreamCheck::matches),
        "streams": checks,
    }))
}

/// The connection's live mirror: its passes and each stream's progress.
async fn mirror_status(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    match crate::sync::mirror::status(&state.engine, id)
        .await
        .map_err(api_error)?
    {
        Some(status) => ok(status),
        None => {
            // Never switched on (or no such connection: 404).
            admin::connection_status(&state.engine, id)
                .await
                .map_err(api_error)?;
            ok(json!({ "enabled": false }))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResyncRequest {
    #[serde(default)]
    contact_id: Option<ContactId>,
}

async fn resync(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    body: String,
) -> ApiResult {
    let request: ResyncRequest = parse_json(&body)?;
    ok(admin::resync(&state.engine, id, request.contact_id)
        .await
        .map_err(api_error)?)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InitialSyncRequest {
    /// Run to the end before answering (small companies, scripts, tests).
    #[serde(default)]
    wait: bool,
}

/// Starts (from the first page) the initial sync, in the background unless `wait`.
pub(crate) async fn start_initial_sync(
    engine: &Engine,
    id: ConnectionId,
    wait: bool,
) -> Result<Option<crate::sync::inbound::poller::Progress>, ApiError> {
    admin::restart_initial_sync(engine, id)
        .await
        .map_err(api_error)?;
    if wait {
        return run_initial_sync(engine, id).await.map(Some);
    }
    let engine = engine.clone();
    tokio::spawn(async move {
        if let Err(error) = run_initial_sync(&engine, id).await {
            tracing::warn!(connection_id = %id, error = %error, "The initial sync stopped; run it again from the console.");
        }
    });
    Ok(None)
}

async fn run_initial_sync(
    engine: &Engine,
    id: ConnectionId,
) -> Result<crate::sync::inbound::poller::Progress, ApiError> {
    match crate::sync::inbound::poller::initial_sync_on_bulk_thread(engine, id).await {
        Ok(progress) => Ok(progress),
        Err(crate::sync::SyncError::Crm(error)) => {
            if let Ok(conn) = connections::load(engine, id).await {
                crate::sync::connections::tokens::on_auth_error(engine, &conn, &error)
                    .await
                    .map_err(api_error)?;
            }
            Err(api_error(crate::sync::SyncError::Crm(error)))
        }
        Err(other) => Err(api_error(other)),
    }
}

async fn initial_sync(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    body: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: InitialSyncRequest = parse_json(&body)?;
    match start_initial_sync(&state.engine, id, request.wait).await? {
        Some(progress) => Ok((StatusCode::OK, Json(json!({ "progress": progress })))),
        None => Ok((StatusCode::ACCEPTED, Json(json!({ "started": true })))),
    }
}

async fn field_lists(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    let remote = fields::remote_fields(&state.engine, id)
        .await
        .map_err(api_error)?;
    let local = fields::local_fields(&state.engine)
        .await
        .map_err(api_error)?;
    let mappings = fields::mappings(&state.engine, id)
        .await
        .map_err(api_error)?;
    ok(json!({ "remote": remote, "local": local, "mappings": mappings }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateField {
    name: String,
    /// `person` (default) or `organization`.
    #[serde(default)]
    entity: Option<String>,
    #[serde(default = "default_type")]
    field_type: String,
}

fn default_type() -> String {
    "varchar".into()
}

async fn create_field(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    body: String,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateField = parse_json(&body)?;
    let entity = fields::Entity::parse(request.entity.as_deref()).map_err(api_error)?;
    let field = fields::create_remote_field_of(
        &state.engine,
        id,
        entity,
        &request.name,
        &request.field_type,
    )
    .await
    .map_err(api_error)?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(field).map_err(|e| ApiError::internal(&e))?),
    ))
}

async fn set_mapping(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    body: String,
) -> ApiResult {
    let request: fields::MappingRequest = parse_json(&body)?;
    ok(fields::set_mapping(&state.engine, id, &request)
        .await
        .map_err(api_error)?)
}

async fn delete_mapping(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path((id, local_field)): Path<(ConnectionId, String)>,
) -> ApiResult {
    if fields::delete_mapping(&state.engine, id, &local_field)
        .await
        .map_err(api_error)?
    {
        ok(json!({ "deleted": true }))
    } else {
        Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no mapping for local field `{local_field}`"),
        ))
    }
}

async fn dead_letters(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    admin::connection_status(&state.engine, id)
        .await
        .map_err(api_error)?;
    ok(admin::dead_letters(&state.engine, id)
        .await
        .map_err(api_error)?)
}

async fn retry_all(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
) -> ApiResult {
    let retried = admin::retry_dead_letters(&state.engine, id, None)
        .await
        .map_err(api_error)?;
    ok(json!({ "retried": retried }))
}

async fn retry_one(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path((id, job)): Path<(ConnectionId, Uuid)>,
) -> ApiResult {
    let retried = admin::retry_dead_letters(&state.engine, id, Some(job))
        .await
        .map_err(|e| match e {
            crate::sync::SyncError::Invalid(m) => ApiError::new(ErrorCode::NotFound, m),
            other => api_error(other),
        })?;
    ok(json!({ "retried": retried }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Discard {
    #[serde(default)]
    reason: String,
}

async fn discard(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path((id, job)): Path<(ConnectionId, Uuid)>,
    body: String,
) -> ApiResult {
    let request: Discard = parse_json(&body)?;
    if request.reason.trim().is_empty() {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "reason: is required to discard a dead letter",
        )
        .with_fields(vec![tandem_webhooks::FieldError {
            field: "reason".into(),
            message: "is required to discard a dead letter".into(),
        }]));
    }
    admin::discard_dead_letter(&state.engine, id, job, &request.reason)
        .await
        .map_err(|e| match e {
            crate::sync::SyncError::Invalid(m) => ApiError::new(ErrorCode::NotFound, m),
            other => api_error(other),
        })?;
    ok(json!({ "discarded": true }))
}

/// Query of `GET /admin/api/sync-log`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogQuery {
    #[serde(default)]
    pub(crate) connection_id: Option<String>,
    /// Entries about this tenant's connections or contacts.
    #[serde(default)]
    pub(crate) tenant: Option<String>,
    #[serde(default)]
    pub(crate) contact_id: Option<String>,
    #[serde(default)]
    pub(crate) person_id: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) level: Option<String>,
    #[serde(default)]
    pub(crate) status: Option<String>,
    #[serde(default)]
    pub(crate) limit: Option<u64>,
}

fn nonempty(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

impl LogQuery {
    pub(crate) fn to_filter(&self) -> Result<synclog::LogFilter, ApiError> {
        fn bad(field: &str, message: String) -> ApiError {
            ApiError::new(ErrorCode::ValidationFailed, format!("{field}: {message}")).with_fields(
                vec![tandem_webhooks::FieldError {
                    field: field.into(),
                    message,
                }],
            )
        }
        let uuid = |field: &str, v: Option<&String>| -> Result<Option<Uuid>, ApiError> {
            nonempty(v)
                .map(|v| Uuid::parse_str(v).map_err(|_| bad(field, format!("`{v}` is not a UUID"))))
                .transpose()
        };
        Ok(synclog::LogFilter {
            connection_id: uuid("connection_id", self.connection_id.as_ref())?
                .map(ConnectionId::from),
            tenant: nonempty(self.tenant.as_ref())
                .map(|v| tandem_core::TenantId::parse(v).map_err(|e| bad("tenant", e.to_string())))
                .transpose()?,
            contact_id: uuid("contact_id", self.contact_id.as_ref())?.map(ContactId::from),
            person_id: nonempty(self.person_id.as_ref())
                .map(|v| {
                    v.parse()
                        .map_err(|_| bad("person_id", format!("`{v}` is not a person id")))
                })
                .transpose()?,
            kind: nonempty(self.kind.as_ref()).map(str::to_owned),
            level: nonempty(self.level.as_ref()).map(str::to_owned),
            status: nonempty(self.status.as_ref())
                .map(|v| {
                    v.parse()
                        .map_err(|_| bad("status", format!("`{v}` is not an HTTP status")))
                })
                .transpose()?,
            limit: self.limit.unwrap_or(100),
        })
    }
}

async fn sync_log(
    _: ApiAdmin,
    State(state): State<AppState>,
    query: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()))?;
    let filter = query.to_filter()?;
    ok(synclog::list(&state.store, &filter)
        .await
        .map_err(api_error)?)
}

#[derive(Debug, Deserialize)]
pub(crate) struct DuplicatesQuery {
    /// Also list ignored and resolved groups.
    #[serde(default)]
    include_closed: bool,
    /// The connection whose report (absent: the default tenant's active one).
    #[serde(default)]
    connection: Option<ConnectionId>,
}

/// The connection a request names (`connection`), else the default tenant's active one,
/// loaded (the duplicate report and the e-mail settings are per connection; another tenant's
/// connection is named).
pub(crate) async fn active_connection(
    state: &AppState,
    wanted: Option<ConnectionId>,
) -> Result<connections::ConnectionCtx, ApiError> {
    let id = match wanted {
        Some(id) => id,
        None => connections::active_id(&state.store, &tandem_core::TenantId::default())
            .await
            .map_err(api_error)?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ConnectionUnavailable,
                    "no Pipedrive connection: connect first",
                )
            })?,
    };
    connections::load(&state.engine, id)
        .await
        .map_err(api_error)
}

async fn duplicates(
    _: ApiAdmin,
    State(state): State<AppState>,
    Query(q): Query<DuplicatesQuery>,
) -> ApiResult {
    let conn = active_connection(&state, q.connection).await?;
    ok(duplicates::list(&state.engine, &conn, q.include_closed)
        .await
        .map_err(api_error)?)
}

async fn duplicates_csv(
    _: ApiAdmin,
    State(state): State<AppState>,
    Query(q): Query<DuplicatesQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let conn = active_connection(&state, q.connection).await?;
    let groups = duplicates::list(&state.engine, &conn, q.include_closed)
        .await
        .map_err(api_error)?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                axum::http::header::CONTENT_DISPOSITION,
                "attachment; filename=\"duplicates.csv\"",
            ),
        ],
        duplicates::to_csv(&groups),
    )
        .into_response())
}

async fn ignore_duplicate(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult {
    if !duplicates::set_state(&state.engine, id, duplicates::state::IGNORED)
        .await
        .map_err(api_error)?
    {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("duplicate group {id} does not exist"),
        ));
    }
    ok(json!({ "id": id, "state": "ignored" }))
}

async fn reopen_duplicate(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> ApiResult {
    if !duplicates::set_state(&state.engine, id, duplicates::state::OPEN)
        .await
        .map_err(api_error)?
    {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("duplicate group {id} does not exist"),
        ));
    }
    ok(json!({ "id": id, "state": "open" }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MergeRequest {
    /// The person that stays.
    pub(crate) survivor_person_id: PersonId,
    /// The person merged into it (it disappears in Pipedrive).
    pub(crate) merged_person_id: PersonId,
    /// The connection of the two persons (absent: the default tenant's active one).
    #[serde(default)]
    pub(crate) connection_id: Option<ConnectionId>,
}

async fn merge_duplicates(
    _: ApiAdmin,
    State(state): State<AppState>,
    body: Result<Json<MergeRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(request) = body.map_err(json_rejection)?;
    let conn = active_connection(&state, request.connection_id).await?;
    let contact = duplicates::merge_persons(
        &state.engine,
        &conn,
        request.survivor_person_id,
        request.merged_person_id,
    )
    .await
    .map_err(api_error)?;
    ok(json!({ "survivor_person_id": request.survivor_person_id, "contact_id": contact }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    contact_id: ContactId,
    person_id: PersonId,
    /// The person's connection (absent: the default tenant's active one).
    #[serde(default)]
    connection_id: Option<ConnectionId>,
}

async fn link_duplicate(
    _: ApiAdmin,
    State(state): State<AppState>,
    body: Result<Json<LinkRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult {
    let Json(request) = body.map_err(json_rejection)?;
    let conn = active_connection(&state, request.connection_id).await?;
    duplicates::link_contact(&state.engine, &conn, request.contact_id, request.person_id)
        .await
        .map_err(api_error)?;
    ok(json!({ "contact_id": request.contact_id, "person_id": request.person_id }))
}

#[derive(Debug, Deserialize)]
struct ConnectionQuery {
    /// The connection (absent: the default tenant's active one).
    #[serde(default)]
    connection: Option<ConnectionId>,
}

async fn person_usage(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<PersonId>,
    Query(q): Query<ConnectionQuery>,
) -> ApiResult {
    let conn = active_connection(&state, q.connection).await?;
    ok(duplicates::usage(&state.engine, &conn, id)
        .await
        .map_err(api_error)?)
}

#[derive(Debug, Deserialize)]
struct RecordCheckQuery {
    email: Option<String>,
}

/// "Why isn't this record syncing?": `GET /admin/api/connections/{id}/record-check?email=…`
/// answers with a stable `code`, the finding and the guide's `fix` (at most one CRM lookup).
async fn record_check(
    _: ApiAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    Query(query): Query<RecordCheckQuery>,
) -> ApiResult {
    let email = query.email.unwrap_or_default();
    ok(crate::sync::record_check::check(&state.engine, id, &email)
        .await
        .map_err(api_error)?)
}
