//! Change capture without webhooks: the poller asks the CRM for persons updated since its
//! cursors (one per change stream, minus an overlap window), and the initial sync pages through
//! every person (or, with a pre-connection window, those modified within it). Both apply
//! persons through the same merge as webhooks (so they are idempotent with them), a page per
//! transaction, and store their cursor in that same transaction: a crash resumes at the last
//! applied page.

use chrono::{DateTime, Utc};
use tandem_core::ConnectionId;

use serde::Serialize;
use tandem_core::CrmError;

use crate::crm::PersonPage;
use crate::store::{connections as stored_connections, cursors, Conn, StoreError};
use crate::sync::connections::{self, state, ConnectionCtx};
use crate::sync::inbound::{self, Applied};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::triggers;
use crate::sync::{Engine, SyncError};

/// Marker cursor: set once the initial sync has run to the end (without a pre-connection
/// window tandem then knows every person's e-mail and apId and can create without searching
/// first: [`knows_every_person`]).
pub const INITIAL_SYNC_DONE: &str = "initial_sync_done";
/// Before change streams had cursors of their own, one cursor served every stream; it is read
/// where a stream has none yet.
const POLL_CURSOR: &str = "poll_updated_since";
const INITIAL_PAGE: &str = "initial_sync_page";
const INITIAL_STARTED: &str = "initial_sync_started";
const INITIAL_COUNT: &str = "initial_sync_count";
/// Set while (and after) an initial sync reads only the records modified since this time: tandem
/// then does not know every person.
const INITIAL_WINDOW_FROM: &str = "initial_sync_window_from";
/// Set by "Run initial sync": the next initial sync reads every record, whatever the window.
const INITIAL_FULL: &str = "initial_sync_full";

