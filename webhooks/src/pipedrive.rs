//! `POST /webhooks/pipedrive/{connection}`: Pipedrive's v2.0 webhooks. The handler only
//! verifies the connection's HTTP Basic credentials (constant time), stores the delivery through
//! the [`Inbox`] port (deduplicated on `meta.id`) and answers 2xx. No merge, no CRM call here.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use tandem_core::ConnectionId;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

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
    pub connection_id: ConnectionId,
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
    pub connection_id: ConnectionId,
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
    /// The credentials for a connection, or `None` when the connection is unknown or does not
    /// take deliveries (disconnected). With `fresh`, read past any cache: the receiver asks
    /// again so when the cached credentials did not match.
    fn credentials(
        &self,
        connection: ConnectionId,
        fresh: bool,
    ) -> impl Future<Output = Result<Option<Arc<BasicCredentials>>, InboxError>> + Send;
    fn accept(
        &self,
        delivery: InboundDelivery,
    ) -> impl Future<Output = Result<Accepted, InboxError>> + Send;
    fn reject(
        &self,
        rejected: RejectedDelivery,
    ) -> impl Future<Output = Result<(), InboxError>> + Send;
    /// Called on every authentication failure (the engine logs repeated ones).
    fn auth_failed(&self, connection: ConnectionId) -> impl Future<Output = ()> + Send;
}

/// Typestate: a request whose credentials have not been checked yet.
#[derive(Debug)]
pub struct Unverified;
/// Typestate: a request whose credentials were checked.
#[derive(Debug)]
pub struct Verified;

#[derive(Debug)]
pub struct WebhookRequest<S> {
    connection_id: ConnectionId,
    headers: HeaderMap,
    body: Bytes,
    /// The decoded Basic credentials, if any.
    presented: Option<Vec<u8>>,
    _state: PhantomData<S>,
}

impl WebhookRequest<Unverified> {
    pub fn new(connection_id: ConnectionId, headers: HeaderMap, body: Bytes) -> Self {
        let presented = presented(&headers);
        Self {
            connection_id,
            headers,
            body,
            presented,
            _state: PhantomData,
        }
    }

    /// Whether the request carries `expected` (constant time).
    pub fn carries(&self, expected: &BasicCredentials) -> bool {
        self.carries_parts(expected.user.as_bytes(), expected.password.as_bytes())
    }

    fn carries_parts(&self, user: &[u8], password: &[u8]) -> bool {
        self.presented
            .as_deref()
            .is_some_and(|presented| constant_time_eq_parts(presented, &[user, b":", password]))
    }

    /// Checks HTTP Basic credentials in constant time. `None` (an unknown or disconnected
    /// connection) fails exactly as wrong credentials do, so answers reveal no connection ids.
    pub fn verify(
        self,
        expected: Option<&BasicCredentials>,
    ) -> Result<WebhookRequest<Verified>, ApiError> {
        // Compare against something even when nothing is expected: the same work either way.
        let matched = match expected {
            Some(expected) => self.carries(expected),
            None => self.carries_parts(b"", b"\0no connection"),
        };
        if !(matched && expected.is_some()) {
            return Err(unauthorized());
        }
        Ok(WebhookRequest {
            connection_id: self.connection_id,
            headers: self.headers,
            body: self.body,
            presented: self.presented,
            _state: PhantomData,
        })
    }
}

/// The decoded `user:password` of `Authorization: Basic …` (the scheme in any case), decoded
/// once per request.
fn presented(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    STANDARD.decode(b64.trim()).ok()
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
        // Only `meta` is read; the rest of the body is checked to be JSON and skipped, without
        // building a tree of it.
        let envelope: Envelope = serde_json::from_slice(&self.body).map_err(|e| {
            reject(
                ErrorCode::MalformedJson,
                format!("the body is not valid JSON: {e}"),
                &self.body,
            )
        })?;
        let Some(mut meta) = envelope.meta else {
            return Err(reject(
                ErrorCode::BadRequest,
                "not a Pipedrive v2.0 webhook: `meta` is missing".into(),
                &self.body,
            ));
        };
        let mut text = |key: &str| meta.remove(key);
        let object = text("entity").unwrap_or_default();
        // Persons, deals and activities for the sync; the others for the mirror (issue 20).
        const OBJECTS: [&str; 7] = [
            "person",
            "deal",
            "activity",
            "organization",
            "product",
            "lead",
            "note",
        ];
        if !OBJECTS.contains(&object.as_str()) {
            return Err(reject(
                ErrorCode::UnknownObject,
                format!(
                    "unsupported object {object:?}: tandem takes {}",
                    OBJECTS.join(", ")
                ),
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

/// The parts of a webhook body the receiver reads: the scalars of `meta` (strings, or integers
/// as their decimal text), when the body is an object whose `meta` is an object. Everything else
/// is only checked to be JSON.
#[derive(Debug, Default)]
struct Envelope {
    meta: Option<std::collections::HashMap<String, String>>,
}

impl<'de> serde::Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EnvelopeVisitor)
    }
}

/// A JSON value skipped entirely; `Some` of an object's scalars when it is an object.
#[derive(Default)]
struct MaybeObject(Option<std::collections::HashMap<String, String>>);

impl<'de> serde::Deserialize<'de> for MaybeObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MetaVisitor)
    }
}

