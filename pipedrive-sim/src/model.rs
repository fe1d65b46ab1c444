//! The objects the simulator stores, their JSON renderings (v2 and v1), and the validation
//! of write bodies.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

/// Whole-second RFC 3339 (`2026-01-02T03:04:05Z`), as API v2 writes times.
pub(crate) fn v2_time(ts: i64) -> String {
    use chrono::{Datelike, Timelike};
    let t = DateTime::<Utc>::from_timestamp(ts, 0).unwrap_or_default();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `YYYY-MM-DD HH:MM:SS`, as API v1 writes times.
pub(crate) fn v1_time(ts: i64) -> String {
    use chrono::{Datelike, Timelike};
    let t = DateTime::<Utc>::from_timestamp(ts, 0).unwrap_or_default();
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses RFC 3339 (v2) or `YYYY-MM-DD HH:MM:SS` (v1) into unix seconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .ok()
        .map(|t| t.and_utc().timestamp())
}

/// An e-mail, phone or IM entry.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct Channel {
    pub(crate) value: String,
    pub(crate) primary: bool,
    pub(crate) label: String,
}

/// Custom fields as v1 objects carry them: top-level hash keys, every field of `fields` (`null`
/// when unset), a monetary field's currency as `<key>_currency`, an enum's option id as a
/// string, a set's as comma-separated ids, and the other parts of an object value (an
/// address's components) as `<key>_<part>`.
pub(crate) fn put_v1_custom<'a>(
    m: &mut Map<String, Value>,
    fields: &[FieldDef],
    get: impl Fn(&str) -> Option<&'a Value>,
) {
    for f in fields.iter().filter(|f| f.custom) {
        let val = get(&f.key).cloned().unwrap_or(Value::Null);
        match (f.field_type.as_str(), val) {
            ("monetary", Value::Object(o)) => {
                m.insert(
                    f.key.clone(),
                    o.get("value").cloned().unwrap_or(Value::Null),
                );
                m.insert(
                    format!("{}_currency", f.key),
                    o.get("currency").cloned().unwrap_or(Value::Null),
                );
            }
            ("enum", Value::Number(n)) => {
                m.insert(f.key.clone(), json!(n.to_string()));
            }
            ("set", Value::Array(ids)) => {
                let s: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                m.insert(f.key.clone(), json!(s.join(",")));
            }
            (_, Value::Object(o)) if o.contains_key("value") => {
                m.insert(
                    f.key.clone(),
                    o.get("value").cloned().unwrap_or(Value::Null),
                );
                for (k, sub) in o.iter().filter(|(k, _)| k.as_str() != "value") {
                    m.insert(format!("{}_{k}", f.key), sub.clone());
                }
            }
            (_, other) => {
                m.insert(f.key.clone(), other);
            }
        }
    }
}

impl Channel {
    pub(crate) fn to_json(&self) -> Value {
        json!({"value": self.value, "primary": self.primary, "label": self.label})
    }
}

/// A custom field definition (or a built-in, for listings).
#[derive(Clone, Debug)]
pub(crate) struct FieldDef {
    pub(crate) id: i64,
    pub(crate) key: String,
    pub(crate) name: String,
    pub(crate) field_type: String,
    pub(crate) options: Vec<(i64, String)>,
    pub(crate) custom: bool,
    pub(crate) add_time: i64,
}

impl FieldDef {
    pub(crate) fn v2_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("field_name".into(), json!(self.name));
        m.insert("field_code".into(), json!(self.key));
        m.insert("description".into(), Value::Null);
        m.insert("field_type".into(), json!(self.field_type));
        m.insert(
            "options".into(),
            if matches!(self.field_type.as_str(), "enum" | "set") {
                Value::Array(
                    self.options
                        .iter()
                        .map(|(id, label)| json!({"id": id, "label": label, "color": null, "update_time": null, "add_time": null}))
                        .collect(),
                )
            } else {
                Value::Null
            },
        );
        m.insert("subfields".into(), Value::Null);
        m.insert("is_custom_field".into(), json!(self.custom));
        m.insert("is_optional_response_field".into(), json!(false));
        Value::Object(m)
    }

    pub(crate) fn v1_json(&self, order_nr: usize) -> Value {
        let mut v = json!({
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "order_nr": order_nr,
            "field_type": self.field_type,
            // The v1 fields schema says `format: date-time`.
            "add_time": v2_time(self.add_time),
            "update_time": v2_time(self.add_time),
            "last_updated_by_user_id": 1,
            "created_by_user_id": 1,
            "active_flag": true,
            "edit_flag": self.custom,
            "index_visible_flag": true,
            "details_visible_flag": true,
            "add_visible_flag": true,
            "important_flag": false,
            "bulk_edit_allowed": true,
            "searchable_flag": self.custom,
            "filtering_allowed": true,
            "sortable_flag": true,
            "mandatory_flag": false,
        });
        if matches!(self.field_type.as_str(), "enum" | "set") {
            v["options"] = Value::Array(
                self.options
                    .iter()
                    .map(|(id, label)| json!({"id": id, "label": label}))
                    .collect(),
            );
        }
        v
    }
}

