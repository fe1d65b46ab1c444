//! The console's one layout and its error page. Every page is an askama template that extends
//! `templates/admin/layout.html` (head with the stylesheet, navigation, the logout form, the
//! notice, the page's title) and fills its `main` block; askama escapes every value a template
//! prints, so nothing here or in the pages escapes by hand. Rendering only: handlers live in
//! `pages/`, and this module depends on neither them nor the session.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use tandem_webhooks::{ApiError, ErrorCode, FieldError};

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
a.primary,button.primary{background:#2456d3;color:#fff;border-color:#2456d3}code{font-size:.85rem}\
figure{margin:0 0 1rem}svg{max-width:100%;height:auto}.legend{font-size:.85rem;margin:.3rem 0 0}tr.differs td{background:#fff6dc}";

/// What the layout shows around a page: its title, the session's CSRF token (carried by the
/// logout form and by every form of the page; `None` on pages shown without a session, which
/// then have no logout form) and a notice from the action that led here.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chrome<'a> {
    pub(super) title: &'a str,
    pub(super) csrf: Option<&'a str>,
    pub(super) notice: Option<&'a str>,
}

impl<'a> Chrome<'a> {
    pub(super) fn new(title: &'a str, csrf: Option<&'a str>, notice: Option<&'a str>) -> Self {
        Self {
            title,
            csrf,
            notice,
        }
    }

    /// The token a form's hidden `csrf` field carries.
    pub(super) fn csrf_token(&self) -> &'a str {
        self.csrf.unwrap_or("")
    }

    /// The stylesheet, printed as it is: the Content-Security-Policy allows exactly these bytes.
    pub(super) fn style(&self) -> &'static str {
        STYLE
    }
}

/// A page as a response: the rendered template with `status`. A template that fails to render
/// (only a `Display` impl can make it fail) is a bare 500, the cause in the log.
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "A console page could not be rendered.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error (see tandem's log)",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "admin/error.html")]
struct ErrorPage<'a> {
    chrome: Chrome<'a>,
    status: StatusCode,
    code: String,
    detail: &'a str,
    fields: &'a [FieldError],
    company_changed: bool,
}

/// An error as a page: the status, the stable code and the human text.
pub(crate) fn error_page(error: &ApiError) -> Response {
    let code = serde_json::to_value(error.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let detail = if error.code == ErrorCode::Internal {
        "internal error (see tandem's log)"
    } else {
        error.detail.as_str()
    };
    let status = error.code.status();
    render(
        status,
        &ErrorPage {
            chrome: Chrome::new("Something went wrong", None, None),
            status,
            code,
            detail,
            fields: &error.fields,
            company_changed: error.code == ErrorCode::CompanyChanged,
        },
    )
}
