//! "Connect with Pipedrive" (OAuth 2.0, api-notes §1): the start redirects the admin to
//! Pipedrive's authorize URL with a signed, single-use `state`; the callback checks the state,
//! exchanges the code, and connects (users/me, apId field, webhooks; tokens encrypted at rest).
//! `DELETE` on the callback is Pipedrive's uninstall notice ("App removed").

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use rand::distributions::{Alphanumeric, DistString};
use serde::Deserialize;
use tandem_webhooks::{ApiError, ErrorCode};

use super::admin::error_page;
use super::admin::session::{self, PageAdmin};
use super::AppState;
use crate::store::oauth_states;
use crate::sync::{connections, synclog};

/// How long a `state` stays valid, in seconds.
const STATE_TTL_SECS: i64 = 600;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/connections/pipedrive/connect", get(start))
        .route(
            "/connections/pipedrive/callback",
            get(callback).delete(uninstalled),
        )
        .route("/connections/salesforce/connect", get(salesforce_start))
        .route("/connections/salesforce/callback", get(salesforce_callback))
        .with_state(state)
}

pub(crate) fn salesforce_redirect_uri(state: &AppState) -> String {
    format!(
        "{}/connections/salesforce/callback",
        state.engine.public_url
    )
}

#[derive(Debug, Default, Deserialize)]
struct SalesforceStartQuery {
    /// The card's Sandbox toggle: sign in through the sandbox login host.
    #[serde(default)]
    sandbox: Option<String>,
    /// The tenant (the app's account) the org is connected for; absent: `default`.
    #[serde(default)]
    tenant: Option<String>,
}

/// "Connect" / "Reconnect" on the Salesforce card: the web-server flow with PKCE, through the
/// production or the sandbox login host. The `state` is signed and single-use and carries the
/// toggle; the code verifier is derived from the state's nonce with the server's key, so it is
/// never stored.
async fn salesforce_start(
    _: PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<SalesforceStartQuery>,
) -> Response {
    let sandbox = q
        .sandbox
        .as_deref()
        .is_some_and(|v| v == "true" || v == "1" || v == "on");
    let crm = state.engine.crm_of(if sandbox {
        connections::kind::SALESFORCE_SANDBOX
    } else {
        connections::kind::SALESFORCE
    });
    if !crm.oauth_configured() {
        return error_page(&ApiError::new(
            ErrorCode::OauthNotConfigured,
            "OAuth is not configured: set salesforce.client_id and salesforce.client_secret from the connected app (Setup -> App Manager)",
        ));
    }
    let nonce = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    let payload = format!("{nonce}.{}", if sandbox { "sandbox" } else { "production" });
    let signed = format!(
        "{payload}.{}",
        session::sign_state(&state.settings, &payload)
    );
    let tenant = match tenant_of(q.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(e) => return error_page(&e),
    };
    if let Err(e) = oauth_states::insert(&state.store, &nonce, &tenant, state.engine.now()).await {
        return error_page(&ApiError::internal(&e));
    }
    let verifier = session::pkce_verifier(&state.settings, &nonce);
    match crm.authorize_url(&salesforce_redirect_uri(&state), &signed, &verifier) {
        Some(url) => Redirect::to(&url).into_response(),
        None => error_page(&ApiError::new(
            ErrorCode::OauthNotConfigured,
            "this CRM has no authorize URL",
        )),
    }
}

async fn salesforce_callback(
    State(app): State<AppState>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match handle_salesforce_callback(&app, q).await {
        Ok(sandbox) => Html(format!(
            "<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=\"0;url=/admin\"><title>Connected · tandem</title></head>\
<body><p>Salesforce {} connected. <a href=/admin>Continue to the console</a>.</p></body></html>",
            if sandbox { "sandbox" } else { "production" }
        ))
        .into_response(),
        Err(error) => error_page(&error),
    }
}

