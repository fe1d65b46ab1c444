//! The admin console: server-rendered HTML, no JavaScript build. Pages read through the same
//! use-cases as the JSON API; every form posts with the session's CSRF token and answers with a
//! redirect back (or an error page carrying the status, the stable code and the text).

use std::collections::HashMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use super::api::{add_api_token, start_initial_sync, LogQuery};
use super::api_error;
use super::session::{self, Admin, PageAdmin};
use crate::http::AppState;
use crate::sync::admin::{self, ConnectionStatus};
use crate::sync::{connections, duplicates, fields, synclog};

type FormMap = Form<HashMap<String, String>>;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(home))
        .route("/admin/", get(home))
        .route("/admin/login", get(login_form).post(login))
        .route("/admin/logout", post(logout))
        .route("/admin/fields", get(fields_page))
        .route("/admin/log", get(log_page))
        .route("/admin/dead-letters", get(dead_letters_page))
        .route("/admin/duplicates", get(duplicates_page))
        .route("/admin/duplicates/merge", post(merge_duplicates_form))
        .route(
            "/admin/duplicates/{id}/{action}",
            post(duplicate_state_form),
        )
        .route("/admin/connections/add", post(add_connection))
        .route("/admin/connections/{id}/mappings", post(save_mapping))
        .route(
            "/admin/connections/{id}/mappings/delete",
            post(remove_mapping),
        )
        .route("/admin/connections/{id}/remote-fields", post(create_field))
        .route(
            "/admin/connections/{id}/dead-letters/{job}/{action}",
            post(dead_letter_action),
        )
        .route("/admin/connections/{id}/{action}", post(connection_action))
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The console's one stylesheet, inline; the Content-Security-Policy allows exactly it (by hash).
pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}\
header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}\
header a{color:#fff;text-decoration:none}header form{margin-left:auto}main{padding:1.2rem;max-width:72rem}\
.card{background:#fff;border:1px solid #d9dce3;border-radius:6px;padding:1rem;margin-bottom:1rem}\
.state{font-weight:600;padding:.15rem .5rem;border-radius:4px;background:#e3e7ee}\
.state[data-state=connected]{background:#d5f2dc}.state[data-state=syncing]{background:#dbe9ff}\
.state[data-state=token_expired],.state[data-state=not_authorised],.state[data-state=app_removed],.state[data-state=stuck]{background:#fddede}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{border:1px solid #d9dce3;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}\
.actions{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.8rem}.actions form{display:inline}\
.notice{background:#d5f2dc;padding:.5rem 1rem;border-radius:4px}.error{background:#fddede;padding:.5rem 1rem;border-radius:4px}\
a.button,button{padding:.35rem .8rem;border:1px solid #8a93a6;border-radius:4px;background:#fff;cursor:pointer;color:#1d2330;text-decoration:none;font-size:.9rem}\
a.primary,button.primary{background:#2456d3;color:#fff;border-color:#2456d3}code{font-size:.85rem}";

fn layout(title: &str, csrf: Option<&str>, notice: Option<&str>, body: &str) -> Html<String> {
    let logout = csrf.map_or_else(String::new, |csrf| {
        format!(
            "<form method=post action=/admin/logout><input type=hidden name=csrf value=\"{}\"><button>Log out</button></form>",
            esc(csrf)
        )
    });
    let notice = notice.map_or_else(String::new, |n| {
        format!("<p class=notice role=status>{}</p>", esc(n))
    });
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{title} · tandem</title>\
<meta name=viewport content=\"width=device-width\"><style>{STYLE}</style></head><body>\
<header><strong>tandem</strong><a href=/admin>Connection</a><a href=/admin/fields>Field mapping</a>\
<a href=/admin/log>Sync log</a><a href=/admin/dead-letters>Dead letters</a><a href=/admin/duplicates>Duplicates</a>{logout}</header>\
<main><h1>{title}</h1>{notice}{body}</main></body></html>",
        title = esc(title),
    ))
}

/// An error as a page: the status, the stable code and the human text.
pub(crate) fn error_page(error: &ApiError) -> Response {
    let code = serde_json::to_value(error.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let detail = if error.code == ErrorCode::Internal {
        "internal error (see tandem's log)".to_owned()
    } else {
        error.detail.clone()
    };
    let mut body = format!(
        "<div class=error role=alert><p><strong>{}</strong> <code>{}</code></p><p id=error-detail>{}</p></div>",
        error.code.status(),
        esc(&code),
        esc(&detail)
    );
    for field in &error.fields {
        body.push_str(&format!(
            "<p>Field <code>{}</code>: {}</p>",
            esc(&field.field),
            esc(&field.message)
        ));
    }
    if error.code == ErrorCode::CompanyChanged {
        body.push_str("<p>To connect the new company anyway, confirm a reset: links to the old company's persons are dropped, contacts stay.</p>\
<p><a class=\"button primary\" href=\"/connections/pipedrive/connect?confirm_reset=true\">Reset and connect the new company</a></p>");
    }
    body.push_str("<p><a href=/admin>Back to the console</a></p>");
    (
        error.code.status(),
        layout("Something went wrong", None, None, &body),
    )
        .into_response()
}

fn back(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{to}{sep}notice={}",
        url::form_urlencoded::byte_serialize(notice.as_bytes()).collect::<String>()
    ))
    .into_response()
}

fn csrf_ok(admin: &Admin, form: &HashMap<String, String>) -> Result<(), Box<Response>> {
    admin
        .check_csrf(form.get("csrf").map(String::as_str))
        .map_err(|e| Box::new(error_page(&e)))
}

fn csrf_input(admin: &Admin) -> String {
    format!(
        "<input type=hidden name=csrf value=\"{}\">",
        esc(admin.csrf.as_deref().unwrap_or(""))
    )
}

fn button_form(admin: &Admin, action: &str, label: &str, extra: &str) -> String {
    format!(
        "<form method=post action=\"{}\">{}{extra}<button>{}</button></form>",
        esc(action),
        csrf_input(admin),
        esc(label)
    )
}

fn time(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

// ---------------------------------------------------------------------------------------------
// Login

async fn login_form(State(state): State<AppState>) -> Response {
    if !session::admin_enabled(&state.settings) {
        return error_page(&ApiError::new(
            ErrorCode::AdminDisabled,
            "the admin console is disabled: set security.admin_token (TANDEM_SECURITY__ADMIN_TOKEN)",
        ));
    }
    layout(
        "Log in",
        None,
        None,
        "<form method=post action=/admin/login class=card><label>Admin token <input type=password name=token autocomplete=current-password required autofocus></label> <button class=primary>Log in</button></form>",
    )
    .into_response()
}

async fn login(
    State(state): State<AppState>,
    probe: Option<axum::Extension<crate::http::throttle::AuthProbe>>,
    Form(form): FormMap,
) -> Response {
    let token = form.get("token").map(String::as_str).unwrap_or("");
    let matched = session::token_matches(&state.settings, token);
    if let Some(axum::Extension(probe)) = probe {
        probe.set(matched);
    }
    if !matched {
        tracing::warn!("An admin console login was refused.");
        return error_page(&ApiError::new(
            ErrorCode::Unauthorized,
            "that is not the admin token (security.admin_token)",
        ));
    }
    let value = session::new_session(&state.settings, chrono::Utc::now().timestamp());
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::set_cookie(&state.settings, &state.engine.public_url, &value),
            ),
            (header::LOCATION, "/admin".to_owned()),
        ],
    )
        .into_response()
}

async fn logout(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    if let Some(session) = &admin.session {
        if let Err(error) = session::revoke(&state, session).await {
            return error_page(&error);
        }
    }
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                session::set_cookie(&state.settings, &state.engine.public_url, ""),
            ),
            (header::LOCATION, "/admin/login".to_owned()),
        ],
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Connection card

fn card(admin: &Admin, c: &ConnectionStatus) -> String {
    let id = c.id;
    let mut html = format!(
        "<section class=card data-connection=\"{id}\"><h2>{name}</h2>\
<p>Status: <span class=state id=state data-state=\"{state}\">{label}</span>{paused}</p>\
<table><tr><th>Last successful sync</th><td id=last-sync>{last}</td></tr>\
<tr><th>Pending writes</th><td id=pending>{pending}</td></tr>\
<tr><th>Failed (retrying)</th><td id=failed>{failed}</td></tr>\
<tr><th>Dead letters</th><td id=dead>{dead}</td></tr>\
<tr><th>Linked persons</th><td>{linked}</td></tr>\
<tr><th>Pipedrive company</th><td>{company}</td></tr>\
<tr><th>Connecting user (owner of created persons)</th><td>{user}</td></tr>\
<tr><th>API domain</th><td><code>{domain}</code></td></tr>\
<tr><th>Authentication</th><td>{auth}</td></tr>",
        name = esc(&c.name),
        state = esc(&c.state),
        label = esc(&c.label),
        paused = if c.paused {
            " <strong>(paused)</strong>"
        } else {
            ""
        },
        last = time(c.last_success_at),
        pending = c.pending,
        failed = c.failed,
        dead = c.dead,
        linked = c.linked_persons,
        company = c.company_id.map(|v| v.to_string()).unwrap_or_default(),
        user = c.user_id.map(|v| v.to_string()).unwrap_or_default(),
        domain = esc(&c.api_domain),
        auth = if c.auth_kind == "oauth" {
            "OAuth"
        } else {
            "API token"
        },
    );
    if let Some(done) = c.initial_sync_done {
        html.push_str(&format!(
            "<tr><th>Initial sync</th><td id=progress>{done} persons so far</td></tr>"
        ));
    }
    if let Some(error) = &c.last_error {
        html.push_str(&format!(
            "<tr><th>Last error (Pipedrive's text)</th><td id=last-error>{}</td></tr>",
            esc(error)
        ));
    }
    html.push_str("</table><div class=actions>");
    let needs_reconnect = matches!(
        c.state.as_str(),
        connections::state::TOKEN_EXPIRED
            | connections::state::NOT_AUTHORISED
            | connections::state::APP_REMOVED
            | connections::state::DISCONNECTED
    );
    if needs_reconnect {
        html.push_str("<a class=\"button primary\" id=reconnect href=/connections/pipedrive/connect>Reconnect</a>");
    }
    if c.state != connections::state::DISCONNECTED {
        let base = format!("/admin/connections/{id}");
        html.push_str(&button_form(
            admin,
            &format!("{base}/resync"),
            "Resync now",
            "",
        ));
        html.push_str(&button_form(
            admin,
            &format!("{base}/initial-sync"),
            "Run initial sync",
            "",
        ));
        if c.dead > 0 {
            html.push_str(&button_form(
                admin,
                &format!("{base}/retry-dead"),
                "Retry dead letters",
                "",
            ));
        }
        if c.paused {
            html.push_str(&button_form(admin, &format!("{base}/resume"), "Resume", ""));
        } else {
            html.push_str(&button_form(admin, &format!("{base}/pause"), "Pause", ""));
        }
        html.push_str(&button_form(
            admin,
            &format!("{base}/disconnect"),
            "Disconnect",
            "",
        ));
        html.push_str(&format!("<form method=post action=\"{base}/resync\">{}<input name=contact_id placeholder=\"contact id\" size=38> <button>Resync one contact</button></form>",
            csrf_input(admin)));
    }
    html.push_str("</div></section>");
    html
}

fn add_forms(admin: &Admin, oauth_configured: bool) -> String {
    let mut html = String::from("<section class=card><h2>Connect Pipedrive</h2>");
    if oauth_configured {
        html.push_str("<p><a class=\"button primary\" id=connect href=/connections/pipedrive/connect>Connect with Pipedrive</a></p>");
    } else {
        html.push_str("<p>OAuth is not configured (pipedrive.client_id / client_secret); use an API token.</p>");
    }
    html.push_str(&format!("<form method=post action=/admin/connections/add>{}<label>API token <input name=api_token type=password required></label> \
<label>API domain <input name=api_domain placeholder=\"https://yourcompany.pipedrive.com\"></label> \
<label><input type=checkbox name=confirm_reset value=true> confirm a reset if the company changed</label> <button>Connect with API token</button></form></section>",
        csrf_input(admin)));
    html
}

#[derive(Debug, Default, serde::Deserialize)]
struct Notice {
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    connection: Option<Uuid>,
}

async fn home(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let list = match admin::list_connections(&state.engine).await {
        Ok(list) => list,
        Err(e) => return error_page(&api_error(e)),
    };
    let mut body = String::new();
    if list.is_empty() {
        body.push_str("<p id=state data-state=none>No Pipedrive connection yet.</p>");
    }
    for c in &list {
        body.push_str(&card(&admin, c));
    }
    let active = list
        .iter()
        .any(|c| c.state != connections::state::DISCONNECTED);
    if !active {
        body.push_str(&add_forms(
            &admin,
            !state.settings.pipedrive.client_id.is_empty(),
        ));
    }
    layout(
        "Pipedrive connection",
        admin.csrf.as_deref(),
        q.notice.as_deref(),
        &body,
    )
    .into_response()
}

async fn add_connection(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    match add_api_token(
        &state.engine,
        form.get("api_token").map(String::as_str).unwrap_or(""),
        form.get("api_domain").map(String::as_str),
        form.get("confirm_reset").is_some_and(|v| v == "true"),
    )
    .await
    {
        Ok(_) => back("/admin", "Pipedrive connected."),
        Err(e) => error_page(&e),
    }
}

async fn connection_action(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path((id, action)): Path<(Uuid, String)>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let engine = &state.engine;
    let result: Result<String, ApiError> = match action.as_str() {
        "resync" => {
            let contact = match form
                .get("contact_id")
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
            {
                Some(text) => match Uuid::parse_str(text) {
                    Ok(id) => Some(id),
                    Err(_) => {
                        return error_page(&ApiError::new(
                            ErrorCode::ValidationFailed,
                            format!("contact_id: `{text}` is not a contact id (a UUID)"),
                        ))
                    }
                },
                None => None,
            };
            admin::resync(engine, id, contact)
                .await
                .map(|r| {
                    format!(
                        "Resync: {} contact(s) updated from Pipedrive, {} push(es) queued.",
                        r.pulled, r.queued
                    )
                })
                .map_err(api_error)
        }
        "initial-sync" => start_initial_sync(engine, id, false)
            .await
            .map(|_| "Initial sync started.".to_owned()),
        "retry-dead" => admin::retry_dead_letters(engine, id, None)
            .await
            .map(|n| format!("{n} dead letter(s) queued again."))
            .map_err(api_error),
        "pause" => admin::set_paused(engine, id, true)
            .await
            .map(|()| "Syncing paused.".to_owned())
            .map_err(api_error),
        "resume" => admin::set_paused(engine, id, false)
            .await
            .map(|()| "Syncing resumed.".to_owned())
            .map_err(api_error),
        "disconnect" => connections::disconnect(engine, id)
            .await
            .map(|d| {
                format!(
                    "Disconnected: {} webhook(s) removed, token {}; contacts and links are kept.",
                    d.webhooks_removed,
                    if d.token_revoked {
                        "revoked"
                    } else {
                        "not revoked"
                    }
                )
            })
            .map_err(api_error),
        other => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no action `{other}`"),
        )),
    };
    match result {
        Ok(notice) => back("/admin", &notice),
        Err(e) => error_page(&e),
    }
}

