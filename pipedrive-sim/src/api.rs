//! Request handling: routing, fault injection, authentication, rate limits, scopes, and the
//! handlers of every served operation.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::faults::RequestAction;
use crate::model::{builtin_fields, parse_time, v1_time, v2_time, FieldDef, Person, PersonV2};
use crate::ops::{route, Api, Op, Route};
use crate::shared::{ConnCtl, Shared};
use crate::state::{AccessToken, AuthCode, Company, Event, RefreshToken, State as SimState};
use crate::{seed, webhooks};

const ERROR_INFO: &str = "Please check developers.pipedrive.com";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An API error, rendered as Pipedrive's envelope for its status.
#[derive(Debug)]
pub(crate) enum ApiErr {
    BadRequest(String),
    NotFound(String),
    Unprocessable(String),
    /// A body in the v1 webhooks API's own error shape.
    Raw(StatusCode, Value),
}

type HResult = Result<(StatusCode, Value, Vec<Event>), ApiErr>;

/// A handler's answer body: a `Value`, or bytes serialized straight from the store.
pub(crate) enum Out {
    Json(Value),
    Bytes(Vec<u8>),
}

fn bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub(crate) fn envelope(status: StatusCode, error: &str, info: &str) -> Response {
    json_response(
        status,
        &json!({"success": false, "error": error, "error_info": info, "data": null, "additional_data": null}),
    )
}

fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"success": false, "error": "unauthorized access", "errorCode": 401, "error_info": ERROR_INFO}),
    )
}

pub(crate) fn too_many() -> Response {
    json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({"success": false, "error": "Request over limit", "errorCode": 429, "error_info": ERROR_INFO}),
    )
}

fn injected_status(status: u16) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code == StatusCode::TOO_MANY_REQUESTS {
        let mut r = too_many();
        let h = r.headers_mut();
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        h.insert("x-ratelimit-reset", HeaderValue::from_static("2"));
        return r;
    }
    let msg = match status {
        502 => "Bad gateway",
        503 => "Whoops! Something broke in our servers. Please try again later.",
        504 => "Gateway timeout",
        _ => "Internal server error",
    };
    envelope(code, msg, ERROR_INFO)
}

impl ApiErr {
    fn into_response(self) -> Response {
        match self {
            ApiErr::BadRequest(m) => envelope(StatusCode::BAD_REQUEST, &m, ERROR_INFO),
            ApiErr::NotFound(m) => envelope(StatusCode::NOT_FOUND, &m, "Object was not found."),
            ApiErr::Unprocessable(m) => envelope(StatusCode::UNPROCESSABLE_ENTITY, &m, ERROR_INFO),
            ApiErr::Raw(s, v) => json_response(s, &v),
        }
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) company_id: i64,
    pub(crate) user_id: i64,
    pub(crate) oauth: bool,
    pub(crate) token: String,
}

enum Credential {
    Bearer(String),
    ApiToken(String),
    Malformed,
    Missing,
}

