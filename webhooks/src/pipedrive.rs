//! `POST /webhooks/pipedrive/{connection}`: Pipedrive's v2.0 webhooks. The handler only
//! verifies the connection's HTTP Basic credentials (constant time), stores the delivery through
//! the [`Inbox`] port (deduplicated on `meta.id`) and answers 2xx. No merge, no CRM call here.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

/// The Basic credentials a connection's webhooks must carry.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicCredentials({}, [redacted])", self.user)
    }
}

/// A delivery as stored in the inbox.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundDelivery {
    pub connection_id: Uuid,
    /// `pipedrive` or `app`.
    pub source: &'static str,
    /// The delivery's identity for deduplication (`meta.id`).
    pub delivery_id: String,
    pub object: String,
    pub action: String,
    pub object_id: Option<String>,
    pub payload: String,
}

/// A delivery that could not be accepted, kept for inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedDelivery {
    pub connection_id: Uuid,
    pub source: &'static str,
    pub reason: String,
    pub payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    New,
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
#[error("inbox storage failed: {0}")]
pub struct InboxError(pub String);

/// The engine's side of the receiver: credentials lookup and durable storage.
pub trait Inbox: Send + Sync + 'static {
    /// The credentials for a connection, or `None` when the connection is unknown.
    fn credentials(
        &self,
        connection: Uuid,
    ) -> impl Future<Output = Result<Option<BasicCredentials>, InboxError>> + Send;
    fn accept(
        &self,
        delivery: InboundDelivery,
    ) -> impl Future<Output = Result<Accepted, InboxError>> + Send;
    fn reject(
        &self,
        rejected: RejectedDelivery,
    ) -> impl Future<Output = Result<(), InboxError>> + Send;
    /// Called on every authentication failure (the engine logs repeated ones).
    fn auth_failed(&self, connection: Uuid) -> impl Future<Output = ()> + Send;
}

/// Typestate: a request whose credentials have not been checked yet.
#[derive(Debug)]
pub struct Unverified;
/// Typestate: a request whose credentials were checked.
#[derive(Debug)]
pub struct Verified;

#[derive(Debug)]
pub struct WebhookRequest<S> {
    connection_id: Uuid,
    headers: HeaderMap,
    body: Bytes,
    _state: PhantomData<S>,
}

impl WebhookRequest<Unverified> {
    pub fn new(connection_id: Uuid, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            connection_id,
            headers,
            body,
            _state: PhantomData,
        }
    }

    /// Checks HTTP Basic credentials in constant time.
    pub fn verify(self, expected: &BasicCredentials) -> Result<WebhookRequest<Verified>, ApiError> {
        let presented = self
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b64| STANDARD.decode(b64.trim()).ok())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing or malformed HTTP Basic credentials",
                )
            })?;
        let wanted = format!("{}:{}", expected.user, expected.password);
        if !constant_time_eq(&presented, wanted.as_bytes()) {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "wrong HTTP Basic credentials",
            ));
        }
        Ok(WebhookRequest {
            connection_id: self.connection_id,
            headers: self.headers,
            body: self.body,
            _state: PhantomData,
        })
    }
}

