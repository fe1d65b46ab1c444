//! The app side of the sync.
//!
//! - **Outbound**: every contact change that came from Pipedrive (and link, unlink, a sync
//!   failure) is announced to every enabled `webhook_subscription`: [`contact_event`] writes one
//!   `outbound_delivery` row per subscription in the transaction that made the change, and
//!   [`run_deliveries_once`] sends due ones, signed with Standard Webhooks, one at a time per
//!   (subscription, contact) so a contact's events arrive in order, retrying with backoff. A
//!   subscription whose deliveries keep failing is disabled, with a sync-log entry.
//! - **Inbound**: [`apply_event`] applies a stored `POST /webhooks/app` event (an app that keeps
//!   its own contact store tells tandem what changed).

pub mod contact_json;
pub mod contacts;
pub mod local;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tandem_core::{ContactId, TenantId};

use chrono::{DateTime, Utc};
use rand::{Rng, RngCore};
use serde_json::{json, Value};
use tandem_core::{keys, FieldValue, LabeledValue, RetryPolicy};
use tandem_webhooks::standard::{self, Secret};
use uuid::Uuid;

use crate::store::subscriptions::{self as stored, SubscriptionRow};
use crate::store::Conn;
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{links, Engine, SyncError};
use contact_json::{FieldCatalog, Mode};

/// What happened to a contact, as the app is told (`type` of the webhook).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactEvent {
    /// A new contact, from a Pipedrive person.
    Created,
    /// Values changed in Pipedrive were merged into the contact.
    Updated,
    /// The contact was linked to a Pipedrive person.
    Linked,
    /// The person was deleted (or merged away) in Pipedrive; the contact is unlinked.
    Unlinked,
    /// A write of this contact to Pipedrive failed for good (dead letter).
    SyncFailed,
    /// A journey action for this contact is done (`data.action` has Pipedrive's ids).
    ActionDone,
    /// A journey action for this contact failed (`data.action.error` has Pipedrive's text).
    ActionFailed,
}

impl ContactEvent {
    pub const ALL: [Self; 7] = [
        Self::Created,
        Self::Updated,
        Self::Linked,
        Self::Unlinked,
        Self::SyncFailed,
        Self::ActionDone,
        Self::ActionFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "contact.created",
            Self::Updated => "contact.updated",
            Self::Linked => "contact.linked",
            Self::Unlinked => "contact.unlinked",
            Self::SyncFailed => "contact.sync_failed",
            Self::ActionDone => "action.done",
            Self::ActionFailed => "action.failed",
        }
    }
}

/// Delivery states (the work queue owns them).
pub use crate::queue::delivery::state as delivery_state;

/// Called in the transaction that changed a contact from the Pipedrive side.
pub async fn contact_changed(
    txn: &impl Conn,
    _engine: &Engine,
    contact_id: ContactId,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    contact_event(txn, contact_id, ContactEvent::Updated, None, now).await
}

/// Enqueues `event` for `contact_id` to every enabled subscription, in the caller's transaction.
/// The payload carries the contact as it is now, so the app sees states in order.
pub async fn contact_event(
    txn: &impl Conn,
    contact_id: ContactId,
    event: ContactEvent,
    error: Option<Value>,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let extra = error.map(|error| ("error", error));
    contact_event_with(txn, contact_id, event, extra, now).await
}

/// Whether any enabled subscription would be told about a contact event ([`contact_event`]
/// writes nothing otherwise).
pub async fn has_subscribers(txn: &impl Conn) -> Result<bool, SyncError> {
    Ok(stored::any_enabled(txn).await?)
}

/// As [`contact_event`], with one more key in `data` (e.g. `action`).
pub async fn contact_event_with(
    txn: &impl Conn,
    contact_id: ContactId,
    event: ContactEvent,
    extra: Option<(&str, Value)>,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    contact_events_with(txn, &[contact_id], event, extra, now).await
}

