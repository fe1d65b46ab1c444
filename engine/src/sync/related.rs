//! The records a CRM relates to its people (Salesforce Accounts, Opportunities, their contact
//! roles and Tasks), kept per connection for the journey conditions, triggers and actions
//! (ADR 23): the initial sync reads every one, then every
//! `salesforce.related_poll_interval_secs` the changes and deletes since each stream's cursor
//! are read. Each stream's listing resumes at its last stored page after a crash; a page, its
//! record keys and its cursors are stored in one transaction. An Account renamed, or with a
//! mapped field changed, is carried to its Contacts' app contacts (ADR 36).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tandem_core::{FieldKey, FieldValue};

use crate::store::{crm_related, cursors, organizations};
use crate::sync::connections::{self, ConnectionCtx};
use crate::sync::{Engine, SyncError};

/// When the related streams were last read (RFC 3339, tandem's clock).
pub const READ_AT: &str = "related:read_at";

/// Set (in the transaction of the initial sync's last page) once an initial sync has kept
/// every person it read with its owner and organization (`crm_person`); absent on a
/// connection whose initial sync ran before tandem kept them, until "Run initial sync".
const PERSONS_KEPT: &str = "related:persons_kept";

/// The newest change time (the CRM's text) a stream has read: where its next read reaches back
/// from. Absent while the stream's first listing has not finished.
fn read_key(stream: &str) -> String {
    format!("related:{stream}")
}

/// The next page of a stream's first listing, while it runs.
fn page_key(stream: &str) -> String {
    format!("related:{stream}:page")
}

/// The newest change time the running listing has seen.
fn seen_key(stream: &str) -> String {
    format!("related:{stream}:seen")
}

/// When the running listing began (tandem's clock): what it has not stored again by its end
/// is gone from the CRM.
fn began_key(stream: &str) -> String {
    format!("related:{stream}:began")
}

