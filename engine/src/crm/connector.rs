//! The one CRM boundary: what the use-cases may ask of "the CRM". Every method speaks
//! CRM-neutral values ([`CrmPerson`], core field values, ids) and returns a classified
//! [`CrmError`]; the connector behind it owns its wire types, mapping and transport.
//!
//! An enum of connectors rather than a trait object (ADR 0011): the set of CRMs is closed and
//! known at compile time, dispatch stays static (no boxed futures per call), and adding a
//! connector is a new variant whose every missing arm the compiler points out.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tandem_core::{ApId, CrmError, EmailAddress, FieldKey, FieldValue, Timestamp};

use super::limiter::{ConnectionBudget, Limiters};
use super::person::{CrmPerson, PersonPage};
use super::pipedrive::client::{PersonQuery, PipedriveClient, Session};
use super::pipedrive::mapping::{self, FieldMap};

/// Persons per page when listing.
const PAGE_SIZE: u32 = 500;

/// The CRM, whichever connector serves it. Cheap to clone (connectors share their HTTP pool
/// and per-connection limiters).
#[derive(Clone)]
pub enum Crm {
    Pipedrive(PipedriveClient),
}

impl Crm {
    /// The connector's rate limiters, per connection.
    pub fn limiters(&self) -> &Limiters {
        match self {
            Self::Pipedrive(client) => client.limiters(),
        }
    }

    /// The connection's budget (rate limit, daily tokens): the connector's limits.
    pub fn budget(&self, session: &Session) -> Arc<ConnectionBudget> {
        match self {
            Self::Pipedrive(client) => client.budget(session),
        }
    }

    /// The instant of a time written by this CRM (a stored poll cursor), if it parses.
    pub fn parse_time(&self, text: &str) -> Option<Timestamp> {
        match self {
            Self::Pipedrive(_) => mapping::parse_time(text),
        }
    }

    /// One page of every person, in the CRM's order; `cursor` is the previous page's.
    pub async fn list_people(
        &self,
        session: &Session,
        map: &FieldMap,
        cursor: Option<String>,
    ) -> Result<PersonPage, CrmError> {
        match self {
            Self::Pipedrive(client) => {
                let query = PersonQuery {
                    cursor,
                    limit: PAGE_SIZE,
                    updated_since: None,
                    sort_by_update_time: false,
                };
                let page = client.list_persons(session, &query).await?;
                Ok(mapping::person_page(page, map))
            }
        }
    }

    /// One page of the persons changed since `since`, oldest change first.
    pub async fn changes_since(
        &self,
        session: &Session,
        map: &FieldMap,
        since: DateTime<Utc>,
        cursor: Option<String>,
    ) -> Result<PersonPage, CrmError> {
        match self {
            Self::Pipedrive(client) => {
                let query = PersonQuery {
                    cursor,
                    limit: PAGE_SIZE,
                    updated_since: Some(since.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    sort_by_update_time: true,
                };
                let page = client.list_persons(session, &query).await?;
                Ok(mapping::person_page(page, map))
            }
        }
    }

    /// Reads one person.
    pub async fn get_person(
        &self,
        session: &Session,
        map: &FieldMap,
        id: i64,
    ) -> Result<CrmPerson, CrmError> {
        match self {
            Self::Pipedrive(client) => Ok(mapping::crm_person(
                &client.get_person(session, id).await?,
                map,
            )),
        }
    }

    /// Writes exactly `writes` to a person; returns the person as the CRM holds it now.
    pub async fn update_person(
        &self,
        session: &Session,
        map: &FieldMap,
        id: i64,
        writes: &BTreeMap<FieldKey, FieldValue>,
    ) -> Result<CrmPerson, CrmError> {
        match self {
            Self::Pipedrive(client) => {
                let body = mapping::person_write(writes, map);
                Ok(mapping::crm_person(
                    &client.patch_person(session, id, &body).await?,
                    map,
                ))
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
        match self {
            Self::Pipedrive(client) => {
                let body = mapping::create_body(fields, map, ap_id, email, default_owner);
                Ok(mapping::crm_person(
                    &client.create_person(session, &body).await?,
                    map,
                ))
            }
        }
    }

    /// Ids of the persons whose e-mail is exactly `email`.
    pub async fn search_by_email(
        &self,
        session: &Session,
        email: &EmailAddress,
    ) -> Result<Vec<i64>, CrmError> {
        match self {
            Self::Pipedrive(client) => {
                client
                    .search_persons(session, email.as_str(), "email")
                    .await
            }
        }
    }

    /// Ids of the persons carrying the external id `ap_id`.
    pub async fn search_by_external_id(
        &self,
        session: &Session,
        ap_id: &ApId,
    ) -> Result<Vec<i64>, CrmError> {
        match self {
            Self::Pipedrive(client) => {
                client
                    .search_persons(session, ap_id.as_str(), "custom_fields")
                    .await
            }
        }
    }

    /// `merged` disappears into `survivor`.
    pub async fn merge_people(
        &self,
        session: &Session,
        merged: i64,
        survivor: i64,
    ) -> Result<(), CrmError> {
        match self {
            Self::Pipedrive(client) => client.merge_persons(session, merged, survivor).await,
        }
    }

    /// The connector's own client, for the connector-specific calls not yet behind the
    /// boundary (issue 18, item 1: field catalog, notifications, actions, OAuth).
    pub fn pipedrive(&self) -> &PipedriveClient {
        match self {
            Self::Pipedrive(client) => client,
        }
    }
}
