//! The live mirror's background passes (issue 20), run by the worker for each connection whose
//! mirror is switched on: the initial extraction, then a backstop incremental pass every
//! `mirror.poll_interval_secs` (webhooks that never arrived), a delete pass every
//! `mirror.delete_pass_interval_secs` (rows Pipedrive no longer lists get `deleted_at`), and a
//! daily purge of rows deleted more than `mirror.purge_deleted_after_days` ago.
//!
//! A pass is resumable: it is stored on the connection's switch (`pass_kind`,
//! `pass_started_at`), and every round moves one stream on by at most `pages_per_round` pages
//! (each page written with the stream's cursor), so a pass survives restarts and the worker
//! never holds the connection for long. Its reads wait at the connection's limiter behind every
//! sync request (`Priority::Background`).

use chrono::{DateTime, Utc};
use tandem_core::ConnectionId;

use super::catalog::Changes;
use super::extract::{extract, table_of, ExtractOptions};
use super::replication::{Planned, Replication};
use super::{now_text, MirrorError, Source};
use crate::crm::pipedrive::client::Priority;
use crate::crm::{Crm, Session};
use crate::store::mirror::{
    mirror_connection, save_mirror_connection, MirrorConnectionRow, MirrorDb,
};
use crate::store::Store;

/// When the passes run (from `[mirror]` in the settings).
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub poll_every: chrono::Duration,
    pub delete_every: chrono::Duration,
    /// Rows deleted longer ago than this are purged (none: kept for ever).
    pub purge_after: Option<chrono::Duration>,
    /// Most pages one round reads.
    pub pages_per_round: u64,
}

/// A background pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PassKind {
    /// The first extraction of every stream.
    Initial,
    /// The webhooks' backstop: every stream from its last `update_time`.
    Incremental,
    /// Every stream read in full; rows not seen are marked deleted.
    Delete,
}

impl PassKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Incremental => "incremental",
            Self::Delete => "delete",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "initial" => Some(Self::Initial),
            "incremental" => Some(Self::Incremental),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    /// Nothing was due (or the mirror is off).
    Idle,
    /// A pass moved one stream on; `pass_done` when it was the pass's last step.
    Worked {
        pass: PassKind,
        stream: Option<&'static str>,
        records: u64,
        pass_done: bool,
    },
    /// Rows deleted long enough ago were purged.
    Purged(u64),
}

/// A time as the mirror's bookkeeping stores it.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `every` has passed since `last` (never: due).
fn due(last: Option<&str>, every: chrono::Duration, now: DateTime<Utc>) -> bool {
    last.and_then(parse_time).is_none_or(|t| now - t >= every)
}

/// The streams the live mirror keeps: every stream, in the default modes, into tandem's tables.
pub fn plan() -> Vec<Planned> {
    Replication::all(None).streams
}

/// Whether `stream`'s run belongs to the pass started at `started`: done when its last run
/// completed after the pass started and no run is in progress.
async fn stream_done(
    db: &MirrorDb,
    scope: &str,
    planned: &Planned,
    started: &str,
) -> Result<bool, MirrorError> {
    Ok(db
        .cursor(scope, planned.stream.name)
        .await?
        .is_some_and(|c| {
            c.run_started_at.is_none() && c.completed_at.as_deref().is_some_and(|t| t >= started)
        }))
}

