//! The contact as the app sees it (REST API bodies, outbound webhook payloads, inbound app
//! events), converted to and from the core's field values at this edge.
//!
//! ```json
//! { "id": "…", "email": "ada@example.com",
//!   "fields": { "name": "Ada", "email": [{"value": "ada@example.com", "label": "work", "primary": true}],
//!               "phone": [...], "<mapped custom field>": … },
//!   "in_pipedrive_list": true, "pipedrive_person_id": 42, "archived": false,
//!   "created_at": "…", "updated_at": "…" }
//! ```
//!
//! Fields with no value are not shown (as Pipedrive's own UI does). On input, a field that is
//! absent is left alone, `null` (or `""`, `[]`) clears it, and a name that is neither a
//! canonical field nor mapped on the connection is refused.

use std::collections::{BTreeMap, BTreeSet};
use tandem_core::{ContactId, PersonId};

use serde_json::{json, Map, Value};
use tandem_core::{
    keys, Address, CalendarDate, CurrencyCode, DateRange, EmailAddress, FieldKey, FieldValue,
    LabeledValue, Money, NumberValue, OptionIds, Phone, TimeOfDay, TimeRange, TimeZone, ZonedTime,
    ADDRESS_PARTS,
};

use super::contacts::{self, LocalContact};
use crate::store::{self, Conn};
use crate::sync::{connections, links, SyncError};

/// The JSON type a field takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Text,
    Emails,
    Phones,
    Number,
    Date,
    /// A single-option field: the option id.
    Option,
    /// A multi-option field: option ids.
    Options,
    /// A Pipedrive id (`user`, `org`, `people` fields): an integer.
    Id,
    /// An amount with its currency (`monetary`): `{"value": 1234.5, "currency": "EUR"}`.
    Money,
    /// A range of dates (`daterange`): `{"value": "2024-01-01", "until": "2024-01-31"}`.
    DateRange,
    /// A time of day (`time`): `"09:30:00"` or `{"value", "timezone_id"?, "timezone_name"?}`.
    Time,
    /// A range of times (`timerange`): `{"value", "until", "timezone_id"?, "timezone_name"?}`.
    TimeRange,
    /// An address (`address`): its text, or `{"value", "route"?, "locality"?, ...}`.
    Address,
    /// Shown, but set by Pipedrive only.
    ReadOnly,
}

impl FieldKind {
    fn describe(self) -> &'static str {
        match self {
            Self::Text => "a string",
            Self::Emails => "a list of {value, label, primary} objects (or one address)",
            Self::Phones => "a list of {value, label, primary} objects (or one number)",
            Self::Number => "a number",
            Self::Date => "a date YYYY-MM-DD",
            Self::Option => "an option id (integer)",
            Self::Options => "a list of option ids (integers)",
            Self::Id => "a Pipedrive id (integer)",
            Self::Money => "an amount with its currency {\"value\": 1234.5, \"currency\": \"EUR\"}",
            Self::DateRange => {
                "a date range {\"value\": \"YYYY-MM-DD\", \"until\": \"YYYY-MM-DD\"}"
            }
            Self::Time => {
                "a time of day \"HH:MM:SS\" (or {\"value\", \"timezone_id\", \"timezone_name\"})"
            }
            Self::TimeRange => "a time range {\"value\": \"HH:MM:SS\", \"until\": \"HH:MM:SS\"}",
            Self::Address => "an address (a string, or {\"value\", \"route\", \"locality\", ...})",
            Self::ReadOnly => "read-only",
        }
    }

    /// The kind of a Pipedrive custom field type. A `monetary` field mapped with a currency
    /// takes bare numbers (in that currency).
    pub fn of_remote_type(field_type: &str, has_currency: bool) -> Self {
        match field_type {
            "double" => Self::Number,
            "monetary" if has_currency => Self::Number,
            "monetary" => Self::Money,
            "user" | "org" | "people" => Self::Id,
            "date" => Self::Date,
            "daterange" => Self::DateRange,
            "time" => Self::Time,
            "timerange" => Self::TimeRange,
            "address" => Self::Address,
            "enum" => Self::Option,
            "set" => Self::Options,
            _ => Self::Text,
        }
    }
}

