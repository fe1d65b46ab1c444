//! What operators watch. Hooks in the receivers, the queue, the CRM connectors and the app
//! deliveries call the functions here; each one feeds two sinks:
//!
//! - the `metrics` facade, rendered in the Prometheus text format at `GET /metrics`
//!   ([`exposition`], only when `metrics.token` or `metrics.addr` is set; otherwise no recorder
//!   is installed and the facade's calls are no-ops);
//! - the console's minute series ([`series`]), which [`writer`] writes to `metric_minute`
//!   once a minute and the console charts.
//!
//! Labels are bounded: connection id, CRM, operation, outcome, direction, source. A contact's
//! or person's id is never a label, nor any personal data.

pub mod exposition;
pub mod series;
pub mod writer;

use std::time::Duration;
use tandem_core::ConnectionId;

use chrono::{DateTime, Utc};

/// Metric names (`tandem_<name>_<unit>[_total]`, conventions C5).
pub mod name {
    pub const WEBHOOK_EVENTS: &str = "tandem_webhook_events_total";
    pub const CRM_REQUESTS: &str = "tandem_crm_requests_total";
    pub const CRM_REQUEST_DURATION: &str = "tandem_crm_request_duration_seconds";
    pub const CRM_TOKENS: &str = "tandem_crm_tokens_spent_total";
    pub const RATE_LIMIT_WAIT: &str = "tandem_crm_rate_limit_wait_seconds";
    pub const JOB_RETRIES: &str = "tandem_job_retries_total";
    pub const DEAD_LETTERED: &str = "tandem_dead_lettered_jobs_total";
    pub const PROPAGATION: &str = "tandem_propagation_latency_seconds";
    pub const APP_DELIVERIES: &str = "tandem_app_deliveries_total";
    pub const INBOX_DEPTH: &str = "tandem_inbox_events";
    pub const INBOX_OLDEST: &str = "tandem_inbox_oldest_age_seconds";
    pub const OUTBOX_DEPTH: &str = "tandem_outbox_jobs";
    pub const OUTBOX_OLDEST: &str = "tandem_outbox_oldest_age_seconds";
    pub const DEAD_LETTERS: &str = "tandem_dead_letters";
    pub const DAILY_BUDGET_LEFT: &str = "tandem_crm_daily_budget_remaining_tokens";
    pub const DAILY_BUDGET_TOTAL: &str = "tandem_crm_daily_budget_tokens";
    pub const INITIAL_SYNC_PERSONS: &str = "tandem_initial_sync_persons";
    pub const MIRROR_ENABLED: &str = "tandem_mirror_enabled";
    pub const MIRROR_STREAMS_DONE: &str = "tandem_mirror_streams_done";
    pub const MIRROR_STREAMS_TOTAL: &str = "tandem_mirror_streams";
    pub const MIRROR_ROWS: &str = "tandem_mirror_rows";
    pub const UP: &str = "tandem_up";
}

/// Series of the console's charts, as stored in `metric_minute.series`.
pub mod series_name {
    pub const WEBHOOK_EVENTS: &str = "webhook_events";
    pub const WEBHOOK_REJECTED: &str = "webhook_rejected";
    pub const WRITES_2XX: &str = "writes_2xx";
    pub const WRITES_4XX: &str = "writes_4xx";
    pub const WRITES_429: &str = "writes_429";
    pub const WRITES_5XX: &str = "writes_5xx";
    pub const WRITES_TIMEOUT: &str = "writes_timeout";
    pub const CRM_429: &str = "crm_429";
    pub const CRM_TOKENS: &str = "crm_tokens";
    pub const LATENCY_APP_TO_CRM: &str = "latency_app_to_crm";
    pub const LATENCY_CRM_TO_APP: &str = "latency_crm_to_app";
    pub const RETRIES: &str = "retries";
    pub const DEAD_LETTERED: &str = "dead_lettered";
    pub const INBOX_DEPTH: &str = "inbox_depth";
    pub const OUTBOX_DEPTH: &str = "outbox_depth";
    pub const BUDGET_LEFT: &str = "budget_left";
    pub const BUDGET_TOTAL: &str = "budget_total";
}

/// How a CRM call ended, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmOutcome {
    Success,
    ClientError,
    RateLimited,
    ServerError,
    Timeout,
    /// No answer for another reason (connection refused, TLS, a body that did not decode).
    Transport,
}

impl CrmOutcome {
    pub fn from_status(status: u16) -> Self {
        match status {
            200..=399 => Self::Success,
            429 => Self::RateLimited,
            408 => Self::Timeout,
            400..=499 => Self::ClientError,
            _ => Self::ServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::ClientError => "4xx",
            Self::RateLimited => "429",
            Self::ServerError => "5xx",
            Self::Timeout => "timeout",
            Self::Transport => "transport",
        }
    }

    fn write_series(self) -> &'static str {
        match self {
            Self::Success => series_name::WRITES_2XX,
            Self::ClientError => series_name::WRITES_4XX,
            Self::RateLimited => series_name::WRITES_429,
            Self::ServerError => series_name::WRITES_5XX,
            Self::Timeout | Self::Transport => series_name::WRITES_TIMEOUT,
        }
    }
}

