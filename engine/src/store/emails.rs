//! E-mails logged in the CRM (`email_log`; issue 23).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde_json::Value;
use tandem_core::TenantId;
use uuid::Uuid;

use super::entities::{email_log, email_setting};
use super::{Conn, StoreError};

/// A logged e-mail's row.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailRow {
    pub id: Uuid,
    pub message_id: String,
    pub request_hash: String,
    pub connection_id: Option<Uuid>,
    /// The thread's id, or the message id of the e-mail it answers, or its own.
    pub thread_key: String,
    /// What the app sent (from, to, cc, subject, snippet, …).
    pub email: Value,
    /// `queued`, `logged`, `failed`, `no_person`.
    pub state: String,
    /// The CRM persons it is linked to.
    pub persons: Value,
    /// The deal or lead it is linked to (`deal:12`, `lead:<uuid>`).
    pub item: Option<String>,
    /// When several items could take it: the candidates for a manual link.
    pub candidates: Option<Value>,
    /// The CRM record that holds it (Pipedrive: the activity).
    pub activity_id: Option<i64>,
    pub error: Option<String>,
    pub sent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What happened to it since (opens, clicks, bounce, reply).
    pub events: Option<Value>,
    /// The CRM record that holds it: `activity` or `note`.
    pub record_kind: String,
    /// Addresses that are becoming persons (the admin's setting), with the ordering key the
    /// e-mail's jobs share with the first one's push.
    pub waiting_addresses: Option<Value>,
    /// Its deal or lead was changed in tandem (a manual link) and is not written yet.
    pub relink: bool,
    /// The app's account that logged it: its `message_id` and its thread are that tenant's.
    pub tenant: TenantId,
}

impl TryFrom<email_log::Model> for EmailRow {
    type Error = StoreError;
    fn try_from(m: email_log::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: m.id,
            message_id: m.message_id,
            request_hash: m.request_hash,
            connection_id: m.connection_id,
            thread_key: m.thread_key,
            email: m.email,
            state: m.state,
            persons: m.persons,
            item: m.item,
            candidates: m.candidates,
            activity_id: m.activity_id,
            error: m.error,
            sent_at: m.sent_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
            events: m.events,
            record_kind: m.record_kind,
            waiting_addresses: m.waiting_addresses,
            relink: m.relink,
            tenant: super::parse_tenant(&m.tenant)?,
        })
    }
}

/// The e-mail `tenant` logged under `message_id`, if any.
pub async fn by_message_id(
    db: &impl Conn,
    tenant: &TenantId,
    message_id: &str,
) -> Result<Option<EmailRow>, StoreError> {
    email_log::Entity::find()
        .filter(email_log::Column::Tenant.eq(tenant.as_str()))
        .filter(email_log::Column::MessageId.eq(message_id))
        .one(db.raw())
        .await?
        .map(EmailRow::try_from)
        .transpose()
}

/// One e-mail.
pub async fn get(db: &impl Conn, id: Uuid) -> Result<Option<EmailRow>, StoreError> {
    email_log::Entity::find_by_id(id)
        .one(db.raw())
        .await?
        .map(EmailRow::try_from)
        .transpose()
}

/// The item the latest earlier e-mail of `tenant`'s thread was linked to.
pub async fn thread_item(
    db: &impl Conn,
    tenant: &TenantId,
    thread_key: &str,
    before: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(email_log::Entity::find()
        .filter(email_log::Column::Tenant.eq(tenant.as_str()))
        .filter(email_log::Column::ThreadKey.eq(thread_key))
        .filter(email_log::Column::SentAt.lte(before))
        .filter(email_log::Column::Item.is_not_null())
        .order_by_desc(email_log::Column::SentAt)
        .one(db.raw())
        .await?
        .and_then(|m| m.item))
}

/// Records a new e-mail; a `message_id` its tenant already used is a unique-constraint
/// conflict.
pub async fn insert(db: &impl Conn, row: EmailRow) -> Result<(), StoreError> {
    email_log::Entity::insert(email_log::ActiveModel {
        id: Set(row.id),
        message_id: Set(row.message_id),
        request_hash: Set(row.request_hash),
        connection_id: Set(row.connection_id),
        thread_key: Set(row.thread_key),
        email: Set(row.email),
        state: Set(row.state),
        persons: Set(row.persons),
        item: Set(row.item),
        candidates: Set(row.candidates),
        activity_id: Set(row.activity_id),
        error: Set(row.error),
        sent_at: Set(row.sent_at),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
        events: Set(row.events),
        record_kind: Set(row.record_kind),
        waiting_addresses: Set(row.waiting_addresses),
        relink: Set(row.relink),
        tenant: Set(row.tenant.to_string()),
    })
    .exec_without_returning(db.raw())
    .await?;
    Ok(())
}

