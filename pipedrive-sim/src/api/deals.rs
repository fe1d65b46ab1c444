//! Deals: `v2.getDeals`, `v2.getDeal`, `v2.addDeal`, `v2.updateDeal`, `v2.deleteDeal`.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{page_table, paging, SortField};
use super::request::{ids_filter, with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::Deal;

/// `v2.getDeals`.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
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
    let statuses = statuses(ctx)?;
    let since = ctx.q_time("updated_since")?;
    let until = ctx.q_time("updated_until")?;
    with_company(ctx, |c, _| {
        let keep = |d: &Deal| {
            let st_ok = match &statuses {
                None => !d.is_deleted,
                Some(list) => list.iter().any(|s| match *s {
                    "deleted" => d.is_deleted,
                    s => !d.is_deleted && d.status == s,
                }),
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
        };
        let (page, next) = page_table(&c.deals, &p, keep, |d| d.add_time);
        let data: Vec<Value> = page.into_iter().map(Deal::v2_json).collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

/// `v2.getDeals`' `status`: one of `open`, `won`, `lost`, `deleted`, or several "as a comma
/// separated array" (`open,won,lost,deleted` is every deal, deleted ones too); none: every deal
/// not deleted.
fn statuses(ctx: &Ctx<'_>) -> Result<Option<Vec<&'static str>>, ApiErr> {
    let Some(raw) = ctx.q("status").filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    raw.split(',')
        .map(|s| match s.trim() {
            "open" => Ok("open"),
            "won" => Ok("won"),
            "lost" => Ok("lost"),
            "deleted" => Ok("deleted"),
            other => Err(ApiErr::BadRequest(format!(
                "Validation failed: status: {other:?} is not one of open, won, lost, deleted"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `v2.getDeal`.
pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
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

/// `v2.addDeal`.
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        let (json, ev) = c
            .create_deal(&body, user, "api", now)
            .map_err(ApiErr::BadRequest)?;
        Ok((StatusCode::OK, ok_data(json), vec![ev]))
    })
}

/// `v2.updateDeal` (moving a stage is `{"stage_id": 3}`).
pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let id = ctx.path_id("deal")?;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        match c
            .update_deal(id, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?
        {
            None => Err(ApiErr::NotFound("Deal not found".into())),
            Some((json, ev)) => Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect())),
        }
    })
}

/// `v2.deleteDeal`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let id = ctx.path_id("deal")?;
    with_company(ctx, |c, _| match c.delete_deal(id, user, "api", now) {
        None => Err(ApiErr::NotFound("Deal not found".into())),
        Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
    })
}
