//! Admin authentication: the Bearer token for API clients, and for the console a session
//! cookie `{expiry}.{nonce}.{hmac}` signed with a key derived from the admin token (changing the
//! token logs every session out). "Log out" records the nonce in `revoked_session` until the
//! cookie would have expired, so a copied cookie does not outlive the logout. The CSRF token is
//! an HMAC of the session nonce, so it is bound to the session and needs no storage.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use tandem_webhooks::{ApiError, ErrorCode};

use crate::config::Settings;
use crate::http::throttle::AuthProbe;
use crate::http::AppState;
use crate::store::sessions;

pub(crate) const COOKIE: &str = "tandem_admin";
type HmacSha256 = Hmac<Sha256>;

fn key(settings: &Settings, purpose: &str) -> Vec<u8> {
    let mut digest = Sha256::new();
    digest.update(b"tandem admin v1\0");
    digest.update(purpose.as_bytes());
    digest.update(b"\0");
    digest.update(settings.security.admin_token.expose().as_bytes());
    digest.finalize().to_vec()
}

fn sign(settings: &Settings, purpose: &str, message: &str) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(&key(settings, purpose)) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares in time independent of where the inputs differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn verify(settings: &Settings, purpose: &str, message: &str, signature: &str) -> bool {
    constant_time_eq(
        sign(settings, purpose, message).as_bytes(),
        signature.as_bytes(),
    )
}

pub(crate) fn admin_enabled(settings: &Settings) -> bool {
    !settings.security.admin_token.expose().is_empty()
}

/// Whether `token` is the admin token.
pub(crate) fn token_matches(settings: &Settings, token: &str) -> bool {
    admin_enabled(settings)
        && constant_time_eq(
            token.trim().as_bytes(),
            settings.security.admin_token.expose().as_bytes(),
        )
}

/// A new session cookie value, valid for `admin.session_ttl_minutes`.
pub(crate) fn new_session(settings: &Settings, now: i64) -> String {
    let expires = now + i64::from(settings.admin.session_ttl_minutes) * 60;
    let nonce = Alphanumeric.sample_string(&mut rand::thread_rng(), 24);
    let body = format!("{expires}.{nonce}");
    let signature = sign(settings, "session", &body);
    format!("{body}.{signature}")
}

/// The `Set-Cookie` value for a session (empty `value` clears it).
pub(crate) fn set_cookie(settings: &Settings, public_url: &str, value: &str) -> String {
    let secure = if public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let max_age = if value.is_empty() {
        0
    } else {
        i64::from(settings.admin.session_ttl_minutes) * 60
    };
    format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// A console session, from a valid cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) nonce: String,
    /// Unix seconds.
    pub(crate) expires: i64,
}