/// Stores an e-mail's outcome.
pub async fn finish(
    db: &impl Conn,
    id: Uuid,
    state: &str,
    activity_id: Option<i64>,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    email_log::Entity::update_many()
        .col_expr(email_log::Column::State, Expr::value(state))
        .col_expr(email_log::Column::ActivityId, Expr::value(activity_id))
        .col_expr(
            email_log::Column::Error,
            Expr::value(error.map(str::to_owned)),
        )
        .col_expr(email_log::Column::UpdatedAt, Expr::value(now))
        .filter(email_log::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// One e-mail, locked until the caller's transaction ends (`FOR UPDATE` on Postgres; SQLite
/// has one writer), for a read-modify-write of its events or links.
pub async fn get_for_update(db: &impl Conn, id: Uuid) -> Result<Option<EmailRow>, StoreError> {
    email_log::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db.raw())
        .await?
        .map(EmailRow::try_from)
        .transpose()
}

/// Stores an e-mail's events.
pub async fn set_events(
    db: &impl Conn,
    id: Uuid,
    events: &Value,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    email_log::Entity::update_many()
        .col_expr(email_log::Column::Events, Expr::value(events.clone()))
        .col_expr(email_log::Column::UpdatedAt, Expr::value(now))
        .filter(email_log::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Sets an e-mail's deal or lead: it no longer waits for a manual link; `relink` says the CRM
/// must still be told.
pub async fn set_item(
    db: &impl Conn,
    id: Uuid,
    item: Option<&str>,
    relink: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    email_log::Entity::update_many()
        .col_expr(
            email_log::Column::Item,
            Expr::value(item.map(str::to_owned)),
        )
        .col_expr(
            email_log::Column::Candidates,
            Expr::value(Option::<Value>::None),
        )
        .col_expr(email_log::Column::Relink, Expr::value(relink))
        .col_expr(email_log::Column::UpdatedAt, Expr::value(now))
        .filter(email_log::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// The CRM was told the e-mail's item (unless the item changed again meanwhile).
pub async fn relinked(db: &impl Conn, id: Uuid, item: Option<&str>) -> Result<(), StoreError> {
    let mut update = email_log::Entity::update_many()
        .col_expr(email_log::Column::Relink, Expr::value(false))
        .filter(email_log::Column::Id.eq(id));
    update = match item {
        Some(item) => update.filter(email_log::Column::Item.eq(item)),
        None => update.filter(email_log::Column::Item.is_null()),
    };
    update.exec(db.raw()).await?;
    Ok(())
}

/// Replaces an e-mail's links once the persons it waited for exist.
pub async fn set_links(
    db: &impl Conn,
    id: Uuid,
    persons: &Value,
    item: Option<&str>,
    candidates: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    email_log::Entity::update_many()
        .col_expr(email_log::Column::Persons, Expr::value(persons.clone()))
        .col_expr(
            email_log::Column::Item,
            Expr::value(item.map(str::to_owned)),
        )
        .col_expr(
            email_log::Column::Candidates,
            Expr::value(candidates.cloned()),
        )
        .col_expr(
            email_log::Column::WaitingAddresses,
            Expr::value(Option::<Value>::None),
        )
        .col_expr(email_log::Column::UpdatedAt, Expr::value(now))
        .filter(email_log::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// The e-mail a CRM record holds (`kind`: `activity` or `note`).
pub async fn by_record(
    db: &impl Conn,
    connection_id: Uuid,
    kind: &str,
    record_id: i64,
) -> Result<Option<EmailRow>, StoreError> {
    email_log::Entity::find()
        .filter(email_log::Column::ActivityId.eq(record_id))
        .filter(email_log::Column::ConnectionId.eq(connection_id))
        .filter(email_log::Column::RecordKind.eq(kind))
        .one(db.raw())
        .await?
        .map(EmailRow::try_from)
        .transpose()
}

/// E-mails of a connection waiting for a manual link, newest first.
pub async fn waiting_for_manual_link(
    db: &impl Conn,
    connection_id: Uuid,
    limit: u64,
) -> Result<Vec<EmailRow>, StoreError> {
    email_log::Entity::find()
        .filter(email_log::Column::ConnectionId.eq(connection_id))
        .filter(email_log::Column::Candidates.is_not_null())
        .filter(email_log::Column::Item.is_null())
        .order_by_desc(email_log::Column::SentAt)
        .limit(limit)
        .all(db.raw())
        .await?
        .into_iter()
        .map(EmailRow::try_from)
        .collect()
}

/// The admin's e-mail settings of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// Addresses with no person become contacts pushed to the CRM.
    pub create_persons: bool,
    /// `activity` or `note`.
    pub record_as: String,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            create_persons: false,
            record_as: "activity".to_owned(),
        }
    }
}

pub async fn settings(db: &impl Conn, connection_id: Uuid) -> Result<EmailSettings, StoreError> {
    Ok(email_setting::Entity::find_by_id(connection_id)
        .one(db.raw())
        .await?
        .map(|m| EmailSettings {
            create_persons: m.create_persons,
            record_as: m.record_as,
        })
        .unwrap_or_default())
}

pub async fn set_settings(
    db: &impl Conn,
    connection_id: Uuid,
    settings: &EmailSettings,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    email_setting::Entity::insert(email_setting::ActiveModel {
        connection_id: Set(connection_id),
        create_persons: Set(settings.create_persons),
        record_as: Set(settings.record_as.clone()),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(email_setting::Column::ConnectionId)
            .update_columns([
                email_setting::Column::CreatePersons,
                email_setting::Column::RecordAs,
                email_setting::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db.raw())
    .await?;
    Ok(())
}

/// Moves an e-mail from `from` to `to` (a write-ahead step); returns whether it was in `from`.
pub async fn transition(
    db: &impl Conn,
    id: Uuid,
    from: &str,
    to: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = email_log::Entity::update_many()
        .col_expr(email_log::Column::State, Expr::value(to))
        .col_expr(email_log::Column::UpdatedAt, Expr::value(now))
        .filter(email_log::Column::Id.eq(id))
        .filter(email_log::Column::State.eq(from))
        .exec(db.raw())
        .await?;
    Ok(done.rows_affected == 1)
}
