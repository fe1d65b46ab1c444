//! The single entry point: every request comes through [`dispatch`], which routes it
//! ([`crate::ops::route`]), counts it, injects faults, reads the body, finds the session
//! (401 `INVALID_SESSION_ID`), checks API access (403 `API_DISABLED_FOR_ORG`), charges the
//! org's daily allocation (403 `REQUEST_LIMIT_EXCEEDED`), calls the operation's handler, and
//! adds `Sforce-Limit-Info` to the answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;

use super::request::{parse_query, Ctx};
use super::response::{injected_status, ApiErr, HResult};
use super::{admin, composite, composite_call, describe, limits, oauth, query, sobjects, tooling};
use crate::faults::RequestAction;
use crate::ops::{route, Op, Route};
use crate::shared::{ConnCtl, Shared};
use crate::state::{Actor, PRODUCTION};

/// What a listener serves: the instance (`login_org: None`) or one org's login host.
#[derive(Clone, Debug)]
pub(crate) struct App {
    pub(crate) shared: Arc<Shared>,
    pub(crate) login_org: Option<usize>,
}

/// The single entry point: every request comes through here.
pub(crate) async fn dispatch(State(app): State<App>, req: Request) -> Response {
    let mut lose_answer = false;
    let response = serve(&app, req, &mut lose_answer).await;
    if lose_answer {
        // The request was carried out; its answer never comes (the client times out).
        app.shared.wait_shutdown().await;
        return injected_status(503);
    }
    response
}

/// The bearer token of a request (`Authorization: Bearer x` or `OAuth x`).
pub(super) fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim().to_owned())
}

/// A write call being served (counted in when it is routed): counted out when its answer is
/// made or the client goes away. The most at once is what a test of a client's concurrency
/// reads.
struct WriteInFlight<'a>(&'a Shared);

impl Drop for WriteInFlight<'_> {
    fn drop(&mut self) {
        self.0.state.lock().counters.writes_in_flight -= 1;
    }
}

async fn serve(app: &App, req: Request, lose_answer: &mut bool) -> Response {
    let shared = &app.shared;
    let (parts, body) = req.into_parts();
    let (op, params) = match route(&parts.method, parts.uri.path(), app.login_org.is_some()) {
        Route::Op(op, params) => (op, params),
        Route::MethodNotAllowed(allowed) => {
            return ApiErr::new(
                405,
                "METHOD_NOT_ALLOWED",
                format!(
                    "HTTP Method '{}' not allowed. Allowed are {allowed}",
                    parts.method
                ),
            )
            .into_response()
        }
        Route::NotFound => return ApiErr::not_found().into_response(),
    };
    let writing = op.writes() && op.resource() != "oauth";
    let faults = {
        let mut st = shared.state.lock();
        *st.counters.by_op.entry(op.name()).or_default() += 1;
        // A write is expected to name its client (`Sforce-Call-Options: client=…`); the ones
        // that do not are counted, for tests and benchmarks to check.
        if writing {
            let counters = &mut st.counters;
            counters.writes_in_flight += 1;
            counters.max_writes_in_flight =
                counters.max_writes_in_flight.max(counters.writes_in_flight);
            let named = parts
                .headers
                .get("sforce-call-options")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|p| p.trim().starts_with("client=")));
            if !named {
                st.counters.writes_without_client += 1;
            }
        }
        st.faults.clone()
    };
    // Made only for a write (`then` runs the closure only then): a guard made and dropped would
    // count a call out that never came in.
    let _in_flight = writing.then(|| WriteInFlight(shared));
    let mut lock_fault = false;
    if !faults.is_empty() && op != Op::Admin {
        let (latency, action) = {
            let mut rng = shared.rng.lock();
            faults.decide(op, parts.method.as_str(), &mut *rng)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match action {
            Some(RequestAction::Status(s)) => return injected_status(s),
            Some(RequestAction::Limit) => {
                return ApiErr::new(
                    403,
                    "REQUEST_LIMIT_EXCEEDED",
                    "TotalRequests Limit exceeded.",
                )
                .into_response()
            }
            Some(RequestAction::Concurrent) => {
                return ApiErr::new(
                    403,
                    "REQUEST_LIMIT_EXCEEDED",
                    "ConcurrentPerOrgLongTxn Limit exceeded.",
                )
                .into_response()
            }
            Some(RequestAction::Lock) => lock_fault = true,
            Some(RequestAction::Hang) => {
                shared.wait_shutdown().await;
                return injected_status(503);
            }
            Some(RequestAction::LoseAnswer) => *lose_answer = true,
            Some(RequestAction::Reset) => {
                if let Some(ctl) = parts.extensions.get::<ConnCtl>() {
                    ctl.0.notify_one();
                }
                shared.wait_shutdown().await;
                return injected_status(503);
            }
            None => {}
        }
    }
    let body = match axum::body::to_bytes(body, 32 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return ApiErr::bad_json("The request body is either invalid or incomplete.")
                .into_response()
        }
    };
    let query = parse_query(parts.uri.query());
    let now_ms = shared.now_ms();
    match op {
        Op::Admin => return admin::handle(shared, &parts.method, &params, &query, &body),
        Op::Versions => return limits::versions(shared),
        _ if op.is_oauth() => {
            return oauth::handle(
                shared,
                op,
                app.login_org.unwrap_or(PRODUCTION),
                &parts.headers,
                &params,
                &query,
                &body,
                now_ms,
            )
        }
        _ => {}
    }

    // The session, API access and the daily allocation.
    let (org, actor) = {
        let mut st = shared.state.lock();
        let session = bearer(&parts.headers)
            .and_then(|t| st.sessions.get(&t).cloned())
            .filter(|s| s.expires_ms > now_ms);
        let Some(session) = session else {
            return ApiErr::invalid_session().into_response();
        };
        let o = &mut st.orgs[session.org];
        let perms = o.perms(&session.user);
        if !o.api_enabled || !perms.flags.api_enabled {
            return ApiErr::new(
                403,
                "API_DISABLED_FOR_ORG",
                "The REST API is not enabled for this Organization.",
            )
            .into_response();
        }
        if !o.api.charge(now_ms) {
            let mut r = ApiErr::new(
                403,
                "REQUEST_LIMIT_EXCEEDED",
                "TotalRequests Limit exceeded.",
            )
            .into_response();
            let used = o.api.used(now_ms);
            limit_header(&mut r, used, o.api.max);
            return r;
        }
        (session.org, Actor { perms, api: true })
    };

    let ctx = Ctx {
        shared,
        org,
        actor,
        params,
        query,
        headers: &parts.headers,
        body,
        now_ms,
    };
    let result = if op == Op::Composite {
        // A lock fault lands on the Composite call's writing subrequests, as Salesforce
        // reports a locked row inside the subrequest's answer.
        composite_call::call(&ctx, lock_fault)
    } else if lock_fault {
        Err(lock_error(&ctx))
    } else {
        handle(&ctx, op, &parts.method)
    };
    let mut resp = match result {
        Ok(a) => a.into_response(),
        Err(e) => e.into_response(),
    };
    let (used, max) = {
        let mut st = shared.state.lock();
        let o = &mut st.orgs[org];
        (o.api.used(now_ms), o.api.max)
    };
    limit_header(&mut resp, used, max);
    resp
}

