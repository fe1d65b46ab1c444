//! App → Pipedrive: executing outbox jobs. A push sends exactly the mapped fields whose local
//! value differs from the link's base (so several queued edits collapse into one PATCH with the
//! latest values); a contact without a person is created once (searching first when tandem's
//! own knowledge may be stale or after an uncertain failure).

pub mod actions;
mod batch;

pub use batch::push_contacts;

use std::collections::BTreeMap;

use tandem_core::{
    decide_outbound_create, plan_outbound_create, reaches_pipedrive, ApId, ContactId, ContactScope,
    CrmError, CrmErrorKind, FieldKey, FieldValue, FoundPerson, LinkState, OutboundCreate,
    OutboundCreateDecision, OutboundCreatePlan, OutboundSearchResults, PersonId, Side,
};

use crate::crm::{email_of, CrmPerson};
use crate::queue::{self, Job, JobPayload, Priority};
use crate::store::{connections as stored_connections, Conn};
use crate::sync::app::contacts::{self, LocalContact};
use crate::sync::connections::ConnectionCtx;
use crate::sync::inbound::poller;
use crate::sync::links::{self, Link};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{inbound, Engine, SyncError};

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Nothing differed (the job was coalesced into an earlier one, or the contact is out of scope).
    Nothing,
    Patched {
        person_id: PersonId,
        fields: usize,
    },
    Created {
        person_id: PersonId,
    },
    LinkedExisting {
        person_id: PersonId,
    },
    /// The person was gone in Pipedrive; the contact was unlinked.
    PersonGone,
    /// Written too recently: the job waits until then, collecting later edits.
    Deferred {
        until: chrono::DateTime<chrono::Utc>,
    },
}

/// The fields of `contact` that must be written to the linked person.
pub fn pending_writes(
    conn: &ConnectionCtx,
    contact: &LocalContact,
    link: &Link,
) -> BTreeMap<FieldKey, FieldValue> {
    link.state
        .pending_writes(&conn.map.restrict(&contact.fields), &conn.map.policy())
}

pub async fn push_contact(
    engine: &Engine,
    conn: &ConnectionCtx,
    job: &Job,
    contact_id: ContactId,
) -> Result<Pushed, CrmFailure> {
    let (Some(contact), link) = read_contact_and_link(&engine.store, conn, contact_id).await?
    else {
        return Ok(Pushed::Nothing);
    };
    if contact.archived {
        return Ok(Pushed::Nothing);
    }
    match link {
        Some(link) => patch(engine, conn, &contact, link).await,
        None => create(engine, conn, job, &contact).await,
    }
}

/// A contact and its link to `conn`'s person, read from one snapshot: what differs between
/// them is what the contact changed, never a poll that committed between two reads.
pub(crate) async fn read_contact_and_link(
    store: &crate::store::Store,
    conn: &ConnectionCtx,
    contact_id: ContactId,
) -> Result<(Option<LocalContact>, Option<Link>), SyncError> {
    let snapshot = store.begin_snapshot().await?;
    let contact = contacts::load(&snapshot, contact_id).await?;
    let link = match &contact {
        Some(_) => links::by_contact(&snapshot, conn.id, contact_id).await?,
        None => None,
    };
    snapshot.commit().await?;
    Ok((contact, link))
}

/// Re-reads a person and merges what Pipedrive holds now (see `JobPayload::RefreshPerson`).
pub async fn refresh_person(
    engine: &Engine,
    conn: &ConnectionCtx,
    person_id: PersonId,
) -> Result<(), CrmFailure> {
    match conn
        .crm
        .get_person(&conn.session, &conn.map, person_id)
        .await
    {
        Ok(mut person) => {
            crate::sync::organizations::learn_names(engine, conn, std::slice::from_ref(&person))
                .await
                .map_err(|e| CrmFailure::from_organization(e, Some(person_id)))?;
            crate::sync::organizations::complete(&engine.store, conn, &mut person).await?;
            let now = engine.now();
            let txn = engine.store.begin().await?;
            let applied = inbound::apply_fresh_person_in(&txn, engine, conn, &person, now).await?;
            if let Some((contact_id, event)) = applied.app_event() {
                crate::sync::app::contact_event(&txn, contact_id, event, None, now).await?;
            }
            txn.commit().await?;
            Ok(())
        }
        Err(error) if error.kind == CrmErrorKind::NotFound => {
            let now = engine.now();
            let txn = engine.store.begin().await?;
            inbound::person_deleted(&txn, engine, conn, person_id, None, now).await?;
            txn.commit().await?;
            Ok(())
        }
        Err(error) => Err(CrmFailure::Crm(error, Some(person_id))),
    }
}

