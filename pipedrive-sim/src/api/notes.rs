//! Notes (API v1 only): `v1.getNotes`, `v1.getNote`, `v1.addNote`, `v1.updateNote` (PUT),
//! `v1.deleteNote`, with v1 `start`/`limit` pagination.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{v1_page, v1_sort, SortField};
use super::request::{with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::parse_time;

fn not_found() -> ApiErr {
    ApiErr::NotFound("Note not found".into())
}

fn date(ctx: &Ctx<'_>, k: &str, end_of_day: bool) -> Result<Option<i64>, ApiErr> {
    match ctx.q(k) {
        None | Some("") => Ok(None),
        Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| {
                if end_of_day {
                    d.and_hms_opt(23, 59, 59)
                } else {
                    d.and_hms_opt(0, 0, 0)
                }
            })
            .map(|t| Some(t.and_utc().timestamp()))
            .ok_or_else(|| {
                ApiErr::BadRequest(format!("Validation failed: {k}: must be YYYY-MM-DD"))
            }),
    }
}

/// `v1.getNotes`: `user_id`, `lead_id`, `deal_id`, `person_id`, `org_id`, `start_date` /
/// `end_date` (on `add_time`), `updated_since` (RFC 3339, `update_time >=`), `sort`
/// (`id`, `add_time`, `update_time`; default `id ASC`), `start`, `limit`. Deleted notes are
/// left out.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
    let start = ctx.q_int("start")?.unwrap_or(0).max(0) as usize;
    let limit = ctx.limit()?;
    let user = ctx.q_int("user_id")?;
    let deal = ctx.q_int("deal_id")?;
    let person = ctx.q_int("person_id")?;
    let org = ctx.q_int("org_id")?;
    let lead = ctx
        .q("lead_id")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let from = date(ctx, "start_date", false)?;
    let to = date(ctx, "end_date", true)?;
    let since = match ctx.q("updated_since") {
        None | Some("") => None,
        Some(s) => Some(parse_time(s).ok_or_else(|| {
            ApiErr::BadRequest("Validation failed: updated_since: must be RFC 3339".into())
        })?),
    };
    let (field, desc) = v1_sort(
        ctx,
        &[SortField::Id, SortField::AddTime, SortField::UpdateTime],
        (SortField::Id, false),
    )?;
    let caller = ctx.caller.user_id;
    with_company(ctx, |c, _| {
        let mut rows: Vec<(i64, i64)> = c
            .notes
            .values()
            .filter(|n| {
                n.active
                    && user.is_none_or(|x| n.user_id == x)
                    && deal.is_none_or(|x| n.deal_id == Some(x))
                    && person.is_none_or(|x| n.person_id == Some(x))
                    && org.is_none_or(|x| n.org_id == Some(x))
                    && lead.as_ref().is_none_or(|x| n.lead_id.as_ref() == Some(x))
                    && from.is_none_or(|f| n.add_time >= f)
                    && to.is_none_or(|t| n.add_time <= t)
                    && since.is_none_or(|s| n.update_time >= s)
            })
            .map(|n| {
                let key = match field {
                    SortField::UpdateTime => n.update_time,
                    SortField::AddTime => n.add_time,
                    _ => n.id,
                };
                (key, n.id)
            })
            .collect();
        rows.sort_unstable();
        if desc {
            rows.reverse();
        }
        let (page, pagination) = v1_page(rows, start, limit);
        let data: Vec<Value> = page
            .iter()
            .filter_map(|(_, id)| c.notes.get(id))
            .map(|n| c.note_json(n, caller))
            .collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"pagination": pagination}}),
            vec![],
        ))
    })
}

/// `v1.getNote` (a deleted note is a 404).
pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("note")?;
    let caller = ctx.caller.user_id;
    with_company(ctx, |c, _| {
        let n = c
            .notes
            .get(&id)
            .filter(|n| n.active)
            .ok_or_else(not_found)?;
        Ok((StatusCode::OK, ok_data(c.note_json(n, caller)), vec![]))
    })
}

/// `v1.addNote` (JSON or form): `content` and something to attach to are required.
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let body = ctx.json_or_form_body()?;
    with_company(ctx, |c, _| {
        let (json, ev) = c
            .create_note(&body, user, "api", now)
            .map_err(ApiErr::BadRequest)?;
        Ok((StatusCode::OK, ok_data(json), vec![ev]))
    })
}

/// `v1.updateNote` (PUT, changing only the fields sent).
pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let id = ctx.path_id("note")?;
    let body = ctx.json_or_form_body()?;
    with_company(ctx, |c, _| {
        match c
            .update_note(id, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?
        {
            None => Err(not_found()),
            Some((json, ev)) => Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect())),
        }
    })
}

/// `v1.deleteNote`: `{"success": true, "data": true}`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let id = ctx.path_id("note")?;
    with_company(ctx, |c, _| match c.delete_note(id, user, "api", now) {
        None => Err(not_found()),
        Some(ev) => Ok((StatusCode::OK, ok_data(json!(true)), vec![ev])),
    })
}
