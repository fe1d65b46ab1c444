//! `/api/v1/contacts`: create (deduplicated by e-mail), get, list (cursor paging, filters by
//! e-mail and updated-since), patch, archive. Nothing here deletes anything in Pipedrive, and a
//! contact reaches Pipedrive only when it is linked or in the "Pipedrive contacts" list.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tandem_core::TenantId;
use tandem_core::{keys, EmailAddress, FieldKey, FieldValue, LabeledValue};
use tandem_webhooks::{ApiError, ErrorCode};
use uuid::Uuid;

use super::{api_error, field_issues, invalid, json_object, only_keys, page_limit, path_id};
use crate::http::AppState;
use crate::sync::app::contact_json::{self, FieldCatalog, Mode};
use crate::sync::app::contacts::{self, PageQuery};
use crate::sync::app::local;

/// `tenant`'s contact `id` as the app sees it; another tenant's is 404 as if it did not exist.
async fn view(state: &AppState, tenant: &TenantId, id: Uuid) -> Result<Value, ApiError> {
    contact_json::view_in(&state.store, tenant, id.into())
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no contact {id}")))
}

async fn catalog(state: &AppState, tenant: &TenantId) -> Result<FieldCatalog, ApiError> {
    FieldCatalog::load(&state.store, tenant)
        .await
        .map_err(api_error)
}

/// `POST /api/v1/contacts` `{email?, fields?, in_pipedrive_list?}`: 201 with the new contact, or
/// 200 with the existing one that has the same e-mail (the app side deduplicates by e-mail).
#[utoipa::path(
    post,
    path = "/api/v1/contacts",
    operation_id = "createContact",
    summary = "Create a contact; an existing contact with the same e-mail absorbs it instead.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat a POST safely: the same key with the same body returns the first response; with another body, 409 idempotency_key_reused.")),
    request_body = crate::http::api::openapi::ContactCreate,
    responses((status = 201, description = "Created.", body = crate::http::api::openapi::Contact), (status = 200, description = "A contact with this e-mail existed; the values were merged into it.", body = crate::http::api::openapi::Contact), (status = 400, description = "Malformed JSON (`malformed_json`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 409, description = "Idempotency-Key reused with another body (`idempotency_key_reused`), or the contact with this e-mail is archived (`conflict`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 415, description = "Not JSON (`unsupported_media_type`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "Field-level validation errors (`validation_failed`, `unknown_field`).", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let object = json_object(&headers, &body)?;
    only_keys(&object, &["email", "fields", "in_pipedrive_list"], "")?;
    let catalog = catalog(&state, &tenant).await?;
    let mut fields = match object.get("fields") {
        None | Some(Value::Null) => Default::default(),
        Some(raw) => contact_json::parse_fields(&catalog, raw, "fields", Mode::Create)
            .map_err(field_issues)?,
    };
    match object.get("email") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            let email = EmailAddress::parse(text).map_err(|e| invalid("email", e.to_string()))?;
            if fields.contains_key(keys::EMAIL) {
                return Err(invalid(
                    "email",
                    "give the address either here or in fields.email, not both",
                ));
            }
            if let Ok(key) = FieldKey::new(keys::EMAIL) {
                fields.insert(
                    key,
                    FieldValue::Emails(vec![LabeledValue::new(email.original(), None, true)]),
                );
            }
        }
        Some(_) => return Err(invalid("email", "must be a string")),
    }
    let add_to_list = match object.get("in_pipedrive_list") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("in_pipedrive_list", "must be true or false")),
    };
    if fields.is_empty() {
        return Err(invalid(
            "fields",
            "a contact needs at least one value (an e-mail or a name)",
        ));
    }
    let upserted = local::create_contact_for(&state.engine, &tenant, fields, add_to_list)
        .await
        .map_err(api_error)?;
    let body = view(&state, &tenant, upserted.contact_id.uuid()).await?;
    let status = if upserted.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(
            header::LOCATION,
            format!("/api/v1/contacts/{}", upserted.contact_id),
        )],
        Json(body),
    )
        .into_response())
}

