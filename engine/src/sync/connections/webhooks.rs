//! Whether Pipedrive still delivers tandem's webhooks. Pipedrive bans a webhook for 30 minutes
//! after 10 failed deliveries (the events meanwhile are lost), and deletes one that has not
//! delivered for three days. Every `pipedrive.webhook_check_interval_secs` the replica that
//! runs a connection lists its webhooks once:
//!
//! - a banned one is said on the card and in the sync log, once per ban, and again when
//!   Pipedrive resumes it (the change-capture poll carries the changes meanwhile);
//! - a deleted one is registered again.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::store::{cursors, Conn};
use crate::sync::connections::{self, ConnectionCtx};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};
use tandem_core::ConnectionId;

/// The objects whose webhooks Pipedrive has paused, comma-separated, while any is.
const PAUSED: &str = "webhooks:paused";
/// When the webhooks were last listed.
const CHECKED_AT: &str = "webhooks:checked_at";

/// [`check`] when the interval has passed since the last one.
pub async fn check_if_due(engine: &Engine, conn: &ConnectionCtx) -> Result<(), SyncError> {
    let settings = &engine.settings.pipedrive;
    if settings.webhook_check_interval_secs == 0 || !settings.register_webhooks {
        return Ok(());
    }
    let interval = chrono::Duration::seconds(
        i64::try_from(settings.webhook_check_interval_secs).unwrap_or(i64::MAX),
    );
    let last = cursors::get(&engine.store, conn.id, CHECKED_AT)
        .await?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
    let now = engine.now();
    if last.is_some_and(|t| now - t < interval) {
        return Ok(());
    }
    // Noted before the call: a check that keeps failing costs one call per interval.
    cursors::set(&engine.store, conn.id, CHECKED_AT, &now.to_rfc3339(), now).await?;
    check(engine, conn).await
}

/// Lists the connection's webhooks once: records a ban that began or ended, and registers
/// again the webhooks Pipedrive deleted. A connection without webhook credentials (Salesforce,
/// or registration off) has nothing to check.
pub async fn check(engine: &Engine, conn: &ConnectionCtx) -> Result<(), SyncError> {
    let db = &engine.store;
    let Some((user, password)) = connections::webhook_credentials(engine, db, conn.id).await?
    else {
        return Ok(());
    };
    let url = connections::webhook_url(engine, conn.id);
    let with_mirror = crate::store::mirror::mirror_enabled(db, conn.id).await?;
    let health = conn
        .crm
        .notification_health(&conn.session, &url, with_mirror)
        .await?;
    let crm = conn.crm.display_name();
    let now = engine.now();
    if !health.missing.is_empty() {
        let created =
            connections::register_webhooks(engine, &conn.crm, &conn.session, &user, &password)
                .await?;
        let entry = Entry::new(
            Level::Warn,
            Direction::Connection,
            "webhooks_recreated",
            format!(
                "{crm} had removed tandem's {} webhooks (it deletes a webhook after three days without a successful delivery); tandem registered {created} again.",
                listing(health.missing.iter())
            ),
        )
        .connection(conn.id)
        .hint("Changes made meanwhile reached tandem through the change-capture poll. If this repeats, check that the CRM can reach tandem's public URL.")
        .detail(serde_json::json!({ "objects": health.missing }));
        synclog::record(db, entry, now).await?;
    }
    let before = paused(db, conn.id).await?;
    let now_paused: BTreeSet<String> = health.paused.iter().map(|p| p.object.clone()).collect();
    let began: Vec<_> = health
        .paused
        .iter()
        .filter(|p| !before.contains(&p.object))
        .collect();
    if !began.is_empty() {
        let (interval, _) = conn.crm.poll_interval_and_overlap(&engine.settings);
        let status = began
            .iter()
            .find_map(|p| p.last_status)
            .map(|s| format!(" (the last delivery was answered with HTTP {s})"))
            .unwrap_or_default();
        let entry = Entry::new(
            Level::Warn,
            Direction::Inbound,
            "webhooks_paused",
            format!(
                "{crm} has stopped sending tandem its {} webhooks: it pauses a webhook for 30 minutes after 10 failed deliveries{status}, and drops the changes meanwhile. They still reach tandem through the change-capture poll, every {interval} s; {crm} resumes the webhooks by itself.",
                listing(began.iter().map(|p| &p.object))
            ),
        )
        .connection(conn.id)
        .hint(format!("Check that {crm} can reach {url}: tandem running, its public URL, a proxy or a firewall in between. Deliveries tandem refused itself are in this log as rejected webhooks."))
        .detail(serde_json::json!({ "paused": began }));
        synclog::record(db, entry, now).await?;
    }
    let resumed: Vec<&String> = before.difference(&now_paused).collect();
    if !resumed.is_empty() {
        let entry = Entry::new(
            Level::Info,
            Direction::Inbound,
            "webhooks_resumed",
            format!(
                "{crm} sends tandem its {} webhooks again.",
                listing(resumed.iter().copied())
            ),
        )
        .connection(conn.id);
        synclog::record(db, entry, now).await?;
    }
    if now_paused.is_empty() {
        cursors::clear(db, conn.id, PAUSED).await?;
    } else {
        let joined = now_paused.into_iter().collect::<Vec<_>>().join(",");
        cursors::set(db, conn.id, PAUSED, &joined, now).await?;
    }
    Ok(())
}

/// The objects whose webhooks the CRM had paused at the last check (for the card).
pub async fn paused(db: &impl Conn, id: ConnectionId) -> Result<BTreeSet<String>, SyncError> {
    Ok(cursors::get(db, id, PAUSED)
        .await?
        .map(|joined| {
            joined
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default())
}

/// `person`, `person and deal`, `person, deal and activity`.
fn listing<'a>(objects: impl Iterator<Item = &'a String>) -> String {
    let objects: Vec<&str> = objects.map(String::as_str).collect();
    match objects.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}
