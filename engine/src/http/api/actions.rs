//! Journey actions over HTTP: `POST /api/v1/actions/{action}` (Idempotency-Key required) and
//! `GET /api/v1/actions/{id}`. The rules live in `sync::actions`.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::Value;
use tandem_core::TenantId;
use tandem_core::{ConnectionId, ContactId};
use tandem_webhooks::{ApiError, ErrorCode, FieldError};
use uuid::Uuid;

use super::{api_error, json_object, only_keys};
use crate::http::AppState;
use crate::sync::outbound::actions::{self, ContactRef, Submit};

#[utoipa::path(
    post,
    path = "/api/v1/actions/{action}",
    operation_id = "submitAction",
    summary = "Run a journey action on a contact, on one CRM connection (Pipedrive or Salesforce): the one named by `connection_id`, else the one that links the contact (the contact's person is there; linked in several: 422 connection_required), else the oldest active connection. add_deal, assign_person_owner, schedule_activity, add_to_campaign (these create the CRM person first when the contact has none: on Salesforce a Lead, or a Contact with salesforce.create_as), update_person_field, update_deal_stage (these never create one: 422 no_pipedrive_person). On Salesforce, add_deal on a Lead answers 422 lead_not_converted (an Opportunity's contact role needs a Contact); add_to_campaign is Salesforce only (a CampaignMember; 422 action_not_supported on Pipedrive). Queued through the outbox; read the result with GET /api/v1/actions/{id}.",
    params(("action" = String, Path, description = "add_deal | assign_person_owner | schedule_activity | update_person_field | update_deal_stage | add_to_campaign"), ("Idempotency-Key" = String, Header, description = "Required: the same key returns the first action (no second deal); another request with it gets 409 idempotency_key_reused.")),
    request_body = crate::http::api::openapi::ActionRequest,
    responses((status = 202, description = "Queued.", body = crate::http::api::openapi::Action), (status = 200, description = "A replay: the first action, as it is now.", body = crate::http::api::openapi::Action), (status = 400, description = "No Idempotency-Key (`idempotency_key_required`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 404, description = "Unknown action or contact.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 409, description = "The key was used for another request (`idempotency_key_reused`), or `connection_id` names a disconnected connection (`connection_disconnected`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "`connection_id` names no connection (`unknown_connection`), no `connection_id` while the contact is linked in several connections (`connection_required`), invalid parameters (unknown stage, unknown field, unknown campaign, bad type: `validation_failed`), no CRM person for a non-creating action (`no_pipedrive_person`), add_deal on a Salesforce Lead (`lead_not_converted`), or an action the connection's CRM does not have (`action_not_supported`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 502, description = "Pipedrive failed or refused a request the action needed (`pipedrive_rejected`), with its text.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 503, description = "Pipedrive is unreachable or rate-limited (`pipedrive_unavailable`, `pipedrive_rate_limited`), or no connection is active (`connection_unavailable`).", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn submit(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let action = actions::parse_action(&action).map_err(api_error)?;
    let key = headers
        .get(super::idempotency::HEADER)
        .and_then(|k| k.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::IdempotencyKeyRequired,
                "journey actions need an `Idempotency-Key` header, so a retried journey step never acts twice",
            )
        })?
        .to_owned();
    let object = json_object(&headers, &body)?;
    only_keys(
        &object,
        &["contact_id", "email", "params", "connection_id"],
        "",
    )?;
    let connection_id = match object.get("connection_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(
            ConnectionId::parse(id)
                .map_err(|_| super::invalid("connection_id", "must be a UUID"))?,
        ),
        Some(_) => return Err(super::invalid("connection_id", "must be a UUID (a string)")),
    };
    let contact = match (object.get("contact_id"), object.get("email")) {
        (Some(Value::String(id)), None) => ContactRef::Id {
            contact_id: ContactId::parse(id).map_err(|_| {
                ApiError::new(ErrorCode::ValidationFailed, "contact_id must be a UUID").with_fields(
                    vec![FieldError {
                        field: "contact_id".into(),
                        message: "must be a UUID".into(),
                    }],
                )
            })?,
        },
        (None, Some(Value::String(email))) => ContactRef::Email {
            email: email.clone(),
        },
        _ => {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                "give exactly one of `contact_id` or `email`",
            )
            .with_fields(vec![FieldError {
                field: "contact_id".into(),
                message: "give exactly one of contact_id or email".into(),
            }]))
        }
    };
    let params = object
        .get("params")
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    let submitted = actions::submit_for(
        &state.engine,
        &tenant,
        Submit {
            action,
            contact,
            params,
            idempotency_key: key,
            connection_id,
        },
    )
    .await
    .map_err(api_error)?;
    let status = if submitted.replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(submitted.record)))
}

#[utoipa::path(
    get,
    path = "/api/v1/actions/{action}",
    operation_id = "getAction",
    summary = "An action's status: queued, done (with the CRM's ids) or failed (with the CRM's error, verbatim). Here `{action}` is the action's id.",
    params(("action" = Uuid, Path, description = "The action's id (UUID).")),
    responses((status = 200, description = "The action.", body = crate::http::api::openapi::Action), (status = 404, description = "No such action.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    match actions::get_for(&state.engine, &tenant, id)
        .await
        .map_err(api_error)?
    {
        Some(record) => Ok(Json(record)),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no action {id}"),
        )),
    }
}
