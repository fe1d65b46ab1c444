//! Pure conversions between Pipedrive persons and the core's snapshots, through the
//! connection's field map. Tested against recorded JSON in `fixtures/`.

use std::collections::BTreeMap;

use serde_json::Value;
use tandem_core::{
    keys, ApId, EmailAddress, FieldKey, FieldRule, FieldValue, LabeledValue, MergePolicy, Snapshot,
    Timestamp,
};

use super::wire::{self, Person, PersonWrite};

/// Where a local field lives on a Pipedrive person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteField {
    Name,
    Emails,
    Phones,
    OwnerId,
    /// A custom field: its 40-hex key and Pipedrive field type (`varchar`, `double`, `enum`, …).
    Custom {
        key: String,
        field_type: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    pub local: FieldKey,
    pub remote: RemoteField,
    pub rule: FieldRule,
}

/// The fields a connection syncs, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    pub fields: Vec<MappedField>,
    /// The `apId` custom field's key, once created.
    pub apid_key: Option<String>,
}

fn builtin(local: &str, remote: RemoteField) -> MappedField {
    MappedField {
        local: FieldKey::new(local).unwrap_or_else(|_| unreachable_key()),
        remote,
        rule: FieldRule::default(),
    }
}

#[allow(clippy::panic)]
fn unreachable_key() -> FieldKey {
    panic!("built-in field names are valid keys")
}

impl FieldMap {
    /// Name, e-mails and phones both ways; the owner from Pipedrive only.
    pub fn defaults(apid_key: Option<String>) -> Self {
        let mut owner = builtin(keys::OWNER_ID, RemoteField::OwnerId);
        owner.rule.direction = tandem_core::Direction::Inbound;
        Self {
            fields: vec![
                builtin(keys::NAME, RemoteField::Name),
                builtin(keys::EMAIL, RemoteField::Emails),
                builtin(keys::PHONE, RemoteField::Phones),
                owner,
            ],
            apid_key,
        }
    }

    pub fn policy(&self) -> MergePolicy {
        MergePolicy {
            default: tandem_core::ConflictRule::LastWriterWins,
            fields: self
                .fields
                .iter()
                .map(|f| (f.local.clone(), f.rule))
                .collect(),
        }
    }

    pub fn get(&self, local: &FieldKey) -> Option<&MappedField> {
        self.fields.iter().find(|f| &f.local == local)
    }

    /// Keeps only the mapped fields of a local snapshot.
    pub fn restrict(
        &self,
        fields: &BTreeMap<FieldKey, FieldValue>,
    ) -> BTreeMap<FieldKey, FieldValue> {
        fields
            .iter()
            .filter(|(k, _)| self.get(k).is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Pipedrive's RFC 3339 time as milliseconds.
pub fn parse_time(text: &str) -> Option<Timestamp> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|n| n.and_utc().fixed_offset())
        })
        .map(|t| Timestamp(t.timestamp_millis()))
}

fn labeled(values: &[wire::LabeledValue]) -> Vec<LabeledValue> {
    values
        .iter()
        .filter(|v| !v.value.trim().is_empty())
        .map(|v| LabeledValue::new(v.value.trim(), v.label.as_deref(), v.primary))
        .collect()
}

fn list_value(values: Vec<LabeledValue>, emails: bool) -> FieldValue {
    if values.is_empty() {
        FieldValue::Cleared
    } else if emails {
        FieldValue::Emails(values)
    } else {
        FieldValue::Phones(values)
    }
}

/// A custom field's JSON value as a core value, by field type.
pub fn custom_value(value: &Value, field_type: &str) -> Option<FieldValue> {
    let value = match value {
        Value::Object(o) if o.contains_key("value") => o.get("value").unwrap_or(&Value::Null),
        other => other,
    };
    Some(match (field_type, value) {
        (_, Value::Null) => FieldValue::Cleared,
        ("double" | "monetary" | "user" | "org" | "people", Value::Number(n)) => {
            FieldValue::number(n.as_f64()?).ok()?
        }
        ("enum", Value::Number(n)) => FieldValue::Option(n.as_i64()?),
        ("set", Value::Array(ids)) => FieldValue::options(ids.iter().filter_map(Value::as_i64)),
        ("date", Value::String(s)) => FieldValue::date(s).ok()?,
        (_, Value::String(s)) if s.is_empty() => FieldValue::Cleared,
        (_, Value::String(s)) => FieldValue::text(s.clone()),
        (_, Value::Number(n)) => FieldValue::number(n.as_f64()?).ok()?,
        _ => return None,
    })
}

