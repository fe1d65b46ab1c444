//! E-mails the app sends and receives, logged in the CRM where Pipedrive itself would link
//! them (issue 23). A request is idempotent on its `message_id`; the links are decided at once
//! by the core (`tandem_core::email_links`) from what tandem knows: the participants' linked
//! persons and, from the live mirror, their open deals and leads with their creation times;
//! the write goes through the outbox below contact sync and journey actions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tandem_core::email_links::{self, EmailFacts, Item, KnownItem, Links, NoItem, Participant};
use tandem_core::{
    ConnectionId, ContactId, FieldKey, FieldValue, LabeledValue, PersonId, TenantId,
};
use uuid::Uuid;

use crate::crm::LoggedEmail;
use crate::queue::{self, Job, JobPayload, Priority};
pub use crate::store::emails::EmailSettings;
use crate::store::emails::{self as stored, EmailRow};
use crate::store::{Conn, Constraint};
use crate::sync::app::contacts;
use crate::sync::connections::ConnectionCtx;
use crate::sync::links;
use crate::sync::outbound::CrmFailure;
use crate::sync::{Engine, SyncError};

/// The most e-mails one batch request may carry.
pub const MAX_BATCH: usize = 500;

/// The CRM record kinds that hold an e-mail (`email_log.record_kind`).
pub mod record_kind {
    pub const ACTIVITY: &str = "activity";
    pub const NOTE: &str = "note";
}

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
    /// Its write to the CRM started (write-ahead): if tandem died before the answer was
    /// stored, the next attempt looks for the record before creating one.
    pub const WRITING: &str = "writing";
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
    /// The connection to log it in; without it, the one that links the participants (see
    /// `connections::route`).
    #[serde(default)]
    pub connection_id: Option<ConnectionId>,
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
    /// No connection to log it in: the named one is unknown or disconnected, the
    /// participants are linked in several, or none is active.
    #[error(transparent)]
    Route(#[from] crate::sync::connections::route::RouteError),
    #[error("no e-mail with this message_id")]
    NotFound,
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

/// The e-mail's participants on the CRM side, as the core needs them, with the contacts that
/// are their persons and the addresses that have no person.
struct Resolved {
    participants: Vec<Participant>,
    contacts: Vec<ContactId>,
    unknown: Vec<String>,
}

/// Recipients of sent mail, the sender of received mail.
fn addresses_of(email: &EmailIn) -> Vec<&String> {
    if email.direction == "received" {
        std::iter::once(&email.from).collect()
    } else {
        email.to.iter().chain(&email.cc).collect()
    }
}

/// Each participant's address (those that parse, in order) with the app contacts that have it.
async fn participants_of(
    engine: &Engine,
    tenant: &TenantId,
    email: &EmailIn,
) -> Result<Vec<(String, Vec<ContactId>)>, SyncError> {
    let mut out = Vec::new();
    for address in addresses_of(email) {
        if let Ok(parsed) = tandem_core::EmailAddress::parse(address) {
            let contacts = contacts::ids_by_email(&engine.store, tenant, parsed.as_str()).await?;
            out.push((parsed.as_str().to_owned(), contacts));
        }
    }
    Ok(out)
}

/// Each participant ([`participants_of`]) with its linked person and that person's items.
async fn resolve(
    engine: &Engine,
    conn: ConnectionId,
    participants: &[(String, Vec<ContactId>)],
) -> Result<Resolved, SyncError> {
    let mirror = crate::store::mirror::mirror_enabled(&engine.store, conn).await?;
    let mut out = Resolved {
        participants: Vec::new(),
        contacts: Vec::new(),
        unknown: Vec::new(),
    };
    for (address, candidates) in participants {
        let mut person = None;
        for &contact in candidates {
            if let Some(link) = links::by_contact(&engine.store, conn, contact).await? {
                person = Some(link.person_id);
                out.contacts.push(contact);
                break;
            }
        }
        let items = match person {
            Some(p) => items_of(engine, mirror, p).await?,
            None => {
                out.unknown.push(address.clone());
                Vec::new()
            }
        };
        out.participants.push(Participant {
            person: person.map(PersonId::get),
            items,
        });
    }
    Ok(out)
}

/// The thread an e-mail belongs to: its `thread_id`, else its parent's thread, else itself.
async fn thread_key_of(
    engine: &Engine,
    tenant: &TenantId,
    email: &EmailIn,
) -> Result<String, SyncError> {
    Ok(match (&email.thread_id, &email.in_reply_to) {
        (Some(thread), _) => thread.clone(),
        (None, Some(parent)) => stored::by_message_id(&engine.store, tenant, parent)
            .await?
            .map_or_else(|| parent.clone(), |p| p.thread_key),
        (None, None) => email.message_id.clone(),
    })
}

/// The core's decision, as stored: the item and the candidates for a manual link.
fn stored_links(links: &Links) -> (Option<String>, Option<Value>) {
    match &links.item {
        Ok(item) => (Some(item_text(item)), None),
        Err(NoItem::NoOpenItem) => (None, None),
        Err(NoItem::Ambiguous(items)) => (
            None,
            Some(json!(items.iter().map(item_text).collect::<Vec<_>>())),
        ),
    }
}

fn parse_email(raw: &Value) -> Result<EmailIn, EmailError> {
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
    Ok(email)
}

/// The ordering key all jobs of an e-mail share: the first new contact's (its push creates the
/// person the e-mail waits for), else the e-mail's own.
fn job_key(row: &EmailRow) -> String {
    row.waiting_addresses
        .as_ref()
        .and_then(|w| w.get("key"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("email:{}", row.id), str::to_owned)
}

/// Validates, decides and queues an e-mail; a replayed `message_id` with the same e-mail
/// returns the first record (`true`).
pub async fn submit(
    engine: &Engine,
    tenant: &TenantId,
    raw: &Value,
) -> Result<(EmailRow, bool), EmailError> {
    let email = parse_email(raw)?;
    let hash: String = Sha256::digest(raw.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if let Some(existing) = stored::by_message_id(&engine.store, tenant, &email.message_id).await? {
        return replay(existing, &hash);
    }
    let participants = participants_of(engine, tenant, &email).await?;
    let connection = route(engine, tenant, &email, &participants).await?;
    let settings = stored::settings(&engine.store, connection.uuid()).await?;
    let resolved = resolve(engine, connection, &participants).await?;
    let thread_key = thread_key_of(engine, tenant, &email).await?;
    let thread_item = stored::thread_item(&engine.store, tenant, &thread_key, email.sent_at)
        .await?
        .as_deref()
        .and_then(item_of);
    let links = email_links::decide(&EmailFacts {
        at_ms: email.sent_at.timestamp_millis(),
        participants: resolved.participants,
        thread_item,
    });
    let (item, candidates) = stored_links(&links);
    let create_persons = settings.create_persons && !resolved.unknown.is_empty();
    let now = engine.now();
    let mut row = EmailRow {
        id: Uuid::now_v7(),
        message_id: email.message_id.clone(),
        request_hash: hash.clone(),
        connection_id: Some(connection.uuid()),
        thread_key,
        email: raw.clone(),
        state: if links.persons.is_empty() && !create_persons {
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
        events: None,
        record_kind: if settings.record_as == record_kind::NOTE {
            record_kind::NOTE
        } else {
            record_kind::ACTIVITY
        }
        .to_owned(),
        waiting_addresses: None,
        relink: false,
        tenant: tenant.clone(),
    };
    let txn = engine.store.begin().await?;
    let mut job_contact = resolved.contacts.first().copied();
    if create_persons {
        // The usual create rules and owner: each address becomes (or joins) an app contact
        // in the Pipedrive list, whose push links or creates its person; the e-mail's jobs
        // run after the first one's push (same ordering key).
        let mut first = None;
        for address in &resolved.unknown {
            let fields = BTreeMap::from([(
                FieldKey::new(tandem_core::keys::EMAIL)
                    .map_err(|e| invalid("to", e.to_string()))?,
                FieldValue::Emails(vec![LabeledValue::new(address.clone(), None, true)]),
            )]);
            let upserted =
                crate::sync::app::local::create_contact_in(&txn, tenant, fields, true, now).await?;
            // The list's push goes to every connection the list reaches; the e-mail waits for a
            // person in its own connection (coalesced when they are the same).
            queue::enqueue(
                &txn,
                connection,
                &upserted.contact_id.to_string(),
                Priority::Edit,
                &JobPayload::PushContact {
                    contact_id: upserted.contact_id,
                },
                now,
            )
            .await
            .map_err(SyncError::from)?;
            first.get_or_insert(upserted.contact_id);
        }
        if let Some(first) = first {
            row.waiting_addresses = Some(json!({
                "addresses": resolved.unknown,
                "key": first.to_string(),
            }));
            job_contact = job_contact.or(Some(first));
        }
    }
    match stored::insert(&txn, row.clone()).await {
        Ok(()) => {}
        Err(error) if error.is_conflict_on(Constraint::EmailLogMessageId) => {
            txn.rollback().await?;
            let existing = stored::by_message_id(&engine.store, tenant, &email.message_id)
                .await?
                .ok_or(EmailError::KeyReused)?;
            return replay(existing, &hash);
        }
        Err(error) => return Err(error.into()),
    }
    if let (true, Some(contact)) = (row.state == state::QUEUED, job_contact) {
        queue::enqueue(
            &txn,
            connection,
            &job_key(&row),
            Priority::Background,
            &JobPayload::LogEmail {
                email_id: row.id,
                contact_id: contact,
            },
            now,
        )
        .await
        .map_err(SyncError::from)?;
    }
    txn.commit().await?;
    engine.wake.notify_one();
    let stored = stored::get(&engine.store, row.id)
        .await?
        .ok_or(EmailError::KeyReused)?;
    Ok((stored, false))
}

/// The connection an e-mail is logged in: the one it names, else the one that links its
/// participants' contacts, else the oldest active one (`connections::route`).
async fn route(
    engine: &Engine,
    tenant: &TenantId,
    email: &EmailIn,
    participants: &[(String, Vec<ContactId>)],
) -> Result<ConnectionId, EmailError> {
    use crate::sync::connections::route;
    let db = &engine.store;
    if let Some(id) = email.connection_id {
        return Ok(route::named(db, tenant, id).await?);
    }
    route::require_active(db, tenant).await?;
    let contacts: Vec<ContactId> = participants
        .iter()
        .flat_map(|(_, contacts)| contacts.iter().copied())
        .collect();
    Ok(route::for_contacts(db, tenant, &contacts, "the e-mail's participants are").await?)
}

/// [`submit`] for each e-mail of a batch, in order; one result per e-mail.
pub async fn submit_batch(
    engine: &Engine,
    tenant: &TenantId,
    raws: &[Value],
) -> Vec<Result<(EmailRow, bool), EmailError>> {
    let mut out = Vec::with_capacity(raws.len());
    for raw in raws {
        out.push(submit(engine, tenant, raw).await);
    }
    out
}

fn replay(existing: EmailRow, hash: &str) -> Result<(EmailRow, bool), EmailError> {
    if existing.request_hash != hash {
        return Err(EmailError::KeyReused);
    }
    Ok((existing, true))
}

/// The e-mail `tenant` logged under `message_id`: another tenant's is not there, even under
/// the same `message_id`.
pub async fn get_for(
    engine: &Engine,
    tenant: &TenantId,
    message_id: &str,
) -> Result<Option<EmailRow>, SyncError> {
    Ok(stored::by_message_id(&engine.store, tenant, message_id).await?)
}

/// What happened to a logged e-mail, as the app reports it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailEventIn {
    /// `opened`, `clicked`, `bounced` or `replied`.
    #[serde(rename = "type")]
    pub kind: String,
    pub at: DateTime<Utc>,
    /// The link clicked.
    #[serde(default)]
    pub url: Option<String>,
    /// The reply's message id.
    #[serde(default)]
    pub reply_message_id: Option<String>,
    /// The app's id of the event: a repeated one is counted once.
    #[serde(default)]
    pub event_id: Option<String>,
}

const EVENT_KINDS: [&str; 4] = ["opened", "clicked", "bounced", "replied"];
/// How many event ids are remembered per e-mail (for deduplication), and click URLs kept.
const KEPT_EVENT_IDS: usize = 100;
const KEPT_URLS: usize = 10;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Folds one event into an e-mail's events; `false` when it was seen already.
fn fold_event(events: &mut Value, event: &EmailEventIn) -> bool {
    if !events.is_object() {
        *events = json!({});
    }
    if let Some(id) = &event.event_id {
        let seen = events
            .get("seen_event_ids")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if seen.iter().any(|s| s.as_str() == Some(id)) {
            return false;
        }
        let mut seen: Vec<Value> = seen;
        seen.push(json!(id));
        if seen.len() > KEPT_EVENT_IDS {
            seen.remove(0);
        }
        events["seen_event_ids"] = Value::Array(seen);
    }
    let at = rfc3339(event.at);
    let entry = &mut events[event.kind.as_str()];
    if !entry.is_object() {
        *entry = json!({ "count": 0, "first_at": at, "last_at": at });
    }
    entry["count"] = json!(entry["count"].as_u64().unwrap_or(0) + 1);
    if entry["first_at"].as_str().is_some_and(|f| at.as_str() < f) {
        entry["first_at"] = json!(at);
    }
    if entry["last_at"].as_str().is_none_or(|l| at.as_str() > l) {
        entry["last_at"] = json!(at);
    }
    if let Some(url) = &event.url {
        let urls = entry["urls"].as_array().cloned().unwrap_or_default();
        if urls.len() < KEPT_URLS && !urls.iter().any(|u| u.as_str() == Some(url)) {
            let mut urls = urls;
            urls.push(json!(url));
            entry["urls"] = Value::Array(urls);
        }
    }
    if let Some(reply) = &event.reply_message_id {
        entry["reply_message_id"] = json!(reply);
    }
    true
}

/// Records an event of a logged e-mail and queues one (coalesced) update of its CRM record.
/// Returns the e-mail as it is now and whether the event was new.
pub async fn record_event(
    engine: &Engine,
    tenant: &TenantId,
    message_id: &str,
    raw: &Value,
) -> Result<(EmailRow, bool), EmailError> {
    let event: EmailEventIn =
        serde_json::from_value(raw.clone()).map_err(|e| invalid("body", e.to_string()))?;
    if !EVENT_KINDS.contains(&event.kind.as_str()) {
        return Err(invalid(
            "type",
            "must be `opened`, `clicked`, `bounced` or `replied`",
        ));
    }
    let found = stored::by_message_id(&engine.store, tenant, message_id)
        .await?
        .ok_or(EmailError::NotFound)?;
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let row = stored::get_for_update(&txn, found.id)
        .await?
        .ok_or(EmailError::NotFound)?;
    let mut events = row.events.clone().unwrap_or_else(|| json!({}));
    let new = fold_event(&mut events, &event);
    if new {
        stored::set_events(&txn, row.id, &events, now).await?;
        queue_update(&txn, &row, Priority::Background, now).await?;
    }
    txn.commit().await?;
    engine.wake.notify_one();
    let row = stored::get(&engine.store, row.id)
        .await?
        .ok_or(EmailError::NotFound)?;
    Ok((row, new))
}

/// Queues an update of the e-mail's CRM record, unless nothing was written yet and its write
/// (which reads the latest state when it runs) still waits, or nothing will be written.
async fn queue_update(
    txn: &impl Conn,
    row: &EmailRow,
    priority: Priority,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let Some(connection) = row.connection_id.map(ConnectionId::from) else {
        return Ok(());
    };
    if ![state::QUEUED, state::WRITING, state::LOGGED].contains(&row.state.as_str()) {
        return Ok(());
    }
    let key = job_key(row);
    if row.state == state::QUEUED && queue::is_pending(txn, connection, &key, "log_email").await? {
        return Ok(());
    }
    let persons: Vec<PersonId> = serde_json::from_value(row.persons.clone()).unwrap_or_default();
    let mut contact = None;
    for person in persons {
        if let Some(link) = links::by_person(txn, connection, person).await? {
            contact = Some(link.contact_id);
            break;
        }
    }
    let Some(contact) = contact else {
        return Ok(());
    };
    queue::enqueue(
        txn,
        connection,
        &key,
        priority,
        &JobPayload::UpdateEmail {
            email_id: row.id,
            contact_id: contact,
        },
        now,
    )
    .await?;
    Ok(())
}

/// An e-mail waiting for a manual link, with its candidates described from the mirror.
#[derive(Debug, Clone)]
pub struct ManualLink {
    pub email: EmailRow,
    pub subject: String,
    pub candidates: Vec<Candidate>,
}

/// A deal or lead that could take an e-mail.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Candidate {
    /// `deal:<id>` or `lead:<id>`.
    pub item: String,
    /// Its title, when the mirror has it.
    pub title: Option<String>,
}

/// The e-mails of a connection waiting for a manual link (newest first, at most `limit`).
pub async fn waiting_for_manual_link(
    engine: &Engine,
    connection: ConnectionId,
    limit: u64,
) -> Result<Vec<ManualLink>, SyncError> {
    let rows = stored::waiting_for_manual_link(&engine.store, connection.uuid(), limit).await?;
    let db = crate::store::mirror::MirrorDb::in_store(&engine.store);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut titles = BTreeMap::new();
        let persons: Vec<PersonId> =
            serde_json::from_value(row.persons.clone()).unwrap_or_default();
        for person in persons {
            let records = crate::mirror::conditions::of_person(&db, person).await?;
            for (prefix, record) in records
                .deals
                .iter()
                .map(|d| ("deal", d))
                .chain(records.leads.iter().map(|l| ("lead", l)))
            {
                let id = match record.get("id") {
                    Some(Value::Number(n)) => n.to_string(),
                    Some(Value::String(s)) => s.clone(),
                    _ => continue,
                };
                if let Some(title) = record.get("title").and_then(Value::as_str) {
                    titles.insert(format!("{prefix}:{id}"), title.to_owned());
                }
            }
        }
        let candidates = row
            .candidates
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|item| Candidate {
                item: item.to_owned(),
                title: titles.get(item).cloned(),
            })
            .collect();
        let subject = row
            .email
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        out.push(ManualLink {
            email: row,
            subject,
            candidates,
        });
    }
    Ok(out)
}

