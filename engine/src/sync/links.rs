//! Links between a local contact and a Pipedrive person, with the merge base (what both sides
//! last agreed on), the newest version merged from each side, and what tandem last wrote to
//! Pipedrive (for echo suppression).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set};
use tandem_core::{FieldKey, FieldValue, LinkVersions, Snapshot, Timestamp};
use uuid::Uuid;

use super::SyncError;
use crate::store::entities::person_link;
use crate::store::{insert_chunked, MAX_BIND_PARAMS};

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub id: Uuid,
    pub connection_id: Uuid,
    pub contact_id: Uuid,
    pub person_id: i64,
    pub base: Snapshot,
    pub versions: LinkVersions,
    pub last_written: BTreeMap<FieldKey, FieldValue>,
}

fn from_row(row: person_link::Model) -> Result<Link, SyncError> {
    let base: Snapshot = serde_json::from_value(row.base)
        .map_err(|e| SyncError::Corrupt(format!("link {} base: {e}", row.id)))?;
    let last_written = serde_json::from_value(row.last_written)
        .map_err(|e| SyncError::Corrupt(format!("link {} last_written: {e}", row.id)))?;
    Ok(Link {
        id: row.id,
        connection_id: row.connection_id,
        contact_id: row.contact_id,
        person_id: row.person_id,
        base,
        versions: LinkVersions {
            local: Timestamp(row.local_version),
            remote: Timestamp(row.remote_version),
        },
        last_written,
    })
}

pub async fn by_person<C: ConnectionTrait>(
    db: &C,
    connection: Uuid,
    person: i64,
) -> Result<Option<Link>, SyncError> {
    of_person(connection, person)
        .one(db)
        .await?
        .map(from_row)
        .transpose()
}

/// As [`by_person`], locking the row until the caller's transaction ends (`FOR UPDATE` on
/// Postgres; SQLite has one writer, ADR 1). For a read-modify-write of the link: two
/// transactions merging into the same link (the poller and a push, two workers) then take
/// turns instead of one overwriting the other's result.
pub async fn by_person_for_update<C: ConnectionTrait>(
    txn: &C,
    connection: Uuid,
    person: i64,
) -> Result<Option<Link>, SyncError> {
    of_person(connection, person)
        .lock_exclusive()
        .one(txn)
        .await?
        .map(from_row)
        .transpose()
}

fn of_person(connection: Uuid, person: i64) -> sea_orm::Select<person_link::Entity> {
    person_link::Entity::find()
        .filter(person_link::Column::ConnectionId.eq(connection))
        .filter(person_link::Column::PersonId.eq(person))
}

pub async fn by_contact<C: ConnectionTrait>(
    db: &C,
    connection: Uuid,
    contact: Uuid,
) -> Result<Option<Link>, SyncError> {
    person_link::Entity::find()
        .filter(person_link::Column::ConnectionId.eq(connection))
        .filter(person_link::Column::ContactId.eq(contact))
        .one(db)
        .await?
        .map(from_row)
        .transpose()
}

/// Any link of a contact, whatever the connection.
pub async fn any_for_contact<C: ConnectionTrait>(
    db: &C,
    contact: Uuid,
) -> Result<Option<Link>, SyncError> {
    person_link::Entity::find()
        .filter(person_link::Column::ContactId.eq(contact))
        .one(db)
        .await?
        .map(from_row)
        .transpose()
}

pub async fn insert<C: ConnectionTrait>(
    txn: &C,
    link: &Link,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    person_link::Entity::insert(new_row(link, now))
        .exec_without_returning(txn)
        .await?;
    Ok(())
}

/// Inserts many new links in a few multi-row statements (the rows [`insert`] writes).
pub async fn insert_many<C: ConnectionTrait>(
    txn: &C,
    links: &[Link],
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let rows = links.iter().map(|link| new_row(link, now)).collect();
    insert_chunked(txn, rows, 10).await?;
    Ok(())
}

