//! The sync log, filtered by contact, person, kind and status: Pipedrive's status and error
//! verbatim, and a hint.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::http::admin::api::LogQuery;
use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::synclog;

#[derive(askama::Template)]
#[template(path = "admin/log.html")]
struct LogPage<'a> {
    chrome: Chrome<'a>,
    /// The filter as typed, shown again in the form.
    query: &'a LogQuery,
    rows: &'a [synclog::Stored],
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
    render(
        StatusCode::OK,
        &LogPage {
            chrome: Chrome::new("Sync log", admin.csrf.as_deref(), None),
            query: &query,
            rows: &rows,
        },
    )
}
