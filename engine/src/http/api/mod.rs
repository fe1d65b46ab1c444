//! The app's REST API, `/api/v1`: contacts, lists, webhook subscriptions, and the OpenAPI
//! document describing them (`/api/v1/openapi.json`, the only route without an API key).
//!
//! Every route but the document needs `Authorization: Bearer <key>` with a key from
//! `security.api_keys`, and acts for one tenant (the app's account, ADR 26): the one the
//! `Tandem-Tenant` header names, else `default`; a malformed header is 400 `invalid_tenant`.
//! A key of `security.tenant_api_keys` acts for its own tenant only (header or not; naming
//! another is 403 `tenant_forbidden`).
//! Another tenant's contacts, subscriptions, actions and connections are not there (404, or
//! 422 `unknown_connection` for a named connection). Bodies are JSON objects; unknown keys are refused (422 `unknown_field`),
//! bad values are 422 `validation_failed` with one message per field. POSTs honour
//! `Idempotency-Key` ([`idempotency`]).

mod actions;
mod contacts;
pub(crate) mod emails;
mod idempotency;
mod lists;
pub mod openapi;
mod subscriptions;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};

use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tandem_webhooks::pipedrive::constant_time_eq;
use tandem_webhooks::{ApiError, ErrorCode, FieldError};
use utoipa_axum::router::OpenApiRouter;

use super::throttle::AuthProbe;
use super::AppState;
pub(crate) use crate::http::error::api_error;
use crate::sync::app::contact_json::FieldIssue;

/// The routes of `/api/v1`, written once: the public one (the document) and those behind the
/// API key. The router ([`router`]) and the OpenAPI document ([`document`]) are both built
/// from these lists, each handler bringing its own `#[utoipa::path]`.
fn routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let public = OpenApiRouter::new().routes(utoipa_axum::routes!(openapi::serve));
    let authenticated = OpenApiRouter::new()
        .routes(utoipa_axum::routes!(contacts::list, contacts::create))
        .routes(utoipa_axum::routes!(contacts::get, contacts::patch))
        .routes(utoipa_axum::routes!(contacts::archive))
        .routes(utoipa_axum::routes!(contacts::crm))
        .routes(utoipa_axum::routes!(emails::create))
        .routes(utoipa_axum::routes!(emails::create_batch))
        .routes(utoipa_axum::routes!(emails::get))
        .routes(utoipa_axum::routes!(emails::event))
        .routes(utoipa_axum::routes!(lists::list))
        .routes(utoipa_axum::routes!(lists::members, lists::add))
        .routes(utoipa_axum::routes!(lists::remove))
        .routes(utoipa_axum::routes!(
            subscriptions::list,
            subscriptions::create
        ))
        .routes(utoipa_axum::routes!(
            subscriptions::get,
            subscriptions::delete
        ))
        .routes(utoipa_axum::routes!(subscriptions::enable))
        .routes(utoipa_axum::routes!(subscriptions::deliveries))
        // One path, two meanings: POST names an action, GET an action's id.
        .routes(utoipa_axum::routes!(actions::submit, actions::get));
    (public, authenticated)
}

/// The OpenAPI document's derived part: every route with its operation and schemas.
fn document() -> utoipa::openapi::OpenApi {
    let (public, authenticated) = routes();
    OpenApiRouter::with_openapi(openapi::frame())
        .merge(public)
        .merge(authenticated)
        .into_openapi()
}

pub fn router(state: AppState) -> Router {
    let (public, authenticated) = routes();
    // Layers run outside-in: the key is checked before the idempotency record is read.
    let authenticated = authenticated
        .layer(from_fn_with_state(state.clone(), idempotency::layer))
        .layer(from_fn_with_state(state.clone(), authenticate));
    let (router, _) = public.merge(authenticated).split_for_parts();
    router.with_state(state)
}

/// Marks a response that carries a secret shown once (a webhook subscription's `whsec_…`): the
/// idempotency layer never stores its body in clear and refuses to replay it
/// ([`idempotency`]); the security headers layer marks it `Cache-Control: no-store`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CarriesSecret {
    /// The top-level keys of the JSON body that hold secrets.
    pub(crate) keys: &'static [&'static str],
}

/// Which API key a request presented (a short fingerprint, never the key).
#[derive(Debug, Clone)]
pub(crate) struct ApiClient {
    pub(crate) fingerprint: String,
}

