//! The legacy v1 reads Pipedrive put out of support on 2026-08-01, served only with
//! `--legacy-v1` ([`crate::SimConfig::legacy_v1`]) for extractors that still call them, as the
//! January 2026 v1 document (`v1-2026-01-14/v1.yaml`) describes them: `v1.getDeals`,
//! `v1.getDeal`, `v1.getPersons`, `v1.getPerson`, `v1.getOrganizations`,
//! `v1.getOrganization`, `v1.getActivities`, `v1.getActivity`, `v1.getProducts`,
//! `v1.getProduct`, `v1.getDealProducts` and `v1.getDealUpdates`.
//!
//! Lists page with `start`/`limit` (at most 500, 100 by default) and answer
//! `additional_data.pagination` and `related_objects`; deleted records are left out (deals:
//! unless `status=deleted`). `filter_id` is not supported (400). The simulator attaches no
//! products to deals and keeps no change log: a deal's products are an empty list and its
//! updates are the deal's creation only.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{v1_page, v1_sort, SortField};
use super::request::{with_company, Ctx};
use super::response::{ApiErr, HResult};
use super::v1_objects::{self as v1, Related};
use crate::model::v1_time;

fn start(ctx: &Ctx<'_>) -> Result<usize, ApiErr> {
    Ok(ctx.q_int("start")?.unwrap_or(0).max(0) as usize)
}

fn no_filters(ctx: &Ctx<'_>) -> Result<(), ApiErr> {
    match ctx.q("filter_id") {
        None | Some("") => Ok(()),
        Some(_) => Err(ApiErr::BadRequest(
            "filter_id is not supported by the simulator".into(),
        )),
    }
}

fn page(data: Vec<Value>, pagination: Value, related: Value) -> Value {
    json!({
        "success": true,
        "data": data,
        "additional_data": {"pagination": pagination},
        "related_objects": related,
    })
}

fn one(data: Value, related: Value) -> Value {
    json!({"success": true, "data": data, "related_objects": related})
}

const SORTS: &[SortField] = &[SortField::Id, SortField::UpdateTime, SortField::AddTime];

/// Sorts `(key, id)` rows: by the sort field, then by id.
fn sorted(mut rows: Vec<(i64, i64)>, desc: bool) -> Vec<(i64, i64)> {
    rows.sort_unstable();
    if desc {
        rows.reverse();
    }
    rows
}

fn key(field: SortField, id: i64, add: i64, update: i64) -> i64 {
    match field {
        SortField::UpdateTime => update,
        SortField::AddTime => add,
        _ => id,
    }
}

/// `v1.getDeals`: `user_id`, `stage_id`, `status` (`open`, `won`, `lost`, `deleted`,
/// `all_not_deleted` by default), `owned_by_you`, `sort` (`id`, `update_time`, `add_time`),
/// `start`, `limit`.
pub(super) fn deals(ctx: &Ctx<'_>) -> HResult {
    no_filters(ctx)?;
    let (start, limit) = (start(ctx)?, ctx.limit()?);
    let (field, desc) = v1_sort(ctx, SORTS, (SortField::Id, false))?;
    let status = ctx.q("status").unwrap_or("all_not_deleted").to_owned();
    if !["open", "won", "lost", "deleted", "all_not_deleted"].contains(&status.as_str()) {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: status: {status:?} is not allowed"
        )));
    }
    let mut user = ctx.q_int("user_id")?;
    if ctx.q("owned_by_you") == Some("1") {
        user = Some(ctx.caller.user_id);
    }
    let stage = ctx.q_int("stage_id")?;
    with_company(ctx, |c, _| {
        let rows: Vec<(i64, i64)> = c
            .deals
            .values()
            .filter(|d| {
                let by_status = match status.as_str() {
                    "deleted" => d.is_deleted,
                    "all_not_deleted" => !d.is_deleted,
                    s => !d.is_deleted && d.status == s,
                };
                by_status
                    && user.is_none_or(|u| d.owner_id == u)
                    && stage.is_none_or(|s| d.stage_id == s)
            })
            .map(|d| (key(field, d.id, d.add_time, d.update_time), d.id))
            .collect();
        let (rows, pagination) = v1_page(sorted(rows, desc), start, limit);
        let mut rel = Related::default();
        let data = rows
            .iter()
            .filter_map(|(_, id)| c.deals.get(id))
            .map(|d| v1::deal(c, d, &mut rel))
            .collect();
        Ok((
            StatusCode::OK,
            page(data, pagination, rel.to_json(c)),
            vec![],
        ))
    })
}

/// `v1.getDeal` (a deleted deal is still found, as v1 did, with `deleted: true`).
pub(super) fn deal(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("deal")?;
    with_company(ctx, |c, _| {
        let d = c
            .deals
            .get(&id)
            .ok_or_else(|| ApiErr::NotFound("Deal not found".into()))?;
        let mut rel = Related::default();
        let data = v1::deal(c, d, &mut rel);
        Ok((StatusCode::OK, one(data, rel.to_json(c)), vec![]))
    })
}