fn credential(headers: &HeaderMap, query: &[(String, String)]) -> Credential {
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

pub(crate) fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

struct RateHeaders(Vec<(&'static str, String)>);

impl RateHeaders {
    fn apply(self, r: &mut Response) {
        for (k, v) in self.0 {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().insert(k, v);
            }
        }
    }
}

/// Charges the call against the burst window and the company's daily budget.
fn charge(
    st: &mut SimState,
    caller: &Caller,
    op: Op,
    now: i64,
    instant: Instant,
) -> (bool, RateHeaders) {
    let limits = st.limits.clone();
    let (key, limit) = if op.is_search() {
        (format!("search:{}", caller.token), limits.search_burst)
    } else if caller.oauth {
        (caller.token.clone(), limits.oauth_burst)
    } else {
        (caller.token.clone(), limits.api_token_burst)
    };
    let w = st.windows.entry(key).or_insert(crate::state::Window {
        start: instant,
        count: 0,
    });
    if instant.duration_since(w.start) >= limits.window {
        w.start = instant;
        w.count = 0;
    }
    let reset = limits
        .window
        .saturating_sub(instant.duration_since(w.start))
        .as_secs_f64()
        .ceil()
        .max(1.0) as u64;
    let burst_ok = w.count < limit;
    if burst_ok {
        w.count += 1;
    }
    let remaining = limit.saturating_sub(w.count);
    let cost = op.token_cost();
    let write = matches!(
        op,
        Op::AddPerson
            | Op::UpdatePerson
            | Op::AddDeal
            | Op::UpdateDeal
            | Op::AddActivity
            | Op::UpdateActivity
            | Op::AddWebhook
            | Op::AddPersonField
            | Op::AddPersonFieldV1
            | Op::DeletePersonField
            | Op::MergePersons
    );
    let day = now.div_euclid(86_400);
    let Some(c) = st.companies.get_mut(&caller.company_id) else {
        return (false, RateHeaders(Vec::new()));
    };
    if c.daily_day != day {
        c.daily_day = day;
        c.daily_spent = 0;
        c.daily_writes = 0;
    }
    let daily_ok = c.daily_spent + cost <= limits.daily_budget;
    let allowed = burst_ok && daily_ok;
    if allowed {
        c.daily_spent += cost;
        if write {
            c.daily_writes += 1;
        }
    }
    let daily_left = limits.daily_budget.saturating_sub(c.daily_spent);
    let writes_left = limits.daily_write_requests.saturating_sub(c.daily_writes);
    let mut h = vec![
        ("x-ratelimit-limit", limit.to_string()),
        (
            "x-ratelimit-remaining",
            if allowed {
                remaining.to_string()
            } else {
                "0".to_owned()
            },
        ),
        ("x-ratelimit-reset", reset.to_string()),
        (
            "x-daily-ratelimit-token-limit",
            limits.daily_budget.to_string(),
        ),
        ("x-daily-ratelimit-token-remaining", daily_left.to_string()),
    ];
    if !caller.oauth {
        h.push(("x-daily-requests-left", writes_left.to_string()));
    }
    if allowed {
        st.counters.spent_total += cost;
        *st.counters
            .spent_by_token
            .entry(caller.token.clone())
            .or_default() += cost;
    } else {
        st.counters.rate_limited += 1;
    }
    (allowed, RateHeaders(h))
}

/// The single entry point: every request comes through here.
pub(crate) async fn dispatch(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let mut lose_answer = false;
    let response = serve(&shared, req, &mut lose_answer).await;
    if lose_answer {
        // The request was carried out; its answer never comes (the client times out).
        shared.wait_shutdown().await;
        return injected_status(503);
    }
    response
}

async fn serve(shared: &Arc<Shared>, req: Request, lose_answer: &mut bool) -> Response {
    let (parts, body) = req.into_parts();
    let (api, route) = route(&parts.method, parts.uri.path());
    let (op, path_id) = match route {
        Route::Op(op, id) => (op, id),
        Route::Gone(msg) => return envelope(StatusCode::GONE, msg, ERROR_INFO),
        Route::MethodNotAllowed => {
            return envelope(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                ERROR_INFO,
            )
        }
        Route::NotFound => {
            let msg = if api.is_some() {
                "Unknown method ."
            } else {
                "Not found"
            };
            return envelope(StatusCode::NOT_FOUND, msg, ERROR_INFO);
        }
    };
    let query = parse_query(parts.uri.query());
    let cred = credential(&parts.headers, &query);

    // Count the call.
    let faults = {
        let mut st = shared.state.lock();
        *st.counters.by_op.entry(op).or_default() += 1;
        let label = match &cred {
            Credential::Bearer(t) | Credential::ApiToken(t) => Some(t.clone()),
            _ => None,
        };
        if let Some(t) = label {
            *st.counters.by_token_op.entry((t.clone(), op)).or_default() += 1;
            *st.counters.by_token.entry(t).or_default() += 1;
        }
        st.faults.clone()
    };

    // Inject faults.
    if !faults.is_empty() {
        let (latency, action) = {
            let mut rng = shared.rng.lock();
            faults.decide_request(op, parts.method.as_str(), &mut *rng)
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        match action {
            Some(RequestAction::Status(s)) => return injected_status(s),
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

    let body = match axum::body::to_bytes(body, 16 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return envelope(
                StatusCode::BAD_REQUEST,
                "Request body too large or unreadable",
                ERROR_INFO,
            )
        }
    };

    if op.is_oauth() {
        return oauth(shared, op, &parts.headers, &query, &body);
    }

    // Authenticate.
    let now = shared.now();
    let caller = {
        let st = shared.state.lock();
        match &cred {
            Credential::Malformed => {
                return envelope(
                    StatusCode::BAD_REQUEST,
                    "Invalid request: malformed authorization header",
                    ERROR_INFO,
                )
            }
            Credential::Missing => return unauthorized(),
            Credential::Bearer(t) => match st.access_tokens.get(t) {
                Some(a) if a.expires_at > now => Caller {
                    company_id: a.company_id,
                    user_id: a.user_id,
                    oauth: true,
                    token: t.clone(),
                },
                _ => return unauthorized(),
            },
            Credential::ApiToken(t) => {
                if *t == shared.config.api_token {
                    Caller {
                        company_id: st.current_company,
                        user_id: shared.config.user_id,
                        oauth: false,
                        token: t.clone(),
                    }
                } else {
                    return unauthorized();
                }
            }
        }
    };

    // Rate limits, then scopes.
    let (allowed, headers) = {
        let mut st = shared.state.lock();
        let r = charge(&mut st, &caller, op, now, Instant::now());
        if r.0
            && caller.oauth
            && !op.scopes().is_empty()
            && !op.scopes().iter().any(|s| st.scopes.iter().any(|g| g == s))
        {
            drop(st);
            let mut resp = json_response(
                StatusCode::FORBIDDEN,
                &json!({"success": false, "error": "Scope and URL mismatch", "errorCode": 403, "error_info": ERROR_INFO}),
            );
            r.1.apply(&mut resp);
            return resp;
        }
        r
    };
    if !allowed {
        let mut r = too_many();
        headers.apply(&mut r);
        return r;
    }

    let ctx = Ctx {
        shared,
        caller,
        query,
        body,
        id: path_id,
        now,
        api: api.unwrap_or(Api::V2),
    };
    let result = match op {
        Op::GetPersons => list_persons(&ctx).map(|b| (StatusCode::OK, Out::Bytes(b), Vec::new())),
        Op::GetPerson => get_person(&ctx).map(|b| (StatusCode::OK, Out::Bytes(b), Vec::new())),
        _ => handle(&ctx, op, &parts.method).map(|(s, v, e)| (s, Out::Json(v), e)),
    };
    let mut resp = match result {
        Ok((status, out, events)) => {
            if !events.is_empty() {
                webhooks::emit(shared, events);
            }
            match out {
                Out::Json(value) => json_response(status, &value),
                Out::Bytes(bytes) => bytes_response(status, bytes),
            }
        }
        Err(e) => e.into_response(),
    };
    headers.apply(&mut resp);
    resp
}

struct Ctx<'a> {
    shared: &'a Shared,
    caller: Caller,
    query: Vec<(String, String)>,
    body: Bytes,
    id: Option<String>,
    now: i64,
    #[allow(dead_code)]
    api: Api,
}

impl Ctx<'_> {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    fn q_int(&self, k: &str) -> Result<Option<i64>, ApiErr> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiErr::BadRequest(format!(
                    "Validation failed: {k}: Parameter '{k}' must be an integer"
                ))
            }),
        }
    }

    fn q_bool(&self, k: &str) -> Result<Option<bool>, ApiErr> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiErr::BadRequest(format!(
                "Validation failed: {k}: Parameter '{k}' must be a boolean"
            ))),
        }
    }

    fn q_time(&self, k: &str) -> Result<Option<i64>, ApiErr> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some(v) => parse_time(v).map(Some).ok_or_else(|| {
                ApiErr::BadRequest(format!(
                    "Validation failed: {k}: must be an RFC 3339 date-time"
                ))
            }),
        }
    }

    fn limit(&self) -> Result<usize, ApiErr> {
        match self.q_int("limit")? {
            None => Ok(100),
            Some(n) if (1..=500).contains(&n) => Ok(n as usize),
            Some(_) => Err(ApiErr::BadRequest(
                "Validation failed: limit: must be between 1 and 500".into(),
            )),
        }
    }

    fn path_id(&self, what: &str) -> Result<i64, ApiErr> {
        self.id
            .as_deref()
            .and_then(|s| s.parse().ok())
            .filter(|n: &i64| *n > 0)
            .ok_or_else(|| {
                ApiErr::BadRequest(format!(
                    "Validation failed: id: {what} id must be a positive integer"
                ))
            })
    }

    fn json_body(&self) -> Result<Map<String, Value>, ApiErr> {
        if self.body.is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(ApiErr::BadRequest(
                "Request body must be a JSON object".into(),
            )),
            Err(e) => Err(ApiErr::BadRequest(format!(
                "Invalid JSON in request body: {e}"
            ))),
        }
    }

    /// v1 POST bodies may also be form-encoded.
    fn json_or_form_body(&self) -> Result<Map<String, Value>, ApiErr> {
        if self.body.first().is_some_and(|b| *b == b'{') || self.body.is_empty() {
            return self.json_body();
        }
        Ok(url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect())
    }
}

fn ok_data(data: Value) -> Value {
    json!({"success": true, "data": data})
}

fn with_company<T>(ctx: &Ctx<'_>, f: impl FnOnce(&mut Company, &mut SimState) -> T) -> T {
    let mut guard = ctx.shared.state.lock();
    let st = &mut *guard;
    let mut company = st
        .companies
        .remove(&ctx.caller.company_id)
        .unwrap_or_else(|| {
            let users = st.current().users.clone();
            let mut rng = ctx.shared.rng.lock();
            Company::new(ctx.caller.company_id, "Company", users, ctx.now, &mut *rng)
        });
    let out = f(&mut company, st);
    st.companies.insert(ctx.caller.company_id, company);
    out
}