/// Built-in fields (readable keys, `edit_flag: false`). `(key, name, v1 type, v2 type)`.
pub(crate) fn builtin_fields(entity: &str) -> Vec<(&'static str, &'static str, &'static str)> {
    match entity {
        "person" => vec![
            ("name", "Name", "varchar"),
            ("first_name", "First name", "varchar"),
            ("last_name", "Last name", "varchar"),
            ("owner_id", "Owner", "user"),
            ("org_id", "Organization", "org"),
            ("email", "Email", "varchar"),
            ("phone", "Phone", "phone"),
            ("label_ids", "Labels", "set"),
            ("visible_to", "Visible to", "visible_to"),
            ("add_time", "Person created", "date"),
            ("update_time", "Update time", "date"),
        ],
        "deal" => vec![
            ("title", "Title", "varchar"),
            ("owner_id", "Owner", "user"),
            ("value", "Value", "monetary"),
            ("person_id", "Contact person", "people"),
            ("org_id", "Organization", "org"),
            ("stage_id", "Stage", "enum"),
            ("status", "Status", "enum"),
            ("expected_close_date", "Expected close date", "date"),
            ("add_time", "Deal created", "date"),
            ("update_time", "Update time", "date"),
        ],
        "organization" => vec![
            ("name", "Name", "varchar"),
            ("owner_id", "Owner", "user"),
            ("address", "Address", "address"),
            ("visible_to", "Visible to", "visible_to"),
            ("add_time", "Organization created", "date"),
        ],
        "activity" => vec![
            ("subject", "Subject", "varchar"),
            ("type", "Type", "enum"),
            ("due_date", "Due date", "date"),
            ("due_time", "Due time", "time"),
            ("duration", "Duration", "time"),
            ("person_id", "Contact person", "people"),
            ("org_id", "Organization", "org"),
            ("note", "Note", "text"),
            ("done", "Done", "enum"),
        ],
        "note" => vec![
            ("content", "Content", "text"),
            ("person_id", "Person", "people"),
            ("org_id", "Organization", "org"),
            ("user_id", "User", "user"),
            ("add_time", "Add time", "date"),
        ],
        "product" => vec![
            ("name", "Name", "varchar"),
            ("code", "Product code", "varchar"),
            ("unit", "Unit", "varchar"),
            ("tax", "Tax", "double"),
            ("owner_id", "Owner", "user"),
        ],
        _ => Vec::new(),
    }
}

/// A person.
#[derive(Clone, Debug)]
pub(crate) struct Person {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    pub(crate) owner_id: i64,
    pub(crate) org_id: Option<i64>,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
    pub(crate) emails: Vec<Channel>,
    pub(crate) phones: Vec<Channel>,
    pub(crate) im: Vec<Channel>,
    pub(crate) is_deleted: bool,
    pub(crate) visible_to: i64,
    pub(crate) label_ids: Vec<i64>,
    pub(crate) picture_id: Option<i64>,
    pub(crate) marketing_status: Option<String>,
    pub(crate) notes: Option<String>,
    pub(crate) birthday: Option<String>,
    pub(crate) job_title: Option<String>,
    pub(crate) postal_address: Option<Value>,
    /// Only set values; unset custom fields render as `null`.
    pub(crate) custom_fields: BTreeMap<String, Value>,
}

impl Person {
    pub(crate) fn new(id: i64, owner_id: i64, now: i64) -> Self {
        Person {
            id,
            name: String::new(),
            first_name: None,
            last_name: None,
            owner_id,
            org_id: None,
            add_time: now,
            update_time: now,
            emails: Vec::new(),
            phones: Vec::new(),
            im: Vec::new(),
            is_deleted: false,
            visible_to: 3,
            label_ids: Vec::new(),
            picture_id: None,
            marketing_status: None,
            notes: None,
            birthday: None,
            job_title: None,
            postal_address: None,
            custom_fields: BTreeMap::new(),
        }
    }

    /// The v2 object. `keys` are the company's custom field keys (all rendered, `null` when
    /// unset); `only` restricts them (the `custom_fields` query parameter).
    pub(crate) fn v2_json(&self, keys: &[String], only: Option<&[String]>) -> Value {
        serde_json::to_value(PersonV2 {
            p: self,
            keys,
            only,
        })
        .unwrap_or(Value::Null)
    }

