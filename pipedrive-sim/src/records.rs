//! The objects beyond persons, deals and activities that the live mirror extracts:
//! organizations and products (API v2), leads, notes and files (API v1), with their JSON, the
//! validation of their write bodies, and the company's create/change/delete operations on them
//! (each reporting the webhook [`Event`] Pipedrive would send).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::{
    check_custom_value, parse_time, previous_values, v1_time, v2_time, want_bool, want_int,
    want_int_array, want_opt_int, want_opt_str, want_str, FieldDef, Invalid, ADDRESS_SUBFIELDS,
};
use crate::state::{Company, Event};
use crate::table::Record;
use rand::Rng;

macro_rules! record {
    ($t:ty, $id:ident) => {
        impl Record for $t {
            fn id(&self) -> i64 {
                self.$id
            }
            fn update_time(&self) -> i64 {
                self.update_time
            }
        }
    };
}

/// An organization.
#[derive(Clone, Debug)]
pub(crate) struct Organization {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) owner_id: i64,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
    pub(crate) is_deleted: bool,
    pub(crate) visible_to: i64,
    pub(crate) address: Option<Map<String, Value>>,
    pub(crate) label_ids: Vec<i64>,
    pub(crate) website: Option<String>,
    pub(crate) linkedin: Option<String>,
    pub(crate) industry: Option<i64>,
    pub(crate) annual_revenue: Option<i64>,
    pub(crate) employee_count: Option<i64>,
    /// Only set values; unset custom fields render as `null`.
    pub(crate) custom_fields: BTreeMap<String, Value>,
}
record!(Organization, id);

impl Organization {
    pub(crate) fn new(id: i64, owner_id: i64, now: i64) -> Self {
        Organization {
            id,
            name: String::new(),
            owner_id,
            add_time: now,
            update_time: now,
            is_deleted: false,
            visible_to: 3,
            address: None,
            label_ids: Vec::new(),
            website: None,
            linkedin: None,
            industry: None,
            annual_revenue: None,
            employee_count: None,
            custom_fields: BTreeMap::new(),
        }
    }

    /// The v2 object; every custom field key of the company is present (`null` when unset).
    pub(crate) fn v2_json(&self, keys: &[String]) -> Value {
        let mut m = Map::with_capacity(16);
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        m.insert("owner_id".into(), json!(self.owner_id));
        m.insert("add_time".into(), json!(v2_time(self.add_time)));
        m.insert("update_time".into(), json!(v2_time(self.update_time)));
        m.insert("is_deleted".into(), json!(self.is_deleted));
        m.insert("visible_to".into(), json!(self.visible_to));
        if let Some(a) = &self.address {
            m.insert("address".into(), Value::Object(a.clone()));
        }
        m.insert("label_ids".into(), json!(self.label_ids));
        m.insert("website".into(), json!(self.website));
        m.insert("linkedin".into(), json!(self.linkedin));
        m.insert("industry".into(), json!(self.industry));
        m.insert("annual_revenue".into(), json!(self.annual_revenue));
        m.insert("employee_count".into(), json!(self.employee_count));
        m.insert(
            "custom_fields".into(),
            custom_json(&self.custom_fields, keys),
        );
        Value::Object(m)
    }
}

fn custom_json(values: &BTreeMap<String, Value>, keys: &[String]) -> Value {
    Value::Object(
        keys.iter()
            .map(|k| (k.clone(), values.get(k).cloned().unwrap_or(Value::Null)))
            .collect(),
    )
}

/// Applies a body's `custom_fields` (known keys only, values checked against their type).
fn apply_custom(
    into: &mut BTreeMap<String, Value>,
    v: &Value,
    fields: &[FieldDef],
) -> Result<(), Invalid> {
    let o = v
        .as_object()
        .ok_or("Validation failed: custom_fields: must be an object")?;
    for (key, val) in o {
        let f = fields.iter().find(|f| &f.key == key).ok_or_else(|| {
            format!("Validation failed: custom_fields: unknown custom field '{key}'")
        })?;
        check_custom_value(f, val)?;
        if val.is_null() {
            into.remove(key);
        } else {
            into.insert(key.clone(), val.clone());
        }
    }
    Ok(())
}

fn owner(k: &str, v: &Value, users: &[i64]) -> Result<i64, Invalid> {
    let id = want_int(k, v)?;
    if !users.contains(&id) {
        return Err(format!("Validation failed: {k}: user {id} does not exist"));
    }
    Ok(id)
}

fn visible_to(k: &str, v: &Value) -> Result<i64, Invalid> {
    let n = want_int(k, v)?;
    if ![1, 3, 5, 7].contains(&n) {
        return Err(format!("Validation failed: {k}: must be one of 1, 3, 5, 7"));
    }
    Ok(n)
}

/// Applies a v2 organization body.
pub(crate) fn apply_org_body(
    o: &mut Organization,
    body: &Map<String, Value>,
    fields: &[FieldDef],
    users: &[i64],
    create: bool,
) -> Result<(), Invalid> {
    for (k, v) in body {
        match k.as_str() {
            "name" => {
                let n = want_str(k, v)?.trim();
                if n.is_empty() {
                    return Err(
                        "Validation failed: name: Parameter 'name' must not be empty".into(),
                    );
                }
                o.name = n.to_owned();
            }
            "owner_id" => o.owner_id = owner(k, v, users)?,
            "add_time" if create => {
                let s = want_str(k, v)?;
                o.add_time = parse_time(s)
                    .ok_or_else(|| format!("Validation failed: add_time: {s:?} is not RFC 3339"))?;
            }
            "visible_to" => o.visible_to = visible_to(k, v)?,
            "label_ids" => o.label_ids = want_int_array(k, v)?,
            "address" => {
                if v.is_null() {
                    o.address = None;
                    continue;
                }
                let a = v
                    .as_object()
                    .filter(|a| {
                        a.get("value").is_some_and(Value::is_string)
                            && a.iter().all(|(k, x)| {
                                (k == "value" || ADDRESS_SUBFIELDS.contains(&k.as_str()))
                                    && (x.is_string() || x.is_null())
                            })
                    })
                    .ok_or("Validation failed: address: must be an object with a string 'value'")?;
                o.address = Some(
                    a.iter()
                        .filter(|(_, x)| x.is_string())
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect(),
                );
            }
            "website" => o.website = want_opt_str(k, v)?,
            "linkedin" => o.linkedin = want_opt_str(k, v)?,
            "industry" => o.industry = want_opt_int(k, v)?,
            "annual_revenue" => o.annual_revenue = want_opt_int(k, v)?,
            "employee_count" => o.employee_count = want_opt_int(k, v)?,
            "custom_fields" => apply_custom(&mut o.custom_fields, v, fields)?,
            other => return Err(format!("Validation failed: unknown parameter '{other}'")),
        }
    }
    if create && o.name.is_empty() {
        return Err("Validation failed: name: Parameter 'name' is required".into());
    }
    Ok(())
}

