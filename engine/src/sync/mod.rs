//! The sync use-cases: what happens when either side changes. Everything here goes through the
//! store in transactions and through the CRM boundary (`crate::crm::Crm`) for calls; the decisions are the
//! core's (merge, identity, echo, retry).

pub mod app;
pub mod connections;
pub mod emails;
pub mod housekeeping;
pub mod inbound;
pub mod links;
pub mod mirror;
pub mod organizations;
pub mod outbound;
pub mod ownership;
pub mod record_check;
pub mod related;
pub mod synclog;
pub mod triggers;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tandem_core::Timestamp;

use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::crm::Crm;
use crate::crypto::{CryptoError, Vault};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(crate::store::StoreError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    #[error("secret error: {0}")]
    Crypto(#[from] CryptoError),
    /// The CRM's error says which CRM part failed ("Server from the CRM (HTTP 500): …").
    #[error(transparent)]
    Crm(#[from] tandem_core::CrmError),
    #[error("connection {0} not found")]
    ConnectionNotFound(tandem_core::ConnectionId),
    #[error("contact {0} not found")]
    ContactNotFound(tandem_core::ContactId),
    /// An app-side change (REST API or app event) of an archived contact.
    #[error("contact {0} is archived; archived contacts are read-only")]
    Archived(uuid::Uuid),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
    #[error("Company changed: Pipedrive signed you in to company {offered:?}, but tandem is connected to company {connected:?}")]
    CompanyChanged {
        connected: Option<i64>,
        offered: Option<i64>,
    },
    #[error("{field}: {message}")]
    Validation { field: String, message: String },
    #[error("{0}")]
    AdminRequired(String),
    /// Another writer changed, while this transaction ran, what it had read and acted on (see
    /// `inbound::poller::page_transaction`): it is rolled back and may run again.
    #[error("lost a race: {0}")]
    LostRace(String),
}

impl From<crate::store::StoreError> for SyncError {
    /// Unreadable stored data is [`SyncError::Corrupt`] (never retried); the rest is the store's.
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Corrupt(message) => Self::Corrupt(message),
            error => Self::Store(error),
        }
    }
}

/// When a connection's last catch-up before creates started; locked while one runs.
pub type CatchUpSlot = Arc<tokio::sync::Mutex<Option<DateTime<Utc>>>>;

