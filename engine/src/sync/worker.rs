//! Workers: claim outbox jobs and execute them, take inbox events through the merge, and the
//! background loops that run both. `run_*_once` are public so tests drive them explicitly.

use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait};
use tandem_core::{ErrorClass, RetryDecision, RetryPolicy};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::app::ContactEvent;
use super::connections::{self, state};
use super::inbound;
use super::outbound::{self, CrmFailure};
use super::synclog::{self, Direction, Entry, Level};
use super::{Engine, SyncError};
use crate::crm::pipedrive::wire::Person;
use crate::queue::{self, Job, JobPayload};
use crate::store::entities::{inbox_event, outbox_job};

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
    let lease = chrono::Duration::seconds(
        i64::try_from(engine.settings.pipedrive.request_timeout_secs * 6).unwrap_or(60),
    );
    let slots = engine.settings.workers.concurrency;
    let claim = |limit: u32| queue::claim(engine.store.db(), Utc::now(), lease, limit);
    let jobs = claim(slots).await?;
    if jobs.is_empty() {
        return Ok(ExecutionOutcome::QueueEmpty);
    }
    // A round keeps its slots busy: a finished job's slot takes the next claimable job, for
    // up to OUTBOX_ROUND; then the round drains and returns, so inbox events (applied
    // between rounds, never while a push of the same contact is in flight) wait at most that.
    let round_ends = tokio::time::Instant::now() + OUTBOX_ROUND;
    let mut count = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let mut spawn = |tasks: &mut tokio::task::JoinSet<_>, jobs: Vec<Job>| {
        for job in jobs {
            count += 1;
            let engine = engine.clone();
            tasks.spawn(async move { execute(&engine, job).await });
        }
    };
    spawn(&mut tasks, jobs);
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
            spawn(&mut tasks, claim(free).await?);
        }
    }
    Ok(ExecutionOutcome::Done(count))
}

/// How long one outbox round keeps refilling its slots before it drains.
const OUTBOX_ROUND: Duration = Duration::from_millis(250);

#[tracing::instrument(skip_all, fields(connection_id = %job.connection_id, job_id = %job.id, attempt = job.attempts))]
async fn execute(engine: &Engine, job: Job) -> Result<(), SyncError> {
    let conn = connections::load(engine, job.connection_id).await?;
    let result = match &job.payload {
        JobPayload::PushContact { contact_id } => {
            match outbound::push_contact(engine, &conn, &job, *contact_id).await {
                Ok(outbound::Pushed::Deferred { until }) => {
                    queue::defer(engine.store.db(), &job, until, Utc::now()).await?;
                    return Ok(());
                }
                other => other.map(|_| ()),
            }
        }
        JobPayload::Action { action_id, .. } => {
            crate::sync::actions::execute(engine, &conn, &job, *action_id).await
        }
        JobPayload::RefreshPerson { person_id, .. } => {
            outbound::refresh_person(engine, &conn, *person_id).await
        }
    };
    let now = Utc::now();
    let db = engine.store.db();
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
                    .remote_error(error.message.clone());
                if let Some(person) = person_id {
                    entry = entry.person(person);
                }
                entry
            };
            match decision {
                RetryDecision::RetryAfter { after } => {
                    let run_at = now + chrono::Duration::from_std(after).unwrap_or_default();
                    queue::retry(db, &job, run_at, &code, error.status, now).await?;
                    tracing::warn!(status = ?error.status, error = %error, "Push failed; a retry was scheduled.");
                    synclog::record(
                        db,
                        base_entry(
                            Level::Warn,
                            "write_retried",
                            format!(
                                "Write to Pipedrive failed; retrying in {} ms.",
                                after.as_millis()
                            ),
                        ),
                        now,
                    )
                    .await?;
                }
                RetryDecision::DeadLetter => {
                    queue::bury(db, &job, &code, error.status, now).await?;
                    if let JobPayload::Action { action_id, .. } = &job.payload {
                        crate::sync::actions::mark_failed(engine, &conn, *action_id, &error)
                            .await?;
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
                    let hint = if error.retry == ErrorClass::Retry {
                        "Pipedrive kept failing; retry the dead letter once Pipedrive is healthy."
                    } else {
                        "Fix the value or the field mapping named in Pipedrive's error, then retry the dead letter."
                    };
                    synclog::record(
                        db,
                        base_entry(
                            Level::Error,
                            "dead_letter",
                            "Pipedrive rejected the write; it was moved to dead letters.".into(),
                        )
                        .hint(hint),
                        now,
                    )
                    .await?;
                }
                RetryDecision::Reauthenticate => {
                    let refreshed = crate::sync::tokens::refresh(engine, &conn).await;
                    let run_at = now;
                    queue::retry(db, &job, run_at, &code, error.status, now).await?;
                    if !refreshed {
                        connections::set_state(
                            db,
                            conn.id,
                            state::TOKEN_EXPIRED,
                            Some(&error.message),
                            now,
                        )
                        .await?;
                        tracing::error!(error = %error, "Pipedrive refused the token; the connection is paused until it is reconnected.");
                        synclog::record(db, base_entry(Level::Error, "token_expired", "Pipedrive refused the access token (401); writes are paused until you reconnect.".into()).hint("Reconnect Pipedrive from the connection card."), now).await?;
                    }
                }
                RetryDecision::PauseConnection => {
                    queue::retry(db, &job, now, &code, error.status, now).await?;
                    connections::set_state(
                        db,
                        conn.id,
                        state::NOT_AUTHORISED,
                        Some(&error.message),
                        now,
                    )
                    .await?;
                    tracing::error!(error = %error, "Pipedrive refused the request for missing rights; the connection is paused.");
                    synclog::record(db, base_entry(Level::Error, "not_authorised", "Pipedrive refused the request (403): the connecting user lacks rights or scopes; writes are paused.".into()).hint("Reconnect with a Pipedrive admin user, or grant the missing scopes."), now).await?;
                }
            }
        }
    }
    Ok(())
}

