//! Pipedrive → app: a person as Pipedrive reports it (webhook, poller, initial sync,
//! reconciliation) is merged into the local contact store in one transaction. Stale and
//! duplicate events change nothing; tandem's own echoes produce no write.

pub mod duplicates;
pub mod inbox;
pub mod ingest;
pub mod poller;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use tandem_core::{
    resolve_inbound, ContactId, FieldKey, FieldValue, IdentityCandidates, InboundIdentity,
    InboundPerson, LinkState, LocalCandidate, PersonId, RemoteCheck, RemoteSource, Side, Snapshot,
};

use crate::crm::CrmPerson;
use crate::queue::{self, JobPayload, Priority};
use crate::store::{merged_persons, Conn};
use crate::sync::app::contacts::{self, Origin};
use crate::sync::connections::ConnectionCtx;
use crate::sync::links::{self, Link};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};

/// What applying one person did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Older than (or the same as) what was merged already.
    Stale,
    /// Merged into an existing link; `changed` local fields; `pushed` = a write back was queued.
    Merged {
        contact_id: ContactId,
        changed: usize,
        pushed: bool,
        conflicts: usize,
    },
    /// Linked to an existing contact (by apId or e-mail).
    Linked { contact_id: ContactId },
    /// A new local contact.
    Created {
        contact_id: ContactId,
        same_email_persons: usize,
    },
    /// The person is deleted in Pipedrive: the contact was unlinked.
    Unlinked { contact_id: ContactId },
    /// Deleted, and no contact was linked to it.
    Ignored,
}

impl Applied {
    /// The local contact whose values changed, for outbound app webhooks.
    pub fn changed_contact(&self) -> Option<ContactId> {
        match self {
            Self::Merged {
                contact_id,
                changed,
                ..
            } if *changed > 0 => Some(*contact_id),
            Self::Linked { contact_id }
            | Self::Created { contact_id, .. }
            | Self::Unlinked { contact_id } => Some(*contact_id),
            _ => None,
        }
    }

    /// What the app is told about this, if anything.
    pub fn app_event(&self) -> Option<(ContactId, crate::sync::app::ContactEvent)> {
        use crate::sync::app::ContactEvent;
        match self {
            Self::Merged {
                contact_id,
                changed,
                ..
            } if *changed > 0 => Some((*contact_id, ContactEvent::Updated)),
            Self::Linked { contact_id } => Some((*contact_id, ContactEvent::Linked)),
            Self::Created { contact_id, .. } => Some((*contact_id, ContactEvent::Created)),
            Self::Unlinked { contact_id } => Some((*contact_id, ContactEvent::Unlinked)),
            _ => None,
        }
    }
}

/// Applies a person in its own transaction.
pub async fn apply_person(
    engine: &Engine,
    conn: &ConnectionCtx,
    person: &CrmPerson,
) -> Result<Applied, SyncError> {
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let applied = apply_person_in(&txn, engine, conn, person, now).await?;
    txn.commit().await?;
    Ok(applied)
}

/// Where a person's state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateSource {
    /// Read from Pipedrive after every write of the link was recorded: a write's response, or
    /// a re-read serialised with the contact's writes.
    Fresh,
    /// A poll, the initial sync, reconciliation or an admin's read: a page read before one of
    /// tandem's writes may be applied after it, with the same whole-second version.
    Listed,
    /// A webhook payload: it may be a late, duplicated or reordered copy of an older state.
    Snapshot,
}

/// Applies a person read from Pipedrive (a poll, the initial sync, reconciliation), inside the
/// caller's transaction.
pub async fn apply_person_in<C: Conn>(
    txn: &C,
    engine: &Engine,
    conn: &ConnectionCtx,
    person: &CrmPerson,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    let txn = txn.raw();
    apply_person_from(txn, engine, conn, person, StateSource::Listed, now).await
}

/// Applies a person re-read by a job of its contact (after the contact's writes were
/// recorded), inside the caller's transaction.
pub async fn apply_fresh_person_in<C: Conn>(
    txn: &C,
    engine: &Engine,
    conn: &ConnectionCtx,
    person: &CrmPerson,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    let txn = txn.raw();
    apply_person_from(txn, engine, conn, person, StateSource::Fresh, now).await
}

