//! What a use-case knows of a CRM person, whichever CRM holds it. Each connector builds it from
//! its own wire type (Pipedrive: `pipedrive::mapping::crm_person`); use-cases never see the wire.

use tandem_core::{ApId, EmailAddress, PersonId, Snapshot, Timestamp};

/// A time as the CRM wrote it. The text is kept exactly: it is stored as the poll cursor and
/// compared as written ("created by us, untouched" is `added == updated`); `at` is its instant,
/// when the text parses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmTime {
    text: String,
    at: Option<Timestamp>,
}

impl CrmTime {
    pub fn new(text: String, at: Option<Timestamp>) -> Self {
        Self { text, at }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn at(&self) -> Option<Timestamp> {
        self.at
    }
}

/// A CRM person, CRM-neutral: its id, the mapped fields as a remote snapshot (versioned at its
/// update time), the external id tandem wrote (apId), its primary e-mail, when it was added and
/// last updated, whether it is deleted and, when the CRM says so, the person it was merged into.
#[derive(Debug, Clone, PartialEq)]
pub struct CrmPerson {
    /// The id the boundary speaks: Pipedrive's own id; for Salesforce a stable surrogate of
    /// the 18-character id (ADR 0013).
    pub id: PersonId,
    /// The CRM's own id as text (Pipedrive: the decimal id; Salesforce: the 18-character
    /// id), for storage that keeps the CRM's key (ADR 0013).
    pub key: String,
    pub snapshot: Snapshot,
    pub ap_id: Option<ApId>,
    pub email: Option<EmailAddress>,
    pub added: Option<CrmTime>,
    pub updated: Option<CrmTime>,
    pub deleted: bool,
    pub merged_into: Option<PersonId>,
    /// The person's organization: Pipedrive's `org_id`, a Salesforce Contact's `AccountId`
    /// (its surrogate; a Lead has none); `None`: none. Only a CRM with organizations
    /// (`Crm::has_organizations`) syncs it to the contact's company.
    pub org_id: Option<i64>,
    /// The organization's name, when the read gave it with the person (a Salesforce Contact
    /// read by a query: `Account.Name`), so that tandem need not read the organization for it.
    pub org_name: Option<String>,
    /// The person's owner (a user id as the boundary speaks it), when the read says.
    pub owner_id: Option<i64>,
    /// Whether the person is a lead of a CRM whose leads are persons (Salesforce's Lead, as
    /// opposed to a Contact); Pipedrive's leads are deals-to-be, never persons.
    pub lead: bool,
    /// For a lead converted into a contact (`merged_into` is that contact): what else the
    /// conversion made.
    pub conversion: Option<Conversion>,
}

/// What converting a lead made besides the contact it became (Salesforce's
/// `ConvertedAccountId`, `ConvertedOpportunityId`), as the boundary's ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conversion {
    pub organization_id: Option<i64>,
    pub deal_id: Option<i64>,
}

/// One page of a cursor-paginated list of persons.
#[derive(Debug, Clone)]
pub struct PersonPage {
    pub items: Vec<CrmPerson>,
    pub next_cursor: Option<String>,
}
