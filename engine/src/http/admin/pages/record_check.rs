//! "Why isn't this record syncing?": an e-mail and a connection in, the answer out (its stable
//! code, what tandem found, the guide's fix, the CRM's error for a dead letter), through
//! `sync::record_check` as the admin API's `GET /admin/api/connections/{id}/record-check`.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_core::ConnectionId;

use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::connections::admin::{self, ConnectionStatus};
use crate::sync::record_check::{self, RecordCheck};

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct CheckQuery {
    #[serde(default)]
    connection: Option<ConnectionId>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "admin/record_check.html")]
struct CheckPage<'a> {
    chrome: Chrome<'a>,
    connections: &'a [ConnectionStatus],
    chosen: Option<ConnectionId>,
    email: &'a str,
    result: Option<&'a RecordCheck>,
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(query): Query<CheckQuery>,
) -> Response {
    let chrome = Chrome::new(
        "Why isn't this record syncing?",
        admin.csrf.as_deref(),
        None,
    );
    let connections = match admin::list_connections(&state.engine).await {
        Ok(c) => c,
        Err(e) => return error_page(&api_error(e)),
    };
    let chosen = query
        .connection
        .or_else(|| connections.first().map(|c| c.id));
    let email = query.email.as_deref().unwrap_or("").trim();
    let result = match (chosen, email.is_empty()) {
        (Some(id), false) => match record_check::check(&state.engine, id, email).await {
            Ok(r) => Some(r),
            Err(e) => return error_page(&api_error(e)),
        },
        _ => None,
    };
    render(
        StatusCode::OK,
        &CheckPage {
            chrome,
            connections: &connections,
            chosen,
            email,
            result: result.as_ref(),
        },
    )
}
