//! Leads (API v1 only): `v1.getLeads` (not archived ones; `start`/`limit` with the
//! documented `additional_data.{start, limit, more_items_in_collection}` and the usual v1
//! `additional_data.pagination` object beside them), `v1.getLead`,
//! `v1.addLead` (201), `v1.updateLead` (PATCH), `v1.deleteLead`, and `v1.getLeadLabels`.

use axum::http::StatusCode;
use rand::Rng;
use serde_json::{json, Value};

use super::paging::{v1_page, v1_sort, SortField};
use super::request::{with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::v2_time;

fn not_found() -> ApiErr {
    ApiErr::NotFound("requested lead not found".into())
}

/// `v1.getLeads`: `owner_id`, `person_id`, `organization_id`, `updated_since` (ISO 8601,
/// `update_time >=`), `sort` (`id`, `add_time`, `update_time`; default: oldest first).
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
    let start = ctx.q_int("start")?.unwrap_or(0).max(0) as usize;
    let limit = ctx.limit()?;
    let owner = ctx.q_int("owner_id")?;
    let person = ctx.q_int("person_id")?;
    let org = ctx.q_int("organization_id")?;
    let since = ctx.q_time("updated_since")?;
    let (field, desc) = v1_sort(
        ctx,
        &[SortField::Id, SortField::AddTime, SortField::UpdateTime],
        (SortField::AddTime, false),
    )?;
    with_company(ctx, |c, _| {
        let mut rows: Vec<(i64, i64)> = c
            .leads
            .values()
            .filter(|l| {
                !l.is_archived
                    && owner.is_none_or(|x| l.owner_id == x)
                    && person.is_none_or(|x| l.person_id == Some(x))
                    && org.is_none_or(|x| l.organization_id == Some(x))
                    && since.is_none_or(|s| l.update_time >= s)
            })
            .map(|l| {
                let key = match field {
                    SortField::UpdateTime => l.update_time,
                    SortField::AddTime => l.add_time,
                    _ => l.seq,
                };
                (key, l.seq)
            })
            .collect();
        rows.sort_unstable();
        if desc {
            rows.reverse();
        }
        let (page, pagination) = v1_page(rows, start, limit);
        let data: Vec<Value> = page
            .iter()
            .filter_map(|(_, seq)| c.leads.get(seq))
            .map(|l| l.v1_json(c.id))
            .collect();
        // The `getLeads` schema's flat `start`, `limit` and `more_items_in_collection`, and the
        // `pagination` object every paged v1 list carries (Pipedrive's pagination guide), which
        // the extractors page leads by (`additional_data.pagination.next_start`).
        let mut additional = pagination.clone();
        if let Value::Object(m) = &mut additional {
            m.remove("next_start");
            m.insert("pagination".into(), pagination);
        }
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": additional}),
            vec![],
        ))
    })
}

/// `v1.getLead`.
pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.id.clone().unwrap_or_default();
    with_company(ctx, |c, _| {
        let l = c.lead_by_uuid(&id).ok_or_else(not_found)?;
        Ok((StatusCode::OK, ok_data(l.v1_json(c.id)), vec![]))
    })
}

/// `v1.addLead`: `title` and a person or an organization are required.
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let body = ctx.json_body()?;
    let uuid = {
        let mut rng = ctx.shared.rng.lock();
        uuid::Builder::from_random_bytes(rng.gen())
            .into_uuid()
            .to_string()
    };
    with_company(ctx, |c, _| {
        let (json, ev) = c
            .create_lead(uuid, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?;
        Ok((StatusCode::CREATED, ok_data(json), vec![ev]))
    })
}

/// `v1.updateLead`.
pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let id = ctx.id.clone().unwrap_or_default();
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        match c
            .update_lead(&id, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?
        {
            None => Err(not_found()),
            Some((json, ev)) => Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect())),
        }
    })
}

/// `v1.deleteLead`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let id = ctx.id.clone().unwrap_or_default();
    with_company(ctx, |c, _| match c.delete_lead(&id, user, "api") {
        None => Err(not_found()),
        Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
    })
}

/// `v1.getLeadLabels`.
pub(super) fn labels(ctx: &Ctx<'_>) -> HResult {
    with_company(ctx, |c, _| {
        let data: Vec<Value> = c
            .lead_labels
            .iter()
            .map(|(id, name, color)| {
                json!({"id": id, "name": name, "color": color,
                       "add_time": v2_time(c.created), "update_time": v2_time(c.created)})
            })
            .collect();
        Ok((StatusCode::OK, ok_data(Value::Array(data)), vec![]))
    })
}
