//! CRM-neutral records the use-cases exchange with [`super::Crm`] besides persons: the
//! connecting user, the field catalog, deals, activities, stages, OAuth grants and change
//! notifications. Each connector converts its wire types to and from these.

use tandem_core::PersonId;

use crate::config::Redacted;

/// The user a connection signs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmUser {
    pub id: i64,
    pub name: Option<String>,
    /// The company (Pipedrive) or org the user belongs to.
    pub company_id: Option<i64>,
}

/// One field of the CRM's person, as its catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogField {
    /// The CRM's key (Pipedrive's `field_code`, a 40-hex key for custom fields).
    pub key: String,
    pub name: String,
    /// The CRM's field type (`varchar`, `double`, `enum`, …).
    pub field_type: String,
    pub is_custom: bool,
    /// Option ids and labels of choice fields.
    pub options: Vec<(i64, String)>,
    /// Whether the connecting user may write it (Salesforce: `updateable` after field-level
    /// security). A mapping to a field that is not writable is refused (ADR 0013).
    pub writable: bool,
}

/// A pipeline stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmStage {
    pub id: i64,
    pub pipeline_id: Option<i64>,
}

/// A deal as the journey actions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmDeal {
    pub id: i64,
    pub title: Option<String>,
}

/// What a related record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelatedKind {
    /// A company (Salesforce: an Account).
    Company,
    /// A deal (Salesforce: an Opportunity).
    Deal,
    /// A person's part in a deal (Salesforce: an OpportunityContactRole).
    DealRole,
    /// An activity with a person (Salesforce: a Task on a Lead or Contact).
    Activity,
}

impl RelatedKind {
    /// The name stored with the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::Deal => "deal",
            Self::DealRole => "deal_role",
            Self::Activity => "activity",
        }
    }
}

/// A record the CRM relates to its people, kept by tandem for the journey actions: read by the
/// initial sync, kept current by each poll (ids are the boundary's surrogates).
#[derive(Debug, Clone, PartialEq)]
pub struct CrmRelated {
    pub kind: RelatedKind,
    pub id: i64,
    pub name: Option<String>,
    /// The company a deal belongs to.
    pub company_id: Option<i64>,
    /// The deal a role belongs to.
    pub deal_id: Option<i64>,
    /// The person a role or an activity names (a deal's: the person tandem created it for).
    pub person_id: Option<PersonId>,
    /// A deal's stage, as the CRM names it, and as the boundary's id (the journey actions'
    /// `stage_id`).
    pub stage: Option<String>,
    pub stage_id: Option<i64>,
    /// A deal's status (`open`, `won` or `lost`), an activity's (`open` or `done`).
    pub status: Option<String>,
    /// The user who owns it.
    pub owner_id: Option<i64>,
    /// The day an activity is due (`YYYY-MM-DD`; Salesforce: a Task's `ActivityDate`).
    pub due_on: Option<String>,
    /// An activity's type, lower case (`call`, `meeting`, …; Salesforce: a Task's `Type`,
    /// else its `TaskSubtype`), as the contacts-list filter `crm.activity.open_type` takes it.
    pub activity_type: Option<String>,
    /// When the CRM created and last changed it, as the CRM writes times.
    pub created: Option<String>,
    pub modified: Option<String>,
    /// Deleted in the CRM (a `deleted` resource's entry: no other field is known).
    pub deleted: bool,
    /// The record as the CRM answered it.
    pub raw: serde_json::Value,
}

impl CrmRelated {
    /// The record as the app sees it (journey conditions, trigger events): as the CRM answered
    /// it, plus tandem's `id` for it, its `status` and a deal's `stage_id`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut fields = match &self.raw {
            serde_json::Value::Object(fields) => fields.clone(),
            _ => serde_json::Map::new(),
        };
        fields.insert("id".into(), self.id.into());
        fields.insert("status".into(), serde_json::json!(self.status));
        if self.kind == RelatedKind::Deal {
            fields.insert("stage_id".into(), serde_json::json!(self.stage_id));
        }
        serde_json::Value::Object(fields)
    }

    /// A record known by its id alone.
    pub fn bare(kind: RelatedKind, id: i64) -> Self {
        Self {
            kind,
            id,
            name: None,
            company_id: None,
            deal_id: None,
            person_id: None,
            stage: None,
            stage_id: None,
            status: None,
            owner_id: None,
            due_on: None,
            activity_type: None,
            created: None,
            modified: None,
            deleted: false,
            raw: serde_json::Value::Null,
        }
    }

    /// A record tandem itself created (a journey action, a logged e-mail), as far as tandem
    /// knows it before a read fills it in.
    pub fn noted(kind: RelatedKind, id: i64, status: &str) -> Self {
        Self {
            status: Some(status.to_owned()),
            ..Self::bare(kind, id)
        }
    }
}

/// A page of related records, and where the next page starts.
#[derive(Debug, Clone, Default)]
pub struct RelatedPage {
    pub items: Vec<CrmRelated>,
    pub next_cursor: Option<String>,
}

/// A note on a person's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmNote {
    pub id: i64,
    /// Its text (Pipedrive's `content`).
    pub content: String,
}

/// An activity as the journey actions see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmActivity {
    pub id: i64,
    pub subject: Option<String>,
    /// Its text (Pipedrive's `note`, Salesforce's `Description`).
    pub note: Option<String>,
}

/// A deal to create for a person.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeal<'a> {
    pub person_id: PersonId,
    pub title: &'a str,
    pub value: Option<f64>,
    pub currency: Option<&'a str>,
    pub pipeline_id: Option<i64>,
    pub stage_id: Option<i64>,
    pub owner_id: Option<i64>,
}

