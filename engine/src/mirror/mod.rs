//! The Pipedrive mirror (issue 20): every object the extract connector lists, in tables people
//! can query, extracted once (`tandem extract`) and, for connections that switch it on, kept
//! current from webhooks with the poller as backstop.
//!
//! - [`catalog`]: the streams (endpoint, paging, mode, key, associations, cost).
//! - [`replication`]: the replication file (streams, modes, `anchor_date`, `object`).
//! - [`columns`]: a stream's table layout and the conversion of records into rows.
//! - [`extract`]: one stream's run, page by page, resumable; [`verify`] compares with Pipedrive.
//! - [`live`]: webhooks applied to the tables.
//! - [`background`]: the connection's passes (initial extraction, backstop, delete pass,
//!   purge), run by the worker, and their progress.
//!
//! The mirror is Pipedrive-specific: it reads through the Pipedrive client's transport and the
//! connection's limiter (at background priority), and writes through `store::mirror`.

pub mod background;
pub mod catalog;
pub mod columns;
pub mod conditions;
pub mod extract;
pub mod live;
pub mod replication;
pub mod verify;

use tandem_core::CrmError;

use crate::crm::pipedrive::client::{PipedriveClient, Priority};
use crate::crm::{Crm, Session};
use crate::store::StoreError;

pub use extract::{extract, ExtractOptions, Progress, StreamReport};
pub use replication::{Mode, Replication};
pub use verify::{verify, StreamCheck};

#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("Pipedrive: {0}")]
    Crm(#[from] CrmError),
    #[error("mirror storage: {0}")]
    Store(#[from] StoreError),
    #[error("replication file: {0}")]
    Replication(String),
    #[error("the CRM of this connection has no mirror")]
    NotPipedrive,
}

/// Where the mirror reads from: a Pipedrive session, through the client's transport and the
/// connection's limiter.
#[derive(Clone)]
pub struct Source {
    pub client: PipedriveClient,
    pub session: Session,
    pub priority: Priority,
    /// The cursors' scope: the connection's id, or the API domain for a token given by hand.
    pub scope: String,
}

impl Source {
    /// The source of `crm` for `session` (only Pipedrive has a mirror).
    pub fn new(crm: &Crm, session: Session, priority: Priority) -> Result<Self, MirrorError> {
        match crm {
            Crm::Pipedrive(client, _) => Ok(Self {
                client: client.clone(),
                scope: session.connection_id.to_string(),
                session,
                priority,
            }),
            // The mirror is Pipedrive's (issue 20); other CRMs have none yet.
            Crm::Salesforce(..) => Err(MirrorError::NotPipedrive),
        }
    }
}

/// Now, as the mirror writes times (RFC 3339, microseconds, UTC).
pub fn now_text() -> String {
    time_text(chrono::Utc::now())
}

/// A time as the mirror writes its own times (`deleted_at`, `_synced_at`): RFC 3339,
/// microseconds, UTC, so that SQLite's text compares like Postgres' `timestamptz`.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A Pipedrive time in the mirror's own format ([`time_text`]): v2 RFC 3339, v1
/// `YYYY-MM-DD HH:MM:SS` (UTC), or Unix seconds or milliseconds (a number or digits, as v1
/// webhooks' `meta.timestamp`).
pub fn pipedrive_time(value: &serde_json::Value) -> Option<String> {
    let epoch = |n: i64| {
        if n.abs() >= 100_000_000_000 {
            chrono::DateTime::from_timestamp_millis(n)
        } else {
            chrono::DateTime::from_timestamp(n, 0)
        }
    };
    let parsed = match value {
        serde_json::Value::Number(n) => epoch(n.as_i64()?),
        serde_json::Value::String(text) => {
            let text = text.trim();
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .ok()
                .or_else(|| {
                    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                        .ok()
                        .map(|t| t.and_utc())
                })
                .or_else(|| text.parse::<i64>().ok().and_then(epoch))
        }
        _ => None,
    }?;
    Some(time_text(parsed))
}

/// A Pipedrive time (v2 RFC 3339, or v1 `YYYY-MM-DD HH:MM:SS` in UTC) as RFC 3339 seconds.
pub fn normalize_time(text: &str) -> Option<String> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").map(|t| t.and_utc())
        })
        .ok()?;
    Some(parsed.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::pipedrive_time;

    #[test]
    fn pipedrive_times_are_written_in_the_mirrors_own_format() {
        let t = "2025-06-19T16:07:36.754000Z";
        assert_eq!(
            pipedrive_time(&json!("2025-06-19T16:07:36.754Z")).unwrap(),
            t
        );
        assert_eq!(pipedrive_time(&json!(1_750_349_256_754_i64)).unwrap(), t);
        assert_eq!(
            pipedrive_time(&json!(1_750_349_256)).unwrap(),
            "2025-06-19T16:07:36.000000Z"
        );
        assert_eq!(
            pipedrive_time(&json!("2025-06-19 16:07:36")).unwrap(),
            "2025-06-19T16:07:36.000000Z"
        );
        assert_eq!(
            pipedrive_time(&json!("2025-06-19T18:07:36+02:00")).unwrap(),
            "2025-06-19T16:07:36.000000Z"
        );
        assert_eq!(pipedrive_time(&json!("yesterday")), None);
        assert_eq!(pipedrive_time(&json!(null)), None);
    }
}