/// Applies a person from a webhook payload, inside the caller's transaction.
pub async fn apply_webhook_person_in<C: Conn>(
    txn: &C,
    engine: &Engine,
    conn: &ConnectionCtx,
    person: &CrmPerson,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    let txn = txn.raw();
    apply_person_from(txn, engine, conn, person, StateSource::Snapshot, now).await
}

async fn apply_person_from<C: Conn>(
    txn: &C,
    engine: &Engine,
    conn: &ConnectionCtx,
    person: &CrmPerson,
    origin: StateSource,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    // The record keys read with this person go in the transaction that links it.
    crate::sync::connections::save_record_keys(engine, txn, conn).await?;
    let txn = txn.raw();
    if person.deleted {
        // A person merged away (Salesforce: a converted Lead, into its Contact) is followed
        // to the survivor.
        return person_deleted(txn, engine, conn, person.id, person.merged_into, now).await;
    }
    // The company from the person's organization (its name as tandem knows it).
    let mut person = person.clone();
    crate::sync::organizations::complete(txn, conn, &mut person).await?;
    let person = &person;
    let remote = person.snapshot.clone();
    let applied = match links::by_person_for_update(txn, conn.id, person.id).await? {
        Some(link) => merge_into_link_from(txn, conn, link, remote, origin, now).await,
        // A person tandem saw merged away (a converted Lead) read as live: the read is older
        // than the merge (a page read before it, applied after tandem followed it), not a new
        // person; its contact is linked to the survivor.
        None if merged_persons::is_merged(txn, conn.id, person.id).await? => Ok(Applied::Stale),
        None => link_new_person(txn, conn, person, remote, now).await,
    }?;
    if applied.app_event().is_some() {
        crate::meter::crm_change_applied(&conn.crm, conn.id, person.updated.as_ref());
    }
    Ok(applied)
}

/// Applies a page of persons read from Pipedrive (the initial sync) inside the caller's
/// transaction, and tells the app about each one (as [`Applied::app_event`] says): the same
/// rows, person by person and in page order, as [`apply_person_in`] followed by
/// [`crate::sync::app::contact_event`], in far fewer statements.
///
/// The page's links, the contacts its apIds name, the contacts with its e-mails and their links
/// are read in a few `IN (...)` queries. A person never seen whose identity resolves
/// ([`resolve_inbound`], over those candidates and the contacts created earlier in the page) to
/// a new contact is created in multi-row inserts at the end, or before the next person that
/// needs the one-by-one path (already linked, deleted, a candidate to link, an apId conflict):
/// those go through [`apply_person_in`] on the rows written so far, and what they changed is
/// read back into the page's view.
pub async fn apply_page_in<C: Conn>(
    txn: &C,
    engine: &Engine,
    conn: &ConnectionCtx,
    persons: &[CrmPerson],
    now: DateTime<Utc>,
) -> Result<Vec<Applied>, SyncError> {
    // The record keys read with the page go in the transaction that links its persons.
    crate::sync::connections::save_record_keys(engine, txn, conn).await?;
    let txn = txn.raw();
    let mut completed = persons.to_vec();
    crate::sync::organizations::complete_all(txn, conn, &mut completed).await?;
    let persons: Vec<&CrmPerson> = completed.iter().collect();
    let mut view = PageView::load(txn, conn, &persons).await?;
    let mut created = PendingCreates {
        tenant: conn.tenant.clone(),
        notify: crate::sync::app::has_subscribers(txn).await?,
        ..PendingCreates::default()
    };
    let mut applied = Vec::with_capacity(persons.len());
    for person in persons.iter().copied() {
        if let Some(outcome) = created.plan(conn, person, &mut view) {
            applied.push(outcome);
            continue;
        }
        created.flush(txn, now).await?;
        let outcome = apply_person_in(txn, engine, conn, person, now).await?;
        if let Some((contact_id, event)) = outcome.app_event() {
            crate::sync::app::contact_event(txn, contact_id, event, None, now).await?;
        }
        view.followed(txn, conn, person.id, &outcome).await?;
        applied.push(outcome);
    }
    created.flush(txn, now).await?;
    Ok(applied)
}

