//! Pure conversions between Salesforce Lead/Contact records and the core's snapshots, through
//! the connection's field map. Tested against recorded JSON in `fixtures/`.
//!
//! - Name ↔ `FirstName` + `LastName` (the last word is the last name); `LastName` is required,
//!   so a missing one is written as the configured placeholder, which reads back as no name.
//! - E-mails ↔ `Email`, phones ↔ `Phone` (one value each: the primary).
//! - Owner ↔ `OwnerId`, as the id's surrogate ([`super::ids::surrogate`]).
//! - A custom mapping names the field's API name and its describe type.
//! - A converted Lead reads as deleted, merged into the Contact it became.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use tandem_core::{
    ApId, CrmError, EmailAddress, FieldKey, FieldValue, LabeledValue, Snapshot, Timestamp,
};

use super::errors::SalesforceError;
use super::ids::{person_surrogate, surrogate};
use super::wire::{Describe, Record};
use super::{SObject, SfConfig};
use crate::crm::fields::{FieldMap, RemoteField};
use crate::crm::person::{Conversion, CrmPerson, CrmTime};
use crate::crm::records::{CatalogField, FilledPlaceholder};
use crate::value_json::{number_json, structured_json};

/// The describe types tandem converts both ways.
pub const CUSTOM_FIELD_TYPES: [&str; 14] = [
    "string",
    "textarea",
    "email",
    "phone",
    "url",
    "picklist",
    "multipicklist",
    "double",
    "int",
    "currency",
    "percent",
    "date",
    "datetime",
    "boolean",
];

/// The describe types a custom field can be created with (Tooling `CustomField`).
pub const CREATABLE_FIELD_TYPES: [&str; 12] = [
    "string",
    "textarea",
    "longtextarea",
    "email",
    "phone",
    "url",
    "boolean",
    "double",
    "currency",
    "percent",
    "date",
    "datetime",
];

const NUMERIC: [&str; 5] = ["double", "int", "currency", "percent", "long"];

/// Salesforce's record time (`2024-05-01T10:00:00.000+0000`, also RFC 3339) as milliseconds.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .or_else(|| chrono::DateTime::parse_from_rfc3339(text).ok())
        .map(|t| Timestamp(t.timestamp_millis()))
}

/// A Lead's company field; a Contact's company is its Account.
pub const COMPANY: &str = "Company";

/// A SOQL date-time literal (unquoted, UTC).
pub fn soql_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A SOQL string literal, quoted and escaped.
pub fn soql_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The field carrying the apId: the field map's when it names a custom field, else the
/// configured one.
pub fn ext_field<'a>(map: &'a FieldMap, config: &'a SfConfig) -> &'a str {
    map.apid_key
        .as_deref()
        .filter(|k| k.ends_with("__c"))
        .unwrap_or(&config.external_id_field)
}

/// The fields to select for a person of `object`: the standard ones, the apId field and every
/// mapped custom field the object has (by its describe; all of them without one).
pub fn select_fields(
    object: SObject,
    map: &FieldMap,
    config: &SfConfig,
    describe: Option<&Describe>,
) -> Vec<String> {
    let mut fields: Vec<String> = [
        "Id",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "OwnerId",
        "CreatedDate",
        "SystemModstamp",
    ]
    .iter()
    .map(|f| (*f).to_owned())
    .collect();
    if object == SObject::Contact {
        fields.push("AccountId".into());
    }
    if object == SObject::Lead {
        fields.push("IsConverted".into());
        fields.push("ConvertedContactId".into());
        fields.push("ConvertedAccountId".into());
        fields.push("ConvertedOpportunityId".into());
    }
    let has = |name: &str| {
        describe.is_none_or(|d| d.fields.iter().any(|f| f.name.eq_ignore_ascii_case(name)))
    };
    let mut extra = vec![ext_field(map, config).to_owned()];
    extra.extend(map.fields.iter().filter_map(|f| match &f.remote {
        RemoteField::Custom { key, .. } => Some(key.clone()),
        _ => None,
    }));
    for name in extra {
        if has(&name) && !fields.iter().any(|f| f.eq_ignore_ascii_case(&name)) {
            fields.push(name);
        }
    }
    fields
}