    /// The v1 object (legacy shape: singular `email`/`phone`, custom fields at top level).
    pub(crate) fn v1_json(&self, company_id: i64, owner_name: &str, fields: &[FieldDef]) -> Value {
        let mut v = json!({
            "id": self.id,
            "company_id": company_id,
            "owner_id": self.owner_id,
            "org_id": self.org_id,
            "name": self.name,
            "first_name": self.first_name.clone().unwrap_or_default(),
            "last_name": self.last_name,
            "active_flag": !self.is_deleted,
            "phone": self.phones.iter().map(Channel::to_json).collect::<Vec<_>>(),
            "email": self.emails.iter().map(Channel::to_json).collect::<Vec<_>>(),
            "first_char": self.name.chars().next().map(|c| c.to_lowercase().to_string()).unwrap_or_default(),
            "add_time": v1_time(self.add_time),
            "update_time": v1_time(self.update_time),
            "visible_to": self.visible_to.to_string(),
            "picture_id": null,
            "label": null,
            "label_ids": self.label_ids,
            "org_name": null,
            "owner_name": owner_name,
            "cc_email": null,
            "open_deals_count": 0, "related_open_deals_count": 0, "closed_deals_count": 0,
            "related_closed_deals_count": 0, "won_deals_count": 0, "related_won_deals_count": 0,
            "lost_deals_count": 0, "related_lost_deals_count": 0, "participant_open_deals_count": 0,
            "participant_closed_deals_count": 0, "email_messages_count": 0, "activities_count": 0,
            "done_activities_count": 0, "undone_activities_count": 0, "files_count": 0,
            "notes_count": 0, "followers_count": 1, "last_incoming_mail_time": null,
            "last_outgoing_mail_time": null, "next_activity_date": null, "next_activity_time": null,
            "next_activity_id": null, "last_activity_id": null, "last_activity_date": null,
        });
        if let (Value::Object(m), None) = (&mut v, self.org_id) {
            m.remove("org_id");
        }
        if let Value::Object(m) = &mut v {
            put_v1_custom(m, fields, |k| self.custom_fields.get(k));
        }
        v
    }
}

/// A person rendered as API v2 does, serialized without building a `Value` first.
pub(crate) struct PersonV2<'a> {
    pub(crate) p: &'a Person,
    pub(crate) keys: &'a [String],
    pub(crate) only: Option<&'a [String]>,
}

struct CustomFields<'a>(&'a PersonV2<'a>);

impl serde::Serialize for CustomFields<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let v = self.0;
        let mut m = s.serialize_map(None)?;
        for k in v.keys {
            if v.only.is_some_and(|o| !o.contains(k)) {
                continue;
            }
            m.serialize_entry(k, v.p.custom_fields.get(k).unwrap_or(&Value::Null))?;
        }
        m.end()
    }
}

impl serde::Serialize for PersonV2<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.p;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &p.id)?;
        m.serialize_entry("name", &p.name)?;
        if let Some(f) = &p.first_name {
            m.serialize_entry("first_name", f)?;
        }
        if let Some(l) = &p.last_name {
            m.serialize_entry("last_name", l)?;
        }
        m.serialize_entry("owner_id", &p.owner_id)?;
        if let Some(o) = p.org_id {
            m.serialize_entry("org_id", &o)?;
        }
        m.serialize_entry("add_time", &v2_time(p.add_time))?;
        m.serialize_entry("update_time", &v2_time(p.update_time))?;
        m.serialize_entry("emails", &p.emails)?;
        m.serialize_entry("phones", &p.phones)?;
        m.serialize_entry("is_deleted", &p.is_deleted)?;
        m.serialize_entry("visible_to", &p.visible_to)?;
        m.serialize_entry("label_ids", &p.label_ids)?;
        if let Some(x) = p.picture_id {
            m.serialize_entry("picture_id", &x)?;
        }
        if !p.im.is_empty() {
            m.serialize_entry("im", &p.im)?;
        }
        if let Some(a) = &p.postal_address {
            m.serialize_entry("postal_address", a)?;
        }
        if let Some(n) = &p.notes {
            m.serialize_entry("notes", n)?;
        }
        if let Some(b) = &p.birthday {
            m.serialize_entry("birthday", b)?;
        }
        if let Some(j) = &p.job_title {
            m.serialize_entry("job_title", j)?;
        }
        m.serialize_entry("custom_fields", &CustomFields(self))?;
        m.end()
    }
}

/// Why a write body was rejected (the API's `error` text).
pub(crate) type Invalid = String;

pub(crate) fn want_str<'a>(k: &str, v: &'a Value) -> Result<&'a str, Invalid> {
    v.as_str()
        .ok_or_else(|| format!("Validation failed: {k}: Parameter '{k}' must be a string"))
}

pub(crate) fn want_opt_str(k: &str, v: &Value) -> Result<Option<String>, Invalid> {
    if v.is_null() {
        return Ok(None);
    }
    want_str(k, v).map(|s| Some(s.to_owned()))
}

pub(crate) fn want_int(k: &str, v: &Value) -> Result<i64, Invalid> {
    v.as_i64()
        .ok_or_else(|| format!("Validation failed: {k}: Parameter '{k}' must be an integer"))
}

pub(crate) fn want_opt_int(k: &str, v: &Value) -> Result<Option<i64>, Invalid> {
    if v.is_null() {
        return Ok(None);
    }
    want_int(k, v).map(Some)
}

pub(crate) fn want_bool(k: &str, v: &Value) -> Result<bool, Invalid> {
    v.as_bool()
        .ok_or_else(|| format!("Validation failed: {k}: Parameter '{k}' must be a boolean"))
}

pub(crate) fn want_int_array(k: &str, v: &Value) -> Result<Vec<i64>, Invalid> {
    let a = v
        .as_array()
        .ok_or_else(|| format!("Validation failed: {k}: Parameter '{k}' must be an array"))?;
    a.iter().map(|x| want_int(k, x)).collect()
}

