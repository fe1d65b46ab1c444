//! Workers: claim outbox jobs and execute them, take inbox events through the merge, and the
//! background loops that run both. `run_*_once` are public so tests drive them explicitly.

use std::time::Duration;
use tandem_core::ConnectionId;
use tandem_core::ContactId;

use rand::Rng;
use tandem_core::{ErrorClass, RetryDecision, RetryPolicy};
use tokio_util::sync::CancellationToken;

use crate::crm::Notification;
use crate::queue::inbox::Event as InboxEvent;
use crate::queue::{self, Failure, Job, JobPayload};
use crate::store::Conn;
use crate::sync::app::ContactEvent;
use crate::sync::connections::{self, state};
use crate::sync::inbound;
use crate::sync::outbound::{self, CrmFailure};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};

/// What one round of a worker did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionOutcome {
    /// This many jobs or events were handled.
    Done(usize),
    /// Nothing was due.
    QueueEmpty,
}

impl Engine {
    pub fn retry_policy(&self) -> RetryPolicy {
        let w = &self.settings.workers;
        RetryPolicy::exponential(
            Duration::from_millis(w.retry_initial_ms),
            2,
            Duration::from_millis(w.retry_cap_ms),
            w.max_attempts,
        )
    }
}

/// Claims and executes due outbox jobs, concurrently across persons.
pub async fn run_outbox_once(engine: &Engine) -> Result<ExecutionOutcome, SyncError> {
    // Only the connections this replica owns (ADR 0014); the claim checks the lease again.
    if crate::sync::ownership::owned(engine).await?.is_empty() {
        return Ok(ExecutionOutcome::QueueEmpty);
    }
    let lease = lease(engine);
    let slots = engine.settings.workers.concurrency;
    let replica = engine.replica.id.as_str();
    let claim = |limit: u32| queue::claim(&engine.store, replica, engine.now(), lease, limit);
    let jobs = claim(slots).await?;
    if jobs.is_empty() {
        return Ok(ExecutionOutcome::QueueEmpty);
    }
    // A round keeps its slots busy: a finished task's slot takes the next claimable work, for
    // up to OUTBOX_ROUND; then the round drains and returns, so inbox events (applied
    // between rounds, never while a push of the same contact is in flight) wait at most that.
    // A batch of a batching connector's pushes takes one slot.
    let round_ends = tokio::time::Instant::now() + OUTBOX_ROUND;
    let mut count = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let mut spawn = |tasks: &mut tokio::task::JoinSet<_>, work: Vec<Work>| {
        for work in work {
            let engine = engine.clone();
            match work {
                Work::One(job) => {
                    count += 1;
                    tasks.spawn(async move { execute(&engine, job).await });
                }
                Work::Batch(connection, jobs) => {
                    count += jobs.len();
                    tasks.spawn(async move { execute_batch(&engine, connection, jobs).await });
                }
            }
        }
    };
    spawn(&mut tasks, group(engine, jobs, lease, slots).await?);
    while let Some(result) = tasks.join_next().await {
        match result {
            Ok(Err(error)) => {
                tracing::error!(error = %error, "A job failed inside tandem; it will be retried after its lease.")
            }
            Err(error) => {
                tracing::error!(error = %error, "A job task panicked; it will be retried after its lease.")
            }
            Ok(Ok(())) => {}
        }
        if tokio::time::Instant::now() < round_ends {
            let free = slots.saturating_sub(u32::try_from(tasks.len()).unwrap_or(u32::MAX));
            let jobs = claim(free).await?;
            // Batches for the free slots only: the others still run theirs.
            spawn(&mut tasks, group(engine, jobs, lease, free).await?);
        }
    }
    Ok(ExecutionOutcome::Done(count))
}

/// What one slot of an outbox round runs.
enum Work {
    One(Job),
    /// Contact pushes of one connection whose connector writes many persons per call.
    Batch(ConnectionId, Vec<Job>),
}

