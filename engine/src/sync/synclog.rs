//! The sync log: every failed attempt, conflict, dead letter and notable event, with Pipedrive's
//! status and error text verbatim and what the admin can do. Ids only, never personal data.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, Set};
use serde::Serialize;
use uuid::Uuid;

use super::SyncError;
use crate::store::entities::sync_log;

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
    pub connection_id: Option<Uuid>,
    pub level: Level,
    pub direction: Direction,
    /// A stable code: `conflict_resolved`, `crm_rejected`, `dead_letter`, `token_expired`, …
    pub kind: &'static str,
    pub contact_id: Option<Uuid>,
    pub person_id: Option<i64>,
    pub status: Option<u16>,
    pub message: String,
    pub remote_error: Option<String>,
    pub hint: Option<&'static str>,
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

    pub fn connection(mut self, id: Uuid) -> Self {
        self.connection_id = Some(id);
        self
    }

    pub fn contact(mut self, id: Uuid) -> Self {
        self.contact_id = Some(id);
        self
    }

    pub fn person(mut self, id: i64) -> Self {
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

    pub fn hint(mut self, hint: &'static str) -> Self {
        self.hint = Some(hint);
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

pub async fn record<C: ConnectionTrait>(
    db: &C,
    entry: Entry,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let level = match entry.level {
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    let direction = serde_json::to_value(entry.direction)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    sync_log::Entity::insert(sync_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        connection_id: Set(entry.connection_id),
        at: Set(now),
        level: Set(level.to_owned()),
        direction: Set(direction),
        kind: Set(entry.kind.to_owned()),
        contact_id: Set(entry.contact_id),
        person_id: Set(entry.person_id),
        status: Set(entry.status.map(i32::from)),
        message: Set(entry.message),
        remote_error: Set(entry.remote_error),
        hint: Set(entry.hint.map(str::to_owned)),
        detail: Set(entry.detail),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

/// A stored entry, as the admin sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub connection_id: Option<Uuid>,
    pub level: String,
    pub direction: String,
    pub kind: String,
    pub contact_id: Option<Uuid>,
    pub person_id: Option<i64>,
    pub status: Option<i32>,
    pub message: String,
    pub remote_error: Option<String>,
    pub hint: Option<String>,
    pub detail: Option<serde_json::Value>,
}

/// Filters for [`list`]; every field optional.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub contact_id: Option<Uuid>,
    pub person_id: Option<i64>,
    pub kind: Option<String>,
    pub limit: u64,
}

/// The newest entries first.
pub async fn list<C: ConnectionTrait>(db: &C, filter: &Filter) -> Result<Vec<Stored>, SyncError> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    let mut query = sync_log::Entity::find()
        .order_by_desc(sync_log::Column::At)
        .order_by_desc(sync_log::Column::Id);
    if let Some(contact) = filter.contact_id {
        query = query.filter(sync_log::Column::ContactId.eq(contact));
    }
    if let Some(person) = filter.person_id {
        query = query.filter(sync_log::Column::PersonId.eq(person));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(sync_log::Column::Kind.eq(kind.clone()));
    }
    let limit = if filter.limit == 0 {
        100
    } else {
        filter.limit.min(1000)
    };
    Ok(query
        .limit(limit)
        .all(db)
        .await?
        .into_iter()
        .map(|e| Stored {
            id: e.id,
            at: e.at,
            connection_id: e.connection_id,
            level: e.level,
            direction: e.direction,
            kind: e.kind,
            contact_id: e.contact_id,
            person_id: e.person_id,
            status: e.status,
            message: e.message,
            remote_error: e.remote_error,
            hint: e.hint,
            detail: e.detail,
        })
        .collect())
}
