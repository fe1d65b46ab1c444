//! E-mails the app sends and receives, logged in the CRM where Pipedrive itself would link
//! them (issue 23). A request is idempotent on its `message_id`; the links are decided at once
//! by the core (`tandem_core::email_links`) from what tandem knows: the participants' linked
//! persons and, from the live mirror, their open deals and leads with their creation times;
//! the write goes through the outbox below contact sync and journey actions.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tandem_core::email_links::{self, EmailFacts, Item, KnownItem, NoItem, Participant};
use tandem_core::{ContactId, PersonId};
use uuid::Uuid;

use crate::crm::LoggedEmail;
use crate::queue::{self, Job, JobPayload, Priority};
use crate::store::emails::{self as stored, EmailRow};
use crate::store::Constraint;
use crate::sync::app::contacts;
use crate::sync::connections::{self, ConnectionCtx};
use crate::sync::links;
use crate::sync::outbound::CrmFailure;
use crate::sync::{Engine, SyncError};

/// E-mail states.
pub mod state {
    /// Decided, waiting for its write to the CRM.
    pub const QUEUED: &str = "queued";
    /// On the CRM's timeline.
    pub const LOGGED: &str = "logged";
    /// The CRM refused it for good (its text in `error`).
    pub const FAILED: &str = "failed";
    /// No participant is a CRM person: nothing is written.
    pub const NO_PERSON: &str = "no_person";
}

/// An e-mail as the app sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailIn {
    pub message_id: String,
    /// `sent` (by the app to contacts) or `received` (from a contact).
    pub direction: String,
    pub from: String,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub subject: String,
    pub sent_at: DateTime<Utc>,
    #[serde(default)]
    pub snippet: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub campaign: Option<String>,
    #[serde(default)]
    pub journey: Option<String>,
    #[serde(default)]
    pub thread_id: Option<String>,
    #[serde(default)]
    pub in_reply_to: Option<String>,
}

/// Why an e-mail was refused.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the message_id was already logged with a different e-mail")]
    KeyReused,
    #[error("no CRM connection is active")]
    NotConnected,
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<crate::store::StoreError> for EmailError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Sync(error.into())
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> EmailError {
    EmailError::Invalid {
        field,
        message: message.into(),
    }
}

fn item_text(item: &Item) -> String {
    match item {
        Item::Deal(id) => format!("deal:{id}"),
        Item::Lead(id) => format!("lead:{id}"),
    }
}

fn item_of(text: &str) -> Option<Item> {
    match text.split_once(':')? {
        ("deal", id) => id.parse().ok().map(Item::Deal),
        ("lead", id) => Some(Item::Lead(id.to_owned())),
        _ => None,
    }
}

fn millis_of(text: Option<&str>) -> Option<i64> {
    let text = text?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
        })
}

/// The person's open items from the mirror (none when the mirror is off: only persons are
/// linked then).
async fn items_of(
    engine: &Engine,
    mirror: bool,
    person: PersonId,
) -> Result<Vec<KnownItem>, SyncError> {
    if !mirror {
        return Ok(Vec::new());
    }
    let db = crate::store::mirror::MirrorDb::in_store(&engine.store);
    let records = crate::mirror::conditions::of_person(&db, person).await?;
    let created =
        |r: &Value| millis_of(r.get("add_time").and_then(Value::as_str)).unwrap_or(i64::MAX);
    let mut items = Vec::new();
    for deal in &records.deals {
        if let Some(id) = deal.get("id").and_then(Value::as_i64) {
            items.push(KnownItem {
                item: Item::Deal(id),
                created_at_ms: created(deal),
                open: deal.get("status").and_then(Value::as_str) == Some("open"),
            });
        }
    }
    for lead in &records.leads {
        if let Some(id) = lead.get("id").and_then(Value::as_str) {
            items.push(KnownItem {
                item: Item::Lead(id.to_owned()),
                created_at_ms: created(lead),
                open: lead.get("is_archived").and_then(Value::as_bool) != Some(true),
            });
        }
    }
    Ok(items)
}