/// Links an e-mail to a deal or lead by hand (`deal:<id>` / `lead:<id>`) and queues the update
/// of its CRM record.
pub async fn link_manually(
    engine: &Engine,
    tenant: &TenantId,
    message_id: &str,
    item: &str,
) -> Result<EmailRow, EmailError> {
    let parsed =
        item_of(item).ok_or_else(|| invalid("item", "must be `deal:<id>` or `lead:<id>`"))?;
    let item = item_text(&parsed);
    let found = stored::by_message_id(&engine.store, tenant, message_id)
        .await?
        .ok_or(EmailError::NotFound)?;
    if found.state == state::NO_PERSON || found.state == state::FAILED {
        return Err(invalid(
            "message_id",
            format!(
                "the e-mail is `{}`: it has no CRM record to link",
                found.state
            ),
        ));
    }
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let row = stored::get_for_update(&txn, found.id)
        .await?
        .ok_or(EmailError::NotFound)?;
    stored::set_item(&txn, row.id, Some(&item), true, now).await?;
    let mut row = row;
    row.item = Some(item);
    queue_update(&txn, &row, Priority::Edit, now).await?;
    txn.commit().await?;
    engine.wake.notify_one();
    stored::get(&engine.store, row.id)
        .await?
        .ok_or(EmailError::NotFound)
}

