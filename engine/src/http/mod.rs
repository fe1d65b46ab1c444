//! The HTTP surface tandem serves: health and readiness, the admin console and API, the OAuth
//! connect flow, the app's REST API (`api`) and the webhook receivers (Pipedrive, the app).

use std::sync::Arc;

pub mod admin;
pub mod api;
pub(crate) mod client_address;
pub mod connect;
pub(crate) mod error;
pub mod metrics;
pub(crate) mod throttle;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::{header, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tandem_webhooks::{ApiError, ErrorCode};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::store::Store;
use crate::sync::inbound::inbox::StoreInbox;
use crate::sync::Engine;
use throttle::{AuthProbe, AuthThrottle, Policy};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub engine: Engine,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.http.body_limit_bytes;
    let inbox = Arc::new(StoreInbox::new(state.engine.clone()));
    let edge_state = Arc::new(EdgeState {
        app: state.clone(),
        throttle: AuthThrottle::new(Policy::default()),
        page_csp: page_csp(),
    });
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state.clone())
        .merge(admin::router(state.clone()))
        .merge(connect::router(state.clone()))
        .merge(metrics::router(state.clone()))
        .merge(api::router(state))
        .merge(tandem_webhooks::pipedrive::router(Arc::clone(&inbox)))
        .merge(tandem_webhooks::app::router(inbox))
        // One body limit for every route: tower-http refuses a declared length above it at once
        // and cuts off a streamed body there; axum's own default limit is switched off.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(body_limit))
        .layer(axum::middleware::from_fn_with_state(edge_state, edge));
    router.layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// The edge layer's state, shared (the layer's state is cloned for every request).
struct EdgeState {
    app: AppState,
    throttle: AuthThrottle,
    /// The console pages' Content-Security-Policy ([`page_csp`]).
    page_csp: HeaderValue,
}

/// What every request passes through, in one layer (each layer is a service and a future
/// every request and response pass through; the webhook receiver is the hot path): the
/// failed-authentication throttle, then, on the way out, the JSON error shape and the
/// security headers.
async fn edge(
    State(edge): State<Arc<EdgeState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let response = throttle_failed_auth(&edge, request, next).await;
    let mut response = json_errors(response).await;
    security_headers(response.headers_mut(), &edge.page_csp);
    response
}

