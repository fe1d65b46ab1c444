//! The connection page: one card per connection (state, counters, last error, the actions),
//! and the forms that connect Pipedrive while no connection is active.

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_core::ConnectionId;
use tandem_core::ContactId;
use tandem_webhooks::{ApiError, ErrorCode};

use super::{back, csrf_ok, FormMap};
use crate::http::admin::api::{add_api_token, start_initial_sync};
use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::connections;
use crate::sync::connections::admin::{self, ConnectionStatus};

#[derive(askama::Template)]
#[template(path = "admin/connections.html")]
struct ConnectionsPage<'a> {
    chrome: Chrome<'a>,
    cards: Vec<Card<'a>>,
    /// No connection is active: offer to connect one.
    show_add_forms: bool,
    /// The tenant (the app's account) the connect forms and links connect for (`?tenant=` on
    /// the page); `None`: the default tenant.
    tenant: Option<String>,
    /// Where the connect links start, for [`Self::tenant`].
    connect_pipedrive: String,
    connect_salesforce: String,
    connect_sandbox: String,
    /// "Connect with Pipedrive" (OAuth) next to the API-token form.
    oauth_configured: bool,
    /// The Salesforce card's Connect (with its Sandbox toggle) is offered: the connected app
    /// is configured.
    salesforce_configured: bool,
}

/// A connection's card.
struct Card<'a> {
    status: &'a ConnectionStatus,
    last_sync: String,
    /// The state calls for a new consent: a Reconnect button.
    needs_reconnect: bool,
    /// Not disconnected: the sync actions are offered.
    active: bool,
    /// Where the card's actions post (`/admin/connections/{id}`, then `/pause`, …).
    base: String,
    /// Which replica runs the connection, and its lease, in words.
    owner: String,
    /// The live mirror is switched on: the toggle offers to switch it off.
    mirror_on: bool,
    /// Where Reconnect starts the CRM's consent (for the connection's own tenant).
    reconnect_href: String,
    /// The CRM's name on the card.
    crm_name: &'static str,
    /// The daily API quota as the CRM last reported it ("93,210 of 100,000 left"), if known.
    quota: Option<String>,
    /// Salesforce: the external-id field tandem carries its apId in, and whether it exists.
    external_id: Option<(&'a str, bool)>,
}

impl<'a> Card<'a> {
    fn new(
        status: &'a ConnectionStatus,
        engine: &'a crate::sync::Engine,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        let crm = engine.crm_of(&status.crm);
        let budget = engine.crm.limiters().get(status.id);
        let quota = budget.and_then(|b| Some((b.daily_left()?, b.daily_total()?)));
        Self {
            quota: quota
                .map(|(left, total)| format!("{left} of {total} calls left (rolling 24 hours)")),
            status,
            last_sync: status.last_success_at.map_or_else(
                || "never".to_owned(),
                |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ),
            needs_reconnect: matches!(
                status.state.as_str(),
                connections::state::TOKEN_EXPIRED
                    | connections::state::NOT_AUTHORISED
                    | connections::state::APP_REMOVED
                    | connections::state::DISCONNECTED
            ),
            active: status.state != connections::state::DISCONNECTED,
            base: format!("/admin/connections/{}", status.id),
            owner: owner_text(status.owner.as_ref(), now),
            mirror_on: status.mirror.as_ref().is_some_and(|m| m.enabled),
            reconnect_href: connect_href(&status.crm, &tenant_query(&status.tenant)),
            external_id: (status.crm != connections::kind::PIPEDRIVE)
                .then(|| (crm.external_id_field().0, status.apid_field_key.is_some())),
            crm_name: crm_name(&status.crm),
        }
    }
}

/// The console's name for a connection's kind of CRM (a Salesforce sandbox says so).
pub(super) fn crm_name(kind: &str) -> &'static str {
    match kind {
        connections::kind::SALESFORCE => "Salesforce",
        connections::kind::SALESFORCE_SANDBOX => "Salesforce sandbox",
        _ => "Pipedrive",
    }
}

/// `tenant=…` for a named tenant's connect links; nothing for the default tenant.
fn tenant_query(tenant: &str) -> String {
    if tenant.is_empty() || tenant == tandem_core::TenantId::DEFAULT {
        String::new()
    } else {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("tenant", tenant)
            .finish()
    }
}

