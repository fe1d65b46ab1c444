//! Pure conversions between Pipedrive persons and the core's snapshots, through the
//! connection's field map. Tested against recorded JSON in `fixtures/`.

use std::collections::BTreeMap;

use serde_json::Value;
use tandem_core::{
    Address, ApId, CalendarDate, CurrencyCode, DateRange, EmailAddress, FieldKey, FieldValue,
    LabeledValue, Money, NumberValue, Snapshot, TimeOfDay, TimeRange, TimeZone, Timestamp,
    ZonedTime, ADDRESS_PARTS,
};

use super::client::Page;
use super::wire::{self, Person, PersonWrite};
use crate::crm::fields::{FieldMap, RemoteField};
use crate::crm::person::{CrmPerson, CrmTime, PersonPage};
use crate::value_json::{number_json, structured_json};

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

/// Field types a custom field can be created with (the console's and the admin API's "create a
/// field").
pub const CREATABLE_FIELD_TYPES: [&str; 7] = [
    "varchar", "text", "double", "monetary", "date", "phone", "enum",
];

/// The Pipedrive custom-field types tandem converts, both ways (API v2 shapes, see
/// `fixtures/custom_fields_*.json`).
pub const CUSTOM_FIELD_TYPES: [&str; 16] = [
    "varchar",
    "varchar_auto",
    "text",
    "phone",
    "double",
    "monetary",
    "date",
    "daterange",
    "time",
    "timerange",
    "enum",
    "set",
    "address",
    "user",
    "org",
    "people",
];