/// Everything the use-cases need, cheap to clone.
#[derive(Clone)]
pub struct Engine {
    pub store: Store,
    /// Pipedrive's connector (ADR 0011); a connection's own connector is `ConnectionCtx.crm`
    /// (see [`Engine::crm_of`]).
    pub crm: Crm,
    /// Salesforce's connector through the production login host (ADR 0013).
    pub salesforce: Crm,
    /// Salesforce's connector through the sandbox login host.
    pub salesforce_sandbox: Crm,
    pub vault: Arc<Vault>,
    pub settings: Arc<Settings>,
    /// This tandem's public base URL (webhook and OAuth callback URLs).
    pub public_url: String,
    /// The HTTP client for webhooks to the app's subscriptions.
    pub app_http: reqwest::Client,
    /// Wakes the idle worker loop at once when new work is committed (an accepted webhook, an
    /// app-side change); without it the loop notices after `workers.idle_poll_ms`.
    pub wake: Arc<tokio::sync::Notify>,
    /// When the jobs this replica put back (a batch waiting for company, a paced write) come
    /// due, unix ms on [`Engine::now`]: the idle worker loop wakes then, not at its idle poll.
    pub put_back_due: Arc<std::sync::Mutex<std::collections::BTreeSet<i64>>>,
    /// Wakes the live mirror's loop (a mirror switched on). Its own: a `Notify` wakes one
    /// waiter, and the queue loop must never miss the wake of an accepted webhook.
    pub mirror_wake: Arc<tokio::sync::Notify>,
    /// Per connection, when the last catch-up before creates started (see
    /// `outbound::catch_up`); the lock makes concurrent creates share one.
    pub catch_ups: Arc<dashmap::DashMap<tandem_core::ConnectionId, CatchUpSlot>>,
    /// Per connection, when (on [`Engine::now`]) its change capture last read changes: the poll
    /// loop runs at the shortest interval of its CRMs, each connection at its own.
    pub last_polls: Arc<dashmap::DashMap<tandem_core::ConnectionId, DateTime<Utc>>>,
    /// When each connection's related records were last read (`sync::related`).
    pub last_related_reads: Arc<dashmap::DashMap<tandem_core::ConnectionId, DateTime<Utc>>>,
    /// Per batching connection, its last write batch that was not full (when it left, unix ms
    /// on [`Engine::now`], and how many pushes it carried) and until when the pushes put back
    /// for company wait (`tandem_core::plan_batches`).
    pub batch_windows: Arc<dashmap::DashMap<tandem_core::ConnectionId, tandem_core::BatchWindow>>,
    /// Per connection, how its connector batches writes (its CRM never changes), so the
    /// outbox does not load the connection to learn it on every round.
    pub write_batching:
        Arc<dashmap::DashMap<tandem_core::ConnectionId, tandem_core::WriteBatching>>,
    /// The webhook receiver's credential cache; use-cases that change credentials forget entries.
    pub webhook_auth: connections::WebhookAuthCache,
    /// The one clock use-cases read ([`Engine::now`]); tests move a `TestClock`.
    pub clock: Arc<dyn Clock>,
    /// This process among the replicas sharing the database ([`ownership`]).
    pub replica: Arc<ownership::Replica>,
}

impl Engine {
    pub fn new(
        store: Store,
        vault: Arc<Vault>,
        settings: Arc<Settings>,
        public_url: String,
    ) -> Self {
        // Subscription URLs are chosen by API-key holders: names resolve to public addresses
        // only, unless allowed (egress policy).
        let app_http = crate::crm::http::client_with_resolver(
            Duration::from_secs(settings.app_webhooks.request_timeout_secs),
            crate::egress::EgressPolicy::from_settings(&settings).resolver(),
        );
        let crm = Crm::from_settings(&settings);
        // One registry of per-connection budgets for every connector.
        let limiters = crm.limiters().clone();
        Self {
            salesforce: Crm::salesforce_with(&settings, false, limiters.clone()),
            salesforce_sandbox: Crm::salesforce_with(&settings, true, limiters),
            wake: Arc::new(tokio::sync::Notify::new()),
            put_back_due: Arc::default(),
            mirror_wake: Arc::new(tokio::sync::Notify::new()),
            catch_ups: Arc::default(),
            last_polls: Arc::default(),
            last_related_reads: Arc::default(),
            batch_windows: Arc::default(),
            write_batching: Arc::default(),
            webhook_auth: connections::WebhookAuthCache::default(),
            clock: Arc::new(SystemClock),
            replica: Arc::new(ownership::Replica::new(Some(
                settings.workers.replica_id.clone(),
            ))),
            store,
            crm,
            vault,
            settings,
            public_url,
            app_http,
        }
    }

    /// This engine with `clock` as its clock (tests pass a `TestClock`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// This engine as another replica (tests run two replicas on one database).
    pub fn with_replica(mut self, replica: Arc<ownership::Replica>) -> Self {
        self.replica = replica;
        self
    }

    /// The connector of a connection's CRM (`connection.crm`: `pipedrive`, `salesforce`,
    /// `salesforce_sandbox`).
    pub fn crm_of(&self, kind: &str) -> &Crm {
        match kind {
            connections::kind::SALESFORCE => &self.salesforce,
            connections::kind::SALESFORCE_SANDBOX => &self.salesforce_sandbox,
            _ => &self.crm,
        }
    }

    /// What time it is, by the engine's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

pub fn to_timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp(time.timestamp_millis())
}