/// One round of connection `session.connection_id`'s mirror: the purge when due, else one step
/// of the pass in progress or of the next pass due.
#[tracing::instrument(skip_all, fields(connection_id = %session.connection_id))]
pub async fn run_once(
    crm: &Crm,
    store: &Store,
    session: Session,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Round, MirrorError> {
    let id = session.connection_id;
    let Some(mut row) = mirror_connection(store, id).await? else {
        return Ok(Round::Idle);
    };
    if !row.enabled {
        return Ok(Round::Idle);
    }
    let db = MirrorDb::in_store(store);
    if let Some(after) = schedule.purge_after {
        if row.initial_done_at.is_some()
            && due(row.last_purge_at.as_deref(), chrono::Duration::days(1), now)
        {
            let purged = purge(&db, &time_text(now - after)).await?;
            row.last_purge_at = Some(time_text(now));
            save_mirror_connection(store, &row).await?;
            if purged > 0 {
                tracing::info!(purged, "Mirror rows deleted long ago were purged.");
            }
            return Ok(Round::Purged(purged));
        }
    }
    let pass = match row.pass_kind.as_deref().and_then(PassKind::parse) {
        Some(pass) => pass,
        None => {
            let next = if row.initial_done_at.is_none() {
                PassKind::Initial
            } else if due(
                row.last_delete_pass_at.as_deref(),
                schedule.delete_every,
                now,
            ) {
                PassKind::Delete
            } else if due(row.last_poll_at.as_deref(), schedule.poll_every, now) {
                PassKind::Incremental
            } else {
                return Ok(Round::Idle);
            };
            row.pass_kind = Some(next.as_str().to_owned());
            row.pass_started_at = Some(now_text());
            save_mirror_connection(store, &row).await?;
            tracing::info!(pass = next.as_str(), "A mirror pass started.");
            next
        }
    };
    let scope = id.to_string();
    let started = row.pass_started_at.clone().unwrap_or_default();
    let plan = plan();
    let mut next = None;
    for planned in &plan {
        if !stream_done(&db, &scope, planned, &started).await? {
            next = Some(planned);
            break;
        }
    }
    let Some(planned) = next else {
        finish(store, &mut row, pass, now).await?;
        return Ok(Round::Worked {
            pass,
            stream: None,
            records: 0,
            pass_done: true,
        });
    };
    let name = planned.stream.name;
    let source = Source::new(crm, session, Priority::Background)?;
    let options = ExtractOptions {
        stop_after_pages: Some(schedule.pages_per_round.max(1)),
        delete_pass: pass == PassKind::Delete,
    };
    match extract(
        &source,
        &db,
        std::slice::from_ref(planned),
        options,
        &|_, _, _| {},
    )
    .await
    {
        Ok(reports) => {
            let records = reports.iter().map(|r| r.records).sum();
            if reports.iter().all(|r| r.complete) {
                db.set_stream_error(&scope, name, None).await?;
            }
            Ok(Round::Worked {
                pass,
                stream: Some(name),
                records,
                pass_done: false,
            })
        }
        Err(error) => {
            let text = error.to_string();
            db.set_stream_error(&scope, name, Some(&text)).await?;
            row.last_error = Some(format!("{name}: {text}"));
            save_mirror_connection(store, &row).await?;
            // Pipedrive refuses the stream for good (a feature the company lacks, a missing
            // scope): the pass goes on without it; its high water is kept, so the next pass
            // tries again from there.
            if let MirrorError::Crm(crm) = &error {
                if crm.retry == tandem_core::ErrorClass::DontRetry {
                    skip_stream(&db, &scope, name).await?;
                    tracing::warn!(stream = name, error = %error, "Pipedrive refused a mirror stream; this pass goes on without it.");
                    return Ok(Round::Worked {
                        pass,
                        stream: Some(name),
                        records: 0,
                        pass_done: false,
                    });
                }
            }
            Err(error)
        }
    }
}

/// Ends `stream`'s run in this pass without reading it (a stream Pipedrive refuses).
async fn skip_stream(db: &MirrorDb, scope: &str, stream: &str) -> Result<(), MirrorError> {
    let mut cursor = db.cursor(scope, stream).await?.unwrap_or_default();
    cursor.scope = scope.to_owned();
    cursor.stream = stream.to_owned();
    cursor.page_cursor = None;
    cursor.run_since = None;
    cursor.run_started_at = None;
    cursor.run_max = None;
    cursor.completed_at = Some(now_text());
    db.save_cursor(&cursor).await?;
    Ok(())
}

/// Ends the pass: its time is recorded, the next one is scheduled from it.
async fn finish(
    store: &Store,
    row: &mut MirrorConnectionRow,
    pass: PassKind,
    now: DateTime<Utc>,
) -> Result<(), MirrorError> {
    let at = Some(time_text(now));
    match pass {
        // The initial extraction read everything: it counts as a delete pass and a poll.
        PassKind::Initial => {
            row.initial_done_at = at.clone();
            row.last_poll_at = at.clone();
            row.last_delete_pass_at = at;
        }
        // A delete pass read everything too.
        PassKind::Delete => {
            row.last_poll_at = at.clone();
            row.last_delete_pass_at = at;
        }
        PassKind::Incremental => row.last_poll_at = at,
    }
    row.pass_kind = None;
    row.pass_started_at = None;
    row.last_error = None;
    save_mirror_connection(store, row).await?;
    // The journey conditions' lookups (by person, stage, owner): after the pass, so the
    // initial extraction writes without them.
    crate::store::crm_conditions::ensure_condition_indexes(&MirrorDb::in_store(store)).await?;
    tracing::info!(pass = pass.as_str(), "A mirror pass completed.");
    Ok(())
}

/// Deletes, in every stream's table, the rows marked deleted before `before`.
pub async fn purge(db: &MirrorDb, before: &str) -> Result<u64, MirrorError> {
    let mut purged = 0;
    for planned in plan() {
        let table = table_of(db, &planned);
        if db.has_table(&table).await? {
            purged += db.purge_deleted(&table, before).await?;
        }
    }
    Ok(purged)
}

/// `--verify` for a connection's live mirror: every stream's count and checksum in Pipedrive
/// and in tandem's tables, and the keys that differ (reads at background priority).
pub async fn verify(
    crm: &Crm,
    store: &Store,
    session: Session,
) -> Result<Vec<super::StreamCheck>, MirrorError> {
    let source = Source::new(crm, session, Priority::Background)?;
    super::verify(&source, &MirrorDb::in_store(store), &plan()).await
}

/// One stream's progress, for the connection card and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamProgress {
    pub stream: &'static str,
    /// `done` (in the current pass, or the last one), `running` (pages of it are written),
    /// `pending`, `failed` (its last run stopped with `last_error`).
    pub state: &'static str,
    /// Rows in the table, not marked deleted.
    pub rows: u64,
    /// Pages read by the stream's runs so far.
    pub pages: i64,
    /// When its last run completed.
    pub completed_at: Option<String>,
    pub last_error: Option<String>,
    /// Reference data is read in full every pass; the others from their last `update_time`.
    pub incremental: bool,
}