/// The person of a contact for a journey action: the linked one, or one found or created now
/// (a creating action puts the contact in scope). `None` when nothing could be linked.
pub async fn ensure_person(
    engine: &Engine,
    conn: &ConnectionCtx,
    job: &Job,
    contact_id: ContactId,
) -> Result<Option<PersonId>, CrmFailure> {
    let db = &engine.store;
    if let Some(link) = links::by_contact(db, conn.id, contact_id).await? {
        return Ok(Some(link.person_id));
    }
    let Some(contact) = contacts::load(db, contact_id).await? else {
        return Ok(None);
    };
    Ok(match create(engine, conn, job, &contact).await? {
        Pushed::Created { person_id } | Pushed::LinkedExisting { person_id } => Some(person_id),
        _ => None,
    })
}

/// A step of a push that either ended (`Done`) or has a CRM write to make (`Go`).
pub(crate) enum Step<T> {
    Done(Pushed),
    Go(T),
}

/// A patch ready to leave: its writes are recorded on the link (write-ahead).
pub(crate) struct PatchWrite {
    pub(crate) person_id: PersonId,
    /// The contact's values, as recorded on the link.
    writes: BTreeMap<FieldKey, FieldValue>,
    /// What the CRM takes (a company as its organization's id); empty when only organization
    /// fields changed (the person is then read, not written).
    pub(crate) crm_writes: BTreeMap<FieldKey, FieldValue>,
}

async fn patch(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact: &LocalContact,
    link: Link,
) -> Result<Pushed, CrmFailure> {
    let write = match prepare_patch(engine, conn, contact, link).await? {
        Step::Done(pushed) => return Ok(pushed),
        Step::Go(write) => write,
    };
    // Only organization fields changed: the person is read (its organization is where they
    // go), not written.
    let written = if write.crm_writes.is_empty() {
        conn.crm
            .get_person(&conn.session, &conn.map, write.person_id)
            .await
    } else {
        conn.crm
            .update_person(&conn.session, &conn.map, write.person_id, &write.crm_writes)
            .await
    };
    finish_patch(engine, conn, contact, write, written).await
}

/// What a patch of `contact` will write, recorded on the link before it leaves; or why
/// nothing leaves now.
pub(crate) async fn prepare_patch(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact: &LocalContact,
    link: Link,
) -> Result<Step<PatchWrite>, CrmFailure> {
    let writes = pending_writes(conn, contact, &link);
    if writes.is_empty() {
        return Ok(Step::Done(Pushed::Nothing));
    }
    let now = engine.now();
    if let Some(until) = paced_until(engine, &link).filter(|until| *until > now) {
        return Ok(Step::Done(Pushed::Deferred { until }));
    }
    // Write-ahead: the values are tandem's own from before the request leaves, so a write that
    // lands while tandem loses the answer or is killed is still recognised as its echo.
    let person_id = link.person_id;
    // The company becomes the id of its organization (found or created) before anything is
    // recorded as written.
    let lead = conn.crm.person_is_lead(conn.id, person_id);
    let crm_writes = crate::sync::organizations::crm_writes(engine, conn, &writes, lead)
        .await
        .map_err(|e| CrmFailure::from_organization(e, Some(person_id)))?;
    update_link(engine, conn, person_id, |link| {
        link.state.begin_write(&writes)
    })
    .await?;
    Ok(Step::Go(PatchWrite {
        person_id,
        writes,
        crm_writes,
    }))
}

