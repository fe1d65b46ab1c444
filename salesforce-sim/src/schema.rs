//! The objects the simulator knows and their fields, as `describe` reports them: standard
//! fields of Lead, Contact, Account, Opportunity, OpportunityContactRole, Task, Campaign,
//! CampaignMember, User, and the setup objects (Profile, PermissionSet,
//! PermissionSetAssignment, FieldPermissions). Custom fields are added per org through the
//! Tooling API.

use std::collections::HashMap;

use crate::soql::Kind;

/// A field's data type, named as `describe` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    Id,
    String,
    Email,
    Phone,
    Url,
    TextArea,
    Picklist,
    Reference,
    Boolean,
    Double,
    Int,
    Currency,
    Percent,
    Date,
    DateTime,
}

impl FieldType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String => "string",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::TextArea => "textarea",
            FieldType::Picklist => "picklist",
            FieldType::Reference => "reference",
            FieldType::Boolean => "boolean",
            FieldType::Double => "double",
            FieldType::Int => "int",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
        }
    }

    pub(crate) fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Int => "xsd:int",
            FieldType::Date => "xsd:date",
            FieldType::DateTime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            FieldType::Boolean => Kind::Bool,
            FieldType::Double | FieldType::Int | FieldType::Currency | FieldType::Percent => {
                Kind::Number
            }
            FieldType::Date => Kind::Date,
            FieldType::DateTime => Kind::DateTime,
            _ => Kind::Text,
        }
    }

    /// The Tooling API `Metadata.type` of a custom field, mapped to a describe type.
    pub(crate) fn from_metadata(t: &str) -> Option<FieldType> {
        Some(match t {
            "Text" => FieldType::String,
            "TextArea" | "LongTextArea" => FieldType::TextArea,
            "Email" => FieldType::Email,
            "Phone" => FieldType::Phone,
            "Url" => FieldType::Url,
            "Checkbox" => FieldType::Boolean,
            "Number" => FieldType::Double,
            "Currency" => FieldType::Currency,
            "Percent" => FieldType::Percent,
            "Date" => FieldType::Date,
            "DateTime" => FieldType::DateTime,
            "Picklist" => FieldType::Picklist,
            _ => return None,
        })
    }
}

/// One field.
#[derive(Debug, Clone)]
pub(crate) struct FieldDef {
    pub(crate) name: String,
    pub(crate) label: String,
    pub(crate) ftype: FieldType,
    pub(crate) length: u32,
    pub(crate) createable: bool,
    pub(crate) updateable: bool,
    pub(crate) nillable: bool,
    /// Required on create (not nillable and no default).
    pub(crate) required: bool,
    pub(crate) external_id: bool,
    pub(crate) unique: bool,
    pub(crate) custom: bool,
    pub(crate) picklist: Vec<&'static str>,
    pub(crate) reference_to: Vec<&'static str>,
    /// The value a create sets when the body has none.
    pub(crate) default: Option<serde_json::Value>,
}

/// One object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectDef {
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    pub(crate) label_plural: &'static str,
    pub(crate) key_prefix: &'static str,
    /// Has `OwnerId`, so private sharing applies.
    pub(crate) owned: bool,
    /// Writable through the REST API.
    pub(crate) createable: bool,
    pub(crate) fields: Vec<FieldDef>,
    index: HashMap<String, usize>,
}

impl ObjectDef {
    /// A field by name, case-insensitively.
    pub(crate) fn field(&self, name: &str) -> Option<&FieldDef> {
        self.pos(name).map(|i| &self.fields[i])
    }

    /// A field's position (its slot in a record's values), case-insensitively.
    pub(crate) fn pos(&self, name: &str) -> Option<usize> {
        self.index.get(&name.to_ascii_lowercase()).copied()
    }

    pub(crate) fn add_field(&mut self, f: FieldDef) {
        self.index
            .insert(f.name.to_ascii_lowercase(), self.fields.len());
        self.fields.push(f);
    }
}