fn channels(k: &str, v: &Value) -> Result<Vec<Channel>, Invalid> {
    let arr = v.as_array().ok_or_else(|| {
        format!("Validation failed: {k}: Parameter '{k}' must be an array of objects")
    })?;
    let mut out = Vec::with_capacity(arr.len());
    for item in arr {
        let o = item.as_object().ok_or_else(|| {
            format!("Validation failed: {k}: Parameter '{k}' must be an array of objects")
        })?;
        let value = o
            .get("value")
            .ok_or_else(|| format!("Validation failed: {k}: 'value' is required"))
            .and_then(|v| want_str(&format!("{k}.value"), v))?;
        let primary = match o.get("primary") {
            None | Some(Value::Null) => false,
            Some(p) => want_bool(&format!("{k}.primary"), p)?,
        };
        let label = match o.get("label") {
            None | Some(Value::Null) => "work".to_owned(),
            Some(l) => want_str(&format!("{k}.label"), l)?.to_owned(),
        };
        out.push(Channel {
            value: value.to_owned(),
            primary,
            label,
        });
    }
    match out.iter().filter(|c| c.primary).count() {
        0 => {
            if let Some(first) = out.first_mut() {
                first.primary = true;
            }
        }
        1 => {}
        _ => {
            return Err(format!(
                "Validation failed: {k}: only one primary value is allowed"
            ))
        }
    }
    Ok(out)
}

/// The subfields an `address` value may carry besides `value` (v2 `personFields` example).
pub(crate) const ADDRESS_SUBFIELDS: &[&str] = &[
    "street_number",
    "route",
    "subpremise",
    "sublocality",
    "locality",
    "admin_area_level_1",
    "admin_area_level_2",
    "country",
    "postal_code",
    "formatted_address",
];

fn is_date(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok())
}

fn is_time(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        chrono::NaiveTime::parse_from_str(s, "%H:%M:%S").is_ok()
            || chrono::NaiveTime::parse_from_str(s, "%H:%M").is_ok()
    })
}

/// `{value, ...}` with exactly the allowed keys, `value` (and `until`, when listed first in
/// `required`) present.
fn object_with(v: &Value, required: &[&str], optional: &[&str]) -> Option<Map<String, Value>> {
    let o = v.as_object()?;
    let known = |k: &String| required.contains(&k.as_str()) || optional.contains(&k.as_str());
    (required.iter().all(|k| o.contains_key(*k)) && o.keys().all(known)).then(|| o.clone())
}

fn zone_ok(o: &Map<String, Value>) -> bool {
    o.get("timezone_id")
        .is_none_or(|z| z.is_null() || z.is_i64())
        && o.get("timezone_name")
            .is_none_or(|z| z.is_null() || z.is_string())
}

/// Validates one custom field value against its definition, with the API v2 shapes of the
/// migration guide's custom-field table: text types take a string; `double` a number;
/// `monetary` `{value, currency}`; `date` `YYYY-MM-DD`; `daterange` `{value, until}`; `time`
/// `{value, timezone_id?, timezone_name?}`; `timerange` `{value, until, timezone_id?,
/// timezone_name?}`; `enum` an option id; `set` a non-empty list of option ids (`[]` is a
/// validation error, clear with `null`); `address` `{value, route?, locality?, ...}`; `user`,
/// `org`, `people` an integer id.
pub(crate) fn check_custom_value(f: &FieldDef, v: &Value) -> Result<(), Invalid> {
    if v.is_null() {
        return Ok(());
    }
    let bad = || {
        format!(
            "Validation failed: custom_fields.{}: invalid value for a {} field",
            f.key, f.field_type
        )
    };
    let option = |x: &Value| {
        x.as_i64()
            .is_some_and(|id| f.options.iter().any(|(o, _)| *o == id))
    };
    let ok = match f.field_type.as_str() {
        "varchar" | "varchar_auto" | "text" | "phone" => v.is_string(),
        "double" => v.is_number(),
        "user" | "org" | "people" => v.as_i64().is_some_and(|id| id > 0),
        "date" => is_date(v),
        "daterange" => object_with(v, &["value", "until"], &[]).is_some_and(|o| {
            is_date(&o["value"])
                && is_date(&o["until"])
                && o["value"].as_str() <= o["until"].as_str()
        }),
        "time" => object_with(v, &["value"], &["timezone_id", "timezone_name"])
            .is_some_and(|o| is_time(&o["value"]) && zone_ok(&o)),
        "timerange" => object_with(v, &["value", "until"], &["timezone_id", "timezone_name"])
            .is_some_and(|o| is_time(&o["value"]) && is_time(&o["until"]) && zone_ok(&o)),
        "enum" => option(v),
        "set" => v
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(option)),
        "monetary" => object_with(v, &["value"], &["currency"]).is_some_and(|o| {
            o["value"].is_number()
                && o.get("currency").is_none_or(|c| {
                    c.as_str()
                        .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
                })
        }),
        "address" => object_with(v, &["value"], ADDRESS_SUBFIELDS).is_some_and(|o| {
            o.values().all(|part| part.is_string() || part.is_null()) && o["value"].is_string()
        }),
        _ => v.is_object() || v.is_string(),
    };
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.split_once(' ') {
        Some((f, l)) => (Some(f.to_owned()), Some(l.trim().to_owned())),
        None => (Some(name.to_owned()), None),
    }
}