/// What [`apply_page_in`] knows of the store for identity resolution: the rows it read, plus
/// what the page has done since.
#[derive(Debug, Default)]
struct PageView {
    /// Persons of the page that are linked.
    linked: HashSet<PersonId>,
    /// Contacts named by apIds or found by e-mail (and any the page created or changed).
    heads: HashMap<ContactId, contacts::ContactHead>,
    /// Not archived contacts by e-mail.
    by_email: HashMap<String, Vec<ContactId>>,
    /// The person each contact in `heads` is linked to.
    person_of: HashMap<ContactId, PersonId>,
}

impl PageView {
    async fn load<C: Conn>(
        txn: &C,
        conn: &ConnectionCtx,
        persons: &[&CrmPerson],
    ) -> Result<Self, SyncError> {
        let txn = txn.raw();
        let ids: Vec<PersonId> = persons.iter().map(|p| p.id).collect();
        let linked = links::linked_persons(txn, conn.id, &ids).await?;
        let fresh = || {
            persons
                .iter()
                .filter(|p| !p.deleted && !linked.contains(&p.id))
        };
        let named: Vec<ContactId> = fresh()
            .filter_map(|p| p.ap_id.clone())
            .filter_map(|a| a.contact_id())
            .collect();
        let emails: Vec<tandem_core::EmailAddress> =
            fresh().filter_map(|p| p.email.clone()).collect();
        let emails: Vec<&str> = emails
            .iter()
            .map(tandem_core::EmailAddress::as_str)
            .collect();
        let mut view = Self {
            linked,
            ..Self::default()
        };
        // Only the connection's tenant's contacts: an apId naming another tenant's contact is
        // no candidate, as if it named nothing.
        let mut heads = contacts::heads(txn, &named).await?;
        heads.retain(|h| h.tenant == conn.tenant);
        heads.extend(contacts::heads_by_emails(txn, &conn.tenant, &emails).await?);
        for head in heads {
            view.index(head);
        }
        let known: Vec<ContactId> = view.heads.keys().copied().collect();
        view.person_of = links::persons_of_contacts(txn, conn.id, &known).await?;
        Ok(view)
    }

    fn index(&mut self, head: contacts::ContactHead) {
        if let Some(old) = self.heads.remove(&head.id) {
            if let Some(ids) = old.email.and_then(|e| self.by_email.get_mut(&e)) {
                ids.retain(|id| *id != head.id);
            }
        }
        if let (false, Some(email)) = (head.archived, &head.email) {
            self.by_email
                .entry(email.clone())
                .or_default()
                .push(head.id);
        }
        self.heads.insert(head.id, head);
    }

    fn candidate(&self, contact: ContactId) -> LocalCandidate {
        LocalCandidate {
            contact,
            linked_person: self.person_of.get(&contact).copied(),
        }
    }

    /// Reads back what the one-by-one path did to `person` and its contact.
    async fn followed<C: Conn>(
        &mut self,
        txn: &C,
        conn: &ConnectionCtx,
        person: PersonId,
        outcome: &Applied,
    ) -> Result<(), SyncError> {
        let txn = txn.raw();
        let contact_id = match outcome {
            Applied::Stale | Applied::Ignored => return Ok(()),
            Applied::Merged {
                contact_id,
                changed,
                ..
            } => {
                if *changed == 0 {
                    return Ok(());
                }
                *contact_id
            }
            Applied::Linked { contact_id } | Applied::Created { contact_id, .. } => {
                self.linked.insert(person);
                *contact_id
            }
            Applied::Unlinked { contact_id } => {
                self.linked.remove(&person);
                *contact_id
            }
        };
        for head in contacts::heads(txn, &[contact_id]).await? {
            self.index(head);
        }
        match links::persons_of_contacts(txn, conn.id, &[contact_id])
            .await?
            .remove(&contact_id)
        {
            Some(linked) => self.person_of.insert(contact_id, linked),
            None => self.person_of.remove(&contact_id),
        };
        Ok(())
    }
}

