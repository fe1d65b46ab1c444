//! The Tooling API pieces an integration uses to set itself up: `CustomField` (create, get)
//! and the permission objects (`FieldPermissions`, `PermissionSet`,
//! `PermissionSetAssignment`, the same records as under `/sobjects`). Creating a field needs
//! Customize Application; the new field shows in describe but nobody may edit it until a
//! `FieldPermissions` record grants Edit.

use axum::http::StatusCode;
use serde_json::{json, Value};

use super::request::Ctx;
use super::response::{Answer, ApiErr, HResult};
use crate::schema::canonical_object;
use crate::state::{iso, DmlError};

pub(super) fn create(ctx: &Ctx<'_>) -> HResult {
    let t = ctx.params.object.clone().unwrap_or_default();
    if let Some(name @ ("FieldPermissions" | "PermissionSet" | "PermissionSetAssignment")) =
        canonical_object(&t)
    {
        let body = ctx.object()?;
        let mut st = ctx.shared.state.lock();
        let id = st.orgs[ctx.org].create(name, &body, &ctx.actor, true, ctx.now_ms, None)?;
        return Ok(Answer::with(
            StatusCode::CREATED,
            json!({"id": id, "success": true, "errors": [], "warnings": [], "infos": []}),
        ));
    }
    if !t.eq_ignore_ascii_case("CustomField") {
        return Err(ApiErr::not_found());
    }
    if !ctx.actor.perms.flags.customize_application {
        return Err(DmlError::new(
            400,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "insufficient access rights on object id",
        )
        .into());
    }
    let body = ctx.object()?;
    let full = body
        .get("FullName")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            DmlError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [FullName]",
            )
            .with_fields(vec!["FullName".into()])
        })?;
    let (object, name) = full.split_once('.').ok_or_else(|| {
        DmlError::new(
            400,
            "FIELD_INTEGRITY_EXCEPTION",
            format!("Invalid field name: {full}"),
        )
    })?;
    let metadata = body.get("Metadata").cloned().unwrap_or_else(|| json!({}));
    let mut st = ctx.shared.state.lock();
    let id = st.orgs[ctx.org].add_custom_field(object, name, &metadata, ctx.now_ms)?;
    Ok(Answer::with(
        StatusCode::CREATED,
        json!({"id": id, "success": true, "errors": [], "warnings": [], "infos": []}),
    ))
}

pub(super) fn get(ctx: &Ctx<'_>) -> HResult {
    let t = ctx.params.object.clone().unwrap_or_default();
    if !t.eq_ignore_ascii_case("CustomField") {
        return Err(ApiErr::not_found());
    }
    let id = ctx.params.id.clone().unwrap_or_default();
    let st = ctx.shared.state.lock();
    let org = &st.orgs[ctx.org];
    let f = org
        .custom_fields
        .iter()
        .find(|f| f.id == id || f.id[..15] == *id.get(..15).unwrap_or(""))
        .ok_or_else(ApiErr::not_found)?;
    Ok(Answer::ok(json!({
        "attributes": {"type": "CustomField", "url": format!("{}/tooling/sobjects/CustomField/{}", ctx.base(), f.id)},
        "Id": f.id,
        "DeveloperName": f.name.trim_end_matches("__c"),
        "FullName": format!("{}.{}", f.object, f.name),
        "TableEnumOrId": f.object,
        "CreatedDate": iso(f.created_ms),
        "Metadata": f.metadata,
    })))
}