async fn handle_salesforce_callback(app: &AppState, q: CallbackQuery) -> Result<bool, ApiError> {
    let (nonce, env, tenant) = consume_signed_state(app, q.state.as_deref()).await?;
    let sandbox = match env.as_str() {
        "sandbox" => true,
        "production" => false,
        _ => {
            return Err(state_invalid(
                "the `state` was not issued for Salesforce; start again from the console",
            ))
        }
    };
    let engine = &app.engine;
    let crm = engine.crm_of(if sandbox {
        connections::kind::SALESFORCE_SANDBOX
    } else {
        connections::kind::SALESFORCE
    });
    if let Some(error) = q.error {
        record(
            app,
            "oauth_denied",
            format!("Salesforce authorisation was not given ({error})."),
        )
        .await;
        return Err(ApiError::new(
            ErrorCode::OauthDenied,
            format!("Salesforce did not authorise tandem ({error}); nothing changed. Try again and click Allow"),
        ));
    }
    let code = q.code.ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "the callback has neither `code` nor `error`",
        )
    })?;
    let verifier = session::pkce_verifier(&app.settings, &nonce);
    let tokens = crm
        .exchange_code_with_verifier(&code, &salesforce_redirect_uri(app), Some(&verifier))
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::PipedriveRejected,
                format!(
                    "Session expired or invalid: Salesforce refused to exchange the authorisation code ({}); sign in fresh and retry from the console",
                    crate::sync::connections::verbatim(&e)
                ),
            )
        })?;
    let new = connections::NewConnection {
        api_domain: tokens.api_domain.clone(),
        auth_kind: "oauth",
        access_token: tokens.access_token.expose().clone(),
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().clone()),
        token_expires_at: tokens
            .expires_in
            .map(|s| engine.now() + chrono::Duration::seconds(s)),
    };
    match connections::connect_salesforce(engine, new, sandbox, &tenant).await {
        Ok(_) => Ok(sandbox),
        Err(error) => {
            record(
                app,
                "connect_refused",
                format!("Connecting Salesforce failed: {error}"),
            )
            .await;
            // Tokens we will not use are given back.
            if let Some(refresh) = &tokens.refresh_token {
                if let Err(e) = crm
                    .revoke_token(refresh.expose(), crate::crm::TokenKind::Refresh)
                    .await
                {
                    tracing::warn!(error = %e, "Revoking unused OAuth tokens failed.");
                }
            }
            Err(super::admin::api_error(error))
        }
    }
}

pub(crate) fn redirect_uri(state: &AppState) -> String {
    format!("{}/connections/pipedrive/callback", state.engine.public_url)
}

/// The tenant a connect's start names (`?tenant=`), else the default one; a malformed one is
/// 400 `invalid_tenant`.
pub(crate) fn tenant_of(named: Option<&str>) -> Result<tandem_core::TenantId, ApiError> {
    match named.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(tandem_core::TenantId::default()),
        Some(text) => tandem_core::TenantId::parse(text)
            .map_err(|e| ApiError::new(ErrorCode::InvalidTenant, e.to_string())),
    }
}

#[derive(Debug, Default, Deserialize)]
struct StartQuery {
    #[serde(default)]
    confirm_reset: Option<String>,
    /// The tenant (the app's account) the company is connected for; absent: `default`.
    #[serde(default)]
    tenant: Option<String>,
}

async fn start(
    _: PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<StartQuery>,
) -> Response {
    let p = &state.settings.pipedrive;
    if p.client_id.is_empty() || p.client_secret.expose().is_empty() {
        return error_page(&ApiError::new(
            ErrorCode::OauthNotConfigured,
            "OAuth is not configured: set pipedrive.client_id and pipedrive.client_secret from Pipedrive's Developer Hub, or connect with an API token",
        ));
    }
    let tenant = match tenant_of(q.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(e) => return error_page(&e),
    };
    let nonce = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    let reset = u8::from(
        q.confirm_reset
            .as_deref()
            .is_some_and(|v| v == "true" || v == "1"),
    );
    let payload = format!("{nonce}.{reset}");
    let signed = format!(
        "{payload}.{}",
        session::sign_state(&state.settings, &payload)
    );
    let insert = oauth_states::insert(&state.store, &nonce, &tenant, state.engine.now()).await;
    if let Err(e) = insert {
        return error_page(&ApiError::internal(&e));
    }
    let mut url = match url::Url::parse(&format!(
        "{}/oauth/authorize",
        p.oauth_base_url.trim_end_matches('/')
    )) {
        Ok(url) => url,
        Err(e) => return error_page(&ApiError::internal(&e)),
    };
    url.query_pairs_mut()
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", &redirect_uri(&state))
        .append_pair("state", &signed);
    Redirect::to(url.as_str()).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn state_invalid(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::OauthStateInvalid, detail)
}

/// Checks the state's signature and consumes it (single use, 10 minutes); returns whether
/// the admin confirmed a company reset, and the tenant the connect is for.
async fn consume_state(
    app: &AppState,
    signed: Option<&str>,
) -> Result<(bool, tandem_core::TenantId), ApiError> {
    let (_, flag, tenant) = consume_signed_state(app, signed).await?;
    Ok((flag == "1", tenant))
}

/// Checks a `nonce.flag.signature` state and consumes it (single use, 10 minutes); returns
/// the nonce, the flag and the tenant its row was issued for.
async fn consume_signed_state(
    app: &AppState,
    signed: Option<&str>,
) -> Result<(String, String, tandem_core::TenantId), ApiError> {
    let signed = signed.ok_or_else(|| {
        state_invalid("the callback has no `state`; start again from the console")
    })?;
    let mut parts = signed.splitn(3, '.');
    let (Some(nonce), Some(reset), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(state_invalid(
            "the `state` is malformed; start again from the console",
        ));
    };
    if !session::verify_state(&app.settings, &format!("{nonce}.{reset}"), signature) {
        return Err(state_invalid(
            "the `state` signature does not match; start again from the console",
        ));
    }
    let used = oauth_states::consume(
        &app.store,
        nonce,
        app.engine.now(),
        chrono::Duration::seconds(STATE_TTL_SECS),
    )
    .await
    .map_err(|e| ApiError::internal(&e))?;
    let Some(tenant) = used else {
        return Err(state_invalid(
            "this `state` was already used or has expired (10 minutes); start again from the console",
        ));
    };
    Ok((nonce.to_owned(), reset.to_owned(), tenant))
}