/// The fields the app may read and write: the canonical ones and those mapped on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCatalog {
    fields: BTreeMap<String, FieldKind>,
    /// Fields Pipedrive refuses to clear (a person's name must not be empty).
    required: BTreeSet<String>,
}

impl Default for FieldCatalog {
    fn default() -> Self {
        let mut fields = BTreeMap::new();
        for key in [
            keys::NAME,
            keys::FIRST_NAME,
            keys::LAST_NAME,
            keys::ORG_NAME,
        ] {
            fields.insert(key.to_owned(), FieldKind::Text);
        }
        fields.insert(keys::EMAIL.to_owned(), FieldKind::Emails);
        fields.insert(keys::PHONE.to_owned(), FieldKind::Phones);
        fields.insert(keys::OWNER_ID.to_owned(), FieldKind::ReadOnly);
        fields.insert(keys::LABEL.to_owned(), FieldKind::Options);
        Self {
            fields,
            required: [keys::NAME.to_owned()].into_iter().collect(),
        }
    }
}

impl FieldCatalog {
    /// Adds a field (a custom mapping).
    pub fn with(mut self, key: &str, kind: FieldKind) -> Self {
        self.fields.insert(key.to_owned(), kind);
        self
    }

    pub fn kind(&self, key: &str) -> Option<FieldKind> {
        self.fields.get(key).copied()
    }

    /// Whether Pipedrive refuses an empty value for this field.
    pub fn is_required(&self, key: &str) -> bool {
        self.required.contains(key)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// The canonical fields plus every field mapped on `tenant`'s oldest active connection.
    pub async fn load(db: &impl Conn, tenant: &tandem_core::TenantId) -> Result<Self, SyncError> {
        let mut catalog = Self::default();
        let Some(connection) = connections::active_id(db, tenant).await? else {
            return Ok(catalog);
        };
        for mapping in store::field_mappings::of_connection(db, connection).await? {
            if mapping.local_field == keys::NAME && mapping.remote_field != keys::NAME {
                // The name is written somewhere else than Pipedrive's (required) name.
                catalog.required.remove(keys::NAME);
            }
            if catalog.kind(&mapping.local_field).is_none() {
                catalog = catalog.with(
                    &mapping.local_field,
                    FieldKind::of_remote_type(&mapping.remote_type, mapping.currency.is_some()),
                );
            }
        }
        Ok(catalog)
    }
}

/// One field-level problem, for a 422 body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// A path such as `fields.email[0].value`.
    pub field: String,
    pub message: String,
    /// The field is not known at all (rather than badly typed).
    pub unknown: bool,
}

impl FieldIssue {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            unknown: false,
        }
    }

    fn unknown(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            unknown: true,
            ..Self::new(field, message)
        }
    }
}

/// Whether cleared values are kept (a change: "the user cleared it") or dropped (a new
/// contact: empty fields are not values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Change,
}

/// Parses a `fields` object. `path` prefixes issue paths (`fields`).
pub fn parse_fields(
    catalog: &FieldCatalog,
    value: &Value,
    path: &str,
    mode: Mode,
) -> Result<BTreeMap<FieldKey, FieldValue>, Vec<FieldIssue>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldIssue::new(path, "must be an object")]);
    };
    let mut issues = Vec::new();
    let mut fields = BTreeMap::new();
    for (name, raw) in object {
        let at = format!("{path}.{name}");
        let Some(kind) = catalog.kind(name) else {
            let known: Vec<&str> = catalog.names().collect();
            issues.push(FieldIssue::unknown(
                at,
                format!("unknown field; known fields are {}", known.join(", ")),
            ));
            continue;
        };
        let Ok(key) = FieldKey::new(name) else {
            issues.push(FieldIssue::unknown(at, "not a valid field name"));
            continue;
        };
        match parse_value(kind, raw, &at) {
            Ok(value) => {
                if mode == Mode::Create && value.is_cleared() {
                    // A new contact without a name is created in Pipedrive under its e-mail.
                    continue;
                }
                if value.is_cleared() && catalog.is_required(name) {
                    issues.push(FieldIssue::new(
                        at,
                        "must not be empty: Pipedrive requires a person's name; give a name or leave the field out",
                    ));
                    continue;
                }
                fields.insert(key, value);
            }
            Err(mut more) => issues.append(&mut more),
        }
    }
    if issues.is_empty() {
        Ok(fields)
    } else {
        Err(issues)
    }
}