/// Failed-authentication throttling ([`throttle`]): a locked client gets 429
/// `too_many_attempts` (with `Retry-After`) before any credential is looked at; each new lock
/// is written to the sync log (`auth_throttled`).
async fn throttle_failed_auth(
    edge: &EdgeState,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let EdgeState {
        app: state,
        throttle,
        ..
    } = edge;
    let Some(surface) = throttle::surface_of(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    // Behind a trusted load balancer, the client it names (`http.trusted_proxies`).
    let client = client_address::client_address(
        peer,
        request.headers(),
        &state.settings.http.trusted_proxies,
    );
    let peer = peer.to_canonical();
    let now = std::time::Instant::now();
    if let Err(wait) = throttle.check(surface, client, now) {
        // Attempts against a lock count too: hammering only makes it longer.
        let locks = throttle.failed(surface, client, now);
        audit_locks(state, surface, Origin { client, peer }, &locks).await;
        let seconds = wait.as_secs().max(1);
        let mut response = ApiError::new(
            ErrorCode::TooManyAttempts,
            format!("too many failed authentication attempts; try again in {seconds} s"),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    // The console and the APIs report their check through a probe; the webhook receivers and
    // `/metrics` answer 401 for every refusal, so their status is enough (and a request saves
    // the probe's allocations: the webhook receiver is the hot path).
    let probe = surface.reports_through_probe().then(AuthProbe::default);
    if let Some(probe) = &probe {
        request.extensions_mut().insert(probe.clone());
    }
    let response = next.run(request).await;
    match throttle::outcome(surface, probe.as_ref(), response.status()) {
        Some(true) => throttle.succeeded(surface, client, now),
        Some(false) => {
            let locks = throttle.failed(surface, client, now);
            audit_locks(state, surface, Origin { client, peer }, &locks).await;
            if throttle.tracked() > 10_000 {
                throttle.retain_recent(now);
            }
        }
        None => {}
    }
    response
}

/// Where a request came from: the client the throttle counts, and the TCP peer (the load
/// balancer, when the client is named by a trusted one).
#[derive(Debug, Clone, Copy)]
struct Origin {
    client: std::net::IpAddr,
    peer: std::net::IpAddr,
}

/// One sync-log entry (and one log line, without the address) per lock that started.
async fn audit_locks(
    state: &AppState,
    surface: throttle::Surface,
    origin: Origin,
    locks: &[throttle::NewLock],
) {
    use crate::sync::synclog::{self, Direction, Entry, Level};
    let Origin { client, peer } = origin;
    // The proxy that named the client, when there is one.
    let via = (peer != client).then(|| peer.to_string());
    for lock in locks {
        let seconds = lock.duration.as_secs().max(1);
        let text = if lock.target {
            format!("{} failed {} authentications in a row from several addresses; new addresses are refused for {seconds} s (addresses that signed in before are not).", surface.as_str(), lock.failures)
        } else {
            let via = via
                .as_deref()
                .map(|proxy| format!(" (via the proxy {proxy})"))
                .unwrap_or_default();
            format!("{} failed {} authentications in a row from {client}{via}; it is refused for {seconds} s.", surface.as_str(), lock.failures)
        };
        tracing::warn!(
            surface = surface.as_str(),
            failures = lock.failures,
            locked_for_secs = seconds,
            target = lock.target,
            "Repeated authentication failures; attempts are refused for a while."
        );
        let entry = Entry::new(Level::Warn, Direction::Connection, "auth_throttled", text)
            .status(Some(429))
            .detail(serde_json::json!({
                "surface": surface.as_str(),
                "client": (!lock.target).then(|| client.to_string()),
                "via": (!lock.target).then(|| via.clone()).flatten(),
                "failures": lock.failures,
                "locked_for_secs": seconds,
            }))
            .hint("Someone is guessing credentials. If it is you, wait; otherwise check who can reach tandem.");
        if let Err(error) = synclog::record(&state.store, entry, state.engine.now()).await {
            tracing::warn!(error = %error, "Could not record an authentication lock in the sync log.");
        }
    }
}

/// The token of `Authorization: Bearer <token>`, the scheme in any case (RFC 9110).
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The span of one request: method and path only. The query is never recorded, at any level:
/// it can hold an OAuth `code` and `state` or an e-mail address (`?email=`).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// The console pages' Content-Security-Policy: the console has no script; its one inline
/// stylesheet is allowed by hash.
fn page_csp() -> HeaderValue {
    use base64::Engine as _;
    use sha2::Digest as _;
    let style = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(admin::STYLE.as_bytes()));
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{style}'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(API_CSP))
}

/// The policy OWASP gives for APIs: loads nothing, cannot be framed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers on every response: no MIME sniffing, no framing, no referrer, a strict
/// Content-Security-Policy (`page_csp` on a page, [`API_CSP`] on anything else), and
/// `Cache-Control: no-store` unless a handler chose otherwise: answers carry contacts'
/// personal data, secrets shown once, or the console's pages.
fn security_headers(headers: &mut axum::http::HeaderMap, page_csp: &HeaderValue) {
    headers.reserve(5);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let page = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        if page {
            page_csp.clone()
        } else {
            HeaderValue::from_static(API_CSP)
        },
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(serde_json::json!({ "status": "ok" })))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    match state.store.readiness().await {
        Ok(()) => Ok(Json(serde_json::json!({
            "status": "ready",
            // Which replica answered (behind a load balancer, each one is asked on its own).
            "replica": state.engine.replica.id,
        }))),
        Err(unready) => Err(ApiError::new(ErrorCode::NotReady, unready.to_string())),
    }
}

/// One error shape everywhere: framework rejections (a body over the limit, a path id that does
/// not parse, a body that is not UTF-8, an unknown route or method) are plain text or empty;
/// they are answered with the JSON error body like every other client error. The console's
/// HTML error pages and JSON bodies pass unchanged.
async fn json_errors(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    // Every response passes here: a success leaves at once, without reading its headers.
    if !status.is_client_error() {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map_or(&b""[..], |v| v.as_bytes());
    if content_type.starts_with(b"application/json") || content_type.starts_with(b"text/html") {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let detail = match (status, text.is_empty()) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the request body is larger than this tandem accepts (http.body_limit_bytes)".to_owned()
        }
        (_, true) => status
            .canonical_reason()
            .unwrap_or("client error")
            .to_lowercase(),
        (_, false) => text,
    };
    match ApiError::for_status(status, detail) {
        Some(error) => {
            let mut response = error.into_response();
            // Keep what the rejection said besides its body (`Allow` on a 405, `Retry-After`).
            for (name, value) in &parts.headers {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
            }
            response
        }
        None => axum::response::Response::from_parts(parts, axum::body::Body::empty()),
    }
}