fn zone_of(object: &serde_json::Map<String, Value>) -> TimeZone {
    TimeZone {
        id: object.get("timezone_id").and_then(Value::as_i64),
        name: object
            .get("timezone_name")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

fn option_id(value: &Value) -> Option<i64> {
    // `include_option_labels=true` renders options as `{id, label}`.
    value
        .as_i64()
        .or_else(|| value.get("id").and_then(Value::as_i64))
}

/// A custom field's JSON value (API v2) as a core value, by field type. `None` when the value
/// does not have the type's shape.
pub fn custom_value(value: &Value, field_type: &str) -> Option<FieldValue> {
    if value.is_null() {
        return Some(FieldValue::Cleared);
    }
    let object = value.as_object();
    let inner = match object {
        Some(o) if o.contains_key("value") => o.get("value").unwrap_or(&Value::Null),
        _ => value,
    };
    if inner.is_null() {
        return Some(FieldValue::Cleared);
    }
    let text = |s: &str| {
        if s.is_empty() {
            FieldValue::Cleared
        } else {
            FieldValue::text(s)
        }
    };
    Some(match (field_type, inner) {
        ("monetary", Value::Number(n)) => {
            let amount = NumberValue::new(n.as_f64()?).ok()?;
            match object
                .and_then(|o| o.get("currency"))
                .and_then(Value::as_str)
            {
                Some(code) => FieldValue::Money(Money {
                    amount,
                    currency: CurrencyCode::parse(code).ok()?,
                }),
                None => FieldValue::Number(amount),
            }
        }
        ("double" | "user" | "org" | "people", Value::Number(n)) => {
            FieldValue::number(n.as_f64()?).ok()?
        }
        ("enum", v) => FieldValue::Option(option_id(v)?),
        ("set", Value::Array(ids)) => {
            let ids: Option<Vec<i64>> = ids.iter().map(option_id).collect();
            FieldValue::options(ids?)
        }
        ("date", Value::String(s)) => FieldValue::date(s).ok()?,
        ("daterange", Value::String(start)) => {
            let until = object?.get("until")?.as_str()?;
            FieldValue::DateRange(
                DateRange::new(
                    CalendarDate::parse(start).ok()?,
                    CalendarDate::parse(until).ok()?,
                )
                .ok()?,
            )
        }
        ("time", Value::String(s)) => FieldValue::Time(ZonedTime {
            time: TimeOfDay::parse(s).ok()?,
            zone: object.map(zone_of).unwrap_or_default(),
        }),
        ("timerange", Value::String(start)) => {
            let o = object?;
            FieldValue::TimeRange(TimeRange {
                start: TimeOfDay::parse(start).ok()?,
                until: TimeOfDay::parse(o.get("until")?.as_str()?).ok()?,
                zone: zone_of(o),
            })
        }
        ("address", Value::String(s)) => {
            let parts = object
                .map(|o| {
                    ADDRESS_PARTS
                        .iter()
                        .filter_map(|k| {
                            let part = o.get(*k)?.as_str()?.trim();
                            (!part.is_empty()).then(|| ((*k).to_owned(), part.to_owned()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            FieldValue::Address(Address {
                value: s.clone(),
                parts,
            })
            .canonical()
        }
        ("varchar" | "varchar_auto" | "text" | "phone", Value::String(s)) => text(s),
        // Types tandem does not model: kept as text or a number when they look like one.
        (other, Value::String(s)) if !CUSTOM_FIELD_TYPES.contains(&other) => text(s),
        (other, Value::Number(n)) if !CUSTOM_FIELD_TYPES.contains(&other) => {
            FieldValue::number(n.as_f64()?).ok()?
        }
        _ => return None,
    })
}

/// A core value as the API v2 JSON of a custom field of `field_type`. `currency` is the
/// mapping's (a local number written to a `monetary` field).
pub fn custom_json(value: &FieldValue, field_type: &str, currency: Option<&CurrencyCode>) -> Value {
    use serde_json::json;
    match (field_type, value) {
        (_, v) if v.is_cleared() => Value::Null,
        ("monetary", FieldValue::Number(n)) => match currency {
            Some(code) => json!({ "value": number_json(*n), "currency": code.as_str() }),
            None => json!({ "value": number_json(*n) }),
        },
        ("address", FieldValue::Text(s)) => json!({ "value": s }),
        (_, FieldValue::Text(s)) => Value::String(s.clone()),
        (_, FieldValue::Number(n)) => number_json(*n),
        (_, FieldValue::Date(d)) => Value::String(d.as_str().to_owned()),
        (_, FieldValue::Option(id)) => Value::from(*id),
        (_, FieldValue::Options(ids)) => Value::from(ids.as_slice().to_vec()),
        (_, FieldValue::Emails(v) | FieldValue::Phones(v)) => Value::String(
            v.iter()
                .map(|l| l.value.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            _,
            FieldValue::Money(_)
            | FieldValue::Address(_)
            | FieldValue::DateRange(_)
            | FieldValue::Time(_)
            | FieldValue::TimeRange(_)
            | FieldValue::Cleared,
        ) => structured_json(value),
    }
}

/// A custom field's value as the local field holds it: with a mapping currency the local
/// field holds bare amounts.
fn local_custom_value(
    value: &Value,
    field_type: &str,
    currency: Option<&CurrencyCode>,
) -> Option<FieldValue> {
    let value = custom_value(value, field_type)?;
    Some(match (value, currency) {
        (FieldValue::Money(m), Some(_)) => FieldValue::Number(m.amount),
        (other, _) => other,
    })
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
            // The organization's name is not in a v2 person: the use-case fills it in from
            // the person's `org_id` (`CrmPerson::org_id`).
            RemoteField::Organization => None,
            // Of the person's organization: the use-case fills them in.
            RemoteField::OrganizationField { .. } => None,
            RemoteField::Custom {
                key,
                field_type,
                currency,
            } => match person.custom_fields.get(key) {
                Some(value) => local_custom_value(value, field_type, currency.as_ref()),
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
            // The use-case resolved the name to the organization's id (find or create) and
            // hands the id over as a number; cleared unlinks the person. A name that was not
            // resolved is not written.
            RemoteField::Organization => match value {
                FieldValue::Number(n) => body.org_id = Some(Value::from(n.get() as i64)),
                v if v.is_cleared() => body.org_id = Some(Value::Null),
                _ => {}
            },
            // Written to the organization ([`organization_write`]), never to the person.
            RemoteField::OrganizationField { .. } => {}
            RemoteField::Custom {
                key,
                field_type,
                currency,
            } => {
                body.custom_fields.insert(
                    key.clone(),
                    custom_json(value, field_type, currency.as_ref()),
                );
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

/// A custom-field map with the apId set, for creates.
pub fn with_ap_id(mut body: PersonWrite, map: &FieldMap, ap_id: &ApId) -> PersonWrite {
    if let Some(key) = &map.apid_key {
        body.custom_fields
            .insert(key.clone(), Value::String(ap_id.as_str().to_owned()));
    }
    body
}

/// The CRM-neutral person of a Pipedrive person: what use-cases see.
pub fn crm_person(person: &Person, map: &FieldMap) -> CrmPerson {
    let time = |text: &Option<String>| {
        text.as_ref()
            .map(|text| CrmTime::new(text.clone(), parse_time(text)))
    };
    CrmPerson {
        id: person.id,
        key: person.id.to_string(),
        snapshot: person_snapshot(person, map),
        ap_id: ap_id(person, map),
        email: primary_email(person),
        added: time(&person.add_time),
        updated: time(&person.update_time),
        deleted: person.is_deleted,
        merged_into: None,
        org_id: person.org_id,
        // Pipedrive's v2 person names its organization by id only.
        org_name: None,
        owner_id: person.owner_id,
        lead: false,
        conversion: None,
    }
}

/// A page of Pipedrive persons as CRM-neutral persons.
pub fn person_page(page: Page<Person>, map: &FieldMap) -> PersonPage {
    PersonPage {
        items: page.items.iter().map(|p| crm_person(p, map)).collect(),
        next_cursor: page.next_cursor,
    }
}

/// The body of a create: the fields, the apId, a name (Pipedrive requires one: the e-mail, as
/// its own UI does, else a placeholder) and the default owner unless a field sets one.
pub fn create_body(
    fields: &BTreeMap<FieldKey, FieldValue>,
    map: &FieldMap,
    ap_id: &ApId,
    email: Option<&EmailAddress>,
    default_owner: Option<i64>,
) -> PersonWrite {
    let mut body = with_ap_id(person_write(fields, map), map, ap_id);
    if body.name.as_deref().is_none_or(str::is_empty) {
        body.name = Some(email.map_or_else(|| "(no name)".to_owned(), |e| e.as_str().to_owned()));
    }
    if body.owner_id.is_none() {
        body.owner_id = default_owner;
    }
    body
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
            Value::String(s) => {
                let entry = LabeledValue::new(s.trim(), Some("work"), true);
                Some(if matches!(remote, RemoteField::Emails) {
                    FieldValue::Emails(vec![entry])
                } else {
                    FieldValue::Phones(vec![entry])
                })
            }
            Value::Null => Some(FieldValue::Cleared),
            _ => None,
        },
        RemoteField::OwnerId => value
            .as_i64()
            .and_then(|n| FieldValue::number(n as f64).ok()),
        RemoteField::Organization => match value {
            Value::String(s) if !s.trim().is_empty() => Some(FieldValue::text(s.trim())),
            Value::String(_) | Value::Null => Some(FieldValue::Cleared),
            _ => None,
        },
        RemoteField::Custom { field_type, .. }
        | RemoteField::OrganizationField { field_type, .. } => custom_value(value, field_type),
    }
}

/// The organization's mapped fields (the map's [`RemoteField::OrganizationField`]s): the
/// built-in `address`, else a custom field. A key absent from the payload is unknown.
pub fn organization_fields(
    org: &wire::Organization,
    map: &FieldMap,
) -> BTreeMap<FieldKey, FieldValue> {
    let mut out = BTreeMap::new();
    for field in map.organization_fields() {
        let RemoteField::OrganizationField {
            key,
            field_type,
            currency,
        } = &field.remote
        else {
            continue;
        };
        let raw = if key == "address" {
            Some(org.address.clone().unwrap_or(Value::Null))
        } else {
            org.custom_fields.get(key).cloned()
        };
        if let Some(value) = raw.and_then(|v| local_custom_value(&v, field_type, currency.as_ref()))
        {
            out.insert(field.local.clone(), value.canonical());
        }
    }
    out
}

/// The body of an organization PATCH carrying exactly `writes` (of organization fields).
pub fn organization_write(writes: &BTreeMap<FieldKey, FieldValue>, map: &FieldMap) -> Value {
    let mut body = serde_json::Map::new();
    let mut custom = serde_json::Map::new();
    for (local, value) in writes {
        let Some(RemoteField::OrganizationField {
            key,
            field_type,
            currency,
        }) = map.get(local).map(|f| &f.remote)
        else {
            continue;
        };
        let json = custom_json(value, field_type, currency.as_ref());
        if key == "address" {
            body.insert(key.clone(), json);
        } else {
            custom.insert(key.clone(), json);
        }
    }
    if !custom.is_empty() {
        body.insert("custom_fields".to_owned(), Value::Object(custom));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    //! Recorded API v2 JSON in (`fixtures/`), core values out, and the write body back.

    use super::*;
    use crate::crm::MappedField;
    use serde_json::json;
    use tandem_core::FieldRule;
    use tandem_core::{Direction, TimeZone};

    const FIELDS: &str = include_str!("fixtures/person_fields.json");
    const PERSON: &str = include_str!("fixtures/person_every_custom_field_type.json");

    fn key(k: &str) -> FieldKey {
        FieldKey::new(k).unwrap()
    }

    /// Every custom field of the fixture mapped both ways to a local field named after it.
    fn fixture_map(currency: Option<&str>) -> (FieldMap, BTreeMap<String, String>) {
        let fields: wire::Envelope<Vec<wire::PersonField>> = serde_json::from_str(FIELDS).unwrap();
        let mut map = FieldMap::defaults(None);
        let mut local_of = BTreeMap::new();
        for f in fields.data.into_iter().filter(|f| f.is_custom_field) {
            let local = f.field_name.to_lowercase().replace(' ', "_");
            local_of.insert(f.field_code.clone(), local.clone());
            map.fields.push(MappedField {
                local: key(&local),
                remote: RemoteField::Custom {
                    key: f.field_code,
                    currency: (f.field_type == "monetary")
                        .then(|| currency.map(|c| CurrencyCode::parse(c).unwrap()))
                        .flatten(),
                    field_type: f.field_type,
                },
                rule: FieldRule {
                    direction: Direction::Bidirectional,
                    owner: None,
                },
            });
        }
        (map, local_of)
    }

    fn person() -> (Person, Value) {
        let raw: Value = serde_json::from_str(PERSON).unwrap();
        let person: wire::Envelope<Person> = serde_json::from_str(PERSON).unwrap();
        (person.data, raw["data"]["custom_fields"].clone())
    }

    fn date(d: &str) -> CalendarDate {
        CalendarDate::parse(d).unwrap()
    }

    fn time(t: &str) -> TimeOfDay {
        TimeOfDay::parse(t).unwrap()
    }

    #[test]
    fn every_api_v2_custom_field_type_reads_into_its_core_value() {
        let (map, _) = fixture_map(None);
        let (person, _) = person();
        let snapshot = person_snapshot(&person, &map);
        let london = TimeZone {
            id: Some(318),
            name: Some("Europe/London".into()),
        };
        let expected: Vec<(&str, FieldValue)> = vec![
            ("nickname", FieldValue::text("Ada")),
            (
                "bio",
                FieldValue::text("Wrote the first program.\nLoved numbers."),
            ),
            ("referrer", FieldValue::text("Babbage")),
            ("office_phone", FieldValue::text("+44 20 7946 0000")),
            ("score", FieldValue::number(42.5).unwrap()),
            (
                "lifetime_value",
                FieldValue::Money(Money {
                    amount: NumberValue::new(2300.0).unwrap(),
                    currency: CurrencyCode::parse("EUR").unwrap(),
                }),
            ),
            ("birthday", FieldValue::date("1815-12-10").unwrap()),
            (
                "contract",
                FieldValue::DateRange(
                    DateRange::new(date("2024-01-01"), date("2024-12-31")).unwrap(),
                ),
            ),
            (
                "call_time",
                FieldValue::Time(ZonedTime {
                    time: time("09:30:00"),
                    zone: london.clone(),
                }),
            ),
            (
                "office_hours",
                FieldValue::TimeRange(TimeRange {
                    start: time("09:00:00"),
                    until: time("17:00:00"),
                    zone: london,
                }),
            ),
            ("tier", FieldValue::Option(28)),
            ("interests", FieldValue::options([33, 31])),
            ("account_manager", FieldValue::number(2.0).unwrap()),
            ("employer", FieldValue::number(7.0).unwrap()),
            ("assistant", FieldValue::number(14.0).unwrap()),
        ];
        for (local, value) in expected {
            assert_eq!(snapshot.get(&key(local)), Some(&value), "{local}");
        }
        let Some(FieldValue::Address(home)) = snapshot.get(&key("home")) else {
            panic!("home is an address: {:?}", snapshot.get(&key("home")));
        };
        assert_eq!(home.value, "12 St James's Square, London");
        assert_eq!(home.parts["postal_code"], "SW1Y 4JH");
        assert_eq!(home.parts.len(), 6);
    }

    #[test]
    fn every_core_value_writes_back_as_the_recorded_api_v2_shape() {
        let (map, local_of) = fixture_map(None);
        let (person, recorded) = person();
        let snapshot = person_snapshot(&person, &map);
        let writes: BTreeMap<FieldKey, FieldValue> = snapshot
            .fields
            .into_iter()
            .filter(|(k, _)| local_of.values().any(|l| l == k.as_str()))
            .collect();
        assert_eq!(writes.len(), 16);
        let body = person_write(&writes, &map);
        for (code, local) in &local_of {
            assert_eq!(
                body.custom_fields.get(code),
                recorded.get(code),
                "{local} ({code}) writes back what was read"
            );
        }
    }

    #[test]
    fn a_local_number_on_a_monetary_field_is_written_with_the_mappings_currency_and_read_back_as_a_number(
    ) {
        let (map, local_of) = fixture_map(Some("EUR"));
        let code = local_of
            .iter()
            .find(|(_, l)| l.as_str() == "lifetime_value")
            .map(|(c, _)| c.clone())
            .unwrap();
        let writes: BTreeMap<FieldKey, FieldValue> =
            [(key("lifetime_value"), FieldValue::number(1234.5).unwrap())]
                .into_iter()
                .collect();
        let body = person_write(&writes, &map);
        assert_eq!(
            body.custom_fields[&code],
            json!({"value": 1234.5, "currency": "EUR"})
        );
        let (person, _) = person();
        assert_eq!(
            person_snapshot(&person, &map).get(&key("lifetime_value")),
            Some(&FieldValue::number(2300.0).unwrap())
        );
    }

    #[test]
    fn ids_are_written_as_integers_and_empty_values_as_null() {
        let (map, local_of) = fixture_map(None);
        let code_of = |local: &str| {
            local_of
                .iter()
                .find(|(_, l)| l.as_str() == local)
                .map(|(c, _)| c.clone())
                .unwrap()
        };
        let writes: BTreeMap<FieldKey, FieldValue> = [
            (key("account_manager"), FieldValue::number(3.0).unwrap()),
            (key("interests"), FieldValue::options([])),
            (key("home"), FieldValue::text("1 Main St")),
            (key("nickname"), FieldValue::Cleared),
        ]
        .into_iter()
        .collect();
        let body = person_write(&writes, &map);
        assert_eq!(
            serde_json::to_string(&body.custom_fields[&code_of("account_manager")]).unwrap(),
            "3"
        );
        // A `set` is cleared with null: `[]` is a validation error in API v2.
        assert_eq!(body.custom_fields[&code_of("interests")], Value::Null);
        assert_eq!(
            body.custom_fields[&code_of("home")],
            json!({"value": "1 Main St"})
        );
        assert_eq!(body.custom_fields[&code_of("nickname")], Value::Null);
    }

    #[test]
    fn options_rendered_with_their_labels_read_as_option_ids() {
        assert_eq!(
            custom_value(&json!({"id": 28, "label": "Pro"}), "enum"),
            Some(FieldValue::Option(28))
        );
        assert_eq!(
            custom_value(&json!([{"id": 33, "label": "Engines"}, {"id": 31}]), "set"),
            Some(FieldValue::options([31, 33]))
        );
        assert_eq!(custom_value(&json!("Pro"), "enum"), None);
    }
}