/// New contacts (with their links and list membership) planned by [`apply_page_in`], not yet
/// written.
#[derive(Debug, Default)]
struct PendingCreates {
    /// The tenant of the connection whose persons these are.
    tenant: tandem_core::TenantId,
    contacts: Vec<contacts::NewContact>,
    links: Vec<Link>,
    /// Whether the app has subscribers to tell about each new contact.
    notify: bool,
}

impl PendingCreates {
    /// When `person` resolves to a new contact without side effects (the common case of an
    /// initial sync), plans it and returns its outcome; otherwise `None`: the person takes the
    /// one-by-one path.
    fn plan(
        &mut self,
        conn: &ConnectionCtx,
        person: &CrmPerson,
        view: &mut PageView,
    ) -> Option<Applied> {
        if person.deleted || view.linked.contains(&person.id) {
            return None;
        }
        let person_id = person.id;
        let ap_id = person.ap_id.clone();
        let email = person.email.clone();
        let mut candidates = IdentityCandidates::default();
        if let Some(contact) = ap_id.as_ref().and_then(tandem_core::ApId::contact_id) {
            let id = contact;
            if view.heads.get(&id).is_some_and(|c| !c.archived) {
                let candidate = view.candidate(id);
                if candidate.linked_person.is_some_and(|p| p != person_id) {
                    // An apId conflict is recorded by the one-by-one path.
                    return None;
                }
                candidates.ap_id_contact = Some(candidate);
            }
        }
        if let Some(email) = &email {
            if let Some(ids) = view.by_email.get(email.as_str()) {
                candidates.email_contacts = ids.iter().map(|id| view.candidate(*id)).collect();
            }
        }
        let InboundIdentity::CreateContact { same_email_persons } = resolve_inbound(
            &InboundPerson {
                person_id,
                ap_id,
                email,
            },
            &candidates,
        ) else {
            return None;
        };
        let remote = person.snapshot.clone();
        let contact_id = contacts::new_id();
        let mut link = links::new_link(conn.id, contact_id.into(), person.id);
        link.state.versions.record(Side::Remote, remote.version);
        let new = contacts::NewContact {
            id: contact_id,
            fields: remote.fields.clone(),
        };
        link.state.base = remote;
        view.linked.insert(person.id);
        view.person_of.insert(contact_id.into(), person.id);
        view.index(contacts::ContactHead {
            id: contact_id.into(),
            tenant: conn.tenant.clone(),
            email: crate::crm::email_of(new.fields.get(tandem_core::keys::EMAIL))
                .map(|e| e.as_str().to_owned()),
            archived: false,
        });
        self.contacts.push(new);
        self.links.push(link);
        Some(Applied::Created {
            contact_id: contact_id.into(),
            same_email_persons: same_email_persons.len(),
        })
    }

    /// Writes the planned contacts, links and list rows, and their app events, in order.
    async fn flush<C: Conn>(&mut self, txn: &C, now: DateTime<Utc>) -> Result<(), SyncError> {
        let txn = txn.raw();
        if self.contacts.is_empty() {
            return Ok(());
        }
        // Every Pipedrive person is in the "Pipedrive contacts" list.
        contacts::create_many(
            txn,
            &self.tenant,
            &self.contacts,
            contacts::PIPEDRIVE_LIST,
            now,
        )
        .await?;
        links::insert_many(txn, &self.links, now).await?;
        if self.notify {
            for contact in &self.contacts {
                crate::sync::app::contact_event(
                    txn,
                    contact.id.into(),
                    crate::sync::app::ContactEvent::Created,
                    None,
                    now,
                )
                .await?;
            }
        }
        self.contacts.clear();
        self.links.clear();
        Ok(())
    }
}

/// Merges a person's fresh state (a write's response) into its link.
pub(crate) async fn merge_into_link<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    link: Link,
    remote: Snapshot,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    let txn = txn.raw();
    merge_into_link_from(txn, conn, link, remote, StateSource::Fresh, now).await
}