/// The claimed jobs as the `slots` free now run them: a batching connector's contact pushes
/// gathered (with more of that connection's due pushes claimed now, as many full batches as the
/// slots the other jobs leave, shared in connection order, at least one for a connection whose
/// pushes were claimed) into batches of its limit (`tandem_core::plan_batches`: a batch that is
/// not full waits when another left less than the connector's window ago, a window from its
/// oldest push, half of it for one push behind a batch of one); every other job alone.
async fn group(
    engine: &Engine,
    jobs: Vec<Job>,
    lease: chrono::Duration,
    slots: u32,
) -> Result<Vec<Work>, SyncError> {
    let mut work = Vec::new();
    let mut batching: std::collections::BTreeMap<ConnectionId, tandem_core::WriteBatching> =
        std::collections::BTreeMap::new();
    let mut pushes: std::collections::BTreeMap<ConnectionId, Vec<Job>> =
        std::collections::BTreeMap::new();
    for job in jobs {
        if matches!(job.payload, JobPayload::PushContact { .. }) {
            let id = job.connection_id;
            if let std::collections::btree_map::Entry::Vacant(entry) = batching.entry(id) {
                let known = engine.write_batching.get(&id).map(|b| *b);
                entry.insert(match known {
                    Some(b) => b,
                    None => match connections::load(engine, id).await {
                        Ok(conn) => {
                            let b = tandem_core::WriteBatching {
                                limit: conn.crm.write_batch_limit(),
                                window_ms: i64::try_from(conn.crm.write_batch_window().as_millis())
                                    .unwrap_or(i64::MAX),
                            };
                            engine.write_batching.insert(id, b);
                            b
                        }
                        // A connection that does not load runs its jobs alone (they say why).
                        Err(_) => tandem_core::WriteBatching {
                            limit: 1,
                            window_ms: 0,
                        },
                    },
                });
            }
            if batching.get(&id).is_some_and(|b| b.limit > 1) {
                pushes.entry(id).or_default().push(job);
                continue;
            }
        }
        work.push(Work::One(job));
    }
    let mut free = slots.saturating_sub(u32::try_from(work.len()).unwrap_or(u32::MAX));
    let mut after = u32::try_from(pushes.len()).unwrap_or(u32::MAX);
    for (id, mut jobs) in pushes {
        let Some(b) = batching.get(&id).copied() else {
            continue;
        };
        // One slot kept for each connection after this one: its claimed pushes need a batch.
        after -= 1;
        let room = free.saturating_sub(after).max(1);
        let want = u32::try_from(b.limit.saturating_mul(room as usize))
            .unwrap_or(u32::MAX)
            .saturating_sub(u32::try_from(jobs.len()).unwrap_or(u32::MAX));
        let now = engine.now();
        jobs.extend(
            queue::claim_pushes(&engine.store, &engine.replica.id, id, now, lease, want).await?,
        );
        let queued: Vec<i64> = jobs
            .iter()
            .map(|j| j.created_at.timestamp_millis())
            .collect();
        // Planned under the entry's lock: a batch ending meanwhile records its time in it.
        let plan = {
            let mut window = engine.batch_windows.entry(id).or_default();
            let (plan, next) =
                tandem_core::plan_batches(&queued, b, *window, now.timestamp_millis());
            *window = next;
            plan
        };
        let mut jobs = jobs.into_iter();
        for (range, decision) in plan {
            let batch: Vec<Job> = jobs.by_ref().take(range.len()).collect();
            match decision {
                tandem_core::BatchDecision::Send => {
                    free = free.saturating_sub(1);
                    work.push(Work::Batch(id, batch));
                }
                tandem_core::BatchDecision::WaitUntil(at_ms) => {
                    let until = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or(now);
                    for job in &batch {
                        put_back(engine, job, until).await?;
                    }
                }
            }
        }
    }
    Ok(work)
}

/// How long one outbox round keeps refilling its slots before it drains.
const OUTBOX_ROUND: Duration = Duration::from_millis(250);

#[tracing::instrument(skip_all, fields(connection_id = %job.connection_id, job_id = %job.id, attempt = job.attempts))]
async fn execute(engine: &Engine, job: Job) -> Result<(), SyncError> {
    let conn = connections::load(engine, job.connection_id).await?;
    let result = match &job.payload {
        JobPayload::PushContact { contact_id } => {
            let pushed = outbound::push_contact(engine, &conn, &job, *contact_id).await;
            return settle_push(engine, &conn, &job, pushed, &mut None).await;
        }
        JobPayload::Action { action_id, .. } => {
            crate::sync::outbound::actions::execute(engine, &conn, &job, *action_id).await
        }
        JobPayload::LogEmail { email_id, .. } => {
            crate::sync::emails::execute(engine, &conn, &job, *email_id).await
        }
        JobPayload::UpdateEmail { email_id, .. } => {
            crate::sync::emails::update(engine, &conn, *email_id).await
        }
        JobPayload::RefreshPerson { person_id, .. } => {
            outbound::refresh_person(engine, &conn, *person_id).await
        }
    };
    settle(engine, &conn, &job, result, &mut None).await
}

