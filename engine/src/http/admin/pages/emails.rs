//! Logged e-mails (issue 23): those waiting for a manual link, each with its candidate deals
//! and leads (linking one updates its record in the CRM), and the connection's e-mail
//! settings.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tandem_webhooks::{ApiError, ErrorCode};

use super::{back, csrf_ok, FormMap, Notice};
use crate::http::admin::api::active_connection;
use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::api::emails::email_error;
use crate::http::AppState;
use crate::sync::emails::{self, EmailSettings, ManualLink};

#[derive(askama::Template)]
#[template(path = "admin/emails.html")]
struct EmailsPage<'a> {
    chrome: Chrome<'a>,
    /// The connection whose e-mails and settings these are (its forms name it).
    connection: String,
    settings: EmailSettings,
    rows: Vec<ManualRow<'a>>,
}

struct ManualRow<'a> {
    link: &'a ManualLink,
    persons: String,
    sent_at: String,
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Query(q): Query<Notice>,
) -> Response {
    let conn = match active_connection(&state, q.connection).await {
        Ok(conn) => conn,
        Err(e) => return error_page(&e),
    };
    let (waiting, settings) = match (
        emails::waiting_for_manual_link(&state.engine, conn.id, 200).await,
        emails::settings(&state.engine, conn.id).await,
    ) {
        (Ok(w), Ok(s)) => (w, s),
        (Err(e), _) | (_, Err(e)) => return error_page(&api_error(e)),
    };
    let rows = waiting
        .iter()
        .map(|link| ManualRow {
            link,
            persons: link
                .email
                .persons
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("#{p}"))
                .collect::<Vec<_>>()
                .join(", "),
            sent_at: link.email.sent_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect();
    render(
        StatusCode::OK,
        &EmailsPage {
            chrome: Chrome::new("E-mails", admin.csrf.as_deref(), q.notice.as_deref()),
            connection: conn.id.to_string(),
            settings,
            rows,
        },
    )
}

pub(super) async fn link(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let (Some(message_id), Some(item)) = (form.get("message_id"), form.get("item")) else {
        return error_page(&ApiError::new(
            ErrorCode::ValidationFailed,
            "choose the deal or lead to link the e-mail to",
        ));
    };
    let tenant = match crate::http::connect::tenant_of(form.get("tenant").map(String::as_str)) {
        Ok(tenant) => tenant,
        Err(e) => return error_page(&e),
    };
    match emails::link_manually(&state.engine, &tenant, message_id, item).await {
        Ok(_) => back(
            "/admin/emails",
            &format!("The e-mail is linked to {item}; its record in the CRM follows."),
        ),
        Err(e) => error_page(&email_error(e)),
    }
}

pub(super) async fn save_settings(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Form(form): FormMap,
) -> Response {
    if let Err(r) = csrf_ok(&admin, &form) {
        return *r;
    }
    let wanted = match super::form_connection(&form) {
        Ok(wanted) => wanted,
        Err(e) => return error_page(&e),
    };
    let conn = match active_connection(&state, wanted).await {
        Ok(conn) => conn,
        Err(e) => return error_page(&e),
    };
    let settings = EmailSettings {
        create_persons: form.get("create_persons").is_some_and(|v| v == "on"),
        record_as: form
            .get("record_as")
            .cloned()
            .unwrap_or_else(|| emails::record_kind::ACTIVITY.to_owned()),
    };
    match emails::set_settings(&state.engine, conn.id, &settings).await {
        Ok(()) => back(
            &super::page_of("/admin/emails", conn.id),
            "E-mail settings saved.",
        ),
        Err(e) => error_page(&email_error(e)),
    }
}
