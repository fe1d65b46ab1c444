//! The persons of a CRM without a live mirror (Salesforce's Leads and Contacts) as tandem last
//! read them (`crm_person`): owner and organization, for the contacts list's `crm.owner_id`
//! and `crm.org_id` filters (ADR 25).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Statement, Value};
use tandem_core::{ConnectionId, PersonId};

use super::{Conn, StoreError, MAX_BIND_PARAMS};
use crate::crm::CrmPerson;

/// The values one row binds (the connection and the time are bound once per statement).
const COLUMNS: usize = 5;

/// A person as kept.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct KeptPerson {
    pub person_id: i64,
    pub lead: bool,
    pub owner_id: Option<i64>,
    pub org_id: Option<i64>,
}

/// Keeps what a read found of `persons` (a page of the initial sync or of the change poll), in
/// one statement per 179 persons ([`MAX_BIND_PARAMS`]): a person already kept is replaced unless the kept
/// row is from a newer change than the read's (a late read); a deleted person keeps its row
/// with neither owner nor organization. A person read twice in the page counts once, its
/// newest read.
pub async fn save_read(
    db: &impl Conn,
    connection: ConnectionId,
    persons: &[CrmPerson],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let modified = |p: &CrmPerson| p.updated.as_ref().and_then(|t| t.at()).map(|t| t.0);
    let mut newest: std::collections::BTreeMap<PersonId, &CrmPerson> = Default::default();
    for person in persons {
        match newest.get(&person.id) {
            Some(kept) if modified(kept) > modified(person) => {}
            _ => {
                newest.insert(person.id, person);
            }
        }
    }
    let rows: Vec<&CrmPerson> = newest.into_values().collect();
    let backend = db.raw().get_database_backend();
    // `$1` (the connection) and `$2` (now) are bound once per statement.
    for chunk in rows.chunks((MAX_BIND_PARAMS - 2) / COLUMNS) {
        let mut sql = String::from(
            "INSERT INTO crm_person \
             (connection_id, person_id, lead, owner_id, org_id, modified_ms, synced_at) VALUES ",
        );
        let mut values: Vec<Value> = Vec::with_capacity(2 + chunk.len() * COLUMNS);
        values.extend([connection.uuid().into(), now.into()]);
        for (i, person) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let n = values.len();
            sql.push_str(&format!("($1, {}, $2)", super::placeholders(n, 5)));
            let live = !person.deleted;
            values.extend([
                person.id.get().into(),
                person.lead.into(),
                person.owner_id.filter(|_| live).into(),
                person.org_id.filter(|_| live).into(),
                modified(person).into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (connection_id, person_id) DO UPDATE SET lead = excluded.lead, \
             owner_id = excluded.owner_id, org_id = excluded.org_id, \
             modified_ms = excluded.modified_ms, synced_at = excluded.synced_at \
             WHERE crm_person.modified_ms IS NULL OR excluded.modified_ms IS NULL \
             OR crm_person.modified_ms <= excluded.modified_ms",
        );
        db.raw()
            .execute(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// The person as kept, if a read kept it.
pub async fn get(
    db: &impl Conn,
    connection: ConnectionId,
    person: PersonId,
) -> Result<Option<KeptPerson>, StoreError> {
    let backend = db.raw().get_database_backend();
    Ok(
        KeptPerson::find_by_statement(Statement::from_sql_and_values(
            backend,
            "SELECT person_id, lead, owner_id, org_id FROM crm_person \
         WHERE connection_id = $1 AND person_id = $2",
            [connection.uuid().into(), person.get().into()],
        ))
        .one(db.raw())
        .await?,
    )
}