/// Applies a v2 POST/PATCH body to a person. `users` are valid owner ids.
pub(crate) fn apply_person_body(
    p: &mut Person,
    body: &Map<String, Value>,
    fields: &[FieldDef],
    users: &[i64],
    create: bool,
) -> Result<(), Invalid> {
    let mut first = None;
    let mut last = None;
    let mut name_set = false;
    for (k, v) in body {
        match k.as_str() {
            "name" => {
                let n = want_str(k, v)?.trim();
                if n.is_empty() {
                    return Err(
                        "Validation failed: name: Parameter 'name' must not be empty".into(),
                    );
                }
                p.name = n.to_owned();
                name_set = true;
            }
            "first_name" => first = Some(want_opt_str(k, v)?),
            "last_name" => last = Some(want_opt_str(k, v)?),
            "owner_id" => {
                let id = want_int(k, v)?;
                if !users.contains(&id) {
                    return Err(format!(
                        "Validation failed: owner_id: user {id} does not exist"
                    ));
                }
                p.owner_id = id;
            }
            "org_id" => p.org_id = want_opt_int(k, v)?,
            "add_time" if create => {
                let s = want_str(k, v)?;
                p.add_time = parse_time(s)
                    .ok_or_else(|| format!("Validation failed: add_time: {s:?} is not RFC 3339"))?;
            }
            "emails" => p.emails = channels(k, v)?,
            "phones" => p.phones = channels(k, v)?,
            "im" => p.im = channels(k, v)?,
            "visible_to" => {
                let n = want_int(k, v)?;
                if ![1, 3, 5, 7].contains(&n) {
                    return Err("Validation failed: visible_to: must be one of 1, 3, 5, 7".into());
                }
                p.visible_to = n;
            }
            "label_ids" => p.label_ids = want_int_array(k, v)?,
            "marketing_status" => {
                let s = want_str(k, v)?;
                if !["no_consent", "unsubscribed", "subscribed", "archived"].contains(&s) {
                    return Err(format!(
                        "Validation failed: marketing_status: {s:?} is not allowed"
                    ));
                }
                p.marketing_status = Some(s.to_owned());
            }
            "notes" => p.notes = want_opt_str(k, v)?,
            "birthday" => p.birthday = want_opt_str(k, v)?,
            "job_title" => p.job_title = want_opt_str(k, v)?,
            "postal_address" => {
                if !(v.is_object() || v.is_null()) {
                    return Err("Validation failed: postal_address: must be an object".into());
                }
                p.postal_address = if v.is_null() { None } else { Some(v.clone()) };
            }
            "custom_fields" => {
                let o = v
                    .as_object()
                    .ok_or("Validation failed: custom_fields: must be an object")?;
                for (key, val) in o {
                    let f = fields.iter().find(|f| &f.key == key).ok_or_else(|| {
                        format!("Validation failed: custom_fields: unknown custom field '{key}'")
                    })?;
                    check_custom_value(f, val)?;
                    if val.is_null() {
                        p.custom_fields.remove(key);
                    } else {
                        p.custom_fields.insert(key.clone(), val.clone());
                    }
                }
            }
            other => return Err(format!("Validation failed: unknown parameter '{other}'")),
        }
    }
    if name_set {
        let (f, l) = split_name(&p.name);
        p.first_name = first.clone().unwrap_or(f);
        p.last_name = last.clone().unwrap_or(l);
    } else if first.is_some() || last.is_some() {
        if let Some(f) = first {
            p.first_name = f;
        }
        if let Some(l) = last {
            p.last_name = l;
        }
        let joined = [p.first_name.as_deref(), p.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        if !joined.is_empty() {
            p.name = joined;
        }
    }
    if create && p.name.is_empty() {
        return Err("Validation failed: name: Parameter 'name' is required".into());
    }
    Ok(())
}

/// A deal.
#[derive(Clone, Debug)]
pub(crate) struct Deal {
    pub(crate) id: i64,
    pub(crate) title: String,
    pub(crate) creator_user_id: i64,
    pub(crate) owner_id: i64,
    pub(crate) value: f64,
    pub(crate) currency: String,
    pub(crate) person_id: Option<i64>,
    pub(crate) org_id: Option<i64>,
    pub(crate) pipeline_id: i64,
    pub(crate) stage_id: i64,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
    pub(crate) stage_change_time: Option<i64>,
    pub(crate) is_deleted: bool,
    pub(crate) is_archived: bool,
    pub(crate) status: String,
    pub(crate) probability: Option<f64>,
    pub(crate) lost_reason: Option<String>,
    pub(crate) visible_to: i64,
    pub(crate) close_time: Option<i64>,
    pub(crate) won_time: Option<i64>,
    pub(crate) lost_time: Option<i64>,
    pub(crate) expected_close_date: Option<String>,
    pub(crate) label_ids: Vec<i64>,
    pub(crate) custom_fields: Map<String, Value>,
    /// The lead this deal was converted from (`POST /api/v2/leads/{id}/convert/deal`).
    pub(crate) lead_id: Option<String>,
}

impl Deal {
    pub(crate) fn v2_json(&self) -> Value {
        let mut m = Map::with_capacity(32);
        m.insert("id".into(), json!(self.id));
        m.insert("title".into(), json!(self.title));
        m.insert("creator_user_id".into(), json!(self.creator_user_id));
        m.insert("owner_id".into(), json!(self.owner_id));
        m.insert("value".into(), json!(self.value));
        if let Some(p) = self.person_id {
            m.insert("person_id".into(), json!(p));
        }
        if let Some(o) = self.org_id {
            m.insert("org_id".into(), json!(o));
        }
        m.insert("pipeline_id".into(), json!(self.pipeline_id));
        m.insert("stage_id".into(), json!(self.stage_id));
        m.insert("currency".into(), json!(self.currency));
        m.insert("add_time".into(), json!(v2_time(self.add_time)));
        m.insert("update_time".into(), json!(v2_time(self.update_time)));
        if let Some(t) = self.stage_change_time {
            m.insert("stage_change_time".into(), json!(v2_time(t)));
        }
        m.insert("is_deleted".into(), json!(self.is_deleted));
        m.insert("is_archived".into(), json!(self.is_archived));
        m.insert("status".into(), json!(self.status));
        m.insert("probability".into(), json!(self.probability));
        m.insert("lost_reason".into(), json!(self.lost_reason));
        m.insert("visible_to".into(), json!(self.visible_to));
        m.insert("close_time".into(), json!(self.close_time.map(v2_time)));
        if let Some(t) = self.won_time {
            m.insert("won_time".into(), json!(v2_time(t)));
        }
        if let Some(t) = self.lost_time {
            m.insert("lost_time".into(), json!(v2_time(t)));
        }
        if let Some(d) = &self.expected_close_date {
            m.insert("expected_close_date".into(), json!(d));
        }
        m.insert("label_ids".into(), json!(self.label_ids));
        // Pipedrive names the lead a deal was converted from (`lead_id`); shown only on
        // converted deals, so every other deal reads as before.
        if let Some(lead) = &self.lead_id {
            m.insert("lead_id".into(), json!(lead));
        }
        m.insert("origin".into(), json!("API"));
        m.insert("origin_id".into(), Value::Null);
        m.insert("channel".into(), Value::Null);
        m.insert("channel_id".into(), Value::Null);
        m.insert("arr".into(), Value::Null);
        m.insert("mrr".into(), Value::Null);
        m.insert("acv".into(), Value::Null);
        m.insert(
            "custom_fields".into(),
            Value::Object(self.custom_fields.clone()),
        );
        Value::Object(m)
    }
}

/// An activity.
#[derive(Clone, Debug)]
pub(crate) struct Activity {
    pub(crate) id: i64,
    pub(crate) subject: String,
    pub(crate) kind: String,
    pub(crate) owner_id: i64,
    pub(crate) creator_user_id: i64,
    pub(crate) is_deleted: bool,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
    pub(crate) deal_id: Option<i64>,
    pub(crate) lead_id: Option<String>,
    pub(crate) person_id: Option<i64>,
    pub(crate) org_id: Option<i64>,
    pub(crate) project_id: Option<i64>,
    pub(crate) due_date: Option<String>,
    pub(crate) due_time: Option<String>,
    pub(crate) duration: Option<String>,
    pub(crate) busy: bool,
    pub(crate) done: bool,
    pub(crate) marked_as_done_time: Option<i64>,
    pub(crate) location: Option<Value>,
    pub(crate) participants: Vec<(i64, bool)>,
    pub(crate) attendees: Vec<Value>,
    pub(crate) public_description: Option<String>,
    pub(crate) priority: Option<i64>,
    pub(crate) note: Option<String>,
}

impl Activity {
    pub(crate) fn v2_json(&self) -> Value {
        let mut m = Map::with_capacity(28);
        m.insert("id".into(), json!(self.id));
        m.insert("subject".into(), json!(self.subject));
        m.insert("type".into(), json!(self.kind));
        m.insert("owner_id".into(), json!(self.owner_id));
        m.insert("creator_user_id".into(), json!(self.creator_user_id));
        m.insert("is_deleted".into(), json!(self.is_deleted));
        m.insert("add_time".into(), json!(v2_time(self.add_time)));
        m.insert("update_time".into(), json!(v2_time(self.update_time)));
        let mut opt_int = |k: &str, v: Option<i64>| {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        };
        opt_int("deal_id", self.deal_id);
        opt_int("person_id", self.person_id);
        opt_int("org_id", self.org_id);
        opt_int("project_id", self.project_id);
        opt_int("priority", self.priority);
        let mut opt_str = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        };
        opt_str("lead_id", &self.lead_id);
        opt_str("due_date", &self.due_date);
        opt_str("due_time", &self.due_time);
        opt_str("duration", &self.duration);
        opt_str("public_description", &self.public_description);
        opt_str("note", &self.note);
        m.insert("busy".into(), json!(self.busy));
        m.insert("done".into(), json!(self.done));
        if let Some(t) = self.marked_as_done_time {
            m.insert("marked_as_done_time".into(), json!(v2_time(t)));
        }
        if let Some(l) = &self.location {
            m.insert("location".into(), l.clone());
        }
        m.insert(
            "participants".into(),
            Value::Array(
                self.participants
                    .iter()
                    .map(|(id, primary)| json!({"person_id": id, "primary": primary}))
                    .collect(),
            ),
        );
        m.insert("attendees".into(), Value::Array(self.attendees.clone()));
        Value::Object(m)
    }
}

