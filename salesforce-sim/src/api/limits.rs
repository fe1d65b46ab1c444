//! `/limits` (DailyApiRequests and a few others), the versions list `/services/data`, and the
//! resources of one version `/services/data/vNN.0`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::request::Ctx;
use super::response::{json_response, Answer, HResult};
use crate::ops::{MAX_VERSION, MIN_VERSION};
use crate::shared::Shared;

pub(super) fn versions(shared: &Arc<Shared>) -> Response {
    let list: Vec<Value> = (MIN_VERSION..=MAX_VERSION)
        .map(|v| json!({"label": format!("Release {v}"), "url": format!("/services/data/v{v}.0"), "version": format!("{v}.0")}))
        .collect();
    let _ = shared;
    json_response(StatusCode::OK, &json!(list))
}

pub(super) fn resources(ctx: &Ctx<'_>) -> HResult {
    let base = ctx.base();
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let identity = format!(
        "{}/id/{}/{}",
        ctx.shared.login_url(ctx.org),
        org.org_id,
        ctx.actor.perms.user_id
    );
    Ok(Answer::ok(json!({
        "identity": identity,
        "limits": format!("{base}/limits"),
        "query": format!("{base}/query"),
        "queryAll": format!("{base}/queryAll"),
        "sobjects": format!("{base}/sobjects"),
        "composite": format!("{base}/composite"),
        "tooling": format!("{base}/tooling"),
    })))
}

pub(super) fn limits(ctx: &Ctx<'_>) -> HResult {
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    let used = org.api.used(ctx.now_ms);
    let max = org.api.max;
    let fixed = |m: u64| json!({"Max": m, "Remaining": m});
    Ok(Answer::ok(json!({
        "DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)},
        "ConcurrentAsyncGetReportInstances": fixed(200),
        "DailyBulkApiBatches": fixed(15000),
        "DailyBulkV2QueryJobs": fixed(10000),
        "DataStorageMB": fixed(1024),
        "FileStorageMB": fixed(2048),
        "HourlyPublishedPlatformEvents": fixed(250000),
    })))
}
