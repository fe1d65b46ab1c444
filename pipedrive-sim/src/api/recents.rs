//! `v1.getRecents`: every documented item type changed since a time (deleted ones too), in v1
//! JSON, with v1 `start`/`limit` pagination. The reference data (`activityType`, `filter`,
//! `pipeline`, `stage`, `user`) was made with the company and never changes here, so it is
//! listed for a `since_timestamp` at or before the company's creation.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::request::{with_company, Ctx};
use super::response::{ApiErr, HResult};
use super::v1_objects::{self as v1, Related};
use super::{reference, users};
use crate::model::{parse_time, v1_time};

/// `v1.getRecents`.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
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
    let caller = ctx.caller.user_id;
    let base = ctx.shared.base_url.clone();
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
        let wants = |kind: &str| items.iter().any(|i| i == kind);
        if wants("organization") {
            rows.extend(
                c.organizations
                    .values()
                    .filter(|o| o.update_time >= since)
                    .map(|o| (o.update_time, "organization", o.id)),
            );
        }
        if wants("product") {
            rows.extend(
                c.products
                    .values()
                    .filter(|p| p.update_time >= since)
                    .map(|p| (p.update_time, "product", p.id)),
            );
        }
        if wants("note") {
            rows.extend(
                c.notes
                    .values()
                    .filter(|n| n.update_time >= since)
                    .map(|n| (n.update_time, "note", n.id)),
            );
        }
        if wants("file") {
            rows.extend(
                c.files
                    .values()
                    .filter(|f| f.update_time >= since)
                    .map(|f| (f.update_time, "file", f.id)),
            );
        }
        if c.created >= since {
            let mut reference = |kind: &'static str, ids: &mut dyn Iterator<Item = i64>| {
                if wants(kind) {
                    rows.extend(ids.map(|id| (c.created, kind, id)));
                }
            };
            reference("activityType", &mut reference::activity_type_ids());
            reference("filter", &mut reference::filter_ids());
            reference("pipeline", &mut c.pipelines.iter().map(|p| p.0));
            reference("stage", &mut c.stages.iter().map(|s| s.id));
            reference("user", &mut c.users.iter().map(|u| u.id));
        }
        rows.sort_unstable();
        let total = rows.len();
        let mut rel = Related::default();
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
                    "organization" => c
                        .organizations
                        .get(id)
                        .map(|o| v1::organization(c, o, &mut rel))?,
                    "product" => c.products.get(id).map(|p| v1::product(c, p, &mut rel))?,
                    "note" => c.notes.get(id).map(|n| c.note_json(n, caller))?,
                    "file" => c.files.get(id).map(|f| c.file_json(f, &base))?,
                    "activityType" => reference::activity_type(c, *id)?,
                    "filter" => reference::filter(c, *id, caller)?,
                    "pipeline" => v1::pipeline(c, *id),
                    // `rotten_days` is a non-nullable integer here: left out while unset.
                    "stage" => c.stages.iter().find(|s| s.id == *id).map(|s| {
                        let mut v = v1::stage(c, s);
                        if let Some(m) = v.as_object_mut() {
                            m.retain(|_, v| !v.is_null());
                        }
                        v
                    })?,
                    "user" => c
                        .users
                        .iter()
                        .find(|u| u.id == *id)
                        .map(|u| users::user_json(u, caller, c.created))?,
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
