//! `describe` of one object (fields with their types and what the session's user may do
//! with them, after field-level security) and `describeGlobal`.

use serde_json::{json, Value};

use super::request::Ctx;
use super::response::{Answer, ApiErr, HResult};
use super::sobjects::object;
use crate::schema::{ObjectDef, OBJECTS};

/// The short description used by describeGlobal and the basic-information resource.
pub(super) fn summary(obj: &ObjectDef, base: &str) -> Value {
    let urls = json!({
        "sobject": format!("{base}/sobjects/{}", obj.name),
        "describe": format!("{base}/sobjects/{}/describe", obj.name),
        "rowTemplate": format!("{base}/sobjects/{}/{{ID}}", obj.name),
    });
    json!({
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "custom": false,
        "createable": obj.createable,
        "updateable": obj.createable,
        "deletable": obj.createable,
        "queryable": true,
        "retrieveable": true,
        "searchable": obj.owned,
        "layoutable": obj.owned,
        "replicateable": true,
        "triggerable": obj.createable,
        "urls": urls,
    })
}

pub(super) fn global(ctx: &Ctx<'_>) -> HResult {
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let base = ctx.base();
    let sobjects: Vec<Value> = OBJECTS
        .iter()
        .filter_map(|n| org.obj(n))
        .map(|o| summary(o, &base))
        .collect();
    Ok(Answer::ok(
        json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}),
    ))
}

pub(super) fn describe(ctx: &Ctx<'_>) -> HResult {
    let name = object(ctx)?;
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let obj = org.obj(name).ok_or_else(ApiErr::not_found)?;
    let fields: Vec<Value> = obj
        .fields
        .iter()
        .filter_map(|f| {
            let (read, edit) = org.field_access(obj, f, &ctx.actor);
            if !read {
                return None;
            }
            let api_writable = obj.createable;
            Some(json!({
                "name": f.name,
                "label": f.label,
                "type": f.ftype.name(),
                "soapType": f.ftype.soap_type(),
                "length": f.length,
                "byteLength": f.length * 3,
                "precision": if matches!(f.ftype.name(), "double" | "currency" | "percent") { 18 } else { 0 },
                "scale": if matches!(f.ftype.name(), "double" | "currency" | "percent") { 2 } else { 0 },
                "digits": if f.ftype.name() == "int" { 9 } else { 0 },
                "createable": api_writable && f.createable && edit,
                "updateable": api_writable && f.updateable && edit,
                "nillable": f.nillable,
                "defaultedOnCreate": f.default.is_some() || !f.createable,
                "defaultValue": f.default.clone().unwrap_or(Value::Null),
                "externalId": f.external_id,
                "unique": f.unique,
                "idLookup": f.name == "Id" || f.external_id || f.name == "Email",
                "custom": f.custom,
                "calculated": f.name == "Name" && !f.createable,
                "filterable": f.ftype.name() != "textarea" || f.length <= 255,
                "sortable": f.ftype.name() != "textarea" || f.length <= 255,
                "groupable": !matches!(f.ftype.name(), "textarea" | "double" | "currency" | "percent" | "datetime"),
                "picklistValues": f.picklist.iter().enumerate().map(|(i, v)| json!({
                    "active": true, "defaultValue": f.default.as_ref().and_then(Value::as_str) == Some(*v) || (i == usize::MAX), "label": v, "validFor": null, "value": v
                })).collect::<Vec<_>>(),
                "restrictedPicklist": false,
                "referenceTo": f.reference_to,
                "relationshipName": f.name.strip_suffix("Id").filter(|_| f.ftype.name() == "reference" && f.name != "Id"),
                "inlineHelpText": null,
            }))
        })
        .collect();
    let mut body = summary(obj, &ctx.base());
    body["fields"] = json!(fields);
    body["childRelationships"] = json!([]);
    body["recordTypeInfos"] = json!([]);
    body["supportedScopes"] =
        json!([{"label": "All", "name": "everything"}, {"label": "Mine", "name": "mine"}]);
    Ok(Answer::ok(body))
}