fn custom_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Cleared => Value::Null,
        FieldValue::Text(s) => Value::String(s.clone()),
        FieldValue::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
        FieldValue::Date(d) => Value::String(d.as_str().to_owned()),
        FieldValue::Option(id) => Value::from(*id),
        FieldValue::Options(ids) if ids.is_empty() => Value::Null,
        FieldValue::Options(ids) => Value::from(ids.as_slice().to_vec()),
        FieldValue::Emails(v) | FieldValue::Phones(v) => Value::String(
            v.iter()
                .map(|l| l.value.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
    }
}

/// The person's mapped fields as a remote snapshot at its `update_time`.
pub fn person_snapshot(person: &Person, map: &FieldMap) -> Snapshot {
    let version = person
        .update_time
        .as_deref()
        .and_then(parse_time)
        .unwrap_or_default();
    let mut snapshot = Snapshot::new(version);
    for field in &map.fields {
        let value = match &field.remote {
            RemoteField::Name => Some(match person.name.as_deref().map(str::trim) {
                Some(name) if !name.is_empty() => FieldValue::text(name),
                _ => FieldValue::Cleared,
            }),
            RemoteField::Emails => Some(list_value(labeled(&person.emails), true)),
            RemoteField::Phones => Some(list_value(labeled(&person.phones), false)),
            RemoteField::OwnerId => Some(match person.owner_id {
                Some(id) => FieldValue::number(id as f64).unwrap_or(FieldValue::Cleared),
                None => FieldValue::Cleared,
            }),
            RemoteField::Custom { key, field_type } => match person.custom_fields.get(key) {
                Some(value) => custom_value(value, field_type),
                // A key absent from the payload is unknown, not cleared.
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

/// The body of a PATCH/POST carrying exactly `writes`.
pub fn person_write(writes: &BTreeMap<FieldKey, FieldValue>, map: &FieldMap) -> PersonWrite {
    let mut body = PersonWrite::default();
    for (key, value) in writes {
        let Some(field) = map.get(key) else { continue };
        match &field.remote {
            RemoteField::Name => {
                body.name = Some(match value {
                    FieldValue::Text(s) => s.clone(),
                    _ => String::new(),
                });
            }
            RemoteField::Emails => body.emails = Some(wire_list(value)),
            RemoteField::Phones => body.phones = Some(wire_list(value)),
            RemoteField::OwnerId => {
                if let FieldValue::Number(n) = value {
                    body.owner_id = Some(n.get() as i64);
                }
            }
            RemoteField::Custom { key, .. } => {
                body.custom_fields.insert(key.clone(), custom_json(value));
            }
        }
    }
    body
}

fn wire_list(value: &FieldValue) -> Vec<wire::LabeledValue> {
    match value {
        FieldValue::Emails(v) | FieldValue::Phones(v) => {
            let has_primary = v.iter().any(|l| l.primary);
            v.iter()
                .enumerate()
                .map(|(i, l)| wire::LabeledValue {
                    value: l.value.clone(),
                    primary: l.primary || (!has_primary && i == 0),
                    label: Some(l.label.clone().unwrap_or_else(|| "work".into())),
                })
                .collect()
        }
        FieldValue::Text(s) if !s.is_empty() => {
            vec![wire::LabeledValue {
                value: s.clone(),
                primary: true,
                label: Some("work".into()),
            }]
        }
        _ => Vec::new(),
    }
}

/// The person's `apId` custom field, if set.
pub fn ap_id(person: &Person, map: &FieldMap) -> Option<ApId> {
    let key = map.apid_key.as_ref()?;
    ApId::parse(person.custom_fields.get(key)?.as_str()?).ok()
}

/// The person's primary (else first) e-mail address, if it parses.
pub fn primary_email(person: &Person) -> Option<EmailAddress> {
    let chosen = person
        .emails
        .iter()
        .find(|e| e.primary)
        .or_else(|| person.emails.first())?;
    EmailAddress::parse(&chosen.value).ok()
}

/// The primary e-mail of a local e-mail field value.
pub fn email_of(value: Option<&FieldValue>) -> Option<EmailAddress> {
    match value? {
        FieldValue::Emails(list) => {
            let chosen = list.iter().find(|e| e.primary).or_else(|| list.first())?;
            EmailAddress::parse(&chosen.value).ok()
        }
        FieldValue::Text(s) => EmailAddress::parse(s).ok(),
        _ => None,
    }
}

/// A custom-field map with the apId set, for creates.
pub fn with_ap_id(mut body: PersonWrite, map: &FieldMap, ap_id: &ApId) -> PersonWrite {
    if let Some(key) = &map.apid_key {
        body.custom_fields
            .insert(key.clone(), Value::String(ap_id.as_str().to_owned()));
    }
    body
}
