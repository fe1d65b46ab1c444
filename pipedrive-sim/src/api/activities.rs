//! Activities: `v2.getActivities`, `v2.getActivity`, `v2.addActivity`, `v2.updateActivity`,
//! `v2.deleteActivity`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{page_table, paging, SortField};
use super::request::{ids_filter, with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::Activity;

/// `v2.getActivities`.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
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
        let keep = |a: &Activity| {
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
        };
        let key = |a: &Activity| match p.field {
            SortField::DueDate => due(&a.due_date),
            _ => a.add_time,
        };
        let (page, next) = page_table(&c.activities, &p, keep, key);
        let data: Vec<Value> = page.into_iter().map(Activity::v2_json).collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

/// `v2.getActivity`.
pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
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

/// `v2.addActivity`.
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        let (json, ev) = c
            .create_activity(&body, user, "api", now)
            .map_err(ApiErr::BadRequest)?;
        Ok((StatusCode::OK, ok_data(json), vec![ev]))
    })
}

/// `v2.updateActivity`.
pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let id = ctx.path_id("activity")?;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        match c
            .update_activity(id, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?
        {
            None => Err(ApiErr::NotFound("Activity not found".into())),
            Some((json, ev)) => Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect())),
        }
    })
}

/// `v2.deleteActivity`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let id = ctx.path_id("activity")?;
    with_company(ctx, |c, _| match c.delete_activity(id, user, "api", now) {
        None => Err(ApiErr::NotFound("Activity not found".into())),
        Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
    })
}
