//! `POST /webhooks/app`: change events from an app that keeps its own contact store, signed with
//! Standard Webhooks ([`crate::standard`]). The handler verifies the signature against every
//! active secret (rotation), refuses timestamps older or newer than 5 minutes, stores the event
//! through the [`AppInbox`] port deduplicated on `webhook-id`, and answers 2xx. The engine
//! applies stored events later; nothing is merged in the request path.
//!
//! Body: `{"type": "contact.created" | "contact.updated" | "contact.archived", "tenant"?: "…",
//! "data": {...}}`; `tenant` names the app's account the event is for (absent: `default`).

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};
use crate::pipedrive::{Accepted, InboxError, Unverified, Verified};
use crate::standard::{self, Secret, SignatureError};

/// Event types an app may send.
pub const EVENT_TYPES: &[&str] = &["contact.created", "contact.updated", "contact.archived"];

/// A verified app event, as stored in the inbox (source `app`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppDelivery {
    /// `webhook-id`: the deduplication key.
    pub delivery_id: String,
    /// `contact`.
    pub object: String,
    /// `created`, `updated`, `archived`.
    pub action: String,
    /// `data.id` when the app named tandem's contact id.
    pub object_id: Option<String>,
    pub payload: String,
}

/// An app event that was signed correctly but cannot be used, kept for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedAppDelivery {
    pub delivery_id: String,
    pub reason: String,
    pub payload: String,
}

/// The engine's side of the app receiver: the active secrets and durable storage.
pub trait AppInbox: Send + Sync + 'static {
    /// Every secret currently accepted (several during a rotation); empty closes the receiver.
    fn secrets(&self) -> Vec<Secret>;
    fn accept(
        &self,
        delivery: AppDelivery,
    ) -> impl Future<Output = Result<Accepted, InboxError>> + Send;
    fn reject(
        &self,
        rejected: RejectedAppDelivery,
    ) -> impl Future<Output = Result<(), InboxError>> + Send;
}

#[derive(Debug)]
pub struct AppRequest<S> {
    headers: HeaderMap,
    body: Bytes,
    delivery_id: String,
    _state: PhantomData<S>,
}

impl AppRequest<Unverified> {
    pub fn new(headers: HeaderMap, body: Bytes) -> Self {
        Self {
            headers,
            body,
            delivery_id: String::new(),
            _state: PhantomData,
        }
    }

    /// Checks the Standard Webhooks signature at `now` (Unix seconds).
    pub fn verify(self, secrets: &[Secret], now: i64) -> Result<AppRequest<Verified>, ApiError> {
        if secrets.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "no inbound app secret is configured (app_webhooks.inbound_secrets)",
            ));
        }
        let headers = &self.headers;
        let delivery_id = standard::verify(
            secrets,
            |name| headers.get(name).and_then(|v| v.to_str().ok()),
            &self.body,
            now,
        )
        .map_err(|error| {
            let code = match error {
                SignatureError::TimestampOutOfTolerance => ErrorCode::TimestampOutOfTolerance,
                _ => ErrorCode::InvalidSignature,
            };
            ApiError::new(code, error.to_string())
        })?;
        Ok(AppRequest {
            headers: self.headers,
            body: self.body,
            delivery_id,
            _state: PhantomData,
        })
    }
}