/// The change-capture round of the background worker: runs (or resumes) the initial sync of a
/// connection that has none yet, else polls, and reconciles when due.
pub async fn poll_all(engine: &Engine) -> Result<usize, SyncError> {
    let mut applied = 0;
    let mut first_error = None;
    // Every running connection (a company can have Pipedrive and Salesforce, production and
    // sandbox): one failing does not hold the others back.
    let ids =
        stored_connections::running_ids(&engine.store, &[state::CONNECTED, state::SYNCING]).await?;
    for id in ids {
        // Only the replica that owns the connection polls it (ADR 0014).
        if !crate::sync::ownership::owns(engine, id).await? {
            continue;
        }
        match poll_connection(engine, id).await {
            Ok(n) => applied += n,
            Err(error) => {
                tracing::warn!(connection_id = %id, error = %error, "Polling a connection failed; it will run again.");
                if let SyncError::Crm(crm_error) = &error {
                    record_poll_error(engine, id, crm_error).await?;
                }
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(applied),
    }
}

/// Writes a failed poll to the sync log, the CRM's words verbatim with the fix as the hint,
/// and onto the card; the same error again (every poll interval) is not repeated.
async fn record_poll_error(
    engine: &Engine,
    id: ConnectionId,
    error: &CrmError,
) -> Result<(), SyncError> {
    let db = &engine.store;
    let text = connections::verbatim(error);
    let Some(row) = stored_connections::get(db, id).await? else {
        return Ok(());
    };
    if row.last_error.as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    let now = engine.now();
    stored_connections::set_last_error(db, id, Some(&text), now).await?;
    let crm_name = engine.crm_of(&row.crm).display_name();
    let mut entry = Entry::new(
        Level::Warn,
        Direction::Inbound,
        "poll_failed",
        format!("Reading changes from {crm_name} failed; the poll runs again."),
    )
    .connection(id)
    .status(error.status)
    .remote_error(text);
    if let Some(hint) = &error.hint {
        entry = entry.hint(hint.clone());
    }
    synclog::record(db, entry, now).await?;
    Ok(())
}

/// The change-capture round of one connection: runs (or resumes) its initial sync when it has
/// none yet, else polls, and reconciles when due.
pub async fn poll_connection(engine: &Engine, id: ConnectionId) -> Result<usize, SyncError> {
    let mut applied = 0;
    let conn = connections::load(engine, id).await?;
    let synced = cursors::get(&engine.store, id, INITIAL_SYNC_DONE)
        .await?
        .is_some();
    if !synced && !conn.paused && [state::CONNECTED, state::SYNCING].contains(&conn.state.as_str())
    {
        let progress = initial_sync_on_bulk_thread(engine, id).await?;
        return Ok(usize::try_from(progress.done).unwrap_or(usize::MAX));
    }
    if conn.state == state::CONNECTED && !conn.paused {
        if poll_due(engine, &conn) {
            let started = engine.now();
            applied += poll_checked(engine, conn.clone()).await?;
            engine.last_polls.insert(id, started);
        }
        if crate::sync::related::due(engine, &conn).await? {
            crate::sync::related::catch_up(engine, &conn).await?;
        }
        reconcile_if_due(engine, &conn).await?;
        // Not the poll's failure: the check runs again after its interval.
        if let Err(error) = connections::webhooks::check_if_due(engine, &conn).await {
            tracing::warn!(connection_id = %id, error = %error, "Checking the connection's webhooks at the CRM failed; the check runs again after its interval.");
        }
    }
    Ok(applied)
}

/// Whether the connection's own poll interval has passed since its last successful poll (the
/// loop runs at the shortest interval of every connected CRM: a Pipedrive connection next to a
/// Salesforce one is not polled every 10 s, nor Salesforce's every 30 s when its is longer). A
/// tenth of the interval is slack for the loop's own timing.
fn poll_due(engine: &Engine, conn: &ConnectionCtx) -> bool {
    let (interval, _) = conn.crm.poll_interval_and_overlap(&engine.settings);
    let interval_ms = i64::try_from(interval.saturating_mul(900)).unwrap_or(i64::MAX);
    engine
        .last_polls
        .get(&conn.id)
        .is_none_or(|last| (engine.now() - *last).num_milliseconds() >= interval_ms)
}

/// Seconds between two rounds of the poll loop: the shortest poll interval of the CRMs that
/// have running connections (Pipedrive's `workers.poll_interval_secs`, Salesforce's
/// `salesforce.poll_interval_secs`).
pub async fn poll_interval_secs(engine: &Engine) -> u64 {
    let mut secs = engine.settings.workers.poll_interval_secs;
    if let Ok(rows) = stored_connections::list(&engine.store).await {
        for row in rows {
            if row.state == state::CONNECTED && !row.paused {
                let (interval, _) = engine
                    .crm_of(&row.crm)
                    .poll_interval_and_overlap(&engine.settings);
                secs = secs.min(interval);
            }
        }
    }
    secs.max(1)
}

/// One poll; a 401 refreshes the token once (then polls again) or moves the connection to
/// "Token expired", a 403 to "Not authorised", with sync-log entries (`tokens::on_auth_error`).
pub async fn poll_checked(engine: &Engine, conn: ConnectionCtx) -> Result<usize, SyncError> {
    match poll_once(engine, &conn).await {
        Err(SyncError::Crm(error))
            if matches!(
                error.kind,
                tandem_core::CrmErrorKind::Unauthorized | tandem_core::CrmErrorKind::Forbidden
            ) =>
        {
            if crate::sync::connections::tokens::on_auth_error(engine, &conn, &error).await? {
                let conn = connections::load(engine, conn.id).await?;
                poll_once(engine, &conn).await
            } else {
                Err(SyncError::Crm(error))
            }
        }
        other => other,
    }
}

/// How many persons the running initial sync has applied, if one is running.
pub async fn initial_sync_progress(
    engine: &Engine,
    connection_id: ConnectionId,
) -> Result<Option<u64>, SyncError> {
    let db = &engine.store;
    if cursors::get(db, connection_id, INITIAL_STARTED)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    Ok(Some(
        cursors::get(db, connection_id, INITIAL_COUNT)
            .await?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
    ))
}

/// How far back the next poll reaches: the stored cursor (or now) less the overlap.
fn reach_of(engine: &Engine, conn: &ConnectionCtx, since: Option<&str>) -> DateTime<Utc> {
    let (_, overlap_secs) = conn.crm.poll_interval_and_overlap(&engine.settings);
    let overlap = chrono::Duration::seconds(i64::try_from(overlap_secs).unwrap_or(60));
    since
        .and_then(|s| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .or_else(|| {
                    conn.crm
                        .parse_time(s)
                        .and_then(|t| DateTime::from_timestamp_millis(t.0))
                })
        })
        .map_or_else(|| engine.now() - overlap, |t| t - overlap)
}

/// The stored cursor of one change stream: the newest change time it has read.
fn stream_key(stream: &str) -> String {
    format!("{POLL_CURSOR}:{stream}")
}

async fn stream_cursor(
    engine: &Engine,
    conn: &ConnectionCtx,
    stream: &str,
) -> Result<Option<String>, SyncError> {
    let db = &engine.store;
    Ok(
        match cursors::get(db, conn.id, &stream_key(stream)).await? {
            Some(cursor) => Some(cursor),
            None => cursors::get(db, conn.id, POLL_CURSOR).await?,
        },
    )
}

/// Whether the connection's initial sync ran to the end, and how far back the change capture
/// reaches now (records last changed before it are seen only by an initial sync): the stream
/// that reaches least far back decides.
pub async fn change_capture_reach(
    engine: &Engine,
    conn: &ConnectionCtx,
) -> Result<(bool, DateTime<Utc>), SyncError> {
    let db = &engine.store;
    let done = cursors::get(db, conn.id, INITIAL_SYNC_DONE)
        .await?
        .is_some();
    let mut reach = None::<DateTime<Utc>>;
    for stream in conn.crm.change_streams() {
        let since = stream_cursor(engine, conn, stream).await?;
        let this = reach_of(engine, conn, since.as_deref());
        reach = Some(reach.map_or(this, |r| r.max(this)));
    }
    Ok((done, reach.unwrap_or_else(|| engine.now())))
}

/// One poll: in each change stream, every person updated since the stream's cursor minus the
/// overlap; returns how many changed something locally.
pub async fn poll_once(engine: &Engine, conn: &ConnectionCtx) -> Result<usize, SyncError> {
    if cursors::get(&engine.store, conn.id, INITIAL_SYNC_DONE)
        .await?
        .is_none()
    {
        return Ok(0);
    }
    let mut changed = 0;
    for stream in conn.crm.change_streams() {
        changed += poll_stream(engine, conn, stream).await?;
    }
    Ok(changed)
}

/// Polls one change stream of the connection (one of [`crate::crm::Crm::change_streams`]) from
/// its own cursor; returns how many persons changed something locally.
pub async fn poll_stream(
    engine: &Engine,
    conn: &ConnectionCtx,
    stream: &str,
) -> Result<usize, SyncError> {
    let key = stream_key(stream);
    let since = stream_cursor(engine, conn, stream).await?;
    let since_time = reach_of(engine, conn, since.as_deref());
    let mut page_cursor = None;
    let mut newest = since;
    let mut changed = 0;
    loop {
        let page = conn
            .crm
            .changes_since(
                &conn.session,
                &conn.map,
                stream,
                since_time,
                page_cursor.take(),
            )
            .await?;
        crate::sync::organizations::learn_names(engine, conn, &page.items).await?;
        for person in &page.items {
            if let Some(time) = &person.updated {
                if newest.as_deref().is_none_or(|n| later(&conn.crm, time, n)) {
                    newest = Some(time.as_str().to_owned());
                }
            }
        }
        // The record keys read with the page are taken once (see `page_transaction`).
        let keys = conn.crm.take_new_record_keys(conn.id);
        changed += page_transaction(engine, conn, &keys, || async {
            let txn = connections::begin_with_keys(engine, conn, &keys).await?;
            // What the app heard of each person is decided by one transaction at a time; the
            // page's time is taken once it has them (see `triggers::person_read`).
            triggers::lock_people(&txn, conn, &page.items).await?;
            let now = engine.now();
            let mut changed = 0;
            // Persons read gone (deleted, or merged away: a converted Lead) that had no link.
            let mut gone_unlinked = Vec::new();
            for person in &page.items {
                let before = triggers::person_before(&txn, conn, person).await?;
                let applied = inbound::apply_person_in(&txn, engine, conn, person, now).await?;
                if applied == Applied::Ignored {
                    gone_unlinked.push(person.id);
                }
                if let Some((contact_id, event)) = applied.app_event() {
                    changed += 1;
                    crate::sync::app::contact_event(&txn, contact_id, event, None, now).await?;
                }
                triggers::person_read(
                    &txn, engine, conn, person, before, &applied, since_time, now,
                )
                .await?;
            }
            crate::sync::related::keep_persons(&txn, conn, &page.items, now).await?;
            still_unlinked(&txn, conn, &gone_unlinked).await?;
            if let Some(newest) = &newest {
                cursors::set(&txn, conn.id, &key, newest, now).await?;
            }
            stored_connections::mark_success(&txn, conn.id, now).await?;
            txn.commit().await?;
            Ok(changed)
        })
        .await?;
        match page.next_cursor {
            Some(next) => page_cursor = Some(next),
            None => return Ok(changed),
        }
    }
}

/// Checks, just before a page commits, that the persons it read gone and found unlinked are
/// still unlinked; else the page lost a race ([`SyncError::LostRace`]) and runs again.
///
/// On Postgres (READ COMMITTED) a link being made by another transaction (the push that created
/// the person, linking it in `outbound::link_created`) is invisible until it commits, so the page
/// finds the person unlinked and has nothing to follow, even for a Lead converted into a Contact
/// of the same page. Should that link commit before the page meets the Contact, the page sees the
/// app contact linked to the Lead, an other person, and makes the Contact an app contact of its
/// own (`CreateContact`), which no unique key refuses; applying the Lead's conversion later then
/// archives the first contact into it. The check runs after every decision of the page: a link
/// committed before it is seen here (and the page, run again, follows it to the Contact); one
/// committed after it was invisible to every decision, and a decision that linked the app
/// contact meanwhile is refused by the link's unique keys (`lost_link_race`).
async fn still_unlinked<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    gone: &[tandem_core::PersonId],
) -> Result<(), SyncError> {
    if gone.is_empty() {
        return Ok(());
    }
    let linked = crate::sync::links::linked_persons(txn, conn.id, gone).await?;
    if linked.is_empty() {
        return Ok(());
    }
    Err(SyncError::LostRace(format!(
        "{} person(s) read gone were linked meanwhile",
        linked.len()
    )))
}

