//! The contact's company as the person's organization (issue 20, ADR 0017), for a CRM whose
//! persons belong to organizations (`Crm::company_organization`: Pipedrive's persons,
//! Salesforce's Contacts and their Accounts; a Lead's company is its `Company` text).
//!
//! - App → CRM: before a person is written, the company is resolved to an organization id:
//!   tandem's own table first, else the CRM's exact name search, else a create. Exactly one
//!   worker per (connection, name key) searches and creates: it claims the key with a row
//!   insert (the database's unique key decides), the others wait for the row to carry the id.
//!   A claim left unresolved (a killed worker, a create whose answer was lost) is taken over
//!   after a while, and the taker searches before it creates again. An empty company unlinks
//!   the person from its organization.
//! - CRM → app: a person's `org_id` is read back as the organization's name (tandem's table,
//!   else one CRM read, remembered), so the person's organization changing changes the
//!   contact's company through the ordinary merge; a renamed organization re-reads its
//!   persons and merges them (`organization_renamed`).
//! - Organization fields (mappings of entity `organization`, `RemoteField::OrganizationField`):
//!   read with the organization's name (one CRM read per page for organizations tandem does
//!   not know yet), kept in `crm_organization_snapshot`, and put in the person's snapshot, so
//!   they reach the contact through the ordinary merge; a changed organization (its webhook)
//!   is re-read and, when its mapped fields or name changed, its persons are merged again. A
//!   contact's change to such a field is written to the person's organization (`write_fields`),
//!   never to the person; a person without an organization has nowhere to write it.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tandem_core::{organization_display_name, organization_key, CrmError, FieldKey, FieldValue};

use crate::crm::{CrmOrganization, CrmPerson};
use crate::store::{organizations as stored, Conn};
use crate::sync::connections::ConnectionCtx;
use crate::sync::{Engine, SyncError};

/// How often a waiting worker looks at a claim another worker holds.
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// Why a company could not be resolved to an organization.
#[derive(Debug, thiserror::Error)]
pub enum OrganizationError {
    #[error("{0}")]
    Crm(CrmError),
    #[error(transparent)]
    Internal(#[from] SyncError),
}

impl From<OrganizationError> for SyncError {
    fn from(error: OrganizationError) -> Self {
        match error {
            OrganizationError::Crm(e) => Self::Crm(e),
            OrganizationError::Internal(e) => e,
        }
    }
}

impl From<crate::store::StoreError> for OrganizationError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Internal(error.into())
    }
}

/// How long a claim may stay unresolved before another worker takes it over: longer than a
/// search and a create with their timeouts (whichever CRM's).
fn claim_stale_after(engine: &Engine) -> Duration {
    let settings = &engine.settings;
    let timeout = settings
        .pipedrive
        .request_timeout_secs
        .max(settings.salesforce.request_timeout_secs);
    Duration::from_secs(timeout.saturating_mul(2) + 5)
}