/// Every object the simulator serves, in describeGlobal order.
pub(crate) const OBJECTS: &[&str] = &[
    "Account",
    "Campaign",
    "CampaignMember",
    "Contact",
    "FieldPermissions",
    "Lead",
    "Opportunity",
    "OpportunityContactRole",
    "PermissionSet",
    "PermissionSetAssignment",
    "Profile",
    "Task",
    "User",
];

#[derive(Clone, Copy)]
enum Access {
    /// Createable and updateable.
    Rw,
    /// Set on create only.
    Create,
    /// Read-only (system or calculated).
    Ro,
}

struct F {
    name: &'static str,
    label: &'static str,
    t: FieldType,
    len: u32,
    access: Access,
    required: bool,
    picklist: &'static [&'static str],
    refs: &'static [&'static str],
    default: Option<serde_json::Value>,
}

fn f(name: &'static str, t: FieldType) -> F {
    let len = match t {
        FieldType::Id | FieldType::Reference => 18,
        FieldType::Email | FieldType::Url | FieldType::String | FieldType::Picklist => 255,
        FieldType::Phone => 40,
        FieldType::TextArea => 32_000,
        _ => 0,
    };
    F {
        name,
        label: "",
        t,
        len,
        access: Access::Rw,
        required: false,
        picklist: &[],
        refs: &[],
        default: None,
    }
}

impl F {
    fn len(mut self, n: u32) -> Self {
        self.len = n;
        self
    }
    fn ro(mut self) -> Self {
        self.access = Access::Ro;
        self
    }
    fn create_only(mut self) -> Self {
        self.access = Access::Create;
        self
    }
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn label(mut self, l: &'static str) -> Self {
        self.label = l;
        self
    }
    fn pick(mut self, values: &'static [&'static str]) -> Self {
        self.picklist = values;
        self
    }
    fn refs(mut self, to: &'static [&'static str]) -> Self {
        self.refs = to;
        self
    }
    fn default(mut self, v: serde_json::Value) -> Self {
        self.default = Some(v);
        self
    }
}

fn label_of(name: &str) -> String {
    // "LastName" -> "Last Name", "OwnerId" -> "Owner ID".
    let base = name.strip_suffix("Id").filter(|b| !b.is_empty());
    let src = base.unwrap_or(name);
    let mut out = String::new();
    for (i, c) in src.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(c);
    }
    if base.is_some() {
        out.push_str(" ID");
    }
    out
}

fn build(
    name: &'static str,
    label: &'static str,
    label_plural: &'static str,
    key_prefix: &'static str,
    owned: bool,
    createable: bool,
    specific: Vec<F>,
) -> ObjectDef {
    use FieldType as T;
    let mut all = vec![f("Id", T::Id).ro().label("Record ID")];
    if owned {
        all.push(f("OwnerId", T::Reference).refs(&["User"]).label("Owner ID"));
    }
    all.extend(specific);
    all.extend([
        f("IsDeleted", T::Boolean).ro().label("Deleted"),
        f("CreatedDate", T::DateTime).ro(),
        f("CreatedById", T::Reference).ro().refs(&["User"]),
        f("LastModifiedDate", T::DateTime).ro(),
        f("LastModifiedById", T::Reference).ro().refs(&["User"]),
        f("SystemModstamp", T::DateTime)
            .ro()
            .label("System Modstamp"),
    ]);
    let mut obj = ObjectDef {
        name,
        label,
        label_plural,
        key_prefix,
        owned,
        createable,
        fields: Vec::new(),
        index: HashMap::new(),
    };
    for x in all {
        let (createable, updateable) = match x.access {
            Access::Rw => (true, true),
            Access::Create => (true, false),
            Access::Ro => (false, false),
        };
        let nillable = !x.required && !matches!(x.t, FieldType::Boolean | FieldType::Id);
        obj.add_field(FieldDef {
            label: if x.label.is_empty() {
                label_of(x.name)
            } else {
                x.label.to_owned()
            },
            name: x.name.to_owned(),
            ftype: x.t,
            length: x.len,
            createable,
            updateable,
            nillable,
            required: x.required && x.default.is_none(),
            external_id: false,
            unique: false,
            custom: false,
            picklist: x.picklist.to_vec(),
            reference_to: x.refs.to_vec(),
            default: x.default,
        });
    }
    obj
}

