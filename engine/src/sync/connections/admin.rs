//! What the admin console and API (and `tandem connections`) do: connection status with queue
//! counts, dead letters (list, retry, discard with a reason), resync and pause/resume.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tandem_core::ConnectionId;
use tandem_core::ContactId;
use uuid::Uuid;

use crate::queue::{self, JobPayload, Priority};
use crate::store::connections::{self as stored_connections, ConnectionRow};
use crate::store::{queue as jobs, stats};
use crate::sync::connections::{self, state};
use crate::sync::links;
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};

/// A connection as the connection card shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionStatus {
    pub id: ConnectionId,
    /// The CRM (`pipedrive`, `salesforce`, `salesforce_sandbox`).
    pub crm: String,
    pub name: String,
    /// The effective state: the stored one, or `stuck` (connected, writes pending, no
    /// successful sync for longer than `admin.stuck_after_minutes`).
    pub state: String,
    /// The state as a person reads it ("Token expired").
    pub label: String,
    pub auth_kind: String,
    pub api_domain: String,
    pub company_id: Option<i64>,
    /// The connecting user, owner of the persons tandem creates.
    pub user_id: Option<i64>,
    pub paused: bool,
    /// New app contacts in the CRM list are created in this connection.
    pub receives_list: bool,
    /// The tenant (the app's account) whose contacts this connection syncs (ADR 26).
    pub tenant: String,
    /// The CRM field that carries tandem's apId (none: tandem could not create it).
    pub apid_field_key: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Writes waiting (including retries).
    pub pending: u64,
    /// Writes that failed at least once and will be retried.
    pub failed: u64,
    /// Writes that gave up: dead letters.
    pub dead: u64,
    /// Persons applied so far by a running initial sync.
    pub initial_sync_done: Option<u64>,
    pub linked_persons: u64,
    /// The replica that runs the connection's writes and polls, with its lease (none: no
    /// replica has taken it yet, or it is disconnected).
    pub owner: Option<crate::sync::ownership::OwnerView>,
    /// The objects whose webhooks the CRM has paused (Pipedrive's ban after failed deliveries),
    /// as the last check found (`connections::webhooks`).
    pub webhooks_paused: Vec<String>,
    /// The live mirror of every Pipedrive object (issue 20): none until it is first switched on.
    pub mirror: Option<crate::mirror::background::MirrorStatus>,
    pub created_at: DateTime<Utc>,
}

pub fn label(state: &str) -> &'static str {
    match state {
        state::CONNECTED => "Connected",
        state::SYNCING => "Syncing",
        state::TOKEN_EXPIRED => "Token expired",
        state::NOT_AUTHORISED => "Not authorised",
        state::APP_REMOVED => "App removed",
        state::DISCONNECTED => "Disconnected",
        "stuck" => "Stuck",
        _ => "Unknown",
    }
}

/// Every connection, oldest first, with its status.
pub async fn list_connections(engine: &Engine) -> Result<Vec<ConnectionStatus>, SyncError> {
    let rows = stored_connections::list(&engine.store).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(status_of(engine, row).await?);
    }
    Ok(out)
}

pub async fn connection_status(
    engine: &Engine,
    id: ConnectionId,
) -> Result<ConnectionStatus, SyncError> {
    let row = stored_connections::get(&engine.store, id)
        .await?
        .ok_or(SyncError::ConnectionNotFound(id))?;
    status_of(engine, row).await
}

async fn status_of(engine: &Engine, row: ConnectionRow) -> Result<ConnectionStatus, SyncError> {
    let db = &engine.store;
    let counts = queue::counts(db, row.id).await?;
    let failed =
        jobs::count_tried_jobs(db, row.id, &[queue::state::PENDING, queue::state::RUNNING]).await?;
    let linked_persons = stats::count_links(db, row.id).await?;
    let pending = counts.pending + counts.running;
    let stuck_after =
        chrono::Duration::minutes(i64::from(engine.settings.admin.stuck_after_minutes));
    let stale = row
        .last_success_at
        .is_none_or(|at| engine.now() - at > stuck_after);
    let effective = if row.state == state::CONNECTED && !row.paused && pending > 0 && stale {
        "stuck".to_owned()
    } else {
        row.state.clone()
    };
    let initial_sync_done = if row.state == state::SYNCING {
        crate::sync::inbound::poller::initial_sync_progress(engine, row.id).await?
    } else {
        None
    };
    Ok(ConnectionStatus {
        id: row.id,
        crm: row.crm,
        name: row.name,
        label: label(&effective).to_owned(),
        state: effective,
        auth_kind: row.auth_kind,
        api_domain: row.api_domain,
        company_id: row.company_id,
        user_id: row.user_id,
        paused: row.paused,
        receives_list: row.receives_list,
        tenant: row.tenant.to_string(),
        apid_field_key: row.apid_field_key.clone(),
        last_success_at: row.last_success_at,
        last_error: row.last_error,
        token_expires_at: row.token_expires_at,
        pending,
        failed,
        dead: counts.dead,
        initial_sync_done,
        linked_persons,
        webhooks_paused: connections::webhooks::paused(db, row.id)
            .await?
            .into_iter()
            .collect(),
        owner: crate::sync::ownership::owners(engine)
            .await?
            .remove(&row.id),
        mirror: crate::sync::mirror::status(engine, row.id).await?,
        created_at: row.created_at,
    })
}