/// Follows a link changed by hand in Pipedrive: a CRM webhook about an activity (or note) that
/// holds a logged e-mail, whose deal or lead differs from the stored one, becomes the stored
/// link (so the status says it, and later replies of the thread follow it). tandem's own
/// writes coming back, and webhooks while a manual link of tandem's is not written yet, are
/// ignored. Called in the transaction that applies the webhook.
pub async fn observe(
    txn: &impl Conn,
    conn: &ConnectionCtx,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<bool, SyncError> {
    let Ok(body) = serde_json::from_str::<Value>(payload) else {
        return Ok(false);
    };
    let meta = &body["meta"];
    let text = |key: &str| match meta.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let kind = match text("entity").or_else(|| text("object")).as_deref() {
        Some("activity") => record_kind::ACTIVITY,
        Some("note") => record_kind::NOTE,
        _ => return Ok(false),
    };
    if !matches!(text("action").as_deref(), Some("change" | "updated")) {
        return Ok(false);
    }
    let by_tandem = text("change_source").as_deref() == Some("api")
        && text("user_id").is_some_and(|u| Some(u) == conn.default_owner.map(|o| o.to_string()));
    if by_tandem {
        return Ok(false);
    }
    let data = &body["data"];
    let Some(record_id) = data
        .get("id")
        .and_then(Value::as_i64)
        .or_else(|| text("entity_id").and_then(|i| i.parse().ok()))
    else {
        return Ok(false);
    };
    let Some(row) = stored::by_record(txn, conn.id.uuid(), kind, record_id).await? else {
        return Ok(false);
    };
    if row.relink {
        return Ok(false);
    }
    let item = match (
        data.get("deal_id").and_then(Value::as_i64),
        data.get("lead_id")
            .and_then(Value::as_str)
            .filter(|l| !l.is_empty()),
    ) {
        (Some(deal), _) => Some(item_text(&Item::Deal(deal))),
        (None, Some(lead)) => Some(item_text(&Item::Lead(lead.to_owned()))),
        (None, None) => None,
    };
    if item == row.item {
        return Ok(false);
    }
    stored::set_item(txn, row.id, item.as_deref(), false, now).await?;
    Ok(true)
}

/// The admin's e-mail settings of a connection.
pub async fn settings(
    engine: &Engine,
    connection: ConnectionId,
) -> Result<EmailSettings, SyncError> {
    Ok(stored::settings(&engine.store, connection.uuid()).await?)
}

/// Changes the admin's e-mail settings of a connection (they apply to e-mails logged from
/// now on).
pub async fn set_settings(
    engine: &Engine,
    connection: ConnectionId,
    settings: &EmailSettings,
) -> Result<(), EmailError> {
    if ![record_kind::ACTIVITY, record_kind::NOTE].contains(&settings.record_as.as_str()) {
        return Err(invalid("record_as", "must be `activity` or `note`"));
    }
    stored::set_settings(&engine.store, connection.uuid(), settings, engine.now()).await?;
    Ok(())
}

/// The text the CRM record shows: snippet, participants, campaign, and what happened since.
fn record_text(email: &EmailIn, events: Option<&Value>) -> String {
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
    note.push_str(&format!("\n{}", message_id_line(&email.message_id)));
    if let Some(events) = events {
        let mut parts = Vec::new();
        for kind in EVENT_KINDS {
            let entry = &events[kind];
            let Some(count) = entry["count"].as_u64() else {
                continue;
            };
            let last = entry["last_at"].as_str().unwrap_or_default();
            let mut part = format!("{kind} {count}x (last {last})");
            if let Some(urls) = entry["urls"].as_array() {
                let urls: Vec<&str> = urls.iter().filter_map(Value::as_str).collect();
                part.push_str(&format!(": {}", urls.join(", ")));
            }
            parts.push(part);
        }
        if !parts.is_empty() {
            note.push_str(&format!("\nSince: {}", parts.join("; ")));
        }
    }
    note
}

/// The line of a record's text that names the e-mail, by which a write that may have happened
/// before tandem died is found again.
fn message_id_line(message_id: &str) -> String {
    format!("Message-ID: {message_id}")
}

/// The record an earlier attempt may have created before tandem died: a note (when the e-mail
/// is logged as one) or an activity of the primary person naming the e-mail's message id.
async fn written_before(
    conn: &ConnectionCtx,
    row: &EmailRow,
    written: &Written,
) -> Result<Option<i64>, CrmFailure> {
    let Some(&person) = written.persons.first() else {
        return Ok(None);
    };
    let line = message_id_line(&row.message_id);
    let names_the_email = |text: &str| text.lines().any(|l| l == line);
    if row.record_kind == record_kind::NOTE {
        let notes = conn
            .crm
            .person_notes(&conn.session, person)
            .await
            .map_err(|e| CrmFailure::Crm(e, Some(person)))?;
        if let Some(note) = notes.into_iter().find(|n| names_the_email(&n.content)) {
            return Ok(Some(note.id));
        }
    }
    let activities = conn
        .crm
        .person_activities(&conn.session, person)
        .await
        .map_err(|e| CrmFailure::Crm(e, Some(person)))?;
    Ok(activities
        .into_iter()
        .find(|a| a.note.as_deref().is_some_and(names_the_email))
        .map(|a| a.id))
}

/// The e-mail as the CRM write needs it.
struct Written {
    email: EmailIn,
    note: String,
    date: String,
    time: String,
    persons: Vec<PersonId>,
    item: Option<Item>,
}

impl Written {
    fn of(row: &EmailRow) -> Result<Self, SyncError> {
        let email: EmailIn = serde_json::from_value(row.email.clone())
            .map_err(|e| SyncError::Corrupt(format!("e-mail {}: {e}", row.id)))?;
        Ok(Self {
            note: record_text(&email, row.events.as_ref()),
            date: email.sent_at.format("%Y-%m-%d").to_string(),
            time: email.sent_at.format("%H:%M").to_string(),
            persons: serde_json::from_value(row.persons.clone()).unwrap_or_default(),
            item: row.item.as_deref().and_then(item_of),
            email,
        })
    }

    fn logged(&self, as_note: bool) -> LoggedEmail<'_> {
        LoggedEmail {
            subject: &self.email.subject,
            note: &self.note,
            date: &self.date,
            time: &self.time,
            persons: &self.persons,
            deal_id: match &self.item {
                Some(Item::Deal(id)) => Some(*id),
                _ => None,
            },
            lead_id: match &self.item {
                Some(Item::Lead(id)) => Some(id.as_str()),
                _ => None,
            },
            as_note,
        }
    }
}