// ---------------------------------------------------------------------------------------------
// Field mapping

async fn chosen_connection(
    state: &AppState,
    wanted: Option<Uuid>,
) -> Result<Option<Uuid>, ApiError> {
    if wanted.is_some() {
        return Ok(wanted);
    }
    connections::active_id(state.store.db())
        .await
        .map_err(api_error)
}

async fn fields_page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let id = match chosen_connection(&state, q.connection).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return layout(
                "Field mapping",
                admin.csrf.as_deref(),
                q.notice.as_deref(),
                "<p>Connect Pipedrive first.</p>",
            )
            .into_response()
        }
        Err(e) => return error_page(&e),
    };
    let engine = &state.engine;
    let (remote, local, mappings) = match (
        fields::remote_fields(engine, id).await,
        fields::local_fields(engine).await,
        fields::mappings(engine, id).await,
    ) {
        (Ok(r), Ok(l), Ok(m)) => (r, l, m),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return error_page(&api_error(e)),
    };
    let name_of = |key: &str| {
        let key = match key {
            "emails" => "email",
            "phones" => "phone",
            k => k,
        };
        remote
            .iter()
            .find(|f| f.key == key)
            .map_or_else(|| key.to_owned(), |f| f.name.clone())
    };
    let mut body = String::from("<p>Name, e-mail and phone sync both ways and the owner comes from Pipedrive unless mapped otherwise below.</p>\
<table id=mappings><tr><th>Local field</th><th>Pipedrive field</th><th>Type</th><th>Direction</th><th>Owner on conflict</th><th></th></tr>");
    for m in &mappings {
        body.push_str(&format!("<tr data-local=\"{lf}\"><td><code>{lf}</code></td><td>{rn} <code>{rk}</code></td><td>{rt}</td><td>{dir}</td><td>{owner}</td><td>{del}</td></tr>",
            lf = esc(&m.local_field),
            rn = esc(&name_of(&m.remote_field)),
            rk = esc(&m.remote_field),
            rt = esc(&m.remote_type),
            dir = esc(&m.direction),
            owner = esc(m.owner.as_deref().unwrap_or("last writer wins")),
            del = button_form(&admin, &format!("/admin/connections/{id}/mappings/delete"), "Remove", &format!("<input type=hidden name=local_field value=\"{}\">", esc(&m.local_field))),));
    }
    if mappings.is_empty() {
        body.push_str("<tr><td colspan=6>No custom mappings yet.</td></tr>");
    }
    body.push_str("</table>");
    body.push_str(&format!("<section class=card><h2>Map a field</h2><form method=post action=\"/admin/connections/{id}/mappings\" id=map-form>{}\
<label>Local field <input name=local_field list=local-fields required></label><datalist id=local-fields>",
        csrf_input(&admin)));
    for f in &local {
        body.push_str(&format!(
            "<option value=\"{}\">{}</option>",
            esc(&f.key),
            esc(f.kind.unwrap_or("no values yet"))
        ));
    }
    body.push_str("</datalist> <label>Pipedrive field <select name=remote_field required>");
    for f in remote.iter().filter(|f| f.mappable) {
        body.push_str(&format!(
            "<option value=\"{}\">{} ({}{})</option>",
            esc(&f.key),
            esc(&f.name),
            esc(&f.field_type),
            if f.is_custom { ", custom" } else { "" }
        ));
    }
    body.push_str("</select></label> <label>Direction <select name=direction><option>bidirectional</option><option>inbound</option><option>outbound</option></select></label> \
<label>Owner <select name=owner><option value=\"\">last writer wins</option><option value=local>local</option><option value=remote>remote (Pipedrive)</option></select></label> \
<label>Currency (monetary fields, for local numbers) <input name=currency size=3 maxlength=3 placeholder=EUR></label> \
<button class=primary>Save mapping</button></form></section>");
    body.push_str(&format!("<section class=card><h2>Create a custom field in Pipedrive</h2><p>Needs a Pipedrive admin as the connecting user.</p>\
<form method=post action=\"/admin/connections/{id}/remote-fields\">{}<label>Name <input name=name required></label> <label>Type <select name=field_type>",
        csrf_input(&admin)));
    for t in fields::CREATABLE_TYPES {
        body.push_str(&format!("<option>{t}</option>"));
    }
    body.push_str("</select></label> <button>Create field in Pipedrive</button></form></section>");
    body.push_str("<section class=card><h2>Pipedrive person fields</h2><table><tr><th>Name</th><th>Key</th><th>Type</th><th>Custom</th></tr>");
    for f in &remote {
        body.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            esc(&f.name),
            esc(&f.key),
            esc(&f.field_type),
            if f.is_custom { "yes" } else { "" }
        ));
    }
    body.push_str("</table></section>");
    layout(
        "Field mapping",
        admin.csrf.as_deref(),
        q.notice.as_deref(),
        &body,
    )
    .into_response()
}

