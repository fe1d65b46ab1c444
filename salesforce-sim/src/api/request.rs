//! The handler's view of a request: the org and the actor, path parameters, query, headers,
//! body, and the clock.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::{Map, Value};

use super::response::ApiErr;
use crate::ops::Params;
use crate::shared::Shared;
use crate::state::Actor;

pub(super) struct Ctx<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) org: usize,
    pub(super) actor: Actor,
    pub(super) params: Params,
    pub(super) query: HashMap<String, String>,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: Bytes,
    pub(super) now_ms: i64,
}

pub(super) fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Ctx<'_> {
    /// The body as JSON.
    pub(super) fn json(&self) -> Result<Value, ApiErr> {
        if self.body.is_empty() {
            return Err(ApiErr::bad_json(
                "The request body is either invalid or incomplete.",
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiErr::bad_json(&format!(
                "Unexpected character: was expecting a JSON value at [line:{}, column:{}]",
                e.line(),
                e.column()
            ))
        })
    }

    /// The body as a JSON object.
    pub(super) fn object(&self) -> Result<Map<String, Value>, ApiErr> {
        match self.json()? {
            Value::Object(m) => Ok(m),
            _ => Err(ApiErr::bad_json(
                "Cannot deserialize instance of sObject from START_ARRAY value or request may be missing a required field",
            )),
        }
    }

    /// `/services/data/vNN.0`
    pub(super) fn base(&self) -> String {
        format!("/services/data/v{}", self.params.version)
    }

    /// `Sforce-Duplicate-Rule-Header: allowSave=true`.
    pub(super) fn allow_duplicates(&self) -> bool {
        self.headers
            .get("sforce-duplicate-rule-header")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.replace(' ', "")
                    .to_ascii_lowercase()
                    .contains("allowsave=true")
            })
    }
}