/// Applies a v2 deal body. `stage_pipeline` maps a stage id to its pipeline id.
pub(crate) fn apply_deal_body(
    d: &mut Deal,
    body: &Map<String, Value>,
    users: &[i64],
    stage_pipeline: &dyn Fn(i64) -> Option<i64>,
    person_exists: &dyn Fn(i64) -> bool,
    now: i64,
    create: bool,
) -> Result<(), Invalid> {
    let mut stage_given = false;
    for (k, v) in body {
        match k.as_str() {
            "title" => {
                let t = want_str(k, v)?.trim();
                if t.is_empty() {
                    return Err(
                        "Validation failed: title: Parameter 'title' must not be empty".into(),
                    );
                }
                d.title = t.to_owned();
            }
            "owner_id" => {
                let id = want_int(k, v)?;
                if !users.contains(&id) {
                    return Err(format!(
                        "Validation failed: owner_id: user {id} does not exist"
                    ));
                }
                d.owner_id = id;
            }
            "person_id" => {
                let id = want_opt_int(k, v)?;
                if let Some(id) = id {
                    if !person_exists(id) {
                        return Err(format!(
                            "Validation failed: person_id: person {id} does not exist"
                        ));
                    }
                }
                d.person_id = id;
            }
            "org_id" => d.org_id = want_opt_int(k, v)?,
            "pipeline_id" => {
                d.pipeline_id = want_int(k, v)?;
            }
            "stage_id" => {
                let s = want_int(k, v)?;
                let pipeline = stage_pipeline(s).ok_or_else(|| {
                    format!("Validation failed: stage_id: stage {s} does not exist")
                })?;
                if d.stage_id != s {
                    d.stage_change_time = Some(now);
                }
                d.stage_id = s;
                d.pipeline_id = pipeline;
                stage_given = true;
            }
            "value" => {
                d.value = v
                    .as_f64()
                    .ok_or("Validation failed: value: Parameter 'value' must be a number")?;
            }
            "currency" => d.currency = want_str(k, v)?.to_owned(),
            "status" => {
                let s = want_str(k, v)?;
                if !["open", "won", "lost", "deleted"].contains(&s) {
                    return Err(format!("Validation failed: status: {s:?} is not allowed"));
                }
                if s != d.status {
                    match s {
                        "won" => {
                            d.won_time = Some(now);
                            d.close_time = Some(now);
                        }
                        "lost" => {
                            d.lost_time = Some(now);
                            d.close_time = Some(now);
                        }
                        _ => d.close_time = None,
                    }
                }
                d.status = s.to_owned();
            }
            "probability" => {
                d.probability = if v.is_null() {
                    None
                } else {
                    Some(
                        v.as_f64()
                            .ok_or("Validation failed: probability: must be a number")?,
                    )
                };
            }
            "lost_reason" => d.lost_reason = want_opt_str(k, v)?,
            "visible_to" => d.visible_to = want_int(k, v)?,
            "close_time" | "won_time" | "lost_time" => {
                let t = match want_opt_str(k, v)? {
                    None => None,
                    Some(s) => Some(
                        parse_time(&s)
                            .ok_or_else(|| format!("Validation failed: {k}: invalid time"))?,
                    ),
                };
                match k.as_str() {
                    "close_time" => d.close_time = t,
                    "won_time" => d.won_time = t,
                    _ => d.lost_time = t,
                }
            }
            "expected_close_date" => {
                let s = want_opt_str(k, v)?;
                if let Some(s) = &s {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                        "Validation failed: expected_close_date: must be YYYY-MM-DD".to_owned()
                    })?;
                }
                d.expected_close_date = s;
            }
            "label_ids" => d.label_ids = want_int_array(k, v)?,
            "is_archived" => d.is_archived = want_bool(k, v)?,
            "is_deleted" => {
                if want_bool(k, v)? {
                    return Err("Validation failed: is_deleted: use DELETE to delete a deal".into());
                }
            }
            "archive_time" => {
                want_opt_str(k, v)?;
            }
            "custom_fields" => {
                let o = v
                    .as_object()
                    .ok_or("Validation failed: custom_fields: must be an object")?;
                for (key, val) in o {
                    if val.is_null() {
                        d.custom_fields.remove(key);
                    } else {
                        d.custom_fields.insert(key.clone(), val.clone());
                    }
                }
            }
            other => return Err(format!("Validation failed: unknown parameter '{other}'")),
        }
    }
    if create && d.title.is_empty() {
        return Err("Validation failed: title: Parameter 'title' is required".into());
    }
    if create && !stage_given {
        d.stage_change_time = None;
    }
    Ok(())
}

