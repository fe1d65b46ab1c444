//! Webhooks to the app (`outbound_delivery`): enqueued by `sync::app::contact_event` in the
//! transaction that changed the contact, claimed here with a lease (while `sending`,
//! `next_attempt_at` is the lease's end), one at a time per (subscription, contact) in creation
//! order, only for enabled subscriptions that have a secret.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};

use super::claim::{self, Lane};
use super::QueueError;
use crate::store::entities::outbound_delivery;

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
pub type Delivery = outbound_delivery::Model;

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
pub async fn claim<C: ConnectionTrait>(
    db: &C,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: u32,
) -> Result<Vec<Delivery>, QueueError> {
    let statement = claim::statement(
        &LANE,
        db.get_database_backend(),
        now,
        claim::lease_end(now, lease),
        limit,
    );
    let mut rows = Delivery::find_by_statement(statement).all(db).await?;
    rows.sort_by_key(|a| (a.created_at, a.id));
    Ok(rows)
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
pub async fn end<C: ConnectionTrait>(
    txn: &C,
    delivery: &Delivery,
    outcome: Outcome<'_>,
    now: DateTime<Utc>,
) -> Result<bool, QueueError> {
    let (state, run_at, status, error) = match outcome {
        Outcome::Delivered { status } => (state::DELIVERED, None, Some(status), None),
        Outcome::Retry {
            run_at,
            status,
            code,
        } => (state::PENDING, Some(run_at), status, Some(code)),
        Outcome::Dead { status, code } => (state::FAILED, None, status, Some(code)),
    };
    let sql = "UPDATE outbound_delivery SET state = $1, next_attempt_at = $2, last_status = $3, \
               last_error = $4, attempts = attempts + 1, updated_at = $5 \
               WHERE id = $6 AND state = $7 AND next_attempt_at = $8";
    let statement = Statement::from_sql_and_values(
        txn.get_database_backend(),
        sql,
        [
            state.into(),
            run_at.unwrap_or(delivery.next_attempt_at).into(),
            status.map(i32::from).into(),
            error.map(str::to_owned).into(),
            now.into(),
            delivery.id.into(),
            state::SENDING.into(),
            delivery.next_attempt_at.into(),
        ],
    );
    Ok(txn.execute(statement).await?.rows_affected() == 1)
}
