//! App-side use-cases: a contact created or changed by the app (REST API, app webhook) is
//! written and, when it reaches Pipedrive (linked, in the "Pipedrive contacts" list, or touched
//! by a creating action), a push is queued in the same transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tandem_core::{
    keys, reaches_pipedrive, resolve_local, ContactId, ContactScope, FieldKey, FieldValue,
    LocalIdentity, PersonId, TenantId,
};

use super::contacts::{self, Origin};
use crate::crm::email_of;
use crate::queue::{self, JobPayload, Priority};
use crate::store::Conn;
use crate::sync::{connections, links, Engine, SyncError};

/// The result of creating a contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upserted {
    pub contact_id: ContactId,
    /// `false` when an existing contact with the same e-mail absorbed the new one.
    pub created: bool,
}

/// Creates a contact of the default tenant: [`create_contact_for`].
pub async fn create_contact(
    engine: &Engine,
    fields: BTreeMap<FieldKey, FieldValue>,
    add_to_list: bool,
) -> Result<Upserted, SyncError> {
    create_contact_for(engine, &TenantId::default(), fields, add_to_list).await
}

/// Creates a contact of `tenant`, or merges into the tenant's existing one with the same
/// e-mail (the app side deduplicates by e-mail, within a tenant); merging into an archived
/// contact is refused as any edit of it is.
pub async fn create_contact_for(
    engine: &Engine,
    tenant: &TenantId,
    fields: BTreeMap<FieldKey, FieldValue>,
    add_to_list: bool,
) -> Result<Upserted, SyncError> {
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let upserted = create_contact_in(&txn, tenant, fields, add_to_list, now).await?;
    txn.commit().await?;
    engine.wake.notify_one();
    Ok(upserted)
}

/// [`create_contact`] inside the caller's transaction.
pub async fn create_contact_in(
    txn: &impl Conn,
    tenant: &TenantId,
    fields: BTreeMap<FieldKey, FieldValue>,
    add_to_list: bool,
    now: DateTime<Utc>,
) -> Result<Upserted, SyncError> {
    let existing = match email_of(fields.get(keys::EMAIL)) {
        Some(email) => contacts::ids_by_email(txn, tenant, email.as_str()).await?,
        None => Vec::new(),
    };
    let upserted = match resolve_local(&existing) {
        LocalIdentity::Existing { contact } => {
            let id = *contact.as_uuid();
            let current = editable(txn, tenant, id.into()).await?;
            let changes: BTreeMap<_, _> = fields
                .into_iter()
                .filter(|(k, v)| current.fields.get(k) != Some(v))
                .collect();
            contacts::update(txn, id.into(), &changes, Origin::Local, now).await?;
            Upserted {
                contact_id: id.into(),
                created: false,
            }
        }
        LocalIdentity::New => Upserted {
            contact_id: contacts::create(txn, tenant, &fields, Origin::Local, now).await?,
            created: true,
        },
    };
    if add_to_list {
        contacts::add_to_list(txn, upserted.contact_id, contacts::PIPEDRIVE_LIST, now).await?;
    }
    queue_push_if_in_scope(txn, upserted.contact_id, false, now).await?;
    Ok(upserted)
}

/// The contact the app side wants to change, if it may: the one validation that the REST API
/// and app events (`POST /webhooks/app`) share. Archived contacts are read-only from the app
/// side (changes from Pipedrive still reach them). Another tenant's contact is not found.
async fn editable(
    txn: &impl Conn,
    tenant: &TenantId,
    id: ContactId,
) -> Result<contacts::LocalContact, SyncError> {
    let contact = contacts::load_in(txn, tenant, id)
        .await?
        .ok_or(SyncError::ContactNotFound(id))?;
    if contact.archived {
        return Err(SyncError::Archived(id.uuid()));
    }
    Ok(contact)
}

/// Changes the fields of a contact of the default tenant: [`update_contact_for`].
pub async fn update_contact(
    engine: &Engine,
    id: ContactId,
    changes: BTreeMap<FieldKey, FieldValue>,
) -> Result<(), SyncError> {
    update_contact_for(engine, &TenantId::default(), id, changes).await
}

/// Changes the fields of `tenant`'s contact `id`.
pub async fn update_contact_for(
    engine: &Engine,
    tenant: &TenantId,
    id: ContactId,
    changes: BTreeMap<FieldKey, FieldValue>,
) -> Result<(), SyncError> {
    let now = engine.now();
    let txn = engine.store.begin().await?;
    update_contact_in(&txn, tenant, id, changes, now).await?;
    txn.commit().await?;
    engine.wake.notify_one();
    Ok(())
}

/// [`update_contact`] inside the caller's transaction; returns how many fields changed.
/// The one way the app side (REST API and app events alike) changes a contact: an archived
/// contact is refused ([`SyncError::Archived`]), even when nothing would change.
pub async fn update_contact_in(
    txn: &impl Conn,
    tenant: &TenantId,
    id: ContactId,
    changes: BTreeMap<FieldKey, FieldValue>,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    let current = editable(txn, tenant, id).await?;
    let changes: BTreeMap<_, _> = changes
        .into_iter()
        .filter(|(k, v)| current.fields.get(k) != Some(v))
        .collect();
    if changes.is_empty() {
        return Ok(0);
    }
    contacts::update(txn, id, &changes, Origin::Local, now).await?;
    queue_push_if_in_scope(txn, id, false, now).await?;
    Ok(changes.len())
}