/// The organization named `company` (matched by [`organization_key`]), found or created;
/// `None` for an empty company.
pub async fn find_or_create(
    engine: &Engine,
    conn: &ConnectionCtx,
    company: &str,
) -> Result<Option<i64>, OrganizationError> {
    let Some(key) = organization_key(company) else {
        return Ok(None);
    };
    let name = organization_display_name(company);
    let db = &engine.store;
    let stale = claim_stale_after(engine);
    let mut watched: Option<(DateTime<Utc>, tokio::time::Instant)> = None;
    loop {
        let claimed_at = match stored::by_key(db, conn.id, &key).await? {
            Some(row) => {
                if let Some(id) = row.org_id {
                    return Ok(Some(id));
                }
                // Another worker holds the claim: wait for its answer, unless it has been
                // unresolved for too long (watched on this process's own monotonic clock).
                let since = match watched {
                    Some((seen, since)) if seen == row.claimed_at => since,
                    _ => {
                        let since = tokio::time::Instant::now();
                        watched = Some((row.claimed_at, since));
                        since
                    }
                };
                if since.elapsed() < stale {
                    tokio::time::sleep(CLAIM_POLL).await;
                    continue;
                }
                let now = engine.now();
                if !stored::take_over(db, conn.id, &key, row.claimed_at, now).await? {
                    continue;
                }
                tracing::warn!(connection_id = %conn.id, "An unresolved organization claim was taken over; searching before creating.");
                now
            }
            None => {
                let now = engine.now();
                if !stored::claim(db, conn.id, &key, &name, now).await? {
                    continue;
                }
                now
            }
        };
        // This worker holds the claim: search first (the organization may exist in the CRM,
        // or an earlier holder's create may have landed), then create.
        let found = match search(conn, &key, &name).await {
            Ok(found) => found,
            Err(error) => {
                stored::release(db, conn.id, &key, claimed_at).await?;
                return Err(OrganizationError::Crm(error));
            }
        };
        let organization = match found {
            Some(found) => found,
            None => match conn.crm.create_organization(&conn.session, &name).await {
                Ok(created) => created,
                Err(error) => {
                    // A create that may have landed keeps the claim: whoever takes it over
                    // searches first, by then the CRM's search index has it.
                    if !error.kind.outcome_unknown() {
                        stored::release(db, conn.id, &key, claimed_at).await?;
                    }
                    return Err(OrganizationError::Crm(error));
                }
            },
        };
        // The organization's CRM key (Salesforce's Account id) is stored before its row names
        // it: after a restart the id still reaches it.
        crate::sync::connections::save_record_keys(engine, db, conn).await?;
        stored::resolve(
            db,
            conn.id,
            &key,
            organization.id,
            &organization.name,
            engine.now(),
        )
        .await?;
        return Ok(Some(organization.id));
    }
}

/// The oldest organization whose name matches the key, by the CRM's exact search.
async fn search(
    conn: &ConnectionCtx,
    key: &str,
    name: &str,
) -> Result<Option<CrmOrganization>, CrmError> {
    let found = conn.crm.search_organizations(&conn.session, name).await?;
    Ok(by_key(found).remove(key))
}

/// Organizations a search found, by name key: for a key several have, the one every worker
/// picks (the lowest id).
fn by_key(found: Vec<CrmOrganization>) -> BTreeMap<String, CrmOrganization> {
    let mut out: BTreeMap<String, CrmOrganization> = BTreeMap::new();
    for org in found {
        let Some(key) = organization_key(&org.name) else {
            continue;
        };
        match out.get(&key) {
            Some(kept) if kept.id <= org.id => {}
            _ => {
                out.insert(key, org);
            }
        }
    }
    out
}