fn is_empty_json(raw: &Value) -> bool {
    match raw {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn parse_value(kind: FieldKind, raw: &Value, at: &str) -> Result<FieldValue, Vec<FieldIssue>> {
    let wrong = || vec![FieldIssue::new(at, format!("must be {}", kind.describe()))];
    if kind == FieldKind::ReadOnly {
        return Err(vec![FieldIssue::new(at, "is read-only: Pipedrive sets it")]);
    }
    if is_empty_json(raw) {
        return Ok(FieldValue::Cleared);
    }
    Ok(match (kind, raw) {
        (FieldKind::Text, Value::String(s)) => FieldValue::text(s.trim()),
        (FieldKind::Number, Value::Number(n)) => n
            .as_f64()
            .and_then(|f| NumberValue::new(f).ok())
            .map(FieldValue::Number)
            .ok_or_else(wrong)?,
        (FieldKind::Date, Value::String(s)) => {
            FieldValue::date(s.trim()).map_err(|e| vec![FieldIssue::new(at, e.to_string())])?
        }
        (FieldKind::Option, Value::Number(n)) => FieldValue::Option(n.as_i64().ok_or_else(wrong)?),
        (FieldKind::Options, Value::Array(ids)) => {
            let ids: Option<Vec<i64>> = ids.iter().map(Value::as_i64).collect();
            FieldValue::Options(OptionIds::new(ids.ok_or_else(wrong)?))
        }
        (FieldKind::Id, Value::Number(n)) => n
            .as_i64()
            .and_then(|id| FieldValue::number(id as f64).ok())
            .ok_or_else(wrong)?,
        (FieldKind::Emails | FieldKind::Phones, _) => parse_list(kind, raw, at)?,
        (FieldKind::Address, Value::String(s)) => FieldValue::text(s.trim()),
        (
            FieldKind::Money
            | FieldKind::DateRange
            | FieldKind::Time
            | FieldKind::TimeRange
            | FieldKind::Address,
            _,
        ) => parse_structured(kind, raw, at)?,
        _ => return Err(wrong()),
    })
}

/// A `{value, ...}` value (money, ranges, times, addresses), with every key checked.
fn parse_structured(kind: FieldKind, raw: &Value, at: &str) -> Result<FieldValue, Vec<FieldIssue>> {
    let wrong = || vec![FieldIssue::new(at, format!("must be {}", kind.describe()))];
    let issue = |key: &str, message: String| vec![FieldIssue::new(format!("{at}.{key}"), message)];
    if kind == FieldKind::Time {
        if let Value::String(s) = raw {
            let time = TimeOfDay::parse(s).map_err(|e| issue("value", e.to_string()))?;
            return Ok(FieldValue::Time(ZonedTime {
                time,
                zone: TimeZone::default(),
            }));
        }
    }
    let Some(object) = raw.as_object() else {
        return Err(wrong());
    };
    let allowed: Vec<&str> = match kind {
        FieldKind::Money => vec!["value", "currency"],
        FieldKind::DateRange => vec!["value", "until"],
        FieldKind::Time => vec!["value", "timezone_id", "timezone_name"],
        FieldKind::TimeRange => vec!["value", "until", "timezone_id", "timezone_name"],
        _ => std::iter::once("value")
            .chain(ADDRESS_PARTS.iter().copied())
            .collect(),
    };
    if let Some(extra) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(vec![FieldIssue::unknown(
            format!("{at}.{extra}"),
            format!("unknown key; allowed are {}", allowed.join(", ")),
        )]);
    }
    let text = |key: &str| -> Result<&str, Vec<FieldIssue>> {
        object
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| issue(key, "must be a string".into()))
    };
    let zone = || -> Result<TimeZone, Vec<FieldIssue>> {
        Ok(TimeZone {
            id: match object.get("timezone_id") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_i64()
                        .ok_or_else(|| issue("timezone_id", "must be an integer".into()))?,
                ),
            },
            name: match object.get("timezone_name") {
                None | Some(Value::Null) => None,
                Some(_) => Some(text("timezone_name")?.to_owned()),
            },
        })
    };
    let date =
        |key: &str| CalendarDate::parse(text(key)?.trim()).map_err(|e| issue(key, e.to_string()));
    let time = |key: &str| TimeOfDay::parse(text(key)?).map_err(|e| issue(key, e.to_string()));
    Ok(match kind {
        FieldKind::Money => {
            let amount = object
                .get("value")
                .and_then(Value::as_f64)
                .and_then(|f| NumberValue::new(f).ok())
                .ok_or_else(|| issue("value", "must be a number".into()))?;
            let currency = CurrencyCode::parse(text("currency")?)
                .map_err(|e| issue("currency", e.to_string()))?;
            FieldValue::Money(Money { amount, currency })
        }
        FieldKind::DateRange => FieldValue::DateRange(
            DateRange::new(date("value")?, date("until")?)
                .map_err(|e| issue("until", e.to_string()))?,
        ),
        FieldKind::Time => FieldValue::Time(ZonedTime {
            time: time("value")?,
            zone: zone()?,
        }),
        FieldKind::TimeRange => FieldValue::TimeRange(TimeRange {
            start: time("value")?,
            until: time("until")?,
            zone: zone()?,
        }),
        _ => {
            let mut parts = BTreeMap::new();
            for key in ADDRESS_PARTS {
                match object.get(*key) {
                    None | Some(Value::Null) => {}
                    Some(_) => {
                        let part = text(key)?.trim();
                        if !part.is_empty() {
                            parts.insert((*key).to_owned(), part.to_owned());
                        }
                    }
                }
            }
            FieldValue::Address(Address {
                value: text("value")?.trim().to_owned(),
                parts,
            })
            .canonical()
        }
    })
}