/// Records what the CRM answered to a patch: the person as it is now merged into the link,
/// or the failure (a person gone unlinks; refused values are not sent again).
pub(crate) async fn finish_patch(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact: &LocalContact,
    write: PatchWrite,
    written: Result<CrmPerson, CrmError>,
) -> Result<Pushed, CrmFailure> {
    let PatchWrite {
        person_id, writes, ..
    } = write;
    let person = match written {
        Ok(mut person) => {
            crate::sync::organizations::write_fields(engine, conn, &person, &writes)
                .await
                .map_err(|e| CrmFailure::from_organization(e, Some(person_id)))?;
            crate::sync::organizations::complete(&engine.store, conn, &mut person).await?;
            person
        }
        Err(error) if error.kind == CrmErrorKind::NotFound => {
            let now = engine.now();
            let txn = engine.store.begin().await?;
            // Gone; or living on as another person (a converted Lead's Contact): the link
            // follows it, and the edit goes there.
            let moved_to = error.moved_to.as_deref().copied();
            let applied =
                inbound::person_deleted(&txn, engine, conn, person_id, moved_to, now).await?;
            if let Some((contact_id, event)) = applied.app_event() {
                crate::sync::app::contact_event(&txn, contact_id, event, None, now).await?;
            }
            if moved_to.is_some() {
                crate::sync::connections::save_record_keys(engine, &txn, conn).await?;
                queue::enqueue(
                    &txn,
                    conn.id,
                    &contact.id.to_string(),
                    Priority::Edit,
                    &JobPayload::PushContact {
                        contact_id: contact.id,
                    },
                    now,
                )
                .await?;
            }
            txn.commit().await?;
            return Ok(Pushed::PersonGone);
        }
        Err(error) => {
            if error.kind == CrmErrorKind::Rejected {
                // Refused as sent: not sent again until the values change or an admin retries.
                update_link(engine, conn, person_id, |link| {
                    link.state.write_refused(&writes);
                })
                .await?;
            }
            return Err(CrmFailure::Crm(error, Some(person_id)));
        }
    };
    let now = engine.now();
    let remote = person.snapshot.clone();
    let txn = engine.store.begin().await?;
    // The link as it is now, not the copy read before the call: the poller may have merged a
    // state of this person while the write was in flight, and saving the old copy would undo
    // that (losing what it recorded as written or agreed).
    let Some(mut link) = links::by_person_for_update(&txn, conn.id, person_id).await? else {
        // Unlinked meanwhile (deleted or merged away in Pipedrive): nothing to record.
        txn.commit().await?;
        return Ok(Pushed::PersonGone);
    };
    let normalised = link.state.write_succeeded(&writes, &remote);
    link.state.versions.record(Side::Local, contact.version);
    link.last_write_at = Some(now);
    contacts::update(&txn, contact.id, &normalised, contacts::Origin::Remote, now).await?;
    links::save(&txn, &link, now).await?;
    // The response is the person as it is now: merge it like an inbound event, so a change
    // made in Pipedrive meanwhile (whose webhook is older than this response) is not lost.
    inbound::merge_into_link(&txn, conn, link, remote, now).await?;
    // tandem's own write of the owner is not announced back by the change poll (an owner
    // someone else gave meanwhile, read back with another write, still is).
    if writes.keys().any(|field| {
        conn.map
            .get(field)
            .is_some_and(|f| f.remote == crate::crm::RemoteField::OwnerId)
    }) {
        crate::sync::triggers::note_person(&txn, conn, &person).await?;
    }
    stored_connections::mark_success(&txn, conn.id, now).await?;
    txn.commit().await?;
    Ok(Pushed::Patched {
        person_id: person.id,
        fields: writes.len(),
    })
}

/// When the next write to this link's person may leave (`workers.min_write_interval_ms` after
/// the last one), if there was one.
fn paced_until(engine: &Engine, link: &Link) -> Option<chrono::DateTime<chrono::Utc>> {
    let interval = engine.settings.workers.min_write_interval_ms;
    if interval == 0 {
        return None;
    }
    let interval = chrono::Duration::milliseconds(i64::try_from(interval).unwrap_or(i64::MAX));
    link.last_write_at.map(|at| at + interval)
}