/// One CRM call. `write` says whether it changes data in the CRM (the console charts writes);
/// `tokens` is what it cost from the daily budget.
pub fn crm_request(
    connection: ConnectionId,
    crm: &'static str,
    operation: &str,
    write: bool,
    outcome: CrmOutcome,
    tokens: u64,
    elapsed: Duration,
) {
    let id = connection.to_string();
    metrics::counter!(name::CRM_REQUESTS, "connection_id" => id.clone(), "crm" => crm, "operation" => operation.to_owned(), "outcome" => outcome.as_str()).increment(1);
    metrics::histogram!(name::CRM_REQUEST_DURATION, "crm" => crm, "operation" => operation.to_owned()).record(elapsed.as_secs_f64());
    metrics::counter!(name::CRM_TOKENS, "connection_id" => id, "crm" => crm).increment(tokens);
    let now = Utc::now();
    series::add(connection, series_name::CRM_TOKENS, tokens as f64, now);
    if write {
        series::add(connection, outcome.write_series(), 1.0, now);
    }
    if outcome == CrmOutcome::RateLimited {
        series::add(connection, series_name::CRM_429, 1.0, now);
    }
}

/// Time spent waiting for the connection's rate limiter before a call.
pub fn rate_limit_wait(connection: ConnectionId, crm: &'static str, waited: Duration) {
    metrics::histogram!(name::RATE_LIMIT_WAIT, "connection_id" => connection.to_string(), "crm" => crm)
        .record(waited.as_secs_f64());
}

/// What a webhook receiver did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Stored, to be applied.
    Accepted,
    /// Seen before: acknowledged and ignored.
    Duplicate,
    /// Authenticated but malformed: kept for inspection, never applied.
    Rejected,
    /// Wrong or missing credentials.
    Unauthorized,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Rejected => "rejected",
            Self::Unauthorized => "unauthorized",
        }
    }
}

/// One webhook delivery (`source` is `pipedrive` or `app`; the app's have no connection).
pub fn webhook_event(
    source: &'static str,
    connection: Option<ConnectionId>,
    outcome: WebhookOutcome,
) {
    let connection = connection.unwrap_or(ConnectionId::nil());
    // Every accepted delivery passes here: no label is formatted when nothing records them.
    if exposition::installed() {
        metrics::counter!(name::WEBHOOK_EVENTS, "connection_id" => connection.to_string(), "source" => source, "outcome" => outcome.as_str()).increment(1);
    }
    let series = match outcome {
        WebhookOutcome::Accepted | WebhookOutcome::Duplicate => series_name::WEBHOOK_EVENTS,
        WebhookOutcome::Rejected | WebhookOutcome::Unauthorized => series_name::WEBHOOK_REJECTED,
    };
    series::add(connection, series, 1.0, Utc::now());
}

/// A job failed and was scheduled again.
pub fn job_retried(connection: ConnectionId, kind: &'static str) {
    metrics::counter!(name::JOB_RETRIES, "connection_id" => connection.to_string(), "kind" => kind)
        .increment(1);
    series::add(connection, series_name::RETRIES, 1.0, Utc::now());
}

/// A job gave up: a dead letter.
pub fn dead_lettered(connection: ConnectionId, kind: &'static str) {
    metrics::counter!(name::DEAD_LETTERED, "connection_id" => connection.to_string(), "kind" => kind)
        .increment(1);
    series::add(connection, series_name::DEAD_LETTERED, 1.0, Utc::now());
}

/// Which way a change travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    AppToCrm,
    CrmToApp,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AppToCrm => "app_to_crm",
            Self::CrmToApp => "crm_to_app",
        }
    }

    fn series(self) -> &'static str {
        match self {
            Self::AppToCrm => series_name::LATENCY_APP_TO_CRM,
            Self::CrmToApp => series_name::LATENCY_CRM_TO_APP,
        }
    }
}

/// A change arrived on the other side: `changed_at` is when it happened (the contact's change,
/// the CRM's update time), now is when it was written (the PATCH succeeded, the merge was
/// applied). Clock skew between the CRM and tandem can make it negative; that counts as zero.
pub fn propagated(
    connection: ConnectionId,
    crm: &'static str,
    direction: Direction,
    changed_at: DateTime<Utc>,
) {
    let now = Utc::now();
    let seconds = ((now - changed_at).num_milliseconds().max(0) as f64) / 1000.0;
    metrics::histogram!(name::PROPAGATION, "connection_id" => connection.to_string(), "crm" => crm, "direction" => direction.as_str()).record(seconds);
    series::observe(connection, direction.series(), seconds, now);
}

/// A change from the CRM reached the app (a webhook, a poll, a re-read): latency from the
/// CRM's update time, when it has one.
pub fn crm_change_applied(
    crm: &crate::crm::Crm,
    connection: ConnectionId,
    updated: Option<&crate::crm::CrmTime>,
) {
    let changed_at = updated
        .and_then(crate::crm::CrmTime::at)
        .and_then(|at| DateTime::from_timestamp_millis(at.0));
    if let Some(changed_at) = changed_at {
        propagated(connection, crm_label(crm), Direction::CrmToApp, changed_at);
    }
}

/// One attempt to deliver a webhook to the app.
pub fn app_delivery(delivered: bool) {
    let outcome = if delivered { "delivered" } else { "failed" };
    metrics::counter!(name::APP_DELIVERIES, "outcome" => outcome).increment(1);
}

/// The `crm` label of the engine's connector.
pub fn crm_label(crm: &crate::crm::Crm) -> &'static str {
    match crm {
        crate::crm::Crm::Pipedrive(..) => "pipedrive",
        crate::crm::Crm::Salesforce(..) => "salesforce",
    }
}