fn parse_list(kind: FieldKind, raw: &Value, at: &str) -> Result<FieldValue, Vec<FieldIssue>> {
    let entries: Vec<Value> = match raw {
        Value::String(_) => vec![json!({ "value": raw, "primary": true })],
        Value::Array(items) => items.clone(),
        _ => {
            return Err(vec![FieldIssue::new(
                at,
                format!("must be {}", kind.describe()),
            )])
        }
    };
    let mut issues = Vec::new();
    let mut values = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let Some(object) = entry.as_object() else {
            issues.push(FieldIssue::new(
                here,
                "must be an object {value, label, primary}",
            ));
            continue;
        };
        if let Some(extra) = object
            .keys()
            .find(|k| !["value", "label", "primary"].contains(&k.as_str()))
        {
            issues.push(FieldIssue::unknown(
                format!("{here}.{extra}"),
                "unknown key; allowed are value, label, primary",
            ));
            continue;
        }
        let Some(text) = object.get("value").and_then(Value::as_str) else {
            issues.push(FieldIssue::new(format!("{here}.value"), "must be a string"));
            continue;
        };
        let parsed = if kind == FieldKind::Emails {
            EmailAddress::parse(text).map(|e| e.original().to_owned())
        } else {
            Phone::parse(text).map(|p| p.original().to_owned())
        };
        let value = match parsed {
            Ok(value) => value,
            Err(error) => {
                issues.push(FieldIssue::new(format!("{here}.value"), error.to_string()));
                continue;
            }
        };
        let label = match object.get("label") {
            None | Some(Value::Null) => None,
            Some(Value::String(label)) if !label.trim().is_empty() => Some(label.trim()),
            Some(Value::String(_)) => None,
            Some(_) => {
                issues.push(FieldIssue::new(format!("{here}.label"), "must be a string"));
                continue;
            }
        };
        let primary = match object.get("primary") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                issues.push(FieldIssue::new(
                    format!("{here}.primary"),
                    "must be true or false",
                ));
                continue;
            }
        };
        values.push(LabeledValue::new(value, label, primary));
    }
    if values.iter().filter(|v| v.primary).count() > 1 {
        issues.push(FieldIssue::new(at, "at most one entry may be primary"));
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    // Pipedrive marks one entry primary; so does tandem when the app did not say which.
    if !values.iter().any(|v| v.primary) {
        if let Some(first) = values.first_mut() {
            first.primary = true;
        }
    }
    Ok(if kind == FieldKind::Emails {
        FieldValue::Emails(values)
    } else {
        FieldValue::Phones(values)
    })
}