/// A write that gave up.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: Uuid,
    pub connection_id: ConnectionId,
    pub kind: String,
    pub contact_id: Option<ContactId>,
    pub attempts: i32,
    /// A stable code (`crm_rejected`, …).
    pub last_error: Option<String>,
    /// Pipedrive's status.
    pub last_status: Option<i32>,
    /// Pipedrive's error text, verbatim (from the sync log).
    pub remote_error: Option<String>,
    pub hint: Option<String>,
    pub created_at: DateTime<Utc>,
    pub died_at: DateTime<Utc>,
}

fn payload_contact(payload: &serde_json::Value) -> Option<ContactId> {
    serde_json::from_value::<JobPayload>(payload.clone())
        .ok()
        .map(|p| p.contact_id())
}

/// The connection's dead letters, newest first.
pub async fn dead_letters(
    engine: &Engine,
    connection_id: ConnectionId,
) -> Result<Vec<DeadLetter>, SyncError> {
    let db = &engine.store;
    let rows = jobs::jobs_in_state(db, connection_id, queue::state::DEAD).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let contact_id = payload_contact(&row.payload);
        let entry = match contact_id {
            Some(contact) => {
                synclog::latest_for_contact(db, connection_id, contact, "dead_letter").await?
            }
            None => None,
        };
        out.push(DeadLetter {
            id: row.id,
            connection_id: row.connection_id.into(),
            kind: row.kind,
            contact_id,
            attempts: row.attempts,
            last_error: row.last_error,
            last_status: row.last_status,
            remote_error: entry.as_ref().and_then(|e| e.remote_error.clone()),
            hint: entry.and_then(|e| e.hint),
            created_at: row.created_at,
            died_at: row.updated_at,
        });
    }
    Ok(out)
}

/// Puts one dead letter (or all of the connection's) back in the queue; returns how many.
pub async fn retry_dead_letters(
    engine: &Engine,
    connection_id: ConnectionId,
    job_id: Option<Uuid>,
) -> Result<u64, SyncError> {
    let db = &engine.store;
    let now = engine.now();
    // What the CRM refused is sent again: of the dead letter's contact, or of every contact.
    let contact = match job_id {
        Some(id) => queue::contact_of(db, id).await?,
        None => None,
    };
    links::forget_refused(db, connection_id, contact).await?;
    let revived = queue::revive(db, connection_id, job_id, now).await?;
    if job_id.is_some() && revived == 0 {
        return Err(SyncError::Invalid(format!(
            "job {} is not a dead letter of this connection",
            job_id.unwrap_or_default()
        )));
    }
    synclog::record(
        db,
        Entry::new(
            Level::Info,
            Direction::Outbound,
            "dead_letter_retried",
            format!("The admin retried {revived} dead letter(s)."),
        )
        .connection(connection_id)
        .detail(serde_json::json!({ "job_id": job_id })),
        now,
    )
    .await?;
    Ok(revived)
}

/// Deletes a dead letter, writing the admin's reason to the sync log.
pub async fn discard_dead_letter(
    engine: &Engine,
    connection_id: ConnectionId,
    job_id: Uuid,
    reason: &str,
) -> Result<(), SyncError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(SyncError::Invalid(
            "a reason is required to discard a dead letter".into(),
        ));
    }
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let row = jobs::job_in_state(&txn, job_id, connection_id, queue::state::DEAD)
        .await?
        .ok_or_else(|| {
            SyncError::Invalid(format!(
                "job {job_id} is not a dead letter of this connection"
            ))
        })?;
    jobs::delete_job(&txn, job_id).await?;
    let mut entry = Entry::new(
        Level::Info,
        Direction::Outbound,
        "dead_letter_discarded",
        format!("The admin discarded a dead letter: {reason}"),
    )
    .connection(connection_id)
    .detail(serde_json::json!({
        "job_id": job_id, "kind": row.kind, "last_error": row.last_error,
        "last_status": row.last_status, "reason": reason,
    }));
    if let Some(contact) = payload_contact(&row.payload) {
        entry = entry.contact(contact);
    }
    synclog::record(&txn, entry, now).await?;
    txn.commit().await?;
    Ok(())
}