/// Applies a v2 activity body.
pub(crate) fn apply_activity_body(
    a: &mut Activity,
    body: &Map<String, Value>,
    users: &[i64],
    now: i64,
) -> Result<(), Invalid> {
    let mut person_given = None;
    let mut participants_given = false;
    for (k, v) in body {
        match k.as_str() {
            "subject" => a.subject = want_str(k, v)?.to_owned(),
            "type" => a.kind = want_str(k, v)?.to_owned(),
            "owner_id" => {
                let id = want_int(k, v)?;
                if !users.contains(&id) {
                    return Err(format!(
                        "Validation failed: owner_id: user {id} does not exist"
                    ));
                }
                a.owner_id = id;
            }
            "deal_id" => a.deal_id = want_opt_int(k, v)?,
            "lead_id" => a.lead_id = want_opt_str(k, v)?,
            "person_id" => person_given = Some(want_opt_int(k, v)?),
            "org_id" => a.org_id = want_opt_int(k, v)?,
            "project_id" => a.project_id = want_opt_int(k, v)?,
            "due_date" => a.due_date = want_opt_str(k, v)?,
            "due_time" => a.due_time = want_opt_str(k, v)?,
            "duration" => a.duration = want_opt_str(k, v)?,
            "busy" => a.busy = want_bool(k, v)?,
            "done" => {
                let done = want_bool(k, v)?;
                if done && !a.done {
                    a.marked_as_done_time = Some(now);
                }
                if !done {
                    a.marked_as_done_time = None;
                }
                a.done = done;
            }
            "location" => {
                if !(v.is_object() || v.is_null()) {
                    return Err("Validation failed: location: must be an object".into());
                }
                a.location = if v.is_null() { None } else { Some(v.clone()) };
            }
            "participants" => {
                let arr = v
                    .as_array()
                    .ok_or("Validation failed: participants: must be an array")?;
                let mut ps = Vec::new();
                for p in arr {
                    let id = p
                        .get("person_id")
                        .ok_or_else(|| {
                            "Validation failed: participants: person_id is required".to_owned()
                        })
                        .and_then(|x| want_int("participants.person_id", x))?;
                    let primary = match p.get("primary") {
                        None | Some(Value::Null) => false,
                        Some(x) => want_bool("participants.primary", x)?,
                    };
                    ps.push((id, primary));
                }
                if !ps.is_empty() && !ps.iter().any(|p| p.1) {
                    ps[0].1 = true;
                }
                a.participants = ps;
                participants_given = true;
            }
            "attendees" => {
                a.attendees = v
                    .as_array()
                    .ok_or("Validation failed: attendees: must be an array")?
                    .clone();
            }
            "public_description" => a.public_description = want_opt_str(k, v)?,
            "priority" => a.priority = want_opt_int(k, v)?,
            "note" => a.note = want_opt_str(k, v)?,
            other => return Err(format!("Validation failed: unknown parameter '{other}'")),
        }
    }
    if participants_given {
        a.person_id = a.participants.iter().find(|p| p.1).map(|p| p.0);
    } else if let Some(pid) = person_given {
        a.person_id = pid;
        a.participants = pid.map(|id| vec![(id, true)]).unwrap_or_default();
    }
    Ok(())
}