const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];
const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Banking",
    "Education",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Technology",
    "Other",
];

/// The standard schema of every object.
pub(crate) fn standard_objects() -> HashMap<&'static str, ObjectDef> {
    use serde_json::json;
    use FieldType as T;
    let person = || {
        vec![
            f("Salutation", T::Picklist)
                .len(40)
                .pick(&["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]),
            f("FirstName", T::String).len(40),
            f("LastName", T::String).len(80).required(),
            f("Name", T::String).len(121).ro().label("Full Name"),
            f("Title", T::String).len(128),
            f("Email", T::Email).len(80),
            f("Phone", T::Phone),
            f("MobilePhone", T::Phone),
            f("LeadSource", T::Picklist).len(255).pick(LEAD_SOURCES),
            f("Description", T::TextArea),
            f("HasOptedOutOfEmail", T::Boolean)
                .label("Email Opt Out")
                .default(json!(false)),
            f("DoNotCall", T::Boolean).default(json!(false)),
            f("MasterRecordId", T::Reference).ro(),
        ]
    };
    let mut lead = person();
    lead.extend([
        f("Company", T::String).len(255).required(),
        f("Street", T::TextArea).len(255),
        f("City", T::String).len(40),
        f("State", T::String).len(80),
        f("PostalCode", T::String).len(20),
        f("Country", T::String).len(80),
        f("Website", T::Url),
        f("Industry", T::Picklist).pick(INDUSTRIES),
        f("Rating", T::Picklist).pick(&["Hot", "Warm", "Cold"]),
        f("NumberOfEmployees", T::Int).label("Employees"),
        f("Status", T::Picklist)
            .pick(&[
                "Open - Not Contacted",
                "Working - Contacted",
                "Closed - Converted",
                "Closed - Not Converted",
            ])
            .default(json!("Open - Not Contacted"))
            .required(),
        f("IsConverted", T::Boolean).ro().label("Converted"),
        f("ConvertedDate", T::Date).ro(),
        f("ConvertedAccountId", T::Reference)
            .ro()
            .refs(&["Account"]),
        f("ConvertedContactId", T::Reference)
            .ro()
            .refs(&["Contact"]),
        f("ConvertedOpportunityId", T::Reference)
            .ro()
            .refs(&["Opportunity"]),
    ]);
    let mut contact = person();
    contact.extend([
        f("AccountId", T::Reference).refs(&["Account"]),
        f("Department", T::String).len(80),
        f("Birthdate", T::Date),
        f("MailingStreet", T::TextArea).len(255),
        f("MailingCity", T::String).len(40),
        f("MailingState", T::String).len(80),
        f("MailingPostalCode", T::String).len(20),
        f("MailingCountry", T::String).len(80),
    ]);
    let account = vec![
        f("Name", T::String).required().label("Account Name"),
        f("Type", T::Picklist).pick(&["Prospect", "Customer - Direct", "Partner", "Other"]),
        f("Industry", T::Picklist).pick(INDUSTRIES),
        f("Website", T::Url),
        f("Phone", T::Phone),
        f("BillingStreet", T::TextArea).len(255),
        f("BillingCity", T::String).len(40),
        f("BillingState", T::String).len(80),
        f("BillingPostalCode", T::String).len(20),
        f("BillingCountry", T::String).len(80),
        f("NumberOfEmployees", T::Int).label("Employees"),
        f("AnnualRevenue", T::Currency),
        f("Description", T::TextArea),
        f("MasterRecordId", T::Reference).ro(),
    ];
    let opportunity = vec![
        f("Name", T::String).len(120).required(),
        f("AccountId", T::Reference).refs(&["Account"]),
        f("StageName", T::Picklist)
            .pick(&[
                "Prospecting",
                "Qualification",
                "Proposal/Price Quote",
                "Negotiation/Review",
                "Closed Won",
                "Closed Lost",
            ])
            .required()
            .label("Stage"),
        f("CloseDate", T::Date).required(),
        f("Amount", T::Currency),
        f("Probability", T::Percent),
        f("Type", T::Picklist).pick(&["New Business", "Existing Business"]),
        f("LeadSource", T::Picklist).pick(LEAD_SOURCES),
        f("Description", T::TextArea),
        f("IsClosed", T::Boolean).ro().label("Closed"),
        f("IsWon", T::Boolean).ro().label("Won"),
    ];
    let ocr = vec![
        f("OpportunityId", T::Reference)
            .refs(&["Opportunity"])
            .create_only()
            .required(),
        f("ContactId", T::Reference).refs(&["Contact"]).required(),
        f("Role", T::Picklist).pick(&["Decision Maker", "Economic Buyer", "Influencer", "Other"]),
        f("IsPrimary", T::Boolean)
            .label("Primary")
            .default(json!(false)),
    ];
    let task = vec![
        f("Subject", T::String).len(255),
        f("Status", T::Picklist)
            .pick(&[
                "Not Started",
                "In Progress",
                "Completed",
                "Waiting on someone else",
                "Deferred",
            ])
            .default(json!("Not Started"))
            .required(),
        f("Priority", T::Picklist)
            .pick(&["High", "Normal", "Low"])
            .default(json!("Normal"))
            .required(),
        f("ActivityDate", T::Date).label("Due Date Only"),
        f("WhoId", T::Reference)
            .refs(&["Contact", "Lead"])
            .label("Name ID"),
        f("WhatId", T::Reference)
            .refs(&["Account", "Opportunity", "Campaign"])
            .label("Related To ID"),
        f("Description", T::TextArea),
        // Optional and open to change, as in Salesforce: the kind of task a user picks.
        f("Type", T::Picklist)
            .len(40)
            .pick(&["Call", "Email", "Meeting", "Other"]),
        f("TaskSubtype", T::Picklist)
            .pick(&["Task", "Email", "Call"])
            .create_only(),
        f("IsClosed", T::Boolean).ro().label("Closed"),
    ];
    let campaign = vec![
        f("Name", T::String).len(80).required(),
        f("Type", T::Picklist).pick(&["Conference", "Webinar", "Email", "Advertisement", "Other"]),
        f("Status", T::Picklist).pick(&["Planned", "In Progress", "Completed", "Aborted"]),
        f("StartDate", T::Date),
        f("EndDate", T::Date),
        f("IsActive", T::Boolean)
            .label("Active")
            .default(json!(false)),
        f("Description", T::TextArea),
    ];
    let member = vec![
        f("CampaignId", T::Reference)
            .refs(&["Campaign"])
            .create_only()
            .required(),
        f("LeadId", T::Reference).refs(&["Lead"]).create_only(),
        f("ContactId", T::Reference)
            .refs(&["Contact"])
            .create_only(),
        f("Status", T::Picklist)
            .pick(&["Planned", "Sent", "Responded"])
            .default(json!("Sent")),
    ];
    let user = vec![
        f("Username", T::String).len(80).ro(),
        f("FirstName", T::String).len(40).ro(),
        f("LastName", T::String).len(80).ro(),
        f("Name", T::String).len(121).ro().label("Full Name"),
        f("Email", T::Email).len(128).ro(),
        f("Alias", T::String).len(8).ro(),
        f("IsActive", T::Boolean).ro().label("Active"),
        f("ProfileId", T::Reference).refs(&["Profile"]).ro(),
        f("TimeZoneSidKey", T::Picklist).ro().label("Time Zone"),
    ];
    let profile = vec![
        f("Name", T::String).ro(),
        f("UserType", T::Picklist).ro().pick(&["Standard"]),
    ];
    let perms = |owned_flags: bool| {
        let mut v = vec![
            f("Name", T::String).len(80).required(),
            f("Label", T::String).len(80).required(),
            f("IsOwnedByProfile", T::Boolean).ro(),
            f("ProfileId", T::Reference).refs(&["Profile"]).ro(),
        ];
        if owned_flags {
            v.extend([
                f("PermissionsApiEnabled", T::Boolean)
                    .label("API Enabled")
                    .default(json!(false)),
                f("PermissionsModifyAllData", T::Boolean)
                    .label("Modify All Data")
                    .default(json!(false)),
                f("PermissionsViewAllData", T::Boolean)
                    .label("View All Data")
                    .default(json!(false)),
                f("PermissionsCustomizeApplication", T::Boolean)
                    .label("Customize Application")
                    .default(json!(false)),
            ]);
        }
        v
    };
    let psa = vec![
        f("AssigneeId", T::Reference)
            .refs(&["User"])
            .create_only()
            .required(),
        f("PermissionSetId", T::Reference)
            .refs(&["PermissionSet"])
            .create_only()
            .required(),
    ];
    let fp = vec![
        f("ParentId", T::Reference)
            .refs(&["PermissionSet"])
            .create_only()
            .required(),
        f("SobjectType", T::Picklist)
            .create_only()
            .required()
            .label("sObject Type"),
        f("Field", T::Picklist)
            .create_only()
            .required()
            .label("Field Name"),
        f("PermissionsRead", T::Boolean)
            .label("Read Access")
            .default(json!(false)),
        f("PermissionsEdit", T::Boolean)
            .label("Edit Access")
            .default(json!(false)),
    ];
    let list = [
        build("Lead", "Lead", "Leads", "00Q", true, true, lead),
        build("Contact", "Contact", "Contacts", "003", true, true, contact),
        build("Account", "Account", "Accounts", "001", true, true, account),
        build(
            "Opportunity",
            "Opportunity",
            "Opportunities",
            "006",
            true,
            true,
            opportunity,
        ),
        build(
            "OpportunityContactRole",
            "Opportunity Contact Role",
            "Opportunity Contact Role",
            "00K",
            false,
            true,
            ocr,
        ),
        build("Task", "Task", "Tasks", "00T", true, true, task),
        build(
            "Campaign",
            "Campaign",
            "Campaigns",
            "701",
            true,
            true,
            campaign,
        ),
        build(
            "CampaignMember",
            "Campaign Member",
            "Campaign Members",
            "00v",
            false,
            true,
            member,
        ),
        build("User", "User", "Users", "005", false, false, user),
        build(
            "Profile", "Profile", "Profile", "00e", false, false, profile,
        ),
        build(
            "PermissionSet",
            "Permission Set",
            "Permission Sets",
            "0PS",
            false,
            true,
            perms(true),
        ),
        build(
            "PermissionSetAssignment",
            "Permission Set Assignment",
            "Permission Set Assignments",
            "0Pa",
            false,
            true,
            psa,
        ),
        build(
            "FieldPermissions",
            "Field Permissions",
            "Field Permissions",
            "01k",
            false,
            true,
            fp,
        ),
    ];
    list.into_iter().map(|o| (o.name, o)).collect()
}

/// The canonical name of an object (case-insensitive lookup).
pub(crate) fn canonical_object(name: &str) -> Option<&'static str> {
    OBJECTS
        .iter()
        .copied()
        .find(|o| o.eq_ignore_ascii_case(name))
}

/// Which object an id belongs to, by its key prefix.
pub(crate) fn object_of_id(
    objects: &HashMap<&'static str, ObjectDef>,
    id: &str,
) -> Option<&'static str> {
    let prefix = id.get(..3)?;
    objects
        .values()
        .find(|o| o.key_prefix == prefix)
        .map(|o| o.name)
}