async fn save_mapping(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let request = fields::MappingRequest {
        local_field: get("local_field"),
        remote_field: get("remote_field"),
        direction: Some(get("direction")),
        owner: Some(get("owner")),
        currency: form.get("currency").cloned(),
    };
    match fields::set_mapping(&state.engine, id, &request).await {
        Ok(m) => back(
            &format!("/admin/fields?connection={id}"),
            &format!("Mapping saved: {} → {}.", m.local_field, m.remote_field),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}

async fn remove_mapping(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let local = form.get("local_field").cloned().unwrap_or_default();
    match fields::delete_mapping(&state.engine, id, &local).await {
        Ok(_) => back(
            &format!("/admin/fields?connection={id}"),
            &format!("Mapping of {local} removed."),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}

async fn create_field(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let name = form.get("name").cloned().unwrap_or_default();
    let field_type = form
        .get("field_type")
        .cloned()
        .unwrap_or_else(|| "varchar".into());
    match fields::create_remote_field(&state.engine, id, &name, &field_type).await {
        Ok(f) => back(
            &format!("/admin/fields?connection={id}"),
            &format!("Field \"{}\" created in Pipedrive.", f.name),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Sync log

async fn log_page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<LogQuery>,
) -> Response {
    let filter = match q.to_filter() {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let rows = match synclog::list(state.store.db(), &filter).await {
        Ok(rows) => rows,
        Err(e) => return error_page(&api_error(e)),
    };
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let mut body = format!(
        "<form method=get action=/admin/log class=card>\
<label>Contact <input name=contact_id value=\"{}\" size=38></label> <label>Person <input name=person_id value=\"{}\" size=8></label> \
<label>Kind <input name=kind value=\"{}\" list=kinds placeholder=\"dead_letter, token_expired…\"></label> <label>Status <input name=status value=\"{}\" size=4></label> \
<datalist id=kinds><option>dead_letter<option>write_retried<option>token_expired<option>token_refresh_failed<option>api_domain_mismatch<option>conflict_resolved<option>not_authorised<option>company_changed<option>event_failed</datalist>\
<button>Filter</button> <a href=/admin/log>Clear</a></form>\
<table id=log><tr><th>Time</th><th>Level</th><th>Direction</th><th>Kind</th><th>Record</th><th>Pipedrive status</th><th>What happened</th><th>Pipedrive's error (verbatim)</th><th>What you can do</th></tr>",
        v(&q.contact_id), v(&q.person_id), v(&q.kind), v(&q.status)
    );
    for r in &rows {
        let mut record = String::new();
        if let Some(c) = r.contact_id {
            record.push_str(&format!(
                "contact <a href=\"/admin/log?contact_id={c}\"><code>{c}</code></a><br>"
            ));
        }
        if let Some(p) = r.person_id {
            record.push_str(&format!(
                "person <a href=\"/admin/log?person_id={p}\">{p}</a>"
            ));
        }
        body.push_str(&format!("<tr class=\"entry {level}\" data-kind=\"{kind}\"><td>{at}</td><td>{level}</td><td>{dir}</td><td><code>{kind}</code></td><td>{record}</td><td class=status>{status}</td><td>{msg}</td><td class=remote-error>{remote}</td><td>{hint}</td></tr>",
            at = r.at.format("%Y-%m-%d %H:%M:%S"),
            level = esc(&r.level),
            dir = esc(&r.direction),
            kind = esc(&r.kind),
            status = r.status.map(|s| s.to_string()).unwrap_or_default(),
            msg = esc(&r.message),
            remote = esc(r.remote_error.as_deref().unwrap_or("")),
            hint = esc(r.hint.as_deref().unwrap_or("")),));
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=9>No entries.</td></tr>");
    }
    body.push_str("</table>");
    layout("Sync log", admin.csrf.as_deref(), None, &body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Dead letters

async fn dead_letters_page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let id = match chosen_connection(&state, q.connection).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return layout(
                "Dead letters",
                admin.csrf.as_deref(),
                q.notice.as_deref(),
                "<p>Connect Pipedrive first.</p>",
            )
            .into_response()
        }
        Err(e) => return error_page(&e),
    };
    let letters = match admin::dead_letters(&state.engine, id).await {
        Ok(l) => l,
        Err(e) => return error_page(&api_error(e)),
    };
    let mut body = String::new();
    if !letters.is_empty() {
        body.push_str(&button_form(
            &admin,
            &format!("/admin/connections/{id}/retry-dead"),
            "Retry all dead letters",
            "",
        ));
    }
    body.push_str("<table id=dead-letters><tr><th>Since</th><th>Contact</th><th>Attempts</th><th>Pipedrive status</th><th>Pipedrive's error</th><th>What you can do</th><th></th></tr>");
    for d in &letters {
        let base = format!("/admin/connections/{id}/dead-letters/{}", d.id);
        body.push_str(&format!("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
            d.died_at.format("%Y-%m-%d %H:%M:%S"),
            d.contact_id.map(|c| format!("<a href=\"/admin/log?contact_id={c}\"><code>{c}</code></a>")).unwrap_or_default(),
            d.attempts,
            d.last_status.map(|s| s.to_string()).unwrap_or_default(),
            esc(d.remote_error.as_deref().or(d.last_error.as_deref()).unwrap_or("")),
            esc(d.hint.as_deref().unwrap_or("")),
            button_form(&admin, &format!("{base}/retry"), "Retry", ""),
            button_form(&admin, &format!("{base}/discard"), "Discard", "<input name=reason placeholder=\"reason (required)\" required> "),));
    }
    if letters.is_empty() {
        body.push_str("<tr><td colspan=7>No dead letters.</td></tr>");
    }
    body.push_str("</table>");
    layout(
        "Dead letters",
        admin.csrf.as_deref(),
        q.notice.as_deref(),
        &body,
    )
    .into_response()
}

async fn dead_letter_action(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path((id, job, action)): Path<(Uuid, Uuid, String)>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let result = match action.as_str() {
        "retry" => admin::retry_dead_letters(&state.engine, id, Some(job))
            .await
            .map(|_| "Dead letter queued again.".to_owned()),
        "discard" => admin::discard_dead_letter(
            &state.engine,
            id,
            job,
            form.get("reason").map(String::as_str).unwrap_or(""),
        )
        .await
        .map(|()| "Dead letter discarded.".to_owned()),
        other => {
            return error_page(&ApiError::new(
                ErrorCode::NotFound,
                format!("no action `{other}`"),
            ))
        }
    };
    match result {
        Ok(notice) => back("/admin/dead-letters", &notice),
        Err(e) => error_page(&api_error(e)),
    }
}

// ---------------------------------------------------------------------------------------------
// Duplicates

async fn duplicates_page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let conn = match super::api::active_connection(&state).await {
        Ok(conn) => conn,
        Err(e) => return error_page(&e),
    };
    let groups = match duplicates::list(&state.engine, &conn, true).await {
        Ok(g) => g,
        Err(e) => return error_page(&api_error(e)),
    };
    let open = groups
        .iter()
        .filter(|g| g.state == duplicates::state::OPEN)
        .count();
    let mut body = format!(
        "<p>Pipedrive persons sharing an e-mail stay separate contacts (keyed by Person ID). Merge them here through Pipedrive's own merge, or ignore a group you want to keep. <a class=button href=/admin/api/duplicates.csv?include_closed=true>Export CSV</a></p>\
<p id=duplicate-count>{open} open group(s), {} in all.</p>\
<table id=duplicates><tr><th>Kind</th><th>E-mail / key</th><th>State</th><th>Records</th><th>Differing fields</th><th>Resolve</th></tr>",
        groups.len()
    );
    for g in &groups {
        let members: String = g
            .members
            .iter()
            .map(|m| {
                format!(
                    "<li data-person={}>{} · contact <code>{}</code>{}</li>",
                    m.person_id.map_or_else(String::new, |p| p.to_string()),
                    m.person_id
                        .map_or_else(|| "not in Pipedrive".to_owned(), |p| format!("person #{p}")),
                    esc(&m.contact_id.to_string()),
                    m.name
                        .as_deref()
                        .map_or_else(String::new, |n| format!(" · {}", esc(n))),
                )
            })
            .collect();
        let persons: Vec<i64> = g.members.iter().filter_map(|m| m.person_id).collect();
        let mut resolve = String::new();
        if g.state == duplicates::state::OPEN && persons.len() >= 2 {
            let options = |selected: usize| -> String {
                persons
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        format!(
                            "<option value={p}{}>#{p}</option>",
                            if i == selected { " selected" } else { "" }
                        )
                    })
                    .collect()
            };
            resolve.push_str(&format!(
                "<form method=post action=/admin/duplicates/merge class=merge>{}<label>Keep <select name=survivor_person_id>{}</select></label> \
<label>merge in <select name=merged_person_id>{}</select></label> <button class=primary>Merge in Pipedrive</button></form>",
                csrf_input(&admin),
                options(0),
                options(1)
            ));
        }
        let toggle = if g.state == duplicates::state::OPEN {
            "ignore"
        } else {
            "reopen"
        };
        resolve.push_str(&format!(
            "<form method=post action=/admin/duplicates/{}/{toggle}>{}<button>{}</button></form>",
            g.id,
            csrf_input(&admin),
            if toggle == "ignore" {
                "Ignore"
            } else {
                "Reopen"
            }
        ));
        body.push_str(&format!(
            "<tr data-group=\"{}\" data-state={}><td>{}</td><td>{}</td><td class=state-cell>{}</td><td><ul>{members}</ul></td><td>{}</td><td>{resolve}</td></tr>",
            esc(&g.key),
            esc(&g.state),
            esc(&g.kind),
            esc(&g.key),
            esc(&g.state),
            esc(&g.differing_fields.join(", ")),
        ));
    }
    if groups.is_empty() {
        body.push_str("<tr><td colspan=6>No duplicates found.</td></tr>");
    }
    body.push_str("</table>");
    layout(
        "Duplicate report",
        admin.csrf.as_deref(),
        q.notice.as_deref(),
        &body,
    )
    .into_response()
}

async fn merge_duplicates_form(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let person = |key: &str| form.get(key).and_then(|v| v.parse::<i64>().ok());
    let (Some(survivor), Some(merged)) = (person("survivor_person_id"), person("merged_person_id"))
    else {
        return error_page(&ApiError::new(
            ErrorCode::ValidationFailed,
            "choose the person to keep and the person to merge in",
        ));
    };
    let conn = match super::api::active_connection(&state).await {
        Ok(conn) => conn,
        Err(e) => return error_page(&e),
    };
    match duplicates::merge_persons(&state.engine, &conn, survivor, merged).await {
        Ok(_) => back(
            "/admin/duplicates",
            &format!("Person #{merged} was merged into #{survivor}."),
        ),
        Err(e) => error_page(&api_error(e)),
    }
}

async fn duplicate_state_form(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path((id, action)): Path<(Uuid, String)>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let new_state = match action.as_str() {
        "ignore" => duplicates::state::IGNORED,
        "reopen" => duplicates::state::OPEN,
        other => {
            return error_page(&ApiError::new(
                ErrorCode::NotFound,
                format!("no action `{other}`"),
            ))
        }
    };
    match duplicates::set_state(&state.engine, id, new_state).await {
        Ok(true) => back(
            "/admin/duplicates",
            if new_state == duplicates::state::IGNORED {
                "Group ignored."
            } else {
                "Group reopened."
            },
        ),
        Ok(false) => error_page(&ApiError::new(
            ErrorCode::NotFound,
            format!("duplicate group {id} does not exist"),
        )),
        Err(e) => error_page(&api_error(e)),
    }
}
