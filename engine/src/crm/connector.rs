//! The one CRM boundary: what the use-cases may ask of "the CRM". Every method speaks
//! CRM-neutral values ([`CrmPerson`], core field values, ids) and returns a classified
//! [`CrmError`]; the connector behind it owns its wire types, mapping and transport.
//!
//! An enum of connectors rather than a trait object (ADR 0011): the set of CRMs is closed and
//! known at compile time, dispatch stays static (no boxed futures per call), and adding a
//! connector is a new variant whose every missing arm the compiler points out.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::{ConnectionId, PersonId};

use chrono::{DateTime, Utc};
use tandem_core::{ApId, CrmError, EmailAddress, FieldKey, FieldValue, Timestamp};

use super::fields::{FieldMap, RemoteField};
use super::limiter::{ConnectionBudget, Limiters};
use super::person::{CrmPerson, PersonPage};
use super::pipedrive::client::{PersonQuery, PipedriveClient};
use super::pipedrive::{mapping, ops, OAuthApp};
use super::records::{
    BatchSearch, CampaignMembership, CatalogField, CheckedRecord, CreatedPerson, CrmActivity,
    CrmDeal, CrmNote, CrmOrganization, CrmStage, CrmUser, LoggedEmail, NewActivity, NewDeal,
    NewPerson, Notification, NotificationHealth, NotificationTarget, RelatedKind, RelatedPage,
    TokenGrant, TokenKind,
};
use super::salesforce::{self, SalesforceClient, SfConfig, SfOAuthApp};
use super::session::Session;
use crate::config::Settings;

/// Persons per page when listing.
const PAGE_SIZE: u32 = 500;

/// The CRM, whichever connector serves it. Cheap to clone (connectors share their HTTP pool
/// and per-connection limiters).
#[derive(Clone)]
pub enum Crm {
    /// Pipedrive: its HTTP client, and the OAuth app tandem is registered as.
    Pipedrive(PipedriveClient, OAuthApp),
    /// Salesforce (ADR 0013): its HTTP client (with the connector's settings and the id
    /// surrogates), and the connected app at one login host (production or sandbox).
    Salesforce(SalesforceClient, SfOAuthApp),
}

impl std::fmt::Debug for Crm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.display_name())
    }
}

impl Crm {
    /// The CRM the settings configure. CRM hosts are checked by name
    /// (`crate::egress::check_crm_url`) and again after DNS resolution: a CRM's name never
    /// leads to an internal address.
    pub fn from_settings(settings: &Settings) -> Self {
        let client = PipedriveClient::with_http(
            super::http::client_with_resolver(
                Duration::from_secs(settings.pipedrive.request_timeout_secs),
                crate::egress::EgressPolicy::for_crm(settings).resolver(),
            ),
            Limiters::default(),
        );
        Self::Pipedrive(client, OAuthApp::from_settings(&settings.pipedrive))
    }

    /// The Salesforce connector for production (`sandbox = false`) or the sandbox login host.
    pub fn salesforce(settings: &Settings, sandbox: bool) -> Self {
        Self::salesforce_with(settings, sandbox, Limiters::default())
    }

    /// As [`Crm::salesforce`], sharing `limiters` with the engine's other connectors (budgets
    /// are per connection, so one registry serves every CRM).
    pub fn salesforce_with(settings: &Settings, sandbox: bool, limiters: Limiters) -> Self {
        let client = SalesforceClient::with_http(
            super::http::client_with_resolver(
                Duration::from_secs(settings.salesforce.request_timeout_secs),
                crate::egress::EgressPolicy::for_crm(settings).resolver(),
            ),
            limiters,
            SfConfig::from_settings(&settings.salesforce),
        );
        Self::Salesforce(
            client,
            SfOAuthApp::from_settings(&settings.salesforce, sandbox),
        )
    }

