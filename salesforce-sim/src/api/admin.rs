//! The test hooks over HTTP, under `/__sim` on the instance listener (never under
//! `/services`, so no Salesforce client reaches them by accident). Every route calls the
//! same hook as the matching `SfSimHandle` method. `{org}` is `production` or `sandbox`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::response::{json_response, Answer};
use crate::error::SfSimError;
use crate::faults::FaultSpec;
use crate::hooks::{DuplicateRule, Hooks, OrgKind};
use crate::ops::Params;
use crate::shared::Shared;
use crate::state::Permissions;

fn err(e: SfSimError) -> Response {
    let status = match e {
        SfSimError::NotFound(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    json_response(status, &json!({"error": e.to_string()}))
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// Serves `/__sim/...`.
pub(super) fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    params: &Params,
    _query: &HashMap<String, String>,
    body: &Bytes,
) -> Response {
    let h = Hooks(shared);
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => return err(SfSimError::Invalid(e.to_string())),
        }
    };
    let segs: Vec<&str> = params.rest.iter().map(String::as_str).collect();
    let m = method.as_str();
    let done = || Answer::no_content().into_response();
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    let result: Result<Response, SfSimError> = (|| {
        Ok(match (m, segs.as_slice()) {
            ("GET", ["calls", op]) => ok(json!({"calls": h.calls(op)})),
            ("PUT", ["faults"]) => {
                h.set_faults(FaultSpec::parse(s(&b, "spec").unwrap_or(""))?);
                done()
            }
            ("POST", ["clock"]) => {
                if let Some(secs) = b.get("advanceSeconds").and_then(Value::as_u64) {
                    h.advance_clock(Duration::from_secs(secs));
                }
                if let Some(f) = b.get("freeze").and_then(Value::as_bool) {
                    h.freeze_clock(f);
                }
                ok(json!({"now": crate::state::iso(shared.now_ms())}))
            }
            ("POST", ["sessions", "expire"]) => {
                h.expire_sessions(s(&b, "token"));
                done()
            }
            ("POST", ["sessions", "rotate"]) => {
                let token = s(&b, "token").unwrap_or("");
                let new = h
                    .rotate_session(token)
                    .ok_or_else(|| SfSimError::NotFound("session".into()))?;
                ok(json!({"access_token": new}))
            }
            (_, [org, rest @ ..]) => {
                let org = OrgKind::parse(org)
                    .ok_or_else(|| SfSimError::NotFound(format!("org {org}")))?;
                org_route(&h, org, m, rest, &b)?
            }
            _ => return Err(SfSimError::NotFound("admin route".into())),
        })
    })();
    result.unwrap_or_else(err)
}

fn org_route(
    h: &Hooks<'_>,
    org: OrgKind,
    m: &str,
    rest: &[&str],
    b: &Value,
) -> Result<Response, SfSimError> {
    let done = || Answer::no_content().into_response();
    let ok = |v: Value| json_response(StatusCode::OK, &v);
    Ok(match (m, rest) {
        ("POST", ["sessions"]) => ok(h.issue_session(org, s(b, "user"), true)?),
        ("POST", ["records", t]) => ok(json!({"id": h.insert(org, t, b.clone())?})),
        ("GET", ["records", t, id]) => ok(h
            .record(org, t, id)
            .ok_or_else(|| SfSimError::NotFound(format!("{t} {id}")))?),
        ("PATCH", ["records", t, id]) => {
            h.update(org, t, id, b.clone(), None)?;
            done()
        }
        ("DELETE", ["records", t, id]) => {
            h.delete(org, t, id)?;
            done()
        }
        ("POST", ["leads", id, "convert"]) => {
            let (a, c) = h.convert_lead(org, id, s(b, "accountId"), s(b, "contactId"))?;
            ok(json!({"accountId": a, "contactId": c}))
        }
        ("POST", ["merge"]) => {
            let losers: Vec<String> = b
                .get("losers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            h.merge(
                org,
                s(b, "type").unwrap_or(""),
                s(b, "masterId").unwrap_or(""),
                &losers,
            )?;
            done()
        }
        ("POST", ["tokens", "revoke"]) => {
            h.revoke_tokens(org, s(b, "userId"));
            done()
        }
        ("PUT", ["validation-rules"]) => {
            h.set_validation_rule(
                org,
                s(b, "object").unwrap_or(""),
                s(b, "name").unwrap_or("Rule"),
                s(b, "condition").unwrap_or(""),
                s(b, "message").unwrap_or(""),
                s(b, "field"),
            )?;
            done()
        }
        ("DELETE", ["validation-rules"]) => {
            h.clear_validation_rules(org);
            done()
        }
        ("PUT", ["duplicate-rules", t]) => {
            let rule = match s(b, "mode") {
                Some("block") => DuplicateRule::Block,
                Some("alert") => DuplicateRule::Alert,
                Some("off") => DuplicateRule::Off,
                _ => return Err(SfSimError::Invalid("mode: block, alert or off".into())),
            };
            h.set_duplicate_rule(org, t, rule)?;
            done()
        }
        ("PUT", ["users", user, "permissions"]) => {
            let f = |k: &str| b.get(k).and_then(Value::as_bool).unwrap_or(false);
            h.set_user_permissions(
                org,
                user,
                Permissions {
                    api_enabled: f("apiEnabled"),
                    modify_all_data: f("modifyAllData"),
                    view_all_data: f("viewAllData"),
                    customize_application: f("customizeApplication"),
                },
            )?;
            done()
        }
        ("PUT", ["limits"]) => {
            if let Some(n) = b.get("dailyApiRequests").and_then(Value::as_u64) {
                h.set_daily_api_requests(org, n);
            }
            if b.get("resetUsage").and_then(Value::as_bool) == Some(true) {
                h.reset_api_usage(org);
            }
            let (used, max) = h.api_usage(org);
            ok(json!({"used": used, "max": max}))
        }
        ("PUT", ["api-enabled"]) => {
            h.set_api_enabled_for_org(
                org,
                b.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            );
            done()
        }
        ("POST", ["seed"]) => {
            let n = |k: &str| b.get(k).and_then(Value::as_u64).unwrap_or(0) as usize;
            h.seed(org, n("leads"), n("contacts"), n("accounts"));
            done()
        }
        _ => return Err(SfSimError::NotFound("admin route".into())),
    })
}
