//! `/api/v1/lists`: the built-in "Pipedrive contacts" list (`pipedrive_contacts`). Adding a
//! contact pushes it to Pipedrive; removing one that is not in Pipedrive yet stops it from being
//! pushed; a contact linked to a person stays (the list reflects what is in Pipedrive; delete
//! the person there). Nothing is ever deleted in Pipedrive from here.

use std::collections::HashMap;
use tandem_core::ContactId;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tandem_core::TenantId;
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use super::{api_error, invalid, json_object, only_keys, page_limit, path_id};
use crate::http::AppState;
use crate::sync::app::contacts::{self, PIPEDRIVE_LIST};
use crate::sync::app::local::{self, ListRemoval};
use crate::sync::{app::contact_json, SyncError};

const LISTS: &[(&str, &str, &str)] = &[(
    PIPEDRIVE_LIST,
    "Pipedrive contacts",
    "Every contact that is in Pipedrive. Adding a contact creates (or links) its Pipedrive person.",
)];

fn known_list(key: &str) -> Result<&'static str, ApiError> {
    LISTS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(k, _, _)| *k)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no list {key:?}")))
}

/// `GET /api/v1/lists`.
#[utoipa::path(
    get,
    path = "/api/v1/lists",
    operation_id = "listLists",
    summary = "The lists (the built-in `pipedrive_contacts`).",
    responses((status = 200, description = "The lists.", body = crate::http::api::openapi::ListPage))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
) -> Result<Json<Value>, ApiError> {
    let mut data = Vec::new();
    for (key, name, description) in LISTS {
        let size = contacts::list_size(&state.store, &tenant, key)
            .await
            .map_err(api_error)?;
        data.push(json!({
            "key": key,
            "name": name,
            "description": description,
            "member_count": size,
        }));
    }
    Ok(Json(json!({ "data": data })))
}

/// `GET /api/v1/lists/{key}/members?cursor=&limit=`.
#[utoipa::path(
    get,
    path = "/api/v1/lists/{key}/members",
    operation_id = "listMembers",
    summary = "Members, by contact id.",
    params(("key" = String, Path, description = "The list's key; `pipedrive_contacts` is built in."), ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50).")),
    responses((status = 200, description = "A page of members.", body = crate::http::api::openapi::MemberPage), (status = 404, description = "No such list.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn members(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = known_list(&key)?;
    let after = query
        .get("cursor")
        .map(|c| {
            ContactId::parse(c).map_err(|_| invalid("cursor", "is not a cursor this API gave"))
        })
        .transpose()?;
    let (rows, more) =
        contacts::list_members(&state.store, &tenant, key, after, page_limit(&query)?)
            .await
            .map_err(api_error)?;
    let next = if more {
        rows.last().map(|(id, _)| *id)
    } else {
        None
    };
    let data: Vec<Value> = rows
        .into_iter()
        .map(|(id, added_at)| {
            json!({
                "contact_id": id,
                "added_at": added_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            })
        })
        .collect();
    Ok(Json(json!({ "data": data, "next_cursor": next })))
}

/// `POST /api/v1/lists/{key}/members` `{contact_id}`: 201 when added, 200 when it already was a
/// member; the body is the contact.
#[utoipa::path(
    post,
    path = "/api/v1/lists/{key}/members",
    operation_id = "addMember",
    summary = "Add a contact. Adding to `pipedrive_contacts` creates (or links) its Pipedrive person, with the apId field set.",
    params(("key" = String, Path, description = "The list's key; `pipedrive_contacts` is built in."), ("Idempotency-Key" = Option<String>, Header, description = "Repeat a POST safely: the same key with the same body returns the first response; with another body, 409 idempotency_key_reused.")),
    request_body = crate::http::api::openapi::MemberAdd,
    responses((status = 201, description = "Added.", body = crate::http::api::openapi::Contact), (status = 200, description = "It already was a member.", body = crate::http::api::openapi::Contact), (status = 404, description = "No such list.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 409, description = "The contact is archived (`conflict`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "No such contact, or a bad body.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn add(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let key = known_list(&key)?;
    let object = json_object(&headers, &body)?;
    only_keys(&object, &["contact_id"], "")?;
    let id = match object.get("contact_id") {
        Some(Value::String(text)) => Uuid::parse_str(text)
            .map_err(|_| invalid("contact_id", "must be a contact id (UUID)"))?,
        Some(_) => return Err(invalid("contact_id", "must be a string")),
        None => return Err(invalid("contact_id", "is required")),
    };
    debug_assert_eq!(key, PIPEDRIVE_LIST);
    contacts::load_in(&state.store, &tenant, id.into())
        .await
        .map_err(api_error)?
        .ok_or_else(|| invalid("contact_id", format!("no contact {id}")))?;
    let added = local::add_to_pipedrive_list_for(&state.engine, &tenant, id.into())
        .await
        .map_err(api_error)?;
    let view = contact_json::view_in(&state.store, &tenant, id.into())
        .await
        .map_err(api_error)?
        .ok_or_else(|| api_error(SyncError::ContactNotFound(id.into())))?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

/// `DELETE /api/v1/lists/{key}/members/{contact_id}`: 204; 409 for a contact linked to a person.
#[utoipa::path(
    delete,
    path = "/api/v1/lists/{key}/members/{contact_id}",
    operation_id = "removeMember",
    summary = "Remove a contact that is not in Pipedrive yet (it will not be pushed). Never deletes in Pipedrive.",
    params(("key" = String, Path, description = "The list's key; `pipedrive_contacts` is built in."), ("contact_id" = Uuid, Path, description = "The contact's id.")),
    responses((status = 204, description = "Removed."), (status = 404, description = "Not a member, or no such list.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 409, description = "The contact is linked to a Pipedrive person: delete the person in Pipedrive instead.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn remove(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path((key, contact_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    known_list(&key)?;
    let id = path_id(&contact_id, "contact")?;
    match local::remove_from_pipedrive_list(&state.engine, &tenant, id.into())
        .await
        .map_err(api_error)?
    {
        ListRemoval::Removed => Ok(StatusCode::NO_CONTENT),
        ListRemoval::NotAMember => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("contact {id} is not in the list"),
        )),
        ListRemoval::LinkedToPerson { person_id } => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "contact {id} is Pipedrive person {person_id}; the list reflects what is in Pipedrive, and tandem never deletes there: delete the person in Pipedrive to remove it"
            ),
        )),
    }
}