/// A CRM record as the "Why isn't this record syncing?" lookup reads it: its e-mail exactly as
/// the CRM holds it, and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRecord {
    pub id: PersonId,
    /// The CRM's own id as text (Salesforce: the 18-character id).
    pub key: String,
    /// What the record is (`Lead`, `Contact`, `person`).
    pub object: &'static str,
    pub email: Option<String>,
    pub modified: Option<tandem_core::Timestamp>,
}

/// A person's membership of a marketing campaign (Salesforce: a CampaignMember).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignMembership {
    /// The CRM's id of the membership record (Salesforce: the CampaignMember's id).
    pub member_id: String,
    /// The person was a member already; nothing was created.
    pub already_member: bool,
}

/// An activity to schedule with a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewActivity<'a> {
    pub person_id: PersonId,
    pub subject: &'a str,
    pub kind: Option<&'a str>,
    pub due_date: Option<&'a str>,
    pub owner_id: Option<i64>,
}

/// An e-mail to log on the CRM's timeline (issue 23), done, with its links.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEmail<'a> {
    pub subject: &'a str,
    /// The text the timeline shows (snippet, participants, campaign).
    pub note: &'a str,
    /// When it was sent or received (`YYYY-MM-DD`, `HH:MM` UTC).
    pub date: &'a str,
    pub time: &'a str,
    /// The persons it is linked to; the first is the primary participant.
    pub persons: &'a [PersonId],
    pub deal_id: Option<i64>,
    pub lead_id: Option<&'a str>,
    /// The admin prefers a note (Pipedrive: on the primary person, the deal or lead) to an
    /// activity (ADR 16).
    pub as_note: bool,
}

/// Tokens the CRM's OAuth server granted.
#[derive(Debug, Clone)]
pub struct TokenGrant {
    pub access_token: Redacted<String>,
    pub refresh_token: Option<Redacted<String>>,
    /// Seconds the access token lives.
    pub expires_in: Option<i64>,
    /// Where this connection's API lives from now on (Pipedrive's `api_domain`).
    pub api_domain: String,
}

/// Which kind of token is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// Where the CRM delivers change notifications, and the Basic credentials it must send.
#[derive(Debug, Clone, Copy)]
pub struct NotificationTarget<'a> {
    pub url: &'a str,
    pub user: &'a str,
    pub password: &'a str,
}

/// One of tandem's change notifications the CRM has stopped delivering for a while (Pipedrive
/// bans a webhook for 30 minutes after 10 failed deliveries; events meanwhile are lost).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PausedNotification {
    /// The object it notifies of (`person`, `deal`, …).
    pub object: String,
    /// The HTTP status of its last delivery attempt, if any answered.
    pub last_status: Option<i64>,
    /// When it last tried to deliver, as the CRM says it.
    pub last_delivery_at: Option<String>,
}

/// What the CRM says of tandem's change notifications to one URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationHealth {
    /// Registered but not delivering.
    pub paused: Vec<PausedNotification>,
    /// Objects tandem subscribes to that have no notification any more (Pipedrive deletes a
    /// webhook after three days without a successful delivery).
    pub missing: Vec<String>,
}

/// A change notification (a webhook delivery), decoded.
#[derive(Debug, Clone)]
pub enum Notification {
    /// A person was created or changed; this is the person after the change.
    PersonChanged(Box<super::CrmPerson>),
    /// A person was deleted; `merged_into` when it disappeared into another by a merge.
    PersonDeleted {
        id: PersonId,
        merged_into: Option<PersonId>,
    },
    /// An organization was created or changed; its name after the change.
    OrganizationChanged { id: i64, name: String },
    /// A change of another object (a deal, an activity): nothing to merge.
    Other,
}

/// A value the connector wrote because the CRM requires the field and the app had none
/// (Salesforce: a Lead's `LastName` and `Company`); the use-case says so in the sync log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilledPlaceholder {
    /// The CRM's field (`Company`).
    pub field: String,
    /// The placeholder written.
    pub value: String,
}

/// A created person and the placeholders the connector filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedPerson {
    pub person: super::CrmPerson,
    pub placeholders: Vec<FilledPlaceholder>,
}

/// A CRM organization (the company persons belong to), as the use-cases see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmOrganization {
    pub id: i64,
    pub name: String,
    /// The organization's mapped fields (the field map's organization fields), by local
    /// key; empty when none are mapped or the answer does not carry them (a search).
    pub fields: std::collections::BTreeMap<tandem_core::FieldKey, tandem_core::FieldValue>,
}

/// One person to create in a batch ([`crate::crm::Crm::create_people_batch`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPerson {
    pub fields: std::collections::BTreeMap<tandem_core::FieldKey, tandem_core::FieldValue>,
    /// The external id set on the record (the contact's id in the app).
    pub ap_id: tandem_core::ApId,
    pub email: Option<tandem_core::EmailAddress>,
    pub default_owner: Option<i64>,
}

/// What one batched search found, by the key searched for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSearch {
    /// Persons carrying each external id (the apId's text).
    pub by_ap_id: std::collections::BTreeMap<String, Vec<tandem_core::PersonId>>,
    /// Persons with each e-mail (the address's normalised text); the CRM's own matching rule
    /// (Salesforce: Contacts first, else unconverted Leads).
    pub by_email: std::collections::BTreeMap<String, Vec<tandem_core::PersonId>>,
}