/// Changes a person's link in its own transaction, with the row locked.
async fn update_link(
    engine: &Engine,
    conn: &ConnectionCtx,
    person_id: PersonId,
    change: impl FnOnce(&mut Link),
) -> Result<(), SyncError> {
    let txn = engine.store.begin().await?;
    if let Some(mut link) = links::by_person_for_update(&txn, conn.id, person_id).await? {
        change(&mut link);
        links::save(&txn, &link, engine.now()).await?;
    }
    txn.commit().await?;
    Ok(())
}

async fn create(
    engine: &Engine,
    conn: &ConnectionCtx,
    job: &Job,
    contact: &LocalContact,
) -> Result<Pushed, CrmFailure> {
    let db = &engine.store;
    if let OutboundCreatePlan::SearchFirst { ap_id, email } =
        match plan_create(engine, conn, job, contact).await? {
            Step::Done(pushed) => return Ok(pushed),
            Step::Go(plan) => plan,
        }
    {
        let mut by_ap_id = Vec::new();
        if conn.map.apid_key.is_some() {
            by_ap_id = conn
                .crm
                .search_by_external_id(&conn.session, &ap_id)
                .await
                .map_err(|e| CrmFailure::Crm(e, None))?;
        }
        let mut by_email = Vec::new();
        if by_ap_id.is_empty() {
            if let Some(email) = &email {
                by_email = conn
                    .crm
                    .search_by_email(&conn.session, email)
                    .await
                    .map_err(|e| CrmFailure::Crm(e, None))?;
            }
        }
        let results = search_results(db, conn, by_ap_id, by_email).await?;
        if let Some(pushed) = link_if_found(engine, conn, contact, &results).await? {
            return Ok(pushed);
        }
    }
    let new = prepare_create(engine, conn, contact).await?;
    let created = conn
        .crm
        .create_person_detailed(
            &conn.session,
            &conn.map,
            &new.person.fields,
            &new.person.ap_id,
            new.person.email.as_ref(),
            new.person.default_owner,
        )
        .await
        .map_err(|e| CrmFailure::Crm(e, None))?;
    finish_create(engine, conn, contact, &new.fields, created).await
}

/// Whether (and how) a contact without a person reaches the CRM: out of scope or linked
/// meanwhile (`Done`), else the plan (search first, or create directly).
pub(crate) async fn plan_create(
    engine: &Engine,
    conn: &ConnectionCtx,
    job: &Job,
    contact: &LocalContact,
) -> Result<Step<OutboundCreatePlan>, CrmFailure> {
    let knowledge_is_fresh = poller::knows_every_person(&engine.store, conn.id).await?;
    let mut planned = plan_together(engine, conn, &[(job, contact)], knowledge_is_fresh).await?;
    Ok(planned.pop().unwrap_or(Step::Done(Pushed::Nothing)))
}

/// [`plan_create`] of the contacts of a batch (each with its job), with whether tandem has
/// read every person of the connection (`poller::knows_every_person`) known already: read
/// together, in a few statements for the batch. One result per contact, in order; should
/// planning them together fail, each is planned on its own, so a failure stays its own
/// contact's.
pub(crate) async fn plan_creates(
    engine: &Engine,
    conn: &ConnectionCtx,
    wanted: &[(&Job, &LocalContact)],
    knowledge_is_fresh: bool,
) -> Vec<Result<Step<OutboundCreatePlan>, CrmFailure>> {
    match plan_together(engine, conn, wanted, knowledge_is_fresh).await {
        Ok(planned) => planned.into_iter().map(Ok).collect(),
        Err(failure) if wanted.len() < 2 => vec![Err(failure)],
        Err(failure) => {
            tracing::warn!(connection_id = %conn.id, error = %failure, "Planning a batch of creates together failed; planning each on its own.");
            let mut planned = Vec::with_capacity(wanted.len());
            for one in wanted {
                planned.push(
                    plan_together(engine, conn, std::slice::from_ref(one), knowledge_is_fresh)
                        .await
                        .map(|mut p| p.pop().unwrap_or(Step::Done(Pushed::Nothing))),
                );
            }
            planned
        }
    }
}