impl AppRequest<Verified> {
    /// Parses just enough to route: the event `type` and `data.id`.
    pub fn into_delivery(self) -> Result<AppDelivery, Box<(ApiError, RejectedAppDelivery)>> {
        let reject = |code, reason: String| {
            Box::new((
                ApiError::new(code, reason.clone()),
                RejectedAppDelivery {
                    delivery_id: self.delivery_id.clone(),
                    reason,
                    payload: String::from_utf8_lossy(&self.body).into_owned(),
                },
            ))
        };
        let payload = String::from_utf8(self.body.to_vec())
            .map_err(|_| reject(ErrorCode::MalformedJson, "the body is not UTF-8".into()))?;
        let value: Value = serde_json::from_str(&payload).map_err(|e| {
            reject(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {e}"),
            )
        })?;
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            return Err(reject(
                ErrorCode::BadRequest,
                "`type` is missing: expected one of contact.created, contact.updated, contact.archived"
                    .into(),
            ));
        };
        if !EVENT_TYPES.contains(&kind) {
            return Err(reject(
                ErrorCode::BadRequest,
                format!(
                    "unsupported event type {kind:?}: tandem takes {} (deletes from the app side are not supported)",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !value.get("data").is_some_and(Value::is_object) {
            return Err(reject(
                ErrorCode::BadRequest,
                "`data` must be an object".into(),
            ));
        }
        // The tenant (the app's account) the event is for: signed with the body; absent, the
        // default one.
        let tenant = match value.get("tenant") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(tenant)) => tandem_core::TenantId::parse(tenant)
                .map(drop)
                .map_err(|e| format!("`tenant`: {e}")),
            Some(other) => Err(format!("`tenant` must be a string, got {other}")),
        };
        if let Err(reason) = tenant {
            return Err(reject(ErrorCode::InvalidTenant, reason));
        }
        let (object, action) = kind.split_once('.').unwrap_or(("contact", kind));
        let object_id = value
            .get("data")
            .and_then(|d| d.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(AppDelivery {
            delivery_id: self.delivery_id.clone(),
            object: object.to_owned(),
            action: action.to_owned(),
            object_id,
            payload,
        })
    }
}

/// The app receiver route.
pub fn router<I: AppInbox>(inbox: Arc<I>) -> Router {
    Router::new()
        .route("/webhooks/app", post(receive::<I>))
        .with_state(inbox)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn receive<I: AppInbox>(
    State(inbox): State<Arc<I>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let verified = AppRequest::new(headers, body).verify(&inbox.secrets(), unix_now())?;
    match verified.into_delivery() {
        Ok(delivery) => {
            let accepted = inbox
                .accept(delivery)
                .await
                .map_err(|e| ApiError::internal(&e))?;
            let status = match accepted {
                Accepted::New => "accepted",
                Accepted::Duplicate => "duplicate",
            };
            Ok((
                StatusCode::OK,
                Json(serde_json::json!({ "status": status })),
            ))
        }
        Err(rejection) => {
            let (error, rejected) = *rejection;
            inbox
                .reject(rejected)
                .await
                .map_err(|e| ApiError::internal(&e))?;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_bytes(vec![42; 24])
    }

    fn signed(body: &str, id: &str, timestamp: i64) -> AppRequest<Unverified> {
        let sig = secret().sign(id, timestamp, body.as_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(standard::HEADER_ID, id.parse().unwrap());
        headers.insert(
            standard::HEADER_TIMESTAMP,
            timestamp.to_string().parse().unwrap(),
        );
        headers.insert(standard::HEADER_SIGNATURE, sig.parse().unwrap());
        AppRequest::new(headers, Bytes::from(body.to_owned()))
    }

    #[test]
    fn a_signed_contact_update_becomes_a_delivery_keyed_on_webhook_id() {
        let body = r#"{"type":"contact.updated","data":{"id":"abc","fields":{}}}"#;
        let delivery = signed(body, "msg_1", 1000)
            .verify(&[secret()], 1000)
            .unwrap()
            .into_delivery()
            .unwrap();
        assert_eq!(delivery.delivery_id, "msg_1");
        assert_eq!(delivery.action, "updated");
        assert_eq!(delivery.object_id.as_deref(), Some("abc"));
    }

    #[test]
    fn a_wrong_secret_or_an_old_timestamp_is_unauthorized_with_its_own_code() {
        let body = r#"{"type":"contact.updated","data":{}}"#;
        let other = Secret::from_bytes(vec![1; 24]);
        let error = signed(body, "m", 1000).verify(&[other], 1000).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidSignature);
        let error = signed(body, "m", 1000)
            .verify(&[secret()], 1000 + 301)
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::TimestampOutOfTolerance);
        assert_eq!(error.code.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn a_malformed_body_or_a_delete_is_rejected_and_kept() {
        let (error, rejected) = *signed("{nope", "m", 5)
            .verify(&[secret()], 5)
            .unwrap()
            .into_delivery()
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::MalformedJson);
        assert_eq!(rejected.payload, "{nope");
        let (error, _) = *signed(r#"{"type":"contact.deleted","data":{}}"#, "m", 5)
            .verify(&[secret()], 5)
            .unwrap()
            .into_delivery()
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::BadRequest);
        assert!(error.detail.contains("deletes"), "{}", error.detail);
    }
}