/// Pushes of one connection sent together (a batching connector, [`group`]); each job ends
/// with its own contact's outcome.
#[tracing::instrument(skip_all, fields(connection_id = %connection_id, jobs = jobs.len()))]
async fn execute_batch(
    engine: &Engine,
    connection_id: ConnectionId,
    jobs: Vec<Job>,
) -> Result<(), SyncError> {
    let conn = connections::load(engine, connection_id).await?;
    let started = std::time::Instant::now();
    let results = outbound::push_contacts(engine, &conn, &jobs).await;
    // How long a partial batch the CRM answered took to reach it: the next one in a stream
    // leaves that much early (`tandem_core::plan_batches`). A call that failed (a timeout, a
    // 5xx) says nothing of that.
    let partial = engine
        .write_batching
        .get(&connection_id)
        .is_some_and(|b| jobs.len() < b.limit);
    if partial && results.iter().any(Result::is_ok) {
        let took = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        engine
            .batch_windows
            .entry(connection_id)
            .or_default()
            .sent(took);
    }
    // One token refresh for the batch, however many of its jobs the CRM refused for it.
    let mut refreshed = None;
    let mut first_error = None;
    // The jobs that succeeded end together, in one statement.
    let mut done = Vec::new();
    for (job, pushed) in jobs.iter().zip(results) {
        let settled = match pushed {
            Ok(pushed) if !matches!(pushed, outbound::Pushed::Deferred { .. }) => {
                if matches!(
                    pushed,
                    outbound::Pushed::Patched { .. } | outbound::Pushed::Created { .. }
                ) {
                    let crm = crate::meter::crm_label(&conn.crm);
                    crate::meter::propagated(
                        conn.id,
                        crm,
                        crate::meter::Direction::AppToCrm,
                        job.created_at,
                    );
                }
                done.push(job.id);
                Ok(())
            }
            other => settle_push(engine, &conn, job, other, &mut refreshed).await,
        };
        if let Err(error) = settled {
            first_error.get_or_insert(error);
        }
    }
    queue::complete_all(&engine.store, &done).await?;
    first_error.map_or(Ok(()), Err)
}

/// Ends a push: deferred (paced), done (metered), or failed (see [`settle`]).
async fn settle_push(
    engine: &Engine,
    conn: &connections::ConnectionCtx,
    job: &Job,
    pushed: Result<outbound::Pushed, CrmFailure>,
    refreshed: &mut Option<bool>,
) -> Result<(), SyncError> {
    let result = match pushed {
        Ok(outbound::Pushed::Deferred { until }) => {
            put_back(engine, job, until).await?;
            return Ok(());
        }
        other => other.map(|pushed| {
            if matches!(
                pushed,
                outbound::Pushed::Patched { .. } | outbound::Pushed::Created { .. }
            ) {
                let crm = crate::meter::crm_label(&conn.crm);
                crate::meter::propagated(
                    conn.id,
                    crm,
                    crate::meter::Direction::AppToCrm,
                    job.created_at,
                );
            }
        }),
    };
    settle(engine, conn, job, result, refreshed).await
}

