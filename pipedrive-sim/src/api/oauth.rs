//! OAuth (`oauth.authorize`, `oauth.token`, `oauth.revoke`): authorization codes, the
//! `authorization_code`, `refresh_token` and `exchange_api_token` grants, revocation, and
//! their own error shape. These endpoints take no API credential and no rate limit.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use super::response::{envelope, json_response, ERROR_INFO};
use crate::ops::Op;
use crate::seed;
use crate::shared::Shared;
use crate::state::{AccessToken, AuthCode, RefreshToken};

fn oauth_error(code: &str, message: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"success": false, "message": message, "error": code}),
    )
}

fn redirect(to: &url::Url) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to.as_str()) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn client_credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let b64 = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (id, secret) = s.split_once(':')?;
        return Some((id.to_owned(), secret.to_owned()));
    }
    let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Some((get("client_id")?, get("client_secret")?))
}

/// Answers an OAuth operation.
pub(super) fn handle(
    shared: &Shared,
    op: Op,
    headers: &HeaderMap,
    query: &[(String, String)],
    body: &Bytes,
) -> Response {
    let now = shared.now();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match op {
        Op::OauthAuthorize => {
            if q("client_id").as_deref() != Some(shared.config.client_id.as_str()) {
                return oauth_error("invalid_client", "Invalid client: client is invalid");
            }
            let Some(redirect_uri) = q("redirect_uri") else {
                return oauth_error(
                    "invalid_request",
                    "Invalid request: redirect_uri is not a valid URI",
                );
            };
            let Ok(mut to) = url::Url::parse(&redirect_uri) else {
                return oauth_error(
                    "invalid_request",
                    "Invalid request: redirect_uri is not a valid URI",
                );
            };
            let mut st = shared.state.lock();
            {
                let mut pairs = to.query_pairs_mut();
                if st.consent {
                    let code = {
                        let mut rng = shared.rng.lock();
                        format!("{}.{}", now, seed::token(&mut *rng, 32))
                    };
                    let company_id = st.current_company;
                    st.codes.insert(
                        code.clone(),
                        AuthCode {
                            company_id,
                            user_id: shared.config.user_id,
                            redirect_uri: redirect_uri.clone(),
                            expires_at: now + 300,
                        },
                    );
                    pairs.append_pair("code", &code);
                } else {
                    pairs.append_pair("error", "user_denied");
                }
                if let Some(state) = q("state") {
                    pairs.append_pair("state", &state);
                }
            }
            redirect(&to)
        }
        Op::OauthToken | Op::OauthRevoke => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ct.starts_with("application/x-www-form-urlencoded") {
                return oauth_error(
                    "invalid_request",
                    "Invalid request: content must be application/x-www-form-urlencoded",
                );
            }
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(body).into_owned().collect();
            let f = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let Some((id, secret)) = client_credentials(headers, &form) else {
                return oauth_error(
                    "invalid_client",
                    "Invalid client: cannot retrieve client credentials",
                );
            };
            if id != shared.config.client_id || secret != shared.config.client_secret {
                return oauth_error("invalid_client", "Invalid client: client is invalid");
            }
            let mut st = shared.state.lock();
            if op == Op::OauthRevoke {
                if let Some(token) = f("token") {
                    if st.refresh_tokens.remove(&token).is_some() {
                        st.access_tokens.retain(|_, a| a.refresh_token != token);
                    } else {
                        st.access_tokens.remove(&token);
                    }
                }
                return StatusCode::OK.into_response();
            }
            let (company_id, user_id, refresh) = match f("grant_type").as_deref() {
                None => return oauth_error("invalid_request", "Missing parameter: grant_type"),
                Some("authorization_code") => {
                    let Some(code) = f("code").and_then(|c| st.codes.remove(&c)) else {
                        return oauth_error(
                            "invalid_grant",
                            "Invalid grant: authorization_code is invalid",
                        );
                    };
                    if code.expires_at <= now {
                        return oauth_error(
                            "invalid_grant",
                            "Invalid grant: authorization_code has expired",
                        );
                    }
                    if f("redirect_uri").as_deref() != Some(code.redirect_uri.as_str()) {
                        return oauth_error(
                            "invalid_request",
                            "Invalid request: redirect_uri is invalid",
                        );
                    }
                    let refresh = {
                        let mut rng = shared.rng.lock();
                        format!(
                            "{}:{}:{}",
                            code.company_id,
                            code.user_id,
                            seed::field_key(&mut *rng)
                        )
                    };
                    st.refresh_tokens.insert(
                        refresh.clone(),
                        RefreshToken {
                            company_id: code.company_id,
                            user_id: code.user_id,
                            expires_at: now + 60 * 86_400,
                        },
                    );
                    (code.company_id, code.user_id, refresh)
                }
                Some("refresh_token") => {
                    let token = f("refresh_token").unwrap_or_default();
                    match st.refresh_tokens.get_mut(&token) {
                        Some(r) if r.expires_at > now => {
                            r.expires_at = now + 60 * 86_400;
                            (r.company_id, r.user_id, token)
                        }
                        _ => {
                            return oauth_error(
                                "invalid_grant",
                                "Invalid grant: refresh_token is invalid",
                            )
                        }
                    }
                }
                Some("exchange_api_token") => {
                    let token = f("api_token").unwrap_or_default();
                    if token != shared.config.api_token || st.exchanged_api_tokens.contains(&token)
                    {
                        return oauth_error("invalid_grant", "Invalid grant: api_token is invalid");
                    }
                    st.exchanged_api_tokens.insert(token);
                    let refresh = {
                        let mut rng = shared.rng.lock();
                        format!(
                            "{}:{}:{}",
                            st.current_company,
                            shared.config.user_id,
                            seed::field_key(&mut *rng)
                        )
                    };
                    let company = st.current_company;
                    st.refresh_tokens.insert(
                        refresh.clone(),
                        RefreshToken {
                            company_id: company,
                            user_id: shared.config.user_id,
                            expires_at: now + 60 * 86_400,
                        },
                    );
                    (company, shared.config.user_id, refresh)
                }
                Some(_) => {
                    return oauth_error(
                        "unsupported_grant_type",
                        "Unsupported grant type: grant_type is invalid",
                    )
                }
            };
            let access = {
                let mut rng = shared.rng.lock();
                format!("v1u:{}", seed::token(&mut *rng, 96))
            };
            let ttl = st.token_ttl_secs;
            st.access_tokens.insert(
                access.clone(),
                AccessToken {
                    company_id,
                    user_id,
                    expires_at: now + ttl,
                    refresh_token: refresh.clone(),
                },
            );
            json_response(
                StatusCode::OK,
                &json!({
                    "access_token": access, "token_type": "Bearer", "refresh_token": refresh,
                    "scope": st.scopes.join(","), "expires_in": ttl, "api_domain": st.api_domain,
                }),
            )
        }
        _ => envelope(StatusCode::NOT_FOUND, "Not found", ERROR_INFO),
    }
}