/// A JSON value: `Some` text of a string or an integer that fits `i64`, `None` otherwise.
struct Scalar(Option<String>);

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// The `visit_*` methods of a visitor that takes any JSON value and keeps nothing (the default)
/// unless it is an object.
macro_rules! skip_other_values {
    ($ty:ty) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$ty, E> {
            Ok(Default::default())
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$ty, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$ty, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$ty, E> {
            Ok(Default::default())
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<$ty, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<$ty, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<$ty, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

struct EnvelopeVisitor;

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    skip_other_values!(Envelope);

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let mut envelope = Envelope::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "meta" {
                // As in a JSON object read whole, a repeated key keeps its last value.
                envelope.meta = map.next_value::<MaybeObject>()?.0;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(envelope)
    }
}

struct MetaVisitor;

impl<'de> serde::de::Visitor<'de> for MetaVisitor {
    type Value = MaybeObject;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    skip_other_values!(MaybeObject);

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<MaybeObject, A::Error> {
        let mut scalars = std::collections::HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value::<Scalar>()?.0 {
                Some(text) => scalars.insert(key, text),
                None => scalars.remove(&key),
            };
        }
        Ok(MaybeObject(Some(scalars)))
    }
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_string())))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar(i64::try_from(v).ok().map(|v| v.to_string())))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar(Some(v.to_owned())))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar(Some(v)))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar(None))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Scalar(None))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Scalar(None))
    }
}

/// The one answer to every delivery that is not let in: unknown connection, disconnected
/// connection, missing or wrong credentials.
fn unauthorized() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "missing or wrong HTTP Basic credentials",
    )
}

/// Length check, then an xor-fold over every byte: no early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq_parts(a, &[b])
}