/// [`contact_event`] for each of `contact_ids` (in that order), the deliveries written together.
pub async fn contact_events(
    txn: &impl Conn,
    contact_ids: &[ContactId],
    event: ContactEvent,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    contact_events_with(txn, contact_ids, event, None, now).await
}

async fn contact_events_with(
    txn: &impl Conn,
    contact_ids: &[ContactId],
    event: ContactEvent,
    extra: Option<(&str, Value)>,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    if contact_ids.is_empty() {
        return Ok(());
    }
    // Each contact's own tenant's subscriptions: tenants never hear each other's contacts.
    let tenants: HashMap<ContactId, TenantId> = contacts::heads(txn, contact_ids)
        .await?
        .into_iter()
        .map(|head| (head.id, head.tenant))
        .collect();
    let mut subscriptions: HashMap<&TenantId, Vec<Uuid>> = HashMap::new();
    let mut payloads: Vec<(Vec<stored::Target>, Value)> = Vec::new();
    for &contact_id in contact_ids {
        let Some(tenant) = tenants.get(&contact_id) else {
            continue;
        };
        if !subscriptions.contains_key(tenant) {
            let wanted = stored::enabled_of(txn, tenant)
                .await?
                .into_iter()
                .filter(|s| {
                    EventFilter::from_stored(s.filter.as_deref()).wants(event.as_str(), &[])
                })
                .map(|s| s.id)
                .collect();
            subscriptions.insert(tenant, wanted);
        }
        let targets: Vec<stored::Target> = subscriptions[tenant]
            .iter()
            .map(|id| (*id, Some(contact_id)))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let Some(contact) = contact_json::view(txn, contact_id).await? else {
            continue;
        };
        let mut data = json!({ "contact": contact });
        if let Some((key, value)) = &extra {
            data[*key] = value.clone();
        }
        let payload = json!({
            "type": event.as_str(),
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": data,
        });
        payloads.push((targets, payload));
    }
    let deliveries: Vec<stored::Delivery<'_>> = payloads
        .iter()
        .map(|(targets, payload)| (targets.as_slice(), payload))
        .collect();
    stored::enqueue_many(
        txn,
        &deliveries,
        event.as_str(),
        delivery_state::PENDING,
        now,
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What a subscription wants to hear

/// A subscription's filter: event types (none: the contact and action events, which every
/// subscription had before CRM triggers existed; `*`: everything), and for deal events the
/// pipelines and stages they must touch.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pipeline_ids: Vec<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stage_ids: Vec<i64>,
}

/// Every event type a subscription can name.
pub fn known_event_types() -> Vec<&'static str> {
    ContactEvent::ALL
        .iter()
        .map(|e| e.as_str())
        .chain(tandem_core::triggers::Trigger::KINDS)
        .collect()
}