    /// The CRM's name as the sync log and the console write it.
    pub fn display_name(&self) -> &'static str {
        match self {
            Self::Pipedrive(..) => "Pipedrive",
            Self::Salesforce(..) => "Salesforce",
        }
    }

    /// How long an access token lives when the token answer does not say (Salesforce sends
    /// no `expires_in`; its sessions last about two hours), so it is refreshed before expiry.
    pub fn assumed_token_lifetime_secs(&self) -> Option<i64> {
        match self {
            Self::Pipedrive(..) => None,
            Self::Salesforce(..) => Some(7200),
        }
    }

    /// The custom field carrying the apId (the contact's id in the app) and its type, as
    /// [`Crm::create_field`] takes them: Pipedrive's `apId` text field, Salesforce's external-id
    /// field (`salesforce.external_id_field`, `tandem_id__c`).
    pub fn external_id_field(&self) -> (&str, &'static str) {
        match self {
            Self::Pipedrive(..) => ("apId", "varchar"),
            Self::Salesforce(client, _) => (client.config().external_id_field.as_str(), "string"),
        }
    }

    /// Whether the external-id field is listed in the field catalog under its own name
    /// (Salesforce's API name; Pipedrive's apId is a custom field keyed by a hash).
    pub fn external_id_in_catalog(&self) -> bool {
        matches!(self, Self::Salesforce(..))
    }

    /// Seconds between change-capture polls, and how far each poll reaches back before its
    /// cursor, from this CRM's settings.
    pub fn poll_interval_and_overlap(&self, settings: &Settings) -> (u64, u64) {
        match self {
            Self::Pipedrive(..) => (
                settings.workers.poll_interval_secs,
                settings.pipedrive.poll_overlap_secs,
            ),
            Self::Salesforce(..) => (
                settings.salesforce.poll_interval_secs,
                settings.salesforce.poll_overlap_secs,
            ),
        }
    }

    /// How far back the first initial sync of a new connection reads (records last modified
    /// before it are left to the change capture and to "Run initial sync"); `None`: every record.
    pub fn initial_sync_window(&self, settings: &Settings) -> Option<chrono::Duration> {
        match self {
            Self::Pipedrive(..) => None,
            Self::Salesforce(..) => match settings.salesforce.initial_sync_window_days {
                0 => None,
                days => Some(chrono::Duration::days(i64::from(days))),
            },
        }
    }

    /// Whether the CRM sends tandem change notifications (webhooks); without them, polling is
    /// the change capture.
    pub fn pushes_changes(&self) -> bool {
        matches!(self, Self::Pipedrive(..))
    }

    /// Whether this process still has to load the connection's stored record keys (the CRM's
    /// own ids behind the boundary's `i64`s; Salesforce only, ADR 0013).
    pub fn record_keys_unseeded(&self, connection: ConnectionId) -> bool {
        match self {
            Self::Pipedrive(..) => false,
            Self::Salesforce(client, _) => !client.keys().is_seeded(connection),
        }
    }

    /// Loads stored record keys (surrogate, the CRM's key) of a connection.
    pub fn seed_record_keys(&self, connection: ConnectionId, keys: Vec<(i64, String)>) {
        if let Self::Salesforce(client, _) = self {
            client.keys().seed(connection, keys);
        }
    }

    /// The record keys learned since the last call, to be stored.
    pub fn take_new_record_keys(&self, connection: ConnectionId) -> Vec<(i64, String)> {
        match self {
            Self::Pipedrive(..) => Vec::new(),
            Self::Salesforce(client, _) => client.keys().take_new(connection),
        }
    }

    /// The connector's rate limiters, per connection.
    pub fn limiters(&self) -> &Limiters {
        match self {
            Self::Pipedrive(client, _) => client.limiters(),
            Self::Salesforce(client, _) => client.limiters(),
        }
    }

    /// Why this CRM refused to create a custom field (on `object`, as its settings name it) for
    /// the connecting user, and what the admin can do.
    pub fn field_create_refusal(&self, object: &str) -> (&'static str, String) {
        match self {
            Self::Pipedrive(..) => (
                "the connecting user is not an admin (or the app lacks the admin / contact-fields:full scope)",
                format!("Reconnect with a Pipedrive admin user, or create the field in Pipedrive (Settings → Data fields → {object}) and map it."),
            ),
            Self::Salesforce(..) => (
                "the connecting user lacks Customize Application (or Modify All Data)",
                "Grant the connecting user Customize Application and Modify All Data (or reconnect with a System Administrator), or create the field in Salesforce (Setup -> Object Manager -> Lead and Contact -> Fields & Relationships -> New) and map it.".to_owned(),
            ),
        }
    }

    /// Whether this CRM has a mirror of every object (issue 20: Pipedrive's).
    pub fn has_mirror(&self) -> bool {
        matches!(self, Self::Pipedrive(..))
    }

    /// Whether the company is mapped to the person's organization itself (`org_id`: Pipedrive).
    /// Salesforce: the company is a Lead's `Company` text, and a Contact's Account
    /// ([`Crm::company_organization`]).
    pub fn has_organizations(&self) -> bool {
        matches!(self, Self::Pipedrive(..))
    }

    /// The local field that holds the contact's company as the person's organization, for a
    /// Lead (`lead`) or any other person: Pipedrive's field mapped to the organization;
    /// Salesforce's company field (`Company`) for a Contact, whose company is its Account (a
    /// Lead's company is its `Company` text: none).
    pub fn company_organization<'m>(
        &self,
        map: &'m FieldMap,
        lead: bool,
    ) -> Option<&'m super::fields::MappedField> {
        match self {
            Self::Pipedrive(..) => map.organization_field(),
            Self::Salesforce(..) if lead => None,
            Self::Salesforce(..) => map.fields.iter().find(|f| {
                matches!(&f.remote, super::fields::RemoteField::Custom { key, .. } if key == salesforce::mapping::COMPANY)
            }),
        }
    }

    /// Whether `name` is the placeholder tandem writes for a required company the app does not
    /// have (Salesforce's `salesforce.company_placeholder`): read back, it is no company.
    pub fn is_placeholder_company(&self, name: &str) -> bool {
        match self {
            Self::Pipedrive(..) => false,
            Self::Salesforce(client, _) => name == client.config().company_placeholder,
        }
    }

    /// Whether the person is a Lead (Salesforce; unknown ids read as Leads, whose company
    /// needs no organization). Pipedrive's persons are not.
    pub fn person_is_lead(&self, connection: ConnectionId, person: PersonId) -> bool {
        match self {
            Self::Pipedrive(..) => false,
            Self::Salesforce(client, _) => client
                .keys()
                .resolve(connection, person.get())
                .is_none_or(|key| {
                    salesforce::SObject::of_id(&key) == Some(salesforce::SObject::Lead)
                }),
        }
    }

    /// Whether new persons are created as Leads (Salesforce's `create_as`).
    pub fn creates_leads(&self) -> bool {
        match self {
            Self::Pipedrive(..) => false,
            Self::Salesforce(client, _) => client.config().create_as == salesforce::SObject::Lead,
        }
    }

    /// Where a CRM without organizations keeps the contact's company as text: a Salesforce
    /// Lead's `Company`.
    pub fn company_field(&self) -> Option<&'static str> {
        match self {
            Self::Pipedrive(..) => None,
            Self::Salesforce(..) => Some(salesforce::mapping::COMPANY),
        }
    }

    /// Organizations whose name is `name` (not case-sensitive, surrounding spaces ignored).
    pub async fn search_organizations(
        &self,
        session: &Session,
        name: &str,
    ) -> Result<Vec<CrmOrganization>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => Ok(client
                .search_organizations(session, name)
                .await?
                .into_iter()
                .map(|o| CrmOrganization {
                    id: o.id,
                    name: o.name,
                    fields: BTreeMap::new(),
                })
                .collect()),
            Self::Salesforce(client, _) => {
                salesforce::ops::search_accounts(client, session, &[name.to_owned()]).await
            }
        }
    }

    /// Organizations whose name is one of `names` (as [`Crm::search_organizations`]; Salesforce:
    /// one query per hundred names).
    pub async fn search_organizations_named(
        &self,
        session: &Session,
        names: &[String],
    ) -> Result<Vec<CrmOrganization>, CrmError> {
        match self {
            Self::Pipedrive(..) => {
                let mut out = Vec::new();
                for name in names {
                    out.extend(self.search_organizations(session, name).await?);
                }
                Ok(out)
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::search_accounts(client, session, names).await
            }
        }
    }

    /// Creates an organization for each of `names`: one result per name, in order
    /// (Salesforce: one sObject Collections call per 200).
    pub async fn create_organizations(
        &self,
        session: &Session,
        names: &[String],
    ) -> Result<Vec<Result<CrmOrganization, CrmError>>, CrmError> {
        match self {
            Self::Pipedrive(..) => {
                let mut out = Vec::with_capacity(names.len());
                for name in names {
                    out.push(self.create_organization(session, name).await);
                }
                Ok(out)
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::create_accounts(client, session, names).await
            }
        }
    }

    /// Creates an organization named `name`.
    pub async fn create_organization(
        &self,
        session: &Session,
        name: &str,
    ) -> Result<CrmOrganization, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let o = client.create_organization(session, name).await?;
                Ok(CrmOrganization {
                    id: o.id,
                    name: o.name,
                    fields: BTreeMap::new(),
                })
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::create_account(client, session, name).await
            }
        }
    }

    /// The organizations of these ids that exist (one call per hundred ids), with the map's
    /// organization fields.
    pub async fn organizations(
        &self,
        session: &Session,
        map: &FieldMap,
        ids: &[i64],
    ) -> Result<Vec<CrmOrganization>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => Ok(client
                .organizations_by_ids(session, ids)
                .await?
                .into_iter()
                .map(|o| CrmOrganization {
                    fields: mapping::organization_fields(&o, map),
                    id: o.id,
                    name: o.name,
                })
                .collect()),
            Self::Salesforce(client, _) => {
                salesforce::ops::accounts_by_ids(client, session, map, ids).await
            }
        }
    }

    /// Writes exactly `writes` (local fields mapped to organization fields) to organization
    /// `id`; returns the organization as the CRM holds it now.
    pub async fn update_organization(
        &self,
        session: &Session,
        map: &FieldMap,
        id: i64,
        writes: &BTreeMap<FieldKey, FieldValue>,
    ) -> Result<CrmOrganization, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let body = mapping::organization_write(writes, map);
                let o = client.patch_organization(session, id, &body).await?;
                Ok(CrmOrganization {
                    fields: mapping::organization_fields(&o, map),
                    id: o.id,
                    name: o.name,
                })
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::update_account(client, session, map, id, writes).await
            }
        }
    }

    /// Every field of the CRM's organization object (built-in and custom).
    pub async fn organization_field_catalog(
        &self,
        session: &Session,
    ) -> Result<Vec<CatalogField>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::organization_field_catalog(client, session).await,
            Self::Salesforce(client, _) => {
                salesforce::ops::account_field_catalog(client, session).await
            }
        }
    }

    /// Creates a custom field of the CRM's organization object.
    pub async fn create_organization_field(
        &self,
        session: &Session,
        name: &str,
        field_type: &str,
    ) -> Result<CatalogField, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                ops::create_organization_field(client, session, name, field_type).await
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::create_account_field(client, session, name, field_type).await
            }
        }
    }

    /// The persons of each of these organizations, by organization (Pipedrive: one listing
    /// each; Salesforce: the Contacts whose `AccountId` they are, one query per 200).
    pub async fn organization_members(
        &self,
        session: &Session,
        map: &FieldMap,
        ids: &[i64],
    ) -> Result<BTreeMap<i64, Vec<PersonId>>, CrmError> {
        match self {
            Self::Pipedrive(..) => {
                let mut out = BTreeMap::new();
                for id in ids {
                    let people = self.organization_people(session, map, *id).await?;
                    out.insert(*id, people.iter().map(|p| p.id).collect());
                }
                Ok(out)
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::account_members(client, session, ids).await
            }
        }
    }

    /// Every person of an organization.
    pub async fn organization_people(
        &self,
        session: &Session,
        map: &FieldMap,
        org_id: i64,
    ) -> Result<Vec<CrmPerson>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let mut people = Vec::new();
                let mut cursor = None;
                loop {
                    let query = PersonQuery {
                        cursor,
                        org_id: Some(org_id),
                        limit: PAGE_SIZE,
                        updated_since: None,
                        sort_by_update_time: false,
                    };
                    let page =
                        mapping::person_page(client.list_persons(session, &query).await?, map);
                    people.extend(page.items);
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => return Ok(people),
                    }
                }
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::account_people(client, session, map, org_id).await
            }
        }
    }

    /// The connection's budget (rate limit, daily tokens): the connector's limits.
    pub fn budget(&self, session: &Session) -> Arc<ConnectionBudget> {
        match self {
            Self::Pipedrive(client, _) => client.budget(session),
            Self::Salesforce(client, _) => client.budget(session),
        }
    }

    /// The instant of a time written by this CRM (a stored poll cursor), if it parses.
    pub fn parse_time(&self, text: &str) -> Option<Timestamp> {
        match self {
            Self::Pipedrive(..) => mapping::parse_time(text),
            Self::Salesforce(..) => salesforce::mapping::parse_time(text),
        }
    }

    /// One page of every person (or of those last modified at or after `modified_since`), in
    /// the CRM's order; `cursor` is the previous page's.
    pub async fn list_people(
        &self,
        session: &Session,
        map: &FieldMap,
        cursor: Option<String>,
        modified_since: Option<DateTime<Utc>>,
    ) -> Result<PersonPage, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let query = PersonQuery {
                    cursor,
                    org_id: None,
                    limit: PAGE_SIZE,
                    updated_since: modified_since
                        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    sort_by_update_time: modified_since.is_some(),
                };
                let page = client.list_persons(session, &query).await?;
                Ok(mapping::person_page(page, map))
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::list_people(client, session, map, cursor, modified_since).await
            }
        }
    }

    /// The person streams this CRM's change capture follows, each with a cursor of its own
    /// (Pipedrive: one; Salesforce: Lead and Contact).
    pub fn change_streams(&self) -> &'static [&'static str] {
        match self {
            Self::Pipedrive(..) => &["persons"],
            Self::Salesforce(..) => &["Lead", "Contact"],
        }
    }

    /// The streams of records the CRM relates to its people that tandem keeps for the journey
    /// conditions, triggers and actions, each with a cursor of its own (Salesforce: Accounts,
    /// Opportunities, their contact roles and Tasks; Pipedrive: none, its live mirror holds
    /// every object).
    pub fn related_streams(&self) -> &'static [&'static str] {
        match self {
            Self::Pipedrive(..) => &[],
            Self::Salesforce(..) => &salesforce::ops::RELATED_STREAMS,
        }
    }

    /// The kind of record related stream `stream` holds.
    pub fn related_kind(&self, stream: &str) -> Option<RelatedKind> {
        match self {
            Self::Pipedrive(..) => None,
            Self::Salesforce(..) => salesforce::ops::related_kind(stream).map(|(kind, _)| kind),
        }
    }

    /// How far back the CRM tells which records were deleted (Salesforce's `deleted` resource:
    /// 15 days); `None` when it tells every delete (Pipedrive: webhooks and its mirror's id
    /// pass). A related stream last read longer ago than this is listed in full again.
    pub fn deletes_reach(&self) -> Option<chrono::Duration> {
        match self {
            Self::Pipedrive(..) => None,
            Self::Salesforce(..) => Some(salesforce::ops::DELETED_WINDOW),
        }
    }

    /// One page of related stream `stream` (one of [`Self::related_streams`]): every record
    /// when `since` is none, else the changes at or after `since` and then the deletes.
    pub async fn related_page(
        &self,
        session: &Session,
        stream: &str,
        since: Option<DateTime<Utc>>,
        cursor: Option<String>,
    ) -> Result<RelatedPage, CrmError> {
        match self {
            Self::Pipedrive(..) => Ok(RelatedPage::default()),
            Self::Salesforce(client, _) => {
                salesforce::ops::related_page(client, session, stream, since, cursor).await
            }
        }
    }

    /// One page of the persons of `stream` (one of [`Self::change_streams`]) changed since
    /// `since`, oldest change first.
    pub async fn changes_since(
        &self,
        session: &Session,
        map: &FieldMap,
        stream: &str,
        since: DateTime<Utc>,
        cursor: Option<String>,
    ) -> Result<PersonPage, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let query = PersonQuery {
                    cursor,
                    org_id: None,
                    limit: PAGE_SIZE,
                    updated_since: Some(since.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    sort_by_update_time: true,
                };
                let page = client.list_persons(session, &query).await?;
                Ok(mapping::person_page(page, map))
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::changes_since(client, session, map, stream, since, cursor).await
            }
        }
    }

    /// Reads one person.
    pub async fn get_person(
        &self,
        session: &Session,
        map: &FieldMap,
        id: PersonId,
    ) -> Result<CrmPerson, CrmError> {
        match self {
            Self::Pipedrive(client, _) => Ok(mapping::crm_person(
                &client.get_person(session, id).await?,
                map,
            )),
            Self::Salesforce(client, _) => {
                salesforce::ops::get_person(client, session, map, id).await
            }
        }
    }

    /// Writes exactly `writes` to a person; returns the person as the CRM holds it now.
    pub async fn update_person(
        &self,
        session: &Session,
        map: &FieldMap,
        id: PersonId,
        writes: &BTreeMap<FieldKey, FieldValue>,
    ) -> Result<CrmPerson, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let body = mapping::person_write(writes, map);
                Ok(mapping::crm_person(
                    &client.patch_person(session, id, &body).await?,
                    map,
                ))
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::update_person(client, session, map, id, writes).await
            }
        }
    }

    /// Creates a person carrying `fields` and the external id `ap_id`. A CRM that requires a
    /// name gets the e-mail (else a placeholder); `default_owner` owns it unless a field says.
    pub async fn create_person(
        &self,
        session: &Session,
        map: &FieldMap,
        fields: &BTreeMap<FieldKey, FieldValue>,
        ap_id: &ApId,
        email: Option<&EmailAddress>,
        default_owner: Option<i64>,
    ) -> Result<CrmPerson, CrmError> {
        self.create_person_detailed(session, map, fields, ap_id, email, default_owner)
            .await
            .map(|created| created.person)
    }

    /// As [`Crm::create_person`], with the placeholders the connector filled in for fields the
    /// CRM requires (Salesforce: a Lead's `LastName` and `Company`), for the sync log.
    pub async fn create_person_detailed(
        &self,
        session: &Session,
        map: &FieldMap,
        fields: &BTreeMap<FieldKey, FieldValue>,
        ap_id: &ApId,
        email: Option<&EmailAddress>,
        default_owner: Option<i64>,
    ) -> Result<CreatedPerson, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let body = mapping::create_body(fields, map, ap_id, email, default_owner);
                Ok(CreatedPerson {
                    person: mapping::crm_person(&client.create_person(session, &body).await?, map),
                    placeholders: Vec::new(),
                })
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::create_person(client, session, map, fields, ap_id, default_owner)
                    .await
            }
        }
    }

    /// Writes to many persons; one result per input, in order (a record the CRM refused
    /// carries its own classified error). The outer error is a failure of the whole call
    /// (session, limits, transport). Salesforce batches with sObject Collections (200 per
    /// call, `allOrNone=false`); Pipedrive writes one by one.
    pub async fn update_people_batch(
        &self,
        session: &Session,
        map: &FieldMap,
        updates: &[(PersonId, BTreeMap<FieldKey, FieldValue>)],
    ) -> Result<Vec<Result<CrmPerson, CrmError>>, CrmError> {
        match self {
            Self::Pipedrive(..) => {
                let mut results = Vec::with_capacity(updates.len());
                for (id, writes) in updates {
                    results.push(self.update_person(session, map, *id, writes).await);
                }
                Ok(results)
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::update_people_batch(client, session, map, updates).await
            }
        }
    }

    /// How many person writes (updates, or creates) the connector sends in one call: 1 where
    /// each write is its own request (Pipedrive), Salesforce's sObject Collections maximum
    /// (200) there. The outbox gives a connector with more than 1 its pending pushes together.
    pub fn write_batch_limit(&self) -> usize {
        match self {
            Self::Pipedrive(..) => 1,
            Self::Salesforce(..) => salesforce::client::COLLECTION_MAX,
        }
    }

    /// How long pushes of a batching connector wait for company after a batch that was not
    /// full, so that a trickle of edits goes out as few calls (`salesforce.write_batch_window_ms`);
    /// zero for a connector that writes one by one.
    pub fn write_batch_window(&self) -> Duration {
        match self {
            Self::Pipedrive(..) => Duration::ZERO,
            Self::Salesforce(client, _) => client.config().write_batch_window,
        }
    }

    /// Creates many persons; one result per input, in order (a record the CRM refused carries
    /// its own classified error). The outer error is a failure of the whole call (session,
    /// limits, transport: the outcome of the records is then unknown). Salesforce creates
    /// with sObject Collections (200 per call, `allOrNone=false`), each record carrying its
    /// external id; Pipedrive creates one by one.
    pub async fn create_people_batch(
        &self,
        session: &Session,
        map: &FieldMap,
        people: &[NewPerson],
    ) -> Result<Vec<Result<CreatedPerson, CrmError>>, CrmError> {
        match self {
            Self::Pipedrive(..) => {
                let mut results = Vec::with_capacity(people.len());
                for p in people {
                    results.push(
                        self.create_person_detailed(
                            session,
                            map,
                            &p.fields,
                            &p.ap_id,
                            p.email.as_ref(),
                            p.default_owner,
                        )
                        .await,
                    );
                }
                Ok(results)
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::create_people_batch(client, session, map, people).await
            }
        }
    }

    /// The persons carrying each of `ap_ids` and those with each of `emails` (the CRM's own
    /// matching order: Salesforce, a Contact first, else unconverted Leads). Salesforce asks
    /// one SOQL `IN (…)` query per object and 200 keys; Pipedrive searches one by one.
    pub async fn search_people_batch(
        &self,
        session: &Session,
        ap_ids: &[ApId],
        emails: &[EmailAddress],
    ) -> Result<BatchSearch, CrmError> {
        match self {
            Self::Pipedrive(..) => {
                let mut found = BatchSearch::default();
                for ap_id in ap_ids {
                    let ids = self.search_by_external_id(session, ap_id).await?;
                    found.by_ap_id.insert(ap_id.as_str().to_owned(), ids);
                }
                for email in emails {
                    let ids = self.search_by_email(session, email).await?;
                    found.by_email.insert(email.as_str().to_owned(), ids);
                }
                Ok(found)
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::search_people_batch(client, session, ap_ids, emails).await
            }
        }
    }

    /// Ids of the persons whose e-mail is exactly `email`.
    pub async fn search_by_email(
        &self,
        session: &Session,
        email: &EmailAddress,
    ) -> Result<Vec<PersonId>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                client
                    .search_persons(session, email.as_str(), "email")
                    .await
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::search_by_email(client, session, email).await
            }
        }
    }

    /// Ids of the persons carrying the external id `ap_id`.
    pub async fn search_by_external_id(
        &self,
        session: &Session,
        ap_id: &ApId,
    ) -> Result<Vec<PersonId>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                client
                    .search_persons(session, ap_id.as_str(), "custom_fields")
                    .await
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::search_by_external_id(client, session, ap_id).await
            }
        }
    }

    /// `merged` disappears into `survivor`.
    pub async fn merge_people(
        &self,
        session: &Session,
        merged: PersonId,
        survivor: PersonId,
    ) -> Result<(), CrmError> {
        match self {
            Self::Pipedrive(client, _) => client.merge_persons(session, merged, survivor).await,
            Self::Salesforce(..) => salesforce::ops::merge_people(),
        }
    }

    /// The user the session signs in as.
    pub async fn whoami(&self, session: &Session) -> Result<CrmUser, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::whoami(client, session).await,
            Self::Salesforce(client, _) => salesforce::ops::whoami(client, session).await,
        }
    }

    /// Checks that the connecting user may read and write every person tandem syncs
    /// (Salesforce: Modify All Data); Pipedrive's rights are checked by its calls themselves.
    pub async fn check_write_access(&self, session: &Session) -> Result<(), CrmError> {
        match self {
            Self::Pipedrive(..) => Ok(()),
            Self::Salesforce(client, _) => {
                salesforce::ops::check_write_access(client, session).await
            }
        }
    }

    /// Every field of the CRM's person (built-in and custom).
    pub async fn field_catalog(&self, session: &Session) -> Result<Vec<CatalogField>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::field_catalog(client, session).await,
            Self::Salesforce(client, _) => salesforce::ops::field_catalog(client, session).await,
        }
    }

    /// Creates a custom field of the CRM's person.
    pub async fn create_field(
        &self,
        session: &Session,
        name: &str,
        field_type: &str,
    ) -> Result<CatalogField, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                ops::create_field(client, session, name, field_type).await
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::create_field(client, session, name, field_type).await
            }
        }
    }

    /// The field types a custom field can be created with here (the console's and the admin
    /// API's "create a field").
    pub fn creatable_field_types(&self) -> &'static [&'static str] {
        match self {
            Self::Pipedrive(..) => &mapping::CREATABLE_FIELD_TYPES,
            Self::Salesforce(..) => &salesforce::mapping::CREATABLE_FIELD_TYPES,
        }
    }

    /// The custom-field types this connector converts both ways.
    pub fn custom_field_types(&self) -> &'static [&'static str] {
        match self {
            Self::Pipedrive(..) => &mapping::CUSTOM_FIELD_TYPES,
            Self::Salesforce(..) => &salesforce::mapping::CUSTOM_FIELD_TYPES,
        }
    }

    /// Whether a built-in field of the person (or of its `organization`) of type `field_type`
    /// can be mapped (custom fields: [`Crm::custom_field_types`]).
    pub fn builtin_mappable(&self, organization: bool, key: &str, field_type: &str) -> bool {
        match self {
            Self::Pipedrive(..) => {
                super::pipedrive::field_rules::builtin_mappable(organization, key)
            }
            Self::Salesforce(..) => {
                salesforce::field_rules::builtin_mappable(organization, key, field_type)
            }
        }
    }

    /// The built-in fields of the person (or of its `organization`) that map, in words.
    pub fn mappable_builtins(&self, organization: bool) -> &'static str {
        match self {
            Self::Pipedrive(..) => super::pipedrive::field_rules::mappable_builtins(organization),
            Self::Salesforce(..) => salesforce::field_rules::mappable_builtins(organization),
        }
    }

    /// Whether a local field holding `kind` values (`text`, `number`, `date`, …) can be mapped
    /// to the CRM field `key` (named `name`, of type `field_type`), or why not in words.
    pub fn compatible(
        &self,
        kind: &str,
        key: &str,
        name: &str,
        field_type: &str,
    ) -> Result<(), String> {
        let remote = super::fields::RemoteFieldRef {
            key,
            name,
            field_type,
        };
        match self {
            Self::Pipedrive(..) => super::pipedrive::field_rules::compatible(kind, &remote),
            Self::Salesforce(..) => salesforce::field_rules::compatible(kind, &remote),
        }
    }

    /// A value for a mapped field, as an app's request writes it in JSON (a journey action's
    /// "update field"); `None` when it has the wrong type for the field.
    pub fn value_from_json(
        &self,
        remote: &RemoteField,
        value: &serde_json::Value,
    ) -> Option<FieldValue> {
        match self {
            Self::Pipedrive(..) => mapping::action_value(remote, value),
            Self::Salesforce(..) => salesforce::mapping::action_value(remote, value),
        }
    }

    /// Registers (or repairs) change notifications to `target`; returns how many were created.
    pub async fn register_notifications(
        &self,
        session: &Session,
        target: NotificationTarget<'_>,
    ) -> Result<usize, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::register_webhooks(client, session, target).await,
            // Salesforce has no outbound webhooks to tandem here: change capture is polling
            // (SOQL on SystemModstamp), so there is nothing to register (ADR 0013).
            Self::Salesforce(..) => Ok(0),
        }
    }

    /// Registers (or repairs) the extra change notifications the live mirror of every CRM
    /// object needs (Pipedrive: organization, product, lead and note webhooks); returns how
    /// many were created.
    pub async fn register_mirror_notifications(
        &self,
        session: &Session,
        target: NotificationTarget<'_>,
    ) -> Result<usize, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                ops::register_webhooks_for(client, session, target, &ops::MIRROR_WEBHOOK_OBJECTS)
                    .await
            }
            Self::Salesforce(..) => Ok(0),
        }
    }

    /// Which of tandem's change notifications to `url` the CRM has paused, and which are
    /// missing (the sync's, and the mirror's when `with_mirror`): one listing. Salesforce has
    /// none to check (change capture is polling).
    pub async fn notification_health(
        &self,
        session: &Session,
        url: &str,
        with_mirror: bool,
    ) -> Result<NotificationHealth, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                let mut objects = ops::WEBHOOK_OBJECTS.to_vec();
                if with_mirror {
                    objects.extend(ops::MIRROR_WEBHOOK_OBJECTS);
                }
                ops::webhook_health(client, session, url, &objects).await
            }
            Self::Salesforce(..) => Ok(NotificationHealth::default()),
        }
    }

    /// Removes the mirror's extra change notifications delivering to `url` (the sync's own
    /// stay); returns how many.
    pub async fn remove_mirror_notifications(
        &self,
        session: &Session,
        url: &str,
    ) -> Result<usize, CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                ops::remove_webhooks_for(client, session, url, Some(&ops::MIRROR_WEBHOOK_OBJECTS))
                    .await
            }
            Self::Salesforce(..) => Ok(0),
        }
    }

    /// Removes every change notification delivering to `url`; returns how many.
    pub async fn remove_notifications(
        &self,
        session: &Session,
        url: &str,
    ) -> Result<usize, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::remove_webhooks(client, session, url).await,
            Self::Salesforce(..) => Ok(0),
        }
    }

    /// Decodes one change notification the CRM delivered.
    pub fn parse_notification(
        &self,
        payload: &str,
        map: &FieldMap,
    ) -> Result<Notification, String> {
        match self {
            Self::Pipedrive(..) => ops::parse_notification(payload, map),
            Self::Salesforce(..) => {
                Err("Salesforce delivers no notifications to tandem; its changes are polled".into())
            }
        }
    }

    /// The pipelines' stages.
    pub async fn stages(&self, session: &Session) -> Result<Vec<CrmStage>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::stages(client, session).await,
            Self::Salesforce(client, _) => salesforce::ops::stages(client, session).await,
        }
    }

    /// The deals of a person, oldest first.
    pub async fn person_deals(
        &self,
        session: &Session,
        person_id: PersonId,
    ) -> Result<Vec<CrmDeal>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::person_deals(client, session, person_id).await,
            Self::Salesforce(client, _) => {
                salesforce::ops::person_deals(client, session, person_id).await
            }
        }
    }

    /// The activities of a person.
    pub async fn person_activities(
        &self,
        session: &Session,
        person_id: PersonId,
    ) -> Result<Vec<CrmActivity>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::person_activities(client, session, person_id).await,
            Self::Salesforce(client, _) => {
                salesforce::ops::person_activities(client, session, person_id).await
            }
        }
    }

    /// The notes on a person's timeline. Salesforce connections write no notes (an e-mail is
    /// always a Task there), so they have none to find.
    pub async fn person_notes(
        &self,
        session: &Session,
        person_id: PersonId,
    ) -> Result<Vec<CrmNote>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::person_notes(client, session, person_id).await,
            Self::Salesforce(..) => Ok(Vec::new()),
        }
    }

    /// Creates a deal; returns its id.
    pub async fn create_deal(
        &self,
        session: &Session,
        deal: &NewDeal<'_>,
    ) -> Result<i64, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::create_deal(client, session, deal).await,
            Self::Salesforce(client, _) => {
                salesforce::ops::create_deal(client, session, deal).await
            }
        }
    }

    /// Moves a deal to a stage.
    pub async fn move_deal(
        &self,
        session: &Session,
        deal_id: i64,
        stage_id: i64,
    ) -> Result<(), CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::move_deal(client, session, deal_id, stage_id).await,
            Self::Salesforce(client, _) => {
                salesforce::ops::move_deal(client, session, deal_id, stage_id).await
            }
        }
    }

    /// Schedules an activity; returns its id.
    pub async fn create_activity(
        &self,
        session: &Session,
        activity: &NewActivity<'_>,
    ) -> Result<i64, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::create_activity(client, session, activity).await,
            Self::Salesforce(client, _) => {
                salesforce::ops::create_activity(client, session, activity).await
            }
        }
    }

    /// Logs an e-mail on the timeline (Pipedrive: a done activity of type `email` with the
    /// persons as participants and the deal or lead); returns its id.
    pub async fn log_email(
        &self,
        session: &Session,
        email: &LoggedEmail<'_>,
    ) -> Result<i64, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::log_email(client, session, email).await,
            Self::Salesforce(client, _) => salesforce::ops::log_email(client, session, email).await,
        }
    }

    /// Updates a logged e-mail's record (`record_id`, as [`Self::log_email`] returned it): its
    /// text (opens, clicks, bounce, reply) and, with `relink`, its deal or lead.
    pub async fn update_logged_email(
        &self,
        session: &Session,
        record_id: i64,
        email: &LoggedEmail<'_>,
        relink: bool,
    ) -> Result<(), CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                ops::update_logged_email(client, session, record_id, email, relink).await
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::update_logged_email(client, session, record_id, email, relink)
                    .await
            }
        }
    }

    /// A person's deals or leads as the e-mail linking rules need them, read from the CRM:
    /// `None` where tandem reads them from the live mirror instead (Pipedrive).
    pub async fn email_items(
        &self,
        session: &Session,
        person_id: PersonId,
    ) -> Result<Option<Vec<tandem_core::email_links::KnownItem>>, CrmError> {
        match self {
            Self::Pipedrive(..) => Ok(None),
            Self::Salesforce(client, _) => salesforce::ops::email_items(client, session, person_id)
                .await
                .map(Some),
        }
    }

    /// Whether the person can have deals. Salesforce: a Contact can, a Lead cannot until it is
    /// converted (an Opportunity's contact role takes a Contact). Pipedrive: every person.
    pub fn person_takes_deals(
        &self,
        session: &Session,
        person_id: PersonId,
    ) -> Result<bool, CrmError> {
        match self {
            Self::Pipedrive(..) => Ok(true),
            Self::Salesforce(client, _) => {
                salesforce::ops::person_takes_deals(client, session, person_id)
            }
        }
    }

    /// The boundary's number for an id or key the app wrote as text: Salesforce's User ids
    /// (`005…`) and stage names (`Closed Won`) become the surrogates tandem speaks (and are
    /// remembered for the way back); Pipedrive's ids are numbers already.
    pub fn id_from_text(&self, session: &Session, text: &str) -> Option<i64> {
        match self {
            Self::Pipedrive(..) => text.trim().parse().ok().filter(|n: &i64| *n > 0),
            Self::Salesforce(client, _) => client
                .keys()
                .remember(session.connection_id, text.trim())
                .ok(),
        }
    }

    /// The CRM's own key of a person tandem knows by `id` (Pipedrive's id; Salesforce's
    /// 18-character Id), `None` when this replica never learned it.
    pub fn record_key(&self, session: &Session, id: PersonId) -> Option<String> {
        match self {
            Self::Pipedrive(..) => Some(id.get().to_string()),
            Self::Salesforce(client, _) => client.keys().resolve(session.connection_id, id.get()),
        }
    }

    /// The records the connecting user finds with this e-mail, as the "Why isn't this record
    /// syncing?" tool reads them (one lookup: Pipedrive's person search by e-mail, not exact
    /// so case and spaces do not hide a record; Salesforce's Contacts and unconverted Leads by
    /// `Email`, which Salesforce compares case-insensitively).
    pub async fn records_with_email(
        &self,
        session: &Session,
        email: &str,
    ) -> Result<Vec<CheckedRecord>, CrmError> {
        match self {
            Self::Pipedrive(client, _) => ops::records_with_email(client, session, email).await,
            Self::Salesforce(client, _) => {
                salesforce::ops::records_with_email(client, session, email).await
            }
        }
    }

    /// A linked record read by its id for the "Why isn't this record syncing?" tool: `None`
    /// when the connecting user may not read it (not found, or forbidden: Salesforce sharing,
    /// Pipedrive visibility groups).
    pub async fn check_record(
        &self,
        session: &Session,
        id: PersonId,
    ) -> Result<Option<CheckedRecord>, CrmError> {
        let read = match self {
            Self::Pipedrive(client, _) => ops::check_record(client, session, id).await,
            Self::Salesforce(client, _) => salesforce::ops::check_record(client, session, id).await,
        };
        match read {
            Ok(found) => Ok(Some(found)),
            Err(error) if matches!(error.status, Some(403 | 404 | 410)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Whether this CRM has marketing campaigns a journey can add a person to (Salesforce's
    /// Campaigns; Pipedrive has none in its API).
    pub fn has_campaigns(&self) -> bool {
        matches!(self, Self::Salesforce(..))
    }

    /// The name of the campaign `campaign` (the CRM's own id), if the connecting user sees it.
    pub async fn campaign_name(
        &self,
        session: &Session,
        campaign: &str,
    ) -> Result<Option<String>, CrmError> {
        match self {
            Self::Pipedrive(..) => Ok(None),
            Self::Salesforce(client, _) => {
                salesforce::ops::campaign_name(client, session, campaign).await
            }
        }
    }

    /// Adds a person to a campaign (Salesforce: a CampaignMember); a person already in it is
    /// not added twice.
    pub async fn add_to_campaign(
        &self,
        session: &Session,
        person_id: PersonId,
        campaign: &str,
        status: Option<&str>,
    ) -> Result<CampaignMembership, CrmError> {
        match self {
            Self::Pipedrive(..) => Err(CrmError::from_response(
                Some(422),
                None,
                "Pipedrive has no campaigns a person can be added to",
                None,
            )),
            Self::Salesforce(client, _) => {
                salesforce::ops::add_to_campaign(client, session, person_id, campaign, status).await
            }
        }
    }

    /// Gives a person to another owner.
    pub async fn set_person_owner(
        &self,
        session: &Session,
        person_id: PersonId,
        owner_id: i64,
    ) -> Result<(), CrmError> {
        match self {
            Self::Pipedrive(client, _) => {
                ops::set_person_owner(client, session, person_id, owner_id).await
            }
            Self::Salesforce(client, _) => {
                salesforce::ops::set_person_owner(client, session, person_id, owner_id).await
            }
        }
    }

    /// Where to send the admin's browser to authorise tandem, with a PKCE S256 challenge of
    /// `code_verifier`; `None` for a CRM whose flow is built elsewhere (Pipedrive's, in
    /// `http::connect`).
    pub fn authorize_url(
        &self,
        redirect_uri: &str,
        state: &str,
        code_verifier: &str,
    ) -> Option<String> {
        match self {
            Self::Pipedrive(..) => None,
            Self::Salesforce(_, app) => Some(app.authorize_url(
                redirect_uri,
                state,
                &salesforce::pkce_challenge(code_verifier),
            )),
        }
    }

    /// Whether the connector's OAuth app has its client credentials.
    pub fn oauth_configured(&self) -> bool {
        match self {
            Self::Pipedrive(_, app) => app.is_configured(),
            Self::Salesforce(_, app) => app.is_configured(),
        }
    }

    /// Exchanges an OAuth authorisation code for tokens.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
    ) -> Result<TokenGrant, CrmError> {
        self.exchange_code_with_verifier(code, redirect_uri, None)
            .await
    }

    /// Exchanges an OAuth authorisation code for tokens, with the PKCE code verifier when the
    /// authorize request carried a challenge (Salesforce's web-server flow). Pipedrive's flow
    /// has no PKCE: the verifier is ignored there.
    pub async fn exchange_code_with_verifier(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: Option<&str>,
    ) -> Result<TokenGrant, CrmError> {
        match self {
            Self::Pipedrive(client, app) => {
                let form = [
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                ];
                ops::oauth_grant(client, app, &form).await
            }
            Self::Salesforce(client, app) => {
                salesforce::ops::exchange_code(client, app, code, redirect_uri, code_verifier).await
            }
        }
    }

    /// Trades a refresh token for new tokens.
    pub async fn refresh_token(&self, refresh_token: &str) -> Result<TokenGrant, CrmError> {
        match self {
            Self::Pipedrive(client, app) => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ];
                ops::oauth_grant(client, app, &form).await
            }
            Self::Salesforce(client, app) => {
                salesforce::ops::refresh(client, app, refresh_token).await
            }
        }
    }

    /// Revokes a token at the CRM's OAuth server.
    pub async fn revoke_token(&self, token: &str, kind: TokenKind) -> Result<(), CrmError> {
        match self {
            Self::Pipedrive(client, app) => ops::revoke(client, app, token, kind).await,
            // Salesforce's revoke takes either token (a refresh token ends its sessions too).
            Self::Salesforce(client, app) => {
                let _ = kind;
                salesforce::ops::revoke(client, app, token).await
            }
        }
    }

    /// Pipedrive's raw client, for the integration tests and benchmarks that call Pipedrive
    /// directly. Use-cases never call it (`scripts/check-structure`).
    ///
    /// # Panics
    /// On a Salesforce connector: only Pipedrive's own tests and benchmarks call it.
    #[allow(clippy::panic)]
    pub fn pipedrive(&self) -> &PipedriveClient {
        match self {
            Self::Pipedrive(client, _) => client,
            Self::Salesforce(..) => panic!("Crm::pipedrive() called on a Salesforce connector"),
        }
    }

    /// Salesforce's raw client, if this is the Salesforce connector (tests, benchmarks).
    pub fn salesforce_client(&self) -> Option<&SalesforceClient> {
        match self {
            Self::Salesforce(client, _) => Some(client),
            Self::Pipedrive(..) => None,
        }
    }
}