/// `GET /api/v1/contacts/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}",
    operation_id = "getContact",
    summary = "One contact.",
    params(("id" = Uuid, Path, description = "The contact's id (UUID).")),
    responses((status = 200, description = "The contact.", body = crate::http::api::openapi::Contact), (status = 404, description = "No such contact.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn get(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id, "contact")?;
    Ok(Json(view(&state, &tenant, id).await?))
}

/// `GET /api/v1/contacts/{id}/crm`: the contact's Pipedrive person, deals, leads and
/// activities, answered from the mirror (no Pipedrive call), with the mirror's freshness.
#[utoipa::path(
    get,
    path = "/api/v1/contacts/{id}/crm",
    operation_id = "getContactCrm",
    summary = "Journey conditions: the contact's Pipedrive person (owner, organization, labels), its deals (title, value, currency, pipeline, stage, status, owner, dates), leads, and open and done activities, from the live mirror without a Pipedrive call. `freshest_at` is when the newest of these rows was written. For a Salesforce connection: the Opportunities of the contact's roles as `deals` and its Tasks as `open_activities` / `done_activities`, each as Salesforce answered it plus `id`, `status` and a deal's `stage_id`, from what tandem keeps (read every `salesforce.related_poll_interval_secs`; `freshest_at` is the last read); `person` is the Lead or Contact as tandem last read it (`id`, `lead`, `owner_id`, `org_id`: the Contact's Account, null for a Lead; the numbers the `crm.owner_id` and `crm.org_id` filters take), null before a read kept it, and `leads` empty (a Lead is the person itself).",
    params(("id" = Uuid, Path, description = "The contact's id (UUID).")),
    responses((status = 200, description = "The contact's CRM records (`linked_person_id` null and empty lists for a contact not in Pipedrive).", body = Object), (status = 404, description = "No such contact.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 409, description = "No active connection, its mirror is off (`conflict`): switch the mirror on for the connection, or a Salesforce connection's initial sync has not read its Opportunities and Tasks yet.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn crm(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id, "contact")?;
    if contacts::load_in(&state.store, &tenant, id.into())
        .await?
        .is_none()
    {
        return Err(ApiError::new(ErrorCode::NotFound, "no such contact"));
    }
    let connection = active_connection(&state, &tenant).await?;
    let person = crate::sync::links::by_contact(&state.store, connection, id.into())
        .await?
        .map(|link| link.person_id);
    let records = if is_pipedrive(&state, connection).await? {
        mirror_on(&state, connection).await?;
        match person {
            Some(person) => {
                let db = crate::store::mirror::MirrorDb::in_store(&state.store);
                crate::mirror::conditions::of_person(&db, person).await?
            }
            None => crate::mirror::conditions::CrmRecords::default(),
        }
    } else {
        // Salesforce: from the Opportunities and Tasks tandem keeps (`sync::related`).
        let conn = crate::sync::connections::load(&state.engine, connection)
            .await
            .map_err(api_error)?;
        crate::sync::related::conditions(&state.engine, &conn, person)
            .await
            .map_err(api_error)?
            .ok_or_else(not_read_yet)?
    };
    let mut body = serde_json::to_value(&records).unwrap_or_default();
    body["contact_id"] = json!(id);
    body["connection_id"] = json!(connection);
    body["linked_person_id"] = json!(person);
    Ok(Json(body))
}

/// The active connection (journey conditions are answered for it); else 409 `conflict`.
async fn active_connection(
    state: &AppState,
    tenant: &TenantId,
) -> Result<tandem_core::ConnectionId, ApiError> {
    crate::sync::connections::active_id(&state.store, tenant)
        .await
        .map_err(api_error)?
        .ok_or_else(|| ApiError::new(ErrorCode::Conflict, "no CRM connection is active"))
}

async fn is_pipedrive(
    state: &AppState,
    connection: tandem_core::ConnectionId,
) -> Result<bool, ApiError> {
    Ok(crate::store::connections::get(&state.store, connection)
        .await?
        .is_some_and(|c| c.crm == crate::sync::connections::kind::PIPEDRIVE))
}

/// 409 `conflict` unless the Pipedrive connection's live mirror is on.
async fn mirror_on(
    state: &AppState,
    connection: tandem_core::ConnectionId,
) -> Result<(), ApiError> {
    if !crate::store::mirror::mirror_enabled(&state.store, connection).await? {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the connection's mirror is off: switch it on (connection card, or mirror_connection.enabled) so journeys can ask about deals and activities without calling Pipedrive",
        ));
    }
    Ok(())
}