/// `v1.getDealProducts`: the simulator attaches no products to deals.
pub(super) fn deal_products(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("deal")?;
    let (start, limit) = (start(ctx)?, ctx.limit()?);
    with_company(ctx, |c, _| {
        if !c.deals.contains_key(&id) {
            return Err(ApiErr::NotFound("Deal not found".into()));
        }
        let (_, pagination) = v1_page(Vec::<()>::new(), start, limit);
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": [], "additional_data": {"pagination": pagination}}),
            vec![],
        ))
    })
}

/// `v1.getDealUpdates` (`/deals/{id}/flow`): the deal's creation (the simulator keeps no
/// change log), as a `dealChange` of `add_time`.
pub(super) fn deal_updates(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("deal")?;
    let (start, limit) = (start(ctx)?, ctx.limit()?);
    with_company(ctx, |c, _| {
        let d = c
            .deals
            .get(&id)
            .ok_or_else(|| ApiErr::NotFound("Deal not found".into()))?;
        let created = v1_time(d.add_time);
        let change = json!({
            "object": "dealChange",
            "timestamp": created,
            "data": {
                "id": d.id * 10, "item_id": d.id, "user_id": d.creator_user_id,
                "field_key": "add_time", "old_value": null, "new_value": created,
                "is_bulk_update_flag": null, "log_time": created, "change_source": "api",
                "change_source_user_agent": null, "additional_data": [],
            },
        });
        let (items, pagination) = v1_page(vec![change], start, limit);
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": items, "additional_data": {"pagination": pagination}}),
            vec![],
        ))
    })
}

fn first_char_ok(name: &str, first: Option<&str>) -> bool {
    first.is_none_or(|f| {
        name.chars()
            .next()
            .map(|c| c.to_lowercase().to_string())
            .as_deref()
            == Some(f.to_lowercase().as_str())
    })
}

/// `v1.getPersons`: `user_id`, `first_char`, `sort`, `start`, `limit`.
pub(super) fn persons(ctx: &Ctx<'_>) -> HResult {
    no_filters(ctx)?;
    let (start, limit) = (start(ctx)?, ctx.limit()?);
    let (field, desc) = v1_sort(ctx, SORTS, (SortField::Id, false))?;
    let user = ctx.q_int("user_id")?;
    let first = ctx.q("first_char").filter(|s| !s.is_empty());
    with_company(ctx, |c, _| {
        let rows: Vec<(i64, i64)> = c
            .persons
            .values()
            .filter(|p| {
                !p.is_deleted
                    && user.is_none_or(|u| p.owner_id == u)
                    && first_char_ok(&p.name, first)
            })
            .map(|p| (key(field, p.id, p.add_time, p.update_time), p.id))
            .collect();
        let (rows, pagination) = v1_page(sorted(rows, desc), start, limit);
        let mut rel = Related::default();
        let data = rows
            .iter()
            .filter_map(|(_, id)| c.persons.get(id))
            .map(|p| v1::person(c, p, &mut rel))
            .collect();
        Ok((
            StatusCode::OK,
            page(data, pagination, rel.to_json(c)),
            vec![],
        ))
    })
}

/// `v1.getPerson`.
pub(super) fn person(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("person")?;
    with_company(ctx, |c, _| {
        let p = c
            .persons
            .get(&id)
            .filter(|p| !p.is_deleted)
            .ok_or_else(|| ApiErr::NotFound("Person not found".into()))?;
        let mut rel = Related::default();
        let data = v1::person(c, p, &mut rel);
        Ok((StatusCode::OK, one(data, rel.to_json(c)), vec![]))
    })
}

/// `v1.getOrganizations`: `user_id`, `first_char`, `sort`, `start`, `limit`.
pub(super) fn organizations(ctx: &Ctx<'_>) -> HResult {
    no_filters(ctx)?;
    let (start, limit) = (start(ctx)?, ctx.limit()?);
    let (field, desc) = v1_sort(ctx, SORTS, (SortField::Id, false))?;
    let user = ctx.q_int("user_id")?;
    let first = ctx.q("first_char").filter(|s| !s.is_empty());
    with_company(ctx, |c, _| {
        let rows: Vec<(i64, i64)> = c
            .organizations
            .values()
            .filter(|o| {
                !o.is_deleted
                    && user.is_none_or(|u| o.owner_id == u)
                    && first_char_ok(&o.name, first)
            })
            .map(|o| (key(field, o.id, o.add_time, o.update_time), o.id))
            .collect();
        let (rows, pagination) = v1_page(sorted(rows, desc), start, limit);
        let mut rel = Related::default();
        let data = rows
            .iter()
            .filter_map(|(_, id)| c.organizations.get(id))
            .map(|o| v1::organization(c, o, &mut rel))
            .collect();
        Ok((
            StatusCode::OK,
            page(data, pagination, rel.to_json(c)),
            vec![],
        ))
    })
}

/// `v1.getOrganization`.
pub(super) fn organization(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("organization")?;
    with_company(ctx, |c, _| {
        let o = c
            .organizations
            .get(&id)
            .filter(|o| !o.is_deleted)
            .ok_or_else(|| ApiErr::NotFound("Organization not found".into()))?;
        let mut rel = Related::default();
        let data = v1::organization(c, o, &mut rel);
        Ok((StatusCode::OK, one(data, rel.to_json(c)), vec![]))
    })
}