async fn merge_into_link_from<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    mut link: Link,
    remote: Snapshot,
    origin: StateSource,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    let txn = txn.raw();
    if !worth_merging(txn, conn, &link, &remote, origin, now).await? {
        return Ok(Applied::Stale);
    }
    let contact = contacts::load(txn, link.contact_id)
        .await?
        .ok_or(SyncError::ContactNotFound(link.contact_id))?;
    let merged = merge_in_memory(conn, &mut link, &contact, &remote);
    contacts::update(txn, contact.id, &merged.to_local, Origin::Remote, now).await?;
    links::save(txn, &link, now).await?;
    synclog::record_many(txn, merged.entries(conn), now).await?;
    merged.enqueue_push(txn, conn, now).await?;
    Ok(merged.applied())
}

/// Whether a person's state is news for its link (the check of [`merge_into_link`]): an older
/// state is not; the same whole-second version that adds something is re-read by a job
/// serialised with the contact's writes (one GET), whose state is merged then.
pub(crate) async fn worth_merging<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    link: &Link,
    remote: &Snapshot,
    origin: StateSource,
    now: DateTime<Utc>,
) -> Result<bool, SyncError> {
    let source = match origin {
        StateSource::Fresh => RemoteSource::Fresh,
        StateSource::Listed => RemoteSource::Listed,
        StateSource::Snapshot => RemoteSource::Notification,
    };
    match link.state.check_remote(remote, source) {
        RemoteCheck::Stale => Ok(false),
        RemoteCheck::Reread => {
            let payload = JobPayload::RefreshPerson {
                contact_id: link.contact_id,
                person_id: link.person_id,
            };
            queue::enqueue(
                txn.raw(),
                conn.id,
                &link.contact_id.to_string(),
                Priority::Edit,
                &payload,
                now,
            )
            .await?;
            Ok(false)
        }
        RemoteCheck::Merge => Ok(true),
    }
}

/// A person's state merged into its link (in memory; [`worth_merging`] said so), against the
/// contact as it is now: what is left to write.
pub(crate) struct MergedLink {
    contact_id: ContactId,
    person_id: PersonId,
    /// The values the contact takes (`Origin::Remote`).
    pub(crate) to_local: BTreeMap<FieldKey, FieldValue>,
    conflicts: Vec<tandem_core::Conflict>,
    /// Whether the contact is to be pushed (the CRM lacks some of its values).
    push: bool,
}

/// Merges `remote` into `link` against `contact`'s mapped values; nothing is written.
pub(crate) fn merge_in_memory(
    conn: &ConnectionCtx,
    link: &mut Link,
    contact: &contacts::LocalContact,
    remote: &Snapshot,
) -> MergedLink {
    let local = Snapshot {
        fields: conn.map.restrict(&contact.fields),
        version: contact.version,
    };
    let outcome = link.state.merge_remote(&local, remote, &conn.map.policy());
    MergedLink {
        contact_id: contact.id,
        person_id: link.person_id,
        to_local: outcome.to_local,
        conflicts: outcome.conflicts,
        push: outcome.push,
    }
}

impl MergedLink {
    /// The sync log's entries of the merge: one per conflict resolved.
    pub(crate) fn entries(&self, conn: &ConnectionCtx) -> Vec<Entry> {
        self.conflicts
            .iter()
            .map(|conflict| {
                Entry::new(
                    Level::Info,
                    Direction::Inbound,
                    "conflict_resolved",
                    format!(
                        "Field `{}` changed on both sides; {:?} won.",
                        conflict.field, conflict.winner
                    ),
                )
                .connection(conn.id)
                .contact(self.contact_id)
                .person(self.person_id)
                .detail(serde_json::to_value(conflict).unwrap_or_default())
            })
            .collect()
    }

    /// Queues the push of the contact, if the merge calls for one.
    pub(crate) async fn enqueue_push<C: Conn>(
        &self,
        txn: &C,
        conn: &ConnectionCtx,
        now: DateTime<Utc>,
    ) -> Result<(), SyncError> {
        if self.push {
            let payload = JobPayload::PushContact {
                contact_id: self.contact_id,
            };
            queue::enqueue(
                txn.raw(),
                conn.id,
                &self.contact_id.to_string(),
                Priority::Edit,
                &payload,
                now,
            )
            .await?;
        }
        Ok(())
    }

