//! Composite (`POST /services/data/vXX.X/composite`): up to 25 subrequests executed in order
//! through the same handlers as the REST calls they name, in one API call (the org's daily
//! allocation is charged once, by the dispatch; the subrequests are counted apart, in
//! `Counters::subrequests`). As Salesforce documents it:
//!
//! - the body is `{allOrNone?, collateSubrequests?, compositeRequest: [{method, url,
//!   referenceId, body?, httpHeaders?}]}`; the answer is HTTP 200 with `{compositeResponse:
//!   [{body, httpHeaders, httpStatusCode, referenceId}]}` in request order, whatever the
//!   subrequests' outcomes;
//! - subrequests may name sObject resources, Query/QueryAll (and their next batches) and sObject
//!   Collections (API 43.0+); at most 5 of them may be collections or queries;
//! - `Accept`, `Authorization` and `Content-Type` may not be set on a subrequest (the whole call
//!   is a 400);
//! - `@{referenceId.field}` and `@{referenceId[0].field}` in a later subrequest's url or body
//!   read an earlier subrequest's answer; a reference that finds no value (unknown or failed
//!   subrequest, missing field) fails that subrequest with `PROCESSING_HALTED`, and with
//!   `allOrNone=false` the subrequests that do not depend on a failure still run;
//! - with `allOrNone=true` a failure rolls every subrequest back and the others answer 400
//!   `PROCESSING_HALTED`.
//!
//! Subrequests run in the order sent (what `collateSubrequests=false` asks; collation is an
//! optimisation Salesforce may apply to unrelated subrequests, so order is the faithful
//! reading of both).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::{json, Map, Value};

use super::dispatch::{handle, lock_error};
use super::request::{parse_query, Ctx};
use super::response::{Answer, ApiErr, HResult};
use crate::ops::{route, Op, Route};

/// Subrequests per Composite call.
const MAX_SUBREQUESTS: usize = 25;
/// Of those, sObject Collections and query operations.
const MAX_COLLECTIONS_OR_QUERIES: usize = 5;

/// Headers a subrequest inherits from the Composite call and may not set.
const INHERITED: [&str; 3] = ["accept", "authorization", "content-type"];

fn invalid(message: impl Into<String>) -> ApiErr {
    ApiErr::new(400, "INVALID_INPUT", message)
}

fn halted(message: impl Into<String>) -> (u16, Value) {
    (
        400,
        json!([{"errorCode": "PROCESSING_HALTED", "message": message.into()}]),
    )
}

fn rolled_back() -> (u16, Value) {
    halted(
        "The transaction was rolled back since another operation in the same transaction failed.",
    )
}

/// One subrequest as sent.
struct Sub {
    method: Method,
    url: String,
    reference_id: String,
    body: Option<Value>,
    headers: Map<String, Value>,
}

fn parse(body: &Map<String, Value>) -> Result<Vec<Sub>, ApiErr> {
    let Some(list) = body.get("compositeRequest").and_then(Value::as_array) else {
        return Err(ApiErr::bad_json(
            "No compositeRequest was specified in the request.",
        ));
    };
    if list.is_empty() {
        return Err(invalid(
            "The compositeRequest must contain at least one subrequest.",
        ));
    }
    if list.len() > MAX_SUBREQUESTS {
        return Err(ApiErr::new(
            400,
            "LIMIT_EXCEEDED",
            format!(
                "Limit Exceeded. A composite request can contain at most {MAX_SUBREQUESTS} subrequests; {} were sent.",
                list.len()
            ),
        ));
    }
    let mut subs = Vec::with_capacity(list.len());
    let mut seen: Vec<String> = Vec::new();
    for item in list {
        let Some(o) = item.as_object() else {
            return Err(ApiErr::bad_json("Each subrequest must be a JSON object."));
        };
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        let method = match text("method").as_deref() {
            Some(m @ ("GET" | "POST" | "PATCH" | "PUT" | "DELETE")) => {
                Method::from_bytes(m.as_bytes()).unwrap_or(Method::GET)
            }
            other => {
                return Err(invalid(format!(
                    "Invalid method {:?}: use GET, POST, PUT, PATCH or DELETE (case-sensitive).",
                    other.unwrap_or("")
                )))
            }
        };
        let Some(url) = text("url") else {
            return Err(invalid("Each subrequest needs a url."));
        };
        let Some(reference_id) = text("referenceId") else {
            return Err(invalid("Each subrequest needs a referenceId."));
        };
        if seen.contains(&reference_id) {
            return Err(invalid(format!(
                "Duplicate referenceId provided in the request: {reference_id}"
            )));
        }
        seen.push(reference_id.clone());
        let headers = o
            .get("httpHeaders")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(h) = headers
            .keys()
            .find(|k| INHERITED.contains(&k.to_ascii_lowercase().as_str()))
        {
            return Err(invalid(format!(
                "The {h} header is inherited from the composite request and may not be set on a subrequest."
            )));
        }
        subs.push(Sub {
            method,
            url,
            reference_id,
            body: o.get("body").cloned(),
            headers,
        });
    }
    Ok(subs)
}

