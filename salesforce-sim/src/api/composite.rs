//! sObject Collections (`/composite/sobjects`): create, update, delete, retrieve and upsert
//! up to 200 records in one call, in order, with `allOrNone` rolling everything back when any
//! record fails. The HTTP status is 200 whatever the records' outcomes; per-record errors are
//! `{statusCode, message, fields}`, and a record that failed has no `id` in its result (as in
//! Salesforce's own examples: `{"success": false, "errors": [...]}`).

use serde_json::{json, Map, Value};

use super::request::Ctx;
use super::response::{item_error, Answer, ApiErr, HResult};
use super::sobjects::{external_field, field_list, object, render};
use crate::ids::parse_id;
use crate::schema::canonical_object;
use crate::state::{DmlError, Org, Undo, Upserted};

/// Records per collection call.
const MAX_RECORDS: usize = 200;

fn too_many() -> ApiErr {
    ApiErr::new(
        400,
        "EXCEEDED_ID_LIMIT",
        "record limit reached. cannot submit more than 200 records into this call",
    )
}

fn rolled_back() -> Value {
    json!({"success": false, "errors": [{
        "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
        "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
        "fields": []
    }]})
}

fn failed(e: &DmlError) -> Value {
    json!({"success": false, "errors": [item_error(e)]})
}

struct Batch {
    all_or_none: bool,
    records: Vec<Map<String, Value>>,
}

fn batch(ctx: &Ctx<'_>) -> Result<Batch, ApiErr> {
    let body = ctx.object()?;
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(records) = body.get("records").and_then(Value::as_array) else {
        return Err(ApiErr::bad_json(
            "No records were specified in the request.",
        ));
    };
    if records.len() > MAX_RECORDS {
        return Err(too_many());
    }
    let records = records
        .iter()
        .map(|r| {
            r.as_object()
                .cloned()
                .ok_or_else(|| ApiErr::bad_json("Each record must be a JSON object."))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        all_or_none,
        records,
    })
}

/// The whole request's parse of its records' values (see `Org::parse_check`).
fn parse_check(org: &Org, records: &[Map<String, Value>]) -> Result<(), ApiErr> {
    for r in records {
        if let Ok(t) = record_type(r) {
            org.parse_check(t, r)?;
        }
    }
    Ok(())
}

fn record_type(r: &Map<String, Value>) -> Result<&'static str, DmlError> {
    r.get("attributes")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .and_then(canonical_object)
        .ok_or_else(|| DmlError::new(400, "INVALID_TYPE", "Must send a concrete entity type."))
}

/// Runs `f` on every record; with all-or-none, a failure rolls every change back.
fn run(
    org: &mut Org,
    all_or_none: bool,
    n: usize,
    mut f: impl FnMut(&mut Org, usize, Option<&mut Undo>) -> Result<Value, DmlError>,
) -> Vec<Value> {
    let mut undo = Undo::new();
    let mut results: Vec<Result<Value, DmlError>> = Vec::with_capacity(n);
    for i in 0..n {
        let r = f(org, i, all_or_none.then_some(&mut undo));
        results.push(r);
    }
    let any_failed = results.iter().any(Result::is_err);
    if all_or_none && any_failed {
        org.rollback(undo);
        return results
            .iter()
            .map(|r| match r {
                Ok(_) => rolled_back(),
                Err(e) => failed(e),
            })
            .collect();
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| failed(&e)))
        .collect()
}

pub(super) fn create(ctx: &Ctx<'_>) -> HResult {
    let b = batch(ctx)?;
    let allow = ctx.allow_duplicates();
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    parse_check(org, &b.records)?;
    let out = run(org, b.all_or_none, b.records.len(), |org, i, undo| {
        let r = &b.records[i];
        let t = record_type(r)?;
        if r.keys().any(|k| k.eq_ignore_ascii_case("id")) {
            return Err(DmlError::new(
                400,
                "INVALID_FIELD",
                "cannot specify Id in an insert call",
            ));
        }
        let id = org.create(t, r, &ctx.actor, allow, ctx.now_ms, undo)?;
        Ok(json!({"id": id, "success": true, "errors": []}))
    });
    Ok(Answer::ok(json!(out)))
}