/// The e-mail's participants on the CRM side: recipients of sent mail, the sender of received
/// mail; each with its linked person and that person's items.
async fn participants(
    engine: &Engine,
    conn: &ConnectionCtx,
    email: &EmailIn,
) -> Result<(Vec<Participant>, Vec<ContactId>), SyncError> {
    let addresses: Vec<&String> = if email.direction == "received" {
        std::iter::once(&email.from).collect()
    } else {
        email.to.iter().chain(&email.cc).collect()
    };
    let mirror = crate::store::mirror::mirror_enabled(&engine.store, conn.id).await?;
    let mut out = Vec::new();
    let mut contact_ids = Vec::new();
    for address in addresses {
        let Ok(parsed) = tandem_core::EmailAddress::parse(address) else {
            continue;
        };
        let mut person = None;
        for contact in contacts::ids_by_email(&engine.store, parsed.as_str()).await? {
            if let Some(link) = links::by_contact(&engine.store, conn.id, contact).await? {
                person = Some(link.person_id);
                contact_ids.push(contact);
                break;
            }
        }
        let items = match person {
            Some(p) => items_of(engine, mirror, p).await?,
            None => Vec::new(),
        };
        out.push(Participant {
            person: person.map(PersonId::get),
            items,
        });
    }
    Ok((out, contact_ids))
}

