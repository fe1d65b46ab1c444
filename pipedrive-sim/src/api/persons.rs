//! Persons: `v2.getPersons` and `v2.getPerson` (serialized straight from the store, the hot
//! path), `v2.addPerson`, `v2.updatePerson`, `v2.deletePerson` and `v1.mergePersons`.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use super::paging::{page_table, paging, SortField};
use super::request::{ids_filter, with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::{Person, PersonV2};

/// `v2.getPersons`, serialized straight from the store (the hot path).
pub(super) fn list(ctx: &Ctx<'_>) -> Result<Vec<u8>, ApiErr> {
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
    let caller = ctx.caller.user_id;
    let (people, keys, next) = with_company(ctx, |c, _| {
        let deal_person = deal.map(|d| c.deals.get(&d).and_then(|d| d.person_id));
        let keep = |x: &Person| {
            !x.is_deleted
                && c.person_visible_to(x, caller)
                && ids.as_ref().is_none_or(|ids| ids.contains(&x.id))
                && owner.is_none_or(|o| x.owner_id == o)
                && org.is_none_or(|o| x.org_id == Some(o))
                && deal_person.is_none_or(|dp| dp == Some(x.id))
                && since.is_none_or(|s| x.update_time >= s)
                && until.is_none_or(|u| x.update_time < u)
        };
        let key = |x: &Arc<Person>| {
            if p.field == SortField::AddTime {
                x.add_time
            } else {
                x.update_time
            }
        };
        let (page, next) = page_table(&c.persons, &p, |x: &Arc<Person>| keep(x), key);
        let out: Vec<Arc<Person>> = page.into_iter().cloned().collect();
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

/// `v2.getPerson` (a deleted person is a 404).
pub(super) fn get(ctx: &Ctx<'_>) -> Result<Vec<u8>, ApiErr> {
    let id = ctx.path_id("person")?;
    let only = custom_field_filter(ctx)?;
    let caller = ctx.caller.user_id;
    let (p, keys) = with_company(ctx, |c, _| {
        let p = c
            .live_person(id)
            .cloned()
            .ok_or_else(|| ApiErr::NotFound("Person not found".into()))?;
        // A person the caller's visibility group hides answers 403, as Pipedrive documents
        // for deals hidden by visibility.
        if !c.person_visible_to(&p, caller) {
            return Err(ApiErr::Raw(
                StatusCode::FORBIDDEN,
                json!({ "success": false, "error": "You do not have permissions to view this person", "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.", "data": null, "additional_data": null }),
            ));
        }
        Ok((p, c.person_field_keys.clone()))
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

/// `v2.addPerson`.
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        let (json, ev) = c
            .create_person(&body, user, "api", now)
            .map_err(ApiErr::BadRequest)?;
        Ok((StatusCode::OK, ok_data(json), vec![ev]))
    })
}

/// `v2.updatePerson`.
pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let id = ctx.path_id("person")?;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        match c
            .update_person(id, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?
        {
            None => Err(ApiErr::NotFound("Person not found".into())),
            Some((json, ev)) => Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect())),
        }
    })
}

/// `v2.deletePerson`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let id = ctx.path_id("person")?;
    with_company(ctx, |c, _| match c.delete_person(id, user, "api", now) {
        None => Err(ApiErr::NotFound("Person not found".into())),
        Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
    })
}

/// `v1.mergePersons`: `merge_with_id` survives.
pub(super) fn merge(ctx: &Ctx<'_>) -> HResult {
    let user = ctx.caller.user_id;
    let now = ctx.now;
    let id = ctx.path_id("person")?;
    let body = ctx.json_body()?;
    let with = match body.get("merge_with_id") {
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiErr::BadRequest("Validation failed: merge_with_id: must be an integer".into())
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