fn handle(ctx: &Ctx<'_>, op: Op, _method: &Method) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    match op {
        Op::AddPerson => {
            let body = ctx.json_body()?;
            with_company(ctx, |c, _| {
                let (json, ev) = c
                    .create_person(&body, user, "api", now)
                    .map_err(ApiErr::BadRequest)?;
                Ok((StatusCode::OK, ok_data(json), vec![ev]))
            })
        }
        Op::UpdatePerson => {
            let id = ctx.path_id("person")?;
            let body = ctx.json_body()?;
            with_company(ctx, |c, _| {
                match c
                    .update_person(id, &body, user, "api", now)
                    .map_err(ApiErr::BadRequest)?
                {
                    None => Err(ApiErr::NotFound("Person not found".into())),
                    Some((json, ev)) => {
                        Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect()))
                    }
                }
            })
        }
        Op::DeletePerson => {
            let id = ctx.path_id("person")?;
            with_company(ctx, |c, _| match c.delete_person(id, user, "api", now) {
                None => Err(ApiErr::NotFound("Person not found".into())),
                Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
            })
        }
        Op::SearchPersons => search_persons(ctx),
        Op::MergePersons => {
            let id = ctx.path_id("person")?;
            let body = ctx.json_body()?;
            let with = match body.get("merge_with_id") {
                Some(v) => v.as_i64().ok_or_else(|| {
                    ApiErr::BadRequest(
                        "Validation failed: merge_with_id: must be an integer".into(),
                    )
                })?,
                None => return Err(ApiErr::BadRequest("merge_with_id is required".into())),
            };
            with_company(ctx, |c, _| {
                if c.live_person(id).is_none() || c.live_person(with).is_none() {
                    return Err(ApiErr::NotFound("Person not found".into()));
                }
                let (merged, events) = c
                    .merge_persons(id, with, user, "api", now)
                    .map_err(ApiErr::BadRequest)?;
                let mut v = merged.v1_json(c.id, &c.user_name(merged.owner_id), &c.person_fields);
                v["merge_what_id"] = json!(id);
                Ok((StatusCode::OK, ok_data(v), events))
            })
        }
        Op::GetDeals => list_deals(ctx),
        Op::GetDeal => {
            let id = ctx.path_id("deal")?;
            with_company(ctx, |c, _| {
                let d = c
                    .deals
                    .get(&id)
                    .filter(|d| !d.is_deleted)
                    .ok_or_else(|| ApiErr::NotFound("Deal not found".into()))?;
                Ok((StatusCode::OK, ok_data(d.v2_json()), vec![]))
            })
        }
        Op::AddDeal => {
            let body = ctx.json_body()?;
            with_company(ctx, |c, _| {
                let (json, ev) = c
                    .create_deal(&body, user, "api", now)
                    .map_err(ApiErr::BadRequest)?;
                Ok((StatusCode::OK, ok_data(json), vec![ev]))
            })
        }
        Op::UpdateDeal => {
            let id = ctx.path_id("deal")?;
            let body = ctx.json_body()?;
            with_company(ctx, |c, _| {
                match c
                    .update_deal(id, &body, user, "api", now)
                    .map_err(ApiErr::BadRequest)?
                {
                    None => Err(ApiErr::NotFound("Deal not found".into())),
                    Some((json, ev)) => {
                        Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect()))
                    }
                }
            })
        }
        Op::DeleteDeal => {
            let id = ctx.path_id("deal")?;
            with_company(ctx, |c, _| match c.delete_deal(id, user, "api", now) {
                None => Err(ApiErr::NotFound("Deal not found".into())),
                Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
            })
        }
        Op::GetActivities => list_activities(ctx),
        Op::GetActivity => {
            let id = ctx.path_id("activity")?;
            with_company(ctx, |c, _| {
                let a = c
                    .activities
                    .get(&id)
                    .filter(|a| !a.is_deleted)
                    .ok_or_else(|| ApiErr::NotFound("Activity not found".into()))?;
                Ok((StatusCode::OK, ok_data(a.v2_json()), vec![]))
            })
        }
        Op::AddActivity => {
            let body = ctx.json_body()?;
            with_company(ctx, |c, _| {
                let (json, ev) = c
                    .create_activity(&body, user, "api", now)
                    .map_err(ApiErr::BadRequest)?;
                Ok((StatusCode::OK, ok_data(json), vec![ev]))
            })
        }
        Op::UpdateActivity => {
            let id = ctx.path_id("activity")?;
            let body = ctx.json_body()?;
            with_company(ctx, |c, _| {
                match c
                    .update_activity(id, &body, user, "api", now)
                    .map_err(ApiErr::BadRequest)?
                {
                    None => Err(ApiErr::NotFound("Activity not found".into())),
                    Some((json, ev)) => {
                        Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect()))
                    }
                }
            })
        }
        Op::DeleteActivity => {
            let id = ctx.path_id("activity")?;
            with_company(ctx, |c, _| match c.delete_activity(id, user, "api", now) {
                None => Err(ApiErr::NotFound("Activity not found".into())),
                Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
            })
        }
        Op::GetPersonFields => {
            let limit = ctx.limit()?;
            let offset = decode_offset_cursor(ctx.q("cursor"))?;
            with_company(ctx, |c, _| {
                let all: Vec<Value> = person_fields_all(c).iter().map(FieldDef::v2_json).collect();
                let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
                let next =
                    (offset + limit < all.len()).then(|| encode_offset_cursor(offset + limit));
                Ok((
                    StatusCode::OK,
                    json!({"success": true, "data": page, "additional_data": {"next_cursor": next}}),
                    vec![],
                ))
            })
        }
        Op::GetPersonField => {
            let code = ctx.id.clone().unwrap_or_default();
            with_company(ctx, |c, _| {
                let f = person_fields_all(c)
                    .into_iter()
                    .find(|f| f.key == code)
                    .ok_or_else(|| ApiErr::NotFound("Field not found".into()))?;
                Ok((StatusCode::OK, ok_data(f.v2_json()), vec![]))
            })
        }
        Op::DeletePersonField => {
            let code = ctx.id.clone().unwrap_or_default();
            with_company(ctx, |c, _| {
                let f = c.delete_person_field(&code).map_err(|builtin| {
                    if builtin {
                        ApiErr::BadRequest(format!(
                            "Validation failed: field_code: {code:?} is a built-in field and cannot be deleted"
                        ))
                    } else {
                        ApiErr::NotFound("Field not found".into())
                    }
                })?;
                Ok((StatusCode::OK, ok_data(f.v2_json()), vec![]))
            })
        }
        Op::AddPersonField | Op::AddPersonFieldV1 => {
            let body = if op == Op::AddPersonField {
                ctx.json_body()?
            } else {
                ctx.json_or_form_body()?
            };
            let name_key = if op == Op::AddPersonField {
                "field_name"
            } else {
                "name"
            };
            let name = body.get(name_key).and_then(Value::as_str).ok_or_else(|| {
                ApiErr::BadRequest(format!("Validation failed: {name_key}: is required"))
            })?;
            let ftype = body
                .get("field_type")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ApiErr::BadRequest("Validation failed: field_type: is required".into())
                })?;
            let options: Vec<String> = match body.get("options") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|o| o.get("label").and_then(Value::as_str).map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        ApiErr::BadRequest(
                            "Validation failed: options: each option needs a label".into(),
                        )
                    })?,
                Some(_) => {
                    return Err(ApiErr::BadRequest(
                        "Validation failed: options: must be an array".into(),
                    ))
                }
            };
            let opts: Vec<&str> = options.iter().map(String::as_str).collect();
            with_company(ctx, |c, _| {
                let mut rng = ctx.shared.rng.lock();
                let f = c
                    .add_person_field(name, ftype, &opts, now, &mut *rng)
                    .map_err(ApiErr::BadRequest)?;
                let data = if op == Op::AddPersonField {
                    f.v2_json()
                } else {
                    f.v1_json(c.person_fields.len() + 20)
                };
                Ok((StatusCode::OK, ok_data(data), vec![]))
            })
        }
        Op::GetStages => {
            let limit = ctx.limit()?;
            let pipeline = ctx.q_int("pipeline_id")?;
            with_company(ctx, |c, _| {
                let data: Vec<Value> = c
                    .stages
                    .iter()
                    .filter(|s| pipeline.is_none_or(|p| p == s.pipeline_id))
                    .take(limit)
                    .map(|s| stage_json(s, c.created))
                    .collect();
                Ok((
                    StatusCode::OK,
                    json!({"success": true, "data": data, "additional_data": {"next_cursor": null}}),
                    vec![],
                ))
            })
        }
        Op::GetStage => {
            let id = ctx.path_id("stage")?;
            with_company(ctx, |c, _| {
                let s = c
                    .stages
                    .iter()
                    .find(|s| s.id == id)
                    .ok_or_else(|| ApiErr::NotFound("Stage not found".into()))?;
                Ok((StatusCode::OK, ok_data(stage_json(s, c.created)), vec![]))
            })
        }
        Op::GetPipelines => with_company(ctx, |c, _| {
            let data: Vec<Value> = c
                .pipelines
                .iter()
                .map(|(id, n)| pipeline_json(*id, n, c.created))
                .collect();
            Ok((
                StatusCode::OK,
                json!({"success": true, "data": data, "additional_data": {"next_cursor": null}}),
                vec![],
            ))
        }),
        Op::GetPipeline => {
            let id = ctx.path_id("pipeline")?;
            with_company(ctx, |c, _| {
                let (pid, n) = c
                    .pipelines
                    .iter()
                    .find(|p| p.0 == id)
                    .ok_or_else(|| ApiErr::NotFound("Pipeline not found".into()))?;
                Ok((
                    StatusCode::OK,
                    ok_data(pipeline_json(*pid, n, c.created)),
                    vec![],
                ))
            })
        }
        Op::GetCurrentUser => with_company(ctx, |c, st| {
            let u = c
                .users
                .iter()
                .find(|u| u.id == user)
                .cloned()
                .ok_or_else(|| ApiErr::NotFound("User not found".into()))?;
            let mut v = user_json(&u, user, c.created);
            let host = url::Url::parse(&st.api_domain)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            let domain = if host.parse::<std::net::IpAddr>().is_ok() || host == "localhost" {
                "sim-company".to_owned()
            } else {
                host.split('.').next().unwrap_or("sim-company").to_owned()
            };
            if let Value::Object(m) = &mut v {
                m.insert("company_id".into(), json!(c.id));
                m.insert("company_name".into(), json!(c.name));
                m.insert("company_domain".into(), json!(domain));
                m.insert("company_country".into(), json!("GB"));
                m.insert("company_industry".into(), json!("Software"));
                m.insert(
                    "language".into(),
                    json!({"language_code": "en", "country_code": "US"}),
                );
            }
            Ok((StatusCode::OK, ok_data(v), vec![]))
        }),
        Op::GetUsers => with_company(ctx, |c, _| {
            let data: Vec<Value> = c
                .users
                .iter()
                .map(|u| user_json(u, user, c.created))
                .collect();
            Ok((StatusCode::OK, ok_data(Value::Array(data)), vec![]))
        }),
        Op::GetWebhooks => with_company(ctx, |c, _| {
            let now_i = Instant::now();
            let data: Vec<Value> = c
                .webhooks
                .values()
                .filter(|w| w.owner_id == user)
                .map(|w| w.v1_json(now_i))
                .collect();
            Ok((
                StatusCode::OK,
                json!({"status": "ok", "success": true, "data": data}),
                vec![],
            ))
        }),
        Op::AddWebhook => add_webhook(ctx),
        Op::DeleteWebhook => {
            let id = ctx.id.as_deref().and_then(|s| s.parse::<i64>().ok());
            with_company(ctx, |c, _| {
                let found = id.and_then(|id| c.webhooks.get(&id)).map(|w| w.owner_id);
                match (id, found) {
                    (Some(id), Some(owner)) if owner == user => {
                        c.webhooks.remove(&id);
                        Ok((
                            StatusCode::OK,
                            json!({"status": "ok", "success": true}),
                            vec![],
                        ))
                    }
                    (Some(_), Some(_)) => Err(ApiErr::Raw(
                        StatusCode::FORBIDDEN,
                        json!({"success": false, "message": "Forbidden"}),
                    )),
                    _ => Err(ApiErr::Raw(
                        StatusCode::NOT_FOUND,
                        json!({"status": "error", "success": false, "errors": {"id": ["not found"]}}),
                    )),
                }
            })
        }
        Op::GetRecents => recents(ctx),
        Op::GetPersonFieldsV1
        | Op::GetDealFieldsV1
        | Op::GetOrganizationFieldsV1
        | Op::GetActivityFieldsV1
        | Op::GetProductFieldsV1 => {
            let start = ctx.q_int("start")?.unwrap_or(0).max(0) as usize;
            let limit = ctx.limit()?;
            let entity = match op {
                Op::GetPersonFieldsV1 => "person",
                Op::GetDealFieldsV1 => "deal",
                Op::GetOrganizationFieldsV1 => "organization",
                Op::GetActivityFieldsV1 => "activity",
                _ => "product",
            };
            with_company(ctx, |c, _| {
                let mut all: Vec<FieldDef> = builtins(entity, c.created);
                if entity == "person" {
                    all.extend(c.person_fields.iter().cloned());
                }
                let data: Vec<Value> = all
                    .iter()
                    .enumerate()
                    .skip(start)
                    .take(limit)
                    .map(|(i, f)| f.v1_json(i + 1))
                    .collect();
                let more = start + limit < all.len();
                let mut pagination =
                    json!({"start": start, "limit": limit, "more_items_in_collection": more});
                if more {
                    pagination["next_start"] = json!(start + limit);
                }
                Ok((
                    StatusCode::OK,
                    json!({"success": true, "data": data, "additional_data": {"start": start, "limit": limit, "more_items_in_collection": more, "pagination": pagination}}),
                    vec![],
                ))
            })
        }
        Op::GetPersons | Op::GetPerson => Err(ApiErr::BadRequest("served by the fast path".into())),
        Op::OauthAuthorize | Op::OauthToken | Op::OauthRevoke => Err(ApiErr::BadRequest(
            "OAuth endpoints are served under /oauth".into(),
        )),
    }
}