/// Why a `crm.*` filter other than the person's owner, organization and being a Lead, the
/// deal's stage, status and owner, and the open activities' type is refused on a Salesforce
/// connection (today: a deal's pipeline).
const NOT_ON_SALESFORCE: &str = "is not available on a Salesforce connection: tandem keeps its Leads' and Contacts' owners and Accounts (crm.owner_id, crm.org_id), whether each is a Lead (crm.lead.open), its Opportunities (crm.deal.stage_id, crm.deal.status, crm.deal.owner_id) and its Tasks' types (crm.activity.open_type); Salesforce's Opportunities have no pipelines";

/// 409 `conflict`: a Salesforce connection whose initial sync has not read its Opportunities
/// and Tasks yet.
fn not_read_yet() -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        "tandem has not read the Salesforce connection's Opportunities and Tasks yet (its initial sync is running): ask again when it has finished",
    )
}

/// 409 `conflict`: a Salesforce connection whose persons' owners and Accounts tandem does not
/// keep yet (its initial sync is running, or ran before tandem kept them).
fn persons_not_read_yet() -> ApiError {
    ApiError::new(
        ErrorCode::Conflict,
        "tandem has not read the owners and Accounts of the Salesforce connection's Leads and Contacts yet: ask again when its initial sync has finished (a connection whose initial sync ran before tandem kept them needs Run initial sync once)",
    )
}

