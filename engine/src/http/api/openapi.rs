//! The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`, derived with
//! utoipa (ADR 10): every handler carries its own `#[utoipa::path]` (method, path, parameters,
//! bodies, responses), and the router is built from the same `routes!` lists
//! ([`super::routes`]), so a route cannot exist without its document entry. The bodies'
//! schemas are the types below and the error table of `tandem_webhooks::error`.

use std::sync::LazyLock;

use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tandem_webhooks::error::ErrorBody;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// The document's frame; the paths come from the handlers (see [`super::routes`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tandem API",
        version = "1.0.0",
        description = "Read and change contacts synced with Pipedrive, manage the \"Pipedrive contacts\" list, and subscribe to contact events (Standard Webhooks). A local contact reaches Pipedrive only when it is linked to a person, added to the \"Pipedrive contacts\" list, or touched by a creating journey action; nothing is ever deleted in Pipedrive from here."
    ),
    servers((url = "/")),
    security(("apiKey" = [])),
    components(schemas(ErrorBody<'static>, ContactEvent)),
    modifiers(&ApiKey)
)]
struct ApiDoc;

struct ApiKey;

impl Modify for ApiKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A key from `security.api_keys` (any tenant) or `security.tenant_api_keys` (its own tenant only)."))
                    .build(),
            ),
        );
    }
}

/// The frame the routes are added to.
pub(super) fn frame() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document, as served.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut document = serde_json::to_value(super::document()).unwrap_or_default();
    finish(&mut document);
    document
});

/// What the derivation does not say by itself: every authenticated operation can answer 401
/// and any other error with the one error body, and takes the `Tandem-Tenant` header (400
/// `invalid_tenant` when malformed); the document itself needs no key; the webhooks tandem
/// sends to subscribers.
fn finish(document: &mut Value) {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
        })
    };
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (_, operation) in item.iter_mut() {
                if path == OPENAPI_PATH {
                    operation["security"] = json!([]);
                    continue;
                }
                let tenant = json!({ "$ref": "#/components/parameters/TandemTenant" });
                match operation["parameters"].as_array_mut() {
                    Some(parameters) => parameters.push(tenant),
                    None => operation["parameters"] = json!([tenant]),
                }
                let responses = &mut operation["responses"];
                if responses.get("401").is_none() {
                    responses["401"] = error("Missing or wrong API key (`unauthorized`).");
                }
                if responses.get("400").is_none() {
                    responses["400"] =
                        error("A malformed `Tandem-Tenant` header (`invalid_tenant`).");
                }
                responses["default"] = error("Any other error: `{code, detail, fields?}`.");
            }
        }
    }
    document["openapi"] = json!("3.1.0");
    document["components"]["parameters"]["TandemTenant"] = json!({
        "name": "Tandem-Tenant",
        "in": "header",
        "required": false,
        "description": "The tenant (the app's account) the request acts for; absent: `default`. Each tenant has its own contacts (deduplicated by e-mail within the tenant), CRM list, webhook subscriptions, journey actions and CRM connections; another tenant's contacts, subscriptions, actions and e-mails answer 404 as if they did not exist, and naming another tenant's connection is 422 `unknown_connection`. A malformed value is 400 `invalid_tenant` (never the default tenant).",
        "schema": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$", "default": "default" }
    });
    // Request bodies refuse unknown keys (422 `unknown_field`); contact fields are open to the
    // fields mapped on the connection.
    let schemas = &mut document["components"]["schemas"];
    for closed in [
        "ContactCreate",
        "ContactPatch",
        "MemberAdd",
        "SubscriptionCreate",
        "ActionRequest",
        "LabeledValue",
    ] {
        schemas[closed]["additionalProperties"] = json!(false);
    }
    schemas["Fields"]["additionalProperties"] = json!(true);
    schemas["SubscriptionCreate"]["properties"]["url"]["format"] = json!("uri");
    document["webhooks"] = json!({
        "contactEvent": {
            "post": {
                "summary": "A contact changed in Pipedrive (contact.created, contact.updated), was linked or unlinked (contact.linked, contact.unlinked), or could not be written to Pipedrive (contact.sync_failed); a journey action finished (action.done, action.failed); for subscriptions that name them in event_types, a journey trigger from Pipedrive, or from Salesforce's Opportunities and Tasks for the deal.* and activity.* ones (deal.created, deal.stage_changed, deal.won, deal.lost, deal.reopened, deal.owner_changed, deal.deleted, activity.created, activity.completed, activity.overdue, person.owner_changed, person.deleted, person.merged, organization.changed, lead.created, lead.converted: data has object, id, the record, previous, change, contact_ids, occurred_at, late). Signed with Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>); a contact's events arrive in order; retried with backoff until a 2xx.",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ContactEvent" } } } },
                "responses": { "200": { "description": "Any 2xx acknowledges the event." } }
            }
        }
    });
}