/// Top-level keys whose values differ between two v2 objects, with the old values
/// (`custom_fields` diffed one level down). `update_time` is left out.
pub(crate) fn previous_values(old: &Value, new: &Value) -> Map<String, Value> {
    let mut prev = Map::new();
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return prev;
    };
    for (k, ov) in o {
        if k == "update_time" {
            continue;
        }
        let nv = n.get(k).unwrap_or(&Value::Null);
        if ov == nv {
            continue;
        }
        if k == "custom_fields" {
            let empty = Map::new();
            let oc = ov.as_object().unwrap_or(&empty);
            let nc = nv.as_object().unwrap_or(&empty);
            let mut cf = Map::new();
            for (ck, cv) in oc {
                if nc.get(ck).unwrap_or(&Value::Null) != cv {
                    cf.insert(ck.clone(), cv.clone());
                }
            }
            for ck in nc.keys() {
                if !oc.contains_key(ck) {
                    cf.insert(ck.clone(), Value::Null);
                }
            }
            prev.insert(k.clone(), Value::Object(cf));
        } else {
            prev.insert(k.clone(), ov.clone());
        }
    }
    for k in n.keys() {
        if !o.contains_key(k) && k != "update_time" {
            prev.insert(k.clone(), Value::Null);
        }
    }
    prev
}

impl crate::table::Record for Person {
    fn id(&self) -> i64 {
        self.id
    }

    fn update_time(&self) -> i64 {
        self.update_time
    }
}

impl crate::table::Record for Deal {
    fn id(&self) -> i64 {
        self.id
    }

    fn update_time(&self) -> i64 {
        self.update_time
    }
}

impl crate::table::Record for Activity {
    fn id(&self) -> i64 {
        self.id
    }

    fn update_time(&self) -> i64 {
        self.update_time
    }
}