/// Ends a job: completed, or its CRM failure retried, dead-lettered, or the connection paused
/// (a token refused: one refresh, remembered in `refreshed` for the other jobs of a batch).
async fn settle(
    engine: &Engine,
    conn: &connections::ConnectionCtx,
    job: &Job,
    result: Result<(), CrmFailure>,
    refreshed: &mut Option<bool>,
) -> Result<(), SyncError> {
    let now = engine.now();
    let db = &engine.store;
    match result {
        Ok(()) => queue::complete(db, job.id).await?,
        Err(CrmFailure::Internal(error)) => return Err(error),
        Err(CrmFailure::Crm(error, person_id)) => {
            let contact_id = job.payload.contact_id();
            let jitter: f64 = rand::thread_rng().gen_range(0.0..=1.0);
            let decision = engine
                .retry_policy()
                .decide(&error, job.attempts + 1, jitter);
            let code = format!(
                "crm_{}",
                serde_json::to_value(error.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            );
            let base_entry = |level, kind, message: String| {
                let mut entry = Entry::new(level, Direction::Outbound, kind, message)
                    .connection(conn.id)
                    .contact(contact_id)
                    .status(error.status)
                    .remote_error(match &error.code {
                        // The CRM's own words, verbatim, with its error code.
                        Some(code) if !error.message.contains(code.as_str()) => {
                            format!("{code}: {}", error.message)
                        }
                        _ => error.message.clone(),
                    });
                if let Some(person) = person_id {
                    entry = entry.person(person);
                }
                if let Some(hint) = &error.hint {
                    entry = entry.hint(hint.clone());
                }
                entry
            };
            let crm_name = conn.crm.display_name();
            match decision {
                RetryDecision::RetryAfter { after } => {
                    let run_at = now + chrono::Duration::from_std(after).unwrap_or_default();
                    queue::retry(db, job, run_at, &code, error.status, now).await?;
                    crate::meter::job_retried(conn.id, job.payload.kind());
                    tracing::warn!(status = ?error.status, error = %error, "Push failed; a retry was scheduled.");
                    synclog::record(
                        db,
                        base_entry(
                            Level::Warn,
                            "write_retried",
                            format!(
                                "Write to {crm_name} failed; retrying in {} ms.",
                                after.as_millis()
                            ),
                        ),
                        now,
                    )
                    .await?;
                }
                RetryDecision::DeadLetter => {
                    queue::bury(db, job, &code, error.status, now).await?;
                    crate::meter::dead_lettered(conn.id, job.payload.kind());
                    if let JobPayload::Action { action_id, .. } = &job.payload {
                        crate::sync::outbound::actions::mark_failed(
                            engine, conn, *action_id, &error,
                        )
                        .await?;
                    }
                    if let JobPayload::LogEmail { email_id, .. } = &job.payload {
                        crate::sync::emails::mark_failed(engine, *email_id, &error).await?;
                    }
                    crate::sync::app::contact_event(
                        db,
                        contact_id,
                        ContactEvent::SyncFailed,
                        Some(serde_json::json!({
                            "code": code,
                            "status": error.status,
                            "message": error.message,
                        })),
                        now,
                    )
                    .await?;
                    tracing::error!(status = ?error.status, error = %error, "Push was rejected; the job is a dead letter.");
                    let hint: std::borrow::Cow<'static, str> = match &error.hint {
                        Some(hint) => hint.clone().into(),
                        None if error.retry == ErrorClass::Retry => format!(
                            "{crm_name} kept failing; retry the dead letter once {crm_name} is healthy."
                        )
                        .into(),
                        None => format!(
                            "Fix the value or the field mapping named in {crm_name}'s error, then retry the dead letter."
                        )
                        .into(),
                    };
                    synclog::record(
                        db,
                        base_entry(
                            Level::Error,
                            "dead_letter",
                            format!("{crm_name} rejected the write; it was moved to dead letters."),
                        )
                        .hint(hint),
                        now,
                    )
                    .await?;
                }
                RetryDecision::Reauthenticate => {
                    let refreshed = match refreshed {
                        Some(done) => *done,
                        None => {
                            let done =
                                crate::sync::connections::tokens::refresh(engine, conn).await;
                            *refreshed = Some(done);
                            done
                        }
                    };
                    let run_at = now;
                    queue::retry(db, job, run_at, &code, error.status, now).await?;
                    if !refreshed {
                        crate::store::connections::set_state(
                            db,
                            conn.id,
                            state::TOKEN_EXPIRED,
                            Some(&error.message),
                            now,
                        )
                        .await?;
                        tracing::error!(error = %error, "Pipedrive refused the token; the connection is paused until it is reconnected.");
                        synclog::record(db, base_entry(Level::Error, "token_expired", format!("{crm_name} refused the access token (401); writes are paused until you reconnect.")).hint(format!("Reconnect {crm_name} from the connection card.")), now).await?;
                    }
                }
                RetryDecision::PauseConnection => {
                    queue::retry(db, job, now, &code, error.status, now).await?;
                    crate::store::connections::set_state(
                        db,
                        conn.id,
                        state::NOT_AUTHORISED,
                        Some(&error.message),
                        now,
                    )
                    .await?;
                    tracing::error!(error = %error, "Pipedrive refused the request for missing rights; the connection is paused.");
                    synclog::record(db, base_entry(Level::Error, "not_authorised", format!("{crm_name} refused the request (403): the connecting user lacks rights or scopes; writes are paused.")).hint(format!("Reconnect with a {crm_name} admin user, or grant the missing scopes.")), now).await?;
                }
            }
        }
    }
    Ok(())
}