/// Resolves the companies of many persons about to be written together (a batch of a CRM that
/// writes many persons per call): the names tandem has no row for are claimed, searched in one
/// query and the missing ones created in one call, so each write then finds its organization
/// in tandem's table ([`find_or_create`] makes no CRM call). A name another worker has claimed
/// is left to it (the write waits for it as alone). On a failure the names not resolved are
/// left to each write, which then fails, or succeeds, with its own contact.
pub async fn resolve_many(
    engine: &Engine,
    conn: &ConnectionCtx,
    companies: &[String],
) -> Result<(), OrganizationError> {
    let db = &engine.store;
    // The keys this call claimed: their names and when.
    let mut ours: BTreeMap<String, (String, DateTime<Utc>)> = BTreeMap::new();
    for company in companies {
        let Some(key) = organization_key(company) else {
            continue;
        };
        if ours.contains_key(&key) || stored::by_key(db, conn.id, &key).await?.is_some() {
            continue;
        }
        let name = organization_display_name(company);
        let now = engine.now();
        if stored::claim(db, conn.id, &key, &name, now).await? {
            ours.insert(key, (name, now));
        }
    }
    if ours.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = ours.values().map(|(name, _)| name.clone()).collect();
    let mut found = match conn
        .crm
        .search_organizations_named(&conn.session, &names)
        .await
    {
        Ok(found) => by_key(found),
        Err(error) => {
            for (key, (_, at)) in &ours {
                stored::release(db, conn.id, key, *at).await?;
            }
            return Err(OrganizationError::Crm(error));
        }
    };
    found.retain(|key, _| ours.contains_key(key));
    let missing: Vec<&String> = ours.keys().filter(|k| !found.contains_key(*k)).collect();
    let mut failed = None;
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|k| ours[*k].0.clone()).collect();
        let created = conn.crm.create_organizations(&conn.session, &names).await;
        let results: Vec<Result<CrmOrganization, CrmError>> = match created {
            Ok(results) => results,
            Err(error) => missing.iter().map(|_| Err(error.clone())).collect(),
        };
        for (key, result) in missing.into_iter().zip(results) {
            match result {
                Ok(org) => {
                    found.insert(key.clone(), org);
                }
                Err(error) => {
                    // A create that may have landed keeps its claim (see `find_or_create`).
                    if !error.kind.outcome_unknown() {
                        stored::release(db, conn.id, key, ours[key].1).await?;
                    }
                    failed = Some(error);
                }
            }
        }
    }
    crate::sync::connections::save_record_keys(engine, db, conn).await?;
    for (key, org) in found {
        stored::resolve(db, conn.id, &key, org.id, &org.name, engine.now()).await?;
    }
    match failed {
        Some(error) => Err(OrganizationError::Crm(error)),
        None => Ok(()),
    }
}

