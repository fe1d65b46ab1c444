//! Salesforce's side of the CRM boundary: persons (Lead and Contact) paged by SOQL on
//! `SystemModstamp`, deletes from the `deleted` resource, single and batched writes, searches,
//! the connecting user, describe and Tooling fields, journey-action objects (Task, Opportunity
//! with OpportunityContactRole, `StageName`, `OwnerId`) and OAuth (web-server flow with PKCE,
//! refresh, revoke). Wire types go in and out here and never further than [`crate::crm::Crm`].

use std::collections::BTreeMap;

use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tandem_core::{ApId, CrmError, EmailAddress, FieldKey, FieldValue, PersonId};

use super::client::{subrequest_answer, SalesforceClient, COLLECTION_MAX};
use super::errors::{record_error, SalesforceError};
use super::mapping::{self, soql_string, soql_time};
use super::wire::{Attributes, QueryResult, Record, SaveResult, Subrequest, TokenResponse};
use super::SObject;
use crate::config::{Redacted, SalesforceSettings};
use crate::crm::fields::{FieldMap, RemoteField};
use crate::crm::person::{CrmPerson, PersonPage};
use crate::crm::records::{
    CampaignMembership, CatalogField, CheckedRecord, CreatedPerson, CrmActivity, CrmDeal,
    CrmOrganization, CrmRelated, CrmStage, CrmUser, LoggedEmail, NewActivity, NewDeal, RelatedKind,
    RelatedPage, TokenGrant,
};
use crate::crm::session::Session;

/// How far back the `deleted` resource reaches (15 days), less a margin.
pub(crate) const DELETED_WINDOW: ChronoDuration = ChronoDuration::minutes(15 * 24 * 60 - 5);

const MERGE_HINT: &str = "Salesforce's REST API offers no merge of Leads or Contacts (only the SOAP merge() call and the UI do): merge the records in Salesforce; tandem follows the merge on its next poll (the merged record is deleted and its contact moves to the survivor).";
const LEAD_DEAL_HINT: &str = "Convert the Lead in Salesforce (it becomes a Contact, which tandem follows), then run the action again.";

// ---------------------------------------------------------------- ids

fn remember(client: &SalesforceClient, s: &Session, key: &str) -> Result<i64, CrmError> {
    client.keys().remember(s.connection_id, key).map_err(|c| {
        tracing::error!(connection_id = %s.connection_id, surrogate = c.0, "Two Salesforce ids share a surrogate; refusing to confuse them.");
        CrmError::from(SalesforceError::UnknownId(c.to_string()))
    })
}

fn remember_record(
    client: &SalesforceClient,
    s: &Session,
    record: &Record,
) -> Result<(), CrmError> {
    for id in mapping::named_ids(record) {
        remember(client, s, id)?;
    }
    Ok(())
}

/// The Salesforce key a boundary id stands for.
fn resolve(client: &SalesforceClient, s: &Session, id: i64) -> Result<String, CrmError> {
    client.keys().resolve(s.connection_id, id).ok_or_else(|| {
        SalesforceError::UnknownId(format!(
            "Salesforce record {id} is not known to this process yet (tandem maps Salesforce ids to numbers as it reads them)"
        ))
        .into()
    })
}

/// Boundary ids as the quoted Salesforce ids of a SOQL `IN (…)` list.
fn soql_ids(client: &SalesforceClient, s: &Session, ids: &[i64]) -> Result<String, CrmError> {
    let keys: Vec<String> = ids
        .iter()
        .map(|id| resolve(client, s, *id).map(|key| soql_string(&key)))
        .collect::<Result<_, _>>()?;
    Ok(keys.join(", "))
}

/// A person's surrogate as the boundary's person id (surrogates are at least 1).
fn person(surrogate: i64) -> PersonId {
    PersonId::new(surrogate).expect("a surrogate is at least 1")
}

/// The Lead or Contact a boundary person id stands for.
fn resolve_person(
    client: &SalesforceClient,
    s: &Session,
    id: PersonId,
) -> Result<(SObject, String), CrmError> {
    let key = resolve(client, s, id.get())?;
    let object = SObject::of_id(&key).ok_or_else(|| {
        CrmError::from(SalesforceError::UnknownId(format!(
            "Salesforce record {id} is neither a Lead nor a Contact"
        )))
    })?;
    Ok((object, key))
}

/// Turns a surrogate (an owner, an Account) back into its id, if this process knows it.
fn key_resolver<'a>(
    client: &'a SalesforceClient,
    s: &'a Session,
) -> impl Fn(i64) -> Option<String> + 'a {
    move |id| client.keys().resolve(s.connection_id, id)
}

fn person_of(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    record: &Record,
) -> Result<CrmPerson, CrmError> {
    remember_record(client, s, record)?;
    Ok(mapping::crm_person(record, map, client.config()))
}

// ---------------------------------------------------------------- reading persons

/// Where a listing stands: inside one object's query (with its `nextRecordsUrl`), or at that
/// object's deletes (changes only).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Query(SObject, Option<String>),
    Deleted(SObject),
}

impl Phase {
    fn parse(cursor: Option<&str>, first: SObject) -> Result<Self, CrmError> {
        let Some(cursor) = cursor else {
            return Ok(Self::Query(first, None));
        };
        let next = |rest: &str| (!rest.is_empty()).then(|| rest.to_owned());
        let parsed = match cursor.split_once('|') {
            Some(("Deleted", name)) => SObject::named(name).map(Self::Deleted),
            Some((name, rest)) => SObject::named(name).map(|o| Self::Query(o, next(rest))),
            None => None,
        };
        parsed.ok_or_else(|| {
            SalesforceError::Decode(format!("not a Salesforce cursor: {cursor:?}")).into()
        })
    }

    fn render(&self) -> String {
        match self {
            Self::Query(object, next) => {
                format!("{}|{}", object.name(), next.as_deref().unwrap_or(""))
            }
            Self::Deleted(object) => format!("Deleted|{}", object.name()),
        }
    }
}

/// What a person query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A listing: every unconverted Lead and every Contact, or only those last modified at or
    /// after the time (an initial sync with a window).
    Listing(Option<DateTime<Utc>>),
    /// Changes: every record whose `SystemModstamp` is at or after the time, converted Leads
    /// included (they read as merged into their Contact).
    Changes(DateTime<Utc>),
}

/// The select list of a person query: `fields`, and a Contact's Account's name through its
/// lookup (`Account.Name`), so that the company comes with the Contact and no Account has to
/// be read for it (ADR 36).
fn person_select(object: SObject, fields: &[String]) -> String {
    let mut select = fields.join(", ");
    if object == SObject::Contact {
        select.push_str(", Account.Name");
    }
    select
}

/// The SOQL of a person query.
pub(crate) fn person_soql(object: SObject, fields: &[String], reading: Reading) -> String {
    let (unconverted_only, since) = match reading {
        Reading::Listing(since) => (object == SObject::Lead, since),
        Reading::Changes(since) => (false, Some(since)),
    };
    soql_by_modstamp(
        &person_select(object, fields),
        object.name(),
        unconverted_only.then_some("IsConverted = false"),
        since,
    )
}