fn builtins(entity: &str, created: i64) -> Vec<FieldDef> {
    builtin_fields(entity)
        .into_iter()
        .enumerate()
        .map(|(i, (key, name, t))| FieldDef {
            id: i as i64 + 1,
            key: key.to_owned(),
            name: name.to_owned(),
            field_type: t.to_owned(),
            options: Vec::new(),
            custom: false,
            add_time: created,
        })
        .collect()
}

/// Every person field, built-in ones first. The built-in codes are Pipedrive's (`email`,
/// `phone`, as the `personFields` example of the v2 document shows), not the v2 object's
/// property names (`emails`, `phones`).
fn person_fields_all(c: &Company) -> Vec<FieldDef> {
    let mut all: Vec<FieldDef> = builtins("person", c.created);
    all.extend(c.person_fields.iter().cloned());
    all
}

fn stage_json(s: &crate::state::Stage, created: i64) -> Value {
    json!({"id": s.id, "order_nr": s.order_nr, "name": s.name, "is_deleted": false, "deal_probability": s.probability,
           "pipeline_id": s.pipeline_id, "is_deal_rot_enabled": false, "days_to_rotten": null,
           "add_time": v2_time(created), "update_time": v2_time(created)})
}

fn pipeline_json(id: i64, name: &str, created: i64) -> Value {
    json!({"id": id, "name": name, "order_nr": id, "is_deleted": false, "is_deal_probability_enabled": false,
           "add_time": v2_time(created), "update_time": v2_time(created)})
}