fn due_date(ctx: &Ctx<'_>, k: &str) -> Result<Option<String>, ApiErr> {
    match ctx.q(k) {
        None | Some("") => Ok(None),
        Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|_| Some(s.to_owned()))
            .map_err(|_| ApiErr::BadRequest(format!("Validation failed: {k}: must be YYYY-MM-DD"))),
    }
}

/// `v1.getActivities`: `user_id` (the caller's activities when omitted, everyone's with `0`),
/// `type` (comma-separated), `done` (`0`/`1`), `start_date`/`end_date` (on the due date),
/// `start`, `limit`; by id.
pub(super) fn activities(ctx: &Ctx<'_>) -> HResult {
    no_filters(ctx)?;
    let (start, limit) = (start(ctx)?, ctx.limit()?);
    let user = match ctx.q_int("user_id")? {
        None => Some(ctx.caller.user_id),
        Some(0) => None,
        Some(u) => Some(u),
    };
    let types: Option<Vec<String>> = ctx
        .q("type")
        .filter(|s| !s.is_empty())
        .map(|s| s.split(',').map(|t| t.trim().to_owned()).collect());
    let done = match ctx.q("done") {
        None | Some("") => None,
        Some("0") => Some(false),
        Some("1") => Some(true),
        Some(_) => {
            return Err(ApiErr::BadRequest(
                "Validation failed: done: must be 0 or 1".into(),
            ))
        }
    };
    let (from, to) = (due_date(ctx, "start_date")?, due_date(ctx, "end_date")?);
    with_company(ctx, |c, _| {
        let rows: Vec<(i64, i64)> = c
            .activities
            .values()
            .filter(|a| {
                let due = a.due_date.as_deref();
                !a.is_deleted
                    && user.is_none_or(|u| a.owner_id == u)
                    && types.as_ref().is_none_or(|t| t.contains(&a.kind))
                    && done.is_none_or(|d| a.done == d)
                    && from.as_deref().is_none_or(|f| due.is_some_and(|x| x >= f))
                    && to.as_deref().is_none_or(|t| due.is_some_and(|x| x <= t))
            })
            .map(|a| (a.id, a.id))
            .collect();
        let (rows, pagination) = v1_page(rows, start, limit);
        let mut rel = Related::default();
        let data = rows
            .iter()
            .filter_map(|(_, id)| c.activities.get(id))
            .map(|a| v1::activity(c, a, &mut rel))
            .collect();
        Ok((
            StatusCode::OK,
            page(data, pagination, rel.to_json(c)),
            vec![],
        ))
    })
}

/// `v1.getActivity`.
pub(super) fn activity(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("activity")?;
    with_company(ctx, |c, _| {
        let a = c
            .activities
            .get(&id)
            .filter(|a| !a.is_deleted)
            .ok_or_else(|| ApiErr::NotFound("Activity not found".into()))?;
        let mut rel = Related::default();
        let data = v1::activity(c, a, &mut rel);
        Ok((StatusCode::OK, one(data, rel.to_json(c)), vec![]))
    })
}

/// `v1.getProducts`: `user_id`, `ids`, `first_char`, `start`, `limit`; by id.
pub(super) fn products(ctx: &Ctx<'_>) -> HResult {
    no_filters(ctx)?;
    let (start, limit) = (start(ctx)?, ctx.limit()?);
    let user = ctx.q_int("user_id")?;
    let first = ctx.q("first_char").filter(|s| !s.is_empty());
    let ids: Option<Vec<i64>> = match ctx.q("ids") {
        None | Some("") => None,
        Some(s) => Some(
            s.split(',')
                .map(|x| x.trim().parse::<i64>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ApiErr::BadRequest("Validation failed: ids: must be integers".into())
                })?,
        ),
    };
    with_company(ctx, |c, _| {
        let rows: Vec<(i64, i64)> = c
            .products
            .values()
            .filter(|p| {
                !p.is_deleted
                    && user.is_none_or(|u| p.owner_id == u)
                    && ids.as_ref().is_none_or(|ids| ids.contains(&p.id))
                    && first_char_ok(&p.name, first)
            })
            .map(|p| (p.id, p.id))
            .collect();
        let (rows, pagination) = v1_page(rows, start, limit);
        let mut rel = Related::default();
        let data = rows
            .iter()
            .filter_map(|(_, id)| c.products.get(id))
            .map(|p| v1::product(c, p, &mut rel))
            .collect();
        Ok((
            StatusCode::OK,
            page(data, pagination, rel.to_json(c)),
            vec![],
        ))
    })
}

/// `v1.getProduct`.
pub(super) fn product(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("product")?;
    with_company(ctx, |c, _| {
        let p = c
            .products
            .get(&id)
            .filter(|p| !p.is_deleted)
            .ok_or_else(|| ApiErr::NotFound("Product not found".into()))?;
        let mut rel = Related::default();
        let data = v1::product(c, p, &mut rel);
        Ok((StatusCode::OK, one(data, rel.to_json(c)), vec![]))
    })
}
