//! Links between a local contact and a Pipedrive person, with the merge base (what both sides
//! last agreed on), the newest version merged from each side, and what tandem last wrote to
//! Pipedrive (for echo suppression).

use std::collections::{HashMap, HashSet};
use tandem_core::ConnectionId;
use tandem_core::{ContactId, PersonId};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use tandem_core::{LinkState, LinkVersions, Snapshot, Timestamp};
use uuid::Uuid;

use super::entities::person_link;
use super::{insert_chunked, Conn, StoreError, MAX_BIND_PARAMS};

#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub id: Uuid,
    pub connection_id: ConnectionId,
    pub contact_id: ContactId,
    pub person_id: PersonId,
    /// The merge state: base, versions, tandem's own and unknown-outcome writes, refused values.
    pub state: LinkState,
    /// When tandem last wrote the person (writes of one contact are paced).
    pub last_write_at: Option<DateTime<Utc>>,
}

fn json_or_default<T: serde::de::DeserializeOwned + Default>(
    value: Option<serde_json::Value>,
    what: &str,
    id: Uuid,
) -> Result<T, StoreError> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(value) => serde_json::from_value(value)
            .map_err(|e| StoreError::Corrupt(format!("link {id} {what}: {e}"))),
    }
}

/// A stored person id (positive: a row that holds anything else is corrupt).
fn person_id(id: i64) -> Result<PersonId, StoreError> {
    PersonId::new(id).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_row(row: person_link::Model) -> Result<Link, StoreError> {
    let base: Snapshot = json_or_default(Some(row.base), "base", row.id)?;
    Ok(Link {
        id: row.id,
        connection_id: row.connection_id.into(),
        contact_id: row.contact_id.into(),
        person_id: person_id(row.person_id)?,
        state: LinkState {
            base,
            versions: LinkVersions {
                local: Timestamp(row.local_version),
                remote: Timestamp(row.remote_version),
            },
            last_written: json_or_default(Some(row.last_written), "last_written", row.id)?,
            uncertain: json_or_default(row.uncertain, "uncertain", row.id)?,
            refused: json_or_default(row.refused, "refused", row.id)?,
        },
        last_write_at: row.last_write_at,
    })
}

pub async fn by_person(
    db: &impl Conn,
    connection: ConnectionId,
    person: PersonId,
) -> Result<Option<Link>, StoreError> {
    let connection = connection.uuid();
    of_person(connection, person)
        .one(db.raw())
        .await?
        .map(from_row)
        .transpose()
}

/// As [`by_person`], locking the row until the caller's transaction ends (`FOR UPDATE` on
/// Postgres; SQLite has one writer, ADR 1). For a read-modify-write of the link: two
/// transactions merging into the same link (the poller and a push, two workers) then take
/// turns instead of one overwriting the other's result.
pub async fn by_person_for_update(
    txn: &impl Conn,
    connection: ConnectionId,
    person: PersonId,
) -> Result<Option<Link>, StoreError> {
    let connection = connection.uuid();
    of_person(connection, person)
        .lock_exclusive()
        .one(txn.raw())
        .await?
        .map(from_row)
        .transpose()
}

fn of_person(connection: Uuid, person: PersonId) -> sea_orm::Select<person_link::Entity> {
    person_link::Entity::find()
        .filter(person_link::Column::ConnectionId.eq(connection))
        .filter(person_link::Column::PersonId.eq(person.get()))
}

pub async fn by_contact(
    db: &impl Conn,
    connection: ConnectionId,
    contact: ContactId,
) -> Result<Option<Link>, StoreError> {
    let contact = contact.uuid();
    let connection = connection.uuid();
    person_link::Entity::find()
        .filter(person_link::Column::ConnectionId.eq(connection))
        .filter(person_link::Column::ContactId.eq(contact))
        .one(db.raw())
        .await?
        .map(from_row)
        .transpose()
}

/// [`by_contact`] of many contacts: the links (in this connection) of those that are linked.
pub async fn by_contacts(
    db: &impl Conn,
    connection: ConnectionId,
    contacts: &[ContactId],
) -> Result<HashMap<ContactId, Link>, StoreError> {
    let connection = connection.uuid();
    let mut linked = HashMap::new();
    for chunk in contacts.chunks(MAX_BIND_PARAMS - 1) {
        for row in person_link::Entity::find()
            .filter(person_link::Column::ConnectionId.eq(connection))
            .filter(person_link::Column::ContactId.is_in(chunk.iter().map(|id| id.uuid())))
            .all(db.raw())
            .await?
        {
            let link = from_row(row)?;
            linked.insert(link.contact_id, link);
        }
    }
    Ok(linked)
}

/// The connections that link a contact to one of their persons, oldest link first.
pub async fn connections_of_contact(
    db: &impl Conn,
    contact: ContactId,
) -> Result<Vec<ConnectionId>, StoreError> {
    let contact = contact.uuid();
    Ok(person_link::Entity::find()
        .filter(person_link::Column::ContactId.eq(contact))
        .order_by_asc(person_link::Column::CreatedAt)
        .all(db.raw())
        .await?
        .into_iter()
        .map(|row| ConnectionId::new(row.connection_id))
        .collect())
}

/// Any link of a contact, whatever the connection.
pub async fn any_for_contact(
    db: &impl Conn,
    contact: ContactId,
) -> Result<Option<Link>, StoreError> {
    let contact = contact.uuid();
    person_link::Entity::find()
        .filter(person_link::Column::ContactId.eq(contact))
        .one(db.raw())
        .await?
        .map(from_row)
        .transpose()
}

pub async fn insert(txn: &impl Conn, link: &Link, now: DateTime<Utc>) -> Result<(), StoreError> {
    person_link::Entity::insert(new_row(link, now))
        .exec_without_returning(txn.raw())
        .await?;
    Ok(())
}

/// Inserts many new links in a few multi-row statements (the rows [`insert`] writes).
pub async fn insert_many(
    txn: &impl Conn,
    links: &[Link],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rows = links.iter().map(|link| new_row(link, now)).collect();
    insert_chunked(txn.raw(), rows, 10).await?;
    Ok(())
}

/// The row of a link inserted at `now`.
fn new_row(link: &Link, now: DateTime<Utc>) -> person_link::ActiveModel {
    let mut row = state_columns(link, now);
    row.connection_id = Set(link.connection_id.uuid());
    row.contact_id = Set(link.contact_id.uuid());
    row.created_at = Set(now);
    row
}

/// The columns a save writes: the person and the whole merge state.
fn state_columns(link: &Link, now: DateTime<Utc>) -> person_link::ActiveModel {
    let state = &link.state;
    let json = |value: serde_json::Result<serde_json::Value>| value.unwrap_or_default();
    let optional =
        |empty: bool, value: serde_json::Result<serde_json::Value>| (!empty).then(|| json(value));
    person_link::ActiveModel {
        id: Set(link.id),
        person_id: Set(link.person_id.get()),
        base: Set(json(serde_json::to_value(&state.base))),
        last_written: Set(json(serde_json::to_value(&state.last_written))),
        uncertain: Set(optional(
            state.uncertain.is_empty(),
            serde_json::to_value(&state.uncertain),
        )),
        refused: Set(optional(
            state.refused.is_empty(),
            serde_json::to_value(&state.refused),
        )),
        last_write_at: Set(link.last_write_at),
        remote_version: Set(state.versions.remote.0),
        local_version: Set(state.versions.local.0),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Which of `persons` are linked (in this connection).
pub async fn linked_persons(
    db: &impl Conn,
    connection: ConnectionId,
    persons: &[PersonId],
) -> Result<HashSet<PersonId>, StoreError> {
    let connection = connection.uuid();
    let mut linked = HashSet::new();
    for chunk in persons.chunks(MAX_BIND_PARAMS - 1) {
        for id in person_link::Entity::find()
            .select_only()
            .column(person_link::Column::PersonId)
            .filter(person_link::Column::ConnectionId.eq(connection))
            .filter(person_link::Column::PersonId.is_in(chunk.iter().map(|p| p.get())))
            .into_tuple::<i64>()
            .all(db.raw())
            .await?
        {
            linked.insert(person_id(id)?);
        }
    }
    Ok(linked)
}

/// The person each of `contacts` is linked to (in this connection), for those that are linked.
pub async fn persons_of_contacts(
    db: &impl Conn,
    connection: ConnectionId,
    contacts: &[ContactId],
) -> Result<HashMap<ContactId, PersonId>, StoreError> {
    let contacts: Vec<Uuid> = contacts.iter().map(|id| id.uuid()).collect();
    let connection = connection.uuid();
    let mut linked = HashMap::new();
    for chunk in contacts.chunks(MAX_BIND_PARAMS - 1) {
        for (contact, person) in person_link::Entity::find()
            .select_only()
            .column(person_link::Column::ContactId)
            .column(person_link::Column::PersonId)
            .filter(person_link::Column::ConnectionId.eq(connection))
            .filter(person_link::Column::ContactId.is_in(chunk.iter().copied()))
            .into_tuple::<(Uuid, i64)>()
            .all(db.raw())
            .await?
        {
            linked.insert(ContactId::from(contact), person_id(person)?);
        }
    }
    Ok(linked)
}

pub async fn save(txn: &impl Conn, link: &Link, now: DateTime<Utc>) -> Result<(), StoreError> {
    person_link::Entity::update(state_columns(link, now))
        .exec(txn.raw())
        .await?;
    Ok(())
}

/// Forgets the values the CRM refused (an admin retried the dead letters, or the mapping
/// changed): of one contact's link, or of every link of the connection.
pub async fn forget_refused(
    db: &impl Conn,
    connection: ConnectionId,
    contact: Option<ContactId>,
) -> Result<(), StoreError> {
    let contact = contact.map(ContactId::uuid);
    let connection = connection.uuid();
    let mut update = person_link::Entity::update_many()
        .col_expr(
            person_link::Column::Refused,
            sea_orm::sea_query::Expr::value(Option::<serde_json::Value>::None),
        )
        .filter(person_link::Column::ConnectionId.eq(connection))
        .filter(person_link::Column::Refused.is_not_null());
    if let Some(contact) = contact {
        update = update.filter(person_link::Column::ContactId.eq(contact));
    }
    update.exec(db.raw()).await?;
    Ok(())
}

pub async fn delete(txn: &impl Conn, id: Uuid) -> Result<(), StoreError> {
    person_link::Entity::delete_by_id(id)
        .exec(txn.raw())
        .await?;
    Ok(())
}

pub fn new_link(connection_id: ConnectionId, contact_id: ContactId, person_id: PersonId) -> Link {
    Link {
        id: Uuid::now_v7(),
        connection_id,
        contact_id,
        person_id,
        state: LinkState::default(),
        last_write_at: None,
    }
}

/// Every linked person id of a connection.
pub async fn person_ids(
    db: &impl Conn,
    connection: ConnectionId,
) -> Result<Vec<PersonId>, StoreError> {
    let connection = connection.uuid();
    person_link::Entity::find()
        .select_only()
        .column(person_link::Column::PersonId)
        .filter(person_link::Column::ConnectionId.eq(connection))
        .into_tuple::<i64>()
        .all(db.raw())
        .await?
        .into_iter()
        .map(person_id)
        .collect()
}

/// Every linked contact id of a connection.
pub async fn contact_ids(
    db: &impl Conn,
    connection: ConnectionId,
) -> Result<Vec<Uuid>, StoreError> {
    let connection = connection.uuid();
    Ok(person_link::Entity::find()
        .select_only()
        .column(person_link::Column::ContactId)
        .filter(person_link::Column::ConnectionId.eq(connection))
        .into_tuple::<Uuid>()
        .all(db.raw())
        .await?)
}