/// The persons an e-mail waited for exist now (or their pushes failed): its links are decided
/// again with them. Returns the row as it is now.
async fn settle_waiting(
    engine: &Engine,
    conn: &ConnectionCtx,
    row: EmailRow,
) -> Result<EmailRow, SyncError> {
    if row.waiting_addresses.is_none() {
        return Ok(row);
    }
    let email: EmailIn = serde_json::from_value(row.email.clone())
        .map_err(|e| SyncError::Corrupt(format!("e-mail {}: {e}", row.id)))?;
    let participants = participants_of(engine, &conn.tenant, &email).await?;
    let resolved = resolve(engine, conn.id, &participants).await?;
    let thread_item = stored::thread_item(&engine.store, &row.tenant, &row.thread_key, row.sent_at)
        .await?
        .as_deref()
        .and_then(item_of);
    let links = email_links::decide(&EmailFacts {
        at_ms: row.sent_at.timestamp_millis(),
        participants: resolved.participants,
        thread_item,
    });
    let (item, candidates) = stored_links(&links);
    let now = engine.now();
    stored::set_links(
        &engine.store,
        row.id,
        &json!(links.persons),
        item.as_deref(),
        candidates.as_ref(),
        now,
    )
    .await?;
    if links.persons.is_empty() {
        stored::finish(&engine.store, row.id, state::NO_PERSON, None, None, now).await?;
    }
    stored::get(&engine.store, row.id)
        .await?
        .ok_or_else(|| SyncError::Corrupt(format!("e-mail {} vanished", row.id)))
}

