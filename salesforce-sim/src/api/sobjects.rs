//! sObject rows: create, get (with `?fields=`), update, delete, and the external-id
//! resources (get and upsert by `{Field}/{value}`), plus the object's basic information.

use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::describe;
use super::request::Ctx;
use super::response::{Answer, ApiErr, HResult};
use crate::ids::parse_id;
use crate::schema::{canonical_object, ObjectDef};
use crate::state::{Actor, Org, Record, Upserted};

/// The canonical object named in the path, or 404.
pub(super) fn object(ctx: &Ctx<'_>) -> Result<&'static str, ApiErr> {
    ctx.params
        .object
        .as_deref()
        .and_then(canonical_object)
        .ok_or_else(ApiErr::not_found)
}

/// A record as the REST API renders it: `attributes`, then every readable field (or the
/// given ones) in describe order.
pub(super) fn render(
    org: &Org,
    obj: &ObjectDef,
    rec: &Record,
    actor: &Actor,
    base: &str,
    only: Option<&[usize]>,
) -> Value {
    let mut m = Map::new();
    m.insert(
        "attributes".into(),
        json!({"type": obj.name, "url": format!("{base}/sobjects/{}/{}", obj.name, rec.id)}),
    );
    match only {
        Some(positions) => {
            for &p in positions {
                if let Some(f) = obj.fields.get(p) {
                    m.insert(f.name.clone(), rec.get(p).clone());
                }
            }
        }
        None => {
            for (p, f) in obj.fields.iter().enumerate() {
                if org.field_access(obj, f, actor).0 {
                    m.insert(f.name.clone(), rec.get(p).clone());
                }
            }
        }
    }
    Value::Object(m)
}

/// `?fields=A,B` as positions (400 `INVALID_FIELD` for unknown or unreadable ones).
pub(super) fn field_list(
    org: &Org,
    obj: &ObjectDef,
    actor: &Actor,
    list: Option<&String>,
) -> Result<Option<Vec<usize>>, ApiErr> {
    let Some(list) = list.filter(|l| !l.trim().is_empty()) else {
        return Ok(None);
    };
    let mut out = vec![0];
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let p = obj
            .field(name)
            .filter(|f| org.field_access(obj, f, actor).0)
            .and_then(|f| obj.pos(&f.name))
            .ok_or_else(|| {
                ApiErr::new(
                    400,
                    "INVALID_FIELD",
                    format!("No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", obj.name),
                )
            })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(Some(out))
}

fn record_id(ctx: &Ctx<'_>, obj: &ObjectDef) -> Result<String, ApiErr> {
    let raw = ctx.params.id.clone().unwrap_or_default();
    let id = parse_id(&raw).ok_or_else(|| {
        ApiErr::new(
            404,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {raw}"),
        )
    })?;
    if !id.starts_with(obj.key_prefix) {
        return Err(ApiErr::not_found());
    }
    Ok(id)
}

pub(super) fn basic(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    Ok(Answer::ok(json!({
        "objectDescribe": describe::summary(obj, &ctx.base()),
        "recentItems": []
    })))
}

pub(super) fn create(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let body = ctx.object()?;
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    let id = org.create(
        name,
        &body,
        &ctx.actor,
        ctx.allow_duplicates(),
        ctx.now_ms,
        None,
    )?;
    Ok(Answer::with(
        StatusCode::CREATED,
        json!({"id": id, "success": true, "errors": []}),
    ))
}

pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let id = record_id(ctx, obj)?;
    let rec = org
        .record(name, &id)
        .filter(|r| org.visible(obj, r, &ctx.actor))
        .ok_or_else(ApiErr::not_found)?;
    if rec.deleted_ms.is_some() {
        return Err(ApiErr::new(404, "ENTITY_IS_DELETED", "entity is deleted"));
    }
    let only = field_list(org, obj, &ctx.actor, ctx.query.get("fields"))?;
    Ok(Answer::ok(render(
        org,
        obj,
        rec,
        &ctx.actor,
        &ctx.base(),
        only.as_deref(),
    )))
}

pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let body = ctx.object()?;
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    let id = record_id(ctx, org.obj(name).ok_or_else(ApiErr::not_found)?)?;
    org.update(
        name,
        &id,
        &body,
        &ctx.actor,
        ctx.allow_duplicates(),
        ctx.now_ms,
        None,
    )?;
    Ok(Answer::no_content())
}

pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    let id = record_id(ctx, org.obj(name).ok_or_else(ApiErr::not_found)?)?;
    org.delete(name, &id, &ctx.actor, ctx.now_ms, None)?;
    Ok(Answer::no_content())
}

/// The position of an external-id field named in the path (404 when it is not one).
pub(super) fn external_field(
    org: &Org,
    obj: &ObjectDef,
    actor: &Actor,
    field: &str,
) -> Result<usize, ApiErr> {
    obj.field(field)
        .filter(|f| f.external_id && org.field_access(obj, f, actor).0)
        .and_then(|f| obj.pos(&f.name))
        .ok_or_else(|| {
            ApiErr::new(
                404,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {field}"),
            )
        })
}

fn multiple(ctx: &Ctx<'_>, name: &str, ids: &[String]) -> Answer {
    Answer::with(
        StatusCode::MULTIPLE_CHOICES,
        json!(ids
            .iter()
            .map(|id| format!("{}/sobjects/{name}/{id}", ctx.base()))
            .collect::<Vec<_>>()),
    )
}

pub(super) fn get_by_external_id(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let field = ctx.params.field.clone().unwrap_or_default();
    let pos = external_field(org, obj, &ctx.actor, &field)?;
    let value = ctx.params.id.clone().unwrap_or_default();
    let ids: Vec<String> = org
        .by_external_id(name, pos, &value)
        .into_iter()
        .filter(|id| {
            org.record(name, id)
                .is_some_and(|r| org.visible(obj, r, &ctx.actor))
        })
        .collect();
    match ids.as_slice() {
        [] => Err(ApiErr::not_found()),
        [one] => {
            let rec = org.record(name, one).ok_or_else(ApiErr::not_found)?;
            let only = field_list(org, obj, &ctx.actor, ctx.query.get("fields"))?;
            Ok(Answer::ok(render(
                org,
                obj,
                rec,
                &ctx.actor,
                &ctx.base(),
                only.as_deref(),
            )))
        }
        _ => Ok(multiple(ctx, name, &ids)),
    }
}

pub(super) fn upsert(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let body = ctx.object()?;
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let field = ctx.params.field.clone().unwrap_or_default();
    let pos = external_field(org, obj, &ctx.actor, &field)?;
    let value = ctx.params.id.clone().unwrap_or_default();
    let update_only = ctx.query.get("updateOnly").is_some_and(|v| v == "true");
    if update_only && org.by_external_id(name, pos, &value).is_empty() {
        return Err(ApiErr::not_found());
    }
    let version: f64 = ctx.params.version.parse().unwrap_or(59.0);
    match org.upsert(
        name,
        pos,
        &value,
        &body,
        &ctx.actor,
        ctx.allow_duplicates(),
        ctx.now_ms,
        None,
    )? {
        Upserted::Created(id) => Ok(Answer::with(
            StatusCode::CREATED,
            json!({"id": id, "success": true, "errors": [], "created": true}),
        )),
        Upserted::Updated(id) if version >= 46.0 => Ok(Answer::ok(
            json!({"id": id, "success": true, "errors": [], "created": false}),
        )),
        Upserted::Updated(_) => Ok(Answer::no_content()),
        Upserted::Multiple(ids) => Ok(multiple(ctx, name, &ids)),
    }
}