/// One price of a product.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Price {
    pub(crate) price: f64,
    pub(crate) currency: String,
    pub(crate) cost: f64,
    pub(crate) direct_cost: Option<f64>,
    pub(crate) notes: String,
}

/// A product.
#[derive(Clone, Debug)]
pub(crate) struct Product {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) code: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) unit: Option<String>,
    pub(crate) tax: f64,
    pub(crate) category: Option<String>,
    pub(crate) owner_id: i64,
    pub(crate) is_linkable: bool,
    pub(crate) is_deleted: bool,
    pub(crate) visible_to: i64,
    pub(crate) prices: Vec<Price>,
    pub(crate) billing_frequency: String,
    pub(crate) billing_frequency_cycles: Option<i64>,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
    pub(crate) custom_fields: BTreeMap<String, Value>,
}
record!(Product, id);

impl Product {
    pub(crate) fn new(id: i64, owner_id: i64, now: i64) -> Self {
        Product {
            id,
            name: String::new(),
            code: None,
            description: None,
            unit: None,
            tax: 0.0,
            category: None,
            owner_id,
            is_linkable: true,
            is_deleted: false,
            visible_to: 3,
            prices: Vec::new(),
            billing_frequency: "one-time".into(),
            billing_frequency_cycles: None,
            add_time: now,
            update_time: now,
            custom_fields: BTreeMap::new(),
        }
    }

    pub(crate) fn v2_json(&self, keys: &[String]) -> Value {
        let mut m = Map::with_capacity(18);
        m.insert("id".into(), json!(self.id));
        m.insert("name".into(), json!(self.name));
        for (k, v) in [
            ("code", &self.code),
            ("unit", &self.unit),
            ("description", &self.description),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        m.insert("tax".into(), json!(self.tax));
        m.insert("is_deleted".into(), json!(self.is_deleted));
        m.insert("is_linkable".into(), json!(self.is_linkable));
        m.insert("visible_to".into(), json!(self.visible_to));
        m.insert("owner_id".into(), json!(self.owner_id));
        m.insert("add_time".into(), json!(v2_time(self.add_time)));
        m.insert("update_time".into(), json!(v2_time(self.update_time)));
        m.insert("category".into(), json!(self.category));
        m.insert(
            "custom_fields".into(),
            custom_json(&self.custom_fields, keys),
        );
        m.insert("billing_frequency".into(), json!(self.billing_frequency));
        m.insert(
            "billing_frequency_cycles".into(),
            json!(self.billing_frequency_cycles),
        );
        m.insert(
            "prices".into(),
            Value::Array(
                self.prices
                    .iter()
                    .map(|p| {
                        json!({"product_id": self.id, "price": p.price, "currency": p.currency,
                               "cost": p.cost, "direct_cost": p.direct_cost, "notes": p.notes})
                    })
                    .collect(),
            ),
        );
        Value::Object(m)
    }
}

fn want_number(k: &str, v: &Value) -> Result<f64, Invalid> {
    v.as_f64()
        .ok_or_else(|| format!("Validation failed: {k}: Parameter '{k}' must be a number"))
}

fn prices(v: &Value) -> Result<Vec<Price>, Invalid> {
    let arr = v
        .as_array()
        .ok_or("Validation failed: prices: must be an array of objects")?;
    arr.iter()
        .map(|p| {
            let o = p
                .as_object()
                .ok_or("Validation failed: prices: must be an array of objects")?;
            let num = |k: &str| match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => want_number(&format!("prices.{k}"), x).map(Some),
            };
            let currency = match o.get("currency") {
                Some(c) => want_str("prices.currency", c)?.to_owned(),
                None => return Err("Validation failed: prices.currency: is required".into()),
            };
            Ok(Price {
                price: num("price")?.unwrap_or(0.0),
                currency,
                cost: num("cost")?.unwrap_or(0.0),
                direct_cost: num("direct_cost")?,
                notes: match o.get("notes") {
                    None | Some(Value::Null) => String::new(),
                    Some(n) => want_str("prices.notes", n)?.to_owned(),
                },
            })
        })
        .collect()
}

/// Applies a v2 product body (`prices` replaces the whole array, as documented).
pub(crate) fn apply_product_body(
    p: &mut Product,
    body: &Map<String, Value>,
    fields: &[FieldDef],
    users: &[i64],
    create: bool,
) -> Result<(), Invalid> {
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
            }
            "code" => p.code = want_opt_str(k, v)?,
            "description" => p.description = want_opt_str(k, v)?,
            "unit" => p.unit = want_opt_str(k, v)?,
            "tax" => p.tax = want_number(k, v)?,
            "category" => {
                p.category = match v {
                    Value::Null => None,
                    Value::Number(n) => Some(n.to_string()),
                    _ => Some(want_str(k, v)?.to_owned()),
                }
            }
            "owner_id" => p.owner_id = owner(k, v, users)?,
            "is_linkable" => p.is_linkable = want_bool(k, v)?,
            "visible_to" => p.visible_to = visible_to(k, v)?,
            "prices" => p.prices = prices(v)?,
            "billing_frequency" => {
                let s = want_str(k, v)?;
                const ALLOWED: &[&str] = &[
                    "one-time",
                    "annually",
                    "semi-annually",
                    "quarterly",
                    "monthly",
                    "weekly",
                ];
                if !ALLOWED.contains(&s) {
                    return Err(format!(
                        "Validation failed: billing_frequency: {s:?} is not allowed"
                    ));
                }
                p.billing_frequency = s.to_owned();
            }
            "billing_frequency_cycles" => p.billing_frequency_cycles = want_opt_int(k, v)?,
            "custom_fields" => apply_custom(&mut p.custom_fields, v, fields)?,
            other => return Err(format!("Validation failed: unknown parameter '{other}'")),
        }
    }
    if create && p.name.is_empty() {
        return Err("Validation failed: name: Parameter 'name' is required".into());
    }
    Ok(())
}

