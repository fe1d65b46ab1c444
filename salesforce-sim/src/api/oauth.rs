//! OAuth 2.0 as a connected app sees it: the web-server flow (`/services/oauth2/authorize`
//! with PKCE S256, then `/services/oauth2/token` with `authorization_code`), the refresh
//! grant, `/services/oauth2/revoke`, `/services/oauth2/userinfo` and the identity URL
//! (`/id/{org}/{user}`). Each login host belongs to one org; the instance serves these
//! endpoints too (as a My Domain host does), for the production org.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::dispatch::bearer;
use super::request::parse_query;
use super::response::{json_response, oauth_error};
use crate::ops::{Op, Params};
use crate::shared::Shared;
use crate::state::AuthCode;
use crate::tokens::{issue, random_token};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn page(status: StatusCode, error: &str, description: &str) -> Response {
    let text = format!(
        "error={error}&error_description={}",
        url::form_urlencoded::byte_serialize(description.as_bytes()).collect::<String>()
    );
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Response {
    let mut url = to.to_owned();
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(_, v)| !v.is_empty()))
        .finish();
    url.push(if to.contains('?') { '&' } else { '?' });
    url.push_str(&q);
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn redirect_allowed(shared: &Shared, uri: &str) -> bool {
    if shared.config.redirect_uris.is_empty() {
        return uri.starts_with("http://127.0.0.1")
            || uri.starts_with("http://localhost")
            || uri.starts_with("https://127.0.0.1")
            || uri.starts_with("https://localhost");
    }
    shared.config.redirect_uris.iter().any(|u| u == uri)
}

/// Serves the OAuth endpoints and the identity URL.
#[allow(clippy::too_many_arguments)]
pub(super) fn handle(
    shared: &Arc<Shared>,
    op: Op,
    org: usize,
    headers: &HeaderMap,
    params: &Params,
    query: &HashMap<String, String>,
    body: &Bytes,
    now_ms: i64,
) -> Response {
    let mut form = query.clone();
    if !body.is_empty() {
        form.extend(parse_query(std::str::from_utf8(body).ok()));
    }
    match op {
        Op::OauthAuthorize => authorize(shared, org, &form, now_ms),
        Op::OauthToken => token(shared, headers, &form, now_ms),
        Op::OauthRevoke => revoke(shared, &form),
        Op::OauthUserinfo | Op::Identity => identity(shared, op, headers, params, &form, now_ms),
        _ => oauth_error(400, "invalid_request", "unknown endpoint"),
    }
}

fn authorize(shared: &Shared, org: usize, form: &HashMap<String, String>, now_ms: i64) -> Response {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != shared.config.client_id {
        return page(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        );
    }
    let redirect_uri = get("redirect_uri");
    if !redirect_allowed(shared, redirect_uri) {
        return page(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "redirect_uri must match configuration",
        );
    }
    let state = get("state");
    if get("response_type") != "code" {
        return redirect(
            redirect_uri,
            &[
                ("error", "unsupported_response_type"),
                ("error_description", "response type not supported"),
                ("state", state),
            ],
        );
    }
    let challenge = get("code_challenge");
    let method = get("code_challenge_method");
    if !method.is_empty() && method != "S256" {
        return redirect(
            redirect_uri,
            &[
                ("error", "invalid_request"),
                ("error_description", "invalid code_challenge_method"),
                ("state", state),
            ],
        );
    }
    if challenge.is_empty() && shared.config.require_pkce {
        return redirect(
            redirect_uri,
            &[
                ("error", "invalid_request"),
                ("error_description", "missing required code challenge"),
                ("state", state),
            ],
        );
    }
    let mut st = shared.state.lock();
    let o = &st.orgs[org];
    let user = match form.get("login_hint").filter(|h| !h.is_empty()) {
        Some(hint) => o.user_by_username(hint),
        None => Some(o.login_user.clone()),
    };
    let Some(user) = user else {
        return redirect(
            redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "end-user denied authorization"),
                ("state", state),
            ],
        );
    };
    drop(st);
    let code = format!("aPrx{}", random_token(shared, 60));
    st = shared.state.lock();
    st.codes.insert(
        code.clone(),
        AuthCode {
            org,
            user,
            client_id: shared.config.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            challenge: (!challenge.is_empty()).then(|| challenge.to_owned()),
            expires_ms: now_ms + 15 * 60_000,
        },
    );
    redirect(redirect_uri, &[("code", &code), ("state", state)])
}

fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> (String, Option<String>) {
    if let Some(basic) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| B64.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
    {
        if let Some((id, secret)) = basic.split_once(':') {
            return (id.to_owned(), Some(secret.to_owned()));
        }
    }
    (
        form.get("client_id").cloned().unwrap_or_default(),
        form.get("client_secret").cloned(),
    )
}