async fn callback(State(app): State<AppState>, Query(q): Query<CallbackQuery>) -> Response {
    match handle_callback(&app, q).await {
        Ok(company) => {
            // A page rather than a redirect: the session cookie is SameSite=Strict, and a
            // redirect chain that started at Pipedrive would not carry it.
            Html(format!(
                "<!doctype html><html lang=en><head><meta charset=utf-8><meta http-equiv=refresh content=\"0;url=/admin\"><title>Connected · tandem</title></head>\
<body><p>Pipedrive company {} connected. <a href=/admin>Continue to the console</a>.</p></body></html>",
                company.map(|c| c.to_string()).unwrap_or_default()
            ))
            .into_response()
        }
        Err(error) => error_page(&error),
    }
}

async fn handle_callback(app: &AppState, q: CallbackQuery) -> Result<Option<i64>, ApiError> {
    let (confirm_reset, tenant) = consume_state(app, q.state.as_deref()).await?;
    let engine = &app.engine;
    if let Some(error) = q.error {
        record(
            app,
            "oauth_denied",
            format!("Pipedrive authorisation was not given ({error})."),
        )
        .await;
        return Err(ApiError::new(
            ErrorCode::OauthDenied,
            format!("Pipedrive did not authorise tandem ({error}); nothing changed. Try again and click Allow"),
        ));
    }
    let code = q.code.ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "the callback has neither `code` nor `error`",
        )
    })?;
    let redirect = redirect_uri(app);
    let tokens = engine
        .crm
        .exchange_code(&code, &redirect)
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::PipedriveRejected,
                format!(
                    "Pipedrive refused to exchange the authorisation code ({}: {}); start again from the console",
                    e.status.map(|s| s.to_string()).unwrap_or_default(),
                    e.message
                ),
            )
        })?;
    let new = connections::NewConnection {
        api_domain: tokens.api_domain.clone(),
        auth_kind: "oauth",
        access_token: tokens.access_token.expose().clone(),
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose().clone()),
        token_expires_at: tokens
            .expires_in
            .map(|s| engine.now() + chrono::Duration::seconds(s)),
    };
    match connections::connect_for(engine, new, confirm_reset, &tenant).await {
        Ok(connected) => Ok(connected.company_id),
        Err(error) => {
            // Tokens we will not use are given back.
            if let Some(refresh) = &tokens.refresh_token {
                if let Err(e) = engine
                    .crm
                    .revoke_token(refresh.expose(), crate::crm::TokenKind::Refresh)
                    .await
                {
                    tracing::warn!(error = %e, "Revoking unused OAuth tokens failed.");
                }
            }
            Err(super::admin::api_error(error))
        }
    }
}

async fn record(app: &AppState, kind: &'static str, message: String) {
    let entry = synclog::Entry::new(
        synclog::Level::Warn,
        synclog::Direction::Connection,
        kind,
        message,
    );
    if let Err(e) = synclog::record(&app.store, entry, app.engine.now()).await {
        tracing::error!(error = %e, "Writing the sync log failed.");
    }
}

#[derive(Debug, Deserialize)]
struct Uninstall {
    client_id: String,
    company_id: i64,
}

/// Pipedrive's uninstall notice: `DELETE` with Basic `client_id:client_secret` (api-notes §1.5).
async fn uninstalled(State(app): State<AppState>, headers: HeaderMap, body: String) -> Response {
    let p = &app.settings.pipedrive;
    let expected = format!("{}:{}", p.client_id, p.client_secret.expose());
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .unwrap_or_default();
    if p.client_id.is_empty() || !session::constant_time_eq(&given, expected.as_bytes()) {
        return ApiError::new(
            ErrorCode::Unauthorized,
            "the uninstall notice must carry the app's client credentials",
        )
        .into_response();
    }
    let notice: Uninstall = match serde_json::from_str(&body) {
        Ok(n) => n,
        Err(e) => return ApiError::new(ErrorCode::MalformedJson, e.to_string()).into_response(),
    };
    if notice.client_id != p.client_id {
        return ApiError::new(ErrorCode::ValidationFailed, "client_id: is not this app's")
            .into_response();
    }
    match connections::app_removed(&app.engine, notice.company_id).await {
        Ok(_) => axum::Json(serde_json::json!({ "success": true })).into_response(),
        Err(e) => super::admin::api_error(e).into_response(),
    }
}