    fn applied(&self) -> Applied {
        Applied::Merged {
            contact_id: self.contact_id,
            changed: self.to_local.len(),
            pushed: self.push,
            conflicts: self.conflicts.len(),
        }
    }
}

async fn link_new_person<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    person: &CrmPerson,
    remote: Snapshot,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    let txn = txn.raw();
    let person_id = person.id;
    let ap_id = person.ap_id.clone();
    let email = person.email.clone();
    let mut candidates = IdentityCandidates::default();
    if let Some(contact) = ap_id.as_ref().and_then(tandem_core::ApId::contact_id) {
        let id = *contact.as_uuid();
        if contacts::load_in(txn, &conn.tenant, id.into())
            .await?
            .is_some_and(|c| !c.archived)
        {
            let linked = links::by_contact(txn, conn.id, id.into())
                .await?
                .map(|l| l.person_id);
            candidates.ap_id_contact = Some(LocalCandidate {
                contact,
                linked_person: linked,
            });
        }
    }
    if let Some(email) = &email {
        for id in contacts::ids_by_email(txn, &conn.tenant, email.as_str()).await? {
            let linked = links::by_contact(txn, conn.id, id)
                .await?
                .map(|l| l.person_id);
            candidates.email_contacts.push(LocalCandidate {
                contact: id,
                linked_person: linked,
            });
        }
    }
    if let Some(candidate) = candidates
        .ap_id_contact
        .filter(|c| c.linked_person.is_some_and(|p| p != person_id))
    {
        // The person claims (by apId) a contact that is linked to another person: a copy of a
        // person, or an apId typed by hand. Reported; the person gets its own contact.
        let others = candidate
            .linked_person
            .map(|p| vec![p, person.id])
            .unwrap_or_default();
        duplicates::record_apid_conflict(
            txn,
            conn.id,
            (*candidate.contact.as_uuid()).into(),
            &others,
            now,
        )
        .await?;
    }
    let decision = resolve_inbound(
        &InboundPerson {
            person_id,
            ap_id,
            email,
        },
        &candidates,
    );
    match decision {
        InboundIdentity::Linked { contact }
        | InboundIdentity::LinkByApId { contact }
        | InboundIdentity::LinkByEmail { contact } => {
            let contact_id = *contact.as_uuid();
            let existing = contacts::load(txn, contact_id.into())
                .await?
                .ok_or(SyncError::ContactNotFound(contact_id.into()))?;
            link_first_meeting(txn, conn, &existing, person, &remote, now).await?;
            Ok(Applied::Linked {
                contact_id: contact_id.into(),
            })
        }
        InboundIdentity::CreateContact { same_email_persons } => {
            let fields: BTreeMap<FieldKey, FieldValue> = remote.fields.clone();
            let contact_id =
                contacts::create(txn, &conn.tenant, &fields, Origin::Remote, now).await?;
            let mut link = links::new_link(conn.id, contact_id, person.id);
            link.state.base = remote.clone();
            link.state.versions.record(Side::Remote, remote.version);
            links::insert(txn, &link, now).await?;
            // Every Pipedrive person is in the "Pipedrive contacts" list.
            contacts::add_to_list(txn, contact_id, contacts::PIPEDRIVE_LIST, now).await?;
            Ok(Applied::Created {
                contact_id,
                same_email_persons: same_email_persons.len(),
            })
        }
    }
}