fn later(crm: &crate::crm::Crm, a: &crate::crm::CrmTime, b: &str) -> bool {
    match (a.at(), crm.parse_time(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

/// Progress of an initial sync.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    pub done: u64,
    pub created: u64,
    pub linked: u64,
    pub pages: u64,
    pub finished: bool,
    pub persons_per_sec: f64,
}

/// Runs (or resumes) the initial sync to the end. `on_page` sees the progress after each page.
/// Runs (or resumes) the initial sync of `connection_id` on the bulk thread ([`crate::bulk`]),
/// logging each page applied: the way `tandem serve` runs it (the poll loop, the console's
/// Run initial sync).
pub async fn initial_sync_on_bulk_thread(
    engine: &Engine,
    connection_id: ConnectionId,
) -> Result<Progress, SyncError> {
    let engine = engine.clone();
    crate::bulk::run(async move {
        initial_sync(&engine, connection_id, |p| {
            tracing::info!(connection_id = %connection_id, done = p.done, "Initial sync page applied.");
        })
        .await
    })
    .await
    .map_err(|cancelled| SyncError::Invalid(cancelled.to_string()))?
}

pub async fn initial_sync(
    engine: &Engine,
    connection_id: ConnectionId,
    mut on_page: impl FnMut(&Progress),
) -> Result<Progress, SyncError> {
    let db = &engine.store;
    let conn = connections::load(engine, connection_id).await?;
    let started_at = engine.now();
    let started = match cursors::get(db, conn.id, INITIAL_STARTED).await? {
        Some(started) => started,
        None => {
            let now = engine.now().to_rfc3339();
            let window = match conn.crm.initial_sync_window(&engine.settings) {
                Some(_) if cursors::get(db, conn.id, INITIAL_FULL).await?.is_some() => None,
                window => window.map(|days| engine.now() - days),
            };
            let message = match window {
                Some(from) => {
                    let from = from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    cursors::set(db, conn.id, INITIAL_WINDOW_FROM, &from, engine.now()).await?;
                    format!("Initial sync started: the records modified since {from} (older ones sync when they change; Run initial sync reads every record).")
                }
                None => {
                    cursors::clear(db, conn.id, INITIAL_WINDOW_FROM).await?;
                    "Initial sync started.".to_owned()
                }
            };
            cursors::set(db, conn.id, INITIAL_STARTED, &now, engine.now()).await?;
            synclog::record(
                db,
                Entry::new(
                    Level::Info,
                    Direction::Inbound,
                    "initial_sync_started",
                    message,
                )
                .connection(conn.id),
                engine.now(),
            )
            .await?;
            now
        }
    };
    let window_from = cursors::get(db, conn.id, INITIAL_WINDOW_FROM)
        .await?
        .and_then(|from| DateTime::parse_from_rfc3339(&from).ok())
        .map(|from| from.with_timezone(&Utc));
    stored_connections::set_state(db, conn.id, state::SYNCING, None, engine.now()).await?;
    let mut progress = Progress {
        done: cursors::get(db, conn.id, INITIAL_COUNT)
            .await?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
        created: 0,
        linked: 0,
        pages: 0,
        finished: false,
        persons_per_sec: 0.0,
    };
    let resumed_from = progress.done;
    let first_page = cursors::get(db, conn.id, INITIAL_PAGE).await?;
    let mut fetching = PageFetch::start(&conn, first_page, window_from);
    loop {
        let page = match fetching.finish().await? {
            Ok(page) => page,
            Err(error) => {
                stored_connections::set_state(
                    db,
                    conn.id,
                    state::CONNECTED,
                    Some(&error.message),
                    engine.now(),
                )
                .await?;
                return Err(error.into());
            }
        };
        // The next page is fetched (at the rate limit's pace) while this one is applied; its
        // cursor is stored only with this page's rows, so a crash resumes right after them.
        let next = page
            .next_cursor
            .clone()
            .map(|cursor| PageFetch::start(&conn, Some(cursor), window_from));
        crate::sync::organizations::learn_names(engine, &conn, &page.items).await?;
        let done = progress.done + page.items.len() as u64;
        // The record keys read with the page are taken once (see `page_transaction`).
        let keys = conn.crm.take_new_record_keys(conn.id);
        let applied = page_transaction(engine, &conn, &keys, || async {
            let now = engine.now();
            let txn = connections::begin_with_keys(engine, &conn, &keys).await?;
            let applied = inbound::apply_page_in(&txn, engine, &conn, &page.items, now).await?;
            triggers::seed_people(&txn, &conn, &page.items).await?;
            crate::sync::related::keep_persons(&txn, &conn, &page.items, now).await?;
            cursors::set(&txn, conn.id, INITIAL_COUNT, &done.to_string(), now).await?;
            match &page.next_cursor {
                Some(next) => cursors::set(&txn, conn.id, INITIAL_PAGE, next, now).await?,
                None => finish_in(&txn, &conn, &started, now).await?,
            }
            txn.commit().await?;
            Ok(applied)
        })
        .await?;
        for applied in applied {
            match applied {
                Applied::Created { .. } => progress.created += 1,
                Applied::Linked { .. } => progress.linked += 1,
                _ => {}
            }
        }
        progress.done = done;
        progress.pages += 1;
        progress.finished = page.next_cursor.is_none();
        let elapsed = (engine.now() - started_at).num_milliseconds().max(1) as f64 / 1000.0;
        progress.persons_per_sec = (progress.done - resumed_from) as f64 / elapsed;
        on_page(&progress);
        match next {
            Some(next) => fetching = next,
            None => break,
        }
    }
    // The records journey actions need besides persons (Salesforce: Accounts, Opportunities
    // and their contact roles).
    crate::sync::related::catch_up(engine, &conn).await?;
    // The initial sync has just read everything: the next poll is one interval away.
    engine.last_polls.insert(conn.id, engine.now());
    synclog::record(
        db,
        Entry::new(
            Level::Info,
            Direction::Inbound,
            "initial_sync_finished",
            format!("Initial sync finished: {} persons.", progress.done),
        )
        .connection(conn.id)
        .detail(serde_json::to_value(&progress).unwrap_or_default()),
        engine.now(),
    )
    .await?;
    Ok(progress)
}

/// Ends the initial sync in the transaction of its last page: the change streams' cursors
/// start where it started (changes made while it ran are caught by the first poll).
async fn finish_in<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    started: &str,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    for key in [
        INITIAL_PAGE,
        INITIAL_STARTED,
        INITIAL_COUNT,
        INITIAL_FULL,
        POLL_CURSOR,
    ] {
        cursors::clear(txn, conn.id, key).await?;
    }
    cursors::set(txn, conn.id, INITIAL_SYNC_DONE, &now.to_rfc3339(), now).await?;
    crate::sync::related::persons_kept_in(txn, conn, now).await?;
    for stream in conn.crm.change_streams() {
        cursors::set(txn, conn.id, &stream_key(stream), started, now).await?;
    }
    stored_connections::set_state(txn, conn.id, state::CONNECTED, None, now).await?;
    stored_connections::mark_success(txn, conn.id, now).await?;
    Ok(())
}

/// Runs a page's transaction (`run`, which begins it with `connections::begin_with_keys`) and,
/// should it
/// fail, stores the page's record `keys` on their own: taken from the connector, they would
/// otherwise be lost with it. A transaction that lost a race to link one of its persons runs
/// again: another writer (a webhook's event, a second run of the same initial sync, another
/// replica) linked the person or contact between this transaction's reads and its writes, and
/// the unique constraint refused the second link with the whole transaction; or linked a
/// person the page read gone and found unlinked ([`SyncError::LostRace`], see
/// [`still_unlinked`]). Run again, the page sees that link and follows it. A few attempts; a
/// race lost every time is returned.
async fn page_transaction<T, F, Fut>(
    engine: &Engine,
    conn: &ConnectionCtx,
    keys: &[(i64, String)],
    mut run: F,
) -> Result<T, SyncError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SyncError>>,
{
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    let outcome = loop {
        match run().await {
            Err(SyncError::Store(error)) if attempt < ATTEMPTS && lost_link_race(&error) => {
                tracing::info!(connection_id = %conn.id, attempt, "A page lost a race to link a person; it is applied again.");
                attempt += 1;
            }
            Err(SyncError::LostRace(reason)) if attempt < ATTEMPTS => {
                tracing::info!(connection_id = %conn.id, attempt, reason = %reason, "A page lost a race to a link made meanwhile; it is applied again.");
                attempt += 1;
            }
            other => break other,
        }
    };
    if outcome.is_err() {
        connections::keep_record_keys(engine, conn, keys).await;
    }
    outcome
}

fn lost_link_race(error: &StoreError) -> bool {
    error.is_conflict_on(crate::store::Constraint::PersonLinkConnectionPerson)
        || error.is_conflict_on(crate::store::Constraint::PersonLinkConnectionContact)
}

/// A page of the initial sync being fetched by its own task, so that the request (and its
/// wait for the rate limit) overlaps the previous page's transaction. Dropping it (an error, an
/// aborted sync) cancels the request.
struct PageFetch(tokio::task::JoinHandle<Result<PersonPage, CrmError>>);

impl PageFetch {
    fn start(
        conn: &ConnectionCtx,
        cursor: Option<String>,
        modified_since: Option<DateTime<Utc>>,
    ) -> Self {
        let crm = conn.crm.clone();
        let session = conn.session.clone();
        let map = conn.map.clone();
        Self(tokio::spawn(async move {
            crm.list_people(&session, &map, cursor, modified_since)
                .await
        }))
    }

    /// The page, or the request's error (the outer error: the task itself failed).
    async fn finish(&mut self) -> Result<Result<PersonPage, CrmError>, SyncError> {
        match (&mut self.0).await {
            Ok(result) => Ok(result),
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(error) => Err(SyncError::Invalid(format!(
                "the page request was cancelled: {error}"
            ))),
        }
    }
}

impl Drop for PageFetch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forgets that the initial sync ran, so "Run initial sync" pulls every person again (whatever
/// the pre-connection window).
pub async fn reset_initial_sync(
    engine: &Engine,
    connection_id: ConnectionId,
) -> Result<(), SyncError> {
    let db = &engine.store;
    for name in [
        INITIAL_SYNC_DONE,
        INITIAL_PAGE,
        INITIAL_STARTED,
        INITIAL_COUNT,
        INITIAL_WINDOW_FROM,
    ] {
        cursors::clear(db, connection_id, name).await?;
    }
    if let Some(row) = stored_connections::get(db, connection_id).await? {
        let streams = engine.crm_of(&row.crm).related_streams();
        crate::sync::related::restart(engine, connection_id, streams).await?;
    }
    let now = engine.now();
    cursors::set(db, connection_id, INITIAL_FULL, &now.to_rfc3339(), now).await?;
    Ok(())
}

/// Whether tandem has read every person of the connection: an initial sync without a window
/// ran to the end (the change capture keeps the knowledge current after it). Only then may a
/// create skip the search for the e-mail.
pub async fn knows_every_person(
    db: &impl Conn,
    connection_id: ConnectionId,
) -> Result<bool, StoreError> {
    Ok(cursors::get(db, connection_id, INITIAL_SYNC_DONE)
        .await?
        .is_some()
        && cursors::get(db, connection_id, INITIAL_WINDOW_FROM)
            .await?
            .is_none())
}

const RECONCILED_AT: &str = "reconciled_at";

/// What a reconciliation pass found.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Reconciled {
    pub persons_seen: u64,
    /// Local contacts changed because Pipedrive's values had drifted.
    pub repaired: u64,
    /// Links whose person no longer exists in Pipedrive (deleted while no webhook reached us).
    pub unlinked: u64,
    /// Webhooks re-created because Pipedrive had removed them.
    pub webhooks_repaired: usize,
}

/// A full pass over every person: repairs fields that drifted, unlinks persons deleted in
/// Pipedrive, and re-registers vanished webhooks. Low priority: skipped while the daily budget
/// is low, so edits and journey actions keep the budget.
pub async fn reconcile(engine: &Engine, conn: &ConnectionCtx) -> Result<Reconciled, SyncError> {
    let db = &engine.store;
    let mut report = Reconciled::default();
    if conn.crm.budget(&conn.session).daily_budget_low() {
        tracing::info!(connection_id = %conn.id, "Daily API budget is low; reconciliation waits.");
        return Ok(report);
    }
    if let Some((user, password)) = connections::webhook_credentials(engine, db, conn.id).await? {
        if engine.settings.pipedrive.register_webhooks {
            // The sync's webhooks and, when the connection keeps the mirror, the mirror's.
            report.webhooks_repaired =
                connections::register_webhooks(engine, &conn.crm, &conn.session, &user, &password)
                    .await?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut page_cursor = None;
    loop {
        let page = conn
            .crm
            .list_people(&conn.session, &conn.map, page_cursor.take(), None)
            .await?;
        crate::sync::organizations::learn_names(engine, conn, &page.items).await?;
        let now = engine.now();
        let txn = engine.store.begin().await?;
        for person in &page.items {
            seen.insert(person.id);
            if let Some(contact_id) = inbound::apply_person_in(&txn, engine, conn, person, now)
                .await?
                .changed_contact()
            {
                report.repaired += 1;
                crate::sync::app::contact_changed(&txn, engine, contact_id, now).await?;
            }
        }
        report.persons_seen += page.items.len() as u64;
        txn.commit().await?;
        match page.next_cursor {
            Some(next) => page_cursor = Some(next),
            None => break,
        }
    }
    // Links to persons the full list no longer has: confirm one by one before unlinking.
    for person_id in crate::sync::links::person_ids(db, conn.id).await? {
        if seen.contains(&person_id) {
            continue;
        }
        match conn
            .crm
            .get_person(&conn.session, &conn.map, person_id)
            .await
        {
            Err(error) if error.kind == tandem_core::CrmErrorKind::NotFound => {
                let now = engine.now();
                let txn = engine.store.begin().await?;
                inbound::person_deleted(&txn, engine, conn, person_id, None, now).await?;
                txn.commit().await?;
                report.unlinked += 1;
            }
            Err(error) => return Err(error.into()),
            Ok(person) => {
                crate::sync::organizations::learn_names(
                    engine,
                    conn,
                    std::slice::from_ref(&person),
                )
                .await?;
                inbound::apply_person(engine, conn, &person).await?;
            }
        }
    }
    let now = engine.now();
    cursors::set(db, conn.id, RECONCILED_AT, &now.to_rfc3339(), now).await?;
    synclog::record(
        db,
        Entry::new(
            Level::Info,
            Direction::Inbound,
            "reconciled",
            format!(
                "Reconciliation: {} persons checked, {} repaired, {} unlinked.",
                report.persons_seen, report.repaired, report.unlinked
            ),
        )
        .connection(conn.id)
        .detail(serde_json::to_value(&report).unwrap_or_default()),
        now,
    )
    .await?;
    Ok(report)
}

/// Runs reconciliation when the configured interval has passed since the last one.
pub async fn reconcile_if_due(
    engine: &Engine,
    conn: &ConnectionCtx,
) -> Result<Option<Reconciled>, SyncError> {
    let db = &engine.store;
    if cursors::get(db, conn.id, INITIAL_SYNC_DONE)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let interval = chrono::Duration::seconds(
        i64::try_from(engine.settings.pipedrive.reconcile_interval_secs).unwrap_or(86_400),
    );
    let last = cursors::get(db, conn.id, RECONCILED_AT)
        .await?
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    if last.is_some_and(|t| engine.now() - t.with_timezone(&Utc) < interval) {
        return Ok(None);
    }
    if last.is_none() {
        // The initial sync just compared everything: count the interval from now.
        let now = engine.now();
        cursors::set(db, conn.id, RECONCILED_AT, &now.to_rfc3339(), now).await?;
        return Ok(None);
    }
    reconcile(engine, conn).await.map(Some)
}