/// Inbox event states (the work queue owns them).
pub use crate::queue::inbox::state as inbox_state;

/// Most inbox events one round applies.
const INBOX_ROUND: usize = 200;

/// How long a claim holds a job or an event before another worker may take it over.
fn lease(engine: &Engine) -> chrono::Duration {
    chrono::Duration::seconds(
        i64::try_from(engine.settings.pipedrive.request_timeout_secs * 6).unwrap_or(60),
    )
}

impl SyncError {
    /// How the queue treats this error when it stopped a claimed row: the database or the CRM
    /// failing may pass, anything else will not.
    pub fn into_failure(self) -> Failure {
        let transient = match &self {
            Self::Store(_) | Self::Queue(queue::QueueError::Store(_)) | Self::LostRace(_) => true,
            Self::Crm(error) => error.retry == ErrorClass::Retry,
            _ => false,
        };
        let message = self.to_string();
        if transient {
            Failure::Transient(message)
        } else {
            Failure::Permanent(message)
        }
    }
}

impl From<SyncError> for Failure {
    fn from(error: SyncError) -> Self {
        error.into_failure()
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(error: crate::store::StoreError) -> Self {
        SyncError::from(error).into_failure()
    }
}

/// Claims and applies due inbox events: per object in received order, never one event by two
/// workers (ADR 3). Stops after `INBOX_ROUND` events.
pub async fn run_inbox_once(engine: &Engine) -> Result<ExecutionOutcome, SyncError> {
    let db = &engine.store;
    let lease = lease(engine);
    let mut count = 0;
    while count < INBOX_ROUND {
        // One event per object per claim: an object's next event is claimable once the
        // previous one is done.
        let limit = u32::try_from(INBOX_ROUND - count).unwrap_or(1);
        let events = queue::inbox::claim(db, engine.now(), lease, limit).await?;
        if events.is_empty() {
            break;
        }
        for event in events {
            count += 1;
            apply_event(engine, event).await?;
        }
    }
    Ok(if count == 0 {
        ExecutionOutcome::QueueEmpty
    } else {
        ExecutionOutcome::Done(count)
    })
}

/// Applies one claimed event; a transient failure is retried with backoff, a permanent one
/// (or the last retry's) leaves the event `failed` with a sync-log entry.
#[tracing::instrument(skip_all, fields(event_id = %event.id, attempt = event.attempts + 1))]
async fn apply_event(engine: &Engine, event: InboxEvent) -> Result<(), SyncError> {
    let now = engine.now();
    let failure = match apply_and_complete(engine, &event, now).await {
        Ok(()) => return Ok(()),
        Err(failure) => failure,
    };
    let db = &engine.store;
    if failure.is_transient() {
        let jitter: f64 = rand::thread_rng().gen_range(0.0..=1.0);
        let attempt = u32::try_from(event.attempts + 1).unwrap_or(u32::MAX);
        if let Some(delay) = engine.retry_policy().next_delay(attempt, jitter) {
            let run_at = now + chrono::Duration::from_std(delay).unwrap_or_default();
            queue::inbox::retry(db, &event, run_at, failure.message()).await?;
            tracing::warn!(error = %failure.message(), retry_in_ms = delay.as_millis(), "A received event could not be applied yet; a retry was scheduled.");
            return Ok(());
        }
    }
    let txn = engine.store.begin().await?;
    if !queue::inbox::bury(&txn, &event, failure.message(), now).await? {
        txn.rollback().await?;
        return Ok(());
    }
    tracing::error!(error = %failure.message(), transient = failure.is_transient(), "A received event could not be applied; it is kept as failed.");
    let mut entry = Entry::new(
        Level::Error,
        Direction::Inbound,
        "event_failed",
        "A received event could not be applied.",
    )
    .remote_error(failure.message().to_owned())
    .hint("Inspect the stored event in the inbox; fix the mapping and resync the person.");
    if let Some(c) = event.connection_id {
        entry = entry.connection(c.into());
    }
    synclog::record(&txn, entry, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Applies the event and marks it applied in one transaction; on any failure nothing of it is
/// kept.
async fn apply_and_complete(
    engine: &Engine,
    event: &InboxEvent,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    // Load before the transaction: on SQLite (one connection) a second acquire inside it would
    // wait for itself.
    let connection = event.connection_id.map(ConnectionId::from);
    let conn = match (event.source.as_str(), connection) {
        ("pipedrive", Some(connection_id)) => Some(connections::load(engine, connection_id).await?),
        _ => None,
    };
    if let (Some(_), Some(connection_id)) = (&conn, connection) {
        // The mirror's tables (when the connection keeps one): idempotent and version-guarded,
        // so applying it again on a retry is harmless.
        crate::mirror::live::apply_for_connection(&engine.store, connection_id, &event.payload)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
    }
    // Organizations (CRM calls, so outside the transaction): the name of a changed person's
    // organization is learned; a renamed organization's persons are re-read.
    let mut renamed_people = Vec::new();
    if let Some(conn) = &conn {
        match conn.crm.parse_notification(&event.payload, &conn.map) {
            Ok(Notification::PersonChanged(person)) => {
                crate::sync::organizations::learn_names(
                    engine,
                    conn,
                    std::slice::from_ref(&*person),
                )
                .await
                .map_err(SyncError::from)?;
            }
            Ok(Notification::OrganizationChanged { id, name }) => {
                renamed_people =
                    crate::sync::organizations::organization_renamed(engine, conn, id, &name)
                        .await
                        .map_err(SyncError::from)?;
            }
            _ => {}
        }
    }
    let prefetched = match &conn {
        Some(conn) => {
            crate::sync::triggers::prefetch(engine, conn, &event.payload, &renamed_people).await?
        }
        None => crate::sync::triggers::Prefetched::default(),
    };
    let txn = engine.store.begin().await?;
    let applied = match (event.source.as_str(), conn) {
        ("pipedrive", Some(conn)) => {
            // Journey triggers first: a person's delete unlinks its contact.
            crate::sync::triggers::observe(&txn, engine, &conn, &event.payload, &prefetched, now)
                .await?;
            // A logged e-mail's deal or lead changed by hand in Pipedrive: followed.
            crate::sync::emails::observe(&txn, &conn, &event.payload, now).await?;
            apply_crm_event(&txn, engine, &conn, &event.payload, &renamed_people, now).await
        }
        // The app's own change is not announced back to it.
        ("app", _) => crate::sync::app::apply_event(&txn, engine, &event.payload, now)
            .await
            .map(|_| None),
        _ => Err(Failure::Permanent(format!(
            "unknown event source {}",
            event.source
        ))),
    };
    let applied = match applied {
        Ok(applied) => applied,
        Err(failure) => {
            txn.rollback().await?;
            return Err(failure);
        }
    };
    if !queue::inbox::complete(&txn, event, now)
        .await
        .map_err(SyncError::from)?
    {
        txn.rollback().await?;
        tracing::warn!(
            "An event's lease ran out while it was applied; the newer claim applies it."
        );
        return Ok(());
    }
    if let Some((contact_id, kind)) = applied {
        crate::sync::app::contact_event(&txn, contact_id, kind, None, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

async fn apply_crm_event(
    txn: &impl Conn,
    engine: &Engine,
    conn: &connections::ConnectionCtx,
    payload: &str,
    renamed_people: &[crate::crm::CrmPerson],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<(ContactId, ContactEvent)>, Failure> {
    let applied = match conn.crm.parse_notification(payload, &conn.map)? {
        // Deals and activities are tracked for journey actions; nothing to merge.
        Notification::Other => return Ok(None),
        // A renamed organization: its persons, just re-read, merged as fresh reads (each
        // linked contact's company follows, and the app hears of it).
        Notification::OrganizationChanged { .. } => {
            for person in renamed_people {
                let applied =
                    inbound::apply_fresh_person_in(txn, engine, conn, person, now).await?;
                if let Some((contact_id, event)) = applied.app_event() {
                    crate::sync::app::contact_event(txn, contact_id, event, None, now).await?;
                }
            }
            return Ok(None);
        }
        Notification::PersonDeleted { id, merged_into } => {
            inbound::person_deleted(txn, engine, conn, id, merged_into, now).await?
        }
        Notification::PersonChanged(person) => {
            inbound::apply_webhook_person_in(txn, engine, conn, &person, now).await?
        }
    };
    Ok(applied.app_event())
}

/// Runs inbox and outbox until nothing is pending any more (jobs waiting for a backoff are
/// waited for). For tests, the demo and `drain`.
pub async fn drive_until_idle(engine: &Engine) -> Result<(), SyncError> {
    loop {
        let inbox = run_inbox_once(engine).await?;
        let outbox = run_outbox_once(engine).await?;
        let deliveries = crate::sync::app::run_deliveries_once(engine).await?;
        if inbox == ExecutionOutcome::QueueEmpty
            && outbox == ExecutionOutcome::QueueEmpty
            && !deliveries
        {
            // Jobs scheduled for later (backoff)? Wait for the earliest; else we are idle.
            let next_job = crate::store::queue::next_job_due(
                &engine.store,
                &active_connection_ids(engine).await?,
                queue::state::PENDING,
                queue::state::RUNNING,
            )
            .await?;
            let next_delivery = crate::sync::app::next_delivery_due(engine).await?;
            let next_event = queue::inbox::next_due(&engine.store).await?;
            let Some(due) = [next_job, next_delivery, next_event]
                .into_iter()
                .flatten()
                .min()
            else {
                return Ok(());
            };
            let wait = (due - engine.now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
        }
    }
}

/// The active connections whose outbound work this replica runs.
async fn active_connection_ids(engine: &Engine) -> Result<Vec<ConnectionId>, SyncError> {
    let owned = crate::sync::ownership::owned(engine).await?;
    Ok(
        crate::store::connections::running_ids(&engine.store, &[state::CONNECTED, state::SYNCING])
            .await?
            .into_iter()
            .filter(|id| owned.contains(id))
            .collect(),
    )
}

/// What a background round found, for [`LoopBackoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// Something was done: go on at once.
    Busy,
    /// Nothing was due.
    Idle,
    /// A queue's round failed (the database is down, say).
    Failed,
}

/// The pause of a worker loop after a round: none after work, the idle poll after none, and
/// after failing rounds a delay that doubles from `initial` up to `cap` (reset by a round that
/// did not fail), so a loop that keeps hitting an error neither spins nor floods the log.
#[derive(Debug)]
struct LoopBackoff {
    initial: Duration,
    cap: Duration,
    idle: Duration,
    failures: u32,
}

impl LoopBackoff {
    const INITIAL: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(30);

    fn new(idle: Duration) -> Self {
        Self {
            initial: Self::INITIAL,
            cap: Self::CAP,
            idle,
            failures: 0,
        }
    }

    fn pause(&mut self, round: Round) -> Duration {
        match round {
            Round::Busy => {
                self.failures = 0;
                Duration::ZERO
            }
            Round::Idle => {
                self.failures = 0;
                self.idle
            }
            Round::Failed => {
                let doubling = 2_u32.saturating_pow(self.failures.min(31));
                self.failures = self.failures.saturating_add(1);
                self.initial.saturating_mul(doubling).min(self.cap)
            }
        }
    }
}

/// One round of the queue loop: inbox, outbox, deliveries; errors are logged, not dropped.
async fn queue_round(engine: &Engine, failures: u32) -> Round {
    let inbox = run_inbox_once(engine).await;
    let outbox = run_outbox_once(engine).await;
    let deliveries = crate::sync::app::run_deliveries_once(engine).await;
    let mut failed = false;
    let mut busy = false;
    for (queue, result) in [
        ("inbox", inbox.map(|o| o != ExecutionOutcome::QueueEmpty)),
        ("outbox", outbox.map(|o| o != ExecutionOutcome::QueueEmpty)),
        ("deliveries", deliveries),
    ] {
        match result {
            Ok(did) => busy |= did,
            Err(error) => {
                failed = true;
                tracing::warn!(queue, error = %error, failures = failures + 1, "A worker round failed; the loop backs off and tries again.");
            }
        }
    }
    if failed {
        Round::Failed
    } else if busy {
        Round::Busy
    } else {
        Round::Idle
    }
}

/// Puts a claimed job back until `until` without counting an attempt (a batch waiting for
/// company, a paced write), and has the idle worker loop wake then.
async fn put_back(
    engine: &Engine,
    job: &Job,
    until: chrono::DateTime<chrono::Utc>,
) -> Result<(), SyncError> {
    queue::defer(&engine.store, job, until, engine.now()).await?;
    engine
        .put_back_due
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(until.timestamp_millis());
    Ok(())
}

/// How long until the next job this replica put back comes due, if one waits (those due now
/// are forgotten: the round that follows runs them).
fn put_back_due_in(engine: &Engine) -> Option<Duration> {
    let now = engine.now().timestamp_millis();
    let mut due = engine
        .put_back_due
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let later = due.split_off(&(now + 1));
    *due = later;
    let next = *due.first()?;
    Some(Duration::from_millis(
        u64::try_from(next - now).unwrap_or(0),
    ))
}

/// How often the mirror loop looks for a pass that came due.
const MIRROR_IDLE: Duration = Duration::from_secs(5);

/// The background loops of `tandem serve`: outbox, inbox, deliveries, the live mirrors, poller.
pub fn spawn_workers(
    engine: Engine,
    shutdown: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let e = engine.clone();
    let s = shutdown.clone();
    handles.push(tokio::spawn(async move {
        let mut backoff = LoopBackoff::new(Duration::from_millis(e.settings.workers.idle_poll_ms));
        loop {
            let round = queue_round(&e, backoff.failures).await;
            let idle = round == Round::Idle;
            // Jobs put back leave when their wait ends, not at the next idle poll.
            let pause = match (round, put_back_due_in(&e)) {
                (Round::Idle, Some(wake)) => backoff.pause(round).min(wake),
                _ => backoff.pause(round),
            };
            tokio::select! {
                () = s.cancelled() => return,
                () = e.wake.notified(), if idle => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }));
    // The live mirrors (issue 20): their passes in rounds of a few pages, at background
    // priority at the limiter, so contact sync and journey actions go first.
    let e = engine.clone();
    let s = shutdown.clone();
    handles.push(tokio::spawn(async move {
        let mut backoff = LoopBackoff::new(MIRROR_IDLE);
        loop {
            let round = match crate::sync::mirror::run_mirror_once(&e).await {
                Ok(0) => Round::Idle,
                Ok(_) => Round::Busy,
                Err(error) => {
                    tracing::warn!(error = %error, failures = backoff.failures + 1, "A mirror round failed; the loop backs off and tries again.");
                    Round::Failed
                }
            };
            let pause = backoff.pause(round);
            let idle = round == Round::Idle;
            tokio::select! {
                () = s.cancelled() => return,
                () = e.mirror_wake.notified(), if idle => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }));
    let e = engine;
    handles.push(tokio::spawn(async move {
        loop {
            let interval =
                Duration::from_secs(crate::sync::inbound::poller::poll_interval_secs(&e).await);
            if let Err(error) = crate::sync::inbound::poller::poll_all(&e).await {
                tracing::warn!(error = %error, "The change-capture poll failed; it will run again.");
            }
            if let Err(error) = crate::sync::housekeeping::prune_due(&e).await {
                tracing::warn!(error = %error, "Pruning old records failed; it will run again.");
            }
            // Date triggers (activity.overdue), by the engine's clock.
            if let Err(error) = crate::sync::triggers::scan_overdue(&e).await {
                tracing::warn!(error = %error, "The overdue-activity scan failed; it will run again.");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }));
    handles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_loop_backs_off_doubling_up_to_the_cap_and_recovers_at_once() {
        let idle = Duration::from_millis(500);
        let mut backoff = LoopBackoff::new(idle);
        let pauses: Vec<_> = (0..12).map(|_| backoff.pause(Round::Failed)).collect();
        assert_eq!(pauses[0], Duration::from_millis(100));
        assert_eq!(pauses[1], Duration::from_millis(200));
        assert_eq!(pauses[2], Duration::from_millis(400));
        assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
        assert_eq!(pauses[11], LoopBackoff::CAP, "capped");
        assert_eq!(backoff.pause(Round::Failed), LoopBackoff::CAP);
        // A round that works resets it; a busy round never pauses, an idle one polls.
        assert_eq!(backoff.pause(Round::Busy), Duration::ZERO);
        assert_eq!(backoff.pause(Round::Failed), Duration::from_millis(100));
        assert_eq!(backoff.pause(Round::Idle), idle);
        assert_eq!(backoff.pause(Round::Failed), Duration::from_millis(100));
    }

    #[test]
    fn database_and_retryable_crm_errors_are_transient_and_bad_data_is_not() {
        let db = SyncError::Store(crate::store::StoreError::Db("database is locked".into()));
        assert!(db.into_failure().is_transient());
        let corrupt = SyncError::Corrupt("bad".into());
        assert!(!corrupt.into_failure().is_transient());
        let gone = SyncError::ConnectionNotFound(ConnectionId::nil());
        assert!(!gone.into_failure().is_transient());
    }
}