/// [`constant_time_eq`] of `a` and the concatenation of `parts`, without building it.
pub fn constant_time_eq_parts(a: &[u8], parts: &[&[u8]]) -> bool {
    if a.len() != parts.iter().map(|p| p.len()).sum::<usize>() {
        return false;
    }
    a.iter()
        .zip(parts.iter().flat_map(|p| p.iter()))
        .fold(0_u8, |acc, (x, y)| acc | (x ^ y))
        == 0
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
    let Ok(connection_id) = ConnectionId::parse(&connection) else {
        return Err(unauthorized());
    };
    let request = WebhookRequest::new(connection_id, headers, body);
    let mut credentials = inbox
        .credentials(connection_id, false)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    if !credentials.as_ref().is_some_and(|c| request.carries(c)) {
        // The cache may be behind the store (a reconnect by another process): ask once more.
        credentials = inbox
            .credentials(connection_id, true)
            .await
            .map_err(|e| ApiError::internal(&e))?;
    }
    let verified = match request.verify(credentials.as_deref()) {
        Ok(verified) => verified,
        Err(error) => {
            if credentials.is_some() {
                inbox.auth_failed(connection_id).await;
            }
            return Err(error);
        }
    };
    match verified.into_delivery() {
        Ok(delivery) => {
            let accepted = inbox
                .accept(delivery)
                .await
                .map_err(|e| ApiError::internal(&e))?;
            // `{"status": ...}`, written out: the ack is on every delivery's path.
            let body = match accepted {
                Accepted::New => r#"{"status":"accepted"}"#,
                Accepted::Duplicate => r#"{"status":"duplicate"}"#,
            };
            // Room for the headers every response gets on the way out (the security headers),
            // so the map is not grown and rehashed on the hot path.
            let mut headers = HeaderMap::with_capacity(8);
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok((StatusCode::OK, headers, body))
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
    use uuid::Uuid;

    fn request(auth: Option<&str>, body: &str) -> WebhookRequest<Unverified> {
        let mut headers = HeaderMap::new();
        if let Some(auth) = auth {
            headers.insert(
                axum::http::header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(auth)).parse().unwrap(),
            );
        }
        WebhookRequest::new(
            ConnectionId::new(Uuid::nil()),
            headers,
            Bytes::from(body.to_owned()),
        )
    }

    fn creds() -> BasicCredentials {
        BasicCredentials {
            user: "u".into(),
            password: "p".into(),
        }
    }

    #[test]
    fn right_credentials_verify_and_wrong_or_missing_ones_are_unauthorized() {
        assert!(request(Some("u:p"), "{}").verify(Some(&creds())).is_ok());
        assert_eq!(
            request(Some("u:x"), "{}")
                .verify(Some(&creds()))
                .unwrap_err()
                .code,
            ErrorCode::Unauthorized
        );
        assert_eq!(
            request(None, "{}").verify(Some(&creds())).unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn a_person_change_becomes_a_delivery_keyed_on_meta_id() {
        let body = r#"{"meta":{"id":"ev-1","entity":"person","action":"change","entity_id":"42"},"data":{"id":42}}"#;
        let delivery = request(Some("u:p"), body)
            .verify(Some(&creds()))
            .unwrap()
            .into_delivery()
            .unwrap();
        assert_eq!(delivery.delivery_id, "ev-1");
        assert_eq!(delivery.object_id.as_deref(), Some("42"));
    }

    #[test]
    fn malformed_json_and_unknown_objects_are_rejected_with_their_reason() {
        let (error, rejected) = *request(Some("u:p"), "{not json")
            .verify(Some(&creds()))
            .unwrap()
            .into_delivery()
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::MalformedJson);
        assert_eq!(rejected.payload, "{not json");
        let body = r#"{"meta":{"id":"e","entity":"project","action":"change"}}"#;
        let (error, _) = *request(Some("u:p"), body)
            .verify(Some(&creds()))
            .unwrap()
            .into_delivery()
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::UnknownObject);
    }

    #[test]
    fn meta_is_read_as_a_whole_json_object_would_be_and_the_rest_is_only_checked_to_be_json() {
        let delivery = |body: &str| {
            request(Some("u:p"), body)
                .verify(Some(&creds()))
                .unwrap()
                .into_delivery()
        };
        // Numbers become their text, escapes are decoded, other keys and nesting are skipped,
        // and a repeated key keeps its last value.
        let body = r#"{"data":{"a":[1,{"b":null}],"meta":{"id":"nested"}},"meta":{"id":7,"entity":"per\u0073on","action":"create","entity_id":42,"x":[{"y":1}]},"meta":{"id":"ev-\"2\"","entity":"person","action":"change","entity_id":42,"timestamp":1.5}}"#;
        let d = delivery(body).unwrap();
        assert_eq!(d.delivery_id, r#"ev-"2""#);
        assert_eq!((d.object.as_str(), d.action.as_str()), ("person", "change"));
        assert_eq!(d.object_id.as_deref(), Some("42"));
        assert_eq!(d.payload, body);
        // Without an id, the key is built from the rest; a float or a huge integer is no text.
        let d = delivery(r#"{"meta":{"entity":"deal","action":"delete","entity_id":18446744073709551615,"timestamp":"t"}}"#).unwrap();
        assert_eq!(d.object_id, None);
        assert_eq!(d.delivery_id, "deal::delete:t");
        for not_meta in [
            r#"[{"meta":{}}]"#,
            r#"{"meta":"x"}"#,
            r#"{"meta":[1]}"#,
            "7",
            r#"{"meta":{"id":"1"},"meta":null}"#,
        ] {
            let (error, _) = *delivery(not_meta).unwrap_err();
            assert_eq!(error.code, ErrorCode::BadRequest, "{not_meta}");
        }
        for malformed in [r#"{"meta":{}"#, r#"{"meta":{}} x"#, r#"{"data":[1,]}"#, ""] {
            let (error, _) = *delivery(malformed).unwrap_err();
            assert_eq!(error.code, ErrorCode::MalformedJson, "{malformed}");
        }
    }

    #[test]
    fn constant_time_comparison_matches_plain_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq_parts(b"u:p", &[b"u", b":", b"p"]));
        assert!(!constant_time_eq_parts(b"u:p", &[b"u", b":", b"q"]));
        assert!(!constant_time_eq_parts(b"u:p", &[b"u:", b"p", b"x"]));
    }
}