impl WebhookRequest<Verified> {
    /// Parses just enough to deduplicate and route: `meta.id`, `meta.entity`, `meta.action`.
    pub fn into_delivery(self) -> Result<InboundDelivery, Box<(ApiError, RejectedDelivery)>> {
        let reject = |code, reason: String, body: &Bytes| {
            let payload = String::from_utf8_lossy(body).into_owned();
            Box::new((
                ApiError::new(code, reason.clone()),
                RejectedDelivery {
                    connection_id: self.connection_id,
                    source: "pipedrive",
                    reason,
                    payload,
                },
            ))
        };
        let value: Value = serde_json::from_slice(&self.body).map_err(|e| {
            reject(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {e}"),
                &self.body,
            )
        })?;
        let Some(meta) = value.get("meta").filter(|m| m.is_object()) else {
            return Err(reject(
                ErrorCode::BadRequest,
                "not a Pipedrive v2.0 webhook: `meta` is missing".into(),
                &self.body,
            ));
        };
        let text = |key: &str| {
            meta.get(key).and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| v.as_i64().map(|n| n.to_string()))
            })
        };
        let object = text("entity").unwrap_or_default();
        if !["person", "deal", "activity"].contains(&object.as_str()) {
            return Err(reject(
                ErrorCode::UnknownObject,
                format!("unsupported object {object:?}: tandem takes person, deal and activity"),
                &self.body,
            ));
        }
        let action = text("action").unwrap_or_default();
        if !["create", "change", "delete"].contains(&action.as_str()) {
            return Err(reject(
                ErrorCode::BadRequest,
                format!("unsupported action {action:?}"),
                &self.body,
            ));
        }
        let object_id = text("entity_id");
        let delivery_id = match text("id") {
            Some(id) => id,
            None => format!(
                "{object}:{}:{action}:{}",
                object_id.clone().unwrap_or_default(),
                text("timestamp").unwrap_or_default()
            ),
        };
        let payload = String::from_utf8(self.body.to_vec()).map_err(|_| {
            reject(
                ErrorCode::MalformedJson,
                "the body is not UTF-8".into(),
                &self.body,
            )
        })?;
        Ok(InboundDelivery {
            connection_id: self.connection_id,
            source: "pipedrive",
            delivery_id,
            object,
            action,
            object_id,
            payload,
        })
    }
}

/// Length check, then an xor-fold over every byte: no early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The Pipedrive receiver routes.
pub fn router<I: Inbox>(inbox: Arc<I>) -> Router {
    Router::new()
        .route("/webhooks/pipedrive/{connection}", post(receive::<I>))
        .with_state(inbox)
}

async fn receive<I: Inbox>(
    State(inbox): State<Arc<I>>,
    Path(connection): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let connection_id = Uuid::parse_str(&connection)
        .map_err(|_| ApiError::new(ErrorCode::NotFound, "unknown connection"))?;
    let credentials = inbox
        .credentials(connection_id)
        .await
        .map_err(|e| ApiError::internal(&e))?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "unknown connection"))?;
    let verified = match WebhookRequest::new(connection_id, headers, body).verify(&credentials) {
        Ok(verified) => verified,
        Err(error) => {
            inbox.auth_failed(connection_id).await;
            return Err(error);
        }
    };
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

    fn request(auth: Option<&str>, body: &str) -> WebhookRequest<Unverified> {
        let mut headers = HeaderMap::new();
        if let Some(auth) = auth {
            headers.insert(
                axum::http::header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(auth)).parse().unwrap(),
            );
        }
        WebhookRequest::new(Uuid::nil(), headers, Bytes::from(body.to_owned()))
    }

    fn creds() -> BasicCredentials {
        BasicCredentials {
            user: "u".into(),
            password: "p".into(),
        }
    }

    #[test]
    fn right_credentials_verify_and_wrong_or_missing_ones_are_unauthorized() {
        assert!(request(Some("u:p"), "{}").verify(&creds()).is_ok());
        assert_eq!(
            request(Some("u:x"), "{}")
                .verify(&creds())
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            request(None, "{}").verify(&creds()).unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn a_person_change_becomes_a_delivery_keyed_on_meta_id() {
        let body = r#"{"meta":{"id":"ev-1","entity":"person","action":"change","entity_id":"42"},"data":{"id":42}}"#;
        let delivery = request(Some("u:p"), body)
            .verify(&creds())
            .unwrap()
            .into_delivery()
            .unwrap();
        assert_eq!(delivery.delivery_id, "ev-1");
        assert_eq!(delivery.object_id.as_deref(), Some("42"));
    }

    #[test]
    fn malformed_json_and_unknown_objects_are_rejected_with_their_reason() {
        let (error, rejected) = *request(Some("u:p"), "{not json")
            .verify(&creds())
            .unwrap()
            .into_delivery()
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::MalformedJson);
        assert_eq!(rejected.payload, "{not json");
        let body = r#"{"meta":{"id":"e","entity":"product","action":"change"}}"#;
        let (error, _) = *request(Some("u:p"), body)
            .verify(&creds())
            .unwrap()
            .into_delivery()
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::UnknownObject);
    }

    #[test]
    fn constant_time_comparison_matches_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