/// Adds a contact of the default tenant to its "Pipedrive contacts" list:
/// [`add_to_pipedrive_list_for`].
pub async fn add_to_pipedrive_list(engine: &Engine, id: ContactId) -> Result<bool, SyncError> {
    add_to_pipedrive_list_for(engine, &TenantId::default(), id).await
}

/// Adds `tenant`'s contact to the tenant's "Pipedrive contacts" list (which pushes it to the
/// tenant's connections); refused for an archived contact.
pub async fn add_to_pipedrive_list_for(
    engine: &Engine,
    tenant: &TenantId,
    id: ContactId,
) -> Result<bool, SyncError> {
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let added = add_to_pipedrive_list_in(&txn, tenant, id, now).await?;
    txn.commit().await?;
    engine.wake.notify_one();
    Ok(added)
}

/// [`add_to_pipedrive_list`] inside the caller's transaction.
pub async fn add_to_pipedrive_list_in(
    txn: &impl Conn,
    tenant: &TenantId,
    id: ContactId,
    now: DateTime<Utc>,
) -> Result<bool, SyncError> {
    editable(txn, tenant, id).await?;
    let added = contacts::add_to_list(txn, id, contacts::PIPEDRIVE_LIST, now).await?;
    queue_push_if_in_scope(txn, id, false, now).await?;
    Ok(added)
}

/// What removing a contact from the "Pipedrive contacts" list did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListRemoval {
    Removed,
    NotAMember,
    /// The contact is linked to a person: the list reflects what is in Pipedrive, so it stays
    /// (nothing is ever deleted in Pipedrive from the app side; delete the person there).
    LinkedToPerson {
        person_id: PersonId,
    },
}

/// Removes a contact from the "Pipedrive contacts" list. Never deletes anything in Pipedrive:
/// a contact not yet created there simply is not pushed any more (a queued push finds it out
/// of scope), and a linked contact stays in the list.
pub async fn remove_from_pipedrive_list(
    engine: &Engine,
    tenant: &TenantId,
    id: ContactId,
) -> Result<ListRemoval, SyncError> {
    let txn = engine.store.begin().await?;
    contacts::load_in(&txn, tenant, id)
        .await?
        .ok_or(SyncError::ContactNotFound(id))?;
    if let Some(link) = links::any_for_contact(&txn, id).await? {
        return Ok(ListRemoval::LinkedToPerson {
            person_id: link.person_id,
        });
    }
    let removed = contacts::remove_from_list(&txn, id, contacts::PIPEDRIVE_LIST).await?;
    txn.commit().await?;
    engine.wake.notify_one();
    Ok(if removed {
        ListRemoval::Removed
    } else {
        ListRemoval::NotAMember
    })
}

/// Archives a contact locally. Nothing is deleted in Pipedrive (no deletes from the app side);
/// an archived contact is not pushed any more, and changes from Pipedrive still reach it.
pub async fn archive_contact(
    engine: &Engine,
    tenant: &TenantId,
    id: ContactId,
) -> Result<bool, SyncError> {
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let changed = archive_contact_in(&txn, tenant, id, now).await?;
    txn.commit().await?;
    engine.wake.notify_one();
    Ok(changed)
}

/// [`archive_contact`] inside the caller's transaction; returns whether it was not archived yet.
pub async fn archive_contact_in(
    txn: &impl Conn,
    tenant: &TenantId,
    id: ContactId,
    now: DateTime<Utc>,
) -> Result<bool, SyncError> {
    let contact = contacts::load_in(txn, tenant, id)
        .await?
        .ok_or(SyncError::ContactNotFound(id))?;
    if contact.archived {
        return Ok(false);
    }
    contacts::set_archived(txn, id, true, now).await?;
    Ok(true)
}

/// Queues a push for the contact to every connection it reaches: each that links it (with
/// several companies in one database, issue 24, each its own), and, when it is in the CRM list
/// or touched by a creating action, each connection of the contact's tenant that the tenant's
/// list reaches and that does not link it yet (a company with Pipedrive and Salesforce, or
/// production and sandbox, gets it in each: a create there, deduplicated by apId and e-mail as
/// every create is). Another tenant's connections are never a target.
pub async fn queue_push_if_in_scope(
    txn: &impl Conn,
    id: ContactId,
    touched_by_creating_action: bool,
    now: DateTime<Utc>,
) -> Result<bool, SyncError> {
    let Some(tenant) = contacts::tenant_of(txn, id).await? else {
        return Ok(false);
    };
    let mut targets = links::connections_of_contact(txn, id).await?;
    let receivers = connections::list_receivers(txn, &tenant).await?;
    if receivers.iter().any(|r| !targets.contains(r)) {
        let scope = ContactScope {
            linked: false,
            in_pipedrive_list: contacts::in_list(txn, id, contacts::PIPEDRIVE_LIST).await?,
            touched_by_creating_action,
        };
        if reaches_pipedrive(&scope) {
            for receiver in receivers {
                if !targets.contains(&receiver) {
                    targets.push(receiver);
                }
            }
        }
    }
    if targets.is_empty() {
        return Ok(false);
    }
    for connection_id in targets {
        queue::enqueue(
            txn,
            connection_id,
            &id.to_string(),
            Priority::Edit,
            &JobPayload::PushContact { contact_id: id },
            now,
        )
        .await?;
    }
    Ok(true)
}
