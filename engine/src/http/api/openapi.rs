//! The OpenAPI 3.1 document of `/api/v1`, written by hand and served at
//! `/api/v1/openapi.json`. A test checks that it lists every route in [`super::ROUTES`].

use std::sync::LazyLock;

use axum::Json;
use serde_json::{json, Value};

pub(super) async fn serve() -> Json<Value> {
    Json(DOCUMENT.clone())
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
    })
}

fn ok(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } }
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": { "type": "string" } })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn idempotency_param() -> Value {
    json!({
        "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "Repeat a POST safely: the same key with the same body returns the first response; with another body, 409 idempotency_key_reused.",
        "schema": { "type": "string", "maxLength": 255 }
    })
}

fn common_errors(mut responses: Value) -> Value {
    responses["401"] = error("Missing or wrong API key (`unauthorized`).");
    responses["default"] = error("Any other error: `{code, detail, fields?}`.");
    responses
}

/// The document.
pub static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    let mut document = build();
    add_actions(&mut document);
    document
});

/// Journey actions (`/api/v1/actions/...`).
fn add_actions(document: &mut Value) {
    document["paths"]["/api/v1/actions/{action}"] = json!({
        "post": {
            "operationId": "submitAction",
            "summary": "Run a journey action on a contact: add_deal, assign_person_owner, schedule_activity (these create the Pipedrive person first when the contact has none), update_person_field, update_deal_stage (these never create one: 422 no_pipedrive_person). Queued through the outbox; read the result with GET /api/v1/actions/{id}.",
            "parameters": [path_param("action", "add_deal | assign_person_owner | schedule_activity | update_person_field | update_deal_stage"), {
                "name": "Idempotency-Key", "in": "header", "required": true,
                "description": "Required: the same key returns the first action (no second deal); another request with it gets 409 idempotency_key_reused.",
                "schema": { "type": "string", "maxLength": 255 }
            }],
            "requestBody": body("ActionRequest"),
            "responses": common_errors(json!({
                "202": ok("Queued.", "Action"),
                "200": ok("A replay: the first action, as it is now.", "Action"),
                "400": error("No Idempotency-Key (`idempotency_key_required`)."),
                "404": error("Unknown action or contact."),
                "409": error("The key was used for another request."),
                "422": error("Invalid parameters (unknown stage, unknown field, bad type), or no Pipedrive person for a non-creating action.")
            }))
        },
        "get": {
            "operationId": "getAction",
            "summary": "An action's status: queued, done (with Pipedrive's ids) or failed (with Pipedrive's error, verbatim). Here `{action}` is the action's id.",
            "parameters": [path_param("action", "The action's id (UUID).")],
            "responses": common_errors(json!({ "200": ok("The action.", "Action"), "404": error("No such action.") }))
        }
    });
    document["components"]["schemas"]["ActionRequest"] = json!({
        "type": "object", "additionalProperties": false,
        "properties": {
            "contact_id": { "type": "string", "format": "uuid" },
            "email": { "type": "string", "format": "email" },
            "params": { "type": "object", "description": "add_deal: title (required), value, currency, pipeline_id, stage_id, owner_id; assign_person_owner: owner_id; schedule_activity: subject (required), type, due_date (YYYY-MM-DD), owner_id; update_person_field: field, value; update_deal_stage: stage_id, deal_id (default: the person's newest deal)." }
        }
    });
    document["components"]["schemas"]["Action"] = json!({
        "type": "object", "required": ["id", "action", "contact_id", "state"],
        "properties": {
            "id": { "type": "string", "format": "uuid" },
            "action": { "type": "string" },
            "contact_id": { "type": "string", "format": "uuid" },
            "state": { "type": "string", "enum": ["queued", "done", "failed"] },
            "params": { "type": "object" },
            "result": { "type": ["object", "null"], "description": "Pipedrive ids: person_id, deal_id, activity_id, ..." },
            "error": { "type": ["string", "null"], "description": "Pipedrive's error text, verbatim." },
            "pipedrive_status": { "type": ["integer", "null"] },
            "created_at": { "type": "string", "format": "date-time" },
            "updated_at": { "type": "string", "format": "date-time" }
        }
    });
}

