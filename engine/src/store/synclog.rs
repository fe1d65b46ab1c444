//! The sync log: every failed attempt, conflict, dead letter and notable event, with Pipedrive's
//! status and error text verbatim and what the admin can do. Ids only, never personal data.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use serde::Serialize;
use tandem_core::ConnectionId;
use tandem_core::{ContactId, PersonId, TenantId};
use uuid::Uuid;

use super::entities::{connection, contact, sync_log};
use super::{Conn, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Pipedrive → tandem.
    Inbound,
    /// tandem → Pipedrive.
    Outbound,
    /// tandem → the app.
    App,
    /// Connection lifecycle.
    Connection,
}

/// One entry; build with [`Entry::new`] and the `with_*` setters.
#[derive(Debug, Clone)]
pub struct Entry {
    pub connection_id: Option<ConnectionId>,
    pub level: Level,
    pub direction: Direction,
    /// A stable code: `conflict_resolved`, `crm_rejected`, `dead_letter`, `token_expired`, …
    pub kind: &'static str,
    pub contact_id: Option<ContactId>,
    pub person_id: Option<PersonId>,
    pub status: Option<u16>,
    pub message: String,
    pub remote_error: Option<String>,
    pub hint: Option<std::borrow::Cow<'static, str>>,
    pub detail: Option<serde_json::Value>,
}

impl Entry {
    pub fn new(
        level: Level,
        direction: Direction,
        kind: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            connection_id: None,
            level,
            direction,
            kind,
            contact_id: None,
            person_id: None,
            status: None,
            message: message.into(),
            remote_error: None,
            hint: None,
            detail: None,
        }
    }

    pub fn connection(mut self, id: ConnectionId) -> Self {
        self.connection_id = Some(id);
        self
    }

    pub fn contact(mut self, id: ContactId) -> Self {
        self.contact_id = Some(id);
        self
    }

    pub fn person(mut self, id: PersonId) -> Self {
        self.person_id = Some(id);
        self
    }

    pub fn status(mut self, status: Option<u16>) -> Self {
        self.status = status;
        self
    }

    pub fn remote_error(mut self, text: impl Into<String>) -> Self {
        self.remote_error = Some(text.into());
        self
    }

    pub fn hint(mut self, hint: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

pub async fn record(db: &impl Conn, entry: Entry, now: DateTime<Utc>) -> Result<(), StoreError> {
    sync_log::Entity::insert(row(entry, now))
        .exec_without_returning(db.raw())
        .await?;
    Ok(())
}

/// [`record`] of many entries, in order, in multi-row statements.
pub async fn record_many(
    db: &impl Conn,
    entries: Vec<Entry>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rows = entries.into_iter().map(|entry| row(entry, now)).collect();
    super::insert_chunked(db.raw(), rows, 13).await
}

/// The row of `entry`, recorded at `now`.
fn row(entry: Entry, now: DateTime<Utc>) -> sync_log::ActiveModel {
    let level = match entry.level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    let direction = serde_json::to_value(entry.direction)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    sync_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        connection_id: Set(entry.connection_id.map(ConnectionId::uuid)),
        at: Set(now),
        level: Set(level.to_owned()),
        direction: Set(direction),
        kind: Set(entry.kind.to_owned()),
        contact_id: Set(entry.contact_id.map(ContactId::uuid)),
        person_id: Set(entry.person_id.map(PersonId::get)),
        status: Set(entry.status.map(i32::from)),
        message: Set(entry.message),
        remote_error: Set(entry.remote_error),
        hint: Set(entry.hint.map(std::borrow::Cow::into_owned)),
        detail: Set(entry.detail),
    }
}

/// One stored entry, as the admin console and API show it.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub id: Uuid,
    pub connection_id: Option<ConnectionId>,
    pub at: DateTime<Utc>,
    pub level: String,
    pub direction: String,
    pub kind: String,
    pub contact_id: Option<ContactId>,
    pub person_id: Option<PersonId>,
    /// The CRM's HTTP status, if the entry is about a response.
    pub status: Option<i32>,
    pub message: String,
    /// The CRM's error text, verbatim.
    pub remote_error: Option<String>,
    /// What the admin can do.
    pub hint: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// The console's name for [`Stored`].
pub type LogRow = Stored;
/// The console's name for [`Filter`].
pub type LogFilter = Filter;