fn user_json(u: &crate::state::User, me: i64, created: i64) -> Value {
    json!({
        "id": u.id, "name": u.name, "default_currency": "EUR", "locale": "en_US", "lang": 1,
        "email": u.email, "phone": null, "activated": true, "last_login": v1_time(created + 86_400),
        "created": v1_time(created), "modified": v1_time(created), "has_created_company": u.is_admin,
        "access": [
            {"app": "sales", "admin": u.is_admin, "permission_set_id": "sim-sales-permission-set"},
            {"app": "global", "admin": u.is_admin, "permission_set_id": "sim-global-permission-set"}
        ],
        "active_flag": true, "timezone_name": "Europe/London", "timezone_offset": "+00:00",
        "role_id": 1, "icon_url": null, "is_you": u.id == me, "is_deleted": false,
        "is_admin": if u.is_admin { 1 } else { 0 },
    })
}

fn custom_field_filter(ctx: &Ctx<'_>) -> Result<Option<Vec<String>>, ApiErr> {
    match ctx.q("custom_fields") {
        None | Some("") => Ok(None),
        Some(s) => {
            let keys: Vec<String> = s
                .split(',')
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect();
            if keys.len() > 15 {
                return Err(ApiErr::BadRequest(
                    "Validation failed: custom_fields: a maximum of 15 keys is allowed".into(),
                ));
            }
            Ok(Some(keys))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SortField {
    Id,
    UpdateTime,
    AddTime,
    DueDate,
}

impl SortField {
    fn name(self) -> &'static str {
        match self {
            SortField::Id => "id",
            SortField::UpdateTime => "update_time",
            SortField::AddTime => "add_time",
            SortField::DueDate => "due_date",
        }
    }
}

struct Paging {
    field: SortField,
    desc: bool,
    limit: usize,
    /// `(field value, id)` of the first item of the page.
    from: Option<(i64, i64)>,
}

fn paging(ctx: &Ctx<'_>, allowed: &[SortField]) -> Result<Paging, ApiErr> {
    let field = match ctx.q("sort_by").unwrap_or("id") {
        "id" => SortField::Id,
        "update_time" => SortField::UpdateTime,
        "add_time" => SortField::AddTime,
        "due_date" => SortField::DueDate,
        other => {
            return Err(ApiErr::BadRequest(format!(
                "Validation failed: sort_by: {other:?} is not allowed"
            )))
        }
    };
    if !allowed.contains(&field) {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: sort_by: {:?} is not allowed",
            field.name()
        )));
    }
    let desc = match ctx.q("sort_direction").unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        other => {
            return Err(ApiErr::BadRequest(format!(
                "Validation failed: sort_direction: {other:?} is not allowed"
            )))
        }
    };
    let limit = ctx.limit()?;
    let from = match ctx.q("cursor") {
        None | Some("") => None,
        Some(c) => Some(
            decode_cursor(c, field, desc)
                .ok_or_else(|| ApiErr::BadRequest("Invalid cursor".into()))?,
        ),
    };
    Ok(Paging {
        field,
        desc,
        limit,
        from,
    })
}

fn decode_cursor(c: &str, field: SortField, desc: bool) -> Option<(i64, i64)> {
    let raw = B64.decode(c.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    if v.get("field")?.as_str()? != field.name() {
        return None;
    }
    if v.get("sortDirection")?.as_str()? != if desc { "desc" } else { "asc" } {
        return None;
    }
    let id = v.get("id")?.as_i64()?;
    let fv = match v.get("fieldValue")? {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => parse_time(s).or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp())
        })?,
        Value::Null => i64::MIN,
        _ => return None,
    };
    Some((fv, id))
}

fn encode_cursor(field: SortField, desc: bool, key: i64, id: i64) -> String {
    let fv = match field {
        SortField::Id => json!(key),
        SortField::DueDate if key == i64::MIN => Value::Null,
        SortField::DueDate => json!(chrono::DateTime::<chrono::Utc>::from_timestamp(key, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string()),
        _ => json!(v2_time(key)),
    };
    let v = json!({"field": field.name(), "fieldValue": fv, "sortDirection": if desc { "desc" } else { "asc" }, "id": id});
    B64.encode(v.to_string())
}

fn encode_offset_cursor(offset: usize) -> String {
    B64.encode(json!({"offset": offset}).to_string())
}

fn decode_offset_cursor(c: Option<&str>) -> Result<usize, ApiErr> {
    match c {
        None | Some("") => Ok(0),
        Some(c) => B64
            .decode(c.trim_end_matches('='))
            .ok()
            .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
            .and_then(|v| v.get("offset").and_then(Value::as_u64))
            .map(|o| o as usize)
            .ok_or_else(|| ApiErr::BadRequest("Invalid cursor".into())),
    }
}

/// Pages `(key, id)` rows: sorts them and returns the page's ids and the next cursor.
fn page_rows(mut rows: Vec<(i64, i64)>, p: &Paging) -> (Vec<i64>, Option<String>) {
    if p.desc {
        rows.sort_unstable_by(|a, b| b.cmp(a));
    } else {
        rows.sort_unstable();
    }
    let start = match p.from {
        None => 0,
        Some(from) => rows.partition_point(|r| if p.desc { *r > from } else { *r < from }),
    };
    let page: Vec<(i64, i64)> = rows.iter().skip(start).take(p.limit + 1).copied().collect();
    let next = page
        .get(p.limit)
        .map(|(k, id)| encode_cursor(p.field, p.desc, *k, *id));
    (page.iter().take(p.limit).map(|r| r.1).collect(), next)
}

fn ids_filter(ctx: &Ctx<'_>) -> Result<Option<Vec<i64>>, ApiErr> {
    match ctx.q("ids") {
        None | Some("") => Ok(None),
        Some(s) => {
            let ids = s
                .split(',')
                .map(|x| x.trim().parse::<i64>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    ApiErr::BadRequest(
                        "Validation failed: ids: must be a comma separated list of integers".into(),
                    )
                })?;
            if ids.len() > 100 {
                return Err(ApiErr::BadRequest(
                    "Validation failed: ids: a maximum of 100 ids is allowed".into(),
                ));
            }
            Ok(Some(ids))
        }
    }
}