/// A lead (API v1 only). `seq` orders leads by creation and keys the table; `id` is the UUID
/// clients see.
#[derive(Clone, Debug)]
pub(crate) struct Lead {
    pub(crate) seq: i64,
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) owner_id: i64,
    pub(crate) creator_id: i64,
    pub(crate) label_ids: Vec<String>,
    pub(crate) person_id: Option<i64>,
    pub(crate) organization_id: Option<i64>,
    pub(crate) is_archived: bool,
    pub(crate) was_seen: bool,
    pub(crate) value: Option<(f64, String)>,
    pub(crate) expected_close_date: Option<String>,
    pub(crate) visible_to: String,
    pub(crate) origin_id: Option<String>,
    pub(crate) channel: Option<i64>,
    pub(crate) channel_id: Option<String>,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
}
record!(Lead, seq);

impl Lead {
    pub(crate) fn v1_json(&self, company_id: i64) -> Value {
        json!({
            "id": self.id, "title": self.title, "owner_id": self.owner_id, "creator_id": self.creator_id,
            "label_ids": self.label_ids, "person_id": self.person_id, "organization_id": self.organization_id,
            "source_name": "API", "origin": "API", "origin_id": self.origin_id, "channel": self.channel,
            "channel_id": self.channel_id, "source_deal_id": null, "is_archived": self.is_archived,
            "was_seen": self.was_seen,
            "value": self.value.as_ref().map(|(a, c)| json!({"amount": a, "currency": c})),
            "expected_close_date": self.expected_close_date, "next_activity_id": null,
            "add_time": v2_time(self.add_time), "update_time": v2_time(self.update_time),
            "visible_to": self.visible_to,
            "cc_email": format!("sim-company+{company_id}+lead{}@pipedrivemail.com", self.seq),
        })
    }
}

/// Applies a v1 lead body (`POST /v1/leads`, `PATCH /v1/leads/{id}`).
pub(crate) fn apply_lead_body(
    l: &mut Lead,
    body: &Map<String, Value>,
    users: &[i64],
    labels: &[String],
    create: bool,
) -> Result<(), Invalid> {
    for (k, v) in body {
        match k.as_str() {
            "title" => {
                let t = want_str(k, v)?.trim();
                if t.is_empty() {
                    return Err("Validation failed: title: must not be empty".into());
                }
                l.title = t.to_owned();
            }
            "owner_id" => l.owner_id = owner(k, v, users)?,
            "label_ids" => {
                let ids = v
                    .as_array()
                    .ok_or("Validation failed: label_ids: must be an array of UUIDs")?
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .filter(|s| labels.iter().any(|l| l == s))
                            .map(str::to_owned)
                            .ok_or_else(|| {
                                format!("Validation failed: label_ids: unknown label {x}")
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                l.label_ids = ids;
            }
            "person_id" => l.person_id = want_opt_int(k, v)?,
            "organization_id" => l.organization_id = want_opt_int(k, v)?,
            "is_archived" if !create => l.is_archived = want_bool(k, v)?,
            "was_seen" => l.was_seen = want_bool(k, v)?,
            "value" => {
                l.value = match v {
                    Value::Null => None,
                    Value::Object(o) => {
                        let amount = o.get("amount").and_then(Value::as_f64);
                        let currency = o.get("currency").and_then(Value::as_str);
                        match (amount, currency) {
                            (Some(a), Some(c)) if o.len() == 2 => Some((a, c.to_owned())),
                            _ => {
                                return Err(
                                    "Validation failed: value: must be {amount, currency}".into()
                                )
                            }
                        }
                    }
                    _ => return Err("Validation failed: value: must be {amount, currency}".into()),
                }
            }
            "expected_close_date" => {
                let s = want_opt_str(k, v)?;
                if let Some(d) = &s {
                    chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                        "Validation failed: expected_close_date: must be YYYY-MM-DD".to_owned()
                    })?;
                }
                l.expected_close_date = s;
            }
            "visible_to" => {
                let s = want_str(k, v)?;
                if !["1", "3", "5", "7"].contains(&s) {
                    return Err("Validation failed: visible_to: must be one of 1, 3, 5, 7".into());
                }
                l.visible_to = s.to_owned();
            }
            "origin_id" if create => l.origin_id = want_opt_str(k, v)?,
            "channel" => l.channel = want_opt_int(k, v)?,
            "channel_id" => l.channel_id = want_opt_str(k, v)?,
            other => return Err(format!("Validation failed: unknown parameter '{other}'")),
        }
    }
    if create && l.title.is_empty() {
        return Err("Validation failed: title: is required".into());
    }
    if l.person_id.is_none() && l.organization_id.is_none() {
        return Err(
            "Validation failed: a lead must be linked to a person or an organization".into(),
        );
    }
    Ok(())
}

/// A note (API v1 only).
#[derive(Clone, Debug)]
pub(crate) struct Note {
    pub(crate) id: i64,
    pub(crate) content: String,
    pub(crate) user_id: i64,
    pub(crate) last_update_user_id: i64,
    pub(crate) deal_id: Option<i64>,
    pub(crate) person_id: Option<i64>,
    pub(crate) org_id: Option<i64>,
    pub(crate) lead_id: Option<String>,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
    pub(crate) active: bool,
    /// Pinned to its lead, deal, organization, person.
    pub(crate) pinned: [bool; 4],
}
record!(Note, id);

const PIN_FLAGS: [&str; 4] = [
    "pinned_to_lead_flag",
    "pinned_to_deal_flag",
    "pinned_to_organization_flag",
    "pinned_to_person_flag",
];

/// v1 "numberBoolean": 0/1 (or `true`/`false`, or "0"/"1" from a form).
fn number_bool(k: &str, v: &Value) -> Result<bool, Invalid> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) if s == "0" => Ok(false),
        Value::String(s) if s == "1" => Ok(true),
        _ => Err(format!("Validation failed: {k}: must be 0 or 1")),
    }
}

/// v1 bodies may be forms, where every value is a string.
fn v1_int(k: &str, v: &Value) -> Result<Option<i64>, Invalid> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("Validation failed: {k}: must be an integer")),
        _ => want_int(k, v).map(Some),
    }
}