pub(super) fn update(ctx: &Ctx<'_>) -> HResult {
    let b = batch(ctx)?;
    let allow = ctx.allow_duplicates();
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    parse_check(org, &b.records)?;
    let out = run(org, b.all_or_none, b.records.len(), |org, i, undo| {
        let r = &b.records[i];
        let t = record_type(r)?;
        let raw = r
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("id"))
            .and_then(|(_, v)| v.as_str())
            .ok_or_else(|| {
                DmlError::new(
                    400,
                    "MISSING_ARGUMENT",
                    "Id not specified in an update call",
                )
            })?;
        let id = parse_id(raw)
            .filter(|id| org.object_of(id) == Some(t))
            .ok_or_else(|| DmlError::new(400, "MALFORMED_ID", format!("malformed id {raw}")))?;
        let mut body = r.clone();
        body.retain(|k, _| !k.eq_ignore_ascii_case("id"));
        org.update(t, &id, &body, &ctx.actor, allow, ctx.now_ms, undo)?;
        Ok(json!({"id": id, "success": true, "errors": []}))
    });
    Ok(Answer::ok(json!(out)))
}

pub(super) fn delete(ctx: &Ctx<'_>) -> HResult {
    let ids: Vec<String> = ctx
        .query
        .get("ids")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if ids.is_empty() {
        return Err(ApiErr::new(
            400,
            "MISSING_ARGUMENT",
            "ids parameter is missing",
        ));
    }
    if ids.len() > MAX_RECORDS {
        return Err(too_many());
    }
    let all_or_none = ctx.query.get("allOrNone").is_some_and(|v| v == "true");
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    let out = run(org, all_or_none, ids.len(), |org, i, undo| {
        let raw = &ids[i];
        let id = parse_id(raw)
            .ok_or_else(|| DmlError::new(400, "MALFORMED_ID", format!("malformed id {raw}")))?;
        let t = org.object_of(&id).ok_or_else(|| {
            DmlError::new(
                400,
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
            )
        })?;
        org.delete(t, &id, &ctx.actor, ctx.now_ms, undo)?;
        Ok(json!({"id": id, "success": true, "errors": []}))
    });
    Ok(Answer::ok(json!(out)))
}

pub(super) fn retrieve(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let only = field_list(org, obj, &ctx.actor, ctx.query.get("fields"))?
        .ok_or_else(|| ApiErr::new(400, "MISSING_ARGUMENT", "fields parameter is missing"))?;
    let base = ctx.base();
    let out: Vec<Value> = ctx
        .query
        .get("ids")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|raw| {
            parse_id(raw.trim())
                .and_then(|id| org.record(name, &id))
                .filter(|r| r.deleted_ms.is_none() && org.visible(obj, r, &ctx.actor))
                .map(|r| render(org, obj, r, &ctx.actor, &base, Some(&only)))
                .unwrap_or(Value::Null)
        })
        .collect();
    Ok(Answer::ok(json!(out)))
}

pub(super) fn upsert(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let b = batch(ctx)?;
    let allow = ctx.allow_duplicates();
    let mut st = ctx.shared.state.lock();
    let org = &mut st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let field = ctx.params.field.clone().unwrap_or_default();
    let pos = external_field(org, obj, &ctx.actor, &field)?;
    let field_name = obj.fields[pos].name.clone();
    parse_check(org, &b.records)?;
    let out = run(org, b.all_or_none, b.records.len(), |org, i, undo| {
        let r = &b.records[i];
        if record_type(r)? != name {
            return Err(DmlError::new(
                400,
                "INVALID_TYPE",
                "Records must all be of the type in the URL.",
            ));
        }
        let value = r
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&field_name))
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                DmlError::new(
                    400,
                    "MISSING_ARGUMENT",
                    format!("{field_name} not specified"),
                )
            })?;
        match org.upsert(name, pos, &value, r, &ctx.actor, allow, ctx.now_ms, undo)? {
            Upserted::Created(id) => {
                Ok(json!({"id": id, "success": true, "errors": [], "created": true}))
            }
            Upserted::Updated(id) => {
                Ok(json!({"id": id, "success": true, "errors": [], "created": false}))
            }
            Upserted::Multiple(ids) => Err(DmlError::new(
                300,
                "DUPLICATE_EXTERNAL_ID",
                format!(
                    "{field_name}: more than one record found for external id field: [{}]",
                    ids.join(", ")
                ),
            )
            .with_fields(vec![field_name.clone()])),
        }
    });
    Ok(Answer::ok(json!(out)))
}