/// `PATCH /api/v1/contacts/{id}` `{fields}`: absent fields stay, `null` clears.
#[utoipa::path(
    patch,
    path = "/api/v1/contacts/{id}",
    operation_id = "updateContact",
    summary = "Change fields: absent fields stay, null clears. A linked contact's changes are written to Pipedrive as one PATCH.",
    params(("id" = Uuid, Path, description = "The contact's id (UUID).")),
    request_body = crate::http::api::openapi::ContactPatch,
    responses((status = 200, description = "The changed contact.", body = crate::http::api::openapi::Contact), (status = 404, description = "No such contact.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 409, description = "The contact is archived (`conflict`); archived contacts are read-only.", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "Field-level validation errors.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn patch(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id, "contact")?;
    let object = json_object(&headers, &body)?;
    only_keys(&object, &["fields"], "")?;
    let catalog = catalog(&state, &tenant).await?;
    let fields = match object.get("fields") {
        Some(raw) => contact_json::parse_fields(&catalog, raw, "fields", Mode::Change)
            .map_err(field_issues)?,
        None => return Err(invalid("fields", "is required")),
    };
    local::update_contact_for(&state.engine, &tenant, id.into(), fields)
        .await
        .map_err(api_error)?;
    Ok(Json(view(&state, &tenant, id).await?))
}

/// `POST /api/v1/contacts/{id}/archive`: archives locally; never deletes in Pipedrive.
#[utoipa::path(
    post,
    path = "/api/v1/contacts/{id}/archive",
    operation_id = "archiveContact",
    summary = "Archive locally. Never deletes in Pipedrive (delete the person there).",
    params(("id" = Uuid, Path, description = "The contact's id (UUID)."), ("Idempotency-Key" = Option<String>, Header, description = "Repeat a POST safely: the same key with the same body returns the first response; with another body, 409 idempotency_key_reused.")),
    responses((status = 200, description = "The archived contact.", body = crate::http::api::openapi::Contact), (status = 404, description = "No such contact.", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn archive(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(&id, "contact")?;
    local::archive_contact(&state.engine, &tenant, id.into())
        .await
        .map_err(api_error)?;
    Ok(Json(view(&state, &tenant, id).await?))
}

const LIST_PARAMS: &[&str] = &[
    "cursor",
    "limit",
    "email",
    "updated_since",
    "include_archived",
];

/// The journey-condition filters of the contacts list (issue 22), answered from the live
/// mirror: a contact matches when its linked Pipedrive person satisfies every one given.
/// The parameters' names carry dots (`crm.deal.stage_id`); this type documents them.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Read from the query map by name; the type is the documentation.
pub(crate) struct CrmFilters {
    /// The person's owner (a Pipedrive user id; on Salesforce the Lead's or Contact's `OwnerId`, as tandem's number for it).
    #[serde(rename = "crm.owner_id")]
    #[param(rename = "crm.owner_id", minimum = 1)]
    owner_id: Option<i64>,
    /// The person's organization (a Pipedrive organization id; on Salesforce a Contact's `AccountId`, as tandem's number for it).
    #[serde(rename = "crm.org_id")]
    #[param(rename = "crm.org_id", minimum = 1)]
    org_id: Option<i64>,
    /// The person has a deal in this stage (together with the other `crm.deal.*` filters, the same deal).
    #[serde(rename = "crm.deal.stage_id")]
    #[param(rename = "crm.deal.stage_id", minimum = 1)]
    deal_stage_id: Option<i64>,
    /// The person has a deal in this pipeline.
    #[serde(rename = "crm.deal.pipeline_id")]
    #[param(rename = "crm.deal.pipeline_id", minimum = 1)]
    deal_pipeline_id: Option<i64>,
    /// The person has a deal of this status: `open`, `won` or `lost`.
    #[serde(rename = "crm.deal.status")]
    #[param(rename = "crm.deal.status", pattern = "^(open|won|lost)$")]
    deal_status: Option<String>,
    /// The person has a deal owned by this Pipedrive user.
    #[serde(rename = "crm.deal.owner_id")]
    #[param(rename = "crm.deal.owner_id", minimum = 1)]
    deal_owner_id: Option<i64>,
    /// The person has an open (not done) activity of this type (the activity type's key: `call`, `meeting`, …). On Salesforce an open Task whose `Type` (else `TaskSubtype`) is this, in any case (`call` finds `Call`).
    #[serde(rename = "crm.activity.open_type")]
    #[param(rename = "crm.activity.open_type", pattern = "^[A-Za-z0-9_]{1,64}$")]
    activity_open_type: Option<String>,
    /// `true`: the person has an open (not archived) lead; `false`: it has none. On Salesforce
    /// the person is itself the lead: `true` when it is a Lead not converted yet.
    #[serde(rename = "crm.lead.open")]
    #[param(rename = "crm.lead.open")]
    lead_open: Option<bool>,
}

/// The `crm.*` filters the contacts list knows (the names [`CrmFilters`] documents).
const CRM_PARAMS: &[&str] = &[
    "crm.owner_id",
    "crm.org_id",
    "crm.deal.stage_id",
    "crm.deal.pipeline_id",
    "crm.deal.status",
    "crm.deal.owner_id",
    "crm.activity.open_type",
    "crm.lead.open",
];

/// The `crm.*` filters of a list query (none given: `None`); 422 `unknown_field` for a
/// `crm.` name not in [`CRM_PARAMS`], 422 `validation_failed` for a bad value.
fn crm_conditions(
    query: &HashMap<String, String>,
) -> Result<Option<crate::store::crm_conditions::CrmConditions>, ApiError> {
    use crate::store::crm_conditions::CrmConditions;
    let id = |name: &str| -> Result<Option<i64>, ApiError> {
        query
            .get(name)
            .map(|v| match v.trim().parse::<i64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(invalid(name, "must be a positive integer (a Pipedrive id)")),
            })
            .transpose()
    };
    let mut conditions = CrmConditions {
        owner_id: id("crm.owner_id")?,
        org_id: id("crm.org_id")?,
        ..CrmConditions::default()
    };
    conditions.deal.stage_id = id("crm.deal.stage_id")?;
    conditions.deal.pipeline_id = id("crm.deal.pipeline_id")?;
    conditions.deal.owner_id = id("crm.deal.owner_id")?;
    conditions.deal.status = query
        .get("crm.deal.status")
        .map(|v| match v.as_str() {
            "open" | "won" | "lost" => Ok(v.clone()),
            _ => Err(invalid("crm.deal.status", "must be open, won or lost")),
        })
        .transpose()?;
    conditions.activity_open_type = query
        .get("crm.activity.open_type")
        .map(|v| {
            let ok = (1..=64).contains(&v.len())
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                Ok(v.clone())
            } else {
                Err(invalid(
                    "crm.activity.open_type",
                    "must be an activity type's key (letters, digits, _; e.g. call)",
                ))
            }
        })
        .transpose()?;
    conditions.lead_open = match query.get("crm.lead.open").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(invalid("crm.lead.open", "must be true or false")),
    };
    Ok((!conditions.is_empty()).then_some(conditions))
}