/// The plans of [`plan_creates`], all or nothing.
async fn plan_together(
    engine: &Engine,
    conn: &ConnectionCtx,
    wanted: &[(&Job, &LocalContact)],
    knowledge_is_fresh: bool,
) -> Result<Vec<Step<OutboundCreatePlan>>, CrmFailure> {
    let db = &engine.store;
    let ids: Vec<ContactId> = wanted.iter().map(|(_, contact)| contact.id).collect();
    let in_list = contacts::in_list_many(db, &ids, contacts::PIPEDRIVE_LIST).await?;
    let reaching: Vec<bool> = wanted
        .iter()
        .map(|(job, contact)| {
            reaches_pipedrive(&ContactScope {
                linked: false,
                in_pipedrive_list: in_list.contains(&contact.id),
                touched_by_creating_action: job_is_creating_action(job),
            })
        })
        .collect();
    let mut linked_meanwhile = std::collections::HashMap::new();
    if knowledge_is_fresh {
        let reached: Vec<(&Job, ContactId)> = wanted
            .iter()
            .zip(&reaching)
            .filter(|(_, reaches)| **reaches)
            .map(|((job, contact), _)| (*job, contact.id))
            .collect();
        if let Some(since) = reached.iter().map(|(job, _)| job.created_at).max() {
            // tandem's copy of Pipedrive may lack a person created there moments ago (its
            // webhook late or lost): catch up first (once for all: a catch-up started after
            // the newest job serves every one), so an e-mail Pipedrive already has links
            // instead of making a second person.
            catch_up(engine, conn, since).await?;
            let reached: Vec<ContactId> = reached.iter().map(|(_, id)| *id).collect();
            linked_meanwhile = links::persons_of_contacts(db, conn.id, &reached).await?;
        }
    }
    Ok(wanted
        .iter()
        .zip(reaching)
        .map(|((job, contact), reaches)| {
            if !reaches {
                return Step::Done(Pushed::Nothing);
            }
            if let Some(person_id) = linked_meanwhile.get(&contact.id) {
                return Step::Done(Pushed::LinkedExisting {
                    person_id: *person_id,
                });
            }
            Step::Go(plan_outbound_create(&OutboundCreate {
                ap_id: ApId::for_contact(contact.id),
                email: email_of(contact.fields.get(tandem_core::keys::EMAIL)),
                knowledge_is_fresh,
                // At-least-once: a retried create may have reached Pipedrive before it failed.
                after_uncertain_failure: job.attempts > 0,
            }))
        })
        .collect())
}

/// What a search found, with whether each e-mail match is linked to another contact already.
pub(crate) async fn search_results(
    db: &crate::store::Store,
    conn: &ConnectionCtx,
    by_ap_id: Vec<PersonId>,
    by_email: Vec<PersonId>,
) -> Result<OutboundSearchResults, CrmFailure> {
    let mut results = OutboundSearchResults {
        by_ap_id,
        ..OutboundSearchResults::default()
    };
    if results.by_ap_id.is_empty() {
        for person in by_email {
            let linked_elsewhere = links::by_person(db, conn.id, person).await?.is_some();
            results.by_email.push(FoundPerson {
                person,
                linked_elsewhere,
            });
        }
    }
    Ok(results)
}

/// Links the contact to the person a search found, if the rules say so.
pub(crate) async fn link_if_found(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact: &LocalContact,
    results: &OutboundSearchResults,
) -> Result<Option<Pushed>, CrmFailure> {
    let OutboundCreateDecision::LinkExisting { person, .. } = decide_outbound_create(results)
    else {
        return Ok(None);
    };
    let mut person = conn
        .crm
        .get_person(&conn.session, &conn.map, person)
        .await
        .map_err(|e| CrmFailure::Crm(e, None))?;
    crate::sync::organizations::learn_names(engine, conn, std::slice::from_ref(&person))
        .await
        .map_err(|e| CrmFailure::from_organization(e, None))?;
    crate::sync::organizations::complete(&engine.store, conn, &mut person).await?;
    let now = engine.now();
    let txn = engine.store.begin().await?;
    link_found_person(&txn, conn, contact, &person, now).await?;
    txn.commit().await?;
    Ok(Some(Pushed::LinkedExisting {
        person_id: person.id,
    }))
}

