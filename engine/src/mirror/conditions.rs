//! Journey conditions (issue 22): what the CRM knows about a contact, answered from the mirror
//! without a Pipedrive call: the linked person, its deals, leads, and open and done activities.

use serde::Serialize;
use serde_json::Value;

use crate::store::mirror::MirrorDb;
use crate::store::StoreError;

/// A contact's CRM records, as the mirror holds them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrmRecords {
    pub person: Option<Value>,
    pub deals: Vec<Value>,
    pub leads: Vec<Value>,
    pub open_activities: Vec<Value>,
    pub done_activities: Vec<Value>,
    /// The most recent time one of these rows was written to the mirror.
    pub freshest_at: Option<String>,
}

fn is_done(activity: &Value) -> bool {
    activity
        .get("done")
        .is_some_and(|d| d.as_bool() == Some(true) || d.as_i64() == Some(1))
}

/// The records of Pipedrive person `person` in the mirror `db`.
pub async fn of_person(
    db: &MirrorDb,
    person: tandem_core::PersonId,
) -> Result<CrmRecords, StoreError> {
    let person = person.get();
    let mut out = CrmRecords::default();
    let mut freshest: Option<String> = None;
    let mut seen = |synced: Option<String>| {
        if synced > freshest {
            freshest = synced;
        }
    };
    for (raw, synced) in db
        .live_rows_where(&db.table("persons"), "id", person)
        .await?
    {
        seen(synced);
        out.person = Some(raw);
    }
    for (raw, synced) in db
        .live_rows_where(&db.table("deals"), "person_id", person)
        .await?
    {
        seen(synced);
        out.deals.push(raw);
    }
    for (raw, synced) in db
        .live_rows_where(&db.table("leads"), "person_id", person)
        .await?
    {
        seen(synced);
        out.leads.push(raw);
    }
    for (raw, synced) in db
        .live_rows_where(&db.table("activities"), "person_id", person)
        .await?
    {
        seen(synced);
        if is_done(&raw) {
            out.done_activities.push(raw);
        } else {
            out.open_activities.push(raw);
        }
    }
    for list in [
        &mut out.deals,
        &mut out.leads,
        &mut out.open_activities,
        &mut out.done_activities,
    ] {
        list.sort_by(|a, b| a["id"].to_string().cmp(&b["id"].to_string()));
    }
    out.freshest_at = freshest;
    Ok(out)
}
