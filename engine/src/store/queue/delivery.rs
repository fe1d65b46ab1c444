//! The SQL of app deliveries' claims (`outbound_delivery`); the policy (states, backoff, the
//! lane) is `crate::queue::delivery`'s.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use uuid::Uuid;

use super::claim::{self, Lane};
use crate::store::{Conn, StoreError};

/// A delivery's row (a claimed one: while `sending`, `next_attempt_at` is the lease's end).
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct Delivery {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Claims up to `limit` deliveries of `lane` until `lease_end` (`store::queue::claim`).
pub async fn claim_deliveries(
    db: &impl Conn,
    lane: &Lane,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Delivery>, StoreError> {
    claim::claim(db, lane, now, lease_end, limit, None).await
}

/// What ending a delivery's claim writes, for [`end_delivery_claim`].
#[derive(Debug, Clone, Copy)]
pub struct DeliveryEnd<'a> {
    pub state: &'a str,
    /// The next attempt's time (the claim's lease end when there is none).
    pub run_at: Option<DateTime<Utc>>,
    pub status: Option<u16>,
    pub error: Option<&'a str>,
}

/// Ends the claim of `delivery` (in `sending` state `running`) if the claim still holds it;
/// returns whether it did.
pub async fn end_delivery_claim(
    db: &impl Conn,
    delivery: &Delivery,
    running: &str,
    end: DeliveryEnd<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let sql = "UPDATE outbound_delivery SET state = $1, next_attempt_at = $2, last_status = $3, \
               last_error = $4, attempts = attempts + 1, updated_at = $5 \
               WHERE id = $6 AND state = $7 AND next_attempt_at = $8";
    let db = db.raw();
    let statement = Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [
            end.state.into(),
            end.run_at.unwrap_or(delivery.next_attempt_at).into(),
            end.status.map(i32::from).into(),
            end.error.map(str::to_owned).into(),
            now.into(),
            delivery.id.into(),
            running.into(),
            delivery.next_attempt_at.into(),
        ],
    );
    Ok(db.execute(statement).await?.rows_affected() == 1)
}