/// Validates, decides and queues an e-mail; a replayed `message_id` with the same e-mail
/// returns the first record (`true`).
pub async fn submit(engine: &Engine, raw: &Value) -> Result<(EmailRow, bool), EmailError> {
    let email: EmailIn =
        serde_json::from_value(raw.clone()).map_err(|e| invalid("body", e.to_string()))?;
    if email.message_id.trim().is_empty() {
        return Err(invalid("message_id", "must not be empty"));
    }
    if !["sent", "received"].contains(&email.direction.as_str()) {
        return Err(invalid("direction", "must be `sent` or `received`"));
    }
    if email.direction == "sent" && email.to.is_empty() {
        return Err(invalid("to", "a sent e-mail needs at least one recipient"));
    }
    let hash: String = Sha256::digest(raw.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(existing) = stored::by_message_id(&engine.store, &email.message_id).await? {
        return replay(existing, &hash);
    }
    let connection = connections::active_id(&engine.store)
        .await?
        .ok_or(EmailError::NotConnected)?;
    let conn = connections::load(engine, connection).await?;
    let (participants, contact_ids) = participants(engine, &conn, &email).await?;
    let thread_key = match (&email.thread_id, &email.in_reply_to) {
        (Some(thread), _) => thread.clone(),
        (None, Some(parent)) => stored::by_message_id(&engine.store, parent)
            .await?
            .map_or_else(|| parent.clone(), |p| p.thread_key),
        (None, None) => email.message_id.clone(),
    };
    let thread_item = stored::thread_item(&engine.store, &thread_key, email.sent_at)
        .await?
        .as_deref()
        .and_then(item_of);
    let links = email_links::decide(&EmailFacts {
        at_ms: email.sent_at.timestamp_millis(),
        participants,
        thread_item,
    });
    let (item, candidates) = match &links.item {
        Ok(item) => (Some(item_text(item)), None),
        Err(NoItem::NoOpenItem) => (None, None),
        Err(NoItem::Ambiguous(items)) => (
            None,
            Some(json!(items.iter().map(item_text).collect::<Vec<_>>())),
        ),
    };
    let now = engine.now();
    let row = EmailRow {
        id: Uuid::now_v7(),
        message_id: email.message_id.clone(),
        request_hash: hash.clone(),
        connection_id: Some(conn.id.uuid()),
        thread_key,
        email: raw.clone(),
        state: if links.persons.is_empty() {
            state::NO_PERSON
        } else {
            state::QUEUED
        }
        .to_owned(),
        persons: json!(links.persons),
        item,
        candidates,
        activity_id: None,
        error: None,
        sent_at: email.sent_at,
        created_at: now,
        updated_at: now,
    };
    let txn = engine.store.begin().await?;
    match stored::insert(&txn, row.clone()).await {
        Ok(()) => {}
        Err(error) if error.is_conflict_on(Constraint::EmailLogMessageId) => {
            txn.rollback().await?;
            let existing = stored::by_message_id(&engine.store, &email.message_id)
                .await?
                .ok_or(EmailError::KeyReused)?;
            return replay(existing, &hash);
        }
        Err(error) => return Err(error.into()),
    }
    if let (true, Some(contact)) = (row.state == state::QUEUED, contact_ids.first()) {
        queue::enqueue(
            &txn,
            conn.id,
            &format!("email:{}", row.id),
            Priority::Background,
            &JobPayload::LogEmail {
                email_id: row.id,
                contact_id: (*contact),
            },
            now,
        )
        .await
        .map_err(SyncError::from)?;
    }
    txn.commit().await?;
    let stored = stored::get(&engine.store, row.id)
        .await?
        .ok_or(EmailError::KeyReused)?;
    Ok((stored, false))
}

fn replay(existing: EmailRow, hash: &str) -> Result<(EmailRow, bool), EmailError> {
    if existing.request_hash != hash {
        return Err(EmailError::KeyReused);
    }
    Ok((existing, true))
}

/// The e-mail logged under `message_id`.
pub async fn get(engine: &Engine, message_id: &str) -> Result<Option<EmailRow>, SyncError> {
    Ok(stored::by_message_id(&engine.store, message_id).await?)
}

/// Writes a queued e-mail to the CRM (called by the outbox worker).
pub async fn execute(
    engine: &Engine,
    conn: &ConnectionCtx,
    _job: &Job,
    email_id: Uuid,
) -> Result<(), CrmFailure> {
    let Some(row) = stored::get(&engine.store, email_id).await? else {
        return Ok(());
    };
    if row.state != state::QUEUED {
        return Ok(());
    }
    let email: EmailIn = serde_json::from_value(row.email.clone())
        .map_err(|e| SyncError::Corrupt(format!("e-mail {email_id}: {e}")))?;
    let persons: Vec<PersonId> = serde_json::from_value(row.persons.clone()).unwrap_or_default();
    let item = row.item.as_deref().and_then(item_of);
    let mut note = String::new();
    if let Some(snippet) = &email.snippet {
        note.push_str(snippet);
        note.push_str("\n\n");
    }
    note.push_str(&format!(
        "From: {}\nTo: {}",
        email.from,
        email.to.join(", ")
    ));
    if !email.cc.is_empty() {
        note.push_str(&format!("\nCc: {}", email.cc.join(", ")));
    }
    if let Some(campaign) = &email.campaign {
        note.push_str(&format!("\nCampaign: {campaign}"));
    }
    let date = email.sent_at.format("%Y-%m-%d").to_string();
    let time = email.sent_at.format("%H:%M").to_string();
    let logged = LoggedEmail {
        subject: &email.subject,
        note: &note,
        date: &date,
        time: &time,
        persons: &persons,
        deal_id: match &item {
            Some(Item::Deal(id)) => Some(*id),
            _ => None,
        },
        lead_id: match &item {
            Some(Item::Lead(id)) => Some(id.as_str()),
            _ => None,
        },
    };
    let activity = conn
        .crm
        .log_email(&conn.session, &logged)
        .await
        .map_err(|e| CrmFailure::Crm(e, persons.first().copied()))?;
    stored::finish(
        &engine.store,
        email_id,
        state::LOGGED,
        Some(activity),
        None,
        engine.now(),
    )
    .await?;
    Ok(())
}

/// Marks an e-mail failed when its job became a dead letter (the CRM's text verbatim).
pub async fn mark_failed(
    engine: &Engine,
    email_id: Uuid,
    error: &tandem_core::CrmError,
) -> Result<(), SyncError> {
    stored::finish(
        &engine.store,
        email_id,
        state::FAILED,
        None,
        Some(&error.message),
        engine.now(),
    )
    .await?;
    Ok(())
}

/// The API's view of an e-mail: where it was logged, or why not.
pub fn view(row: &EmailRow) -> Value {
    let waiting_manual = row.candidates.is_some();
    json!({
        "message_id": row.message_id,
        "state": row.state,
        "persons": row.persons,
        "item": row.item,
        "waiting_for_manual_link": waiting_manual,
        "candidates": row.candidates,
        "activity_id": row.activity_id,
        "error": row.error,
        "thread": row.thread_key,
        "sent_at": row.sent_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "why": match (row.state.as_str(), &row.item, waiting_manual) {
            (state::NO_PERSON, _, _) => "no participant is a linked Pipedrive person; nothing was logged",
            (_, Some(_), _) => "linked to the single open deal or lead of its participants (or its thread's item)",
            (_, None, true) => "several open deals or leads could take it: linked to the persons only, waiting for a manual link",
            (_, None, false) => "no open deal or lead existed when it was sent: linked to the persons only",
        },
    })
}