/// Where the CRM keeps no mirror (Salesforce), the participants' open items are read from the
/// CRM when the e-mail is written (not when the app posts it: no CRM call in the request
/// path), and the same rules decide the item. An item already decided (the thread's, one
/// chosen by hand) stays.
async fn decide_from_crm(
    engine: &Engine,
    conn: &ConnectionCtx,
    row: EmailRow,
) -> Result<EmailRow, CrmFailure> {
    if row.item.is_some() || row.state != state::QUEUED || row.relink {
        return Ok(row);
    }
    let persons: Vec<PersonId> = serde_json::from_value(row.persons.clone()).unwrap_or_default();
    let mut participants = Vec::with_capacity(persons.len());
    for person in &persons {
        let Some(items) = conn
            .crm
            .email_items(&conn.session, *person)
            .await
            .map_err(|e| CrmFailure::Crm(e, Some(*person)))?
        else {
            return Ok(row);
        };
        participants.push(Participant {
            person: Some(person.get()),
            items,
        });
    }
    // The thread's item as it is now (an earlier e-mail of the thread may have been decided
    // at its own write, after this one was posted).
    let thread_item = stored::thread_item(&engine.store, &row.tenant, &row.thread_key, row.sent_at)
        .await?
        .as_deref()
        .and_then(item_of);
    let links = email_links::decide(&EmailFacts {
        at_ms: row.sent_at.timestamp_millis(),
        participants,
        thread_item,
    });
    let (item, candidates) = stored_links(&links);
    stored::set_links(
        &engine.store,
        row.id,
        &row.persons,
        item.as_deref(),
        candidates.as_ref(),
        engine.now(),
    )
    .await?;
    Ok(EmailRow {
        item,
        candidates,
        ..row
    })
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
    if row.state != state::QUEUED && row.state != state::WRITING {
        return Ok(());
    }
    let row = settle_waiting(engine, conn, row).await?;
    if row.state != state::QUEUED && row.state != state::WRITING {
        return Ok(());
    }
    let row = decide_from_crm(engine, conn, row).await?;
    let written = Written::of(&row)?;
    let as_note = row.record_kind == record_kind::NOTE;
    let earlier = if row.state == state::WRITING {
        written_before(conn, &row, &written).await?
    } else {
        stored::transition(
            &engine.store,
            email_id,
            state::QUEUED,
            state::WRITING,
            engine.now(),
        )
        .await?;
        None
    };
    let record = match earlier {
        Some(record) => record,
        None => match conn
            .crm
            .log_email(&conn.session, &written.logged(as_note))
            .await
        {
            Ok(record) => record,
            Err(error) => {
                // The CRM answered with a refusal (429, 4xx): nothing was created, so the next
                // attempt need not look for it.
                if error.status.is_some_and(|s| s < 500) {
                    stored::transition(
                        &engine.store,
                        email_id,
                        state::WRITING,
                        state::QUEUED,
                        engine.now(),
                    )
                    .await?;
                }
                return Err(CrmFailure::Crm(error, written.persons.first().copied()));
            }
        },
    };
    // On Salesforce the e-mail is a done Task: a read of the Tasks announces nothing for it.
    let noted = crate::crm::CrmRelated {
        person_id: written.persons.first().copied(),
        // Its `TaskSubtype` (Email), as the next read keeps it.
        activity_type: Some("email".to_owned()),
        ..crate::crm::CrmRelated::noted(crate::crm::RelatedKind::Activity, record, "done")
    };
    crate::sync::related::note_created(engine, conn, noted).await?;
    stored::finish(
        &engine.store,
        email_id,
        state::LOGGED,
        Some(record),
        None,
        engine.now(),
    )
    .await?;
    if row.relink {
        stored::relinked(&engine.store, email_id, row.item.as_deref()).await?;
    }
    Ok(())
}

