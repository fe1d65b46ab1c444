//! The sync log, filtered by connection, tenant, contact, person, kind and status: the CRM's
//! status and error verbatim, and a hint. Each entry says which connection (CRM, company,
//! tenant) it is about.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::admin::api::LogQuery;
use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::synclog;
use tandem_core::{ConnectionId, TenantId};

#[derive(askama::Template)]
#[template(path = "admin/log.html")]
struct LogPage<'a> {
    chrome: Chrome<'a>,
    /// The filter as typed, shown again in the form.
    query: &'a LogQuery,
    rows: &'a [synclog::Stored],
    /// Every connection, for the entries' labels and the connection filter.
    connections: &'a [Labelled],
}

/// A connection as the log names it.
struct Labelled {
    id: ConnectionId,
    /// `Pipedrive · Acme`, `Salesforce sandbox · My Org`.
    label: String,
    tenant: TenantId,
}

impl LogPage<'_> {
    fn connection(&self, id: &ConnectionId) -> Option<&Labelled> {
        self.connections.iter().find(|c| c.id == *id)
    }

    /// The connection filter's value, when it names this connection.
    fn filtered_to(&self, id: &ConnectionId) -> bool {
        self.query
            .connection_id
            .as_deref()
            .is_some_and(|v| v.trim() == id.to_string())
    }
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(query): Query<LogQuery>,
) -> Response {
    let filter = match query.to_filter() {
        Ok(f) => f,
        Err(e) => return error_page(&e),
    };
    let rows = match synclog::list(&state.store, &filter).await {
        Ok(rows) => rows,
        Err(e) => return error_page(&api_error(e)),
    };
    let connections = match crate::store::connections::list(&state.store).await {
        Ok(all) => all
            .into_iter()
            .map(|c| Labelled {
                id: c.id,
                label: format!("{} · {}", super::connections::crm_name(&c.crm), c.name),
                tenant: c.tenant,
            })
            .collect::<Vec<_>>(),
        Err(e) => return error_page(&api_error(e)),
    };
    render(
        StatusCode::OK,
        &LogPage {
            chrome: Chrome::new("Sync log", admin.csrf.as_deref(), None),
            query: &query,
            rows: &rows,
            connections: &connections,
        },
    )
}