fn valid_reference_id(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The operations a subrequest may name, and whether it is a collection or a query (at most
/// five of those per call).
fn allowed(op: Op) -> Option<bool> {
    match op {
        Op::SObjectBasic
        | Op::Describe
        | Op::Create
        | Op::Get
        | Op::Update
        | Op::Delete
        | Op::GetByExternalId
        | Op::Upsert
        | Op::Updated
        | Op::Deleted => Some(false),
        Op::Query
        | Op::QueryAll
        | Op::QueryMore
        | Op::CompositeCreate
        | Op::CompositeUpdate
        | Op::CompositeDelete
        | Op::CompositeRetrieve
        | Op::CompositeUpsert => Some(true),
        _ => None,
    }
}

/// The value `expr` (`ref.field`, `ref[0].field`, …) names in the answers so far.
fn lookup<'a>(expr: &str, done: &'a HashMap<String, (u16, Value)>) -> Option<&'a Value> {
    let end = expr.find(['.', '[']).unwrap_or(expr.len());
    let (status, mut value) = done.get(&expr[..end]).map(|(s, v)| (*s, v))?;
    if !(200..300).contains(&status) {
        return None;
    }
    let mut rest = &expr[end..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            value = value.get(&r[..end])?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']')?;
            let index: usize = r[..close].trim().parse().ok()?;
            value = value.get(index)?;
            rest = &r[close + 1..];
        } else {
            return None;
        }
    }
    (!value.is_null()).then_some(value)
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `text` with every `@{…}` replaced; `Err(expr)` names the first that finds no value.
fn substitute(text: &str, done: &HashMap<String, (u16, Value)>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let expr = &after[..close];
        let value = lookup(expr, done).ok_or_else(|| expr.to_owned())?;
        out.push_str(&as_text(value));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The body with its references resolved; a string that is exactly one reference takes the
/// referenced value as it is (a number stays a number).
fn resolve(body: &Value, done: &HashMap<String, (u16, Value)>) -> Result<Value, String> {
    Ok(match body {
        Value::String(s) if s.contains("@{") => {
            let whole = s
                .strip_prefix("@{")
                .and_then(|r| r.strip_suffix('}'))
                .filter(|e| !e.contains('}'));
            match whole {
                Some(expr) => lookup(expr, done).cloned().ok_or_else(|| expr.to_owned())?,
                None => Value::String(substitute(s, done)?),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| resolve(v, done))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), resolve(v, done)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// Runs one subrequest: (status, body, response headers).
fn run_one(
    ctx: &Ctx<'_>,
    sub: &Sub,
    done: &HashMap<String, (u16, Value)>,
    lock_fault: bool,
) -> (u16, Value, Map<String, Value>) {
    let mut answer_headers = Map::new();
    let no_headers = |(s, v): (u16, Value)| (s, v, Map::new());
    if !valid_reference_id(&sub.reference_id) {
        return no_headers((
            400,
            json!([{"errorCode": "INVALID_INPUT", "message": format!(
                "Provided referenceId ('{}') must start with a letter or a number, and it can contain only letters, numbers and underscores ('_').",
                sub.reference_id
            )}]),
        ));
    }
    let url = match substitute(&sub.url, done) {
        Ok(u) => u,
        Err(expr) => {
            return no_headers(halted(format!(
                "Invalid reference specified. No value for {expr} found in {}.",
                expr.split(['.', '[']).next().unwrap_or(&expr)
            )))
        }
    };
    let body = match sub.body.as_ref().map(|b| resolve(b, done)).transpose() {
        Ok(b) => b,
        Err(expr) => {
            return no_headers(halted(format!(
                "Invalid reference specified. No value for {expr} found in {}.",
                expr.split(['.', '[']).next().unwrap_or(&expr)
            )))
        }
    };
    let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let (op, params) = match route(&sub.method, path, false) {
        Route::Op(op, params) if allowed(op).is_some() => (op, params),
        Route::MethodNotAllowed(allowed) => {
            return no_headers((
                405,
                json!([{"errorCode": "METHOD_NOT_ALLOWED", "message": format!(
                    "HTTP Method '{}' not allowed. Allowed are {allowed}", sub.method
                )}]),
            ))
        }
        _ => {
            let e = ApiErr::not_found();
            return no_headers((e.status.as_u16(), e.body));
        }
    };
    *ctx.shared
        .state
        .lock()
        .counters
        .subrequests
        .entry(op.name())
        .or_default() += 1;
    let mut headers: HeaderMap = ctx.headers.clone();
    for (k, v) in &sub.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&as_text(v)),
        ) {
            headers.insert(name, value);
        }
    }
    let sub_ctx = Ctx {
        shared: ctx.shared,
        org: ctx.org,
        actor: ctx.actor.clone(),
        params,
        query: parse_query(Some(query)),
        headers: &headers,
        body: body
            .map(|b| Bytes::from(serde_json::to_vec(&b).unwrap_or_default()))
            .unwrap_or_default(),
        now_ms: ctx.now_ms,
    };
    let result: HResult = if lock_fault && op.writes() {
        Err(lock_error(&sub_ctx))
    } else {
        handle(&sub_ctx, op, &sub.method)
    };
    match result {
        Ok(a) => {
            let status = a.status.as_u16();
            let body = a.body.unwrap_or(Value::Null);
            if op == Op::Create && status == 201 {
                if let Some(id) = body.get("id").and_then(Value::as_str) {
                    answer_headers.insert(
                        "Location".into(),
                        Value::from(format!("{path}/{id}").replace("//", "/")),
                    );
                }
            }
            (status, body, answer_headers)
        }
        Err(e) => (e.status.as_u16(), e.body, answer_headers),
    }
}

/// `POST /composite`.
pub(super) fn call(ctx: &Ctx<'_>, lock_fault: bool) -> HResult {
    let body = ctx.object()?;
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let subs = parse(&body)?;
    let heavy = subs
        .iter()
        .filter(|s| {
            let path = s.url.split_once('?').map_or(s.url.as_str(), |(p, _)| p);
            matches!(route(&s.method, path, false), Route::Op(op, _) if allowed(op) == Some(true))
        })
        .count();
    if heavy > MAX_COLLECTIONS_OR_QUERIES {
        return Err(ApiErr::new(
            400,
            "LIMIT_EXCEEDED",
            format!("Limit Exceeded. A composite request can contain at most {MAX_COLLECTIONS_OR_QUERIES} sObject Collections or query subrequests; {heavy} were sent."),
        ));
    }
    // allOrNone: the org as it was, to put back when a subrequest fails.
    let before = all_or_none.then(|| ctx.shared.state.lock().orgs[ctx.org].clone());
    let mut done: HashMap<String, (u16, Value)> = HashMap::new();
    let mut answers: Vec<(u16, Value, Map<String, Value>)> = Vec::with_capacity(subs.len());
    let mut failed_at = None;
    for (i, sub) in subs.iter().enumerate() {
        if all_or_none && failed_at.is_some() {
            let (s, v) = rolled_back();
            answers.push((s, v, Map::new()));
            continue;
        }
        let (status, body, headers) = run_one(ctx, sub, &done, lock_fault);
        if status >= 400 && failed_at.is_none() {
            failed_at = Some(i);
        }
        done.insert(sub.reference_id.clone(), (status, body.clone()));
        answers.push((status, body, headers));
    }
    if let (Some(failed), Some(org)) = (failed_at, before) {
        ctx.shared.state.lock().orgs[ctx.org] = org;
        for (i, a) in answers.iter_mut().enumerate() {
            if i != failed {
                let (s, v) = rolled_back();
                *a = (s, v, Map::new());
            }
        }
    }
    let out: Vec<Value> = subs
        .iter()
        .zip(answers)
        .map(|(sub, (status, body, headers))| {
            json!({
                "body": body,
                "httpHeaders": headers,
                "httpStatusCode": status,
                "referenceId": sub.reference_id,
            })
        })
        .collect();
    Ok(Answer::ok(json!({ "compositeResponse": out })))
}
