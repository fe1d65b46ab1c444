//! E-mails logged in the CRM (`email_log`; issue 23).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use uuid::Uuid;

use super::entities::email_log;
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
}

impl From<email_log::Model> for EmailRow {
    fn from(m: email_log::Model) -> Self {
        Self {
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
        }
    }
}

/// The e-mail logged under `message_id`, if any.
pub async fn by_message_id(
    db: &impl Conn,
    message_id: &str,
) -> Result<Option<EmailRow>, StoreError> {
    Ok(email_log::Entity::find()
        .filter(email_log::Column::MessageId.eq(message_id))
        .one(db.raw())
        .await?
        .map(EmailRow::from))
}

/// One e-mail.
pub async fn get(db: &impl Conn, id: Uuid) -> Result<Option<EmailRow>, StoreError> {
    Ok(email_log::Entity::find_by_id(id)
        .one(db.raw())
        .await?
        .map(EmailRow::from))
}

/// The item the latest earlier e-mail of the thread was linked to.
pub async fn thread_item(
    db: &impl Conn,
    thread_key: &str,
    before: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(email_log::Entity::find()
        .filter(email_log::Column::ThreadKey.eq(thread_key))
        .filter(email_log::Column::SentAt.lte(before))
        .filter(email_log::Column::Item.is_not_null())
        .order_by_desc(email_log::Column::SentAt)
        .one(db.raw())
        .await?
        .and_then(|m| m.item))
}

/// Records a new e-mail; a `message_id` already used is a unique-constraint conflict.
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
