//! Organizations: `v2.getOrganizations`, `v2.getOrganization`, `v2.addOrganization`,
//! `v2.updateOrganization`, `v2.deleteOrganization` and `v2.searchOrganization` (the engine
//! finds an organization by name before creating one).

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{decode_offset_cursor, encode_offset_cursor, page_table, paging, SortField};
use super::request::{ids_filter, with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::records::Organization;

/// `v2.getOrganizations`: `owner_id`, `ids`, `updated_since`/`updated_until`, sorting and
/// cursors; deleted organizations are left out.
pub(super) fn list(ctx: &Ctx<'_>) -> HResult {
    let p = paging(
        ctx,
        &[SortField::Id, SortField::UpdateTime, SortField::AddTime],
    )?;
    let ids = ids_filter(ctx)?;
    let owner = ctx.q_int("owner_id")?;
    let since = ctx.q_time("updated_since")?;
    let until = ctx.q_time("updated_until")?;
    with_company(ctx, |c, _| {
        let keep = |o: &Organization| {
            !o.is_deleted
                && ids.as_ref().is_none_or(|ids| ids.contains(&o.id))
                && owner.is_none_or(|x| o.owner_id == x)
                && since.is_none_or(|s| o.update_time >= s)
                && until.is_none_or(|u| o.update_time < u)
        };
        let (page, next) = page_table(&c.organizations, &p, keep, |o| o.add_time);
        let data: Vec<Value> = page.into_iter().map(|o| c.org_json(o)).collect();
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

/// `v2.getOrganization` (a deleted organization is a 404).
pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
    let id = ctx.path_id("organization")?;
    with_company(ctx, |c, _| {
        let o = c
            .organizations
            .get(&id)
            .filter(|o| !o.is_deleted)
            .ok_or_else(|| ApiErr::NotFound("Organization not found".into()))?;
        Ok((StatusCode::OK, ok_data(c.org_json(o)), vec![]))
    })
}

/// `v2.addOrganization`.
pub(super) fn add(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        let (json, ev) = c
            .create_org(&body, user, "api", now)
            .map_err(ApiErr::BadRequest)?;
        Ok((StatusCode::OK, ok_data(json), vec![ev]))
    })
}

/// `v2.updateOrganization`.
pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let id = ctx.path_id("organization")?;
    let body = ctx.json_body()?;
    with_company(ctx, |c, _| {
        match c
            .update_org(id, &body, user, "api", now)
            .map_err(ApiErr::BadRequest)?
        {
            None => Err(ApiErr::NotFound("Organization not found".into())),
            Some((json, ev)) => Ok((StatusCode::OK, ok_data(json), ev.into_iter().collect())),
        }
    })
}

/// `v2.deleteOrganization`.
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let (user, now) = (ctx.caller.user_id, ctx.now);
    let id = ctx.path_id("organization")?;
    with_company(ctx, |c, _| match c.delete_org(id, user, "api", now) {
        None => Err(ApiErr::NotFound("Organization not found".into())),
        Some(ev) => Ok((StatusCode::OK, ok_data(json!({"id": id})), vec![ev])),
    })
}

/// `v2.searchOrganization`: `term` (2+ characters, 1 with `exact_match`), `fields` (`name`,
/// `address`, `custom_fields`, `notes`), `exact_match` (whole value, not case-sensitive,
/// surrounding spaces ignored), `limit`, `cursor`.
pub(super) fn search(ctx: &Ctx<'_>) -> HResult {
    let term = ctx.q("term").unwrap_or("").trim().to_lowercase();
    let exact = ctx.q_bool("exact_match")?.unwrap_or(false);
    let min = if exact { 1 } else { 2 };
    if term.chars().count() < min {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: term: must be at least {min} characters long"
        )));
    }
    const FIELDS: &[&str] = &["address", "custom_fields", "notes", "name"];
    let fields: Vec<String> = match ctx.q("fields") {
        None | Some("") => FIELDS.iter().map(|f| (*f).to_owned()).collect(),
        Some(s) => s.split(',').map(|f| f.trim().to_owned()).collect(),
    };
    if let Some(f) = fields.iter().find(|f| !FIELDS.contains(&f.as_str())) {
        return Err(ApiErr::BadRequest(format!(
            "Validation failed: fields: {f:?} is not allowed"
        )));
    }
    let limit = ctx.limit()?;
    let offset = decode_offset_cursor(ctx.q("cursor"))?;
    let has = |f: &str| fields.iter().any(|x| x == f);
    let matches = |v: &str| {
        let v = v.trim().to_lowercase();
        if exact {
            v == term
        } else {
            v.contains(&term)
        }
    };
    with_company(ctx, |c, _| {
        let text_fields: Vec<&str> = c
            .org_fields
            .iter()
            .filter(|f| {
                matches!(
                    f.field_type.as_str(),
                    "address"
                        | "varchar"
                        | "text"
                        | "varchar_auto"
                        | "double"
                        | "monetary"
                        | "phone"
                )
            })
            .map(|f| f.key.as_str())
            .collect();
        let mut found: Vec<(f64, &Organization, Vec<String>)> = Vec::new();
        for o in c.organizations.values().filter(|o| !o.is_deleted) {
            let mut score: f64 = 0.0;
            let mut cf = Vec::new();
            if has("name") && matches(&o.name) {
                score = if o.name.trim().to_lowercase() == term {
                    1.0
                } else {
                    0.6
                };
            }
            let address = o
                .address
                .as_ref()
                .and_then(|a| a.get("value"))
                .and_then(Value::as_str);
            if has("address") && address.is_some_and(matches) {
                score = score.max(0.5);
            }
            if has("custom_fields") {
                for k in &text_fields {
                    let text = match o.custom_fields.get(*k) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Number(n)) => n.to_string(),
                        Some(Value::Object(v)) => match v.get("value") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => continue,
                        },
                        _ => continue,
                    };
                    if matches(&text) {
                        score = score.max(0.4);
                        cf.push(text);
                    }
                }
            }
            if score > 0.0 {
                found.push((score, o, cf));
            }
        }
        found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        let total = found.len();
        let items: Vec<Value> = found
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(score, o, cf)| {
                let mut item = json!({
                    "id": o.id, "type": "organization", "name": o.name, "visible_to": o.visible_to,
                    "owner": {"id": o.owner_id}, "custom_fields": cf, "notes": Vec::<String>::new(),
                });
                if let Some(a) = o.address.as_ref().and_then(|a| a.get("value")) {
                    item["address"] = a.clone();
                }
                json!({"result_score": score, "item": item})
            })
            .collect();
        let next = (offset + limit < total).then(|| encode_offset_cursor(offset + limit));
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": {"items": items}, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}