/// A person to create for a contact: the contact's fields that flow to the CRM, and the
/// person as the connector takes it.
pub(crate) struct CreateWrite {
    pub(crate) fields: BTreeMap<FieldKey, FieldValue>,
    pub(crate) person: crate::crm::NewPerson,
}

pub(crate) async fn prepare_create(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact: &LocalContact,
) -> Result<CreateWrite, CrmFailure> {
    let fields: BTreeMap<FieldKey, FieldValue> = conn
        .map
        .restrict(&contact.fields)
        .into_iter()
        .filter(|(key, value)| {
            conn.map
                .policy()
                .rule_for(key)
                .direction
                .flows_from(Side::Local)
                && !value.is_cleared()
        })
        .collect();
    let crm_fields =
        crate::sync::organizations::crm_writes(engine, conn, &fields, conn.crm.creates_leads())
            .await
            .map_err(|e| CrmFailure::from_organization(e, None))?;
    Ok(CreateWrite {
        fields,
        person: crate::crm::NewPerson {
            fields: crm_fields,
            ap_id: ApId::for_contact(contact.id),
            email: email_of(contact.fields.get(tandem_core::keys::EMAIL)),
            default_owner: conn.default_owner,
        },
    })
}

/// Links a contact to the person just created for it, with the sync log's entries.
pub(crate) async fn finish_create(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact: &LocalContact,
    fields: &BTreeMap<FieldKey, FieldValue>,
    created: crate::crm::CreatedPerson,
) -> Result<Pushed, CrmFailure> {
    let person = completed(engine, conn, fields, created.person).await?;
    let one = ToLink {
        contact,
        fields,
        person: &person,
        placeholders: &created.placeholders,
    };
    let mut pushed = link_together(engine, conn, &[one]).await?;
    Ok(pushed.pop().unwrap_or(Pushed::Nothing))
}

/// A contact, the fields it was created with, and what the CRM answered for it.
type Created = (
    LocalContact,
    BTreeMap<FieldKey, FieldValue>,
    crate::crm::CreatedPerson,
);

/// [`finish_create`] for the records of one batch create, in one transaction (one commit for
/// the batch, not one per contact). Should that transaction fail, each contact is finished
/// in a transaction of its own, so a failure stays its own contact's.
pub(crate) async fn finish_creates(
    engine: &Engine,
    conn: &ConnectionCtx,
    created: Vec<Created>,
) -> Vec<Result<Pushed, CrmFailure>> {
    let mut results: Vec<Option<Result<Pushed, CrmFailure>>> = Vec::new();
    let mut ready = Vec::new();
    for (i, (contact, fields, created)) in created.into_iter().enumerate() {
        results.push(None);
        match completed(engine, conn, &fields, created.person).await {
            Ok(person) => ready.push((i, contact, fields, person, created.placeholders)),
            Err(failure) => results[i] = Some(Err(failure)),
        }
    }
    let items: Vec<ToLink<'_>> = ready
        .iter()
        .map(|(_, contact, fields, person, placeholders)| ToLink {
            contact,
            fields,
            person,
            placeholders,
        })
        .collect();
    match link_together(engine, conn, &items).await {
        Ok(pushed) => {
            for ((i, ..), pushed) in ready.iter().zip(pushed) {
                results[*i] = Some(Ok(pushed));
            }
        }
        Err(error) => {
            tracing::warn!(connection_id = %conn.id, error = %error, "Linking a batch of created persons in one transaction failed; linking each on its own.");
            for ((i, ..), item) in ready.iter().zip(&items) {
                let alone = link_together(engine, conn, std::slice::from_ref(item)).await;
                results[*i] = Some(
                    alone
                        .map(|mut p| p.pop().unwrap_or(Pushed::Nothing))
                        .map_err(CrmFailure::Internal),
                );
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Ok(Pushed::Nothing)))
        .collect()
}

/// The person just created, with its organization's mapped fields written and read.
async fn completed(
    engine: &Engine,
    conn: &ConnectionCtx,
    fields: &BTreeMap<FieldKey, FieldValue>,
    mut person: CrmPerson,
) -> Result<CrmPerson, CrmFailure> {
    crate::sync::organizations::write_fields(engine, conn, &person, fields)
        .await
        .map_err(|e| CrmFailure::from_organization(e, Some(person.id)))?;
    crate::sync::organizations::complete(&engine.store, conn, &mut person).await?;
    Ok(person)
}

/// A contact and the person just created for it, to link.
struct ToLink<'a> {
    contact: &'a LocalContact,
    fields: &'a BTreeMap<FieldKey, FieldValue>,
    person: &'a CrmPerson,
    placeholders: &'a [crate::crm::FilledPlaceholder],
}