impl EventFilter {
    fn from_stored(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    fn to_stored(&self) -> Option<String> {
        (*self != Self::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// The event types it receives.
    pub fn types(&self) -> Vec<String> {
        match &self.event_types {
            Some(types) if types.iter().any(|t| t == "*") => {
                known_event_types().into_iter().map(str::to_owned).collect()
            }
            Some(types) => types.clone(),
            None => ContactEvent::ALL
                .iter()
                .map(|e| e.as_str().to_owned())
                .collect(),
        }
    }

    /// Whether an event of `kind` that touches the deal places `places` (pipeline, stage)
    /// passes; events of other objects pass the pipeline and stage filters.
    pub fn wants(&self, kind: &str, places: &[(Option<i64>, Option<i64>)]) -> bool {
        if !self.types().iter().any(|t| t == kind) {
            return false;
        }
        if !kind.starts_with("deal.") || places.is_empty() {
            return true;
        }
        let pipeline_ok = self.pipeline_ids.is_empty()
            || places
                .iter()
                .any(|(p, _)| p.is_some_and(|p| self.pipeline_ids.contains(&p)));
        let stage_ok = self.stage_ids.is_empty()
            || places
                .iter()
                .any(|(_, s)| s.is_some_and(|s| self.stage_ids.contains(&s)));
        pipeline_ok && stage_ok
    }
}

/// Whether an enabled subscription wants events of `kind` (before reading what only such an
/// event needs).
pub async fn wanted(db: &impl Conn, kind: &str) -> Result<bool, SyncError> {
    Ok(stored::enabled(db)
        .await?
        .iter()
        .any(|s| EventFilter::from_stored(s.filter.as_deref()).wants(kind, &[])))
}

/// Enqueues a CRM trigger event of `connection` for every enabled subscription of the
/// connection's tenant that wants it: one delivery per concerned contact (ordered per contact
/// like every event), or one without a contact when no linked contact is concerned. `places`
/// are the deal's (pipeline, stage) the event touches, for the subscriptions' filters.
pub async fn crm_event(
    txn: &impl Conn,
    connection: tandem_core::ConnectionId,
    kind: &str,
    contacts: &[ContactId],
    places: &[(Option<i64>, Option<i64>)],
    payload: &Value,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    let Some(tenant) = crate::store::connections::get(txn, connection)
        .await?
        .map(|c| c.tenant)
    else {
        return Ok(0);
    };
    let mut targets = Vec::new();
    for subscription in stored::enabled_of(txn, &tenant).await? {
        if !EventFilter::from_stored(subscription.filter.as_deref()).wants(kind, places) {
            continue;
        }
        if contacts.is_empty() {
            targets.push((subscription.id, None));
        }
        targets.extend(contacts.iter().map(|c| (subscription.id, Some(*c))));
    }
    stored::enqueue_each(txn, &targets, kind, payload, delivery_state::PENDING, now).await?;
    Ok(targets.len())
}

// ---------------------------------------------------------------------------------------------
// Subscriptions

/// A subscription as the API shows it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub tenant: TenantId,
    pub url: String,
    pub enabled: bool,
    pub consecutive_failures: i32,
    pub disabled_at: Option<DateTime<Utc>>,
    /// What it wants to hear.
    pub filter: EventFilter,
    pub created_at: DateTime<Utc>,
}

impl From<SubscriptionRow> for Subscription {
    fn from(row: SubscriptionRow) -> Self {
        Self {
            filter: EventFilter::from_stored(row.filter.as_deref()),
            id: row.id,
            tenant: row.tenant,
            url: row.url,
            enabled: row.enabled,
            consecutive_failures: row.consecutive_failures,
            disabled_at: row.disabled_at,
            created_at: row.created_at,
        }
    }
}

/// A new `whsec_` secret: 32 random bytes.
pub fn generate_secret() -> Secret {
    let mut bytes = vec![0_u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    Secret::from_bytes(bytes)
}

/// Creates a subscription to the contact and action events; the secret is stored encrypted
/// and returned to the caller only here.
pub async fn create_subscription(
    engine: &Engine,
    url: &str,
    secret: Secret,
) -> Result<(Subscription, Secret), SyncError> {
    create_subscription_with(
        engine,
        &TenantId::default(),
        url,
        secret,
        EventFilter::default(),
    )
    .await
}

/// As [`create_subscription`], with what the subscription wants to hear.
pub async fn create_subscription_with(
    engine: &Engine,
    tenant: &TenantId,
    url: &str,
    secret: Secret,
    filter: EventFilter,
) -> Result<(Subscription, Secret), SyncError> {
    let now = engine.now();
    let row = SubscriptionRow {
        id: Uuid::now_v7(),
        tenant: tenant.clone(),
        url: url.to_owned(),
        secret_enc: Some(engine.vault.encrypt_str(&secret.to_whsec())),
        enabled: true,
        consecutive_failures: 0,
        disabled_at: None,
        filter: filter.to_stored(),
        created_at: now,
        updated_at: now,
    };
    let row = stored::insert(&engine.store, row).await?;
    Ok((row.into(), secret))
}

/// `tenant`'s subscriptions, oldest first.
pub async fn list_subscriptions(
    engine: &Engine,
    tenant: &TenantId,
) -> Result<Vec<Subscription>, SyncError> {
    Ok(stored::list(&engine.store, tenant)
        .await?
        .into_iter()
        .map(Subscription::from)
        .collect())
}

/// The subscription `id` of `tenant` (another tenant's is not there).
pub async fn get_subscription(
    engine: &Engine,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<Subscription>, SyncError> {
    Ok(stored::get(&engine.store, id)
        .await?
        .filter(|s| s.tenant == *tenant)
        .map(Subscription::from))
}

/// Deletes a subscription and its delivery log; returns whether it existed.
pub async fn delete_subscription(engine: &Engine, id: Uuid) -> Result<bool, SyncError> {
    let txn = engine.store.begin().await?;
    let deleted = stored::delete(&txn, id).await?;
    txn.commit().await?;
    Ok(deleted)
}

/// Re-enables a subscription (after it was disabled for failing); its pending deliveries resume.
pub async fn enable_subscription(engine: &Engine, id: Uuid) -> Result<bool, SyncError> {
    let now = engine.now();
    Ok(stored::enable(&engine.store, id, now).await?)
}

/// One row of a subscription's delivery log.
pub use crate::store::subscriptions::DeliveryRow as DeliveryLogEntry;

/// The newest `limit` deliveries of a subscription, newest first.
pub async fn delivery_log(
    engine: &Engine,
    subscription: Uuid,
    limit: u64,
) -> Result<Vec<DeliveryLogEntry>, SyncError> {
    Ok(stored::deliveries(&engine.store, subscription, limit).await?)
}

// ---------------------------------------------------------------------------------------------
// Delivering

impl Engine {
    /// The retry schedule of deliveries to the app.
    pub fn app_retry_policy(&self) -> RetryPolicy {
        let s = &self.settings.app_webhooks;
        RetryPolicy::exponential(
            Duration::from_millis(s.retry_initial_ms),
            2,
            Duration::from_millis(s.retry_cap_ms),
            s.max_attempts,
        )
    }
}

struct Target {
    url: String,
    secret: Secret,
}

/// The enabled subscriptions with their secrets.
async fn targets(engine: &Engine) -> Result<HashMap<Uuid, Target>, SyncError> {
    let mut targets = HashMap::new();
    for row in stored::enabled(&engine.store).await? {
        let Some(sealed) = &row.secret_enc else {
            continue;
        };
        let text = engine.vault.decrypt_string(sealed)?;
        let secret = Secret::parse(&text)
            .map_err(|e| SyncError::Corrupt(format!("subscription {} secret: {e}", row.id)))?;
        targets.insert(
            row.id,
            Target {
                url: row.url,
                secret,
            },
        );
    }
    Ok(targets)
}

/// The earliest time a pending delivery (of an enabled subscription) is due, if any.
pub async fn next_delivery_due(engine: &Engine) -> Result<Option<DateTime<Utc>>, SyncError> {
    let enabled: Vec<Uuid> = targets(engine).await?.into_keys().collect();
    if enabled.is_empty() {
        return Ok(None);
    }
    Ok(stored::next_delivery_due(
        &engine.store,
        &enabled,
        &[delivery_state::PENDING, delivery_state::SENDING],
    )
    .await?)
}

/// How a send ended.
enum Sent {
    Ok(u16),
    Failed { status: Option<u16>, code: String },
}

/// Delivers due outbound webhooks; returns whether any was attempted.
///
/// Per (subscription, contact) only the oldest undelivered event may be sent, so a contact's
/// events arrive in order; different contacts go out concurrently.
pub async fn run_deliveries_once(engine: &Engine) -> Result<bool, SyncError> {
    let targets = targets(engine).await?;
    if targets.is_empty() {
        return Ok(false);
    }
    let lease = chrono::Duration::seconds(
        i64::try_from(engine.settings.app_webhooks.request_timeout_secs * 3).unwrap_or(30),
    );
    let limit = engine.settings.workers.concurrency.max(1);
    // The claim takes only the oldest undelivered event of each (subscription, contact), for
    // enabled subscriptions; only this worker (or replica) sends a claimed attempt.
    let due = crate::queue::delivery::claim(&engine.store, engine.now(), lease, limit).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for row in due {
        let Some(target) = targets.get(&row.subscription_id) else {
            // Disabled since the targets were read: its lease runs out, then it waits.
            continue;
        };
        let client = engine.app_http.clone();
        let url = target.url.clone();
        let secret = target.secret.clone();
        let policy = crate::egress::EgressPolicy::from_settings(&engine.settings);
        tasks.spawn(async move {
            // Address literals and schemes are checked here (names, by the client's resolver).
            let allowed = url::Url::parse(&url)
                .ok()
                .is_some_and(|u| policy.check_url(&u).is_ok());
            let sent = if allowed {
                send(&client, &url, &secret, &row).await
            } else {
                Sent::Failed {
                    status: None,
                    code: "egress_refused".to_owned(),
                }
            };
            (row, sent)
        });
    }
    let attempted = !tasks.is_empty();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((row, sent)) => record_outcome(engine, row, sent).await?,
            Err(error) => {
                tracing::error!(error = %error, "A delivery task panicked; it is retried after its lease.");
            }
        }
    }
    Ok(attempted)
}

#[tracing::instrument(skip_all, fields(delivery_id = %row.id, subscription_id = %row.subscription_id, attempt = row.attempts + 1))]
async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &Secret,
    row: &crate::queue::delivery::Delivery,
) -> Sent {
    let body = serde_json::to_vec(&row.payload).unwrap_or_default();
    let message_id = format!("msg_{}", row.id.simple());
    let timestamp = Utc::now().timestamp();
    let signed = standard::sign(secret, &message_id, timestamp, &body);
    let result = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(standard::HEADER_ID, &signed.id)
        .header(standard::HEADER_TIMESTAMP, signed.timestamp.to_string())
        .header(standard::HEADER_SIGNATURE, &signed.signature)
        .body(body)
        .send()
        .await;
    match result {
        Ok(response) if response.status().is_success() => Sent::Ok(response.status().as_u16()),
        Ok(response) => {
            let status = response.status().as_u16();
            Sent::Failed {
                status: Some(status),
                code: format!("http_{status}"),
            }
        }
        Err(error) => {
            let code = if error.is_timeout() {
                "timeout"
            } else if error.is_connect() {
                "connect_failed"
            } else {
                "request_failed"
            };
            Sent::Failed {
                status: None,
                code: code.to_owned(),
            }
        }
    }
}

async fn record_outcome(
    engine: &Engine,
    row: crate::queue::delivery::Delivery,
    sent: Sent,
) -> Result<(), SyncError> {
    use crate::queue::delivery::{self, Outcome};
    let now = engine.now();
    let attempts = row.attempts + 1;
    let txn = engine.store.begin().await?;
    let subscription_id = row.subscription_id;
    match sent {
        Sent::Ok(status) => {
            crate::meter::app_delivery(true);
            if !delivery::end(&txn, &row, Outcome::Delivered { status }, now).await? {
                return lease_lost(txn, &row).await;
            }
            stored::reset_failures(&txn, subscription_id).await?;
            tracing::debug!(delivery_id = %row.id, status, "Delivered a webhook to the app.");
        }
        Sent::Failed { status, code } => {
            crate::meter::app_delivery(false);
            let jitter: f64 = rand::thread_rng().gen_range(0.0..=1.0);
            let attempt = u32::try_from(attempts).unwrap_or(u32::MAX);
            let next = engine.app_retry_policy().next_delay(attempt, jitter);
            let outcome = match next {
                Some(delay) => Outcome::Retry {
                    run_at: now + chrono::Duration::from_std(delay).unwrap_or_default(),
                    status,
                    code: &code,
                },
                None => Outcome::Dead {
                    status,
                    code: &code,
                },
            };
            if !delivery::end(&txn, &row, outcome, now).await? {
                return lease_lost(txn, &row).await;
            }
            if next.is_some() {
                tracing::warn!(delivery_id = %row.id, error = %code, "A webhook to the app failed; a retry was scheduled.");
            } else {
                tracing::error!(delivery_id = %row.id, error = %code, "A webhook to the app failed on every attempt; it was given up.");
                let mut entry = Entry::new(
                    Level::Error,
                    Direction::App,
                    "app_delivery_failed",
                    format!(
                        "A `{}` webhook to the app failed {attempts} times and was given up.",
                        row.event_type
                    ),
                )
                .status(status)
                .remote_error(code.clone())
                .detail(json!({ "subscription_id": subscription_id, "delivery_id": row.id }));
                if let Some(contact) = row.contact_id {
                    entry = entry.contact(contact.into());
                }
                synclog::record(&txn, entry, now).await?;
            }
            let threshold = i32::try_from(engine.settings.app_webhooks.disable_after_failures)
                .unwrap_or(i32::MAX);
            if let Some(failures) =
                stored::count_failure(&txn, subscription_id, threshold, now).await?
            {
                tracing::error!(subscription_id = %subscription_id, failures, "A webhook subscription kept failing and was disabled.");
                synclog::record(
                    &txn,
                    Entry::new(
                        Level::Error,
                        Direction::App,
                        "webhook_subscription_disabled",
                        format!(
                            "The app's webhook subscription failed {failures} times in a row and was disabled; its pending deliveries are kept."
                        ),
                    )
                    .status(status)
                    .remote_error(code)
                    .hint("Fix the receiving endpoint, then re-enable the subscription (POST /api/v1/webhook-subscriptions/{id}/enable).")
                    .detail(json!({ "subscription_id": subscription_id })),
                    now,
                )
                .await?;
            }
        }
    }
    txn.commit().await?;
    Ok(())
}

/// This worker's claim of a delivery ran out and another worker took it over: nothing is
/// recorded here (the other attempt's outcome counts).
async fn lease_lost(
    txn: crate::store::Tx,
    row: &crate::queue::delivery::Delivery,
) -> Result<(), SyncError> {
    txn.rollback().await?;
    tracing::warn!(delivery_id = %row.id, subscription_id = %row.subscription_id, "A delivery's lease ran out before its outcome was recorded; the newer claim decides.");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inbound app events

const DATA_KEYS: &[&str] = &["id", "email", "fields", "in_pipedrive_list"];

/// Applies an app change event stored in the inbox (`POST /webhooks/app`). The error text is
/// kept on the event and in the sync log. Returns `None`: the app's own change is not announced
/// back to it.
pub async fn apply_event(
    txn: &impl Conn,
    _engine: &Engine,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<Option<ContactId>, crate::queue::Failure> {
    let value: Value = serde_json::from_str(payload).map_err(|e| format!("malformed JSON: {e}"))?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .ok_or("`type` is missing")?;
    let data = value
        .get("data")
        .and_then(Value::as_object)
        .ok_or("`data` must be an object")?;
    if let Some(extra) = data.keys().find(|k| !DATA_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `data.{extra}`; allowed are {}",
            DATA_KEYS.join(", ")
        )
        .into());
    }
    let db_error = |e: SyncError| e.into_failure();
    let id = match data.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(
            Uuid::parse_str(text)
                .map(ContactId::from)
                .map_err(|_| format!("`data.id` is not a contact id: {text:?}"))?,
        ),
        Some(_) => return Err("`data.id` must be a string".into()),
    };
    let email = match data.get("email") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            Some(tandem_core::EmailAddress::parse(text).map_err(|e| format!("`data.email`: {e}"))?)
        }
        Some(_) => return Err("`data.email` must be a string".into()),
    };
    let in_list = match data.get("in_pipedrive_list") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err("`data.in_pipedrive_list` must be true or false".into()),
    };
    // The tenant the event names (signed with the body; the receiver checked its form),
    // else the default one (ADR 26).
    let tenant = match value.get("tenant") {
        Some(Value::String(name)) => TenantId::parse(name).map_err(|e| format!("`tenant`: {e}"))?,
        _ => TenantId::default(),
    };
    let catalog = FieldCatalog::load(txn, &tenant).await.map_err(db_error)?;
    let mode = if kind == "contact.created" {
        Mode::Create
    } else {
        Mode::Change
    };
    let mut fields = match data.get("fields") {
        None => BTreeMap::new(),
        Some(raw) => {
            contact_json::parse_fields(&catalog, raw, "data.fields", mode).map_err(|issues| {
                issues
                    .iter()
                    .map(|i| format!("`{}` {}", i.field, i.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            })?
        }
    };
    if let (Some(email), false) = (&email, fields.contains_key(keys::EMAIL)) {
        if let Ok(key) = tandem_core::FieldKey::new(keys::EMAIL) {
            fields.insert(
                key,
                FieldValue::Emails(vec![LabeledValue::new(email.original(), None, true)]),
            );
        }
    }
    // The contact the event is about: by tandem's id, else by e-mail.
    let existing = match (id, &email) {
        (Some(id), _) => match contacts::load_in(txn, &tenant, id)
            .await
            .map_err(|e| db_error(e.into()))?
        {
            Some(_) => Some(id),
            None => return Err(format!("contact {id} does not exist").into()),
        },
        (None, Some(email)) => {
            let found = contacts::ids_by_email(txn, &tenant, email.as_str())
                .await
                .map_err(|e| db_error(e.into()))?;
            if found.len() > 1 {
                return Err(format!(
                    "{} contacts share this e-mail; name the contact by `data.id`",
                    found.len()
                )
                .into());
            }
            found.first().copied()
        }
        (None, None) if kind == "contact.created" => None,
        (None, None) => return Err("name the contact by `data.id` or `data.email`".into()),
    };
    // Checked before anything is written: a failed event changes nothing.
    if let (Some(false), Some(id)) = (in_list, existing) {
        if links::any_for_contact(txn, id)
            .await
            .map_err(|e| db_error(e.into()))?
            .is_some()
        {
            return Err("the contact is linked to a Pipedrive person and stays in the Pipedrive contacts list; delete the person in Pipedrive to remove it".into());
        }
    }
    let contact_id = match (kind, existing) {
        ("contact.archived", Some(id)) => {
            local::archive_contact_in(txn, &tenant, id, now)
                .await
                .map_err(db_error)?;
            return Ok(None);
        }
        ("contact.archived", None) => return Err("no such contact to archive".into()),
        (_, Some(id)) => {
            local::update_contact_in(txn, &tenant, id, fields, now)
                .await
                .map_err(db_error)?;
            id
        }
        (_, None) => {
            local::create_contact_in(txn, &tenant, fields, false, now)
                .await
                .map_err(db_error)?
                .contact_id
        }
    };
    match in_list {
        Some(true) => {
            local::add_to_pipedrive_list_in(txn, &tenant, contact_id, now)
                .await
                .map_err(db_error)?;
        }
        Some(false) => {
            contacts::remove_from_list(txn, contact_id, contacts::PIPEDRIVE_LIST)
                .await
                .map_err(|e| db_error(e.into()))?;
        }
        None => {}
    }
    Ok(None)
}