/// Which entries to list; every filter is optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub connection_id: Option<ConnectionId>,
    /// Entries about the tenant's connections or contacts.
    pub tenant: Option<TenantId>,
    pub contact_id: Option<ContactId>,
    pub person_id: Option<PersonId>,
    /// The entry kind (`dead_letter`, `token_expired`, `write_retried`, …).
    pub kind: Option<String>,
    pub level: Option<String>,
    pub status: Option<i32>,
    /// At most this many, newest first (capped at 1000).
    pub limit: u64,
}

/// Entries matching `filter`, newest first.
pub async fn list(db: &impl Conn, filter: &Filter) -> Result<Vec<Stored>, StoreError> {
    let mut query = sync_log::Entity::find();
    if let Some(id) = filter.connection_id {
        query = query.filter(sync_log::Column::ConnectionId.eq(id.uuid()));
    }
    if let Some(tenant) = &filter.tenant {
        let connections = sea_orm::sea_query::Query::select()
            .column(connection::Column::Id)
            .from(connection::Entity)
            .and_where(connection::Column::Tenant.eq(tenant.as_str()))
            .to_owned();
        // The entry's contact looked up by its key, not every contact of the tenant listed
        // (`IN (SELECT id FROM contact …)`), which SQLite did for each page.
        let of_tenant = sea_orm::sea_query::Query::select()
            .expr(Expr::val(1))
            .from(contact::Entity)
            .and_where(
                Expr::col((contact::Entity, contact::Column::Id))
                    .equals((sync_log::Entity, sync_log::Column::ContactId)),
            )
            .and_where(Expr::col((contact::Entity, contact::Column::Tenant)).eq(tenant.as_str()))
            .to_owned();
        query = query.filter(
            sea_orm::Condition::any()
                .add(sync_log::Column::ConnectionId.in_subquery(connections))
                .add(Expr::exists(of_tenant)),
        );
    }
    if let Some(id) = filter.contact_id {
        query = query.filter(sync_log::Column::ContactId.eq(id.uuid()));
    }
    if let Some(id) = filter.person_id {
        query = query.filter(sync_log::Column::PersonId.eq(id.get()));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(sync_log::Column::Kind.eq(kind.clone()));
    }
    if let Some(level) = &filter.level {
        query = query.filter(sync_log::Column::Level.eq(level.clone()));
    }
    if let Some(status) = filter.status {
        query = query.filter(sync_log::Column::Status.eq(status));
    }
    let limit = if filter.limit == 0 {
        100
    } else {
        filter.limit.min(1000)
    };
    Ok(query
        .order_by_desc(sync_log::Column::At)
        .order_by_desc(sync_log::Column::Id)
        .limit(limit)
        .all(db.raw())
        .await?
        .into_iter()
        .map(stored)
        .collect())
}

/// The newest entry of `kind` about `contact` in `connection`.
pub async fn latest_for_contact(
    db: &impl Conn,
    connection: ConnectionId,
    contact: ContactId,
    kind: &str,
) -> Result<Option<Stored>, StoreError> {
    let contact = contact.uuid();
    let connection = connection.uuid();
    Ok(sync_log::Entity::find()
        .filter(sync_log::Column::ConnectionId.eq(connection))
        .filter(sync_log::Column::ContactId.eq(contact))
        .filter(sync_log::Column::Kind.eq(kind))
        .order_by_desc(sync_log::Column::At)
        .one(db.raw())
        .await?
        .map(stored))
}

fn stored(r: sync_log::Model) -> Stored {
    Stored {
        id: r.id,
        connection_id: r.connection_id.map(ConnectionId::from),
        at: r.at,
        level: r.level,
        direction: r.direction,
        kind: r.kind,
        contact_id: r.contact_id.map(ContactId::from),
        // A stored id is positive (it was a `PersonId`); anything else is not shown.
        person_id: r.person_id.and_then(|id| PersonId::new(id).ok()),
        status: r.status,
        message: r.message,
        remote_error: r.remote_error,
        hint: r.hint,
        detail: r.detail,
    }
}

/// Deletes entries older than `retention_days` (0 keeps everything); returns how many.
pub async fn prune(
    db: &impl Conn,
    retention_days: u32,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    if retention_days == 0 {
        return Ok(0);
    }
    let cutoff = now - chrono::Duration::days(i64::from(retention_days));
    Ok(sync_log::Entity::delete_many()
        .filter(sync_log::Column::At.lt(cutoff))
        .exec(db.raw())
        .await?
        .rows_affected)
}
