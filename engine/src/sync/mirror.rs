//! The live mirror of a connection (issue 20), as the admin and the worker use it: switching it
//! on (the extra change notifications registered at the CRM, the initial extraction scheduled)
//! or off (those notifications removed; the tables stay), the worker's rounds, and the status
//! the connection card and the admin API show.

use serde::Serialize;
use tandem_core::ConnectionId;

use crate::crm::NotificationTarget;
use crate::mirror::background::{self, MirrorStatus, Round, Schedule};
use crate::mirror::MirrorError;
use crate::sync::connections::{self, state};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};

impl From<MirrorError> for SyncError {
    fn from(error: MirrorError) -> Self {
        match error {
            MirrorError::Crm(error) => Self::Crm(error),
            MirrorError::Store(error) => Self::from(error),
            MirrorError::Replication(text) => Self::Invalid(text),
            MirrorError::NotPipedrive => Self::Invalid(error.to_string()),
        }
    }
}

/// What switching the mirror did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Switched {
    pub enabled: bool,
    /// Change notifications created (on) or removed (off) at the CRM.
    pub webhooks_created: usize,
    pub webhooks_removed: usize,
}

/// Switches connection `id`'s live mirror on or off. On: the CRM's notifications for every
/// mirrored object are registered and the worker starts the initial extraction (or, if it was
/// done before, catches up from the cursors). Off: the extra notifications are removed (the
/// sync's own stay) and the tables are kept as they are.
#[tracing::instrument(skip_all, fields(connection_id = %id, enabled))]
pub async fn set_enabled(
    engine: &Engine,
    id: ConnectionId,
    enabled: bool,
) -> Result<Switched, SyncError> {
    let conn = connections::load(engine, id).await?;
    if conn.state == state::DISCONNECTED {
        return Err(SyncError::Invalid(
            "the connection is disconnected; reconnect it before switching the mirror on".into(),
        ));
    }
    if !conn.crm.has_mirror() {
        return Err(MirrorError::NotPipedrive.into());
    }
    // The mirror's tables in tandem's database (`pipedrive_{stream}`) hold one company: a
    // second connection's full passes would mark the first one's rows deleted.
    if enabled {
        let others: Vec<ConnectionId> = crate::store::mirror::enabled_mirrors(&engine.store)
            .await?
            .into_iter()
            .map(|m| ConnectionId::from(m.connection_id))
            .filter(|other| *other != id)
            .collect();
        if let Some(other) = others.first() {
            return Err(SyncError::Invalid(format!(
                "connection {other} already keeps the mirror (its tables hold one Pipedrive company); switch it off there first"
            )));
        }
    }
    let mut switched = Switched {
        enabled,
        webhooks_created: 0,
        webhooks_removed: 0,
    };
    if engine.settings.pipedrive.register_webhooks {
        let url = connections::webhook_url(engine, id);
        if enabled {
            if let Some((user, password)) =
                connections::webhook_credentials(engine, &engine.store, id).await?
            {
                let target = NotificationTarget {
                    url: &url,
                    user: &user,
                    password: &password,
                };
                switched.webhooks_created = engine
                    .crm
                    .register_mirror_notifications(&conn.session, target)
                    .await?;
            }
        } else {
            switched.webhooks_removed = engine
                .crm
                .remove_mirror_notifications(&conn.session, &url)
                .await?;
        }
    }
    crate::store::mirror::set_mirror_enabled(&engine.store, id, enabled).await?;
    let now = engine.now();
    synclog::record(
        &engine.store,
        Entry::new(
            Level::Info,
            Direction::Connection,
            if enabled { "mirror_on" } else { "mirror_off" },
            if enabled {
                "The admin switched the Pipedrive mirror on."
            } else {
                "The admin switched the Pipedrive mirror off; its tables are kept."
            },
        )
        .connection(id),
        now,
    )
    .await?;
    tracing::info!(
        webhooks_created = switched.webhooks_created,
        webhooks_removed = switched.webhooks_removed,
        "The mirror was switched."
    );
    engine.mirror_wake.notify_one();
    Ok(switched)
}

/// Connection `id`'s mirror (none: never switched on).
pub async fn status(engine: &Engine, id: ConnectionId) -> Result<Option<MirrorStatus>, SyncError> {
    Ok(background::status(&engine.store, id).await?)
}

/// The passes' schedule from the settings.
pub fn schedule(engine: &Engine) -> Schedule {
    let m = &engine.settings.mirror;
    let seconds = |s: u64| chrono::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
    Schedule {
        poll_every: seconds(m.poll_interval_secs),
        delete_every: seconds(m.delete_pass_interval_secs),
        purge_after: (m.purge_deleted_after_days > 0).then(|| {
            chrono::Duration::days(i64::try_from(m.purge_deleted_after_days).unwrap_or(36_500))
        }),
        pages_per_round: m.pages_per_round.max(1),
    }
}