fn list_persons(ctx: &Ctx<'_>) -> Result<Vec<u8>, ApiErr> {
    let p = paging(
        ctx,
        &[SortField::Id, SortField::UpdateTime, SortField::AddTime],
    )?;
    let ids = ids_filter(ctx)?;
    let owner = ctx.q_int("owner_id")?;
    let org = ctx.q_int("org_id")?;
    let deal = ctx.q_int("deal_id")?;
    let since = ctx.q_time("updated_since")?;
    let until = ctx.q_time("updated_until")?;
    let only = custom_field_filter(ctx)?;
    let (people, keys, next) = with_company(ctx, |c, _| {
        let deal_person = deal.map(|d| c.deals.get(&d).and_then(|d| d.person_id));
        let keep = |x: &Person| {
            !x.is_deleted
                && ids.as_ref().is_none_or(|ids| ids.contains(&x.id))
                && owner.is_none_or(|o| x.owner_id == o)
                && org.is_none_or(|o| x.org_id == Some(o))
                && deal_person.is_none_or(|dp| dp == Some(x.id))
                && since.is_none_or(|s| x.update_time >= s)
                && until.is_none_or(|u| x.update_time < u)
        };
        let mut out: Vec<Arc<Person>> = Vec::with_capacity(p.limit.min(c.persons.len()));
        let mut next = None;
        if p.field == SortField::Id {
            // Fast path: walk the id-ordered map.
            let start = p.from.map(|f| f.1);
            let iter: Box<dyn Iterator<Item = (&i64, &Arc<Person>)>> = match (p.desc, start) {
                (false, Some(s)) => Box::new(c.persons.range(s..)),
                (false, None) => Box::new(c.persons.iter()),
                (true, Some(s)) => Box::new(c.persons.range(..=s).rev()),
                (true, None) => Box::new(c.persons.iter().rev()),
            };
            for (_, person) in iter.filter(|(_, x)| keep(x)) {
                if out.len() == p.limit {
                    next = Some(encode_cursor(p.field, p.desc, person.id, person.id));
                    break;
                }
                out.push(person.clone());
            }
        } else {
            let rows: Vec<(i64, i64)> = c
                .persons
                .values()
                .filter(|x| keep(x))
                .map(|x| {
                    (
                        if p.field == SortField::UpdateTime {
                            x.update_time
                        } else {
                            x.add_time
                        },
                        x.id,
                    )
                })
                .collect();
            let (ids, n) = page_rows(rows, &p);
            next = n;
            out.extend(ids.iter().filter_map(|id| c.persons.get(id).cloned()));
        }
        (out, c.person_field_keys.clone(), next)
    });
    let data: Vec<PersonV2<'_>> = people
        .iter()
        .map(|p| PersonV2 {
            p,
            keys: &keys,
            only: only.as_deref(),
        })
        .collect();
    let body = json_bytes(&ListBody {
        success: true,
        data,
        additional_data: NextCursor { next_cursor: next },
    });
    Ok(body)
}

#[derive(serde::Serialize)]
struct ListBody<T> {
    success: bool,
    data: T,
    additional_data: NextCursor,
}

#[derive(serde::Serialize)]
struct NextCursor {
    next_cursor: Option<String>,
}

#[derive(serde::Serialize)]
struct DataBody<T> {
    success: bool,
    data: T,
}