/// A field value as JSON; `None` for an empty value (not shown).
pub fn render_value(value: &FieldValue) -> Option<Value> {
    if value.is_cleared() {
        return None;
    }
    Some(match value {
        FieldValue::Text(text) => Value::String(text.clone()),
        FieldValue::Number(n) => json!(n.get()),
        FieldValue::Date(d) => Value::String(d.as_str().to_owned()),
        FieldValue::Option(id) => json!(id),
        FieldValue::Options(ids) => json!(ids.as_slice()),
        FieldValue::Emails(list) | FieldValue::Phones(list) => Value::Array(
            list.iter()
                .map(|l| json!({ "value": l.value, "label": l.label, "primary": l.primary }))
                .collect(),
        ),
        // The structured values look as Pipedrive's API v2 writes them.
        FieldValue::Money(_)
        | FieldValue::DateRange(_)
        | FieldValue::Time(_)
        | FieldValue::TimeRange(_)
        | FieldValue::Address(_) => crate::value_json::structured_json(value),
        FieldValue::Cleared => Value::Null,
    })
}

/// A contact as the app sees it.
pub fn render(
    contact: &LocalContact,
    in_pipedrive_list: bool,
    person_id: Option<PersonId>,
) -> Value {
    let fields: Map<String, Value> = contact
        .fields
        .iter()
        .filter_map(|(k, v)| render_value(v).map(|v| (k.as_str().to_owned(), v)))
        .collect();
    json!({
        "id": contact.id,
        "email": contact.email,
        "fields": fields,
        "in_pipedrive_list": in_pipedrive_list,
        "pipedrive_person_id": person_id,
        "archived": contact.archived,
        "created_at": contact.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updated_at": contact.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

/// Loads and renders a contact (list membership and Pipedrive person included).
pub async fn view(db: &impl Conn, id: ContactId) -> Result<Option<Value>, SyncError> {
    let Some(contact) = contacts::load(db, id).await? else {
        return Ok(None);
    };
    render_loaded(db, contact).await.map(Some)
}

/// [`view`] of `tenant`'s contact `id`: another tenant's is not there.
pub async fn view_in(
    db: &impl Conn,
    tenant: &tandem_core::TenantId,
    id: ContactId,
) -> Result<Option<Value>, SyncError> {
    let Some(contact) = contacts::load_in(db, tenant, id).await? else {
        return Ok(None);
    };
    render_loaded(db, contact).await.map(Some)
}

async fn render_loaded(db: &impl Conn, contact: LocalContact) -> Result<Value, SyncError> {
    let id = contact.id;
    let in_list = contacts::in_list(db, id, contacts::PIPEDRIVE_LIST).await?;
    let person = links::any_for_contact(db, id).await?.map(|l| l.person_id);
    Ok(render(&contact, in_list, person))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> FieldCatalog {
        FieldCatalog::default().with("company_size", FieldKind::Number)
    }

    #[test]
    fn fields_parse_into_core_values_and_render_back() {
        let input = json!({
            "name": " Ada ",
            "email": [{"value": "Ada@Example.com", "label": "work"}],
            "phone": "+49 30 1234567",
            "company_size": 12,
        });
        let fields = parse_fields(&catalog(), &input, "fields", Mode::Create).unwrap();
        assert_eq!(fields.get("name"), Some(&FieldValue::text("Ada")));
        assert_eq!(
            fields.get("email"),
            Some(&FieldValue::Emails(vec![LabeledValue::new(
                "Ada@Example.com",
                Some("work"),
                true
            )]))
        );
        assert_eq!(
            render_value(&fields["phone"]).unwrap(),
            json!([{"value": "+49 30 1234567", "label": null, "primary": true}])
        );
        assert_eq!(render_value(&fields["company_size"]).unwrap(), json!(12.0));
    }

    #[test]
    fn every_bad_field_is_named_with_its_own_message() {
        let input = json!({
            "email": [{"value": "not-an-address"}],
            "nickname": "x",
            "owner_id": 3,
            "company_size": "big",
        });
        let issues = parse_fields(&catalog(), &input, "fields", Mode::Change).unwrap_err();
        let named: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "fields.company_size",
                "fields.email[0].value",
                "fields.nickname",
                "fields.owner_id"
            ]
        );
        assert!(issues
            .iter()
            .any(|i| i.unknown && i.field == "fields.nickname"));
        assert!(issues[1].message.contains('@'), "{:?}", issues[1]);
    }

    #[test]
    fn null_clears_on_a_change_and_is_dropped_on_a_create() {
        let input = json!({ "org_name": null, "phone": [] });
        let change = parse_fields(&catalog(), &input, "fields", Mode::Change).unwrap();
        assert_eq!(change.get("org_name"), Some(&FieldValue::Cleared));
        assert_eq!(change.len(), 2);
        let create = parse_fields(&catalog(), &input, "fields", Mode::Create).unwrap();
        assert!(create.is_empty());
    }

    #[test]
    fn a_name_pipedrive_would_refuse_is_a_field_issue_on_a_change() {
        for empty in [json!(""), json!(null), json!("   ")] {
            let input = json!({ "name": empty });
            let issues = parse_fields(&catalog(), &input, "fields", Mode::Change).unwrap_err();
            assert_eq!(issues.len(), 1);
            assert_eq!(issues[0].field, "fields.name");
            assert!(
                issues[0].message.contains("must not be empty"),
                "{issues:?}"
            );
            // A new contact without a name is created under its e-mail instead.
            let create = parse_fields(&catalog(), &input, "fields", Mode::Create).unwrap();
            assert!(create.is_empty());
        }
    }

    #[test]
    fn values_of_every_mapped_pipedrive_type_are_checked_against_their_shape() {
        let catalog = FieldCatalog::default()
            .with("deal_value", FieldKind::of_remote_type("monetary", false))
            .with("budget", FieldKind::of_remote_type("monetary", true))
            .with("account_manager", FieldKind::of_remote_type("user", false))
            .with("contract", FieldKind::of_remote_type("daterange", false))
            .with("call_time", FieldKind::of_remote_type("time", false))
            .with(
                "office_hours",
                FieldKind::of_remote_type("timerange", false),
            )
            .with("home", FieldKind::of_remote_type("address", false));
        let good = json!({
            "deal_value": {"value": 1234.5, "currency": "eur"},
            "budget": 99,
            "account_manager": 2,
            "contract": {"value": "2024-01-01", "until": "2024-12-31"},
            "call_time": "09:30",
            "office_hours": {"value": "09:00", "until": "17:00", "timezone_name": "Europe/Berlin"},
            "home": {"value": "1 Main St", "country": "UK"},
        });
        let fields = parse_fields(&catalog, &good, "fields", Mode::Change).unwrap();
        assert_eq!(fields.len(), 7);
        assert_eq!(
            render_value(&fields["deal_value"]).unwrap(),
            json!({"value": 1234.5, "currency": "EUR"})
        );
        assert_eq!(
            render_value(&fields["call_time"]).unwrap(),
            json!({"value": "09:30:00"})
        );
        let bad = json!({
            "deal_value": 1234.5,
            "budget": {"value": 1},
            "account_manager": 2.5,
            "contract": {"value": "2024-12-31", "until": "2024-01-01"},
            "call_time": "9.30",
            "office_hours": {"value": "09:00"},
            "home": {"value": "1 Main St", "planet": "Earth"},
        });
        let issues = parse_fields(&catalog, &bad, "fields", Mode::Change).unwrap_err();
        let named: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            named,
            [
                "fields.account_manager",
                "fields.budget",
                "fields.call_time.value",
                "fields.contract.until",
                "fields.deal_value",
                "fields.home.planet",
                "fields.office_hours.until",
            ]
        );
    }
}
