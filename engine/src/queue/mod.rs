//! The work queue: every piece of deferred work is a row in the database, enqueued in the same
//! transaction as the change that caused it, claimed by workers with a lease, completed,
//! retried with backoff or dead-lettered (ADR 3). Three kinds share it:
//!
//! - [`outbox`] (`outbox_job`): writes to the CRM, per person in order; re-exported at the top
//!   (`queue::enqueue`, `queue::claim`, …) because it is the queue most callers mean;
//! - [`inbox`] (`inbox_event`): received events to merge, per object in received order;
//! - [`delivery`] (`outbound_delivery`): webhooks to the app, per (subscription, contact) in order.
//!
//! All three are claimed by one statement (`store::queue::claim`), which differs between Postgres
//! (`FOR UPDATE SKIP LOCKED`) and SQLite in one place. A claimed row is `running` until its
//! lease ends; a worker that dies leaves it to be claimed again then.

mod claim;
pub mod delivery;
pub mod inbox;
mod outbox;

pub use outbox::*;

use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue storage error: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("job {0} has an unreadable payload: {1}")]
    Payload(Uuid, serde_json::Error),
}

/// Why handling a claimed row failed, as the queue needs to know it: retry later, or never.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It may succeed later (the database was busy, the CRM or the network failed): retried
    /// with backoff, then dead-lettered when the attempts run out.
    Transient(String),
    /// It can never succeed (a malformed payload, an unknown object): dead-lettered now.
    Permanent(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Self::Transient(message) | Self::Permanent(message) => message,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Permanent(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Self::Permanent(message.to_owned())
    }
}
