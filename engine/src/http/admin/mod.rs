//! The admin surface: a JSON API under `/admin/api/...` (Bearer `security.admin_token`, or the
//! console's session cookie plus an `x-csrf-token` header for writes) and the server-rendered
//! console under `/admin/...` (login with the admin token into an HttpOnly, SameSite=Strict,
//! HMAC-signed session cookie; every form carries a CSRF token bound to the session).

mod api;
mod emails;
mod layout;
mod pages;
pub(crate) mod session;

use axum::Router;

pub(crate) use layout::{error_page, STYLE};

use super::AppState;
pub(crate) use crate::http::error::api_error;

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(emails::routes())
        .merge(pages::routes())
        .with_state(state)
}
