//! Which Salesforce fields the field mapping takes, and which local values each can hold.

use crate::crm::fields::RemoteFieldRef;

/// Salesforce's standard Lead and Contact fields tandem writes or reads itself (the name, the
/// e-mail, the phone, the owner, the conversion) or that Salesforce keeps (audit fields): any
/// other standard field of a type tandem converts maps like a custom one (`Title`,
/// `LeadSource`, a Lead's `Company`, `HasOptedOutOfEmail`, ...).
const MANAGED: [&str; 19] = [
    "Id",
    "Name",
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "OwnerId",
    "IsDeleted",
    "MasterRecordId",
    "IsConverted",
    "ConvertedDate",
    "ConvertedContactId",
    "ConvertedAccountId",
    "ConvertedOpportunityId",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
];
/// Salesforce's standard Account fields tandem keeps itself (the name: the company) or that
/// Salesforce keeps: any other standard field of a type tandem converts maps like a custom
/// one (`Industry`, `Website`, `BillingCity`, `NumberOfEmployees`, ...).
const ACCOUNT_MANAGED: [&str; 11] = [
    "Id",
    "Name",
    "OwnerId",
    "IsDeleted",
    "MasterRecordId",
    "ParentId",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
];

/// Whether a standard field of Lead and Contact (or of Account: `organization`) of type
/// `field_type` can be mapped: one of a type tandem converts that it does not keep itself.
pub fn builtin_mappable(organization: bool, key: &str, field_type: &str) -> bool {
    let managed: &[&str] = if organization {
        &ACCOUNT_MANAGED
    } else {
        &MANAGED
    };
    super::mapping::CUSTOM_FIELD_TYPES.contains(&field_type) && !managed.contains(&key)
}

/// The standard fields that map, in words (for a refusal).
pub fn mappable_builtins(organization: bool) -> &'static str {
    if organization {
        "the Account's standard fields of a type it converts but its name (the company), owner and audit fields"
    } else {
        "name, email, phone, owner_id, the other standard fields of a type it converts"
    }
}

/// Which Salesforce field types can hold a local kind. Text goes anywhere tandem converts (each
/// value that does not fit, a word for a checkbox, is refused for its own record when written).
pub fn compatible(local: &str, remote: &RemoteFieldRef<'_>) -> Result<(), String> {
    let ok: &[&str] = match local {
        "text" => &super::mapping::CUSTOM_FIELD_TYPES,
        "number" => &[
            "double", "int", "currency", "percent", "boolean", "string", "textarea",
        ],
        "date" => &["date", "string", "textarea"],
        "emails" => &["email", "string", "textarea"],
        "phones" => &["phone", "string", "textarea"],
        "option" => &["picklist"],
        "options" => &["multipicklist"],
        _ => &[],
    };
    if ok.contains(&remote.field_type) {
        return Ok(());
    }
    let what = format!(
        "the local field holds {local} values, but Salesforce field \"{}\" ({}) is of type `{}`",
        remote.name, remote.key, remote.field_type
    );
    Err(if ok.is_empty() {
        format!("{what}; tandem writes {local} values to no Salesforce field type: pick another local field")
    } else {
        format!(
            "{what}; map it to a Salesforce field of type {}, or pick another local field",
            ok.join(", ")
        )
    })
}