/// `SELECT {fields} FROM {object}`, only the records that meet `condition` and whose
/// `SystemModstamp` is at or after `since`, oldest change first.
fn soql_by_modstamp(
    fields: &str,
    object: &str,
    condition: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> String {
    let conditions: Vec<String> = [
        condition.map(str::to_owned),
        since.map(|since| format!("SystemModstamp >= {}", soql_time(since))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    format!("SELECT {fields} FROM {object}{filter} ORDER BY SystemModstamp, Id")
}

async fn fields_for(
    client: &SalesforceClient,
    s: &Session,
    object: SObject,
    map: &FieldMap,
) -> Result<Vec<String>, CrmError> {
    let describe = client.describe(s, object.name()).await?;
    Ok(mapping::select_fields(
        object,
        map,
        client.config(),
        Some(&describe),
    ))
}

/// One query page (a batch of up to 2,000) of `object`'s persons as `reading` says, and the
/// query's next page (its `nextRecordsUrl`) if it has more.
async fn query_page(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    object: SObject,
    next: Option<&str>,
    reading: Reading,
) -> Result<(Vec<CrmPerson>, Option<String>), CrmError> {
    let page = match next {
        Some(url) => client.query_more(s, url).await?,
        None => {
            let fields = fields_for(client, s, object, map).await?;
            client
                .query(s, &person_soql(object, &fields, reading))
                .await?
        }
    };
    let mut items = match (object, reading) {
        (SObject::Contact, Reading::Changes(since)) => {
            converted_into(client, s, map, &page.records, since).await?
        }
        _ => Vec::new(),
    };
    for record in &page.records {
        items.push(person_of(client, s, map, record)?);
    }
    let more = if page.done {
        None
    } else {
        page.next_records_url
    };
    Ok((items, more))
}

/// The Contacts that the batch's Leads refused as converted (`CANNOT_UPDATE_CONVERTED_LEAD`)
/// became, by Lead id: one query for the batch, only when there are such Leads.
async fn converted_contacts(
    client: &SalesforceClient,
    s: &Session,
    chunk: &[(usize, SObject, String, Record)],
    saved: &[SaveResult],
) -> Result<BTreeMap<String, PersonId>, CrmError> {
    let refused: Vec<String> = chunk
        .iter()
        .zip(saved)
        .filter(|(_, r)| {
            r.errors
                .iter()
                .any(|e| e.status_code.as_deref() == Some("CANNOT_UPDATE_CONVERTED_LEAD"))
        })
        .map(|((.., key, _), _)| soql_string(key))
        .collect();
    if refused.is_empty() {
        return Ok(BTreeMap::new());
    }
    let soql = format!(
        "SELECT Id, ConvertedContactId FROM Lead WHERE Id IN ({})",
        refused.join(", ")
    );
    let mut out = BTreeMap::new();
    for lead in client.query_all_pages(s, &soql).await? {
        if let (Some(id), Some(contact)) = (lead.text("Id"), lead.text("ConvertedContactId")) {
            out.insert(id.to_owned(), person(remember(client, s, contact)?));
        }
    }
    Ok(out)
}

/// The Leads converted into the Contacts of a change page that were created since `since`
/// (read as merged into their Contact), to be applied before those Contacts: a poll whose Lead
/// stream was read just before a conversion would otherwise meet the new Contact as a stranger,
/// give it an app contact of its own, and then archive the Lead's contact when the conversion
/// is read. One query, only when the page has new Contacts.
async fn converted_into(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    contacts: &[Record],
    since: DateTime<Utc>,
) -> Result<Vec<CrmPerson>, CrmError> {
    let new: Vec<String> = contacts
        .iter()
        .filter(|r| {
            r.text("CreatedDate")
                .and_then(mapping::parse_time)
                .and_then(|t| DateTime::from_timestamp_millis(t.0))
                .is_some_and(|created| created >= since)
        })
        .filter_map(|r| r.text("Id").map(soql_string))
        .collect();
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let fields = fields_for(client, s, SObject::Lead, map).await?;
    let soql = format!(
        "SELECT {} FROM Lead WHERE ConvertedContactId IN ({}) ORDER BY SystemModstamp, Id",
        fields.join(", "),
        new.join(", ")
    );
    client
        .query_all_pages(s, &soql)
        .await?
        .iter()
        .map(|r| person_of(client, s, map, r))
        .collect()
}

/// One page of every person (or of those last modified at or after `modified_since`): the
/// unconverted Leads, then the Contacts.
pub(crate) async fn list_people(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    cursor: Option<String>,
    modified_since: Option<DateTime<Utc>>,
) -> Result<PersonPage, CrmError> {
    let Phase::Query(object, next) = Phase::parse(cursor.as_deref(), SObject::Lead)? else {
        return Err(SalesforceError::Decode("a listing has no deletes phase".into()).into());
    };
    let reading = Reading::Listing(modified_since);
    let (items, more) = query_page(client, s, map, object, next.as_deref(), reading).await?;
    let next = match (more, object) {
        (Some(url), _) => Some(Phase::Query(object, Some(url))),
        (None, SObject::Lead) => Some(Phase::Query(SObject::Contact, None)),
        (None, SObject::Contact) => None,
    };
    Ok(PersonPage {
        items,
        next_cursor: next.map(|p| p.render()),
    })
}

/// One page of the changes since `since` of one object (`stream`: `Lead` or `Contact`), oldest
/// first: its query pages, then its deletes (a merged record with the record it was merged
/// into). Each object has a change cursor of its own (a poll cut off between the two cannot
/// move the other's past changes it has not read).
pub(crate) async fn changes_since(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    stream: &str,
    since: DateTime<Utc>,
    cursor: Option<String>,
) -> Result<PersonPage, CrmError> {
    let object = SObject::named(stream).ok_or_else(|| {
        SalesforceError::Decode(format!("not a Salesforce change stream: {stream:?}"))
    })?;
    match Phase::parse(cursor.as_deref(), object)? {
        Phase::Query(_, next) => {
            let (items, more) = query_page(
                client,
                s,
                map,
                object,
                next.as_deref(),
                Reading::Changes(since),
            )
            .await?;
            let next = match more {
                Some(url) => Phase::Query(object, Some(url)),
                None => Phase::Deleted(object),
            };
            Ok(PersonPage {
                items,
                next_cursor: Some(next.render()),
            })
        }
        Phase::Deleted(_) => {
            let deleted = deleted_since(client, s, object.name(), since).await?;
            let keys: Vec<&str> = deleted.iter().map(|(key, _)| key.as_str()).collect();
            let masters = merged_into(client, s, object, &keys).await?;
            Ok(PersonPage {
                items: deleted
                    .iter()
                    .map(|(key, at)| {
                        remember(client, s, key)?;
                        let master = masters.get(key).map(String::as_str);
                        if let Some(master) = master {
                            remember(client, s, master)?;
                        }
                        Ok(mapping::deleted_person(key, at.as_deref(), master))
                    })
                    .collect::<Result<_, CrmError>>()?,
                next_cursor: None,
            })
        }
    }
}

/// The records among `deleted` (ids of `object`) that a merge deleted, each with the record
/// it was merged into (`MasterRecordId`): the `deleted` resource does not say, the recycle bin
/// does (`queryAll`). One query per 200 deleted records, none without deletes.
async fn merged_into(
    client: &SalesforceClient,
    s: &Session,
    object: SObject,
    deleted: &[&str],
) -> Result<BTreeMap<String, String>, CrmError> {
    let mut out = BTreeMap::new();
    for chunk in deleted.chunks(200) {
        let ids: Vec<String> = chunk.iter().map(|id| soql_string(id)).collect();
        let soql = format!(
            "SELECT Id, MasterRecordId FROM {} WHERE Id IN ({})",
            object.name(),
            ids.join(", ")
        );
        let mut page = client.query_all(s, &soql).await?;
        loop {
            for record in &page.records {
                if let (Some(id), Some(master)) = (record.text("Id"), record.text("MasterRecordId"))
                {
                    out.insert(id.to_owned(), master.to_owned());
                }
            }
            match (page.done, page.next_records_url.take()) {
                (false, Some(next)) => page = client.query_more(s, &next).await?,
                _ => break,
            }
        }
    }
    Ok(out)
}

/// The Contacts of each of these Accounts (boundary ids), by Account: one query (its pages)
/// per 200 Accounts.
pub(crate) async fn account_members(
    client: &SalesforceClient,
    s: &Session,
    accounts: &[i64],
) -> Result<BTreeMap<i64, Vec<PersonId>>, CrmError> {
    let mut out: BTreeMap<i64, Vec<PersonId>> = BTreeMap::new();
    for chunk in accounts.chunks(200) {
        let soql = format!(
            "SELECT Id, AccountId FROM Contact WHERE AccountId IN ({})",
            soql_ids(client, s, chunk)?
        );
        for record in client.query_all_pages(s, &soql).await? {
            if let (Some(id), Some(account)) = (record.text("Id"), record.text("AccountId")) {
                let contact = person(remember(client, s, id)?);
                out.entry(remember(client, s, account)?)
                    .or_default()
                    .push(contact);
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- Accounts (a Contact's company)

/// An Account record as the boundary's organization (its name as Salesforce writes it).
fn account_of(
    client: &SalesforceClient,
    s: &Session,
    record: &Record,
) -> Result<Option<CrmOrganization>, CrmError> {
    let Some(key) = record.text("Id") else {
        return Ok(None);
    };
    Ok(Some(CrmOrganization {
        id: remember(client, s, key)?,
        name: record.text("Name").unwrap_or_default().to_owned(),
        fields: BTreeMap::new(),
    }))
}

fn accounts_of(
    client: &SalesforceClient,
    s: &Session,
    records: &[Record],
) -> Result<Vec<CrmOrganization>, CrmError> {
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        out.extend(account_of(client, s, record)?);
    }
    Ok(out)
}

/// How many names one Account search names (SOQL statements are at most 100,000 characters;
/// an Account name at most 255).
const NAMES_PER_SEARCH: usize = 100;

/// The Accounts named any of `names` that the connecting user can see, one query per hundred
/// names (SOQL's `=` and `IN` on text ignore case, as Salesforce's do; the caller compares
/// the names exactly).
pub(crate) async fn search_accounts(
    client: &SalesforceClient,
    s: &Session,
    names: &[String],
) -> Result<Vec<CrmOrganization>, CrmError> {
    let mut out = Vec::new();
    for chunk in names.chunks(NAMES_PER_SEARCH) {
        let quoted: Vec<String> = chunk.iter().map(|n| soql_string(n)).collect();
        let soql = format!(
            "SELECT Id, Name FROM Account WHERE Name IN ({}) ORDER BY CreatedDate, Id",
            quoted.join(", ")
        );
        out.extend(accounts_of(
            client,
            s,
            &client.query_all_pages(s, &soql).await?,
        )?);
    }
    Ok(out)
}

/// Creates an Account for each of `names` (owned by the connecting user) with sObject
/// Collections, 200 per call (`allOrNone=false`): one result per name, in order, a refused
/// one with its own error.
pub(crate) async fn create_accounts(
    client: &SalesforceClient,
    s: &Session,
    names: &[String],
) -> Result<Vec<Result<CrmOrganization, CrmError>>, CrmError> {
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(COLLECTION_MAX) {
        let records: Vec<Record> = chunk
            .iter()
            .map(|name| Record {
                attributes: Some(Attributes {
                    object: "Account".into(),
                    url: None,
                }),
                fields: [("Name".to_owned(), Value::from(name.as_str()))]
                    .into_iter()
                    .collect(),
            })
            .collect();
        let saved = client.collection_create(s, &records).await?;
        for (k, name) in chunk.iter().enumerate() {
            out.push(match saved.get(k) {
                None => Err(SalesforceError::Decode(
                    "sObject Collections answered fewer results than records".into(),
                )
                .into()),
                Some(result) => save_outcome(result).and_then(|()| {
                    let key = result.id.as_deref().ok_or_else(|| {
                        CrmError::from(SalesforceError::Decode("a create answer without id".into()))
                    })?;
                    Ok(CrmOrganization {
                        id: remember(client, s, key)?,
                        name: name.clone(),
                        fields: BTreeMap::new(),
                    })
                }),
            });
        }
    }
    Ok(out)
}

/// Creates an Account named `name`.
pub(crate) async fn create_account(
    client: &SalesforceClient,
    s: &Session,
    name: &str,
) -> Result<CrmOrganization, CrmError> {
    create_accounts(client, s, &[name.to_owned()])
        .await?
        .pop()
        .unwrap_or_else(|| Err(SalesforceError::Decode("no result for the Account".into()).into()))
}

/// Every field of Account as the connecting user's describe gives it (Account fields map as
/// the person's organization's).
pub(crate) async fn account_field_catalog(
    client: &SalesforceClient,
    s: &Session,
) -> Result<Vec<CatalogField>, CrmError> {
    let describe = client.describe(s, "Account").await?;
    Ok(mapping::catalog(&[&describe]))
}

/// The mapped Account fields (`RemoteField::OrganizationField`) the Account describe has: a
/// query naming one it lacks would fail whole.
async fn account_fields(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
) -> Result<Vec<String>, CrmError> {
    if map.organization_fields().next().is_none() {
        return Ok(Vec::new());
    }
    let describe = client.describe(s, "Account").await?;
    Ok(map
        .organization_fields()
        .filter_map(|f| match &f.remote {
            RemoteField::OrganizationField { key, .. } => Some(key.clone()),
            _ => None,
        })
        .filter(|key| {
            describe
                .fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(key))
        })
        .collect())
}

/// The Accounts of these ids (boundary ids) that exist, with the map's Account fields: one
/// query per 200.
pub(crate) async fn accounts_by_ids(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    ids: &[i64],
) -> Result<Vec<CrmOrganization>, CrmError> {
    let mut select = vec!["Id".to_owned(), "Name".to_owned()];
    select.extend(account_fields(client, s, map).await?);
    let mut out = Vec::new();
    for chunk in ids.chunks(COLLECTION_MAX) {
        let soql = format!(
            "SELECT {} FROM Account WHERE Id IN ({})",
            select.join(", "),
            soql_ids(client, s, chunk)?
        );
        for record in client.query_all_pages(s, &soql).await? {
            if let Some(mut account) = account_of(client, s, &record)? {
                account.fields = mapping::account_fields(&record, map);
                out.push(account);
            }
        }
    }
    Ok(out)
}

/// Writes exactly `writes` (local fields mapped to Account fields) to Account `id`, and reads
/// it back.
pub(crate) async fn update_account(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    id: i64,
    writes: &BTreeMap<FieldKey, FieldValue>,
) -> Result<CrmOrganization, CrmError> {
    let key = resolve(client, s, id)?;
    let body = mapping::account_write(writes, map)?;
    if !body.is_empty() {
        client.update_record(s, "Account", &key, &body).await?;
    }
    accounts_by_ids(client, s, map, &[id])
        .await?
        .pop()
        .ok_or_else(|| record_error(Some("NOT_FOUND"), &format!("Account {key} is gone")))
}

/// Every Contact of an Account, read as persons.
pub(crate) async fn account_people(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    account: i64,
) -> Result<Vec<CrmPerson>, CrmError> {
    let key = resolve(client, s, account)?;
    let fields = fields_for(client, s, SObject::Contact, map).await?;
    let soql = format!(
        "SELECT {} FROM Contact WHERE AccountId = {} ORDER BY Id",
        person_select(SObject::Contact, &fields),
        soql_string(&key)
    );
    client
        .query_all_pages(s, &soql)
        .await?
        .iter()
        .map(|r| person_of(client, s, map, r))
        .collect()
}

/// `object`'s records deleted since `since` (at most 15 days back, Salesforce's window): each
/// one's id and when it was deleted.
async fn deleted_since(
    client: &SalesforceClient,
    s: &Session,
    object: &str,
    since: DateTime<Utc>,
) -> Result<Vec<(String, Option<String>)>, CrmError> {
    let end = client.now();
    let start = since
        .max(end - DELETED_WINDOW)
        .min(end - ChronoDuration::minutes(1));
    let fmt = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let deleted = client.deleted(s, object, &fmt(start), &fmt(end)).await?;
    Ok(deleted
        .deleted_records
        .into_iter()
        .map(|record| (record.id, record.deleted_date))
        .collect())
}

// ---------------------------------------------------------------- related records

/// The objects journey actions, conditions and triggers need besides Leads and Contacts, as
/// change streams of their own: Accounts, Opportunities, the contact roles that tie
/// Opportunities to Contacts, and the Tasks on Leads and Contacts. The roles come before the
/// Opportunities: an Opportunity's change finds the Contacts it concerns among the roles
/// stored (journey triggers).
pub(crate) const RELATED_STREAMS: [&str; 4] =
    ["Account", "OpportunityContactRole", "Opportunity", "Task"];

/// The kind of record related stream `stream` holds, and the fields read of it.
pub(crate) fn related_kind(stream: &str) -> Option<(RelatedKind, &'static str)> {
    Some(match stream {
        // The fields an organization's change names (`organization.changed`).
        "Account" => (
            RelatedKind::Company,
            "Id, Name, OwnerId, Type, Industry, Website, Phone, BillingStreet, BillingCity, BillingState, BillingPostalCode, BillingCountry, NumberOfEmployees, AnnualRevenue, Description, CreatedDate, SystemModstamp",
        ),
        "Opportunity" => (
            RelatedKind::Deal,
            "Id, Name, AccountId, StageName, IsClosed, IsWon, OwnerId, CreatedDate, SystemModstamp",
        ),
        "OpportunityContactRole" => (
            RelatedKind::DealRole,
            "Id, OpportunityId, ContactId, IsPrimary, CreatedDate, SystemModstamp",
        ),
        // And `Type` and `TaskSubtype` when the connecting user can see them (`task_fields`).
        "Task" => (
            RelatedKind::Activity,
            "Id, Subject, WhoId, WhatId, Status, IsClosed, ActivityDate, OwnerId, CreatedDate, SystemModstamp",
        ),
        _ => return None,
    })
}

/// The fields a Task query names: `base` (see [`related_kind`]), then `Type` and
/// `TaskSubtype` where the Task describe lists them. Field-level security can hide either from
/// the connecting user, and a query naming a hidden field fails (INVALID_FIELD) for the whole
/// stream; the describe lists only the fields the user can read, and the client keeps it per
/// connection, so this costs no call per page.
///
/// `TaskSubtype` is read as well as `Type`: `Type` is what a user picks (and what journey
/// actions set), but a call logged with "Log a Call" or an e-mail logged from an inbox says
/// what it is in `TaskSubtype` (`Call`, `Email`) and often has no `Type`. The kept type is
/// `Type` when set, else `TaskSubtype` (a plain Task: `task`), so a Task always has the type a
/// Salesforce user would see.
async fn task_fields(
    client: &SalesforceClient,
    s: &Session,
    base: &str,
) -> Result<String, CrmError> {
    let task = client.describe(s, "Task").await?;
    let mut fields = base.to_owned();
    for name in ["Type", "TaskSubtype"] {
        if task.fields.iter().any(|f| f.name == name) {
            fields.push_str(", ");
            fields.push_str(name);
        }
    }
    Ok(fields)
}

fn related_of(
    client: &SalesforceClient,
    s: &Session,
    kind: RelatedKind,
    record: &Record,
) -> Result<Option<CrmRelated>, CrmError> {
    let Some(key) = record.text("Id") else {
        return Ok(None);
    };
    let id_of = |field: &str| {
        record
            .text(field)
            .map(|key| remember(client, s, key))
            .transpose()
    };
    // A Task's person is its `WhoId` (a Lead or a Contact), its deal a `WhatId` that is an
    // Opportunity (`006…`).
    let what_deal = record.text("WhatId").filter(|w| w.starts_with("006"));
    Ok(Some(CrmRelated {
        kind,
        id: remember(client, s, key)?,
        name: record
            .text("Name")
            .or_else(|| record.text("Subject"))
            .map(str::to_owned),
        company_id: id_of("AccountId")?,
        deal_id: match what_deal {
            Some(deal) => Some(remember(client, s, deal)?),
            None => id_of("OpportunityId")?,
        },
        person_id: id_of("ContactId")?.or(id_of("WhoId")?).map(person),
        stage: record.text("StageName").map(str::to_owned),
        stage_id: id_of("StageName")?,
        status: match kind {
            RelatedKind::Deal => Some(match (record.flag("IsClosed"), record.flag("IsWon")) {
                (false, _) => "open",
                (true, true) => "won",
                (true, false) => "lost",
            }),
            RelatedKind::Activity => Some(if record.flag("IsClosed") {
                "done"
            } else {
                "open"
            }),
            _ => None,
        }
        .map(str::to_owned),
        owner_id: id_of("OwnerId")?,
        due_on: record.text("ActivityDate").map(str::to_owned),
        // Only a Task's: an Account has a `Type` too (`Customer - Direct`, …).
        activity_type: (kind == RelatedKind::Activity)
            .then(|| {
                ["Type", "TaskSubtype"]
                    .into_iter()
                    .find_map(|field| record.text(field).filter(|t| !t.is_empty()))
                    .map(str::to_lowercase)
            })
            .flatten(),
        created: record.text("CreatedDate").map(str::to_owned),
        modified: record.text("SystemModstamp").map(str::to_owned),
        deleted: false,
        raw: Value::Object(record.fields.clone()),
    }))
}

/// One page of a related stream (`stream`: one of [`RELATED_STREAMS`]), oldest change first:
/// every record (`since` none: the initial sync), or the changes at or after `since`, then the
/// records deleted since then. The cursor is `Q|` and the query's `nextRecordsUrl`, or `D` for
/// the deletes.
pub(crate) async fn related_page(
    client: &SalesforceClient,
    s: &Session,
    stream: &str,
    since: Option<DateTime<Utc>>,
    cursor: Option<String>,
) -> Result<RelatedPage, CrmError> {
    let (kind, fields) = related_kind(stream).ok_or_else(|| {
        SalesforceError::Decode(format!("not a Salesforce related stream: {stream:?}"))
    })?;
    if cursor.as_deref() == Some("D") {
        let since = since.ok_or_else(|| {
            CrmError::from(SalesforceError::Decode(
                "a listing has no deletes phase".into(),
            ))
        })?;
        let deleted = deleted_since(client, s, stream, since).await?;
        let items = deleted
            .into_iter()
            .map(|(key, at)| {
                Ok(CrmRelated {
                    modified: at,
                    deleted: true,
                    raw: json!({ "Id": key }),
                    ..CrmRelated::bare(kind, remember(client, s, &key)?)
                })
            })
            .collect::<Result<_, CrmError>>()?;
        return Ok(RelatedPage {
            items,
            next_cursor: None,
        });
    }
    let page = match cursor.as_deref().and_then(|c| c.strip_prefix("Q|")) {
        Some(url) => client.query_more(s, url).await?,
        None => {
            // Tasks only on a Lead or Contact: the others concern no person.
            let condition = (stream == "Task").then_some("WhoId != null");
            let fields = match stream {
                "Task" => task_fields(client, s, fields).await?,
                _ => fields.to_owned(),
            };
            client
                .query(s, &soql_by_modstamp(&fields, stream, condition, since))
                .await?
        }
    };
    let mut items = Vec::with_capacity(page.records.len());
    for record in &page.records {
        items.extend(related_of(client, s, kind, record)?);
    }
    let next_cursor = match (page.done, page.next_records_url) {
        (false, Some(url)) => Some(format!("Q|{url}")),
        _ => since.is_some().then(|| "D".to_owned()),
    };
    Ok(RelatedPage { items, next_cursor })
}

pub(crate) async fn get_person(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    id: PersonId,
) -> Result<CrmPerson, CrmError> {
    let (object, key) = resolve_person(client, s, id)?;
    read_person(client, s, map, object, &key).await
}

async fn read_person(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    object: SObject,
    key: &str,
) -> Result<CrmPerson, CrmError> {
    let fields = fields_for(client, s, object, map).await?;
    let record = client.get_record(s, object.name(), key, &fields).await?;
    person_of(client, s, map, &record)
}

// ---------------------------------------------------------------- writing persons

pub(crate) async fn update_person(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    id: PersonId,
    writes: &BTreeMap<FieldKey, FieldValue>,
) -> Result<CrmPerson, CrmError> {
    let (object, key) = resolve_person(client, s, id)?;
    let (mut body, mut filled) = mapping::person_write(
        object,
        writes,
        map,
        client.config(),
        &key_resolver(client, s),
    )?;
    let describe = client.describe(s, object.name()).await?;
    mapping::only_fields_of(&mut body, &mut filled, map, &describe);
    if body.is_empty() {
        return read_person(client, s, map, object, &key).await;
    }
    // The write and its read-back in one Composite call, as a batch of one (ADR 20).
    update_people_batch(client, s, map, &[(id, writes.clone())])
        .await?
        .pop()
        .unwrap_or_else(|| Err(SalesforceError::Decode("no result for the record".into()).into()))
}

fn log_placeholders(s: &Session, key: &str, filled: &[crate::crm::records::FilledPlaceholder]) {
    for f in filled {
        tracing::info!(connection_id = %s.connection_id, record_id = key, field = %f.field, "Salesforce requires the field and the app has no value; a placeholder was written.");
    }
}

/// Creates a person as the configured object (a Lead by default) with the apId in the
/// external-id field; `LastName` (and a Lead's `Company`) get placeholders when the app has
/// none, and the answer says which.
pub(crate) async fn create_person(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    fields: &BTreeMap<FieldKey, FieldValue>,
    ap_id: &ApId,
    default_owner: Option<i64>,
) -> Result<CreatedPerson, CrmError> {
    let object = client.config().create_as;
    let default_owner = default_owner.and_then(|o| client.keys().resolve(s.connection_id, o));
    let (mut body, mut placeholders) = mapping::create_body(
        object,
        fields,
        map,
        client.config(),
        ap_id,
        default_owner,
        &key_resolver(client, s),
    )?;
    let describe = client.describe(s, object.name()).await?;
    mapping::only_fields_of(&mut body, &mut placeholders, map, &describe);
    let saved = client.create_record(s, object.name(), &body).await?;
    let key = saved.id.ok_or_else(|| {
        CrmError::from(SalesforceError::Decode("a create answer without id".into()))
    })?;
    log_placeholders(s, &key, &placeholders);
    let person = read_person(client, s, map, object, &key).await?;
    Ok(CreatedPerson {
        person,
        placeholders,
    })
}

fn save_outcome(result: &SaveResult) -> Result<(), CrmError> {
    if result.success {
        return Ok(());
    }
    let first = result.errors.first();
    Err(record_error(
        first.and_then(|e| e.status_code.as_deref()),
        first.map_or("the record was not saved", |e| e.message.as_str()),
    ))
}

/// The sObject Collections write of `records` as a Composite subrequest.
fn collection_subrequest(
    client: &SalesforceClient,
    method: &'static str,
    reference_id: &str,
    records: &[Record],
) -> Subrequest {
    Subrequest {
        method,
        url: client.subrequest_url("/composite/sobjects", &[]),
        reference_id: reference_id.to_owned(),
        body: Some(json!({ "allOrNone": false, "records": records })),
    }
}

/// The records of `ids` (their `fields`), by the id asked for (`None`: gone): from the
/// read-back subrequest's `answered` when it answered for the id, else (it failed, or a
/// record is missing from a query's answer) with one `composite/sobjects` retrieve per 200 of
/// the missing, so a read-back that did not come costs a call but never a result.
async fn read_back(
    client: &SalesforceClient,
    s: &Session,
    object: SObject,
    fields: &[String],
    ids: &[String],
    mut found: BTreeMap<String, Option<Record>>,
) -> Result<BTreeMap<String, Option<Record>>, CrmError> {
    let missing: Vec<String> = ids
        .iter()
        .filter(|id| !found.contains_key(*id))
        .cloned()
        .collect();
    let mut out: BTreeMap<String, Option<Record>> = BTreeMap::new();
    for chunk in missing.chunks(COLLECTION_MAX) {
        let records = client.retrieve(s, object.name(), chunk, fields).await?;
        for (id, record) in chunk.iter().zip(records) {
            out.insert(id.clone(), record);
        }
    }
    for id in ids {
        if let Some(record) = found.remove(id) {
            out.insert(id.clone(), record);
        }
    }
    Ok(out)
}

/// One result per record of a batch; a record left without one is an error of its own.
fn every_result<T>(results: Vec<Option<Result<T, CrmError>>>) -> Vec<Result<T, CrmError>> {
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(
                || Err(SalesforceError::Decode("no result for a record".into()).into()),
            )
        })
        .collect()
}

/// Writes to many persons with sObject Collections (200 per call, `allOrNone=false`) and
/// reads the written ones back in the same call: one Composite call (`POST /composite`, one
/// API call, ADR 0020) per 200 carries the `PATCH /composite/sobjects` and one
/// `GET /composite/sobjects/{Lead|Contact}` per object, run in that order. Returns one result
/// per input, in order: a record Salesforce refused carries its own error.
pub(crate) async fn update_people_batch(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    updates: &[(PersonId, BTreeMap<FieldKey, FieldValue>)],
) -> Result<Vec<Result<CrmPerson, CrmError>>, CrmError> {
    let mut results: Vec<Option<Result<CrmPerson, CrmError>>> = vec![None; updates.len()];
    // (input index, object, id, record)
    let mut pending: Vec<(usize, SObject, String, Record)> = Vec::new();
    for (i, (id, writes)) in updates.iter().enumerate() {
        match resolve_person(client, s, *id) {
            Err(e) => results[i] = Some(Err(e)),
            Ok((object, key)) => {
                let written = mapping::person_write(
                    object,
                    writes,
                    map,
                    client.config(),
                    &key_resolver(client, s),
                );
                let (mut body, mut filled) = match written {
                    Ok(written) => written,
                    Err(e) => {
                        results[i] = Some(Err(e));
                        continue;
                    }
                };
                // Cached by the client: one describe call per object and TTL.
                let describe = client.describe(s, object.name()).await?;
                mapping::only_fields_of(&mut body, &mut filled, map, &describe);
                log_placeholders(s, &key, &filled);
                body.insert("id".into(), Value::from(key.clone()));
                let record = Record {
                    attributes: Some(Attributes {
                        object: object.name().into(),
                        url: None,
                    }),
                    fields: body,
                };
                pending.push((i, object, key, record));
            }
        }
    }
    let mut fields: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for object in [SObject::Lead, SObject::Contact] {
        if pending.iter().any(|(_, o, ..)| *o == object) {
            fields.insert(object.name(), fields_for(client, s, object, map).await?);
        }
    }
    for chunk in pending.chunks(COLLECTION_MAX) {
        let records: Vec<Record> = chunk.iter().map(|(.., r)| r.clone()).collect();
        let mut subrequests = vec![collection_subrequest(client, "PATCH", "write", &records)];
        // (object, ids asked for) of each read-back subrequest, in order.
        let mut reads: Vec<(SObject, Vec<String>)> = Vec::new();
        for object in [SObject::Lead, SObject::Contact] {
            let ids: Vec<String> = chunk
                .iter()
                .filter(|(_, o, ..)| *o == object)
                .map(|(_, _, k, _)| k.clone())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let of_object = &fields[object.name()];
            subrequests.push(Subrequest {
                method: "GET",
                url: client.subrequest_url(
                    &format!("/composite/sobjects/{}", object.name()),
                    &[("ids", &ids.join(",")), ("fields", &of_object.join(","))],
                ),
                reference_id: format!("read{}", object.name()),
                body: None,
            });
            reads.push((object, ids));
        }
        let mut answers = client.composite(s, &subrequests).await?.into_iter();
        let saved: Vec<SaveResult> = match answers.next() {
            Some(answer) => subrequest_answer(answer)?,
            None => Vec::new(),
        };
        let mut read: BTreeMap<String, Option<Record>> = BTreeMap::new();
        for ((object, ids), answer) in reads.iter().zip(answers) {
            let found: BTreeMap<String, Option<Record>> = match subrequest_answer::<
                Vec<Option<Record>>,
            >(answer)
            {
                Ok(records) => ids.iter().cloned().zip(records).collect(),
                Err(error) => {
                    tracing::warn!(connection_id = %s.connection_id, error = %error, "The read-back inside the composite call failed; reading the records again.");
                    BTreeMap::new()
                }
            };
            // A record the answer has as `null` is gone (deleted, or no longer visible).
            read.extend(read_back(client, s, *object, &fields[object.name()], ids, found).await?);
        }
        let converted = converted_contacts(client, s, chunk, &saved).await?;
        for (k, (i, object, key, _)) in chunk.iter().enumerate() {
            results[*i] = Some(match saved.get(k).map(save_outcome) {
                Some(Err(mut e)) if converted.contains_key(key) => {
                    // The Lead was converted: it lives on as its Contact, where the write goes.
                    e.kind = tandem_core::CrmErrorKind::NotFound;
                    e.moved_to = converted.get(key).copied().map(Box::new);
                    Err(e)
                }
                Some(Ok(())) => match read.get(key).cloned().flatten() {
                    Some(record) => person_of(client, s, map, &record),
                    None => Err(record_error(
                        Some("NOT_FOUND"),
                        &format!("{} {key} is gone after the update", object.name()),
                    )),
                },
                Some(Err(e)) => Err(e),
                None => Err(SalesforceError::Decode(
                    "sObject Collections answered fewer results than records".into(),
                )
                .into()),
            });
        }
    }
    Ok(every_result(results))
}

/// Creates many persons with sObject Collections (`POST /composite/sobjects`, 200 per call,
/// `allOrNone=false`), each as the configured object with the apId in the external-id field,
/// and reads the created ones back in the same call: one Composite call (`POST /composite`,
/// one API call, ADR 0020) per 200 carries the create and a query of the object by the
/// batch's external ids (the new ids are not known when the call is sent; the external ids
/// are). One result per input, in order: a record Salesforce refused carries its own error.
pub(crate) async fn create_people_batch(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    people: &[crate::crm::records::NewPerson],
) -> Result<Vec<Result<CreatedPerson, CrmError>>, CrmError> {
    let object = client.config().create_as;
    let mut results: Vec<Option<Result<CreatedPerson, CrmError>>> = vec![None; people.len()];
    // (input index, record, placeholders): a record with a value its field cannot take is
    // its own error, and the others are sent.
    let mut pending = Vec::with_capacity(people.len());
    let describe = client.describe(s, object.name()).await?;
    for (i, p) in people.iter().enumerate() {
        let default_owner = p
            .default_owner
            .and_then(|o| client.keys().resolve(s.connection_id, o));
        let built = mapping::create_body(
            object,
            &p.fields,
            map,
            client.config(),
            &p.ap_id,
            default_owner,
            &key_resolver(client, s),
        );
        let (mut body, mut placeholders) = match built {
            Ok(built) => built,
            Err(e) => {
                results[i] = Some(Err(e));
                continue;
            }
        };
        mapping::only_fields_of(&mut body, &mut placeholders, map, &describe);
        let record = Record {
            attributes: Some(Attributes {
                object: object.name().into(),
                url: None,
            }),
            fields: body,
        };
        pending.push((i, record, placeholders));
    }
    if !pending.is_empty() {
        let fields = fields_for(client, s, object, map).await?;
        create_pending(
            client,
            s,
            map,
            object,
            &fields,
            people,
            &pending,
            &mut results,
        )
        .await?;
    }
    Ok(every_result(results))
}

/// The creates of [`create_people_batch`] whose bodies were built, 200 per Composite call.
#[allow(clippy::too_many_arguments)]
async fn create_pending(
    client: &SalesforceClient,
    s: &Session,
    map: &FieldMap,
    object: SObject,
    fields: &[String],
    people: &[crate::crm::records::NewPerson],
    pending: &[(usize, Record, Vec<crate::crm::records::FilledPlaceholder>)],
    results: &mut [Option<Result<CreatedPerson, CrmError>>],
) -> Result<(), CrmError> {
    let ext_field = mapping::ext_field(map, client.config()).to_owned();
    for chunk in pending.chunks(COLLECTION_MAX) {
        let records: Vec<Record> = chunk.iter().map(|(_, r, _)| r.clone()).collect();
        let ap_ids: Vec<String> = chunk
            .iter()
            .map(|(i, ..)| soql_string(people[*i].ap_id.as_str()))
            .collect();
        let soql = format!(
            "SELECT {} FROM {} WHERE {ext_field} IN ({})",
            person_select(object, fields),
            object.name(),
            ap_ids.join(", ")
        );
        let subrequests = [
            collection_subrequest(client, "POST", "create", &records),
            Subrequest {
                method: "GET",
                url: client.subrequest_url("/query", &[("q", &soql)]),
                reference_id: "readBack".to_owned(),
                body: None,
            },
        ];
        let mut answers = client.composite(s, &subrequests).await?.into_iter();
        let saved: Vec<SaveResult> = match answers.next() {
            Some(answer) => subrequest_answer(answer)?,
            None => Vec::new(),
        };
        let found: BTreeMap<String, Option<Record>> = match answers
            .next()
            .map(subrequest_answer::<QueryResult>)
        {
            Some(Ok(page)) => page
                .records
                .into_iter()
                .filter_map(|r| r.text("Id").map(str::to_owned).map(|id| (id, Some(r))))
                .collect(),
            Some(Err(error)) => {
                tracing::warn!(connection_id = %s.connection_id, error = %error, "The read-back inside the composite call failed; reading the created records again.");
                BTreeMap::new()
            }
            None => BTreeMap::new(),
        };
        // (input index, new id, placeholders)
        let mut created: Vec<(usize, String, &[crate::crm::records::FilledPlaceholder])> =
            Vec::new();
        for (k, (i, _, placeholders)) in chunk.iter().enumerate() {
            let i = *i;
            match saved.get(k) {
                Some(result) => match (save_outcome(result), &result.id) {
                    (Ok(()), Some(id)) => {
                        log_placeholders(s, id, placeholders);
                        created.push((i, id.clone(), placeholders));
                    }
                    (Ok(()), None) => {
                        results[i] = Some(Err(SalesforceError::Decode(
                            "a create answer without id".into(),
                        )
                        .into()))
                    }
                    (Err(e), _) => results[i] = Some(Err(e)),
                },
                None => {
                    results[i] = Some(Err(SalesforceError::Decode(
                        "sObject Collections answered fewer results than records".into(),
                    )
                    .into()))
                }
            }
        }
        let ids: Vec<String> = created.iter().map(|(_, id, _)| id.clone()).collect();
        let read = read_back(client, s, object, fields, &ids, found).await?;
        for (i, key, placeholders) in created {
            results[i] = Some(match read.get(&key).cloned().flatten() {
                Some(record) => person_of(client, s, map, &record).map(|person| CreatedPerson {
                    person,
                    placeholders: placeholders.to_vec(),
                }),
                None => Err(record_error(
                    Some("NOT_FOUND"),
                    &format!("{} {key} is gone after its create", object.name()),
                )),
            });
        }
    }
    Ok(())
}

/// Keys per SOQL `IN (…)` list: 200 e-mails or external ids keep a query's URL well under
/// Salesforce's 16,384 characters.
const IN_LIST_MAX: usize = 200;

/// `(Id, value of field)` of every record of `object` whose `field` is one of `values`
/// (unconverted Leads only), in creation order; one query per 200 values.
async fn ids_in(
    client: &SalesforceClient,
    s: &Session,
    object: SObject,
    field: &str,
    values: &[&str],
) -> Result<Vec<(PersonId, String)>, CrmError> {
    let lead_filter = if object == SObject::Lead {
        " AND IsConverted = false"
    } else {
        ""
    };
    let mut found = Vec::new();
    for chunk in values.chunks(IN_LIST_MAX) {
        let list: Vec<String> = chunk.iter().map(|v| soql_string(v)).collect();
        let soql = format!(
            "SELECT Id, {field} FROM {} WHERE {field} IN ({}){lead_filter} ORDER BY CreatedDate, Id",
            object.name(),
            list.join(", ")
        );
        for record in client.query_all_pages(s, &soql).await? {
            let (Some(id), Some(value)) = (record.text("Id"), record.text(field)) else {
                continue;
            };
            found.push((remember(client, s, id).map(person)?, value.to_owned()));
        }
    }
    Ok(found)
}

/// Batched [`search_by_external_id`] and [`search_by_email`]: one `IN (…)` query per object
/// and 200 keys; an e-mail with a Contact never looks at Leads, as one by one.
pub(crate) async fn search_people_batch(
    client: &SalesforceClient,
    s: &Session,
    ap_ids: &[ApId],
    emails: &[EmailAddress],
) -> Result<crate::crm::records::BatchSearch, CrmError> {
    let mut out = crate::crm::records::BatchSearch::default();
    if !ap_ids.is_empty() {
        let field = client.config().external_id_field.clone();
        let keys: Vec<&str> = ap_ids.iter().map(ApId::as_str).collect();
        for object in [SObject::Contact, SObject::Lead] {
            for (id, value) in ids_in(client, s, object, &field, &keys).await? {
                out.by_ap_id.entry(value).or_default().push(id);
            }
        }
        for key in keys {
            out.by_ap_id.entry(key.to_owned()).or_default();
        }
    }
    if !emails.is_empty() {
        let keys: Vec<&str> = emails.iter().map(EmailAddress::as_str).collect();
        // Salesforce compares text case-insensitively: the answer's e-mail is normalised
        // before it is matched to the one asked for.
        let by_email = |found: Vec<(PersonId, String)>| {
            let mut map: BTreeMap<String, Vec<PersonId>> = BTreeMap::new();
            for (id, value) in found {
                map.entry(value.trim().to_lowercase()).or_default().push(id);
            }
            map
        };
        let contacts = by_email(ids_in(client, s, SObject::Contact, "Email", &keys).await?);
        let without: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !contacts.contains_key(*k))
            .collect();
        let leads = if without.is_empty() {
            BTreeMap::new()
        } else {
            by_email(ids_in(client, s, SObject::Lead, "Email", &without).await?)
        };
        for key in keys {
            let ids = contacts
                .get(key)
                .or_else(|| leads.get(key))
                .cloned()
                .unwrap_or_default();
            out.by_email.insert(key.to_owned(), ids);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------- searches

async fn ids_where(
    client: &SalesforceClient,
    s: &Session,
    object: SObject,
    condition: &str,
) -> Result<Vec<PersonId>, CrmError> {
    let lead_filter = if object == SObject::Lead {
        " AND IsConverted = false"
    } else {
        ""
    };
    let soql = format!(
        "SELECT Id FROM {} WHERE {condition}{lead_filter} ORDER BY CreatedDate, Id",
        object.name()
    );
    client
        .query_all_pages(s, &soql)
        .await?
        .iter()
        .filter_map(|r| r.text("Id"))
        .map(|id| remember(client, s, id).map(person))
        .collect()
}

/// Contacts with the e-mail (Salesforce compares text case-insensitively); when there are
/// none, unconverted Leads with it.
pub(crate) async fn search_by_email(
    client: &SalesforceClient,
    s: &Session,
    email: &EmailAddress,
) -> Result<Vec<PersonId>, CrmError> {
    let condition = format!("Email = {}", soql_string(email.as_str()));
    let contacts = ids_where(client, s, SObject::Contact, &condition).await?;
    if !contacts.is_empty() {
        return Ok(contacts);
    }
    ids_where(client, s, SObject::Lead, &condition).await
}

fn checked(
    client: &SalesforceClient,
    s: &Session,
    object: SObject,
    record: &Record,
) -> Result<Option<CheckedRecord>, CrmError> {
    let Some(key) = record.text("Id") else {
        return Ok(None);
    };
    Ok(Some(CheckedRecord {
        id: person(remember(client, s, key)?),
        key: key.to_owned(),
        object: object.name(),
        email: record
            .text("Email")
            .filter(|e| !e.is_empty())
            .map(str::to_owned),
        modified: record.text("SystemModstamp").and_then(mapping::parse_time),
    }))
}

/// Contacts, then unconverted Leads, with the e-mail, as the connecting user sees them.
pub(crate) async fn records_with_email(
    client: &SalesforceClient,
    s: &Session,
    email: &str,
) -> Result<Vec<CheckedRecord>, CrmError> {
    let mut out = Vec::new();
    for object in [SObject::Contact, SObject::Lead] {
        let lead_filter = if object == SObject::Lead {
            " AND IsConverted = false"
        } else {
            ""
        };
        let soql = format!(
            "SELECT Id, Email, SystemModstamp FROM {} WHERE Email = {}{lead_filter} ORDER BY CreatedDate, Id",
            object.name(),
            soql_string(email.trim())
        );
        for record in client.query_all_pages(s, &soql).await? {
            out.extend(checked(client, s, object, &record)?);
        }
    }
    Ok(out)
}

/// A Lead or Contact read by its id (404 when sharing hides it or it is gone).
pub(crate) async fn check_record(
    client: &SalesforceClient,
    s: &Session,
    id: PersonId,
) -> Result<CheckedRecord, CrmError> {
    let (object, key) = resolve_person(client, s, id)?;
    let record = client
        .get_record(
            s,
            object.name(),
            &key,
            &[
                "Id".to_owned(),
                "Email".to_owned(),
                "SystemModstamp".to_owned(),
            ],
        )
        .await?;
    checked(client, s, object, &record)?
        .ok_or_else(|| SalesforceError::Decode("a record without its Id".into()).into())
}

/// Contacts, then unconverted Leads, carrying the apId in the external-id field.
pub(crate) async fn search_by_external_id(
    client: &SalesforceClient,
    s: &Session,
    ap_id: &ApId,
) -> Result<Vec<PersonId>, CrmError> {
    let condition = format!(
        "{} = {}",
        client.config().external_id_field,
        soql_string(ap_id.as_str())
    );
    let mut ids = ids_where(client, s, SObject::Contact, &condition).await?;
    ids.extend(ids_where(client, s, SObject::Lead, &condition).await?);
    Ok(ids)
}

/// Salesforce's REST API cannot merge Leads or Contacts: a clear, non-retryable error.
pub(crate) fn merge_people() -> Result<(), CrmError> {
    Err(SalesforceError::Unsupported {
        message: "Salesforce's REST API cannot merge Leads or Contacts".into(),
        hint: MERGE_HINT,
    }
    .into())
}

// ---------------------------------------------------------------- user and fields

pub(crate) async fn whoami(client: &SalesforceClient, s: &Session) -> Result<CrmUser, CrmError> {
    let me = client.userinfo(s).await?;
    Ok(CrmUser {
        id: remember(client, s, &me.user_id)?,
        name: me.name,
        company_id: me
            .organization_id
            .as_deref()
            .map(|o| remember(client, s, o))
            .transpose()?,
    })
}

pub(crate) async fn field_catalog(
    client: &SalesforceClient,
    s: &Session,
) -> Result<Vec<CatalogField>, CrmError> {
    // What Salesforce says now: an admin may have added a field or granted Edit on one.
    client.forget_describes(s.connection_id);
    let lead = client.describe(s, "Lead").await?;
    let contact = client.describe(s, "Contact").await?;
    Ok(mapping::catalog(&[&lead, &contact]))
}

/// A custom field's API name from a name (`lifetime value` → `lifetime_value__c`).
pub(crate) fn api_name(name: &str) -> String {
    if name.ends_with("__c") {
        return name.to_owned();
    }
    let mut out: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let mut out = out.trim_matches('_').to_owned();
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert_str(0, "f_");
    }
    out.truncate(40);
    format!("{}__c", out.trim_end_matches('_'))
}

/// Tooling `CustomField` metadata for a describe type (or a Tooling type name).
fn field_metadata(label: &str, field_type: &str, external_id: bool) -> Result<Value, CrmError> {
    let mut m = match field_type.to_ascii_lowercase().as_str() {
        "string" | "text" | "varchar" => json!({"type": "Text", "length": 255}),
        "textarea" => json!({"type": "TextArea"}),
        "longtextarea" => json!({"type": "LongTextArea", "length": 32768, "visibleLines": 3}),
        "email" => json!({"type": "Email"}),
        "phone" => json!({"type": "Phone"}),
        "url" => json!({"type": "Url"}),
        "boolean" | "checkbox" => json!({"type": "Checkbox", "defaultValue": false}),
        "double" | "number" | "int" => json!({"type": "Number", "precision": 18, "scale": 2}),
        "currency" => json!({"type": "Currency", "precision": 18, "scale": 2}),
        "percent" => json!({"type": "Percent", "precision": 5, "scale": 2}),
        "date" => json!({"type": "Date"}),
        "datetime" => json!({"type": "DateTime"}),
        other => {
            return Err(SalesforceError::Unsupported {
                message: format!("tandem cannot create a Salesforce field of type {other:?}"),
                hint: "Create the field in Salesforce (Setup -> Object Manager -> Lead / Contact -> Fields & Relationships -> New) with the API name the Field Mapping tab lists, then map it.",
            }
            .into())
        }
    };
    m["label"] = Value::from(label);
    if external_id {
        m["externalId"] = Value::Bool(true);
        m["unique"] = Value::Bool(true);
    }
    Ok(m)
}

/// Checks that the connecting user holds Modify All Data (its profile's or an assigned
/// permission set's), which tandem needs to read and write every Lead and Contact whoever owns
/// it; without it, a classified `INSUFFICIENT_ACCESS_OR_READONLY` (the troubleshooting guide's
/// reconnect error).
pub(crate) async fn check_write_access(
    client: &SalesforceClient,
    s: &Session,
) -> Result<(), CrmError> {
    let me = client.userinfo(s).await?;
    let mut sets = vec![profile_permission_set(client, s).await?];
    let assigned = client
        .query(
            s,
            &format!(
                "SELECT PermissionSetId FROM PermissionSetAssignment WHERE AssigneeId = {}",
                soql_string(&me.user_id)
            ),
        )
        .await?;
    sets.extend(
        assigned
            .records
            .iter()
            .filter_map(|r| r.text("PermissionSetId"))
            .map(str::to_owned),
    );
    let ids: Vec<String> = sets.iter().map(|id| soql_string(id)).collect();
    let held = client
        .query(
            s,
            &format!(
                "SELECT PermissionsModifyAllData FROM PermissionSet WHERE Id IN ({})",
                ids.join(", ")
            ),
        )
        .await?;
    if held
        .records
        .iter()
        .any(|r| r.flag("PermissionsModifyAllData"))
    {
        Ok(())
    } else {
        Err(SalesforceError::Api {
            status: 400,
            code: Some("INSUFFICIENT_ACCESS_OR_READONLY".into()),
            message:
                "The connecting user's profile and permission sets do not grant Modify All Data."
                    .into(),
            fields: Vec::new(),
        }
        .into())
    }
}

/// The permission set owned by the connecting user's profile (where field-level security of
/// the profile lives).
async fn profile_permission_set(
    client: &SalesforceClient,
    s: &Session,
) -> Result<String, CrmError> {
    let me = client.userinfo(s).await?;
    let users = client
        .query(
            s,
            &format!(
                "SELECT ProfileId FROM User WHERE Id = {}",
                soql_string(&me.user_id)
            ),
        )
        .await?;
    let profile = users
        .records
        .first()
        .and_then(|u| u.text("ProfileId"))
        .ok_or_else(|| {
            CrmError::from(SalesforceError::Decode(
                "the connecting user has no profile".into(),
            ))
        })?
        .to_owned();
    let sets = client
        .query(
            s,
            &format!(
                "SELECT Id FROM PermissionSet WHERE ProfileId = {} AND IsOwnedByProfile = true",
                soql_string(&profile)
            ),
        )
        .await?;
    sets.records
        .first()
        .and_then(|p| p.text("Id"))
        .map(str::to_owned)
        .ok_or_else(|| SalesforceError::Decode("the profile has no permission set".into()).into())
}

/// Creates a custom field on Lead and Contact through the Tooling API (needs Customize
/// Application), then grants the connecting user's profile Read and Edit on both (a field
/// created through the API is invisible to every profile until then). The external-id field is
/// created External ID and Unique.
pub(crate) async fn create_field(
    client: &SalesforceClient,
    s: &Session,
    name: &str,
    field_type: &str,
) -> Result<CatalogField, CrmError> {
    let objects = [SObject::Lead.name(), SObject::Contact.name()];
    let api = create_field_on(client, s, &objects, name, field_type).await?;
    created_field(field_catalog(client, s).await?, &api)
}

/// Creates a custom field on Account, as [`create_field`] does on Lead and Contact.
pub(crate) async fn create_account_field(
    client: &SalesforceClient,
    s: &Session,
    name: &str,
    field_type: &str,
) -> Result<CatalogField, CrmError> {
    let api = create_field_on(client, s, &["Account"], name, field_type).await?;
    created_field(account_field_catalog(client, s).await?, &api)
}

/// The field `api` of a catalog read after its creation.
fn created_field(catalog: Vec<CatalogField>, api: &str) -> Result<CatalogField, CrmError> {
    catalog
        .into_iter()
        .find(|f| f.key.eq_ignore_ascii_case(api))
        .ok_or_else(|| {
            SalesforceError::Decode(format!("{api} is missing from describe after its creation"))
                .into()
        })
}

/// Creates the custom field on each of `objects` that lacks it and grants the connecting
/// user's profile Read and Edit on it; returns its API name.
async fn create_field_on(
    client: &SalesforceClient,
    s: &Session,
    objects: &[&str],
    name: &str,
    field_type: &str,
) -> Result<String, CrmError> {
    let api = api_name(name);
    let external = api.eq_ignore_ascii_case(&client.config().external_id_field);
    let label = name.trim_end_matches("__c").replace('_', " ");
    let metadata = field_metadata(&label, field_type, external)?;
    for object in objects {
        let full = format!("{object}.{api}");
        let exists = client
            .describe(s, object)
            .await?
            .fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(&api));
        if !exists {
            let saved = client
                .tooling_create(
                    s,
                    "CustomField",
                    &json!({"FullName": full, "Metadata": metadata}),
                )
                .await?;
            save_outcome(&saved)?;
        }
    }
    let permission_set = profile_permission_set(client, s).await?;
    for object in objects {
        let grant = json!({
            "ParentId": permission_set,
            "SobjectType": object,
            "Field": format!("{object}.{api}"),
            "PermissionsRead": true,
            "PermissionsEdit": true,
        });
        save_outcome(&client.tooling_create(s, "FieldPermissions", &grant).await?)?;
    }
    client.forget_describes(s.connection_id);
    tracing::info!(connection_id = %s.connection_id, field = %api, objects = ?objects, "Created a Salesforce custom field and granted the profile Edit on it.");
    Ok(api)
}

// ---------------------------------------------------------------- journey objects

/// The Opportunity stages (`StageName` picklist values); a stage's id is its value's surrogate.
pub(crate) async fn stages(
    client: &SalesforceClient,
    s: &Session,
) -> Result<Vec<CrmStage>, CrmError> {
    let describe = client.describe(s, "Opportunity").await?;
    let Some(field) = describe.fields.iter().find(|f| f.name == "StageName") else {
        return Ok(Vec::new());
    };
    field
        .picklist_values
        .iter()
        .filter(|p| p.active != Some(false))
        .map(|p| {
            Ok(CrmStage {
                id: remember(client, s, &p.value)?,
                pipeline_id: None,
            })
        })
        .collect()
}

/// The `fields` of a Contact's Opportunities (through its contact roles), `order` appended to
/// the query; a Lead has none.
async fn contact_opportunities(
    client: &SalesforceClient,
    s: &Session,
    person_id: PersonId,
    fields: &str,
    order: &str,
) -> Result<Vec<Record>, CrmError> {
    let (object, key) = resolve_person(client, s, person_id)?;
    if object == SObject::Lead {
        return Ok(Vec::new());
    }
    let roles = client
        .query_all_pages(
            s,
            &format!(
                "SELECT OpportunityId FROM OpportunityContactRole WHERE ContactId = {}",
                soql_string(&key)
            ),
        )
        .await?;
    let ids: Vec<String> = roles
        .iter()
        .filter_map(|r| r.text("OpportunityId"))
        .map(soql_string)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    client
        .query_all_pages(
            s,
            &format!(
                "SELECT {fields} FROM Opportunity WHERE Id IN ({}){order}",
                ids.join(", ")
            ),
        )
        .await
}

/// A Contact's Opportunities (through its contact roles); a Lead has none.
pub(crate) async fn person_deals(
    client: &SalesforceClient,
    s: &Session,
    person_id: PersonId,
) -> Result<Vec<CrmDeal>, CrmError> {
    let deals = contact_opportunities(
        client,
        s,
        person_id,
        "Id, Name",
        " ORDER BY CreatedDate, Id",
    )
    .await?;
    deals
        .iter()
        .filter_map(|d| Some((d.text("Id")?, d.text("Name"))))
        .map(|(id, name)| {
            Ok(CrmDeal {
                id: remember(client, s, id)?,
                title: name.map(str::to_owned),
            })
        })
        .collect()
}

/// The Tasks of a Lead or Contact (`WhoId`).
pub(crate) async fn person_activities(
    client: &SalesforceClient,
    s: &Session,
    person_id: PersonId,
) -> Result<Vec<CrmActivity>, CrmError> {
    let (_, key) = resolve_person(client, s, person_id)?;
    let tasks = client
        .query_all_pages(
            s,
            &format!(
                "SELECT Id, Subject, Description FROM Task WHERE WhoId = {} ORDER BY CreatedDate, Id",
                soql_string(&key)
            ),
        )
        .await?;
    tasks
        .iter()
        .filter_map(|t| Some((t.text("Id")?, t)))
        .map(|(id, t)| {
            Ok(CrmActivity {
                id: remember(client, s, id)?,
                subject: t.text("Subject").map(str::to_owned),
                note: t.text("Description").map(str::to_owned),
            })
        })
        .collect()
}

/// An Opportunity for a Contact, with the Contact as its primary contact role. A Lead cannot
/// have one: a clear, non-retryable error says it must be converted.
pub(crate) async fn create_deal(
    client: &SalesforceClient,
    s: &Session,
    deal: &NewDeal<'_>,
) -> Result<i64, CrmError> {
    let (object, contact) = resolve_person(client, s, deal.person_id)?;
    if object == SObject::Lead {
        return Err(SalesforceError::Unsupported {
            message: "a deal (Opportunity) cannot be added to a Salesforce Lead: the Lead must be converted to a Contact first".into(),
            hint: LEAD_DEAL_HINT,
        }
        .into());
    }
    let stage = match deal.stage_id {
        Some(stage) => resolve(client, s, stage)?,
        None => stages(client, s)
            .await?
            .first()
            .and_then(|st| client.keys().resolve(s.connection_id, st.id))
            .unwrap_or_else(|| "Prospecting".into()),
    };
    let record = client
        .get_record(s, "Contact", &contact, &["AccountId".to_owned()])
        .await?;
    let mut body = Map::new();
    body.insert("Name".into(), Value::from(deal.title));
    body.insert("StageName".into(), Value::from(stage));
    body.insert(
        "CloseDate".into(),
        Value::from(
            (client.now() + ChronoDuration::days(30))
                .format("%Y-%m-%d")
                .to_string(),
        ),
    );
    if let Some(amount) = deal.value {
        body.insert("Amount".into(), json!(amount));
    }
    if let Some(account) = record.text("AccountId") {
        body.insert("AccountId".into(), Value::from(account));
    }
    if let Some(owner) = deal.owner_id {
        body.insert("OwnerId".into(), Value::from(resolve(client, s, owner)?));
    }
    let saved = client.create_record(s, "Opportunity", &body).await?;
    save_outcome(&saved)?;
    let id = saved.id.ok_or_else(|| {
        CrmError::from(SalesforceError::Decode("a create answer without id".into()))
    })?;
    let role = json!({"OpportunityId": id, "ContactId": contact, "IsPrimary": true});
    save_outcome(
        &client
            .create_record(s, "OpportunityContactRole", &role)
            .await?,
    )?;
    remember(client, s, &id)
}

/// Moves an Opportunity to a stage (`StageName`).
pub(crate) async fn move_deal(
    client: &SalesforceClient,
    s: &Session,
    deal_id: i64,
    stage_id: i64,
) -> Result<(), CrmError> {
    let deal = resolve(client, s, deal_id)?;
    let stage = resolve(client, s, stage_id)?;
    client
        .update_record(s, "Opportunity", &deal, &json!({"StageName": stage}))
        .await
}

/// A Task on the Lead or Contact (`WhoId`).
pub(crate) async fn create_activity(
    client: &SalesforceClient,
    s: &Session,
    activity: &NewActivity<'_>,
) -> Result<i64, CrmError> {
    let (_, who) = resolve_person(client, s, activity.person_id)?;
    let mut body = Map::new();
    body.insert("Subject".into(), Value::from(activity.subject));
    body.insert("WhoId".into(), Value::from(who));
    body.insert("Status".into(), Value::from("Not Started"));
    if let Some(kind) = activity.kind {
        // `Type` is an optional picklist; an org without it, or whose field-level security
        // keeps the connecting user from writing it, gets the Task without a type. The
        // journey names types as Pipedrive does (`call`); the picklist's own spelling (`Call`)
        // is written when one matches, so Salesforce's users and reports see the usual value.
        let task = client.describe(s, "Task").await?;
        if let Some(field) = task
            .fields
            .iter()
            .find(|f| f.name == "Type" && f.createable)
        {
            let value = field
                .picklist_values
                .iter()
                .find(|v| v.value.eq_ignore_ascii_case(kind))
                .map_or(kind, |v| v.value.as_str());
            body.insert("Type".into(), Value::from(value));
        }
    }
    if let Some(due) = activity.due_date {
        body.insert("ActivityDate".into(), Value::from(due));
    }
    if let Some(owner) = activity.owner_id {
        body.insert("OwnerId".into(), Value::from(resolve(client, s, owner)?));
    }
    let saved = client.create_record(s, "Task", &body).await?;
    save_outcome(&saved)?;
    let id = saved.id.ok_or_else(|| {
        CrmError::from(SalesforceError::Decode("a create answer without id".into()))
    })?;
    remember(client, s, &id)
}

/// A Contact's Opportunities (through its contact roles) as the e-mail linking rules see
/// them: open or closed, and when they were created. A Lead has none.
pub(crate) async fn email_items(
    client: &SalesforceClient,
    s: &Session,
    person_id: PersonId,
) -> Result<Vec<tandem_core::email_links::KnownItem>, CrmError> {
    let opportunities =
        contact_opportunities(client, s, person_id, "Id, IsClosed, CreatedDate", "").await?;
    opportunities
        .iter()
        .filter_map(|o| Some((o.text("Id")?, o)))
        .map(|(id, o)| {
            Ok(tandem_core::email_links::KnownItem {
                item: tandem_core::email_links::Item::Deal(remember(client, s, id)?),
                created_at_ms: o
                    .text("CreatedDate")
                    .and_then(mapping::parse_time)
                    .map_or(i64::MAX, |t| t.0),
                open: !o.flag("IsClosed"),
            })
        })
        .collect()
}

/// Logs an e-mail as a completed Task (`TaskSubtype` Email): `WhoId` = the primary Lead or
/// Contact, `WhatId` = the Opportunity (never with a Lead: Salesforce allows no `WhatId`
/// then), the text in `Description`. Salesforce has no note alternative here: always a Task.
pub(crate) async fn log_email(
    client: &SalesforceClient,
    s: &Session,
    email: &LoggedEmail<'_>,
) -> Result<i64, CrmError> {
    let person = *email.persons.first().ok_or_else(|| {
        CrmError::from(SalesforceError::UnknownId(
            "an e-mail without a Lead or Contact".into(),
        ))
    })?;
    let (object, who) = resolve_person(client, s, person)?;
    let mut body = Map::new();
    body.insert("Subject".into(), Value::from(email.subject));
    body.insert("WhoId".into(), Value::from(who));
    body.insert("Status".into(), Value::from("Completed"));
    body.insert("TaskSubtype".into(), Value::from("Email"));
    body.insert("ActivityDate".into(), Value::from(email.date));
    body.insert("Description".into(), Value::from(email.note));
    if let (Some(deal), SObject::Contact) = (email.deal_id, object) {
        body.insert("WhatId".into(), Value::from(resolve(client, s, deal)?));
    }
    let saved = client.create_record(s, "Task", &body).await?;
    save_outcome(&saved)?;
    let id = saved.id.ok_or_else(|| {
        CrmError::from(SalesforceError::Decode("a create answer without id".into()))
    })?;
    remember(client, s, &id)
}

/// Updates a logged e-mail's Task: its text and, with `relink`, its Opportunity.
pub(crate) async fn update_logged_email(
    client: &SalesforceClient,
    s: &Session,
    record_id: i64,
    email: &LoggedEmail<'_>,
    relink: bool,
) -> Result<(), CrmError> {
    let task = resolve(client, s, record_id)?;
    let mut body = Map::new();
    body.insert("Description".into(), Value::from(email.note));
    if let (true, Some(deal)) = (relink, email.deal_id) {
        body.insert("WhatId".into(), Value::from(resolve(client, s, deal)?));
    }
    client.update_record(s, "Task", &task, &body).await
}

/// Whether the person can have deals: a Contact can (through an OpportunityContactRole), a
/// Lead cannot until it is converted.
pub(crate) fn person_takes_deals(
    client: &SalesforceClient,
    s: &Session,
    person_id: PersonId,
) -> Result<bool, CrmError> {
    Ok(resolve_person(client, s, person_id)?.0 == SObject::Contact)
}

/// A campaign's name, if the connecting user sees a Campaign with this id (`None`: no such
/// campaign, or sharing hides it).
pub(crate) async fn campaign_name(
    client: &SalesforceClient,
    s: &Session,
    campaign: &str,
) -> Result<Option<String>, CrmError> {
    if campaign.len() < 15
        || !campaign.starts_with("701")
        || !campaign.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return Ok(None);
    }
    let found = client
        .query(
            s,
            &format!(
                "SELECT Id, Name FROM Campaign WHERE Id = {}",
                soql_string(campaign)
            ),
        )
        .await?;
    Ok(found
        .records
        .first()
        .map(|r| r.text("Name").unwrap_or_default().to_owned()))
}

/// The CampaignMember of a Lead or Contact in a campaign, if there is one.
async fn campaign_member(
    client: &SalesforceClient,
    s: &Session,
    object: SObject,
    key: &str,
    campaign: &str,
) -> Result<Option<String>, CrmError> {
    let column = match object {
        SObject::Lead => "LeadId",
        SObject::Contact => "ContactId",
    };
    let found = client
        .query(
            s,
            &format!(
                "SELECT Id FROM CampaignMember WHERE CampaignId = {} AND {column} = {}",
                soql_string(campaign),
                soql_string(key)
            ),
        )
        .await?;
    Ok(found
        .records
        .first()
        .and_then(|r| r.text("Id"))
        .map(str::to_owned))
}

/// Adds a Lead or Contact to a campaign (a CampaignMember with `LeadId` or `ContactId`).
/// Already a member (Salesforce's `DUPLICATE_VALUE: Already a campaign member.`) is success:
/// the existing member is returned.
pub(crate) async fn add_to_campaign(
    client: &SalesforceClient,
    s: &Session,
    person_id: PersonId,
    campaign: &str,
    status: Option<&str>,
) -> Result<CampaignMembership, CrmError> {
    let (object, key) = resolve_person(client, s, person_id)?;
    let mut body = Map::new();
    body.insert("CampaignId".into(), Value::from(campaign));
    let column = match object {
        SObject::Lead => "LeadId",
        SObject::Contact => "ContactId",
    };
    body.insert(column.into(), Value::from(key.as_str()));
    if let Some(status) = status {
        body.insert("Status".into(), Value::from(status));
    }
    let created = match client.create_record(s, "CampaignMember", &body).await {
        Ok(saved) => saved,
        Err(error) if error.code.as_deref() == Some("DUPLICATE_VALUE") => {
            let existing = campaign_member(client, s, object, &key, campaign)
                .await?
                .ok_or(error)?;
            return Ok(CampaignMembership {
                member_id: existing,
                already_member: true,
            });
        }
        Err(error) => return Err(error),
    };
    save_outcome(&created)?;
    let id = created.id.ok_or_else(|| {
        CrmError::from(SalesforceError::Decode("a create answer without id".into()))
    })?;
    Ok(CampaignMembership {
        member_id: id,
        already_member: false,
    })
}

/// Gives a Lead or Contact to another user (`OwnerId`).
pub(crate) async fn set_person_owner(
    client: &SalesforceClient,
    s: &Session,
    person_id: PersonId,
    owner_id: i64,
) -> Result<(), CrmError> {
    let (object, key) = resolve_person(client, s, person_id)?;
    let owner = resolve(client, s, owner_id)?;
    client
        .update_record(s, object.name(), &key, &json!({"OwnerId": owner}))
        .await
}

// ---------------------------------------------------------------- OAuth

/// The connected app tandem is registered as, and the login host of one environment
/// (production or sandbox; a My Domain host works too).
#[derive(Debug, Clone)]
pub struct SfOAuthApp {
    login_url: String,
    client_id: String,
    client_secret: Redacted<String>,
}

impl SfOAuthApp {
    pub fn new(login_url: &str, client_id: &str, client_secret: Redacted<String>) -> Self {
        Self {
            login_url: login_url.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            client_secret,
        }
    }

    /// The app for production (`sandbox = false`) or the sandbox login host.
    pub fn from_settings(settings: &SalesforceSettings, sandbox: bool) -> Self {
        let host = if sandbox {
            &settings.sandbox_login_url
        } else {
            &settings.login_url
        };
        Self::new(host, &settings.client_id, settings.client_secret.clone())
    }

    pub fn login_url(&self) -> &str {
        &self.login_url
    }

    /// Whether the connected app's consumer key and secret are set.
    pub fn is_configured(&self) -> bool {
        !self.client_id.is_empty() && !self.client_secret.expose().is_empty()
    }

    /// Where to send the browser: the web-server flow with a PKCE S256 challenge.
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", state)
            .append_pair("scope", "api refresh_token")
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        format!("{}/services/oauth2/authorize?{query}", self.login_url)
    }
}

/// The S256 challenge of a PKCE code verifier: base64url(SHA-256(verifier)), unpadded.
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn grant(tokens: TokenResponse) -> TokenGrant {
    TokenGrant {
        access_token: Redacted::new(tokens.access_token),
        refresh_token: tokens.refresh_token.map(Redacted::new),
        // Salesforce sends no lifetime; sessions follow the org's timeout (refresh on 401).
        expires_in: tokens.expires_in,
        api_domain: tokens.instance_url.trim_end_matches('/').to_owned(),
    }
}

/// `authorization_code` grant, with the PKCE verifier when the authorize carried a challenge.
pub(crate) async fn exchange_code(
    client: &SalesforceClient,
    app: &SfOAuthApp,
    code: &str,
    redirect_uri: &str,
    code_verifier: Option<&str>,
) -> Result<TokenGrant, CrmError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose().as_str()),
    ];
    if let Some(verifier) = code_verifier {
        form.push(("code_verifier", verifier));
    }
    client.oauth_token(&app.login_url, &form).await.map(grant)
}

/// `refresh_token` grant. Salesforce answers without a new refresh token: keep the old one.
pub(crate) async fn refresh(
    client: &SalesforceClient,
    app: &SfOAuthApp,
    refresh_token: &str,
) -> Result<TokenGrant, CrmError> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose().as_str()),
    ];
    let mut granted = client.oauth_token(&app.login_url, &form).await.map(grant)?;
    if granted.refresh_token.is_none() {
        granted.refresh_token = Some(Redacted::new(refresh_token.to_owned()));
    }
    Ok(granted)
}

pub(crate) async fn revoke(
    client: &SalesforceClient,
    app: &SfOAuthApp,
    token: &str,
) -> Result<(), CrmError> {
    client.oauth_revoke(&app.login_url, token).await
}