/// One round of every mirror this replica runs: connections that are running (connected or
/// syncing, not paused), owned by this replica, with the mirror switched on, and a daily budget
/// that is not low (the sync keeps the rest). Returns how many of them did something (0: nothing
/// was due).
pub async fn run_mirror_once(engine: &Engine) -> Result<usize, SyncError> {
    let mirrors = crate::store::mirror::enabled_mirrors(&engine.store).await?;
    if mirrors.is_empty() {
        return Ok(0);
    }
    let owned = crate::sync::ownership::owned(engine).await?;
    let schedule = schedule(engine);
    let mut worked = 0;
    for mirror in mirrors {
        let connection = ConnectionId::from(mirror.connection_id);
        if !owned.contains(&connection) {
            continue;
        }
        let conn = match connections::load(engine, connection).await {
            Ok(conn) => conn,
            Err(SyncError::ConnectionNotFound(_)) => continue,
            Err(error) => return Err(error),
        };
        if conn.paused || !matches!(conn.state.as_str(), state::CONNECTED | state::SYNCING) {
            continue;
        }
        if engine.crm.budget(&conn.session).daily_budget_low() {
            tracing::debug!(connection_id = %conn.id, "Daily API budget is low; the mirror waits.");
            continue;
        }
        // The pass in progress, for the catch-up triggers when it completes.
        let pass_started = mirror.pass_started_at.clone();
        match background::run_once(
            &engine.crm,
            &engine.store,
            conn.session.clone(),
            &schedule,
            engine.now(),
        )
        .await
        {
            Ok(Round::Idle) => {}
            Ok(Round::Worked {
                pass,
                pass_done: true,
                ..
            }) => {
                worked += 1;
                let initial = pass == background::PassKind::Initial;
                if let Err(error) = crate::sync::triggers::catch_up(
                    engine,
                    conn.id,
                    pass_started.as_deref(),
                    initial,
                )
                .await
                {
                    tracing::warn!(connection_id = %conn.id, error = %error, "Catch-up triggers of a completed mirror pass failed; the changes it found are announced by their webhooks only.");
                }
            }
            Ok(Round::Worked { .. } | Round::Purged(_)) => worked += 1,
            // Stored on the connection's mirror and its stream; the next round tries again.
            Err(error) => {
                tracing::warn!(connection_id = %conn.id, error = %error, "A mirror round failed; it will run again.");
            }
        }
    }
    Ok(worked)
}

/// Runs the mirrors' rounds until none has anything due (tests, the benchmark).
pub async fn drive_mirror_until_idle(engine: &Engine) -> Result<(), SyncError> {
    while run_mirror_once(engine).await? > 0 {}
    Ok(())
}

/// Verifies connection `id`'s mirror against Pipedrive (as `tandem extract --verify`) and records
/// the outcome in the sync log: per stream, counts, checksums and the keys that differ.
#[tracing::instrument(skip_all, fields(connection_id = %id))]
pub async fn verify(
    engine: &Engine,
    id: ConnectionId,
) -> Result<Vec<crate::mirror::StreamCheck>, SyncError> {
    let conn = connections::load(engine, id).await?;
    if crate::store::mirror::mirror_connection(&engine.store, id)
        .await?
        .is_none()
    {
        return Err(SyncError::Invalid(
            "the connection's mirror was never switched on: nothing to verify".into(),
        ));
    }
    let checks = background::verify(&engine.crm, &engine.store, conn.session).await?;
    let differing: Vec<String> = checks
        .iter()
        .filter(|c| !c.matches())
        .map(|c| {
            format!(
                "{}: {} missing, {} extra, {} changed",
                c.stream,
                c.missing.len(),
                c.extra.len(),
                c.stale.len()
            )
        })
        .collect();
    let entry = if differing.is_empty() {
        Entry::new(
            Level::Info,
            Direction::Connection,
            "mirror_verified",
            format!(
                "Mirror verified: all {} streams match Pipedrive (counts and checksums).",
                checks.len()
            ),
        )
    } else {
        Entry::new(
            Level::Warn,
            Direction::Connection,
            "mirror_verified",
            format!(
                "Mirror verified: {} of {} streams differ from Pipedrive ({}).",
                differing.len(),
                checks.len(),
                differing.join("; ")
            ),
        )
        .hint("The next backstop pass takes changes, the next delete pass deletes; or run `tandem extract --connection <id> --delete-pass`.")
    };
    synclog::record(&engine.store, entry.connection(id), engine.now()).await?;
    Ok(checks)
}