#[allow(clippy::too_many_lines)]
fn build() -> Value {
    let id = path_param("id", "The contact's id (UUID).");
    let sub_id = path_param("id", "The subscription's id (UUID).");
    let list_key = path_param("key", "The list's key; `pipedrive_contacts` is built in.");
    let limit = query_param(
        "limit",
        "Page size, 1 to 200 (default 50).",
        json!({ "type": "integer", "minimum": 1, "maximum": 200 }),
    );
    let cursor = query_param(
        "cursor",
        "`next_cursor` of the previous page.",
        json!({ "type": "string" }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tandem API",
            "version": "1.0.0",
            "description": "Read and change contacts synced with Pipedrive, manage the \"Pipedrive contacts\" list, and subscribe to contact events (Standard Webhooks). A local contact reaches Pipedrive only when it is linked to a person, added to the \"Pipedrive contacts\" list, or touched by a creating journey action; nothing is ever deleted in Pipedrive from here."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "apiKey": [] }],
        "paths": {
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenApi", "summary": "This document.", "security": [],
                    "responses": { "200": { "description": "The OpenAPI document." } }
                }
            },
            "/api/v1/contacts": {
                "get": {
                    "operationId": "listContacts",
                    "summary": "Contacts in the order they last changed, with cursor paging.",
                    "parameters": [
                        cursor.clone(), limit.clone(),
                        query_param("email", "Only the contact(s) with this e-mail (case-insensitive).", json!({ "type": "string", "format": "email" })),
                        query_param("updated_since", "Only contacts changed at or after this RFC 3339 time.", json!({ "type": "string", "format": "date-time" })),
                        query_param("include_archived", "Include archived contacts (default false).", json!({ "type": "boolean" }))
                    ],
                    "responses": common_errors(json!({ "200": ok("A page of contacts.", "ContactPage"), "422": error("A bad filter (`validation_failed`) or an unknown parameter (`unknown_field`).") }))
                },
                "post": {
                    "operationId": "createContact",
                    "summary": "Create a contact; an existing contact with the same e-mail absorbs it instead.",
                    "parameters": [idempotency_param()],
                    "requestBody": body("ContactCreate"),
                    "responses": common_errors(json!({
                        "201": ok("Created.", "Contact"),
                        "200": ok("A contact with this e-mail existed; the values were merged into it.", "Contact"),
                        "400": error("Malformed JSON (`malformed_json`)."),
                        "409": error("Idempotency-Key reused with another body (`idempotency_key_reused`)."),
                        "422": error("Field-level validation errors (`validation_failed`, `unknown_field`).")
                    }))
                }
            },
            "/api/v1/contacts/{id}": {
                "parameters": [id.clone()],
                "get": {
                    "operationId": "getContact", "summary": "One contact.",
                    "responses": common_errors(json!({ "200": ok("The contact.", "Contact"), "404": error("No such contact.") }))
                },
                "patch": {
                    "operationId": "updateContact",
                    "summary": "Change fields: absent fields stay, null clears. A linked contact's changes are written to Pipedrive as one PATCH.",
                    "requestBody": body("ContactPatch"),
                    "responses": common_errors(json!({
                        "200": ok("The changed contact.", "Contact"),
                        "404": error("No such contact."),
                        "409": error("The contact is archived."),
                        "422": error("Field-level validation errors.")
                    }))
                }
            },
            "/api/v1/contacts/{id}/archive": {
                "parameters": [id.clone()],
                "post": {
                    "operationId": "archiveContact",
                    "summary": "Archive locally. Never deletes in Pipedrive (delete the person there).",
                    "parameters": [idempotency_param()],
                    "responses": common_errors(json!({ "200": ok("The archived contact.", "Contact"), "404": error("No such contact.") }))
                }
            },
            "/api/v1/lists": {
                "get": {
                    "operationId": "listLists", "summary": "The lists (the built-in `pipedrive_contacts`).",
                    "responses": common_errors(json!({ "200": ok("The lists.", "ListPage") }))
                }
            },
            "/api/v1/lists/{key}/members": {
                "parameters": [list_key.clone()],
                "get": {
                    "operationId": "listMembers", "summary": "Members, by contact id.",
                    "parameters": [cursor, limit.clone()],
                    "responses": common_errors(json!({ "200": ok("A page of members.", "MemberPage"), "404": error("No such list.") }))
                },
                "post": {
                    "operationId": "addMember",
                    "summary": "Add a contact. Adding to `pipedrive_contacts` creates (or links) its Pipedrive person, with the apId field set.",
                    "parameters": [idempotency_param()],
                    "requestBody": body("MemberAdd"),
                    "responses": common_errors(json!({
                        "201": ok("Added.", "Contact"),
                        "200": ok("It already was a member.", "Contact"),
                        "404": error("No such list."),
                        "409": error("The contact is archived."),
                        "422": error("No such contact, or a bad body.")
                    }))
                }
            },
            "/api/v1/lists/{key}/members/{contact_id}": {
                "parameters": [list_key, path_param("contact_id", "The contact's id.")],
                "delete": {
                    "operationId": "removeMember",
                    "summary": "Remove a contact that is not in Pipedrive yet (it will not be pushed). Never deletes in Pipedrive.",
                    "responses": common_errors(json!({
                        "204": { "description": "Removed." },
                        "404": error("Not a member, or no such list."),
                        "409": error("The contact is linked to a Pipedrive person: delete the person in Pipedrive instead.")
                    }))
                }
            },
            "/api/v1/webhook-subscriptions": {
                "get": {
                    "operationId": "listWebhookSubscriptions", "summary": "Subscriptions (without secrets).",
                    "responses": common_errors(json!({ "200": ok("The subscriptions.", "SubscriptionPage") }))
                },
                "post": {
                    "operationId": "createWebhookSubscription",
                    "summary": "Subscribe a URL to contact events. The `whsec_` secret is returned only in this response.",
                    "parameters": [idempotency_param()],
                    "requestBody": body("SubscriptionCreate"),
                    "responses": common_errors(json!({ "201": ok("Created, with its secret (shown only in this answer; `Cache-Control: no-store`).", "SubscriptionCreated"), "409": error("A replay of an Idempotency-Key whose first answer carried the secret (`secret_not_replayed`): secrets are never stored in clear nor shown twice."), "422": error("A bad URL (not https, or not public: see `security.egress_allowed_hosts`) or secret.") }))
                }
            },
            "/api/v1/webhook-subscriptions/{id}": {
                "parameters": [sub_id.clone()],
                "get": {
                    "operationId": "getWebhookSubscription", "summary": "One subscription.",
                    "responses": common_errors(json!({ "200": ok("The subscription.", "Subscription"), "404": error("No such subscription.") }))
                },
                "delete": {
                    "operationId": "deleteWebhookSubscription", "summary": "Delete it and its delivery log.",
                    "responses": common_errors(json!({ "204": { "description": "Deleted." }, "404": error("No such subscription.") }))
                }
            },
            "/api/v1/webhook-subscriptions/{id}/enable": {
                "parameters": [sub_id.clone()],
                "post": {
                    "operationId": "enableWebhookSubscription",
                    "summary": "Re-enable a subscription that was disabled after persistent failures; its pending deliveries resume.",
                    "parameters": [idempotency_param()],
                    "responses": common_errors(json!({ "200": ok("The subscription.", "Subscription"), "404": error("No such subscription.") }))
                }
            },
            "/api/v1/webhook-subscriptions/{id}/deliveries": {
                "parameters": [sub_id],
                "get": {
                    "operationId": "listDeliveries", "summary": "The delivery log, newest first.",
                    "parameters": [limit],
                    "responses": common_errors(json!({ "200": ok("Deliveries.", "DeliveryPage"), "404": error("No such subscription.") }))
                }
            }
        },
        "webhooks": {
            "contactEvent": {
                "post": {
                    "summary": "A contact changed in Pipedrive (contact.created, contact.updated), was linked or unlinked (contact.linked, contact.unlinked), or could not be written to Pipedrive (contact.sync_failed). Signed with Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>); a contact's events arrive in order; retried with backoff until a 2xx.",
                    "requestBody": body("ContactEvent"),
                    "responses": { "200": { "description": "Any 2xx acknowledges the event." } }
                }
            }
        },
        "components": {
            "securitySchemes": {
                "apiKey": { "type": "http", "scheme": "bearer", "description": "A key from `security.api_keys`." }
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["code", "detail"],
                    "properties": {
                        "code": { "type": "string", "description": "Stable snake_case id: unauthorized, malformed_json, validation_failed, unknown_field, not_found, conflict, idempotency_key_reused, payload_too_large, …" },
                        "detail": { "type": "string" },
                        "fields": { "type": "array", "items": { "type": "object", "required": ["field", "message"], "properties": { "field": { "type": "string", "examples": ["fields.email[0].value"] }, "message": { "type": "string" } } } }
                    }
                },
                "LabeledValue": {
                    "type": "object", "required": ["value"], "additionalProperties": false,
                    "properties": { "value": { "type": "string" }, "label": { "type": ["string", "null"] }, "primary": { "type": "boolean" } }
                },
                "Fields": {
                    "type": "object",
                    "description": "Field values by name: the canonical fields below, plus any field mapped on the Pipedrive connection (typed by its Pipedrive type). Empty fields are not shown. Unknown names are refused.",
                    "properties": {
                        "name": { "type": ["string", "null"] },
                        "first_name": { "type": ["string", "null"] },
                        "last_name": { "type": ["string", "null"] },
                        "org_name": { "type": ["string", "null"] },
                        "email": { "oneOf": [{ "type": "array", "items": { "$ref": "#/components/schemas/LabeledValue" } }, { "type": "string" }, { "type": "null" }] },
                        "phone": { "oneOf": [{ "type": "array", "items": { "$ref": "#/components/schemas/LabeledValue" } }, { "type": "string" }, { "type": "null" }] },
                        "owner_id": { "type": "number", "readOnly": true, "description": "Pipedrive's owner user id (set in Pipedrive)." },
                        "label": { "type": ["array", "null"], "items": { "type": "integer" } }
                    },
                    "additionalProperties": true
                },
                "Contact": {
                    "type": "object",
                    "required": ["id", "fields", "in_pipedrive_list", "archived", "created_at", "updated_at"],
                    "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "email": { "type": ["string", "null"], "description": "The primary e-mail, normalised (lower case)." },
                        "fields": { "$ref": "#/components/schemas/Fields" },
                        "in_pipedrive_list": { "type": "boolean" },
                        "pipedrive_person_id": { "type": ["integer", "null"] },
                        "archived": { "type": "boolean" },
                        "created_at": { "type": "string", "format": "date-time" },
                        "updated_at": { "type": "string", "format": "date-time" }
                    }
                },
                "ContactCreate": {
                    "type": "object", "additionalProperties": false,
                    "properties": {
                        "email": { "type": "string", "description": "Shorthand for fields.email with one primary address." },
                        "fields": { "$ref": "#/components/schemas/Fields" },
                        "in_pipedrive_list": { "type": "boolean", "description": "Also add it to the Pipedrive contacts list (which pushes it)." }
                    }
                },
                "ContactPatch": {
                    "type": "object", "additionalProperties": false, "required": ["fields"],
                    "properties": { "fields": { "$ref": "#/components/schemas/Fields" } }
                },
                "ContactPage": {
                    "type": "object", "required": ["data", "next_cursor"],
                    "properties": { "data": { "type": "array", "items": { "$ref": "#/components/schemas/Contact" } }, "next_cursor": { "type": ["string", "null"] } }
                },
                "List": {
                    "type": "object",
                    "properties": { "key": { "type": "string" }, "name": { "type": "string" }, "description": { "type": "string" }, "member_count": { "type": "integer" } }
                },
                "ListPage": { "type": "object", "properties": { "data": { "type": "array", "items": { "$ref": "#/components/schemas/List" } } } },
                "MemberAdd": {
                    "type": "object", "additionalProperties": false, "required": ["contact_id"],
                    "properties": { "contact_id": { "type": "string", "format": "uuid" } }
                },
                "MemberPage": {
                    "type": "object",
                    "properties": {
                        "data": { "type": "array", "items": { "type": "object", "properties": { "contact_id": { "type": "string", "format": "uuid" }, "added_at": { "type": "string", "format": "date-time" } } } },
                        "next_cursor": { "type": ["string", "null"] }
                    }
                },
                "SubscriptionCreate": {
                    "type": "object", "additionalProperties": false, "required": ["url"],
                    "properties": {
                        "url": { "type": "string", "format": "uri" },
                        "secret": { "type": "string", "description": "Your own whsec_<base64> secret; generated when absent." }
                    }
                },
                "Subscription": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "url": { "type": "string" },
                        "enabled": { "type": "boolean" },
                        "consecutive_failures": { "type": "integer" },
                        "disabled_at": { "type": ["string", "null"], "format": "date-time" },
                        "created_at": { "type": "string", "format": "date-time" },
                        "event_types": { "type": "array", "items": { "type": "string" } }
                    }
                },
                "SubscriptionCreated": {
                    "allOf": [{ "$ref": "#/components/schemas/Subscription" }, { "type": "object", "required": ["secret"], "properties": { "secret": { "type": "string", "description": "whsec_<base64>; shown only once." } } }]
                },
                "SubscriptionPage": { "type": "object", "properties": { "data": { "type": "array", "items": { "$ref": "#/components/schemas/Subscription" } } } },
                "Delivery": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string", "format": "uuid" },
                        "webhook_id": { "type": "string", "description": "The webhook-id header sent (the same on every retry)." },
                        "contact_id": { "type": ["string", "null"] },
                        "event_type": { "type": "string" },
                        "state": { "type": "string", "enum": ["pending", "sending", "delivered", "failed"] },
                        "attempts": { "type": "integer" },
                        "next_attempt_at": { "type": "string", "format": "date-time" },
                        "last_error": { "type": ["string", "null"], "description": "`delivery_failed` after a failed attempt, whatever the cause (the details are in the admin's sync log: the receiver's status or a connection error would let the API probe hosts and ports)." },
                        "created_at": { "type": "string", "format": "date-time" },
                        "updated_at": { "type": "string", "format": "date-time" }
                    }
                },
                "DeliveryPage": { "type": "object", "properties": { "data": { "type": "array", "items": { "$ref": "#/components/schemas/Delivery" } } } },
                "ContactEvent": {
                    "type": "object", "required": ["type", "timestamp", "data"],
                    "properties": {
                        "type": { "type": "string", "enum": ["contact.created", "contact.updated", "contact.linked", "contact.unlinked", "contact.sync_failed"] },
                        "timestamp": { "type": "string", "format": "date-time" },
                        "data": {
                            "type": "object",
                            "properties": {
                                "contact": { "$ref": "#/components/schemas/Contact" },
                                "error": { "type": "object", "description": "For contact.sync_failed: code, status and Pipedrive's message." }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_and_nothing_else() {
        let paths = DOCUMENT["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, item) in paths {
            for method in ["get", "post", "patch", "put", "delete"] {
                if item.get(method).is_some() {
                    documented.push((method.to_owned(), path.clone()));
                }
            }
        }
        let mut routes: Vec<(String, String)> = super::super::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
