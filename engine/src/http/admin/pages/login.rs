//! Logging in to the console with the admin token, and out.

use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tandem_webhooks::{ApiError, ErrorCode};

use super::{csrf_ok, FormMap};
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::{self, PageAdmin};
use crate::http::AppState;

#[derive(askama::Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    chrome: Chrome<'a>,
}

pub(super) async fn form(State(state): State<AppState>) -> Response {
    if !session::admin_enabled(&state.settings) {
        return error_page(&ApiError::new(
            ErrorCode::AdminDisabled,
            "the admin console is disabled: set security.admin_token (TANDEM_SECURITY__ADMIN_TOKEN)",
        ));
    }
    render(
        StatusCode::OK,
        &LoginPage {
            chrome: Chrome::new("Log in", None, None),
        },
    )
}

pub(super) async fn login(
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
    let value = session::new_session(&state.settings, state.engine.now().timestamp());
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

pub(super) async fn logout(
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
