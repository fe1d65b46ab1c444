//! Salesforce REST JSON shapes (private to the connector; converted in `mapping` and `ops`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `attributes` of a record.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Attributes {
    #[serde(rename = "type")]
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// An sObject record: its type and its fields by API name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct Record {
    #[serde(default)]
    pub attributes: Option<Attributes>,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Record {
    pub fn text(&self, field: &str) -> Option<&str> {
        self.fields.get(field).and_then(Value::as_str)
    }

    pub fn flag(&self, field: &str) -> bool {
        self.fields.get(field).and_then(Value::as_bool) == Some(true)
    }
}

/// `GET …/query?q=` and `nextRecordsUrl`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResult {
    #[serde(default)]
    pub total_size: u64,
    pub done: bool,
    #[serde(default)]
    pub next_records_url: Option<String>,
    #[serde(default)]
    pub records: Vec<Record>,
}

/// A save result: `POST …/sobjects/{T}` and an item of an sObject Collections answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SaveResult {
    #[serde(default)]
    pub id: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub errors: Vec<ItemError>,
}

/// A per-record error (`statusCode` where the top level says `errorCode`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemError {
    #[serde(default, alias = "errorCode")]
    pub status_code: Option<String>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub fields: Vec<String>,
}

/// The body of `PATCH /composite/sobjects`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionRequest<'a> {
    pub all_or_none: bool,
    pub records: &'a [Record],
}

/// The body of `POST /composite`: subrequests executed in one API call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeRequest<'a> {
    pub all_or_none: bool,
    /// `false`: the subrequests run in the order sent (a read after the write it reads back).
    pub collate_subrequests: bool,
    pub composite_request: &'a [Subrequest],
}

/// One subrequest of a Composite call; `url` is the path from `/services/data/…`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Subrequest {
    pub method: &'static str,
    pub url: String,
    pub reference_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// The answer of `POST /composite` (HTTP 200 whatever the subrequests' outcomes).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeResponse {
    pub composite_response: Vec<SubrequestResult>,
}

/// One subrequest's answer: its body (an error array when `http_status_code` is not 2xx).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubrequestResult {
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub http_headers: std::collections::BTreeMap<String, Value>,
    pub http_status_code: u16,
    pub reference_id: String,
}

/// `GET …/sobjects/{T}/deleted/?start&end`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedResult {
    #[serde(default)]
    pub deleted_records: Vec<DeletedRecord>,
    #[serde(default)]
    pub earliest_date_available: Option<String>,
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    pub id: String,
    #[serde(default)]
    pub deleted_date: Option<String>,
}

/// `GET …/sobjects/{T}/describe`.
#[derive(Debug, Clone, Deserialize)]
pub struct Describe {
    pub name: String,
    #[serde(default)]
    pub fields: Vec<DescribeField>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeField {
    pub name: String,
    #[serde(default)]
    pub label: String,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(default)]
    pub custom: bool,
    #[serde(default)]
    pub external_id: bool,
    #[serde(default)]
    pub picklist_values: Vec<PicklistValue>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PicklistValue {
    pub value: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
}

/// `POST /services/oauth2/token` (code or refresh grant). No `expires_in`: sessions follow the
/// org's timeout; a refresh answer carries no new refresh token.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    pub instance_url: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub issued_at: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}

/// `GET /services/oauth2/userinfo`.
#[derive(Debug, Clone, Deserialize)]
pub struct UserInfo {
    pub user_id: String,
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}
