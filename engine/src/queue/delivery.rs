//! Webhooks to the app (`outbound_delivery`): enqueued by `sync::app::contact_event` in the
//! transaction that changed the contact, claimed here with a lease (while `sending`,
//! `next_attempt_at` is the lease's end), one at a time per (subscription, contact) in creation
//! order, only for enabled subscriptions that have a secret.

use chrono::{DateTime, Utc};

use super::claim::lease_end;
use super::QueueError;
use crate::store::queue::{self as rows, DeliveryEnd, Lane};
use crate::store::Conn;

/// States of `outbound_delivery.state`.
pub mod state {
    pub const PENDING: &str = "pending";
    /// Being sent; `next_attempt_at` is the lease's end.
    pub const SENDING: &str = "sending";
    pub const DELIVERED: &str = "delivered";
    /// Every attempt failed: the deliveries' dead letters.
    pub const FAILED: &str = "failed";
}

/// A claimed delivery.
pub type Delivery = rows::Delivery;

const LANE: Lane = Lane {
    table: "outbound_delivery",
    pending: state::PENDING,
    running: state::SENDING,
    run_at: "next_attempt_at",
    due_nullable: false,
    locked_until: "next_attempt_at",
    // A delivery without a contact is ordered with nothing.
    same_key: "o.subscription_id = j.subscription_id AND o.contact_id = j.contact_id",
    earlier: "o.created_at < j.created_at OR (o.created_at = j.created_at AND o.id < j.id)",
    eligible: "j.subscription_id IN (SELECT s.id FROM webhook_subscription s \
               WHERE s.enabled <> $4 AND s.secret_enc IS NOT NULL)",
    order_by: "j.created_at ASC, j.id ASC",
    sqlite_index: "",
    also_set: "",
    returning: "id, subscription_id, contact_id, event_type, payload, state, attempts, \
                next_attempt_at, last_status, last_error, created_at, updated_at",
};

/// Claims up to `limit` due deliveries, oldest first.
pub async fn claim(
    db: &impl Conn,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u32,
) -> Result<Vec<Delivery>, QueueError> {
    let mut due = rows::claim_deliveries(db, &LANE, now, lease_end(now, lease), limit).await?;
    due.sort_by_key(|a| (a.created_at, a.id));
    Ok(due)
}

/// How an attempt ended, for [`end`].
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    Delivered {
        status: u16,
    },
    /// Sent again at `run_at`.
    Retry {
        run_at: DateTime<Utc>,
        status: Option<u16>,
        code: &'a str,
    },
    /// Given up.
    Dead {
        status: Option<u16>,
        code: &'a str,
    },
}

/// Ends this claim of `delivery` (in the caller's transaction) if the claim still holds it;
/// returns whether it did.
pub async fn end(
    txn: &impl Conn,
    delivery: &Delivery,
    outcome: Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let end = match outcome {
        Outcome::Delivered { status } => DeliveryEnd {
            state: state::DELIVERED,
            run_at: None,
            status: Some(status),
            error: None,
        },
        Outcome::Retry {
            run_at,
            status,
            code,
        } => DeliveryEnd {
            state: state::PENDING,
            run_at: Some(run_at),
            status,
            error: Some(code),
        },
        Outcome::Dead { status, code } => DeliveryEnd {
            state: state::FAILED,
            run_at: None,
            status,
            error: Some(code),
        },
    };
    Ok(rows::end_delivery_claim(txn, delivery, state::SENDING, end, now).await?)
}
