//! The console's contact search ("Find a contact") and a contact's pending writes.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Func, LikeExpr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tandem_core::ContactId;
use uuid::Uuid;

use super::entities::{contact, contact_field, outbox_job, person_link};
use super::{Conn, StoreError};

/// A contact found by the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactHit {
    pub id: Uuid,
    /// The app's account it belongs to.
    pub tenant: String,
    pub email: Option<String>,
    /// The values of its name fields (`name`, `first_name`, `last_name`, …), joined.
    pub name: String,
    pub archived: bool,
    pub updated_at: DateTime<Utc>,
    /// `(connection, person)` of its links.
    pub persons: Vec<(Uuid, i64)>,
}

/// `%text%` for LIKE, with the wildcards of `text` escaped.
fn contains(text: &str) -> LikeExpr {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    LikeExpr::new(format!("%{escaped}%")).escape('\\')
}

/// Contacts matching `query`: a contact id (a UUID), a CRM person id (digits), or else a part
/// of the e-mail address or of a name field (case-insensitive). At most `limit`, most
/// recently changed first.
pub async fn search_contacts(
    db: &impl Conn,
    query: &str,
    limit: u64,
) -> Result<Vec<ContactHit>, StoreError> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = if let Ok(id) = Uuid::parse_str(query) {
        vec![id]
    } else if let Ok(person) = query.parse::<i64>() {
        person_link::Entity::find()
            .select_only()
            .column(person_link::Column::ContactId)
            .filter(person_link::Column::PersonId.eq(person))
            .into_tuple()
            .all(db.raw())
            .await?
    } else {
        let mut ids: Vec<Uuid> = contact::Entity::find()
            .select_only()
            .column(contact::Column::Id)
            .filter(
                Expr::expr(Func::lower(Expr::col(contact::Column::Email))).like(contains(query)),
            )
            .limit(limit)
            .into_tuple()
            .all(db.raw())
            .await?;
        let by_name: Vec<Uuid> = contact_field::Entity::find()
            .select_only()
            .column(contact_field::Column::ContactId)
            .filter(contact_field::Column::FieldKey.like("%name%"))
            .filter(
                Expr::expr(Func::lower(Func::cast_as(
                    Expr::col(contact_field::Column::Value),
                    Alias::new("TEXT"),
                )))
                .like(contains(query)),
            )
            .limit(limit)
            .into_tuple()
            .all(db.raw())
            .await?;
        ids.extend(by_name);
        ids.sort();
        ids.dedup();
        ids
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = contact::Entity::find()
        .filter(contact::Column::Id.is_in(ids.clone()))
        .order_by_desc(contact::Column::UpdatedAt)
        .limit(limit)
        .all(db.raw())
        .await?;
    let names = contact_field::Entity::find()
        .filter(contact_field::Column::ContactId.is_in(ids.clone()))
        .filter(contact_field::Column::FieldKey.like("%name%"))
        .order_by_asc(contact_field::Column::FieldKey)
        .all(db.raw())
        .await?;
    let links = person_link::Entity::find()
        .filter(person_link::Column::ContactId.is_in(ids))
        .all(db.raw())
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ContactHit {
            name: names
                .iter()
                .filter(|f| f.contact_id == row.id)
                .filter_map(|f| match serde_json::from_value(f.value.clone()) {
                    Ok(tandem_core::FieldValue::Text(text)) => Some(text),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" "),
            persons: links
                .iter()
                .filter(|l| l.contact_id == row.id)
                .map(|l| (l.connection_id, l.person_id))
                .collect(),
            id: row.id,
            tenant: row.tenant,
            email: row.email,
            archived: row.archived_at.is_some(),
            updated_at: row.updated_at,
        })
        .collect())
}

/// A write of a contact not done yet (or given up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWrite {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub kind: String,
    pub state: String,
    pub attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub last_status: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// The contact's jobs in the outbox (its ordering key is its id), oldest first.
pub async fn pending_writes(
    db: &impl Conn,
    contact: ContactId,
) -> Result<Vec<PendingWrite>, StoreError> {
    let contact = contact.uuid();
    Ok(outbox_job::Entity::find()
        .filter(outbox_job::Column::OrderingKey.eq(contact.to_string()))
        .order_by_asc(outbox_job::Column::CreatedAt)
        .limit(100)
        .all(db.raw())
        .await?
        .into_iter()
        .map(|j| PendingWrite {
            id: j.id,
            connection_id: j.connection_id,
            kind: j.kind,
            state: j.state,
            attempts: j.attempts,
            run_at: j.run_at,
            last_error: j.last_error,
            last_status: j.last_status,
            created_at: j.created_at,
        })
        .collect())
}
