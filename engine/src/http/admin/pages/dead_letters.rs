//! Dead letters: writes that gave up, with Pipedrive's status and error; retry one or all,
//! discard one with a reason.

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_core::ConnectionId;
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use super::{back, chosen_connection, csrf_ok, message_page, FormMap, Notice};
use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::sync::connections::admin::{self, DeadLetter};

#[derive(askama::Template)]
#[template(path = "admin/dead_letters.html")]
struct DeadLettersPage<'a> {
    chrome: Chrome<'a>,
    /// `/admin/connections/{id}`: where the forms post.
    base: String,
    letters: &'a [DeadLetter],
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let chrome = Chrome::new("Dead letters", admin.csrf.as_deref(), q.notice.as_deref());
    let id = match chosen_connection(&state, q.connection).await {
        Ok(Some(id)) => id,
        Ok(None) => return message_page(chrome, "Connect Pipedrive first."),
        Err(e) => return error_page(&e),
    };
    let letters = match admin::dead_letters(&state.engine, id).await {
        Ok(l) => l,
        Err(e) => return error_page(&api_error(e)),
    };
    render(
        StatusCode::OK,
        &DeadLettersPage {
            chrome,
            base: format!("/admin/connections/{id}"),
            letters: &letters,
        },
    )
}

pub(super) async fn action(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path((id, job, action)): Path<(ConnectionId, Uuid, String)>,
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