fn json_bytes(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn get_person(ctx: &Ctx<'_>) -> Result<Vec<u8>, ApiErr> {
    let id = ctx.path_id("person")?;
    let only = custom_field_filter(ctx)?;
    let (p, keys) = with_company(ctx, |c, _| {
        c.live_person(id)
            .cloned()
            .map(|p| (p, c.person_field_keys.clone()))
            .ok_or_else(|| ApiErr::NotFound("Person not found".into()))
    })?;
    Ok(json_bytes(&DataBody {
        success: true,
        data: PersonV2 {
            p: &p,
            keys: &keys,
            only: only.as_deref(),
        },
    }))
}

fn list_deals(ctx: &Ctx<'_>) -> HResult {
    let p = paging(
        ctx,
        &[SortField::Id, SortField::UpdateTime, SortField::AddTime],
    )?;
    let ids = ids_filter(ctx)?;
    let owner = ctx.q_int("owner_id")?;
    let person = ctx.q_int("person_id")?;
    let org = ctx.q_int("org_id")?;
    let pipeline = ctx.q_int("pipeline_id")?;
    let stage = ctx.q_int("stage_id")?;
    let status = ctx.q("status").map(str::to_owned);
    let since = ctx.q_time("updated_since")?;
    let until = ctx.q_time("updated_until")?;
    with_company(ctx, |c, _| {
        let rows: Vec<(i64, i64)> = c
            .deals
            .values()
            .filter(|d| {
                let st_ok = match status.as_deref() {
                    Some("deleted") => d.is_deleted,
                    Some(s) => !d.is_deleted && d.status == s,
                    None => !d.is_deleted,
                };
                st_ok
                    && !d.is_archived
                    && ids.as_ref().is_none_or(|ids| ids.contains(&d.id))
                    && owner.is_none_or(|o| d.owner_id == o)
                    && person.is_none_or(|x| d.person_id == Some(x))
                    && org.is_none_or(|x| d.org_id == Some(x))
                    && pipeline.is_none_or(|x| d.pipeline_id == x)
                    && stage.is_none_or(|x| d.stage_id == x)
                    && since.is_none_or(|s| d.update_time >= s)
                    && until.is_none_or(|u| d.update_time < u)
            })
            .map(|d| {
                (
                    match p.field {
                        SortField::UpdateTime => d.update_time,
                        SortField::AddTime => d.add_time,
                        _ => d.id,
                    },
                    d.id,
                )
            })
            .collect();
        let (ids, next) = page_rows(rows, &p);
        let data: Vec<Value> = ids
            .iter()
            .filter_map(|id| c.deals.get(id))
            .map(|d| d.v2_json())
            .collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

fn list_activities(ctx: &Ctx<'_>) -> HResult {
    let p = paging(
        ctx,
        &[
            SortField::Id,
            SortField::UpdateTime,
            SortField::AddTime,
            SortField::DueDate,
        ],
    )?;
    let ids = ids_filter(ctx)?;
    let owner = ctx.q_int("owner_id")?;
    let deal = ctx.q_int("deal_id")?;
    let person = ctx.q_int("person_id")?;
    let org = ctx.q_int("org_id")?;
    let lead = ctx.q("lead_id").map(str::to_owned);
    let done = ctx.q_bool("done")?;
    let since = ctx.q_time("updated_since")?;
    let until = ctx.q_time("updated_until")?;
    with_company(ctx, |c, _| {
        let due = |d: &Option<String>| {
            d.as_deref()
                .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().timestamp())
                .unwrap_or(i64::MIN)
        };
        let rows: Vec<(i64, i64)> = c
            .activities
            .values()
            .filter(|a| {
                !a.is_deleted
                    && ids.as_ref().is_none_or(|ids| ids.contains(&a.id))
                    && owner.is_none_or(|o| a.owner_id == o)
                    && deal.is_none_or(|x| a.deal_id == Some(x))
                    && person.is_none_or(|x| {
                        a.person_id == Some(x) || a.participants.iter().any(|p| p.0 == x)
                    })
                    && org.is_none_or(|x| a.org_id == Some(x))
                    && lead.as_ref().is_none_or(|x| a.lead_id.as_ref() == Some(x))
                    && done.is_none_or(|x| a.done == x)
                    && since.is_none_or(|s| a.update_time >= s)
                    && until.is_none_or(|u| a.update_time < u)
            })
            .map(|a| {
                (
                    match p.field {
                        SortField::UpdateTime => a.update_time,
                        SortField::AddTime => a.add_time,
                        SortField::DueDate => due(&a.due_date),
                        SortField::Id => a.id,
                    },
                    a.id,
                )
            })
            .collect();
        let (ids, next) = page_rows(rows, &p);
        let data: Vec<Value> = ids
            .iter()
            .filter_map(|id| c.activities.get(id))
            .map(|a| a.v2_json())
            .collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn search_persons(ctx: &Ctx<'_>) -> HResult {
    let term = ctx.q("term").unwrap_or("").trim().to_owned();
    let exact = ctx.q_bool("exact_match")?.unwrap_or(false);
    let min = if exact { 1 } else { 2 };
    if term.chars().count() < min {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: term: must be at least {min} characters long"
        )));
    }
    let fields: Vec<String> = match ctx.q("fields") {
        None | Some("") => vec![
            "custom_fields".into(),
            "email".into(),
            "notes".into(),
            "phone".into(),
            "name".into(),
        ],
        Some(s) => s.split(',').map(|f| f.trim().to_owned()).collect(),
    };
    for f in &fields {
        if !["custom_fields", "email", "notes", "phone", "name"].contains(&f.as_str()) {
            return Err(ApiErr::BadRequest(format!(
                "Validation failed: fields: {f:?} is not allowed"
            )));
        }
    }
    let org = ctx.q_int("organization_id")?;
    let limit = ctx.limit()?;
    let offset = decode_offset_cursor(ctx.q("cursor"))?;
    let lower = term.to_lowercase();
    let term_digits = digits(&term);
    let has = |f: &str| fields.iter().any(|x| x == f);
    let text_match = |v: &str| {
        let v = v.to_lowercase();
        if exact {
            v == lower
        } else {
            v.contains(&lower)
        }
    };
    with_company(ctx, |c, _| {
        let searchable: Vec<&FieldDef> = c
            .person_fields
            .iter()
            .filter(|f| {
                matches!(
                    f.field_type.as_str(),
                    "address"
                        | "varchar"
                        | "text"
                        | "varchar_auto"
                        | "double"
                        | "monetary"
                        | "phone"
                )
            })
            .collect();
        let score_of = |p: &Person| -> Option<(f64, Vec<String>)> {
            if p.is_deleted || org.is_some_and(|o| p.org_id != Some(o)) {
                return None;
            }
            let mut hit = false;
            let mut score: f64 = 0.0;
            let mut cf_hits = Vec::new();
            if has("name") && text_match(&p.name) {
                hit = true;
                score = score.max(if p.name.to_lowercase() == lower {
                    1.0
                } else {
                    0.6
                });
            }
            if has("email") && p.emails.iter().any(|e| text_match(&e.value)) {
                hit = true;
                score = score.max(
                    if p.emails.iter().any(|e| e.value.to_lowercase() == lower) {
                        1.0
                    } else {
                        0.6
                    },
                );
            }
            if has("phone")
                && !term_digits.is_empty()
                && p.phones.iter().any(|ph| {
                    let d = digits(&ph.value);
                    if exact {
                        d == term_digits
                    } else {
                        d.contains(&term_digits)
                    }
                })
            {
                hit = true;
                score = score.max(0.8);
            }
            if has("notes") && p.notes.as_deref().is_some_and(text_match) {
                hit = true;
                score = score.max(0.4);
            }
            if has("custom_fields") {
                for f in &searchable {
                    let text = match p.custom_fields.get(&f.key) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Object(o)) => o
                            .get("value")
                            .map(|v| {
                                v.as_str()
                                    .map(str::to_owned)
                                    .unwrap_or_else(|| v.to_string())
                            })
                            .unwrap_or_default(),
                        _ => continue,
                    };
                    if text_match(&text) {
                        hit = true;
                        score = score.max(0.5);
                        cf_hits.push(text);
                    }
                }
            }
            hit.then_some((score, cf_hits))
        };
        let mut found: Vec<(f64, &Person, Vec<String>)> = Vec::new();
        if exact && fields.len() == 1 && has("email") {
            // Index lookup: the common "find by e-mail" query.
            if let Some(ids) = c.email_index.get(&lower) {
                for id in ids {
                    if let Some(p) = c.live_person(*id) {
                        if org.is_none_or(|o| p.org_id == Some(o)) {
                            found.push((1.0, p, Vec::new()));
                        }
                    }
                }
            }
        } else {
            for p in c.persons.values() {
                if let Some((s, cf)) = score_of(p) {
                    found.push((s, p, cf));
                }
            }
        }
        found.sort_by(|a, b| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.id.cmp(&b.1.id))
        });
        let total = found.len();
        let items: Vec<Value> = found
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(score, p, cf)| {
                let mut item = json!({
                    "id": p.id, "type": "person", "name": p.name,
                    "phones": p.phones.iter().map(|x| x.value.clone()).collect::<Vec<_>>(),
                    "emails": p.emails.iter().map(|x| x.value.clone()).collect::<Vec<_>>(),
                    "visible_to": p.visible_to, "owner": {"id": p.owner_id},
                    "custom_fields": cf, "notes": Vec::<String>::new(),
                });
                if let Some(o) = p.org_id {
                    item["organization"] = json!({"id": o, "name": format!("Organization {o}")});
                }
                json!({"result_score": score, "item": item})
            })
            .collect();
        let next = (offset + limit < total).then(|| encode_offset_cursor(offset + limit));
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": {"items": items}, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

fn recents(ctx: &Ctx<'_>) -> HResult {
    let since_raw = ctx
        .q("since_timestamp")
        .ok_or_else(|| ApiErr::BadRequest("since_timestamp is required".into()))?
        .to_owned();
    let since = parse_time(&since_raw).ok_or_else(|| {
        ApiErr::BadRequest(
            "Validation failed: since_timestamp: must be in format YYYY-MM-DD HH:MM:SS".into(),
        )
    })?;
    let items: Vec<String> = match ctx.q("items") {
        None | Some("") => vec!["activity".into(), "deal".into(), "person".into()],
        Some(s) => s.split(',').map(|x| x.trim().to_owned()).collect(),
    };
    let start = ctx.q_int("start")?.unwrap_or(0).max(0) as usize;
    let limit = ctx.limit()?;
    with_company(ctx, |c, _| {
        let mut rows: Vec<(i64, &'static str, i64)> = Vec::new();
        if items.iter().any(|i| i == "person") {
            rows.extend(
                c.persons
                    .values()
                    .filter(|p| p.update_time >= since)
                    .map(|p| (p.update_time, "person", p.id)),
            );
        }
        if items.iter().any(|i| i == "deal") {
            rows.extend(
                c.deals
                    .values()
                    .filter(|d| d.update_time >= since)
                    .map(|d| (d.update_time, "deal", d.id)),
            );
        }
        if items.iter().any(|i| i == "activity") {
            rows.extend(
                c.activities
                    .values()
                    .filter(|a| a.update_time >= since)
                    .map(|a| (a.update_time, "activity", a.id)),
            );
        }
        rows.sort_unstable();
        let total = rows.len();
        let page: Vec<&(i64, &str, i64)> = rows.iter().skip(start).take(limit).collect();
        let data: Vec<Value> = page
            .iter()
            .filter_map(|(_, kind, id)| {
                let data = match *kind {
                    "person" => c
                        .persons
                        .get(id)
                        .map(|p| p.v1_json(c.id, &c.user_name(p.owner_id), &c.person_fields))?,
                    "deal" => c.deals.get(id).map(deal_v1)?,
                    _ => c.activities.get(id).map(|a| activity_v1(a, c.id))?,
                };
                Some(json!({"item": kind, "id": id, "data": data}))
            })
            .collect();
        let more = start + limit < total;
        let mut pagination =
            json!({"start": start, "limit": limit, "more_items_in_collection": more});
        if more {
            pagination["next_start"] = json!(start + limit);
        }
        let last = page
            .last()
            .map(|r| v1_time(r.0))
            .unwrap_or_else(|| v1_time(since));
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"since_timestamp": v1_time(since), "last_timestamp_on_page": last, "pagination": pagination}}),
            vec![],
        ))
    })
}

