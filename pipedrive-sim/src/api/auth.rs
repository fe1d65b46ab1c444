//! Who is calling: the credential a request carries (`Authorization: Bearer`, `x-api-token`
//! or `?api_token=`) and the [`Caller`] it authenticates as (400 for a malformed header, 401
//! for a missing, unknown or expired token).

use axum::http::{header, HeaderMap};
use axum::response::Response;

use super::response::{envelope, unauthorized, ERROR_INFO};
use crate::shared::Shared;
use axum::http::StatusCode;

/// Who is calling.
#[derive(Clone, Debug)]
pub(super) struct Caller {
    pub(super) company_id: i64,
    pub(super) user_id: i64,
    pub(super) oauth: bool,
    pub(super) token: String,
}

/// The credential a request carries.
pub(super) enum Credential {
    Bearer(String),
    ApiToken(String),
    Malformed,
    Missing,
}

/// Reads the credential: `Authorization` first, then `x-api-token`, then `?api_token=`.
pub(super) fn credential(headers: &HeaderMap, query: &[(String, String)]) -> Credential {
    if let Some(a) = headers.get(header::AUTHORIZATION) {
        let a = a.to_str().unwrap_or("");
        return match a
            .strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("bearer "))
        {
            Some(t) if !t.trim().is_empty() => Credential::Bearer(t.trim().to_owned()),
            _ => Credential::Malformed,
        };
    }
    if let Some(t) = headers.get("x-api-token").and_then(|v| v.to_str().ok()) {
        return Credential::ApiToken(t.to_owned());
    }
    if let Some((_, t)) = query.iter().find(|(k, _)| k == "api_token") {
        return Credential::ApiToken(t.clone());
    }
    Credential::Missing
}

/// Why a call was refused before it reached a handler.
#[derive(Debug)]
pub(super) enum Refusal {
    /// An `Authorization` header that is not `Bearer <token>`: 400.
    Malformed,
    /// No token, or an unknown, expired or revoked one: 401.
    Unauthorized,
}

impl Refusal {
    pub(super) fn into_response(self) -> Response {
        match self {
            Refusal::Malformed => envelope(
                StatusCode::BAD_REQUEST,
                "Invalid request: malformed authorization header",
                ERROR_INFO,
            ),
            Refusal::Unauthorized => unauthorized(),
        }
    }
}

/// The caller a credential authenticates as (an OAuth access token acts in its own company,
/// the API token in the current one).
pub(super) fn authenticate(
    shared: &Shared,
    cred: &Credential,
    now: i64,
) -> Result<Caller, Refusal> {
    let st = shared.state.lock();
    match cred {
        Credential::Malformed => Err(Refusal::Malformed),
        Credential::Missing => Err(Refusal::Unauthorized),
        Credential::Bearer(t) => match st.access_tokens.get(t) {
            Some(a) if a.expires_at > now => Ok(Caller {
                company_id: a.company_id,
                user_id: a.user_id,
                oauth: true,
                token: t.clone(),
            }),
            _ => Err(Refusal::Unauthorized),
        },
        Credential::ApiToken(t) if *t == shared.config.api_token => Ok(Caller {
            company_id: st.current_company,
            user_id: shared.config.user_id,
            oauth: false,
            token: t.clone(),
        }),
        Credential::ApiToken(t) => match st.company_api_tokens.get(t) {
            Some(company_id) => Ok(Caller {
                company_id: *company_id,
                user_id: shared.config.user_id,
                oauth: false,
                token: t.clone(),
            }),
            None => Err(Refusal::Unauthorized),
        },
    }
}