fn token(
    shared: &Shared,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    now_ms: i64,
) -> Response {
    let (client_id, secret) = client_credentials(headers, form);
    if client_id != shared.config.client_id {
        return oauth_error(400, "invalid_client_id", "client identifier invalid");
    }
    let secret_ok = secret.as_deref() == Some(shared.config.client_secret.as_str());
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let verifier = form.get("code_verifier");
            if secret.is_some() && !secret_ok || secret.is_none() && verifier.is_none() {
                return oauth_error(400, "invalid_client", "invalid client credentials");
            }
            let mut st = shared.state.lock();
            let code = form
                .get("code")
                .and_then(|c| st.codes.remove(c))
                .filter(|c| c.expires_ms > now_ms && c.client_id == client_id);
            let Some(code) = code else {
                return oauth_error(400, "invalid_grant", "invalid authorization code");
            };
            if form.get("redirect_uri").map(String::as_str) != Some(code.redirect_uri.as_str()) {
                return oauth_error(
                    400,
                    "redirect_uri_mismatch",
                    "redirect_uri must match configuration",
                );
            }
            if let Some(challenge) = &code.challenge {
                let computed = verifier.map(|v| B64URL.encode(Sha256::digest(v.as_bytes())));
                if computed.as_deref() != Some(challenge.as_str()) {
                    return oauth_error(400, "invalid_grant", "invalid code verifier");
                }
            }
            let body = issue(shared, &mut st, code.org, &code.user, None, true, now_ms);
            json_response(StatusCode::OK, &body)
        }
        Some("refresh_token") => {
            if secret.is_some() && !secret_ok {
                return oauth_error(400, "invalid_client", "invalid client credentials");
            }
            let mut st = shared.state.lock();
            let Some(rt) = form.get("refresh_token").cloned() else {
                return oauth_error(400, "invalid_request", "refresh token missing");
            };
            let Some(grant) = st
                .grants
                .get(&rt)
                .filter(|g| g.client_id == client_id)
                .cloned()
            else {
                return oauth_error(400, "invalid_grant", "expired access/refresh token");
            };
            if st.orgs[grant.org].value("User", &grant.user, "IsActive") != json!(true) {
                return oauth_error(400, "invalid_grant", "inactive user");
            }
            let body = issue(
                shared,
                &mut st,
                grant.org,
                &grant.user,
                Some(rt),
                false,
                now_ms,
            );
            json_response(StatusCode::OK, &body)
        }
        Some(_) => oauth_error(400, "unsupported_grant_type", "grant type not supported"),
        None => oauth_error(400, "invalid_request", "grant type is missing"),
    }
}

fn revoke(shared: &Shared, form: &HashMap<String, String>) -> Response {
    let Some(token) = form.get("token") else {
        return oauth_error(400, "invalid_request", "token is missing");
    };
    let mut st = shared.state.lock();
    if st.grants.remove(token).is_some() {
        st.sessions
            .retain(|_, s| s.refresh.as_deref() != Some(token.as_str()));
    } else if st.sessions.remove(token).is_none() {
        return oauth_error(400, "invalid_token", "invalid token");
    }
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::OK;
    r
}

fn identity(
    shared: &Shared,
    op: Op,
    headers: &HeaderMap,
    params: &Params,
    form: &HashMap<String, String>,
    now_ms: i64,
) -> Response {
    let token = bearer(headers).or_else(|| form.get("oauth_token").cloned());
    let st = shared.state.lock();
    let session = token
        .and_then(|t| st.sessions.get(&t).cloned())
        .filter(|s| s.expires_ms > now_ms);
    let forbidden = |text: &'static str| {
        let mut r = Response::new(Body::from(text));
        *r.status_mut() = StatusCode::FORBIDDEN;
        r
    };
    let Some(s) = session else {
        return forbidden("Bad_OAuth_Token");
    };
    let o = &st.orgs[s.org];
    if op == Op::Identity {
        let same_org =
            params.object.as_deref().map(crate::ids::parse_id) == Some(Some(o.org_id.clone()));
        let same_user =
            params.id.as_deref().map(crate::ids::parse_id) == Some(Some(s.user.clone()));
        if !same_org || !same_user {
            return forbidden("Bad_Id");
        }
    }
    let v = |f: &str| o.value("User", &s.user, f);
    let id_url = format!("{}/id/{}/{}", shared.login_url(s.org), o.org_id, s.user);
    let rest = format!("{}/services/data/v{{version}}/", shared.urls.instance);
    let body = if op == Op::OauthUserinfo {
        json!({
            "sub": id_url,
            "user_id": s.user,
            "organization_id": o.org_id,
            "preferred_username": v("Username"),
            "nickname": v("Alias"),
            "name": v("Name"),
            "email": v("Email"),
            "email_verified": true,
            "given_name": v("FirstName"),
            "family_name": v("LastName"),
            "zoneinfo": v("TimeZoneSidKey"),
            "active": v("IsActive"),
            "user_type": "STANDARD",
            "is_app_installed": true,
            "urls": {"rest": rest, "sobjects": format!("{rest}sobjects/"), "query": format!("{rest}query/"), "custom_domain": shared.urls.instance},
        })
    } else {
        json!({
            "id": id_url,
            "asserted_user": true,
            "user_id": s.user,
            "organization_id": o.org_id,
            "username": v("Username"),
            "nick_name": v("Alias"),
            "display_name": v("Name"),
            "email": v("Email"),
            "first_name": v("FirstName"),
            "last_name": v("LastName"),
            "timezone": v("TimeZoneSidKey"),
            "active": v("IsActive"),
            "user_type": "STANDARD",
            "is_lightning_login_user": false,
            "urls": {"rest": rest, "sobjects": format!("{rest}sobjects/"), "query": format!("{rest}query/"), "custom_domain": shared.urls.instance},
        })
    };
    json_response(StatusCode::OK, &body)
}