/// The session, if the cookie is validly signed and not expired (revocation is checked by the
/// caller, against the store).
fn session_of(settings: &Settings, cookie: &str, now: i64) -> Option<Session> {
    let mut parts = cookie.splitn(3, '.');
    let (expires, nonce, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if !verify(
        settings,
        "session",
        &format!("{expires}.{nonce}"),
        signature,
    ) {
        return None;
    }
    let expires = expires.parse::<i64>().ok()?;
    (expires > now).then(|| Session {
        nonce: nonce.to_owned(),
        expires,
    })
}

async fn is_revoked(state: &AppState, nonce: &str) -> Result<bool, ApiError> {
    sessions::is_revoked(&state.store, nonce)
        .await
        .map_err(|e| ApiError::internal(&e))
}

/// Ends a session for good ("Log out"): its cookie is refused from now on, even if replayed.
pub(crate) async fn revoke(state: &AppState, session: &Session) -> Result<(), ApiError> {
    let expires_at =
        chrono::DateTime::from_timestamp(session.expires, 0).unwrap_or_else(|| state.engine.now());
    sessions::revoke(&state.store, &session.nonce, expires_at)
        .await
        .map_err(|e| ApiError::internal(&e))
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// The CSRF token of a session.
pub(crate) fn csrf_for(settings: &Settings, nonce: &str) -> String {
    sign(settings, "csrf", nonce)
}

/// Signs an OAuth `state` payload.
pub(crate) fn sign_state(settings: &Settings, payload: &str) -> String {
    sign(settings, "oauth-state", payload)
}

/// The PKCE code verifier of an authorization started with `nonce`: derived from the server's
/// key, so it is never stored and never leaves tandem but in the token request.
pub(crate) fn pkce_verifier(settings: &Settings, nonce: &str) -> String {
    sign(settings, "oauth-pkce", nonce)
}

pub(crate) fn verify_state(settings: &Settings, payload: &str, signature: &str) -> bool {
    verify(settings, "oauth-state", payload, signature)
}

/// An authenticated admin: by Bearer token, or by console session.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// The session's CSRF token; `None` for Bearer (no ambient credential, no CSRF risk).
    pub(crate) csrf: Option<String>,
    /// The console session; `None` for Bearer.
    pub(crate) session: Option<Session>,
}

impl Admin {
    /// Checks a submitted CSRF token (always fine for Bearer clients).
    pub(crate) fn check_csrf(&self, submitted: Option<&str>) -> Result<(), ApiError> {
        match &self.csrf {
            None => Ok(()),
            Some(expected) if submitted.is_some_and(|s| constant_time_eq(s.as_bytes(), expected.as_bytes())) => Ok(()),
            Some(_) => Err(ApiError::new(
                ErrorCode::CsrfFailed,
                "the form's CSRF token is missing or does not belong to this session; reload the page and try again",
            )),
        }
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Admin, ApiError> {
    let settings = &state.settings;
    if !admin_enabled(settings) {
        return Err(ApiError::new(
            ErrorCode::AdminDisabled,
            "the admin console and API are disabled: set security.admin_token (TANDEM_SECURITY__ADMIN_TOKEN)",
        ));
    }
    if parts.headers.contains_key(header::AUTHORIZATION) {
        let token = crate::http::bearer_token(&parts.headers).unwrap_or("");
        let matched = token_matches(settings, token);
        AuthProbe::record(&parts.extensions, matched);
        return if matched {
            Ok(Admin {
                csrf: None,
                session: None,
            })
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the Bearer token is not the admin token",
            ))
        };
    }
    let now = state.engine.now().timestamp();
    let session = cookie_value(&parts.headers).and_then(|c| session_of(settings, &c, now));
    match session {
        Some(session) if !is_revoked(state, &session.nonce).await? => {
            // A valid session counts as a success (its address is trusted); a bad cookie is
            // not a guess at the token (cookies are signed) and is not counted.
            AuthProbe::record(&parts.extensions, true);
            Ok(Admin {
                csrf: Some(csrf_for(settings, &session.nonce)),
                session: Some(session),
            })
        }
        _ => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "admin authentication required: send Authorization: Bearer <admin token>, or log in to the console",
        )),
    }
}

/// The JSON API's admin: a failure is a JSON error.
#[derive(Debug, Clone)]
pub(crate) struct ApiAdmin;

impl FromRequestParts<AppState> for ApiAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let admin = authenticate(parts, state).await?;
        // Cookie-authenticated writes must carry the CSRF token in a header.
        if !parts.method.is_safe() {
            let submitted = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok());
            admin.check_csrf(submitted)?;
        }
        Ok(Self)
    }
}

/// The console's admin: without a session, the browser goes to the login page.
#[derive(Debug, Clone)]
pub(crate) struct PageAdmin(pub(crate) Admin);

pub(crate) struct ToLogin(Response);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        self.0
    }
}

impl FromRequestParts<AppState> for PageAdmin {
    type Rejection = ToLogin;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ToLogin> {
        match authenticate(parts, state).await {
            Ok(admin) => Ok(Self(admin)),
            Err(error) if error.code == ErrorCode::AdminDisabled => {
                Err(ToLogin(super::layout::error_page(&error)))
            }
            Err(_) => Err(ToLogin(Redirect::to("/admin/login").into_response())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        let mut s = Settings::defaults();
        s.security.admin_token = crate::config::Redacted::new("t0ken".into());
        s
    }

    #[test]
    fn a_session_cookie_verifies_until_it_expires_and_not_after_tampering() {
        let s = settings();
        let cookie = new_session(&s, 1_000);
        assert!(session_of(&s, &cookie, 1_001).is_some());
        assert!(session_of(&s, &cookie, 1_000 + 720 * 60 + 1).is_none());
        // Another expiry under the same nonce and signature.
        let tampered = cookie.replacen(&format!("{}.", 1_000 + 720 * 60), "99999999.", 1);
        assert_ne!(tampered, cookie);
        assert!(session_of(&s, &tampered, 1_001).is_none());
    }

    #[test]
    fn a_session_signed_under_another_admin_token_is_refused() {
        let s = settings();
        let cookie = new_session(&s, 1_000);
        let mut other = settings();
        other.security.admin_token = crate::config::Redacted::new("other".into());
        assert!(session_of(&other, &cookie, 1_001).is_none());
    }
}