fn encode_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    ))
}

fn decode_cursor(text: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    Some((
        DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
        Uuid::parse_str(id).ok()?,
    ))
}

/// `GET /api/v1/contacts?email=&updated_since=&cursor=&limit=&include_archived=`: contacts in
/// the order they last changed; `next_cursor` continues the listing (null at the end).
#[utoipa::path(
    get,
    path = "/api/v1/contacts",
    operation_id = "listContacts",
    summary = "Contacts in the order they last changed, with cursor paging. The `crm.*` filters are journey conditions answered from the connection's live mirror (no Pipedrive call): a contact matches when its linked Pipedrive person satisfies every one given. On a Salesforce connection they are answered from what tandem keeps (no Salesforce call): `crm.owner_id`, `crm.org_id` and `crm.lead.open` from its Leads and Contacts as the change poll last read them (the ids are tandem's numbers for Salesforce ids, as in the contact's owner field, `GET /api/v1/contacts/{id}/crm` and the trigger events; a Lead has no organization; an open lead is a Lead not converted yet), the `crm.deal.*` ones from its Opportunities, `crm.activity.open_type` from its open Tasks' `Type` (else `TaskSubtype`; compared in any case: `call` finds `Call`; a `Type` the connecting user may not see matches no type).",
    params(CrmFilters, ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page."), ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size, 1 to 200 (default 50)."), ("email" = Option<String>, Query, format = Email, description = "Only the contact(s) with this e-mail (case-insensitive)."), ("updated_since" = Option<DateTime<Utc>>, Query, description = "Only contacts changed at or after this RFC 3339 time."), ("include_archived" = Option<bool>, Query, description = "Include archived contacts (default false).")),
    responses((status = 200, description = "A page of contacts.", body = crate::http::api::openapi::ContactPage), (status = 409, description = "A `crm.*` filter while no connection is active, its live mirror is off, or a Salesforce connection's initial sync has not read its Opportunities yet, or (`crm.owner_id`, `crm.org_id`, `crm.lead.open`) its Leads' and Contacts' owners and Accounts: an initial sync that ran before tandem kept them needs Run initial sync once (`conflict`).", body = tandem_webhooks::error::ErrorBody<'static>), (status = 422, description = "A bad filter value (`validation_failed`, naming the parameter), a filter a Salesforce connection cannot answer (`validation_failed`, naming it: only `crm.owner_id`, `crm.org_id` and `crm.lead.open`, the Lead's or Contact's `OwnerId`, a Contact's `AccountId` and whether the person is a Lead as tandem last read them, `crm.deal.stage_id`, `crm.deal.status` and `crm.deal.owner_id`, over its Opportunities, and `crm.activity.open_type`, over its open Tasks, answer there; `crm.deal.pipeline_id` does not), or an unknown parameter or `crm.*` filter (`unknown_field`, listing the known ones).", body = tandem_webhooks::error::ErrorBody<'static>))
)]
pub(super) async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<TenantId>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let mut unknown: Vec<&String> = query
        .keys()
        .filter(|k| !LIST_PARAMS.contains(&k.as_str()) && !CRM_PARAMS.contains(&k.as_str()))
        .collect();
    unknown.sort();
    if let Some(unknown) = unknown.first() {
        let message = if unknown.starts_with("crm.") {
            format!(
                "unknown CRM filter; the CRM filters are {}",
                CRM_PARAMS.join(", ")
            )
        } else {
            format!(
                "unknown parameter; allowed are {} and the CRM filters {}",
                LIST_PARAMS.join(", "),
                CRM_PARAMS.join(", ")
            )
        };
        return Err(
            ApiError::new(ErrorCode::UnknownField, "unknown query parameter").with_fields(vec![
                tandem_webhooks::FieldError {
                    field: (*unknown).clone(),
                    message,
                },
            ]),
        );
    }
    let crm = crm_conditions(&query)?;
    let email = query
        .get("email")
        .map(|e| EmailAddress::parse(e).map_err(|error| invalid("email", error.to_string())))
        .transpose()?;
    let updated_since = query
        .get("updated_since")
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| invalid("updated_since", "must be an RFC 3339 time"))
        })
        .transpose()?;
    let after = query
        .get("cursor")
        .map(|c| decode_cursor(c).ok_or_else(|| invalid("cursor", "is not a cursor this API gave")))
        .transpose()?;
    let include_archived = match query.get("include_archived").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("include_archived", "must be true or false")),
    };
    let limit = page_limit(&query)?;
    let crm = match crm {
        None => None,
        Some(conditions) => {
            let connection = active_connection(&state, &tenant).await?;
            let persons = if is_pipedrive(&state, connection).await? {
                mirror_on(&state, connection).await?;
                let db = crate::store::mirror::MirrorDb::in_store(&state.store);
                match crate::store::crm_conditions::person_subqueries(&db, &conditions, 2).await? {
                    Some(persons) => persons,
                    // A table or column a filter needs is not in the mirror yet: nobody matches.
                    None => return Ok(Json(json!({ "data": [], "next_cursor": null }))),
                }
            } else {
                // Salesforce: the person's owner and Account as the Lead/Contact reads left them,
                // the deal filters over the Opportunities tandem keeps, the activity type over
                // its Tasks.
                let conn = crate::sync::connections::load(&state.engine, connection)
                    .await
                    .map_err(api_error)?;
                if !crate::sync::related::known(&state.engine, &conn)
                    .await
                    .map_err(api_error)?
                {
                    return Err(not_read_yet());
                }
                if (conditions.owner_id.is_some()
                    || conditions.org_id.is_some()
                    || conditions.lead_open.is_some())
                    && !crate::sync::related::persons_known(&state.engine, &conn)
                        .await
                        .map_err(api_error)?
                {
                    return Err(persons_not_read_yet());
                }
                crate::store::crm_related::person_subqueries(
                    &state.store,
                    connection,
                    &conditions,
                    2,
                )
                .map_err(|name| invalid(name, NOT_ON_SALESFORCE))?
            };
            Some((connection.uuid(), persons))
        }
    };
    let page_query = PageQuery {
        tenant: tenant.clone(),
        email: email.map(|e| e.as_str().to_owned()),
        updated_since,
        after,
        include_archived,
        limit,
        crm,
    };
    let (ids, next) = contacts::page(&state.store, &page_query)
        .await
        .map_err(api_error)?;
    let mut data = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(contact) = contact_json::view_in(&state.store, &tenant, id.into())
            .await
            .map_err(api_error)?
        {
            data.push(contact);
        }
    }
    Ok(Json(json!({
        "data": data,
        "next_cursor": next.map(|(at, id)| encode_cursor(at, id)),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_crm_filters_are_the_ones_the_list_reads() {
        use utoipa::IntoParams;
        let documented: Vec<String> = CrmFilters::into_params(|| None)
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(documented, CRM_PARAMS);
    }

    #[test]
    fn crm_filters_parse_and_bad_values_name_their_parameter() {
        let query = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let parsed = crm_conditions(&query(&[
            ("crm.deal.stage_id", "3"),
            ("crm.deal.status", "open"),
            ("crm.lead.open", "false"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(parsed.deal.stage_id, Some(3));
        assert_eq!(parsed.lead_open, Some(false));
        assert!(crm_conditions(&query(&[])).unwrap().is_none());
        for (name, value) in [
            ("crm.deal.stage_id", "three"),
            ("crm.owner_id", "-1"),
            ("crm.deal.status", "pending"),
            ("crm.lead.open", "yes"),
            ("crm.activity.open_type", "call; drop"),
        ] {
            let error = crm_conditions(&query(&[(name, value)])).unwrap_err();
            assert_eq!(error.code, ErrorCode::ValidationFailed);
            assert_eq!(error.fields[0].field, name);
        }
    }

    #[test]
    fn a_cursor_round_trips_and_garbage_is_no_cursor() {
        let at = Utc::now();
        let id = Uuid::now_v7();
        assert_eq!(decode_cursor(&encode_cursor(at, id)), Some((at, id)));
        assert_eq!(decode_cursor("not-a-cursor"), None);
    }
}
