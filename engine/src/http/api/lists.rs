//! `/api/v1/lists`: the built-in "Pipedrive contacts" list (`pipedrive_contacts`). Adding a
//! contact pushes it to Pipedrive; removing one that is not in Pipedrive yet stops it from being
//! pushed; a contact linked to a person stays (the list reflects what is in Pipedrive; delete
//! the person there). Nothing is ever deleted in Pipedrive from here.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use super::{api_error, invalid, json_object, only_keys, page_limit, path_id};
use crate::http::AppState;
use crate::sync::contacts::{self, PIPEDRIVE_LIST};
use crate::sync::local::{self, ListRemoval};
use crate::sync::{contact_json, SyncError};

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
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut data = Vec::new();
    for (key, name, description) in LISTS {
        let size = contacts::list_size(state.store.db(), key)
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
pub(super) async fn members(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let key = known_list(&key)?;
    let after = query
        .get("cursor")
        .map(|c| Uuid::parse_str(c).map_err(|_| invalid("cursor", "is not a cursor this API gave")))
        .transpose()?;
    let (rows, more) = contacts::list_members(state.store.db(), key, after, page_limit(&query)?)
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
pub(super) async fn add(
    State(state): State<AppState>,
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
    contacts::load(state.store.db(), id)
        .await
        .map_err(api_error)?
        .ok_or_else(|| invalid("contact_id", format!("no contact {id}")))?;
    let added = local::add_to_pipedrive_list(&state.engine, id)
        .await
        .map_err(api_error)?;
    let view = contact_json::view(state.store.db(), id)
        .await
        .map_err(api_error)?
        .ok_or_else(|| api_error(SyncError::ContactNotFound(id)))?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

/// `DELETE /api/v1/lists/{key}/members/{contact_id}`: 204; 409 for a contact linked to a person.
pub(super) async fn remove(
    State(state): State<AppState>,
    Path((key, contact_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    known_list(&key)?;
    let id = path_id(&contact_id, "contact")?;
    match local::remove_from_pipedrive_list(&state.engine, id)
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
