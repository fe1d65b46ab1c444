//! The engine's side of the webhook receivers: connection credentials, and durable storage of
//! deliveries in `inbox_event` (deduplicated by the `inbox_event_source_delivery_key` constraint).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tandem_core::ConnectionId;

use dashmap::DashMap;
use tandem_webhooks::app::{AppDelivery, AppInbox, RejectedAppDelivery};
use tandem_webhooks::pipedrive::{
    Accepted, BasicCredentials, InboundDelivery, Inbox, InboxError, RejectedDelivery,
};
use tandem_webhooks::standard::Secret;

use super::ingest::{IngestWriter, NewEvent};
use crate::meter::WebhookOutcome;
use crate::store::{queue, Conn};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::worker::inbox_state;
use crate::sync::Engine;

/// After this many consecutive authentication failures for a connection, the sync log says so.
const AUTH_FAILURES_LOGGED_AFTER: u32 = 5;

#[derive(Clone)]
pub struct StoreInbox {
    engine: Engine,
    writer: IngestWriter,
    auth_failures: Arc<DashMap<ConnectionId, AtomicU32>>,
}

impl StoreInbox {
    pub fn new(engine: Engine) -> Self {
        Self {
            writer: IngestWriter::new(engine.store.clone(), Arc::clone(&engine.clock)),
            engine,
            auth_failures: Arc::default(),
        }
    }
}

fn outcome_of(accepted: Accepted) -> WebhookOutcome {
    match accepted {
        Accepted::New => WebhookOutcome::Accepted,
        Accepted::Duplicate => WebhookOutcome::Duplicate,
    }
}

fn storage(error: impl std::fmt::Display) -> InboxError {
    InboxError(error.to_string())
}

impl Inbox for StoreInbox {
    async fn credentials(
        &self,
        connection: ConnectionId,
        fresh: bool,
    ) -> Result<Option<Arc<BasicCredentials>>, InboxError> {
        self.engine
            .webhook_auth
            .get(&self.engine, connection, fresh)
            .await
            .map_err(storage)
    }

    async fn accept(&self, delivery: InboundDelivery) -> Result<Accepted, InboxError> {
        // Read first: every delivery passes here, and a removal write-locks the shard.
        if self.auth_failures.contains_key(&delivery.connection_id) {
            self.auth_failures.remove(&delivery.connection_id);
        }
        let (source, connection) = (delivery.source, delivery.connection_id);
        self.writer
            .store(NewEvent {
                connection_id: Some(delivery.connection_id.uuid()),
                source: delivery.source.to_owned(),
                delivery_id: delivery.delivery_id,
                object: delivery.object,
                action: delivery.action,
                object_id: delivery.object_id,
                payload: delivery.payload,
            })
            .await
            .inspect(|accepted| {
                crate::meter::webhook_event(source, Some(connection), outcome_of(*accepted));
                if *accepted == Accepted::New {
                    self.engine.wake.notify_one();
                }
            })
    }

    async fn reject(&self, rejected: RejectedDelivery) -> Result<(), InboxError> {
        crate::meter::webhook_event(
            rejected.source,
            Some(rejected.connection_id),
            WebhookOutcome::Rejected,
        );
        let now = self.engine.now();
        let db = &self.engine.store;
        store_rejected(
            db,
            Some(rejected.connection_id),
            rejected.source,
            None,
            &rejected.payload,
            &rejected.reason,
            now,
        )
        .await?;
        synclog::record(
            db,
            Entry::new(
                Level::Warn,
                Direction::Inbound,
                "webhook_rejected",
                "A webhook delivery was rejected and kept for inspection.",
            )
            .connection(rejected.connection_id)
            .status(Some(400))
            .remote_error(rejected.reason),
            now,
        )
        .await
        .map_err(storage)
    }

    async fn auth_failed(&self, connection: ConnectionId) {
        crate::meter::webhook_event("pipedrive", Some(connection), WebhookOutcome::Unauthorized);
        let failures = self
            .auth_failures
            .entry(connection)
            .or_default()
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        if failures == AUTH_FAILURES_LOGGED_AFTER {
            let entry = Entry::new(Level::Warn, Direction::Inbound, "webhook_auth_failed", format!("{failures} webhook deliveries in a row had wrong or missing credentials."))
                .connection(connection)
                .status(Some(401))
                .hint("If Pipedrive's webhooks were recreated by someone else, use Resync now to re-register tandem's.");
            if let Err(error) = synclog::record(&self.engine.store, entry, self.engine.now()).await
            {
                tracing::warn!(error = %error, "Could not record repeated webhook authentication failures.");
            }
        }
    }
}

/// The app receiver (`POST /webhooks/app`): secrets from `app_webhooks.inbound_secrets`, events
/// stored in `inbox_event` with source `app`, deduplicated on `webhook-id`.
impl AppInbox for StoreInbox {
    fn secrets(&self) -> Vec<Secret> {
        self.engine
            .settings
            .app_webhooks
            .inbound_secrets
            .iter()
            .filter_map(|s| Secret::parse(s.expose()).ok())
            .collect()
    }

    async fn accept(&self, delivery: AppDelivery) -> Result<Accepted, InboxError> {
        self.writer
            .store(NewEvent {
                connection_id: None,
                source: "app".to_owned(),
                delivery_id: delivery.delivery_id,
                object: delivery.object,
                action: delivery.action,
                object_id: delivery.object_id,
                payload: delivery.payload,
            })
            .await
            .inspect(|accepted| {
                crate::meter::webhook_event("app", None, outcome_of(*accepted));
                if *accepted == Accepted::New {
                    self.engine.wake.notify_one();
                }
            })
    }

    async fn reject(&self, rejected: RejectedAppDelivery) -> Result<(), InboxError> {
        crate::meter::webhook_event("app", None, WebhookOutcome::Rejected);
        let now = self.engine.now();
        let db = &self.engine.store;
        store_rejected(
            db,
            None,
            "app",
            Some(rejected.delivery_id),
            &rejected.payload,
            &rejected.reason,
            now,
        )
        .await?;
        synclog::record(
            db,
            Entry::new(
                Level::Warn,
                Direction::App,
                "app_event_rejected",
                "An event from the app was rejected and kept for inspection.",
            )
            .status(Some(400))
            .remote_error(rejected.reason),
            now,
        )
        .await
        .map_err(storage)
    }
}

/// Keeps a rejected delivery for inspection (state `rejected`, never applied).
async fn store_rejected(
    db: &impl Conn,
    connection_id: Option<ConnectionId>,
    source: &str,
    object_id: Option<String>,
    payload: &str,
    reason: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), InboxError> {
    queue::insert_rejected_inbox_event(
        db,
        connection_id,
        source,
        object_id,
        payload,
        reason,
        inbox_state::REJECTED,
        now,
    )
    .await
    .map_err(storage)
}
