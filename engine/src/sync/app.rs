//! The app side of the sync: contacts changed by Pipedrive are announced to the app (signed
//! outbound webhooks), and the app's own change events are applied. Outbound deliveries are not
//! built yet; `contact_changed` is where they are enqueued.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::{Engine, SyncError};

/// Called in the transaction that changed a contact from the Pipedrive side.
pub async fn contact_changed<C: ConnectionTrait>(
    _txn: &C,
    _engine: &Engine,
    _contact_id: Uuid,
    _now: DateTime<Utc>,
) -> Result<(), SyncError> {
    Ok(())
}

/// Delivers due outbound webhooks; returns whether any was attempted.
pub async fn run_deliveries_once(_engine: &Engine) -> Result<bool, SyncError> {
    Ok(false)
}

/// Applies an app change event stored in the inbox.
pub async fn apply_event<C: ConnectionTrait>(
    _txn: &C,
    _engine: &Engine,
    _payload: &str,
    _now: DateTime<Utc>,
) -> Result<Option<Uuid>, String> {
    Err("app change events are not supported by this version".into())
}