/// What "Resync now" did.
#[derive(Debug, Clone, Serialize)]
pub struct Resynced {
    /// Contacts changed by re-reading Pipedrive.
    pub pulled: usize,
    /// Pushes queued.
    pub queued: u64,
}

/// "Resync now": one contact (re-read its person, merge, queue a push) or all (poll Pipedrive
/// now and queue a push for every linked contact; pushes that find nothing to write are free).
pub async fn resync(
    engine: &Engine,
    connection_id: ConnectionId,
    contact_id: Option<ContactId>,
) -> Result<Resynced, SyncError> {
    let conn = connections::load(engine, connection_id).await?;
    if !matches!(conn.state.as_str(), state::CONNECTED | state::SYNCING) {
        return Err(SyncError::Invalid(format!(
            "the connection is {}; reconnect it first",
            label(&conn.state)
        )));
    }
    let db = &engine.store;
    match contact_id {
        Some(contact) => {
            crate::sync::app::contacts::load(db, contact)
                .await?
                .ok_or(SyncError::ContactNotFound(contact))?;
            let mut pulled = 0;
            if let Some(link) = crate::sync::links::by_contact(db, connection_id, contact).await? {
                let person = match conn
                    .crm
                    .get_person(&conn.session, &conn.map, link.person_id)
                    .await
                {
                    Ok(person) => Some(person),
                    Err(error) if error.kind == tandem_core::CrmErrorKind::NotFound => None,
                    Err(error) => {
                        super::tokens::on_auth_error(engine, &conn, &error).await?;
                        return Err(error.into());
                    }
                };
                if let Some(person) = person {
                    let applied =
                        crate::sync::inbound::apply_person(engine, &conn, &person).await?;
                    pulled = usize::from(applied.changed_contact().is_some());
                }
            }
            let now = engine.now();
            let txn = engine.store.begin().await?;
            let queued =
                crate::sync::app::local::queue_push_if_in_scope(&txn, contact, false, now).await?;
            txn.commit().await?;
            Ok(Resynced {
                pulled,
                queued: u64::from(queued),
            })
        }
        None => {
            // Check the credentials first, so a dead token shows at once (even before the
            // initial sync, when the poll has nothing to do).
            let conn = match conn.crm.whoami(&conn.session).await {
                Ok(_) => conn,
                Err(error) => {
                    if super::tokens::on_auth_error(engine, &conn, &error).await? {
                        connections::load(engine, connection_id).await?
                    } else {
                        return Err(error.into());
                    }
                }
            };
            let pulled = crate::sync::inbound::poller::poll_checked(engine, conn).await?;
            let now = engine.now();
            let contacts = links::contact_ids(db, connection_id).await?;
            let txn = engine.store.begin().await?;
            let mut queued = 0;
            for contact_id in contacts {
                if queue::enqueue(
                    &txn,
                    connection_id,
                    &contact_id.to_string(),
                    Priority::Background,
                    &JobPayload::PushContact {
                        contact_id: contact_id.into(),
                    },
                    now,
                )
                .await?
                {
                    queued += 1;
                }
            }
            synclog::record(
                &txn,
                Entry::new(
                    Level::Info,
                    Direction::Connection,
                    "resync",
                    format!("Resync now: {pulled} contact(s) updated from Pipedrive, {queued} push(es) queued."),
                )
                .connection(connection_id),
                now,
            )
            .await?;
            txn.commit().await?;
            Ok(Resynced { pulled, queued })
        }
    }
}

/// Pause (writes and polls stop; webhooks are still received and queued) or resume.
pub async fn set_paused(
    engine: &Engine,
    connection_id: ConnectionId,
    paused: bool,
) -> Result<(), SyncError> {
    let db = &engine.store;
    stored_connections::get(db, connection_id)
        .await?
        .ok_or(SyncError::ConnectionNotFound(connection_id))?;
    let now = engine.now();
    connections::set_paused(db, connection_id, paused, now).await?;
    synclog::record(
        db,
        Entry::new(
            Level::Info,
            Direction::Connection,
            if paused { "paused" } else { "resumed" },
            if paused {
                "The admin paused syncing."
            } else {
                "The admin resumed syncing."
            },
        )
        .connection(connection_id),
        now,
    )
    .await?;
    Ok(())
}

/// Forgets the initial sync's progress so the next run pulls every person again.
pub async fn restart_initial_sync(
    engine: &Engine,
    connection_id: ConnectionId,
) -> Result<(), SyncError> {
    connections::load(engine, connection_id).await?;
    crate::sync::inbound::poller::reset_initial_sync(engine, connection_id).await
}