/// Inbox event states.
pub mod inbox_state {
    pub const PENDING: &str = "pending";
    pub const APPLIED: &str = "applied";
    pub const FAILED: &str = "failed";
    pub const REJECTED: &str = "rejected";
}

/// Applies pending inbox events, oldest first.
pub async fn run_inbox_once(engine: &Engine) -> Result<ExecutionOutcome, SyncError> {
    let db = engine.store.db();
    let events = inbox_event::Entity::find()
        .filter(inbox_event::Column::State.eq(inbox_state::PENDING))
        .order_by_asc(inbox_event::Column::ReceivedAt)
        .order_by_asc(inbox_event::Column::Id)
        .limit(200)
        .all(db)
        .await?;
    if events.is_empty() {
        return Ok(ExecutionOutcome::QueueEmpty);
    }
    let count = events.len();
    for event in events {
        apply_event(engine, event).await?;
    }
    Ok(ExecutionOutcome::Done(count))
}

async fn apply_event(engine: &Engine, event: inbox_event::Model) -> Result<(), SyncError> {
    use sea_orm::{ActiveModelTrait, Set};
    let now = Utc::now();
    // Load before the transaction: on SQLite (one connection) a second acquire inside it would
    // wait for itself.
    let conn = match (event.source.as_str(), event.connection_id) {
        ("pipedrive", Some(connection_id)) => Some(
            connections::load(engine, connection_id)
                .await
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    let txn = engine.store.db().begin().await?;
    let result: Result<Option<(Uuid, ContactEvent)>, String> = match (event.source.as_str(), conn) {
        ("pipedrive", Some(Ok(conn))) => {
            apply_pipedrive_event(&txn, engine, &conn, &event.payload, now).await
        }
        ("pipedrive", Some(Err(error))) => Err(error),
        // The app's own change is not announced back to it.
        ("app", _) => crate::sync::app::apply_event(&txn, engine, &event.payload, now)
            .await
            .map(|_| None),
        _ => Err(format!("unknown event source {}", event.source)),
    };
    let mut model: inbox_event::ActiveModel = event.clone().into();
    model.attempts = Set(event.attempts + 1);
    model.processed_at = Set(Some(now));
    match &result {
        Ok(_) => model.state = Set(inbox_state::APPLIED.into()),
        Err(error) => {
            model.state = Set(inbox_state::FAILED.into());
            model.last_error = Set(Some(error.clone()));
        }
    }
    model.update(&txn).await?;
    if let Err(error) = &result {
        let mut entry = Entry::new(
            Level::Error,
            Direction::Inbound,
            "event_failed",
            "A received event could not be applied.",
        )
        .remote_error(error.clone())
        .hint("Inspect the stored event in the inbox; fix the mapping and resync the person.");
        if let Some(c) = event.connection_id {
            entry = entry.connection(c);
        }
        synclog::record(&txn, entry, now).await?;
    }
    if let Ok(Some((contact_id, kind))) = result {
        crate::sync::app::contact_event(&txn, contact_id, kind, None, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

async fn apply_pipedrive_event<C: sea_orm::ConnectionTrait>(
    txn: &C,
    engine: &Engine,
    conn: &connections::ConnectionCtx,
    payload: &str,
    now: chrono::DateTime<Utc>,
) -> Result<Option<(Uuid, ContactEvent)>, String> {
    let value: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| format!("malformed JSON: {e}"))?;
    let meta = value.get("meta").ok_or("missing meta")?;
    let entity = meta
        .get("entity")
        .and_then(|e| e.as_str())
        .unwrap_or_default();
    let action = meta
        .get("action")
        .and_then(|e| e.as_str())
        .unwrap_or_default();
    if entity != "person" {
        // Deals and activities are tracked for journey actions; nothing to merge.
        return Ok(None);
    }
    let applied = match action {
        "delete" => {
            let id = meta
                .get("entity_id")
                .and_then(|v| {
                    v.as_str()
                        .and_then(|s| s.parse().ok())
                        .or_else(|| v.as_i64())
                })
                .or_else(|| {
                    value
                        .get("previous")
                        .and_then(|p| p.get("id"))
                        .and_then(serde_json::Value::as_i64)
                })
                .ok_or("delete without entity_id")?;
            let merged_into = meta.get("merged_to_id").and_then(|v| {
                v.as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| v.as_i64())
            });
            inbound::person_deleted(txn, engine, conn, id, merged_into, now)
                .await
                .map_err(|e| e.to_string())?
        }
        "create" | "change" => {
            let person: Person =
                serde_json::from_value(value.get("data").cloned().unwrap_or_default())
                    .map_err(|e| format!("person data: {e}"))?;
            inbound::apply_webhook_person_in(txn, engine, conn, &person, now)
                .await
                .map_err(|e| e.to_string())?
        }
        other => return Err(format!("unknown action {other}")),
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
            let next = outbox_job::Entity::find()
                .filter(
                    outbox_job::Column::State.is_in([queue::state::PENDING, queue::state::RUNNING]),
                )
                .filter(
                    outbox_job::Column::ConnectionId.is_in(active_connection_ids(engine).await?),
                )
                .order_by_asc(outbox_job::Column::RunAt)
                .one(engine.store.db())
                .await?;
            let next_job = next.map(|job| {
                job.locked_until
                    .filter(|_| job.state == queue::state::RUNNING)
                    .unwrap_or(job.run_at)
            });
            let next_delivery = crate::sync::app::next_delivery_due(engine).await?;
            let due = match (next_job, next_delivery) {
                (None, None) => return Ok(()),
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
            };
            let wait = (due - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
        }
    }
}

async fn active_connection_ids(engine: &Engine) -> Result<Vec<Uuid>, SyncError> {
    use crate::store::entities::connection;
    Ok(connection::Entity::find()
        .filter(connection::Column::Paused.eq(false))
        .filter(connection::Column::State.is_in([state::CONNECTED, state::SYNCING]))
        .all(engine.store.db())
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// The background loops of `tandem serve`: outbox, inbox, deliveries, poller.
pub fn spawn_workers(
    engine: Engine,
    shutdown: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let e = engine.clone();
    let s = shutdown.clone();
    handles.push(tokio::spawn(async move {
        loop {
            let idle = matches!(
                (
                    run_inbox_once(&e).await,
                    run_outbox_once(&e).await,
                    crate::sync::app::run_deliveries_once(&e).await
                ),
                (
                    Ok(ExecutionOutcome::QueueEmpty),
                    Ok(ExecutionOutcome::QueueEmpty),
                    Ok(false)
                )
            );
            let pause = if idle {
                Duration::from_millis(e.settings.workers.idle_poll_ms)
            } else {
                Duration::ZERO
            };
            tokio::select! {
                () = s.cancelled() => return,
                () = e.wake.notified(), if idle => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }));
    let e = engine;
    handles.push(tokio::spawn(async move {
        let interval = Duration::from_secs(e.settings.workers.poll_interval_secs);
        loop {
            if let Err(error) = super::poller::poll_all(&e).await {
                tracing::warn!(error = %error, "The change-capture poll failed; it will run again.");
            }
            if let Err(error) =
                super::housekeeping::prune(e.store.db(), &e.settings.admin, Utc::now()).await
            {
                tracing::warn!(error = %error, "Pruning old records failed; it will run again.");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }));
    handles
}
