//! Pipedrive's JSON shapes, as its OpenAPI documents describe them (v2 unless noted).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tandem_core::PersonId;

/// `{"success": true, "data": …, "additional_data": …}`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    pub data: T,
    #[serde(default)]
    pub additional_data: Option<AdditionalData>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AdditionalData {
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabeledValue {
    pub value: String,
    #[serde(default)]
    pub primary: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A v2 person.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Person {
    pub id: PersonId,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub owner_id: Option<i64>,
    #[serde(default)]
    pub org_id: Option<i64>,
    #[serde(default)]
    pub emails: Vec<LabeledValue>,
    #[serde(default)]
    pub phones: Vec<LabeledValue>,
    #[serde(default)]
    pub add_time: Option<String>,
    #[serde(default)]
    pub update_time: Option<String>,
    #[serde(default)]
    pub is_deleted: bool,
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

/// A v2 person write (POST or PATCH): only the fields present are sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PersonWrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emails: Option<Vec<LabeledValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<LabeledValue>>,
    /// The person's organization: an id, or `null` to unlink it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Value>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub custom_fields: Map<String, Value>,
}

/// A v2 organization (the fields tandem reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Organization {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    /// `{value, …}` (v2), `null` when empty.
    #[serde(default)]
    pub address: Option<Value>,
    /// Custom fields by 40-hex key (v2).
    #[serde(default)]
    pub custom_fields: Map<String, Value>,
}

/// `GET /api/v2/organizations/search`'s `data`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrganizationSearchData {
    #[serde(default)]
    pub items: Vec<OrganizationSearchItem>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrganizationSearchItem {
    pub item: OrganizationHit,
}

/// An organization found by a search.
#[derive(Debug, Clone, Deserialize)]
pub struct OrganizationHit {
    pub id: i64,
    #[serde(default)]
    pub name: String,
}

impl PersonWrite {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// An item of `GET /api/v2/persons/search`.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchItem {
    pub item: SearchPerson,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchPerson {
    pub id: PersonId,
    #[serde(default)]
    pub emails: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchData {
    #[serde(default)]
    pub items: Vec<SearchItem>,
}

/// `GET /v1/users/me`.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub company_id: Option<i64>,
    #[serde(default)]
    pub is_admin: Option<Value>,
}

impl User {
    /// v1 answers `is_admin` as 0/1 or a boolean.
    pub fn admin(&self) -> bool {
        match &self.is_admin {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }
}

/// v1 webhook subscription.
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    pub id: i64,
    pub subscription_url: String,
    #[serde(default)]
    pub event_action: Option<String>,
    #[serde(default)]
    pub event_object: Option<String>,
    /// The Basic credentials Pipedrive sends with each delivery (`null` when none).
    #[serde(default)]
    pub http_auth_user: Option<String>,
    #[serde(default)]
    pub http_auth_password: crate::config::Redacted<Option<String>>,
    /// `0` while Pipedrive has banned the webhook (10 failed first attempts: 30 minutes), `1`
    /// otherwise.
    #[serde(default)]
    pub is_active: Option<serde_json::Value>,
    #[serde(default)]
    pub last_http_status: Option<i64>,
    #[serde(default)]
    pub last_delivery_time: Option<String>,
}

impl Webhook {
    /// Whether Pipedrive delivers it (a listing without `is_active` counts as delivering).
    pub fn is_delivering(&self) -> bool {
        match &self.is_active {
            Some(serde_json::Value::Number(n)) => n.as_i64() != Some(0),
            Some(serde_json::Value::Bool(active)) => *active,
            _ => true,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookCreate<'a> {
    pub subscription_url: &'a str,
    pub event_action: &'a str,
    pub event_object: &'a str,
    pub name: &'a str,
    pub http_auth_user: &'a str,
    pub http_auth_password: &'a str,
    pub version: &'a str,
}

/// v2 person field (`/api/v2/personFields`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PersonField {
    pub field_code: String,
    pub field_name: String,
    pub field_type: String,
    #[serde(default)]
    pub is_custom_field: bool,
    #[serde(default)]
    pub options: Option<Vec<FieldOption>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FieldOption {
    pub id: i64,
    pub label: String,
}

/// v2 deal (the fields tandem reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Deal {
    pub id: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub person_id: Option<i64>,
    #[serde(default)]
    pub stage_id: Option<i64>,
}

/// v2 activity (the fields tandem reads).
#[derive(Debug, Clone, Deserialize)]
pub struct Activity {
    pub id: i64,
}

/// v2 stage.
#[derive(Debug, Clone, Deserialize)]
pub struct Stage {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub pipeline_id: Option<i64>,
}

/// OAuth token response.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub scope: Option<String>,
    pub api_domain: String,
}