/// The row of a link inserted at `now`.
fn new_row(link: &Link, now: DateTime<Utc>) -> person_link::ActiveModel {
    person_link::ActiveModel {
        id: Set(link.id),
        connection_id: Set(link.connection_id),
        contact_id: Set(link.contact_id),
        person_id: Set(link.person_id),
        base: Set(serde_json::to_value(&link.base).unwrap_or_default()),
        last_written: Set(serde_json::to_value(&link.last_written).unwrap_or_default()),
        remote_version: Set(link.versions.remote.0),
        local_version: Set(link.versions.local.0),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// Which of `persons` are linked (in this connection).
pub async fn linked_persons<C: ConnectionTrait>(
    db: &C,
    connection: Uuid,
    persons: &[i64],
) -> Result<HashSet<i64>, SyncError> {
    use sea_orm::QuerySelect;
    let mut linked = HashSet::new();
    for chunk in persons.chunks(MAX_BIND_PARAMS - 1) {
        linked.extend(
            person_link::Entity::find()
                .select_only()
                .column(person_link::Column::PersonId)
                .filter(person_link::Column::ConnectionId.eq(connection))
                .filter(person_link::Column::PersonId.is_in(chunk.iter().copied()))
                .into_tuple::<i64>()
                .all(db)
                .await?,
        );
    }
    Ok(linked)
}

/// The person each of `contacts` is linked to (in this connection), for those that are linked.
pub async fn persons_of_contacts<C: ConnectionTrait>(
    db: &C,
    connection: Uuid,
    contacts: &[Uuid],
) -> Result<HashMap<Uuid, i64>, SyncError> {
    use sea_orm::QuerySelect;
    let mut linked = HashMap::new();
    for chunk in contacts.chunks(MAX_BIND_PARAMS - 1) {
        linked.extend(
            person_link::Entity::find()
                .select_only()
                .column(person_link::Column::ContactId)
                .column(person_link::Column::PersonId)
                .filter(person_link::Column::ConnectionId.eq(connection))
                .filter(person_link::Column::ContactId.is_in(chunk.iter().copied()))
                .into_tuple::<(Uuid, i64)>()
                .all(db)
                .await?,
        );
    }
    Ok(linked)
}

pub async fn save<C: ConnectionTrait>(
    txn: &C,
    link: &Link,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    person_link::Entity::update(person_link::ActiveModel {
        id: Set(link.id),
        person_id: Set(link.person_id),
        base: Set(serde_json::to_value(&link.base).unwrap_or_default()),
        last_written: Set(serde_json::to_value(&link.last_written).unwrap_or_default()),
        remote_version: Set(link.versions.remote.0),
        local_version: Set(link.versions.local.0),
        updated_at: Set(now),
        ..Default::default()
    })
    .exec(txn)
    .await?;
    Ok(())
}

pub async fn delete<C: ConnectionTrait>(txn: &C, id: Uuid) -> Result<(), SyncError> {
    person_link::Entity::delete_by_id(id).exec(txn).await?;
    Ok(())
}

pub fn new_link(connection_id: Uuid, contact_id: Uuid, person_id: i64) -> Link {
    Link {
        id: Uuid::now_v7(),
        connection_id,
        contact_id,
        person_id,
        base: Snapshot::default(),
        versions: LinkVersions::default(),
        last_written: BTreeMap::new(),
    }
}

/// Every linked person id of a connection.
pub async fn person_ids<C: ConnectionTrait>(
    db: &C,
    connection: Uuid,
) -> Result<Vec<i64>, SyncError> {
    use sea_orm::QuerySelect;
    Ok(person_link::Entity::find()
        .select_only()
        .column(person_link::Column::PersonId)
        .filter(person_link::Column::ConnectionId.eq(connection))
        .into_tuple::<i64>()
        .all(db)
        .await?)
}