/// A connection's mirror, for the connection card and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MirrorStatus {
    pub enabled: bool,
    /// The pass in progress.
    pub pass: Option<PassKind>,
    pub pass_started_at: Option<String>,
    /// Streams done in the pass in progress (or all, between passes) of `streams_total`.
    pub streams_done: usize,
    pub streams_total: usize,
    pub initial_done_at: Option<String>,
    pub last_poll_at: Option<String>,
    pub last_delete_pass_at: Option<String>,
    pub last_purge_at: Option<String>,
    pub last_error: Option<String>,
    pub streams: Vec<StreamProgress>,
}

/// Connection `id`'s mirror status (none: never switched on).
pub async fn status(store: &Store, id: ConnectionId) -> Result<Option<MirrorStatus>, MirrorError> {
    let Some(row) = mirror_connection(store, id).await? else {
        return Ok(None);
    };
    let db = MirrorDb::in_store(store);
    let scope = id.to_string();
    let errors = db.stream_errors(&scope).await?;
    let pass = row.pass_kind.as_deref().and_then(PassKind::parse);
    let started = row.pass_started_at.clone();
    let mut streams = Vec::new();
    for planned in plan() {
        let cursor = db.cursor(&scope, planned.stream.name).await?;
        let running = cursor.as_ref().is_some_and(|c| c.run_started_at.is_some());
        let completed_at = cursor.as_ref().and_then(|c| c.completed_at.clone());
        let done = !running
            && completed_at.as_deref().is_some_and(|t| match &started {
                Some(started) => t >= started.as_str(),
                None => true,
            });
        let last_error = errors.get(planned.stream.name).cloned();
        streams.push(StreamProgress {
            stream: planned.stream.name,
            state: if last_error.is_some() {
                "failed"
            } else if done {
                "done"
            } else if running {
                "running"
            } else {
                "pending"
            },
            rows: db.count_live(&table_of(&db, &planned)).await?,
            pages: cursor.as_ref().map_or(0, |c| c.pages),
            completed_at,
            last_error,
            incremental: planned.stream.changes != Changes::FullOnly,
        });
    }
    Ok(Some(MirrorStatus {
        enabled: row.enabled,
        pass,
        pass_started_at: row.pass_started_at,
        streams_done: streams.iter().filter(|s| s.state == "done").count(),
        streams_total: streams.len(),
        initial_done_at: row.initial_done_at,
        last_poll_at: row.last_poll_at,
        last_delete_pass_at: row.last_delete_pass_at,
        last_purge_at: row.last_purge_at,
        last_error: row.last_error,
        streams,
    }))
}