pub(super) fn lock_error(ctx: &Ctx<'_>) -> ApiErr {
    let id = ctx.params.id.clone().unwrap_or_default();
    ApiErr::new(
        400,
        "UNABLE_TO_LOCK_ROW",
        format!("unable to obtain exclusive access to this record or 1 records: {id}"),
    )
}

fn limit_header(resp: &mut Response, used: u64, max: u64) {
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
}

pub(super) fn handle(ctx: &Ctx<'_>, op: Op, method: &Method) -> HResult {
    let _ = method;
    match op {
        Op::Resources => limits::resources(ctx),
        Op::Limits => limits::limits(ctx),
        Op::DescribeGlobal => describe::global(ctx),
        Op::Describe => describe::describe(ctx),
        Op::SObjectBasic => sobjects::basic(ctx),
        Op::Create => sobjects::create(ctx),
        Op::Get => sobjects::get(ctx),
        Op::Update => sobjects::update(ctx),
        Op::Delete => sobjects::delete(ctx),
        Op::GetByExternalId => sobjects::get_by_external_id(ctx),
        Op::Upsert => sobjects::upsert(ctx),
        Op::Updated => query::updated(ctx),
        Op::Deleted => query::deleted(ctx),
        Op::Query => query::query(ctx, false),
        Op::QueryAll => query::query(ctx, true),
        Op::QueryMore => query::more(ctx),
        Op::CompositeCreate => composite::create(ctx),
        Op::CompositeUpdate => composite::update(ctx),
        Op::CompositeDelete => composite::delete(ctx),
        Op::CompositeRetrieve => composite::retrieve(ctx),
        Op::CompositeUpsert => composite::upsert(ctx),
        Op::ToolingCreate => tooling::create(ctx),
        Op::ToolingGet => tooling::get(ctx),
        Op::OauthAuthorize
        | Op::Composite
        | Op::OauthToken
        | Op::OauthRevoke
        | Op::OauthUserinfo
        | Op::Identity
        | Op::Versions
        | Op::Admin => Err(ApiErr::not_found()),
    }
}