/// Links each of `created` ([`link_created`]) in one transaction, which also stores the
/// created records' keys; if it fails, the keys are stored on their own (taken from the
/// connector, they would otherwise be lost with it).
async fn link_together(
    engine: &Engine,
    conn: &ConnectionCtx,
    created: &[ToLink<'_>],
) -> Result<Vec<Pushed>, SyncError> {
    let keys = conn.crm.take_new_record_keys(conn.id);
    let linked = async {
        let txn = crate::sync::connections::begin_with_keys(engine, conn, &keys).await?;
        let pushed = link_created(engine, &txn, conn, created).await?;
        txn.commit().await?;
        Ok(pushed)
    }
    .await;
    if linked.is_err() {
        crate::sync::connections::keep_record_keys(engine, conn, &keys).await;
    }
    linked
}

/// In `txn`: links each contact to the person created for it, with the sync log's entries
/// (the caller stores the created records' keys in the same transaction). The rows of all of
/// them are read and written together, a few multi-row statements for the batch.
async fn link_created<C: Conn>(
    engine: &Engine,
    txn: &C,
    conn: &ConnectionCtx,
    created: &[ToLink<'_>],
) -> Result<Vec<Pushed>, SyncError> {
    if created.is_empty() {
        return Ok(Vec::new());
    }
    let now = engine.now();
    let ids: Vec<ContactId> = created.iter().map(|item| item.contact.id).collect();
    // The create's own webhook may have been applied first (it links by apId): keep that link.
    let linked_already = links::persons_of_contacts(txn, conn.id, &ids).await?;
    let unlinked: Vec<ContactId> = ids
        .iter()
        .filter(|id| !linked_already.contains_key(id))
        .copied()
        .collect();
    // The contacts as they are now (the merge is against them, not the copies read before
    // the call).
    let mut current = contacts::load_many(txn, &unlinked).await?;
    let mut changes = Vec::with_capacity(created.len());
    let mut new_links = Vec::with_capacity(unlinked.len());
    let mut merges = Vec::new();
    let mut entries = Vec::new();
    for item in created {
        let ToLink {
            contact,
            fields,
            person,
            placeholders,
        } = item;
        let remote = &person.snapshot;
        let mut link = links::new_link(conn.id, contact.id, person.id);
        let (state, mut to_contact) = LinkState::created(fields, remote);
        link.state = state;
        link.state.versions.record(Side::Local, contact.version);
        if !linked_already.contains_key(&contact.id) {
            let mut now_contact = current
                .remove(&contact.id)
                .ok_or(SyncError::ContactNotFound(contact.id))?;
            // The values the CRM normalised are the contact's before the merge.
            now_contact.fields.extend(to_contact.clone());
            // Fields the CRM filled itself (the owner, ...) reach the contact and the base
            // now, so the create's own webhook finds nothing new.
            if inbound::worth_merging(txn, conn, &link, remote, inbound::StateSource::Fresh, now)
                .await?
            {
                let merged = inbound::merge_in_memory(conn, &mut link, &now_contact, remote);
                to_contact.extend(merged.to_local.clone());
                entries.extend(merged.entries(conn));
                merges.push(merged);
            }
            new_links.push(link);
        }
        changes.push((contact.id, to_contact));
        entries.push(
            Entry::new(
                Level::Info,
                Direction::Outbound,
                "person_created",
                format!("The contact was created in {}.", conn.crm.display_name()),
            )
            .connection(conn.id)
            .contact(contact.id)
            .person(person.id),
        );
        for filled in placeholders.iter() {
            entries.push(
                Entry::new(
                    Level::Info,
                    Direction::Outbound,
                    "placeholder_filled",
                    format!(
                        "{} requires {}; the app has none, so tandem wrote the placeholder \"{}\".",
                        conn.crm.display_name(),
                        filled.field,
                        filled.value
                    ),
                )
                .connection(conn.id)
                .contact(contact.id)
                .person(person.id)
                .hint("Fill the field in the app (or in the CRM); tandem reads the placeholder back as no value.")
                .detail(serde_json::json!({ "field": filled.field })),
            );
        }
    }
    let changes: Vec<_> = changes.iter().map(|(id, c)| (*id, c)).collect();
    contacts::update_many(txn, &changes, contacts::Origin::Remote, now).await?;
    links::insert_many(txn, &new_links, now).await?;
    for merged in &merges {
        merged.enqueue_push(txn, conn, now).await?;
    }
    // A person tandem created is not news to the change poll (no `lead.created`).
    let persons: Vec<&CrmPerson> = created.iter().map(|item| item.person).collect();
    crate::sync::triggers::note_persons(txn, conn, &persons).await?;
    contacts::add_many_to_list(txn, &ids, contacts::PIPEDRIVE_LIST, now).await?;
    stored_connections::mark_success(txn, conn.id, now).await?;
    synclog::record_many(txn, entries, now).await?;
    crate::sync::app::contact_events(txn, &ids, crate::sync::app::ContactEvent::Linked, now)
        .await?;
    Ok(created
        .iter()
        .map(|item| Pushed::Created {
            person_id: item.person.id,
        })
        .collect())
}

/// Brings tandem's copy of the connection's persons up to date with one change-capture poll
/// (`updated_since`, usually one page), unless one started after `since` (the moment the work
/// that needs it was enqueued): a round of creates enqueued together shares one catch-up.
async fn catch_up(
    engine: &Engine,
    conn: &ConnectionCtx,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<(), CrmFailure> {
    let slot = engine.catch_ups.entry(conn.id).or_default().clone();
    let mut last = slot.lock().await;
    if last.is_some_and(|started| started >= since) {
        return Ok(());
    }
    let started = engine.now();
    crate::sync::inbound::poller::poll_once(engine, conn)
        .await
        .map_err(|e| match e {
            SyncError::Crm(error) => CrmFailure::Crm(error, None),
            other => CrmFailure::Internal(other),
        })?;
    *last = Some(started);
    Ok(())
}

async fn link_found_person<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    contact: &LocalContact,
    person: &CrmPerson,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), SyncError> {
    let txn = txn.raw();
    // The person exists (found by apId or e-mail): link it as an inbound person would be.
    let remote = person.snapshot.clone();
    inbound::link_first_meeting(txn, conn, contact, person, &remote, now).await
}

fn job_is_creating_action(job: &Job) -> bool {
    matches!(job.payload, JobPayload::Action { .. })
}

/// A failed job: a CRM error (classified) or tandem's own failure.
#[derive(Debug, thiserror::Error)]
pub enum CrmFailure {
    #[error("{0}")]
    Crm(CrmError, Option<PersonId>),
    #[error(transparent)]
    Internal(#[from] SyncError),
}

impl CrmFailure {
    pub(crate) fn from_organization(
        error: crate::sync::organizations::OrganizationError,
        person: Option<PersonId>,
    ) -> Self {
        match error {
            crate::sync::organizations::OrganizationError::Crm(e) => Self::Crm(e, person),
            crate::sync::organizations::OrganizationError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<crate::store::StoreError> for CrmFailure {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<crate::queue::QueueError> for CrmFailure {
    fn from(error: crate::queue::QueueError) -> Self {
        Self::Internal(SyncError::Queue(error))
    }
}