/// Applies a v1 note body (`POST /v1/notes`, `PUT /v1/notes/{id}`).
pub(crate) fn apply_note_body(
    n: &mut Note,
    body: &Map<String, Value>,
    users: &[i64],
    create: bool,
) -> Result<(), Invalid> {
    for (k, v) in body {
        match k.as_str() {
            "content" => {
                let c = want_str(k, v)?;
                if c.trim().is_empty() {
                    return Err("Validation failed: content: must not be empty".into());
                }
                n.content = c.to_owned();
            }
            "deal_id" => n.deal_id = v1_int(k, v)?,
            "person_id" => n.person_id = v1_int(k, v)?,
            "org_id" => n.org_id = v1_int(k, v)?,
            "lead_id" => n.lead_id = want_opt_str(k, v)?.filter(|s| !s.is_empty()),
            "user_id" => {
                if let Some(u) = v1_int(k, v)? {
                    if !users.contains(&u) {
                        return Err(format!(
                            "Validation failed: user_id: user {u} does not exist"
                        ));
                    }
                    n.user_id = u;
                }
            }
            "add_time" => {
                let s = want_str(k, v)?;
                n.add_time = parse_time(s).ok_or_else(|| {
                    format!("Validation failed: add_time: {s:?} is not YYYY-MM-DD HH:MM:SS")
                })?;
            }
            // Projects and tasks are not simulated; their ids are accepted and ignored.
            "project_id" | "task_id" => {
                v1_int(k, v)?;
            }
            "pinned_to_project_flag" | "pinned_to_task_flag" => {
                number_bool(k, v)?;
            }
            flag if PIN_FLAGS.contains(&flag) => {
                let i = PIN_FLAGS.iter().position(|f| *f == flag).unwrap_or(0);
                n.pinned[i] = number_bool(k, v)?;
            }
            other => return Err(format!("Validation failed: unknown parameter '{other}'")),
        }
    }
    if create && n.content.is_empty() {
        return Err("Validation failed: content: is required".into());
    }
    if n.deal_id.is_none() && n.person_id.is_none() && n.org_id.is_none() && n.lead_id.is_none() {
        return Err(
            "Validation failed: a note must be attached to a deal, person, organization or lead"
                .into(),
        );
    }
    Ok(())
}

/// A file's metadata (the content is not simulated).
#[derive(Clone, Debug)]
pub(crate) struct FileMeta {
    pub(crate) id: i64,
    pub(crate) user_id: i64,
    pub(crate) deal_id: Option<i64>,
    pub(crate) person_id: Option<i64>,
    pub(crate) org_id: Option<i64>,
    pub(crate) activity_id: Option<i64>,
    pub(crate) lead_id: Option<String>,
    pub(crate) file_name: String,
    pub(crate) file_size: i64,
    pub(crate) description: String,
    pub(crate) add_time: i64,
    pub(crate) update_time: i64,
    pub(crate) active: bool,
}
record!(FileMeta, id);

impl Company {
    /// Every custom field definition of an entity (`person`, `deal`, `organization`, `product`).
    pub(crate) fn fields_of(&self, entity: &str) -> &[FieldDef] {
        match entity {
            "person" => &self.person_fields,
            "deal" => &self.deal_fields,
            "organization" => &self.org_fields,
            "product" => &self.product_fields,
            _ => &[],
        }
    }

    pub(crate) fn org_json(&self, o: &Organization) -> Value {
        o.v2_json(&self.org_field_keys)
    }

    pub(crate) fn product_json(&self, p: &Product) -> Value {
        p.v2_json(&self.product_field_keys)
    }

    /// A `change` event with only the changed fields in `previous`, or `None` when nothing
    /// changed.
    fn changed(
        &self,
        entity: &'static str,
        id: impl std::fmt::Display,
        old: &Value,
        new: &Value,
        source: &'static str,
        user: i64,
    ) -> Option<Event> {
        let prev = previous_values(old, new);
        if prev.is_empty() {
            return None;
        }
        let mut ev = self.event(entity, "change", id, source, user);
        ev.data = Some(new.clone());
        ev.previous = Some(Value::Object(prev));
        Some(ev)
    }

    pub(crate) fn create_org(
        &mut self,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Value, Event), Invalid> {
        let mut o = Organization::new(self.next_org_id, user, now);
        apply_org_body(&mut o, body, &self.org_fields, &self.user_ids(), true)?;
        self.next_org_id += 1;
        let json = self.org_json(&o);
        self.organizations.insert(o.id, o.clone());
        let mut ev = self.event("organization", "create", o.id, source, user);
        ev.data = Some(json.clone());
        Ok((json, ev))
    }

    /// `Ok(None)`: not found.
    pub(crate) fn update_org(
        &mut self,
        id: i64,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Option<Event>)>, Invalid> {
        let Some(old) = self
            .organizations
            .get(&id)
            .filter(|o| !o.is_deleted)
            .cloned()
        else {
            return Ok(None);
        };
        let mut o = old.clone();
        apply_org_body(&mut o, body, &self.org_fields, &self.user_ids(), false)?;
        o.update_time = now.max(old.update_time);
        let (old_json, new_json) = (self.org_json(&old), self.org_json(&o));
        let Some(ev) = self.changed("organization", id, &old_json, &new_json, source, user) else {
            return Ok(Some((old_json, None)));
        };
        self.organizations.insert(id, o);
        Ok(Some((new_json, Some(ev))))
    }