/// The person's writes as the CRM connector takes them: the company (if it is the person's
/// organization: `lead` says whether the person is, or is created as, a Lead) replaced by the
/// id of the organization found or created by that name; organization fields left out (see
/// [`write_fields`]).
pub async fn crm_writes(
    engine: &Engine,
    conn: &ConnectionCtx,
    writes: &BTreeMap<FieldKey, FieldValue>,
    lead: bool,
) -> Result<BTreeMap<FieldKey, FieldValue>, OrganizationError> {
    let mut out: BTreeMap<FieldKey, FieldValue> = writes
        .iter()
        .filter(|(key, _)| {
            !conn
                .map
                .get(key)
                .is_some_and(|f| f.remote.is_organization_field())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let Some(field) = conn.crm.company_organization(&conn.map, lead) else {
        return Ok(out);
    };
    if let Some(value) = writes.get(&field.local) {
        let org = match value {
            FieldValue::Text(company) => find_or_create(engine, conn, company).await?,
            _ => None,
        };
        let resolved = match org {
            Some(id) => FieldValue::number(id as f64).unwrap_or(FieldValue::Cleared),
            None => FieldValue::Cleared,
        };
        out.insert(field.local.clone(), resolved);
    }
    Ok(out)
}

/// Writes the contact's changes to organization fields (the writes' keys mapped to
/// [`crate::crm::RemoteField::OrganizationField`]) to the person's organization, and keeps
/// what the CRM answered as the organization's fields (so the change coming back is known).
/// A person without an organization: nothing to write.
pub async fn write_fields(
    engine: &Engine,
    conn: &ConnectionCtx,
    person: &CrmPerson,
    writes: &BTreeMap<FieldKey, FieldValue>,
) -> Result<(), OrganizationError> {
    let org_writes: BTreeMap<FieldKey, FieldValue> = writes
        .iter()
        .filter(|(key, _)| {
            conn.map
                .get(key)
                .is_some_and(|f| f.remote.is_organization_field())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if org_writes.is_empty() {
        return Ok(());
    }
    let Some(org_id) = person.org_id else {
        tracing::debug!(connection_id = %conn.id, person_id = %person.id, fields = org_writes.len(), "The person has no organization; its organization fields are not written.");
        return Ok(());
    };
    let org = conn
        .crm
        .update_organization(&conn.session, &conn.map, org_id, &org_writes)
        .await
        .map_err(OrganizationError::Crm)?;
    stored::remember_fields(&engine.store, conn.id, org_id, &org.fields, engine.now()).await?;
    Ok(())
}

/// Whether any organization field is mapped.
pub(crate) fn has_fields(conn: &ConnectionCtx) -> bool {
    conn.map.organization_fields().next().is_some()
}

/// Makes sure tandem knows the names (and the mapped fields) of these persons' organizations:
/// one CRM read for those it does not know. Call it outside a transaction, before the persons
/// are applied.
pub async fn learn_names(
    engine: &Engine,
    conn: &ConnectionCtx,
    persons: &[CrmPerson],
) -> Result<(), OrganizationError> {
    let fields = has_fields(conn);
    // The organizations whose name (or fields) matter, each with a name read with a person.
    let mut wanted: BTreeMap<i64, (bool, Option<&str>)> = BTreeMap::new();
    for person in persons {
        let Some(id) = person.org_id else { continue };
        let names = conn
            .crm
            .company_organization(&conn.map, person.lead)
            .is_some();
        if !names && !fields {
            continue;
        }
        let entry = wanted.entry(id).or_insert((false, None));
        entry.0 |= names;
        entry.1 = entry.1.or(person.org_name.as_deref());
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let db = &engine.store;
    let ids: Vec<i64> = wanted.keys().copied().collect();
    let known_names = stored::names_of(db, conn.id, &ids).await?;
    let known_fields = match fields {
        true => stored::fields_of_many(db, conn.id, &ids).await?,
        false => Default::default(),
    };
    let mut unknown = Vec::new();
    // Names read with the persons are kept without a call (a name tandem knows is kept as it
    // is: a rename reaches every person of the organization at once, see `sync::related`).
    let mut read = Vec::new();
    for (id, (names, read_name)) in wanted {
        let mut name_unknown = names && !known_names.contains_key(&id);
        if let (true, Some(name)) = (name_unknown, read_name) {
            if let Some(key) = organization_key(name) {
                read.push((id, key, name.to_owned()));
                name_unknown = false;
            }
        }
        if name_unknown || (fields && !known_fields.contains_key(&id)) {
            unknown.push(id);
        }
    }
    stored::remember_new(db, conn.id, &read, engine.now()).await?;
    if unknown.is_empty() {
        return Ok(());
    }
    let found = conn
        .crm
        .organizations(&conn.session, &conn.map, &unknown)
        .await
        .map_err(OrganizationError::Crm)?;
    for org in found {
        remember(engine, conn, &org).await?;
    }
    Ok(())
}

/// Keeps an organization's name and mapped fields as the CRM holds them.
async fn remember(
    engine: &Engine,
    conn: &ConnectionCtx,
    org: &crate::crm::CrmOrganization,
) -> Result<(), OrganizationError> {
    let db = &engine.store;
    if let Some(key) = organization_key(&org.name) {
        stored::remember(db, conn.id, org.id, &key, &org.name, engine.now()).await?;
    }
    if has_fields(conn) {
        stored::remember_fields(db, conn.id, org.id, &org.fields, engine.now()).await?;
    }
    Ok(())
}

/// Fills the person's company (the local field mapped to the organization) in its snapshot:
/// the organization's name, cleared for none; left out (unknown) when tandem does not know
/// the organization's name.
pub async fn complete<C: Conn>(
    db: &C,
    conn: &ConnectionCtx,
    person: &mut CrmPerson,
) -> Result<(), SyncError> {
    complete_all(db, conn, std::slice::from_mut(person)).await
}

/// [`complete`] for many persons (a page), reading their organizations' names and fields in a
/// few statements.
pub async fn complete_all<C: Conn>(
    db: &C,
    conn: &ConnectionCtx,
    persons: &mut [CrmPerson],
) -> Result<(), SyncError> {
    let fields = has_fields(conn);
    let wanted = |p: &CrmPerson| {
        !p.deleted && (fields || conn.crm.company_organization(&conn.map, p.lead).is_some())
    };
    let mut ids: Vec<i64> = persons
        .iter()
        .filter(|p| wanted(p))
        .filter_map(|p| p.org_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let names = stored::names_of(db, conn.id, &ids).await?;
    let known_fields = match fields {
        true => stored::fields_of_many(db, conn.id, &ids).await?,
        false => Default::default(),
    };
    for person in persons.iter_mut().filter(|p| wanted(p)) {
        // The organization's mapped fields, as tandem last read or wrote them; unknown (left
        // out) without an organization or before tandem read it.
        if let Some(org_fields) = person.org_id.and_then(|id| known_fields.get(&id)) {
            for field in conn.map.organization_fields() {
                if let Some(value) = org_fields.get(&field.local) {
                    person
                        .snapshot
                        .fields
                        .insert(field.local.clone(), value.clone());
                }
            }
        }
        let Some(field) = conn.crm.company_organization(&conn.map, person.lead) else {
            continue;
        };
        // An organization named as the CRM's placeholder company (a Salesforce Lead converted
        // with tandem's placeholder `Company`) is no company, as the placeholder is on the
        // Lead.
        let value = match person.org_id {
            None => Some(FieldValue::Cleared),
            Some(id) => names.get(&id).map(|name| {
                if conn.crm.is_placeholder_company(name) {
                    FieldValue::Cleared
                } else {
                    FieldValue::text(name.trim())
                }
            }),
        };
        if let Some(value) = value {
            person.snapshot.fields.insert(field.local.clone(), value);
        }
    }
    Ok(())
}

/// An organization changed (a webhook): its new name remembered, and, when organization
/// fields are mapped, the organization re-read and its fields kept. When the name or the
/// mapped fields changed, every person of it is re-read and merged, so each linked contact's
/// company and organization fields follow. tandem's own write coming back changes nothing.
pub async fn organization_renamed(
    engine: &Engine,
    conn: &ConnectionCtx,
    org_id: i64,
    name: &str,
) -> Result<Vec<CrmPerson>, OrganizationError> {
    let names = conn.crm.company_organization(&conn.map, false).is_some();
    let fields = has_fields(conn);
    if !names && !fields {
        return Ok(Vec::new());
    }
    let db = &engine.store;
    let known = stored::name_of(db, conn.id, org_id).await?;
    let known_fields = if fields {
        stored::fields_of(db, conn.id, org_id).await?
    } else {
        None
    };
    if known.is_none() && known_fields.is_none() {
        // An organization tandem never linked anyone to: no contact to change (its name is
        // kept for a later link).
        if names {
            if let Some(key) = organization_key(name) {
                stored::remember(db, conn.id, org_id, &key, name, engine.now()).await?;
            }
        }
        return Ok(Vec::new());
    }
    let renamed = names && known.as_deref() != Some(name);
    if renamed {
        if let Some(key) = organization_key(name) {
            stored::remember(db, conn.id, org_id, &key, name, engine.now()).await?;
        }
    }
    let mut fields_changed = false;
    if fields {
        let read = conn
            .crm
            .organizations(&conn.session, &conn.map, &[org_id])
            .await
            .map_err(OrganizationError::Crm)?;
        if let Some(org) = read.into_iter().next() {
            if known_fields.as_ref() != Some(&org.fields) {
                stored::remember_fields(db, conn.id, org_id, &org.fields, engine.now()).await?;
                fields_changed = true;
            }
        }
    }
    if !renamed && !fields_changed {
        return Ok(Vec::new());
    }
    conn.crm
        .organization_people(&conn.session, &conn.map, org_id)
        .await
        .map_err(OrganizationError::Crm)
}
