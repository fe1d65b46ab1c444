//! Field catalogs: v2 person fields (`v2.getPersonFields`, `v2.getPersonField`,
//! `v2.addPersonField`, `v2.deletePersonField`), `v2.addOrganizationField`, the v2 field lists of deals, organizations,
//! products and activities (and one deal, organization or product field), `v1.addPersonField`,
//! and the v1 field lists of persons, deals, organizations, activities, products and notes. Built-in fields come first,
//! with Pipedrive's codes.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::paging::{decode_offset_cursor, encode_offset_cursor};
use super::request::{with_company, Ctx};
use super::response::{ok_data, ApiErr, HResult};
use crate::model::{builtin_fields, FieldDef};
use crate::ops::Op;
use crate::state::Company;

/// The entity whose fields a v2 or v1 field operation reads.
fn entity_of(op: Op) -> &'static str {
    match op {
        Op::GetDealFields | Op::GetDealField | Op::GetDealFieldsV1 => "deal",
        Op::GetOrganizationFields | Op::GetOrganizationField | Op::GetOrganizationFieldsV1 => {
            "organization"
        }
        Op::GetProductFields | Op::GetProductField | Op::GetProductFieldsV1 => "product",
        Op::GetActivityFields | Op::GetActivityFieldsV1 => "activity",
        Op::GetNoteFieldsV1 => "note",
        _ => "person",
    }
}

/// `v2.getPersonFields`, `v2.getDealFields`, `v2.getOrganizationFields`,
/// `v2.getProductFields`, `v2.getActivityFields`.
pub(super) fn list(ctx: &Ctx<'_>, op: Op) -> HResult {
    let limit = ctx.limit()?;
    let offset = decode_offset_cursor(ctx.q("cursor"))?;
    let entity = entity_of(op);
    with_company(ctx, |c, _| {
        let all: Vec<Value> = fields_all(c, entity)
            .iter()
            .map(|f| v2_field(f, entity))
            .collect();
        let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
        let next = (offset + limit < all.len()).then(|| encode_offset_cursor(offset + limit));
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": page, "additional_data": {"next_cursor": next}}),
            vec![],
        ))
    })
}

/// `v2.getPersonField`, `v2.getDealField`, `v2.getOrganizationField`, `v2.getProductField`.
pub(super) fn get(ctx: &Ctx<'_>, op: Op) -> HResult {
    let code = ctx.id.clone().unwrap_or_default();
    let entity = entity_of(op);
    with_company(ctx, |c, _| {
        let f = fields_all(c, entity)
            .into_iter()
            .find(|f| f.key == code)
            .ok_or_else(|| ApiErr::NotFound("Field not found".into()))?;
        Ok((StatusCode::OK, ok_data(v2_field(&f, entity)), vec![]))
    })
}

/// A v2 field item. Only the person fields' schema lets `description` be `null`; the
/// others leave it out when there is none.
fn v2_field(f: &FieldDef, entity: &str) -> Value {
    let mut v = f.v2_json();
    if entity != "person" {
        if let Value::Object(m) = &mut v {
            m.remove("description");
        }
    }
    v
}

/// `v2.deletePersonField` (a built-in field is a 400).
pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let code = ctx.id.clone().unwrap_or_default();
    with_company(ctx, |c, _| {
        let f = c.delete_person_field(&code).map_err(|builtin| {
            if builtin {
                ApiErr::BadRequest(format!(
                    "Validation failed: field_code: {code:?} is a built-in field and cannot be deleted"
                ))
            } else {
                ApiErr::NotFound("Field not found".into())
            }
        })?;
        Ok((StatusCode::OK, ok_data(f.v2_json()), vec![]))
    })
}

/// `v2.addPersonField`, `v1.addPersonField` and `v2.addOrganizationField`.
pub(super) fn add(ctx: &Ctx<'_>, op: Op) -> HResult {
    let now = ctx.now;
    let v2 = matches!(op, Op::AddPersonField | Op::AddOrganizationField);
    let entity = if op == Op::AddOrganizationField {
        "organization"
    } else {
        "person"
    };
    let body = if v2 {
        ctx.json_body()?
    } else {
        ctx.json_or_form_body()?
    };
    let name_key = if v2 { "field_name" } else { "name" };
    let name = body
        .get(name_key)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiErr::BadRequest(format!("Validation failed: {name_key}: is required")))?;
    let ftype = body
        .get("field_type")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiErr::BadRequest("Validation failed: field_type: is required".into()))?;
    let options: Vec<String> = match body.get("options") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|o| o.get("label").and_then(Value::as_str).map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiErr::BadRequest("Validation failed: options: each option needs a label".into())
            })?,
        Some(_) => {
            return Err(ApiErr::BadRequest(
                "Validation failed: options: must be an array".into(),
            ))
        }
    };
    let opts: Vec<&str> = options.iter().map(String::as_str).collect();
    with_company(ctx, |c, _| {
        let mut rng = ctx.shared.rng.lock();
        let f = c
            .add_field(entity, name, ftype, &opts, now, &mut *rng)
            .map_err(ApiErr::BadRequest)?;
        let data = if v2 {
            v2_field(&f, entity)
        } else {
            f.v1_json(c.person_fields.len() + 20)
        };
        Ok((StatusCode::OK, ok_data(data), vec![]))
    })
}

/// The v1 field lists: `v1.getPersonFields`, `v1.getDealFields`, `v1.getOrganizationFields`,
/// `v1.getActivityFields`, `v1.getProductFields`.
pub(super) fn list_v1(ctx: &Ctx<'_>, op: Op) -> HResult {
    let start = ctx.q_int("start")?.unwrap_or(0).max(0) as usize;
    let limit = ctx.limit()?;
    let entity = entity_of(op);
    with_company(ctx, |c, _| {
        let all = fields_all(c, entity);
        let data: Vec<Value> = all
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, f)| f.v1_json(i + 1))
            .collect();
        let more = start + limit < all.len();
        let mut pagination =
            json!({"start": start, "limit": limit, "more_items_in_collection": more});
        if more {
            pagination["next_start"] = json!(start + limit);
        }
        Ok((
            StatusCode::OK,
            json!({"success": true, "data": data, "additional_data": {"start": start, "limit": limit, "more_items_in_collection": more, "pagination": pagination}}),
            vec![],
        ))
    })
}

fn builtins(entity: &str, created: i64) -> Vec<FieldDef> {
    builtin_fields(entity)
        .into_iter()
        .enumerate()
        .map(|(i, (key, name, t))| FieldDef {
            id: i as i64 + 1,
            key: key.to_owned(),
            name: name.to_owned(),
            field_type: t.to_owned(),
            options: Vec::new(),
            custom: false,
            add_time: created,
        })
        .collect()
}

/// Every field of an entity, built-in ones first. The built-in person codes are Pipedrive's
/// (`email`, `phone`, as the `personFields` example of the v2 document shows), not the v2
/// object's property names (`emails`, `phones`).
fn fields_all(c: &Company, entity: &str) -> Vec<FieldDef> {
    let mut all: Vec<FieldDef> = builtins(entity, c.created);
    all.extend(c.fields_of(entity).iter().cloned());
    all
}