const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Every operation of the document, as (method, path) in lower case: the routes of the
/// `/api/v1` router, since both come from [`super::routes`].
pub fn operations() -> Vec<(String, String)> {
    let mut operations = Vec::new();
    if let Some(paths) = DOCUMENT["paths"].as_object() {
        for (path, item) in paths {
            for method in [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ] {
                if item.get(method).is_some() {
                    operations.push((method.to_owned(), path.clone()));
                }
            }
        }
    }
    operations
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document.", content_type = "application/json"))
)]
pub(super) async fn serve() -> Json<Value> {
    Json(DOCUMENT.clone())
}

// ---------------------------------------------------------------------------------------------
// Body schemas. The handlers read bodies field by field (to name every bad field in a 422), so
// these types describe them; the tests below and in `tests/it/app_api.rs` check the examples.

/// An e-mail address or phone number with its label.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct LabeledValue {
    value: String,
    label: Option<String>,
    primary: Option<bool>,
}

/// E-mail addresses or phone numbers: a list, or one value as a string.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) enum Multi {
    List(Vec<LabeledValue>),
    One(String),
}

/// Field values by name: the canonical fields below, plus any field mapped on the Pipedrive
/// connection (typed by its Pipedrive type). Empty fields are not shown. Unknown names are
/// refused.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Fields {
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    org_name: Option<String>,
    email: Option<Multi>,
    phone: Option<Multi>,
    /// Pipedrive's owner user id (set in Pipedrive).
    #[schema(read_only)]
    owner_id: Option<f64>,
    label: Option<Vec<i64>>,
}

/// A contact.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Contact {
    id: Uuid,
    /// The primary e-mail, normalised (lower case).
    email: Option<String>,
    fields: Fields,
    in_pipedrive_list: bool,
    pipedrive_person_id: Option<i64>,
    archived: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// `POST /api/v1/contacts`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ContactCreate {
    /// Shorthand for fields.email with one primary address.
    email: Option<String>,
    fields: Option<Fields>,
    /// Also add it to the Pipedrive contacts list (which pushes it).
    in_pipedrive_list: Option<bool>,
}

/// `PATCH /api/v1/contacts/{id}`: absent fields stay, `null` clears.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ContactPatch {
    fields: Fields,
}

/// A page of contacts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ContactPage {
    data: Vec<Contact>,
    /// Pass as `cursor` for the next page; null at the end.
    next_cursor: Option<String>,
}

/// A list of contacts.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct List {
    key: String,
    name: String,
    description: String,
    member_count: u64,
}

/// The lists.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ListPage {
    data: Vec<List>,
}

/// `POST /api/v1/lists/{key}/members`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct MemberAdd {
    contact_id: Uuid,
}

/// A list member.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Member {
    contact_id: Uuid,
    added_at: DateTime<Utc>,
}

/// A page of members.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct MemberPage {
    data: Vec<Member>,
    next_cursor: Option<String>,
}

/// `POST /api/v1/webhook-subscriptions`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SubscriptionCreate {
    url: String,
    /// Your own whsec_<base64> secret; generated when absent.
    secret: Option<String>,
    /// The events to receive: contact events (contact.created, contact.updated, contact.linked,
    /// contact.unlinked, contact.sync_failed), action events (action.done, action.failed) and
    /// CRM journey triggers (deal.created, deal.stage_changed, deal.won, deal.lost,
    /// deal.reopened, deal.owner_changed, deal.deleted, activity.created, activity.completed,
    /// activity.overdue, person.owner_changed, person.deleted, person.merged,
    /// organization.changed, lead.created, lead.converted), or `*` for all. Absent: the contact
    /// and action events.
    event_types: Option<Vec<String>>,
    /// Deal events only for deals in (or moving from or to) these pipelines.
    pipeline_ids: Option<Vec<i64>>,
    /// Deal events only for deals in (or moving from or to) these stages.
    stage_ids: Option<Vec<i64>>,
}

/// A webhook subscription (without its secret).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Subscription {
    id: Uuid,
    url: String,
    enabled: bool,
    consecutive_failures: i64,
    disabled_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    event_types: Vec<String>,
    pipeline_ids: Vec<i64>,
    stage_ids: Vec<i64>,
    /// The CRM trigger types among `event_types` that cannot fire with today's connections,
    /// with why: no active connection, or, without a Salesforce connection (which sends every
    /// type), `lead.created` and `activity.overdue` while no Pipedrive connection keeps its
    /// live mirror.
    /// Empty when every type can fire.
    unavailable_event_types: Vec<UnavailableEventType>,
}

/// An event type a subscription names that cannot fire now, and why.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct UnavailableEventType {
    #[serde(rename = "type")]
    kind: String,
    reason: String,
}