fn deal_v1(d: &crate::model::Deal) -> Value {
    let mut v = json!({
        "id": d.id, "creator_user_id": d.creator_user_id, "user_id": d.owner_id, "title": d.title,
        "stage_id": d.stage_id, "pipeline_id": d.pipeline_id, "value": d.value, "currency": d.currency,
        "add_time": v1_time(d.add_time), "update_time": v1_time(d.update_time),
        "active": d.status == "open" && !d.is_deleted, "deleted": d.is_deleted, "is_archived": d.is_archived,
        "status": d.status, "probability": d.probability, "lost_reason": d.lost_reason,
        "visible_to": d.visible_to.to_string(), "close_time": d.close_time.map(v1_time),
    });
    if let Some(p) = d.person_id {
        v["person_id"] = json!(p);
    }
    if let Some(o) = d.org_id {
        v["org_id"] = json!(o);
    }
    v
}

fn activity_v1(a: &crate::model::Activity, company: i64) -> Value {
    let mut v = json!({
        "id": a.id, "subject": a.subject, "type": a.kind, "user_id": a.owner_id, "done": a.done,
        "busy_flag": a.busy, "company_id": company, "add_time": v1_time(a.add_time),
        "update_time": v1_time(a.update_time), "active_flag": !a.is_deleted,
        "participants": a.participants.iter().map(|(id, primary)| json!({"person_id": id, "primary_flag": primary})).collect::<Vec<_>>(),
        "created_by_user_id": a.creator_user_id,
    });
    for (k, val) in [
        ("person_id", a.person_id),
        ("deal_id", a.deal_id),
        ("org_id", a.org_id),
    ] {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    }
    for (k, val) in [
        ("due_date", &a.due_date),
        ("due_time", &a.due_time),
        ("duration", &a.duration),
        ("note", &a.note),
    ] {
        if let Some(x) = val {
            v[k] = json!(x);
        }
    }
    v
}

fn webhook_error(field: &str, msg: &str) -> ApiErr {
    ApiErr::Raw(
        StatusCode::BAD_REQUEST,
        json!({"status": "error", "success": false, "errors": {field: [msg]}}),
    )
}

fn add_webhook(ctx: &Ctx<'_>) -> HResult {
    let body = ctx.json_or_form_body()?;
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let url =
        s("subscription_url").ok_or_else(|| webhook_error("subscription_url", "is required"))?;
    match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => {
            return Err(webhook_error(
                "subscription_url",
                "invalid or non-reachable URL",
            ))
        }
    }
    let action = s("event_action").ok_or_else(|| webhook_error("event_action", "is required"))?;
    if !["create", "change", "delete", "*"].contains(&action.as_str()) {
        return Err(webhook_error(
            "event_action",
            "must be one of create, change, delete, *",
        ));
    }
    let object = s("event_object").ok_or_else(|| webhook_error("event_object", "is required"))?;
    const OBJECTS: &[&str] = &[
        "activity",
        "deal",
        "lead",
        "note",
        "organization",
        "person",
        "pipeline",
        "product",
        "stage",
        "user",
        "*",
    ];
    if !OBJECTS.contains(&object.as_str()) {
        return Err(webhook_error("event_object", "is not a valid object"));
    }
    let name = s("name").ok_or_else(|| webhook_error("name", "is required"))?;
    if name.chars().count() > 255 {
        return Err(webhook_error("name", "must be at most 255 characters"));
    }
    let version = s("version").unwrap_or_else(|| "2.0".into());
    if !["1.0", "2.0"].contains(&version.as_str()) {
        return Err(webhook_error("version", "must be 1.0 or 2.0"));
    }
    let user_id = match body.get("user_id") {
        None | Some(Value::Null) => ctx.caller.user_id,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(ctx.caller.user_id),
        Some(Value::String(t)) => t
            .parse()
            .map_err(|_| webhook_error("user_id", "must be an integer"))?,
        Some(_) => return Err(webhook_error("user_id", "must be an integer")),
    };
    let owner = ctx.caller.user_id;
    let kind = if ctx.caller.oauth {
        "application"
    } else {
        "general"
    };
    let now = ctx.now;
    with_company(ctx, |c, st| {
        if c.webhooks.values().filter(|w| w.owner_id == owner).count() >= 40 {
            return Err(ApiErr::Unprocessable(
                "You have reached the limit of 40 webhooks per user".into(),
            ));
        }
        st.next_webhook_id += 1;
        let w = crate::state::Webhook {
            id: st.next_webhook_id,
            company_id: c.id,
            owner_id: owner,
            user_id,
            event_action: action,
            event_object: object,
            subscription_url: url,
            version,
            add_time: now,
            kind,
            http_auth_user: s("http_auth_user"),
            http_auth_password: s("http_auth_password"),
            name,
            ban_counter: 0,
            banned_until: None,
            last_delivery_time: None,
            last_http_status: None,
        };
        let json = w.v1_json(Instant::now());
        c.webhooks.insert(w.id, w);
        Ok((
            StatusCode::CREATED,
            json!({"status": "ok", "success": true, "data": json}),
            vec![],
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// OAuth

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

fn oauth(
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