/// Whether every related stream of the connection has been read once: only then does tandem
/// know every such record.
pub async fn known(engine: &Engine, conn: &ConnectionCtx) -> Result<bool, SyncError> {
    for stream in conn.crm.related_streams() {
        if cursors::get(&engine.store, conn.id, &read_key(stream))
            .await?
            .is_none()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Keeps the owner and organization of persons a read found (a page of the initial sync or of
/// the change poll, in its transaction), for a CRM whose persons' conditions are answered from
/// what tandem keeps (Salesforce): one statement per page.
pub async fn keep_persons(
    txn: &impl crate::store::Conn,
    conn: &ConnectionCtx,
    persons: &[crate::crm::CrmPerson],
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    if conn.crm.related_streams().is_empty() || persons.is_empty() {
        return Ok(());
    }
    Ok(crate::store::crm_persons::save_read(txn, conn.id, persons, now).await?)
}

/// Notes, in the transaction of the initial sync's last page, that every person it read was
/// kept (see [`keep_persons`]).
pub async fn persons_kept_in(
    txn: &impl crate::store::Conn,
    conn: &ConnectionCtx,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    if conn.crm.related_streams().is_empty() {
        return Ok(());
    }
    cursors::set(txn, conn.id, PERSONS_KEPT, &now.to_rfc3339(), now).await?;
    Ok(())
}

/// Whether tandem keeps the owner and organization of the connection's persons: an initial
/// sync that kept them has finished (the change poll keeps them current after it).
pub async fn persons_known(engine: &Engine, conn: &ConnectionCtx) -> Result<bool, SyncError> {
    Ok(cursors::get(&engine.store, conn.id, PERSONS_KEPT)
        .await?
        .is_some())
}

/// Reads what the connection's related streams have new: a stream never read is listed in
/// full (or from where its listing stopped), the others from their cursor less the poll
/// overlap. Returns how many records were stored.
pub async fn catch_up(engine: &Engine, conn: &ConnectionCtx) -> Result<usize, SyncError> {
    // Deletes older than the CRM tells of are lost to a change read: streams not read for
    // that long are listed in full again, and what a listing does not see is gone.
    let relist = deletes_out_of_reach(engine, conn).await?;
    let mut stored = 0;
    for stream in conn.crm.related_streams() {
        stored += catch_up_stream(engine, conn, stream, relist).await?;
    }
    if !conn.crm.related_streams().is_empty() {
        let now = engine.now();
        cursors::set(&engine.store, conn.id, READ_AT, &now.to_rfc3339(), now).await?;
        engine.last_related_reads.insert(conn.id, now);
    }
    Ok(stored)
}

/// A person's deals, oldest first: from the records tandem keeps when it has read every one
/// (no CRM call; as fresh as the last read), else from the CRM.
pub async fn person_deals(
    engine: &Engine,
    conn: &ConnectionCtx,
    person: tandem_core::PersonId,
) -> Result<Vec<crate::crm::CrmDeal>, SyncError> {
    if !conn.crm.related_streams().is_empty() && known(engine, conn).await? {
        let deals = crm_related::deals_of_person(&engine.store, conn.id, person).await?;
        return Ok(deals
            .into_iter()
            .map(|deal| crate::crm::CrmDeal {
                id: deal.id,
                title: deal.name,
            })
            .collect());
    }
    Ok(conn.crm.person_deals(&conn.session, person).await?)
}

/// Notes a record tandem created (a journey action's deal or activity, a logged e-mail), for
/// a CRM whose triggers come from these reads: tandem's own write is not announced back to the
/// app (it heard `action.done`, or asked for the e-mail).
pub async fn note_created(
    engine: &Engine,
    conn: &ConnectionCtx,
    record: crate::crm::CrmRelated,
) -> Result<(), SyncError> {
    if conn.crm.related_streams().is_empty() {
        return Ok(());
    }
    Ok(crm_related::note_created(&engine.store, conn.id, &record, engine.now()).await?)
}

/// Notes the stage a journey action moved a deal to (see [`note_created`]).
pub async fn note_deal_stage(
    engine: &Engine,
    conn: &ConnectionCtx,
    deal_id: i64,
    stage_id: i64,
) -> Result<(), SyncError> {
    if conn.crm.related_streams().is_empty() {
        return Ok(());
    }
    Ok(
        crm_related::note_deal_stage(&engine.store, conn.id, deal_id, stage_id, engine.now())
            .await?,
    )
}

/// The journey conditions of a person of a connection whose CRM has no live mirror
/// (Salesforce), from the records kept (no CRM call): the person (`id`, `lead`, `owner_id`,
/// `org_id`: the Contact's Account) as the Lead/Contact reads last kept it (null before one
/// did), its deals and its open and done
/// activities, each the record as the CRM answered it plus `id` (tandem's number for it) and
/// `status` (and a deal's `stage_id`); `freshest_at` is when they were last read. `None` while
/// tandem has not read every such record yet. A contact with no person has none.
pub async fn conditions(
    engine: &Engine,
    conn: &ConnectionCtx,
    person: Option<tandem_core::PersonId>,
) -> Result<Option<crate::mirror::conditions::CrmRecords>, SyncError> {
    if conn.crm.related_streams().is_empty() || !known(engine, conn).await? {
        return Ok(None);
    }
    let mut out = crate::mirror::conditions::CrmRecords {
        freshest_at: cursors::get(&engine.store, conn.id, READ_AT).await?,
        ..Default::default()
    };
    let Some(person) = person else {
        return Ok(Some(out));
    };
    out.person = crate::store::crm_persons::get(&engine.store, conn.id, person)
        .await?
        .map(|kept| {
            serde_json::json!({
                "id": kept.person_id,
                "lead": kept.lead,
                "owner_id": kept.owner_id,
                "org_id": kept.org_id,
            })
        });
    for deal in crm_related::deals_of_person(&engine.store, conn.id, person).await? {
        out.deals.push(deal.to_json());
    }
    for activity in crm_related::activities_of_person(&engine.store, conn.id, person).await? {
        if activity.status.as_deref() == Some("done") {
            out.done_activities.push(activity.to_json());
        } else {
            out.open_activities.push(activity.to_json());
        }
    }
    Ok(Some(out))
}

/// Whether the connection's related streams are due a read (`related_poll_interval_secs`
/// since the last one, with a tenth of slack for the loop's own timing). The last read's time
/// is stored, so a restart does not read again at once.
pub async fn due(engine: &Engine, conn: &ConnectionCtx) -> Result<bool, SyncError> {
    if conn.crm.related_streams().is_empty() {
        return Ok(false);
    }
    let last = match engine.last_related_reads.get(&conn.id).map(|last| *last) {
        Some(last) => Some(last),
        None => {
            let stored = cursors::get(&engine.store, conn.id, READ_AT)
                .await?
                .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
                .map(|at| at.with_timezone(&Utc));
            if let Some(at) = stored {
                engine.last_related_reads.insert(conn.id, at);
            }
            stored
        }
    };
    let interval = engine.settings.salesforce.related_poll_interval_secs;
    let interval_ms = i64::try_from(interval.saturating_mul(900)).unwrap_or(i64::MAX);
    Ok(last.is_none_or(|last| (engine.now() - last).num_milliseconds() >= interval_ms))
}

/// Makes every related stream of the connection be listed in full again ("Run initial sync").
pub async fn restart(
    engine: &Engine,
    connection: tandem_core::ConnectionId,
    streams: &[&str],
) -> Result<(), SyncError> {
    for stream in streams {
        for key in [
            read_key(stream),
            page_key(stream),
            seen_key(stream),
            began_key(stream),
        ] {
            cursors::clear(&engine.store, connection, &key).await?;
        }
    }
    cursors::clear(&engine.store, connection, READ_AT).await?;
    cursors::clear(&engine.store, connection, PERSONS_KEPT).await?;
    engine.last_related_reads.remove(&connection);
    Ok(())
}

async fn catch_up_stream(
    engine: &Engine,
    conn: &ConnectionCtx,
    stream: &str,
    relist: bool,
) -> Result<usize, SyncError> {
    let db = &engine.store;
    let read = cursors::get(db, conn.id, &read_key(stream)).await?;
    // The first listing records what exists; a stream read before announces what changed.
    let announce = read.is_some();
    let listing = read.is_none() || relist;
    let (_, overlap_secs) = conn.crm.poll_interval_and_overlap(&engine.settings);
    let overlap = chrono::Duration::seconds(i64::try_from(overlap_secs).unwrap_or(90));
    let since: Option<DateTime<Utc>> = read
        .as_deref()
        .filter(|_| !listing)
        .and_then(|text| conn.crm.parse_time(text))
        .and_then(|t| DateTime::from_timestamp_millis(t.0))
        .map(|t| t - overlap);
    let (mut cursor, mut newest, began) = if listing {
        let cursor = cursors::get(db, conn.id, &page_key(stream)).await?;
        let began = match &cursor {
            None => {
                let now = engine.now();
                cursors::set(db, conn.id, &began_key(stream), &now.to_rfc3339(), now).await?;
                Some(now)
            }
            // A listing resumed: when it began, if it was noted (else nothing is swept).
            Some(_) => cursors::get(db, conn.id, &began_key(stream))
                .await?
                .and_then(|at| DateTime::parse_from_rfc3339(&at).ok())
                .map(|at| at.with_timezone(&Utc)),
        };
        let seen = cursors::get(db, conn.id, &seen_key(stream)).await?;
        (cursor, seen, began)
    } else {
        (None, read, None)
    };
    let mut stored = 0;
    loop {
        let page = conn
            .crm
            .related_page(&conn.session, stream, since, cursor.take())
            .await?;
        for item in &page.items {
            if let Some(modified) = item.modified.as_deref().filter(|_| !item.deleted) {
                if newest
                    .as_deref()
                    .is_none_or(|n| is_later(conn, modified, n))
                {
                    newest = Some(modified.to_owned());
                }
            }
        }
        // Organizations (Accounts) renamed or with mapped fields changed carry the change to
        // their linked contacts before the page is stored (should that fail, the page is read
        // again and the change found).
        if announce {
            let named: Vec<(i64, String)> = page
                .items
                .iter()
                .filter(|i| i.kind == crate::crm::RelatedKind::Company && !i.deleted)
                .filter_map(|i| Some((i.id, i.name.clone()?)))
                .collect();
            follow_organization_changes(engine, conn, &named).await?;
        }
        // Read before the transaction (a CRM call; on SQLite the transaction holds the store).
        let prefetched = if !announce {
            Default::default()
        } else {
            crate::sync::triggers::prefetch_related(engine, conn, &page.items).await?
        };
        let keys = conn.crm.take_new_record_keys(conn.id);
        let now = engine.now();
        let saved = async {
            let txn = connections::begin_with_keys(engine, conn, &keys).await?;
            if announce {
                crate::sync::triggers::related_changes(
                    &txn,
                    conn.id,
                    &page.items,
                    &prefetched,
                    now,
                )
                .await?;
            }
            crm_related::save(&txn, conn.id, &page.items, now).await?;
            if let (None, Some(began)) = (&page.next_cursor, began) {
                let gone = unseen_since(&txn, conn, stream, began).await?;
                if announce {
                    let none = Default::default();
                    crate::sync::triggers::related_changes(&txn, conn.id, &gone, &none, now)
                        .await?;
                }
                crm_related::save(&txn, conn.id, &gone, now).await?;
                cursors::clear(&txn, conn.id, &began_key(stream)).await?;
            }
            match (&page.next_cursor, listing) {
                (Some(next), true) => {
                    cursors::set(&txn, conn.id, &page_key(stream), next, now).await?;
                    if let Some(newest) = &newest {
                        cursors::set(&txn, conn.id, &seen_key(stream), newest, now).await?;
                    }
                }
                (Some(_), false) => {}
                (None, _) => {
                    cursors::clear(&txn, conn.id, &page_key(stream)).await?;
                    cursors::clear(&txn, conn.id, &seen_key(stream)).await?;
                    // An empty stream is read from the start of time again (nothing missed).
                    let newest = newest.as_deref().unwrap_or("1970-01-01T00:00:00.000+0000");
                    cursors::set(&txn, conn.id, &read_key(stream), newest, now).await?;
                }
            }
            txn.commit().await?;
            Ok::<_, SyncError>(())
        }
        .await;
        if let Err(error) = saved {
            connections::keep_record_keys(engine, conn, &keys).await;
            return Err(error);
        }
        stored += page.items.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(stored),
        }
    }
}

/// Organizations a poll of the CRM's organizations read (Salesforce's Accounts, by their change
/// stream: a Contact's `SystemModstamp` does not move when its Account changes): for each one
/// tandem knows whose name changed, or whose mapped fields changed (re-read for them all in
/// one call per 200), its persons are re-read and merged, in one transaction that also keeps
/// the new name and fields (so a failure leaves the change to be found again by the next
/// read).
async fn follow_organization_changes(
    engine: &Engine,
    conn: &ConnectionCtx,
    organizations: &[(i64, String)],
) -> Result<(), SyncError> {
    let names = conn.crm.company_organization(&conn.map, false).is_some();
    let fields = crate::sync::organizations::has_fields(conn);
    if !names && !fields {
        return Ok(());
    }
    let db = &engine.store;
    let ids: Vec<i64> = organizations.iter().map(|(id, _)| *id).collect();
    let mut known_names = organizations::names_of(db, conn.id, &ids).await?;
    let mut known_fields = match fields {
        true => organizations::fields_of_many(db, conn.id, &ids).await?,
        false => Default::default(),
    };
    // (id, new name if renamed, fields kept) of the organizations tandem knows.
    let mut known = Vec::new();
    for (id, name) in organizations {
        let known_name = known_names.remove(id);
        let kept_fields = known_fields.remove(id);
        if known_name.is_none() && kept_fields.is_none() {
            continue;
        }
        let renamed = (names && known_name.is_some_and(|k| k != *name))
            .then(|| tandem_core::organization_key(name).map(|key| (key, name.clone())))
            .flatten();
        known.push((*id, renamed, kept_fields));
    }
    let read: BTreeMap<i64, BTreeMap<FieldKey, FieldValue>> = if fields && !known.is_empty() {
        let ids: Vec<i64> = known.iter().map(|(id, ..)| *id).collect();
        conn.crm
            .organizations(&conn.session, &conn.map, &ids)
            .await?
            .into_iter()
            .map(|o| (o.id, o.fields))
            .collect()
    } else {
        BTreeMap::new()
    };
    for (id, renamed, known_fields) in known {
        let new_fields = read.get(&id).filter(|f| known_fields.as_ref() != Some(*f));
        if renamed.is_none() && new_fields.is_none() {
            continue;
        }
        let people = conn
            .crm
            .organization_people(&conn.session, &conn.map, id)
            .await?;
        let keys = conn.crm.take_new_record_keys(conn.id);
        let applied = async {
            let txn = crate::sync::connections::begin_with_keys(engine, conn, &keys).await?;
            let now = engine.now();
            if let Some((key, name)) = &renamed {
                organizations::remember(&txn, conn.id, id, key, name, now).await?;
            }
            if let Some(new_fields) = new_fields {
                organizations::remember_fields(&txn, conn.id, id, new_fields, now).await?;
            }
            for person in &people {
                let applied =
                    crate::sync::inbound::apply_fresh_person_in(&txn, engine, conn, person, now)
                        .await?;
                if let Some((contact_id, event)) = applied.app_event() {
                    crate::sync::app::contact_event(&txn, contact_id, event, None, now).await?;
                }
            }
            txn.commit().await?;
            Ok::<_, SyncError>(())
        }
        .await;
        if let Err(error) = applied {
            crate::sync::connections::keep_record_keys(engine, conn, &keys).await;
            return Err(error);
        }
    }
    Ok(())
}

/// Whether the related streams were last read longer ago than the CRM tells deletes for
/// (Salesforce's `deleted` resource: 15 days), e.g. after tandem was stopped that long.
async fn deletes_out_of_reach(engine: &Engine, conn: &ConnectionCtx) -> Result<bool, SyncError> {
    let Some(reach) = conn.crm.deletes_reach() else {
        return Ok(false);
    };
    let last = cursors::get(&engine.store, conn.id, READ_AT)
        .await?
        .and_then(|at| DateTime::parse_from_rfc3339(&at).ok());
    Ok(last.is_some_and(|last| engine.now() - last.with_timezone(&Utc) > reach))
}

/// The records of stream `stream` a full listing that began at `began` did not store again,
/// as deletes (announced once per listing: their version is the listing's start).
async fn unseen_since(
    txn: &impl crate::store::Conn,
    conn: &ConnectionCtx,
    stream: &str,
    began: DateTime<Utc>,
) -> Result<Vec<crate::crm::CrmRelated>, SyncError> {
    let Some(kind) = conn.crm.related_kind(stream) else {
        return Ok(Vec::new());
    };
    let ids = crm_related::live_ids_stored_before(txn, conn.id, kind, began).await?;
    Ok(ids
        .into_iter()
        .map(|id| crate::crm::CrmRelated {
            deleted: true,
            modified: Some(began.to_rfc3339()),
            ..crate::crm::CrmRelated::bare(kind, id)
        })
        .collect())
}

fn is_later(conn: &ConnectionCtx, a: &str, b: &str) -> bool {
    match (conn.crm.parse_time(a), conn.crm.parse_time(b)) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        _ => false,
    }
}