/// A new subscription, with its secret (shown only once).
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SubscriptionCreated {
    #[serde(flatten)]
    subscription: Subscription,
    /// whsec_<base64>; shown only once.
    secret: String,
}

/// The subscriptions.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct SubscriptionPage {
    data: Vec<Subscription>,
}

/// One delivery of an event to a subscription.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Delivery {
    id: Uuid,
    /// The webhook-id header sent (the same on every retry).
    webhook_id: String,
    contact_id: Option<String>,
    event_type: String,
    state: DeliveryState,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    /// `delivery_failed` after a failed attempt, whatever the cause (the details are in the
    /// admin's sync log: the receiver's status or a connection error would let the API probe
    /// hosts and ports).
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The delivery log, newest first.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct DeliveryPage {
    data: Vec<Delivery>,
}

/// `POST /api/v1/actions/{action}`: exactly one of `contact_id` or `email`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ActionRequest {
    contact_id: Option<Uuid>,
    #[schema(format = Email)]
    email: Option<String>,
    /// The connection (CRM company or org) to act on, when several sync side by side. Without
    /// it: the connection that links the contact; if several link it, the request is refused
    /// (422 `connection_required`: name one); if none does, the oldest active connection.
    /// A connection that does not exist is 422 `unknown_connection`; a disconnected one is
    /// 409 `connection_disconnected`.
    connection_id: Option<Uuid>,
    /// add_deal: title (required), value, currency, pipeline_id, stage_id, owner_id;
    /// assign_person_owner: owner_id; schedule_activity: subject (required), type, due_date
    /// (YYYY-MM-DD), owner_id; update_person_field: field, value; update_deal_stage: stage_id,
    /// deal_id (default: the person's newest deal); add_to_campaign (Salesforce only):
    /// campaign_id (required, the Campaign's id `701…`), status (the member's status).
    /// Ids are numbers; on Salesforce they may also be Salesforce's own ids as text (owner_id
    /// `005…`, deal_id `006…`) and stage_id the stage's name (`Closed Won`).
    #[schema(value_type = Option<Object>)]
    params: Option<Value>,
}

/// Where a delivery is.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum DeliveryState {
    Pending,
    Sending,
    Delivered,
    Failed,
}

/// Where a journey action is.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum ActionState {
    Queued,
    Done,
    Failed,
}

/// A journey action and its outcome.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct Action {
    id: Uuid,
    action: String,
    contact_id: Uuid,
    /// The connection the action went to (named in the request, else the one linking the
    /// contact, else the oldest active one); its job and every retry run there.
    connection_id: Uuid,
    state: ActionState,
    #[schema(value_type = Option<Object>)]
    params: Option<Value>,
    /// The CRM's ids: person_id, deal_id, activity_id; add_to_campaign: campaign_id,
    /// campaign_member_id, already_member.
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
    /// The CRM's error text, verbatim.
    error: Option<String>,
    pipedrive_status: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// What a contact event carries.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ContactEventData {
    contact: Contact,
    /// For contact.sync_failed: code, status and Pipedrive's message.
    #[schema(value_type = Option<Object>)]
    error: Option<Value>,
    /// For action.done and action.failed.
    action: Option<Action>,
}

/// A webhook tandem sends to subscribers.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct ContactEvent {
    /// contact.created, contact.updated, contact.linked, contact.unlinked, contact.sync_failed,
    /// action.done or action.failed.
    r#type: String,
    timestamp: DateTime<Utc>,
    data: ContactEventData,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_the_api_key_scheme_and_the_error_schema() {
        assert_eq!(DOCUMENT["openapi"], "3.1.0");
        assert_eq!(
            DOCUMENT["components"]["securitySchemes"]["apiKey"]["scheme"],
            "bearer"
        );
        let codes = &DOCUMENT["components"]["schemas"]["ErrorCode"]["enum"];
        assert!(
            codes
                .as_array()
                .is_some_and(|c| c.contains(&json!("company_changed"))),
            "{codes}"
        );
        for schema in [
            "Contact",
            "ContactCreate",
            "ActionRequest",
            "Error",
            "ContactEvent",
        ] {
            assert!(
                DOCUMENT["components"]["schemas"].get(schema).is_some(),
                "{schema}"
            );
        }
    }

    #[test]
    fn every_operation_has_an_id_a_summary_and_an_error_response() {
        for (method, path) in operations() {
            let operation = &DOCUMENT["paths"][&path][&method];
            assert!(operation["operationId"].is_string(), "{method} {path}");
            if path != OPENAPI_PATH {
                assert!(
                    operation["responses"]["default"].is_object(),
                    "{method} {path}"
                );
            }
        }
        assert!(operations().len() >= 18, "{:?}", operations());
    }
}