/// Brings a logged e-mail's CRM record up to date: the latest events and, after a manual
/// link, its deal or lead (called by the outbox worker; one write however many events were
/// coalesced).
pub async fn update(
    engine: &Engine,
    conn: &ConnectionCtx,
    email_id: Uuid,
) -> Result<(), CrmFailure> {
    let Some(row) = stored::get(&engine.store, email_id).await? else {
        return Ok(());
    };
    let Some(record) = row.activity_id.filter(|_| row.state == state::LOGGED) else {
        // Not written yet: its write reads the latest state when it runs.
        return Ok(());
    };
    let written = Written::of(&row)?;
    let as_note = row.record_kind == record_kind::NOTE;
    conn.crm
        .update_logged_email(&conn.session, record, &written.logged(as_note), row.relink)
        .await
        .map_err(|e| CrmFailure::Crm(e, written.persons.first().copied()))?;
    if row.relink {
        stored::relinked(&engine.store, email_id, row.item.as_deref()).await?;
    }
    Ok(())
}

/// Marks an e-mail failed when its job became a dead letter (the CRM's text verbatim).
pub async fn mark_failed(
    engine: &Engine,
    email_id: Uuid,
    error: &tandem_core::CrmError,
) -> Result<(), SyncError> {
    let Some(row) = stored::get(&engine.store, email_id).await? else {
        return Ok(());
    };
    if row.state == state::LOGGED {
        // A failed update leaves the logged record as it was.
        return Ok(());
    }
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
    let waiting_manual = row.candidates.is_some() && row.item.is_none();
    let mut events = row.events.clone().unwrap_or_else(|| json!({}));
    if let Some(map) = events.as_object_mut() {
        map.remove("seen_event_ids");
    }
    json!({
        "message_id": row.message_id,
        "connection_id": row.connection_id,
        "state": row.state,
        "record": row.record_kind,
        "persons": row.persons,
        "item": row.item,
        "waiting_for_manual_link": waiting_manual,
        "candidates": row.candidates,
        "waiting_for_persons": row.waiting_addresses.as_ref().map(|w| w["addresses"].clone()),
        "activity_id": row.activity_id,
        "events": events,
        "error": row.error,
        "thread": row.thread_key,
        "sent_at": rfc3339(row.sent_at),
        "why": match (row.state.as_str(), &row.item, waiting_manual) {
            (state::NO_PERSON, _, _) => "no participant is a linked Pipedrive person; nothing was logged",
            (_, Some(_), _) => "linked to its deal or lead (the single open one of its participants, its thread's, or one chosen by hand)",
            (_, None, true) => "several open deals or leads could take it: linked to the persons only, waiting for a manual link",
            (_, None, false) => "no open deal or lead existed when it was sent: linked to the persons only",
        },
    })
}
