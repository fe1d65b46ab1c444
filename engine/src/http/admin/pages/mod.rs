//! The admin console: server-rendered HTML, no JavaScript build. Pages read through the same
//! use-cases as the JSON API and render askama templates (`templates/admin/`) that extend the
//! one layout (`super::layout`); every form posts with the session's CSRF token and answers
//! with a redirect back (or an error page carrying the status, the stable code and the text).
//! One file per page group; the handlers only gather data and pick the template.

mod charts;
mod connections;
mod contacts;
mod dead_letters;
mod duplicates;
mod emails;
mod fields;
mod log;
mod login;
mod overview;
mod record_check;

use std::collections::HashMap;
use tandem_core::ConnectionId;

use axum::extract::Form;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tandem_webhooks::ApiError;

use super::api_error;
use super::layout::{error_page, render, Chrome};
use super::session::Admin;
use crate::http::AppState;
use crate::sync::connections as connection_store;

type FormMap = Form<HashMap<String, String>>;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(connections::home))
        .route("/admin/", get(connections::home))
        .route("/admin/login", get(login::form).post(login::login))
        .route("/admin/logout", post(login::logout))
        .route("/admin/overview", get(overview::page))
        .route("/admin/contacts", get(contacts::search))
        .route("/admin/contacts/{id}", get(contacts::page))
        .route("/admin/connections/{id}/charts", get(charts::page))
        .route("/admin/fields", get(fields::page))
        .route("/admin/log", get(log::page))
        .route("/admin/dead-letters", get(dead_letters::page))
        .route("/admin/record-check", get(record_check::page))
        .route("/admin/duplicates", get(duplicates::page))
        .route("/admin/emails", get(emails::page))
        .route("/admin/emails/link", post(emails::link))
        .route("/admin/emails/settings", post(emails::save_settings))
        .route("/admin/duplicates/merge", post(duplicates::merge))
        .route(
            "/admin/duplicates/{id}/{action}",
            post(duplicates::set_state),
        )
        .route("/admin/connections/add", post(connections::add))
        .route(
            "/admin/connections/{id}/mappings",
            post(fields::save_mapping),
        )
        .route(
            "/admin/connections/{id}/mappings/delete",
            post(fields::remove_mapping),
        )
        .route(
            "/admin/connections/{id}/remote-fields",
            post(fields::create_field),
        )
        .route(
            "/admin/connections/{id}/dead-letters/{job}/{action}",
            post(dead_letters::action),
        )
        .route(
            "/admin/connections/{id}/{action}",
            post(connections::action),
        )
}

/// The query every page accepts: a notice from the action that led here, and a connection.
#[derive(Debug, Default, serde::Deserialize)]
struct Notice {
    #[serde(default)]
    notice: Option<String>,
    #[serde(default)]
    connection: Option<ConnectionId>,
}

/// A page that only says something (`templates/admin/message.html`).
#[derive(askama::Template)]
#[template(path = "admin/message.html")]
struct MessagePage<'a> {
    chrome: Chrome<'a>,
    message: &'a str,
}

fn message_page(chrome: Chrome<'_>, message: &str) -> Response {
    render(StatusCode::OK, &MessagePage { chrome, message })
}

/// Back to `to` with a notice.
fn back(to: &str, notice: &str) -> Response {
    let sep = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!(
        "{to}{sep}notice={}",
        url::form_urlencoded::byte_serialize(notice.as_bytes()).collect::<String>()
    ))
    .into_response()
}

/// The connection a form names (its hidden `connection_id`), if it names one; a value that is
/// no connection id is refused.
fn form_connection(form: &HashMap<String, String>) -> Result<Option<ConnectionId>, ApiError> {
    match form
        .get("connection_id")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
    {
        None => Ok(None),
        Some(text) => ConnectionId::parse(text).map(Some).map_err(|e| {
            ApiError::new(
                tandem_webhooks::ErrorCode::ValidationFailed,
                format!("connection_id: {e}"),
            )
        }),
    }
}

/// Where a page of connection `id` lives: `path`, naming the connection.
fn page_of(path: &str, id: ConnectionId) -> String {
    format!("{path}?connection={id}")
}

fn csrf_ok(admin: &Admin, form: &HashMap<String, String>) -> Result<(), Box<Response>> {
    admin
        .check_csrf(form.get("csrf").map(String::as_str))
        .map_err(|e| Box::new(error_page(&e)))
}

/// The connection a page is about: the one asked for, else the active one.
async fn chosen_connection(
    state: &AppState,
    wanted: Option<ConnectionId>,
) -> Result<Option<ConnectionId>, ApiError> {
    if wanted.is_some() {
        return Ok(wanted);
    }
    connection_store::active_id(&state.store, &tandem_core::TenantId::default())
        .await
        .map_err(api_error)
}