/// Where connecting (or reconnecting) a `crm` connection starts its consent; `query` is
/// [`tenant_query`]'s.
fn connect_href(crm: &str, query: &str) -> String {
    let (path, first) = match crm {
        connections::kind::SALESFORCE => ("/connections/salesforce/connect", None),
        connections::kind::SALESFORCE_SANDBOX => {
            ("/connections/salesforce/connect", Some("sandbox=1"))
        }
        _ => ("/connections/pipedrive/connect", None),
    };
    let parts: Vec<&str> = first
        .into_iter()
        .chain((!query.is_empty()).then_some(query))
        .collect();
    if parts.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", parts.join("&"))
    }
}

/// "replica-a (this replica), lease renewed 4 s ago": which replica holds the connection and
/// how fresh its lease is.
fn owner_text(
    owner: Option<&crate::sync::ownership::OwnerView>,
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let Some(owner) = owner else {
        return "no replica yet".to_owned();
    };
    let this = if owner.this_replica {
        " (this replica)"
    } else {
        ""
    };
    if owner.expired {
        let ago = (now - owner.expires_at).num_seconds().max(0);
        format!(
            "{}{this}, lease ran out {ago} s ago: another replica takes it over",
            owner.replica
        )
    } else {
        let left = (owner.expires_at - now).num_seconds().max(0);
        format!("{}{this}, lease valid for {left} s more", owner.replica)
    }
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct HomeQuery {
    #[serde(default)]
    notice: Option<String>,
    /// Connect for this tenant (the app's account): the connect links and forms carry it.
    #[serde(default)]
    tenant: Option<String>,
}

pub(super) async fn home(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<HomeQuery>,
) -> Response {
    let tenant = match crate::http::connect::tenant_of(q.tenant.as_deref()) {
        Ok(tenant) => tenant,
        Err(e) => return error_page(&e),
    };
    let list = match admin::list_connections(&state.engine).await {
        Ok(list) => list,
        Err(e) => return error_page(&api_error(e)),
    };
    let query = tenant_query(tenant.as_str());
    let now = state.engine.now();
    let cards: Vec<Card<'_>> = list
        .iter()
        .map(|s| Card::new(s, &state.engine, now))
        .collect();
    render(
        StatusCode::OK,
        &ConnectionsPage {
            chrome: Chrome::new(
                "CRM connections",
                admin.csrf.as_deref(),
                q.notice.as_deref(),
            ),
            // The default tenant connects one Pipedrive company; a named tenant's company is
            // connected alongside the others (ADR 26), so its forms are always offered.
            show_add_forms: !tenant.is_default()
                || !cards.iter().any(|c| {
                    c.active
                        && c.status.crm == connections::kind::PIPEDRIVE
                        && c.status.tenant == tenant.as_str()
                }),
            connect_pipedrive: connect_href(connections::kind::PIPEDRIVE, &query),
            connect_salesforce: connect_href(connections::kind::SALESFORCE, &query),
            connect_sandbox: connect_href(connections::kind::SALESFORCE_SANDBOX, &query),
            tenant: (!tenant.is_default()).then(|| tenant.to_string()),
            cards,
            oauth_configured: !state.settings.pipedrive.client_id.is_empty(),
            salesforce_configured: !state.settings.salesforce.client_id.is_empty(),
        },
    )
}

pub(super) async fn add(
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
        form.get("tenant").map(String::as_str),
    )
    .await
    {
        Ok(_) => back("/admin", "Pipedrive connected."),
        Err(e) => error_page(&e),
    }
}

pub(super) async fn action(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path((id, action)): Path<(ConnectionId, String)>,
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
                Some(text) => match ContactId::parse(text) {
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
        "mirror-on" | "mirror-off" => {
            crate::sync::mirror::set_enabled(engine, id, action == "mirror-on")
                .await
                .map(|s| {
                    if s.enabled {
                        format!(
                            "Mirror switched on: {} webhook(s) registered; the extraction runs in the background.",
                            s.webhooks_created
                        )
                    } else {
                        format!(
                            "Mirror switched off: {} webhook(s) removed; the tables are kept.",
                            s.webhooks_removed
                        )
                    }
                })
                .map_err(api_error)
        }
        // Reads every stream of Pipedrive: in the background, the outcome in the sync log.
        "mirror-verify" => {
            let engine = engine.clone();
            tokio::spawn(async move {
                if let Err(error) = crate::sync::mirror::verify(&engine, id).await {
                    tracing::warn!(connection_id = %id, error = %error, "The mirror's verification stopped; run it again from the console.");
                }
            });
            Ok("Mirror verification started; its outcome goes to the sync log.".to_owned())
        }
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