    /// Deletes an organization (persons and deals keep their `org_id`, as in Pipedrive,
    /// where the link is cleared only after the 30-day purge).
    pub(crate) fn delete_org(
        &mut self,
        id: i64,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Option<Event> {
        let prev = self.org_json(self.organizations.get(&id).filter(|o| !o.is_deleted)?);
        self.organizations.modify(id, |o| {
            o.is_deleted = true;
            o.update_time = now.max(o.update_time);
        });
        let mut ev = self.event("organization", "delete", id, source, user);
        ev.previous = Some(prev);
        Some(ev)
    }

    pub(crate) fn create_product(
        &mut self,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Value, Event), Invalid> {
        let mut p = Product::new(self.next_product_id, user, now);
        apply_product_body(&mut p, body, &self.product_fields, &self.user_ids(), true)?;
        self.next_product_id += 1;
        let json = self.product_json(&p);
        self.products.insert(p.id, p.clone());
        let mut ev = self.event("product", "create", p.id, source, user);
        ev.data = Some(json.clone());
        Ok((json, ev))
    }

    pub(crate) fn update_product(
        &mut self,
        id: i64,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Option<Event>)>, Invalid> {
        let Some(old) = self.products.get(&id).filter(|p| !p.is_deleted).cloned() else {
            return Ok(None);
        };
        let mut p = old.clone();
        apply_product_body(&mut p, body, &self.product_fields, &self.user_ids(), false)?;
        p.update_time = now.max(old.update_time);
        let (old_json, new_json) = (self.product_json(&old), self.product_json(&p));
        let Some(ev) = self.changed("product", id, &old_json, &new_json, source, user) else {
            return Ok(Some((old_json, None)));
        };
        self.products.insert(id, p);
        Ok(Some((new_json, Some(ev))))
    }

    pub(crate) fn delete_product(
        &mut self,
        id: i64,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Option<Event> {
        let prev = self.product_json(self.products.get(&id).filter(|p| !p.is_deleted)?);
        self.products.modify(id, |p| {
            p.is_deleted = true;
            p.update_time = now.max(p.update_time);
        });
        let mut ev = self.event("product", "delete", id, source, user);
        ev.previous = Some(prev);
        Some(ev)
    }

    /// The label ids (UUIDs) leads may carry.
    pub(crate) fn lead_label_ids(&self) -> Vec<String> {
        self.lead_labels.iter().map(|l| l.0.clone()).collect()
    }

    pub(crate) fn lead_by_uuid(&self, id: &str) -> Option<&Lead> {
        self.lead_index.get(id).and_then(|seq| self.leads.get(seq))
    }

    pub(crate) fn create_lead(
        &mut self,
        uuid: String,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Value, Event), Invalid> {
        let mut l = Lead {
            seq: self.next_lead_seq,
            id: uuid,
            title: String::new(),
            owner_id: user,
            creator_id: user,
            label_ids: Vec::new(),
            person_id: None,
            organization_id: None,
            is_archived: false,
            was_seen: false,
            value: None,
            expected_close_date: None,
            visible_to: "3".into(),
            origin_id: None,
            channel: None,
            channel_id: None,
            add_time: now,
            update_time: now,
        };
        apply_lead_body(&mut l, body, &self.user_ids(), &self.lead_label_ids(), true)?;
        self.check_links(l.person_id, l.organization_id, None)?;
        self.next_lead_seq += 1;
        let json = l.v1_json(self.id);
        self.lead_index.insert(l.id.clone(), l.seq);
        let mut ev = self.event("lead", "create", &l.id, source, user);
        self.leads.insert(l.seq, l);
        ev.data = Some(json.clone());
        Ok((json, ev))
    }

    pub(crate) fn update_lead(
        &mut self,
        id: &str,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Option<Event>)>, Invalid> {
        let Some(old) = self.lead_by_uuid(id).cloned() else {
            return Ok(None);
        };
        let mut l = old.clone();
        apply_lead_body(
            &mut l,
            body,
            &self.user_ids(),
            &self.lead_label_ids(),
            false,
        )?;
        self.check_links(l.person_id, l.organization_id, None)?;
        l.update_time = now.max(old.update_time);
        let (old_json, new_json) = (old.v1_json(self.id), l.v1_json(self.id));
        let Some(ev) = self.changed("lead", id, &old_json, &new_json, source, user) else {
            return Ok(Some((old_json, None)));
        };
        self.leads.insert(l.seq, l);
        Ok(Some((new_json, Some(ev))))
    }

    /// Converts a lead to a deal as Pipedrive's conversion job does
    /// (`POST /api/v2/leads/{id}/convert/deal`): a deal with the lead's title, value, person,
    /// organization, owner and expected close date, naming the lead (`lead_id`), is created
    /// (a deal `create` webhook), and the lead is deleted (a lead `delete` webhook). Returns the
    /// deal's v2 JSON; `Ok(None)`: no such lead.
    pub(crate) fn convert_lead_to_deal(
        &mut self,
        id: &str,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Vec<Event>)>, Invalid> {
        let Some(lead) = self.lead_by_uuid(id).cloned() else {
            return Ok(None);
        };
        let mut body = Map::new();
        body.insert("title".into(), json!(lead.title));
        body.insert("owner_id".into(), json!(lead.owner_id));
        if let Some(p) = lead.person_id {
            body.insert("person_id".into(), json!(p));
        }
        if let Some(o) = lead.organization_id {
            body.insert("org_id".into(), json!(o));
        }
        if let Some((amount, currency)) = &lead.value {
            body.insert("value".into(), json!(amount));
            body.insert("currency".into(), json!(currency));
        }
        if let Some(d) = &lead.expected_close_date {
            body.insert("expected_close_date".into(), json!(d));
        }
        let (_, _) = self.create_deal(&body, user, source, now)?;
        let deal_id = self.next_deal_id - 1;
        let lead_id = lead.id.clone();
        let json = self
            .deals
            .modify(deal_id, |deal| {
                deal.lead_id = Some(lead_id);
                deal.v2_json()
            })
            .ok_or("conversion: the deal was not created")?;
        let mut created = self.event("deal", "create", deal_id, source, user);
        created.data = Some(json.clone());
        let mut events = vec![created];
        events.extend(self.delete_lead(id, user, source));
        Ok(Some((json, events)))
    }

    /// Leads are deleted for good (the v1 lead has no deleted flag).
    pub(crate) fn delete_lead(
        &mut self,
        id: &str,
        user: i64,
        source: &'static str,
    ) -> Option<Event> {
        let seq = self.lead_index.remove(id)?;
        let old = self.leads.remove(seq)?;
        let mut ev = self.event("lead", "delete", id, source, user);
        ev.previous = Some(old.v1_json(self.id));
        Some(ev)
    }

    /// 400 unless the linked person, organization and deal exist (and are not deleted).
    pub(crate) fn check_links(
        &self,
        person: Option<i64>,
        org: Option<i64>,
        deal: Option<i64>,
    ) -> Result<(), Invalid> {
        if let Some(p) = person.filter(|p| self.live_person(*p).is_none()) {
            return Err(format!(
                "Validation failed: person_id: person {p} does not exist"
            ));
        }
        if let Some(o) = org.filter(|o| self.organizations.get(o).is_none_or(|o| o.is_deleted)) {
            return Err(format!(
                "Validation failed: org_id: organization {o} does not exist"
            ));
        }
        if let Some(d) = deal.filter(|d| self.deals.get(d).is_none_or(|d| d.is_deleted)) {
            return Err(format!(
                "Validation failed: deal_id: deal {d} does not exist"
            ));
        }
        Ok(())
    }

    /// The v1 note, with the names of what it is attached to.
    pub(crate) fn note_json(&self, n: &Note, caller: i64) -> Value {
        let mut v = json!({
            "id": n.id, "active_flag": n.active, "add_time": v1_time(n.add_time),
            "update_time": v1_time(n.update_time), "content": n.content, "user_id": n.user_id,
            "last_update_user_id": n.last_update_user_id,
            "pinned_to_lead_flag": n.pinned[0], "pinned_to_deal_flag": n.pinned[1],
            "pinned_to_organization_flag": n.pinned[2], "pinned_to_person_flag": n.pinned[3],
            "pinned_to_project_flag": false, "pinned_to_task_flag": false,
        });
        if let Some(u) = self.users.iter().find(|u| u.id == n.user_id) {
            v["user"] =
                json!({"email": u.email, "icon_url": "", "is_you": u.id == caller, "name": u.name});
        }
        if let Some(d) = n.deal_id {
            v["deal_id"] = json!(d);
            if let Some(deal) = self.deals.get(&d) {
                v["deal"] = json!({"title": deal.title});
            }
        }
        if let Some(p) = n.person_id {
            v["person_id"] = json!(p);
            if let Some(person) = self.persons.get(&p) {
                v["person"] = json!({"name": person.name});
            }
        }
        if let Some(o) = n.org_id {
            v["org_id"] = json!(o);
            if let Some(org) = self.organizations.get(&o) {
                v["organization"] = json!({"name": org.name});
            }
        }
        if let Some(l) = &n.lead_id {
            v["lead_id"] = json!(l);
        }
        v
    }

    pub(crate) fn create_note(
        &mut self,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Value, Event), Invalid> {
        let mut n = Note {
            id: self.next_note_id,
            content: String::new(),
            user_id: user,
            last_update_user_id: user,
            deal_id: None,
            person_id: None,
            org_id: None,
            lead_id: None,
            add_time: now,
            update_time: now,
            active: true,
            pinned: [false; 4],
        };
        apply_note_body(&mut n, body, &self.user_ids(), true)?;
        self.check_note_links(&n)?;
        self.next_note_id += 1;
        let json = self.note_json(&n, user);
        self.notes.insert(n.id, n.clone());
        let mut ev = self.event("note", "create", n.id, source, user);
        ev.data = Some(json.clone());
        Ok((json, ev))
    }

    fn check_note_links(&self, n: &Note) -> Result<(), Invalid> {
        self.check_links(n.person_id, n.org_id, n.deal_id)?;
        if let Some(l) = n
            .lead_id
            .as_deref()
            .filter(|l| self.lead_by_uuid(l).is_none())
        {
            return Err(format!(
                "Validation failed: lead_id: lead {l} does not exist"
            ));
        }
        Ok(())
    }

    pub(crate) fn update_note(
        &mut self,
        id: i64,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Option<Event>)>, Invalid> {
        let Some(old) = self.notes.get(&id).filter(|n| n.active).cloned() else {
            return Ok(None);
        };
        let mut n = old.clone();
        apply_note_body(&mut n, body, &self.user_ids(), false)?;
        self.check_note_links(&n)?;
        n.update_time = now.max(old.update_time);
        n.last_update_user_id = user;
        let (old_json, new_json) = (self.note_json(&old, user), self.note_json(&n, user));
        let Some(ev) = self.changed("note", id, &old_json, &new_json, source, user) else {
            return Ok(Some((old_json, None)));
        };
        self.notes.insert(id, n);
        Ok(Some((new_json, Some(ev))))
    }

    pub(crate) fn delete_note(
        &mut self,
        id: i64,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Option<Event> {
        let prev = self.note_json(self.notes.get(&id).filter(|n| n.active)?, user);
        self.notes.modify(id, |n| {
            n.active = false;
            n.update_time = now.max(n.update_time);
        });
        let mut ev = self.event("note", "delete", id, source, user);
        ev.previous = Some(prev);
        Some(ev)
    }

    /// The v1 file metadata, with the names of what it is attached to.
    pub(crate) fn file_json(&self, f: &FileMeta, base_url: &str) -> Value {
        let mut v = json!({
            "id": f.id, "user_id": f.user_id, "add_time": v1_time(f.add_time),
            "update_time": v1_time(f.update_time), "file_name": f.file_name,
            "file_size": f.file_size, "active_flag": f.active, "inline_flag": false,
            "remote_location": "s3", "remote_id": "", "cid": "", "s3_bucket": "",
            "mail_message_id": "", "mail_template_id": "", "name": f.file_name,
            "description": f.description, "url": format!("{base_url}/v1/files/{}/download", f.id),
        });
        if let Some(d) = f.deal_id {
            v["deal_id"] = json!(d);
            if let Some(deal) = self.deals.get(&d) {
                v["deal_name"] = json!(deal.title);
            }
        }
        if let Some(p) = f.person_id {
            v["person_id"] = json!(p);
            if let Some(person) = self.persons.get(&p) {
                v["person_name"] = json!(person.name);
            }
        }
        if let Some(o) = f.org_id {
            v["org_id"] = json!(o);
            if let Some(org) = self.organizations.get(&o) {
                v["org_name"] = json!(org.name);
            }
        }
        if let Some(a) = f.activity_id {
            v["activity_id"] = json!(a);
        }
        if let Some(l) = &f.lead_id {
            v["lead_id"] = json!(l);
        }
        v
    }

    /// Marks a file deleted (it leaves `GET /v1/files`; `GET /v1/files/{id}` shows
    /// `active_flag: false`, as the document says it is only marked).
    pub(crate) fn delete_file(&mut self, id: i64, now: i64) -> bool {
        if !self.files.get(&id).is_some_and(|f| f.active) {
            return false;
        }
        self.files.modify(id, |f| {
            f.active = false;
            f.update_time = now.max(f.update_time);
        });
        true
    }
}

impl Company {
    /// Seeds linked objects after the persons (no webhooks). With anything to seed, persons
    /// also get custom fields of every type, and a share of them values and an organization.
    pub(crate) fn seed_objects(
        &mut self,
        counts: &crate::config::SeedCounts,
        now: i64,
        rng: &mut impl rand::Rng,
    ) {
        use crate::seed;
        if !counts.any() {
            return;
        }
        let users = self.user_ids();
        let owner = |rng: &mut dyn rand::RngCore| users[rng.next_u32() as usize % users.len()];
        let times = |rng: &mut dyn rand::RngCore| {
            let age = 86_400 + i64::from(rng.next_u32() % (365 * 86_400));
            let add = now - age;
            (add, add + i64::from(rng.next_u32()) % age)
        };
        self.add_every_person_field_type(now);
        let max_person = self.next_person_id - 1;
        let max_org = self.next_org_id - 1 + counts.organizations as i64;
        let values = |mut rng: &mut dyn rand::RngCore,
                      fields: &[FieldDef],
                      into: &mut dyn FnMut(String, Value)| {
            for f in fields {
                if rng.gen_ratio(7, 10) {
                    if let Some(v) = seed::custom_value(
                        &mut rng,
                        &f.field_type,
                        &f.options,
                        now,
                        (&users, max_org, max_person),
                    ) {
                        into(f.key.clone(), v);
                    }
                }
            }
        };

        // Organizations.
        let org_fields = self.org_fields.clone();
        let first_org = self.next_org_id;
        for _ in 0..counts.organizations {
            let id = self.next_org_id;
            self.next_org_id += 1;
            let (add, upd) = times(rng);
            let mut o = Organization::new(id, owner(rng), add);
            o.update_time = upd;
            o.name = seed::org_name(rng, id);
            if rng.gen_ratio(4, 5) {
                o.address = Some(seed::address(rng));
            }
            if rng.gen_ratio(1, 2) {
                o.website = Some(format!("https://{id}.example.com"));
                o.employee_count = Some(rng.gen_range(1..5_000));
            }
            values(rng, &org_fields, &mut |k, v| {
                o.custom_fields.insert(k, v);
            });
            self.organizations.insert(id, o);
        }
        let orgs: Vec<i64> = (first_org..self.next_org_id).collect();

        // Persons: the new fields' values, and an organization for four in five.
        let person_fields: Vec<FieldDef> = self
            .person_fields
            .iter()
            .filter(|f| seed::EVERY_TYPE.iter().any(|(n, _, _)| *n == f.name))
            .cloned()
            .collect();
        let ids: Vec<i64> = self.persons.keys().copied().collect();
        for pid in ids {
            let Some(p) = self.persons.get(&pid) else {
                continue;
            };
            if p.is_deleted {
                continue;
            }
            let mut p = (**p).clone();
            if !orgs.is_empty() && p.org_id.is_none() && rng.gen_ratio(4, 5) {
                p.org_id = Some(orgs[rng.gen_range(0..orgs.len())]);
            }
            if rng.gen_ratio(1, 2) {
                values(rng, &person_fields, &mut |k, v| {
                    p.custom_fields.insert(k, v);
                });
            }
            self.persons.insert(pid, std::sync::Arc::new(p));
        }
        let persons: Vec<(i64, Option<i64>)> = self
            .persons
            .values()
            .filter(|p| !p.is_deleted)
            .map(|p| (p.id, p.org_id))
            .collect();
        let random_person = |rng: &mut dyn rand::RngCore| {
            (!persons.is_empty()).then(|| persons[rng.next_u32() as usize % persons.len()])
        };

        // Products.
        for _ in 0..counts.products {
            let id = self.next_product_id;
            self.next_product_id += 1;
            let (add, upd) = times(rng);
            let mut p = Product::new(id, owner(rng), add);
            p.update_time = upd;
            let (name, unit) = seed::product(rng);
            p.name = format!("{name} {id}");
            p.code = Some(format!("SKU-{id:05}"));
            p.unit = Some(unit.to_owned());
            p.tax = 20.0;
            p.prices = vec![Price {
                price: f64::from(rng.gen_range(10..2_000)),
                currency: "EUR".into(),
                cost: 0.0,
                direct_cost: None,
                notes: String::new(),
            }];
            self.products.insert(id, p);
        }

        // Deals.
        let deal_fields = self.deal_fields.clone();
        let stages: Vec<(i64, i64)> = self.stages.iter().map(|s| (s.id, s.pipeline_id)).collect();
        let first_deal = self.next_deal_id;
        for _ in 0..counts.deals {
            let id = self.next_deal_id;
            self.next_deal_id += 1;
            let (add, upd) = times(rng);
            let link = if rng.gen_ratio(9, 10) {
                random_person(rng)
            } else {
                None
            };
            let org_id = link.and_then(|l| l.1).or_else(|| {
                (!orgs.is_empty() && rng.gen_ratio(1, 2))
                    .then(|| orgs[rng.gen_range(0..orgs.len())])
            });
            let org_name = org_id
                .and_then(|o| self.organizations.get(&o))
                .map(|o| o.name.clone());
            let (stage_id, pipeline_id) = stages
                .get(rng.gen_range(0..stages.len().max(1)))
                .copied()
                .unwrap_or((1, 1));
            let status = *["open", "open", "open", "won", "lost"]
                .get(rng.gen_range(0..5))
                .unwrap_or(&"open");
            let u = owner(rng);
            let mut custom = Map::new();
            values(rng, &deal_fields, &mut |k, v| {
                custom.insert(k, v);
            });
            let d = crate::model::Deal {
                id,
                title: seed::deal_title(rng, org_name.as_deref()),
                creator_user_id: u,
                owner_id: u,
                value: f64::from(rng.gen_range(500..100_000)),
                currency: "EUR".into(),
                person_id: link.map(|l| l.0),
                org_id,
                pipeline_id,
                stage_id,
                add_time: add,
                update_time: upd,
                stage_change_time: Some(upd),
                is_deleted: false,
                is_archived: false,
                status: status.into(),
                probability: None,
                lost_reason: (status == "lost").then(|| "Price".to_owned()),
                visible_to: 3,
                close_time: (status != "open").then_some(upd),
                won_time: (status == "won").then_some(upd),
                lost_time: (status == "lost").then_some(upd),
                expected_close_date: Some(seed::near_date(rng, now, 90)),
                label_ids: Vec::new(),
                custom_fields: custom,
                lead_id: None,
            };
            self.deals.insert(id, d);
        }
        let deals: Vec<i64> = (first_deal..self.next_deal_id).collect();

        // Leads.
        let labels = self.lead_label_ids();
        let mut lead_ids: Vec<String> = Vec::with_capacity(counts.leads);
        for _ in 0..counts.leads {
            let seq = self.next_lead_seq;
            self.next_lead_seq += 1;
            let (add, upd) = times(rng);
            let link = random_person(rng);
            let organization_id = link
                .and_then(|l| l.1)
                .or_else(|| (!orgs.is_empty()).then(|| orgs[rng.gen_range(0..orgs.len())]));
            let person_id = link.map(|l| l.0).filter(|_| rng.gen_ratio(4, 5));
            if person_id.is_none() && organization_id.is_none() {
                continue;
            }
            let u = owner(rng);
            let uuid = uuid::Builder::from_random_bytes(rng.gen())
                .into_uuid()
                .to_string();
            let l = Lead {
                seq,
                id: uuid.clone(),
                title: format!("Lead {seq}"),
                owner_id: u,
                creator_id: u,
                label_ids: labels
                    .get(rng.gen_range(0..labels.len().max(1)))
                    .cloned()
                    .into_iter()
                    .collect(),
                person_id,
                organization_id,
                is_archived: rng.gen_ratio(1, 20),
                was_seen: rng.gen_ratio(1, 2),
                value: rng
                    .gen_ratio(1, 2)
                    .then(|| (f64::from(rng.gen_range(100..20_000)), "EUR".to_owned())),
                expected_close_date: None,
                visible_to: "3".into(),
                origin_id: None,
                channel: None,
                channel_id: None,
                add_time: add,
                update_time: upd,
            };
            self.lead_index.insert(uuid.clone(), seq);
            self.leads.insert(seq, l);
            lead_ids.push(uuid);
        }

        // Activities: three in five on a deal (with its person and organization).
        for _ in 0..counts.activities {
            let id = self.next_activity_id;
            self.next_activity_id += 1;
            let (add, upd) = times(rng);
            let (kind, subject) = seed::activity_subject(rng);
            let deal = (!deals.is_empty() && rng.gen_ratio(3, 5))
                .then(|| deals[rng.gen_range(0..deals.len())]);
            let (person_id, org_id) = match deal.and_then(|d| self.deals.get(&d)) {
                Some(d) => (d.person_id, d.org_id),
                None => random_person(rng).map_or((None, None), |p| (Some(p.0), p.1)),
            };
            let done = rng.gen_ratio(1, 2);
            let u = owner(rng);
            let a = crate::model::Activity {
                id,
                subject: subject.to_owned(),
                kind: kind.to_owned(),
                owner_id: u,
                creator_user_id: u,
                is_deleted: false,
                add_time: add,
                update_time: upd,
                deal_id: deal,
                lead_id: None,
                person_id,
                org_id,
                project_id: None,
                due_date: Some(seed::near_date(rng, now, 60)),
                due_time: Some(format!("{:02}:00", rng.gen_range(8..18))),
                duration: Some("00:30".into()),
                busy: false,
                done,
                marked_as_done_time: done.then_some(upd),
                location: None,
                participants: person_id.map(|p| vec![(p, true)]).unwrap_or_default(),
                attendees: Vec::new(),
                public_description: None,
                priority: None,
                note: None,
            };
            self.activities.insert(id, a);
        }

        // Notes, and a file for one in five.
        for i in 0..counts.notes {
            let id = self.next_note_id;
            self.next_note_id += 1;
            let (add, upd) = times(rng);
            let u = owner(rng);
            let mut n = Note {
                id,
                content: seed::note_text(rng).to_owned(),
                user_id: u,
                last_update_user_id: u,
                deal_id: None,
                person_id: None,
                org_id: None,
                lead_id: None,
                add_time: add,
                update_time: upd,
                active: true,
                pinned: [false; 4],
            };
            match rng.gen_range(0..4) {
                0 if !deals.is_empty() => {
                    let d = deals[rng.gen_range(0..deals.len())];
                    n.deal_id = Some(d);
                    if let Some(deal) = self.deals.get(&d) {
                        n.person_id = deal.person_id;
                        n.org_id = deal.org_id;
                    }
                }
                1 if !orgs.is_empty() => n.org_id = Some(orgs[rng.gen_range(0..orgs.len())]),
                2 if !lead_ids.is_empty() => {
                    n.lead_id = Some(lead_ids[rng.gen_range(0..lead_ids.len())].clone())
                }
                _ => match random_person(rng) {
                    Some((p, o)) => {
                        n.person_id = Some(p);
                        n.org_id = o;
                    }
                    None => continue,
                },
            }
            if i % 5 == 0 {
                let fid = self.next_file_id;
                self.next_file_id += 1;
                let f = FileMeta {
                    id: fid,
                    user_id: u,
                    deal_id: n.deal_id,
                    person_id: n.person_id,
                    org_id: n.org_id,
                    activity_id: None,
                    lead_id: n.lead_id.clone(),
                    file_name: format!("proposal-{fid}.pdf"),
                    file_size: rng.gen_range(10_000..5_000_000),
                    description: String::new(),
                    add_time: add,
                    update_time: upd,
                    active: true,
                };
                self.files.insert(fid, f);
            }
            self.notes.insert(id, n);
        }
    }

    /// Adds a file's metadata (as an upload through the UI would); returns its id.
    pub(crate) fn add_file(
        &mut self,
        file_name: &str,
        links: (Option<i64>, Option<i64>, Option<i64>),
        user: i64,
        now: i64,
    ) -> i64 {
        let id = self.next_file_id;
        self.next_file_id += 1;
        let (deal_id, person_id, org_id) = links;
        self.files.insert(
            id,
            FileMeta {
                id,
                user_id: user,
                deal_id,
                person_id,
                org_id,
                activity_id: None,
                lead_id: None,
                file_name: file_name.to_owned(),
                file_size: 1024,
                description: String::new(),
                add_time: now,
                update_time: now,
                active: true,
            },
        );
        id
    }
}