/// Links an existing contact to a person seen for the first time: merged against an empty
/// base (the newer side wins differing fields; a field only one side has is copied to the
/// other), the base set to what both now agree on, a push queued for what Pipedrive lacks, and
/// the contact put in the "Pipedrive contacts" list.
///
/// One exception: a person tandem itself created for this contact (its apId names the
/// contact) that nobody has edited since (`update_time` = `add_time`) holds exactly what
/// tandem sent, so that is the base: where the contact differs, it changed after the create
/// read it, and it is pushed. Merging by time instead would let Pipedrive's whole-second clock
/// stamp the create later than such an edit (a create whose answer was lost to a crash, or
/// whose own webhook is applied before the answer) and bring the old value back on both
/// sides. (A Pipedrive edit within the same second as the create is indistinguishable from
/// the create here; it is then treated as unedited.)
pub(crate) async fn link_first_meeting<C: Conn>(
    txn: &C,
    conn: &ConnectionCtx,
    contact: &contacts::LocalContact,
    person: &CrmPerson,
    remote: &Snapshot,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    let txn = txn.raw();
    let mut link = links::new_link(conn.id, contact.id, person.id);
    let local = Snapshot {
        fields: conn.map.restrict(&contact.fields),
        version: contact.version,
    };
    let created_by_us_untouched = person
        .ap_id
        .clone()
        .and_then(|ap_id| ap_id.contact_id())
        .is_some_and(|id| id == contact.id)
        && person.added.is_some()
        && person.added == person.updated;
    let (state, outcome) =
        LinkState::first_meeting(&local, remote, created_by_us_untouched, &conn.map.policy());
    link.state = state;
    contacts::update(txn, contact.id, &outcome.to_local, Origin::Remote, now).await?;
    links::insert(txn, &link, now).await?;
    contacts::add_to_list(txn, contact.id, contacts::PIPEDRIVE_LIST, now).await?;
    if outcome.push {
        let payload = JobPayload::PushContact {
            contact_id: contact.id,
        };
        queue::enqueue(
            txn,
            conn.id,
            &contact.id.to_string(),
            Priority::Edit,
            &payload,
            now,
        )
        .await?;
    }
    Ok(())
}

/// A person deleted in Pipedrive (or merged away into `merged_into`): the contact is unlinked
/// and, by setting, archived; on a merge the link moves to the survivor instead.
pub async fn person_deleted<C: Conn>(
    txn: &C,
    engine: &Engine,
    conn: &ConnectionCtx,
    person_id: PersonId,
    merged_into: Option<PersonId>,
    now: DateTime<Utc>,
) -> Result<Applied, SyncError> {
    let txn = txn.raw();
    if let Some(survivor) = merged_into {
        // A read of it as live from now on is older than this (see `apply_person_from`).
        merged_persons::note(txn, conn.id, person_id, survivor, now).await?;
    }
    let Some(mut link) = links::by_person_for_update(txn, conn.id, person_id).await? else {
        return Ok(Applied::Ignored);
    };
    if let Some(survivor) = merged_into {
        if let Some(survivor_link) = links::by_person(txn, conn.id, survivor).await? {
            duplicates::absorb(txn, conn, link.clone(), &survivor_link, now).await?;
            return Ok(Applied::Merged {
                contact_id: survivor_link.contact_id,
                changed: 0,
                pushed: false,
                conflicts: 0,
            });
        }
        {
            link.person_id = survivor;
            link.state.versions.remote = tandem_core::Timestamp::default();
            links::save(txn, &link, now).await?;
            synclog::record(
                txn,
                Entry::new(
                    Level::Info,
                    Direction::Inbound,
                    "person_merged",
                    format!(
                        "The person was merged into another in {}; the link follows the surviving person.",
                        conn.crm.display_name()
                    ),
                )
                .connection(conn.id)
                .contact(link.contact_id)
                .person(survivor)
                .detail(serde_json::json!({ "merged_from": person_id, "merged_into": survivor })),
                now,
            )
            .await?;
            return Ok(Applied::Merged {
                contact_id: link.contact_id,
                changed: 0,
                pushed: false,
                conflicts: 0,
            });
        }
    }
    links::delete(txn, link.id).await?;
    contacts::remove_from_list(txn, link.contact_id, contacts::PIPEDRIVE_LIST).await?;
    if engine.settings.pipedrive.archive_on_person_delete {
        contacts::set_archived(txn, link.contact_id, true, now).await?;
    }
    synclog::record(
        txn,
        Entry::new(
            Level::Info,
            Direction::Inbound,
            "person_deleted",
            format!(
                "The person was deleted in {}; the contact was unlinked.",
                conn.crm.display_name()
            ),
        )
        .connection(conn.id)
        .contact(link.contact_id)
        .person(person_id),
        now,
    )
    .await?;
    Ok(Applied::Unlinked {
        contact_id: link.contact_id,
    })
}