/// A custom field's JSON value as a core value, by describe type. `None` when the value does
/// not have the type's shape.
pub fn custom_value(value: &Value, field_type: &str) -> Option<FieldValue> {
    Some(match value {
        Value::Null => FieldValue::Cleared,
        Value::Bool(b) => FieldValue::text(if *b { "true" } else { "false" }),
        Value::Number(n) => FieldValue::number(n.as_f64()?).ok()?,
        Value::String(s) if s.is_empty() => FieldValue::Cleared,
        Value::String(s) if field_type == "date" => FieldValue::date(s).ok()?,
        Value::String(s) if NUMERIC.contains(&field_type) => {
            FieldValue::number(s.trim().parse().ok()?).ok()?
        }
        Value::String(s) => FieldValue::text(s),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// A core value as the JSON of a field of `field_type`, or why that type cannot take it.
/// Salesforce parses a request's records before saving any, so one value of the wrong JSON
/// type (a text for a checkbox, a word for a number) fails the whole call with
/// `JSON_PARSER_ERROR`: such a value is refused here, for its own record, and never sent (nor
/// turned into a null that would clear the field).
pub fn custom_json(value: &FieldValue, field_type: &str) -> Result<Value, String> {
    let numeric = NUMERIC.contains(&field_type);
    Ok(match value {
        v if v.is_cleared() => Value::Null,
        FieldValue::Text(s) if field_type == "boolean" => {
            Value::Bool(checkbox(s).ok_or_else(|| {
                format!("{s:?} is not a checkbox value (true or false, yes or no, 1 or 0)")
            })?)
        }
        FieldValue::Number(n) if field_type == "boolean" => {
            let n = n.get();
            if n != 0.0 && n != 1.0 {
                return Err(format!("{n} is not a checkbox value (1 or 0)"));
            }
            Value::Bool(n == 1.0)
        }
        FieldValue::Text(s) if numeric => match s.trim().parse::<f64>().map(FieldValue::number) {
            Ok(Ok(FieldValue::Number(n))) => number_json(n),
            _ => return Err(format!("{s:?} is not a number")),
        },
        FieldValue::Text(s) if field_type == "date" => match FieldValue::date(s.trim()) {
            Ok(FieldValue::Date(d)) => Value::String(d.as_str().to_owned()),
            _ => return Err(format!("{s:?} is not a date (YYYY-MM-DD)")),
        },
        FieldValue::Text(s) if field_type == "datetime" && parse_time(s.trim()).is_none() => {
            return Err(format!("{s:?} is not a date and time (ISO 8601)"));
        }
        FieldValue::Text(s) => Value::String(s.clone()),
        FieldValue::Number(n) => number_json(*n),
        FieldValue::Date(d) => Value::String(d.as_str().to_owned()),
        FieldValue::Emails(v) | FieldValue::Phones(v) => {
            primary(v).map_or(Value::Null, Value::from)
        }
        FieldValue::Option(id) => Value::from(*id),
        other => structured_json(other),
    })
    .and_then(|json| {
        // Whatever the app's kind of value, the JSON must have the field's type.
        let fits = match field_type {
            "boolean" => json.is_boolean(),
            "date" | "datetime" => json.is_string(),
            _ if numeric => json.is_number(),
            _ => true,
        };
        if json.is_null() || fits {
            Ok(json)
        } else {
            Err(format!("{json} is not a {field_type} value"))
        }
    })
}

/// A checkbox's value as people write it in text.
fn checkbox(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// The error of a value its field's type cannot take (never sent; see [`custom_json`]).
fn not_of_type(field: &str, reason: &str) -> CrmError {
    super::errors::record_error(
        Some(VALUE_NOT_OF_FIELD_TYPE),
        &format!("{field}: {reason}; tandem did not send it"),
    )
}

/// tandem's code for a value its Salesforce field's type cannot take.
pub const VALUE_NOT_OF_FIELD_TYPE: &str = "VALUE_NOT_OF_FIELD_TYPE";

fn primary(values: &[LabeledValue]) -> Option<String> {
    values
        .iter()
        .find(|l| l.primary)
        .or_else(|| values.first())
        .map(|l| l.value.clone())
}

fn single(value: Option<&str>, emails: bool) -> FieldValue {
    match value.map(str::trim) {
        Some(v) if !v.is_empty() => {
            let entry = vec![LabeledValue::new(v, None, true)];
            if emails {
                FieldValue::Emails(entry)
            } else {
                FieldValue::Phones(entry)
            }
        }
        _ => FieldValue::Cleared,
    }
}

/// The name a record shows: `FirstName LastName`, without a placeholder last name.
pub fn full_name(record: &Record, config: &SfConfig) -> Option<String> {
    let last = record
        .text("LastName")
        .filter(|l| *l != config.last_name_placeholder);
    let parts: Vec<&str> = [record.text("FirstName"), last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// The record's mapped fields as a remote snapshot at its `SystemModstamp`.
pub fn person_snapshot(record: &Record, map: &FieldMap, config: &SfConfig) -> Snapshot {
    let version = record
        .text("SystemModstamp")
        .and_then(parse_time)
        .unwrap_or_default();
    let mut snapshot = Snapshot::new(version);
    for field in &map.fields {
        let value = match &field.remote {
            RemoteField::Name => {
                Some(full_name(record, config).map_or(FieldValue::Cleared, FieldValue::text))
            }
            RemoteField::Emails => Some(single(record.text("Email"), true)),
            RemoteField::Phones => Some(single(record.text("Phone"), false)),
            RemoteField::OwnerId => Some(
                record
                    .text("OwnerId")
                    .and_then(|o| FieldValue::number(surrogate(o) as f64).ok())
                    .unwrap_or(FieldValue::Cleared),
            ),
            // Organizations are not supported on Salesforce yet: the company is a plain field.
            RemoteField::Organization | RemoteField::OrganizationField { .. } => None,
            RemoteField::Custom {
                key, field_type, ..
            } => match record.fields.get(key) {
                // A placeholder company reads as none.
                Some(Value::String(s)) if key == COMPANY && *s == config.company_placeholder => {
                    Some(FieldValue::Cleared)
                }
                Some(value) => custom_value(value, field_type),
                // A field absent from the record (not on this object) is unknown, not cleared.
                None => None,
            },
        };
        if let Some(value) = value {
            snapshot
                .fields
                .insert(field.local.clone(), value.canonical());
        }
    }
    snapshot
}

/// The mapped Account fields (`RemoteField::OrganizationField`) of an Account record, by local
/// key: a field the record lacks is unknown (left out), an empty one cleared.
pub fn account_fields(record: &Record, map: &FieldMap) -> BTreeMap<FieldKey, FieldValue> {
    let mut out = BTreeMap::new();
    for field in map.organization_fields() {
        if let RemoteField::OrganizationField {
            key, field_type, ..
        } = &field.remote
        {
            if let Some(value) = record
                .fields
                .get(key)
                .and_then(|v| custom_value(v, field_type))
            {
                out.insert(field.local.clone(), value.canonical());
            }
        }
    }
    out
}

/// The body of an Account write carrying exactly `writes` (local fields mapped to Account
/// fields); a value its field's type cannot take is refused (`VALUE_NOT_OF_FIELD_TYPE`).
pub fn account_write(
    writes: &BTreeMap<FieldKey, FieldValue>,
    map: &FieldMap,
) -> Result<Map<String, Value>, CrmError> {
    let mut body = Map::new();
    for (local, value) in writes {
        if let Some(RemoteField::OrganizationField {
            key, field_type, ..
        }) = map.get(local).map(|f| &f.remote)
        {
            let json = custom_json(value, field_type).map_err(|e| not_of_type(key, &e))?;
            body.insert(key.clone(), json);
        }
    }
    Ok(body)
}

/// The key prefix of Lead ids (Contacts' is `003`).
const LEAD_PREFIX: &str = "00Q";

/// The CRM-neutral person of a Lead or Contact record. A converted Lead is deleted, merged
/// into its Contact, with the Account and Opportunity the conversion made (if any).
pub fn crm_person(record: &Record, map: &FieldMap, config: &SfConfig) -> CrmPerson {
    let id = record.text("Id").unwrap_or_default().to_owned();
    let time = |field: &str| {
        record
            .text(field)
            .map(|text| CrmTime::new(text.to_owned(), parse_time(text)))
    };
    let converted = record.flag("IsConverted");
    let lead = id.starts_with(LEAD_PREFIX);
    CrmPerson {
        id: person_surrogate(&id),
        key: id,
        snapshot: person_snapshot(record, map, config),
        ap_id: record
            .text(ext_field(map, config))
            .and_then(|a| ApId::parse(a).ok()),
        email: record
            .text("Email")
            .and_then(|e| EmailAddress::parse(e).ok()),
        added: time("CreatedDate"),
        updated: time("SystemModstamp"),
        deleted: converted || record.flag("IsDeleted"),
        merged_into: if converted {
            record.text("ConvertedContactId").map(person_surrogate)
        } else {
            record.text("MasterRecordId").map(person_surrogate)
        },
        // A Contact's Account (a Lead has none), and its name when the query named it.
        org_id: record.text("AccountId").map(surrogate),
        org_name: record
            .fields
            .get("Account")
            .and_then(|account| account.get("Name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        owner_id: record.text("OwnerId").map(surrogate),
        lead,
        conversion: converted.then(|| Conversion {
            organization_id: record.text("ConvertedAccountId").map(surrogate),
            deal_id: record.text("ConvertedOpportunityId").map(surrogate),
        }),
    }
}

/// The ids a record names (its own, its owner, what a conversion made of it): what the
/// connector remembers for the way back from surrogates.
pub fn named_ids(record: &Record) -> impl Iterator<Item = &str> {
    [
        "Id",
        "OwnerId",
        "AccountId",
        "ConvertedContactId",
        "ConvertedAccountId",
        "ConvertedOpportunityId",
        "MasterRecordId",
    ]
    .into_iter()
    .filter_map(|f| record.text(f))
}

/// A deleted record (from the `deleted` resource) as a deleted person; `master` is the record
/// it was merged into (its `MasterRecordId`), if it was.
pub fn deleted_person(id: &str, deleted_date: Option<&str>, master: Option<&str>) -> CrmPerson {
    let time = deleted_date.map(|d| CrmTime::new(d.to_owned(), parse_time(d)));
    CrmPerson {
        id: person_surrogate(id),
        key: id.to_owned(),
        snapshot: Snapshot::new(deleted_date.and_then(parse_time).unwrap_or_default()),
        ap_id: None,
        email: None,
        added: None,
        updated: time,
        deleted: true,
        merged_into: master.map(person_surrogate),
        org_id: None,
        org_name: None,
        owner_id: None,
        lead: id.starts_with(LEAD_PREFIX),
        conversion: None,
    }
}

/// `FirstName`/`LastName` of a name; an empty name leaves the last name to the placeholder.
fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.rsplit_once(char::is_whitespace) {
        Some((first, last)) => (Some(first.trim().to_owned()), Some(last.to_owned())),
        None if name.is_empty() => (None, None),
        None => (None, Some(name.to_owned())),
    }
}

/// Removes from a record body (and its placeholders) the mapped fields its object does not
/// have (a Lead's `Company` on a Contact): Salesforce would refuse the whole record with `INVALID_FIELD`. Reads skip
/// them the same way ([`select_fields`]), so such a field is neither written nor read there.
pub fn only_fields_of(
    body: &mut Map<String, Value>,
    filled: &mut Vec<FilledPlaceholder>,
    map: &FieldMap,
    describe: &Describe,
) {
    let has = |name: &str| {
        describe
            .fields
            .iter()
            .any(|f| f.name.eq_ignore_ascii_case(name))
    };
    for field in &map.fields {
        if let RemoteField::Custom { key, .. } = &field.remote {
            if !has(key) {
                body.remove(key);
            }
        }
    }
    filled.retain(|f| body.contains_key(&f.field));
}

/// A record body of `object` carrying exactly `writes`, plus the placeholders it had to fill.
/// `key_of` turns a surrogate (an owner, an Account) back into its id (`None`: unknown; an
/// owner is then not written). A value its field's type cannot take is the record's error
/// (`VALUE_NOT_OF_FIELD_TYPE`), sent for no field.
///
/// The company (the field mapped to `Company`) is a Lead's `Company` text; on a Contact it is
/// its Account: the use-cases resolve the name to an Account (`Crm::company_organization`)
/// and write its surrogate, sent as `AccountId` (cleared: no Account).
pub fn person_write(
    object: SObject,
    writes: &BTreeMap<FieldKey, FieldValue>,
    map: &FieldMap,
    config: &SfConfig,
    key_of: &dyn Fn(i64) -> Option<String>,
) -> Result<(Map<String, Value>, Vec<FilledPlaceholder>), CrmError> {
    let mut body = Map::new();
    let mut filled = Vec::new();
    for (key, value) in writes {
        let Some(field) = map.get(key) else { continue };
        match &field.remote {
            RemoteField::Name => {
                let (first, last) = match value {
                    FieldValue::Text(s) => split_name(s),
                    _ => (None, None),
                };
                body.insert("FirstName".into(), first.map_or(Value::Null, Value::from));
                let last = last.unwrap_or_else(|| {
                    filled.push(FilledPlaceholder {
                        field: "LastName".into(),
                        value: config.last_name_placeholder.clone(),
                    });
                    config.last_name_placeholder.clone()
                });
                body.insert("LastName".into(), Value::from(last));
            }
            RemoteField::Emails => {
                let json = custom_json(value, "email").map_err(|e| not_of_type("Email", &e))?;
                body.insert("Email".into(), json);
            }
            RemoteField::Phones => {
                let json = custom_json(value, "phone").map_err(|e| not_of_type("Phone", &e))?;
                body.insert("Phone".into(), json);
            }
            RemoteField::OwnerId => {
                if let Some(user) = match value {
                    FieldValue::Number(n) => key_of(n.get() as i64),
                    FieldValue::Text(s) if s.len() >= 15 => Some(s.clone()),
                    _ => None,
                } {
                    body.insert("OwnerId".into(), Value::from(user));
                }
            }
            // Not supported on Salesforce yet (the company is a plain field).
            RemoteField::Organization | RemoteField::OrganizationField { .. } => {}
            RemoteField::Custom { key, .. } if key == COMPANY && object == SObject::Contact => {
                let account = match value {
                    FieldValue::Number(n) => {
                        let account = key_of(n.get() as i64).ok_or_else(|| {
                            CrmError::from(SalesforceError::UnknownId(format!(
                                "the Account {} is not known to this process",
                                n.get()
                            )))
                        })?;
                        Value::from(account)
                    }
                    FieldValue::Cleared => Value::Null,
                    // A name not resolved to an Account: a Contact has no company text.
                    _ => continue,
                };
                body.insert("AccountId".into(), account);
            }
            RemoteField::Custom {
                key, field_type, ..
            } => {
                let mut json = custom_json(value, field_type).map_err(|e| not_of_type(key, &e))?;
                // A Lead requires its company: cleared in the app, it is the placeholder (which
                // reads back as none), as on a create.
                if json.is_null() && key == COMPANY {
                    json = Value::from(config.company_placeholder.clone());
                    filled.push(FilledPlaceholder {
                        field: key.clone(),
                        value: config.company_placeholder.clone(),
                    });
                }
                body.insert(key.clone(), json);
            }
        }
    }
    Ok((body, filled))
}

/// The body of a create: the fields, the apId, the required `LastName` (and a Lead's
/// `Company`) with placeholders where the app has none, and the default owner unless a field
/// sets one. Returns the placeholders filled.
pub fn create_body(
    object: SObject,
    fields: &BTreeMap<FieldKey, FieldValue>,
    map: &FieldMap,
    config: &SfConfig,
    ap_id: &ApId,
    default_owner: Option<String>,
    key_of: &dyn Fn(i64) -> Option<String>,
) -> Result<(Map<String, Value>, Vec<FilledPlaceholder>), CrmError> {
    let (mut body, mut filled) = person_write(object, fields, map, config, key_of)?;
    body.insert(
        ext_field(map, config).to_owned(),
        Value::from(ap_id.as_str()),
    );
    let mut require = |field: &str, placeholder: &str| {
        if body
            .get(field)
            .is_none_or(|v| v.as_str().is_none_or(|s| s.trim().is_empty()))
        {
            body.insert(field.to_owned(), Value::from(placeholder));
            if !filled.iter().any(|f| f.field == field) {
                filled.push(FilledPlaceholder {
                    field: field.to_owned(),
                    value: placeholder.to_owned(),
                });
            }
        }
    };
    require("LastName", &config.last_name_placeholder);
    if object == SObject::Lead {
        require(COMPANY, &config.company_placeholder);
    }
    if !body.contains_key("OwnerId") {
        if let Some(user) = default_owner {
            body.insert("OwnerId".into(), Value::from(user));
        }
    }
    Ok((body, filled))
}

/// A value for a mapped field as an app's request writes it in JSON (a journey action's
/// "update field"); `None` when it has the wrong type for the field.
pub fn action_value(remote: &RemoteField, value: &Value) -> Option<FieldValue> {
    match remote {
        RemoteField::Name => match value {
            Value::String(s) if !s.trim().is_empty() => Some(FieldValue::text(s.trim())),
            _ => None,
        },
        RemoteField::Emails | RemoteField::Phones => match value {
            Value::String(s) => Some(single(Some(s), matches!(remote, RemoteField::Emails))),
            Value::Null => Some(FieldValue::Cleared),
            _ => None,
        },
        RemoteField::OwnerId => match value {
            Value::Number(n) => n.as_i64().and_then(|n| FieldValue::number(n as f64).ok()),
            Value::String(s) => Some(FieldValue::number(surrogate(s) as f64).ok()?),
            _ => None,
        },
        RemoteField::Organization | RemoteField::OrganizationField { .. } => None,
        RemoteField::Custom { field_type, .. } => custom_value(value, field_type),
    }
}

/// The field catalog of Lead and Contact: every field once, by API name, with its describe
/// type; writable only when every object that has it lets the user update it.
pub fn catalog(describes: &[&Describe]) -> Vec<CatalogField> {
    let mut out: Vec<CatalogField> = Vec::new();
    for describe in describes {
        for f in &describe.fields {
            if let Some(known) = out.iter_mut().find(|c| c.key == f.name) {
                known.writable &= f.updateable;
                continue;
            }
            out.push(CatalogField {
                key: f.name.clone(),
                name: f.label.clone(),
                field_type: f.field_type.clone(),
                is_custom: f.custom,
                options: f
                    .picklist_values
                    .iter()
                    .filter(|p| p.active != Some(false))
                    .enumerate()
                    .map(|(i, p)| (i as i64, p.label.clone().unwrap_or_else(|| p.value.clone())))
                    .collect(),
                writable: f.updateable,
            });
        }
    }
    out
}