async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let security = &state.settings.security;
    // Every key with the tenant it is bound to (`None`: any tenant).
    let keys: Vec<(&str, Option<&tandem_core::TenantId>)> = security
        .api_keys
        .iter()
        .map(|k| (k.expose().trim(), None))
        .chain(
            security
                .tenant_api_keys
                .iter()
                .map(|b| (b.key.expose().trim(), Some(&b.tenant))),
        )
        .collect();
    if keys.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "the API is closed: no API key is configured (security.api_keys, security.tenant_api_keys)",
        ));
    }
    let Some(presented) = crate::http::bearer_token(request.headers()) else {
        AuthProbe::record(request.extensions(), false);
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "missing API key: send `Authorization: Bearer <key>`",
        ));
    };
    // Every configured key is compared (constant time each), so timing says nothing about which.
    let matched = keys.iter().fold(None, |found, (key, bound)| {
        let equal = constant_time_eq(key.as_bytes(), presented.as_bytes());
        found.or(equal.then(|| ((*key).to_owned(), *bound)))
    });
    AuthProbe::record(request.extensions(), matched.is_some());
    let Some((key, bound)) = matched else {
        return Err(ApiError::new(ErrorCode::Unauthorized, "wrong API key"));
    };
    let tenant = match bound {
        None => tenant_of(request.headers())?,
        // A tenant's key acts for its tenant: without the header too, never for another.
        Some(bound) if request.headers().get(TENANT_HEADER).is_none() => bound.clone(),
        Some(bound) => {
            let named = tenant_of(request.headers())?;
            if named != *bound {
                return Err(ApiError::new(
                    ErrorCode::TenantForbidden,
                    "this API key is bound to a tenant other than the one `Tandem-Tenant` names; it acts only for its own tenant",
                ));
            }
            named
        }
    };
    request.extensions_mut().insert(tenant);
    let digest = Sha256::digest(key.as_bytes());
    let fingerprint = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    request.extensions_mut().insert(ApiClient { fingerprint });
    Ok(next.run(request).await)
}

/// The header that names the tenant a request acts for.
pub(crate) const TENANT_HEADER: &str = "tandem-tenant";

/// The tenant a request names (`Tandem-Tenant`), else the default one; a header that is not a
/// tenant id is 400 `invalid_tenant` (never silently the default tenant).
fn tenant_of(headers: &HeaderMap) -> Result<tandem_core::TenantId, ApiError> {
    let Some(value) = headers.get(TENANT_HEADER) else {
        return Ok(tandem_core::TenantId::default());
    };
    value
        .to_str()
        .ok()
        .and_then(|text| tandem_core::TenantId::parse(text).ok())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidTenant,
                "the Tandem-Tenant header must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-'",
            )
        })
}

/// The body as a JSON object: 415 for another content type, 400 for broken JSON, 422 when it
/// is not an object.
pub(crate) fn json_object(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, ApiError> {
    json_content(headers)?;
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::MalformedJson,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(ApiError::new(
            ErrorCode::ValidationFailed,
            "the body must be a JSON object",
        )),
    }
}

/// Refuses a body whose declared content type is not JSON.
pub(crate) fn json_content(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or_default();
        let json = text
            .split(';')
            .next()
            .map(str::trim)
            .is_some_and(|t| t == "application/json" || t.ends_with("+json"));
        if !json {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the body as `Content-Type: application/json`",
            ));
        }
    }
    Ok(())
}

/// Refuses keys other than `allowed` (422 `unknown_field`, each one named).
pub(crate) fn only_keys(
    object: &Map<String, Value>,
    allowed: &[&str],
    path: &str,
) -> Result<(), ApiError> {
    let unknown: Vec<FieldError> = object
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .map(|k| FieldError {
            field: if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            },
            message: format!("unknown field; allowed are {}", allowed.join(", ")),
        })
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(
            ApiError::new(ErrorCode::UnknownField, "the body has unknown fields")
                .with_fields(unknown),
        )
    }
}

/// Field issues as a 422.
pub(crate) fn field_issues(issues: Vec<FieldIssue>) -> ApiError {
    let code = if issues.iter().any(|i| i.unknown) {
        ErrorCode::UnknownField
    } else {
        ErrorCode::ValidationFailed
    };
    ApiError::new(code, "some fields are invalid").with_fields(
        issues
            .into_iter()
            .map(|i| FieldError {
                field: i.field,
                message: i.message,
            })
            .collect(),
    )
}

/// One field-level 422.
pub(crate) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed, "some fields are invalid").with_fields(vec![
        FieldError {
            field: field.to_owned(),
            message: message.into(),
        },
    ])
}

/// A path id as a UUID; anything else names nothing (404).
pub(crate) fn path_id(text: &str, what: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(text)
        .map_err(|_| ApiError::new(ErrorCode::NotFound, format!("no {what} {text:?}")))
}

/// `limit` from a query: 1 to 200, default 50.
pub(crate) fn page_limit(
    query: &std::collections::HashMap<String, String>,
) -> Result<u64, ApiError> {
    match query.get("limit") {
        None => Ok(50),
        Some(text) => match text.parse::<u64>() {
            Ok(n) if (1..=200).contains(&n) => Ok(n),
            _ => Err(invalid("limit", "must be an integer from 1 to 200")),
        },
    }
}
