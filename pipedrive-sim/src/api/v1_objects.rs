//! Deals, persons, organizations, activities and products in the legacy v1 shape of the
//! January 2026 v1 document (`v1-2026-01-14/v1.yaml`): `YYYY-MM-DD HH:MM:SS` times, custom
//! fields as top-level hash keys, the owner, person and organization as small objects whose
//! `value` is the id, and the page's `related_objects`. Used by the legacy reads
//! (`--legacy-v1`) and by `v1.getRecents`.
//!
//! Counters the simulator does not keep (`files_count`, `email_messages_count`, ...) are `0`;
//! a standard field without a value (the next activity, `cc_email`, an unset address part) is
//! left out, as the document's schemas do not allow `null` for them. Custom fields are always
//! there (`null` when unset).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::model::{put_v1_custom, v1_time, Activity, Deal, Person};
use crate::records::{Organization, Product};
use crate::state::Company;

/// The ids a page refers to, for its `related_objects`.
#[derive(Default)]
pub(super) struct Related {
    users: BTreeSet<i64>,
    persons: BTreeSet<i64>,
    organizations: BTreeSet<i64>,
    deals: BTreeSet<i64>,
    stages: BTreeSet<i64>,
    pipelines: BTreeSet<i64>,
}

impl Related {
    /// The `related_objects` of a page, as the document's examples show them (keys are ids).
    pub(super) fn to_json(&self, c: &Company) -> Value {
        let mut out = Map::new();
        let mut put = |name: &str, items: Map<String, Value>| {
            if !items.is_empty() {
                let items = items
                    .into_iter()
                    .map(|(k, v)| (k, without_nulls(v)))
                    .collect();
                out.insert(name.into(), Value::Object(items));
            }
        };
        put(
            "user",
            self.users
                .iter()
                .map(|id| {
                    let mut u = user_ref(c, *id);
                    if let Value::Object(m) = &mut u {
                        m.remove("value");
                    }
                    (id.to_string(), u)
                })
                .collect(),
        );
        put(
            "person",
            self.persons
                .iter()
                .filter_map(|id| {
                    let mut p = person_ref(c, *id)?;
                    if let Value::Object(m) = &mut p {
                        m.remove("value");
                        m.insert("id".into(), json!(id));
                    }
                    Some((id.to_string(), p))
                })
                .collect(),
        );
        put(
            "organization",
            self.organizations
                .iter()
                .filter_map(|id| {
                    let mut o = org_ref(c, *id)?;
                    if let Value::Object(m) = &mut o {
                        m.remove("value");
                        m.insert("id".into(), json!(id));
                    }
                    Some((id.to_string(), o))
                })
                .collect(),
        );
        put(
            "deal",
            self.deals
                .iter()
                .filter_map(|id| {
                    let d = c.deals.get(id)?;
                    Some((
                        id.to_string(),
                        json!({"id": d.id, "title": d.title, "status": d.status, "value": d.value,
                               "currency": d.currency, "stage_id": d.stage_id,
                               "pipeline_id": d.pipeline_id}),
                    ))
                })
                .collect(),
        );
        put(
            "stage",
            self.stages
                .iter()
                .filter_map(|id| {
                    let s = c.stages.iter().find(|s| s.id == *id)?;
                    Some((id.to_string(), stage(c, s)))
                })
                .collect(),
        );
        put(
            "pipeline",
            self.pipelines
                .iter()
                .map(|id| (id.to_string(), pipeline(c, *id)))
                .collect(),
        );
        Value::Object(out)
    }
}

/// Leaves out the standard fields without a value, here and in the objects it refers to
/// (custom fields, 40-hex keys, stay).
fn without_nulls(mut v: Value) -> Value {
    fn strip(m: &mut Map<String, Value>, depth: u8) {
        m.retain(|k, v| !v.is_null() || is_custom_key(k));
        if depth > 0 {
            for v in m.values_mut() {
                if let Value::Object(inner) = v {
                    strip(inner, depth - 1);
                }
            }
        }
    }
    if let Value::Object(m) = &mut v {
        strip(m, 1);
    }
    v
}

fn is_custom_key(k: &str) -> bool {
    k.len() >= 40 && k.bytes().take(40).all(|b| b.is_ascii_hexdigit())
}

/// A stage in v1 JSON (related objects, `v1.getRecents`).
pub(super) fn stage(c: &Company, s: &crate::state::Stage) -> Value {
    json!({"id": s.id, "company_id": c.id, "order_nr": s.order_nr, "name": s.name,
           "active_flag": true, "deal_probability": s.probability,
           "pipeline_id": s.pipeline_id, "rotten_flag": false, "rotten_days": null,
           "add_time": v1_time(c.created), "update_time": v1_time(c.created),
           "pipeline_name": pipeline_name(c, s.pipeline_id), "pipeline_deal_probability": true})
}

/// A pipeline in v1 JSON (related objects, `v1.getRecents`).
pub(super) fn pipeline(c: &Company, id: i64) -> Value {
    let name = pipeline_name(c, id);
    json!({"id": id, "name": name, "url_title": name.to_lowercase().replace(' ', "-"),
           "order_nr": 0, "active": true, "deal_probability": true,
           "add_time": v1_time(c.created), "update_time": v1_time(c.created)})
}

fn pipeline_name(c: &Company, id: i64) -> String {
    c.pipelines
        .iter()
        .find(|(p, _)| *p == id)
        .map(|(_, n)| n.clone())
        .unwrap_or_default()
}

/// A user as v1 objects refer to one (`user_id`, `owner_id`, `creator_user_id`). The document
/// gives `has_pic` as a boolean on deals and an integer on persons and organizations.
pub(super) fn user_ref(c: &Company, id: i64) -> Value {
    user_ref_with(c, id, json!(false))
}

fn user_ref_counted(c: &Company, id: i64) -> Value {
    user_ref_with(c, id, json!(0))
}

fn user_ref_with(c: &Company, id: i64, has_pic: Value) -> Value {
    let u = c.users.iter().find(|u| u.id == id);
    json!({
        "id": id,
        "name": u.map_or("", |u| u.name.as_str()),
        "email": u.map_or("", |u| u.email.as_str()),
        "has_pic": has_pic,
        "pic_hash": null,
        "active_flag": true,
        "value": id,
    })
}

fn person_ref(c: &Company, id: i64) -> Option<Value> {
    let p = c.persons.get(&id)?;
    Some(json!({
        "active_flag": !p.is_deleted,
        "name": p.name,
        "email": p.emails.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "phone": p.phones.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        "owner_id": p.owner_id,
        "value": id,
    }))
}

fn org_ref(c: &Company, id: i64) -> Option<Value> {
    let o = c.organizations.get(&id)?;
    Some(json!({
        "name": o.name,
        "people_count": 0,
        "owner_id": o.owner_id,
        "address": address_text(o),
        "active_flag": !o.is_deleted,
        "cc_email": null,
        "value": id,
    }))
}

fn address_text(o: &Organization) -> Option<String> {
    o.address
        .as_ref()
        .and_then(|a| a.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn first_char(name: &str) -> String {
    name.chars()
        .next()
        .map(|c| c.to_lowercase().to_string())
        .unwrap_or_default()
}

/// A deal (`v1.getDeals`, `v1.getDeal`, `v1.getRecents`).
pub(super) fn deal(c: &Company, d: &Deal, rel: &mut Related) -> Value {
    rel.users.insert(d.owner_id);
    rel.users.insert(d.creator_user_id);
    rel.stages.insert(d.stage_id);
    rel.pipelines.insert(d.pipeline_id);
    let person = d.person_id.and_then(|id| {
        rel.persons.insert(id);
        person_ref(c, id)
    });
    let org = d.org_id.and_then(|id| {
        rel.organizations.insert(id);
        org_ref(c, id)
    });
    let person_name = person.as_ref().map(|p| p["name"].clone());
    let org_name = org.as_ref().map(|o| o["name"].clone());
    let stage_order = c
        .stages
        .iter()
        .find(|s| s.id == d.stage_id)
        .map(|s| s.order_nr);
    let mut m = Map::with_capacity(80);
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("id", json!(d.id));
    put("creator_user_id", user_ref(c, d.creator_user_id));
    put("user_id", user_ref(c, d.owner_id));
    put("person_id", person.unwrap_or(Value::Null));
    put("org_id", org.unwrap_or(Value::Null));
    put("stage_id", json!(d.stage_id));
    put("title", json!(d.title));
    put("value", json!(d.value));
    put("currency", json!(d.currency));
    put("archive_time", Value::Null);
    put("add_time", json!(v1_time(d.add_time)));
    put("update_time", json!(v1_time(d.update_time)));
    put("stage_change_time", json!(d.stage_change_time.map(v1_time)));
    put("active", json!(d.status == "open" && !d.is_deleted));
    put("deleted", json!(d.is_deleted));
    put("is_archived", json!(d.is_archived));
    put("status", json!(d.status));
    put("probability", json!(d.probability));
    put("next_activity_date", Value::Null);
    put("next_activity_time", Value::Null);
    put("next_activity_id", Value::Null);
    put("last_activity_id", Value::Null);
    put("last_activity_date", Value::Null);
    put("lost_reason", json!(d.lost_reason));
    put("visible_to", json!(d.visible_to.to_string()));
    put("close_time", json!(d.close_time.map(v1_time)));
    put("pipeline_id", json!(d.pipeline_id));
    put("won_time", json!(d.won_time.map(v1_time)));
    put("first_won_time", json!(d.won_time.map(v1_time)));
    put("lost_time", json!(d.lost_time.map(v1_time)));
    for k in [
        "products_count",
        "files_count",
        "notes_count",
        "followers_count",
        "email_messages_count",
        "activities_count",
        "done_activities_count",
        "undone_activities_count",
        "participants_count",
    ] {
        put(k, json!(0));
    }
    put("expected_close_date", json!(d.expected_close_date));
    put("last_incoming_mail_time", Value::Null);
    put("last_outgoing_mail_time", Value::Null);
    put(
        "label",
        if d.label_ids.is_empty() {
            Value::Null
        } else {
            json!(d
                .label_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(","))
        },
    );
    put("origin", json!("API"));
    put("origin_id", Value::Null);
    put("channel", Value::Null);
    put("channel_id", Value::Null);
    put("stage_order_nr", json!(stage_order));
    put("person_name", person_name.unwrap_or(Value::Null));
    put("org_name", org_name.unwrap_or(Value::Null));
    put("next_activity_subject", Value::Null);
    put("next_activity_type", Value::Null);
    put("next_activity_duration", Value::Null);
    put("next_activity_note", Value::Null);
    put(
        "formatted_value",
        json!(format!("{} {}", d.value, d.currency)),
    );
    let weighted = d.value * d.probability.unwrap_or(100.0) / 100.0;
    put("weighted_value", json!(weighted));
    put(
        "formatted_weighted_value",
        json!(format!("{weighted} {}", d.currency)),
    );
    put("weighted_value_currency", json!(d.currency));
    put("rotten_time", Value::Null);
    put("owner_name", json!(c.user_name(d.owner_id)));
    put("cc_email", Value::Null);
    put("org_hidden", json!(false));
    put("person_hidden", json!(false));
    put_v1_custom(&mut m, &c.deal_fields, |k| d.custom_fields.get(k));
    without_nulls(Value::Object(m))
}

/// A person (`v1.getPersons`, `v1.getPerson`): the simulator's v1 person with the owner and
/// the organization as objects, as the document's `getPersons` example shows them.
pub(super) fn person(c: &Company, p: &Person, rel: &mut Related) -> Value {
    rel.users.insert(p.owner_id);
    let mut v = p.v1_json(c.id, &c.user_name(p.owner_id), &c.person_fields);
    if let Value::Object(m) = &mut v {
        m.insert("owner_id".into(), user_ref_counted(c, p.owner_id));
        let org = p.org_id.and_then(|id| {
            rel.organizations.insert(id);
            org_ref(c, id)
        });
        m.insert(
            "org_name".into(),
            org.as_ref().map_or(Value::Null, |o| o["name"].clone()),
        );
        m.insert("org_id".into(), org.unwrap_or(Value::Null));
        m.insert(
            "primary_email".into(),
            json!(p
                .emails
                .iter()
                .find(|e| e.primary)
                .or(p.emails.first())
                .map(|e| e.value.clone())),
        );
        m.insert("marketing_status".into(), json!(p.marketing_status));
    }
    without_nulls(v)
}

/// An organization (`v1.getOrganizations`, `v1.getOrganization`, `v1.getRecents`).
pub(super) fn organization(c: &Company, o: &Organization, rel: &mut Related) -> Value {
    rel.users.insert(o.owner_id);
    let mut m = Map::with_capacity(60);
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("id", json!(o.id));
    put("company_id", json!(c.id));
    put("owner_id", user_ref_counted(c, o.owner_id));
    put("name", json!(o.name));
    for k in [
        "open_deals_count",
        "related_open_deals_count",
        "closed_deals_count",
        "related_closed_deals_count",
        "email_messages_count",
        "people_count",
        "activities_count",
        "done_activities_count",
        "undone_activities_count",
        "files_count",
        "notes_count",
        "followers_count",
        "won_deals_count",
        "related_won_deals_count",
        "lost_deals_count",
        "related_lost_deals_count",
    ] {
        put(k, json!(0));
    }
    put("active_flag", json!(!o.is_deleted));
    put("picture_id", Value::Null);
    put("country_code", Value::Null);
    put("first_char", json!(first_char(&o.name)));
    put("update_time", json!(v1_time(o.update_time)));
    put("add_time", json!(v1_time(o.add_time)));
    put("visible_to", json!(o.visible_to.to_string()));
    put("next_activity_date", Value::Null);
    put("next_activity_time", Value::Null);
    put("next_activity_id", Value::Null);
    put("last_activity_id", Value::Null);
    put("last_activity_date", Value::Null);
    put("label", json!(o.label_ids.first()));
    put("label_ids", json!(o.label_ids));
    put("address", json!(address_text(o)));
    for part in [
        "subpremise",
        "street_number",
        "route",
        "sublocality",
        "locality",
        "admin_area_level_1",
        "admin_area_level_2",
        "country",
        "postal_code",
        "formatted_address",
    ] {
        let v = o
            .address
            .as_ref()
            .and_then(|a| a.get(part))
            .cloned()
            .unwrap_or(Value::Null);
        put(&format!("address_{part}"), v);
    }
    put("website", json!(o.website));
    put("linkedin", json!(o.linkedin));
    put("industry", json!(o.industry));
    put("annual_revenue", json!(o.annual_revenue));
    put("employee_count", json!(o.employee_count));
    put("owner_name", json!(c.user_name(o.owner_id)));
    put("cc_email", Value::Null);
    put_v1_custom(&mut m, &c.org_fields, |k| o.custom_fields.get(k));
    without_nulls(Value::Object(m))
}

/// An activity (`v1.getActivities`, `v1.getActivity`, `v1.getRecents`).
pub(super) fn activity(c: &Company, a: &Activity, rel: &mut Related) -> Value {
    rel.users.insert(a.owner_id);
    let mut m = Map::with_capacity(48);
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("id", json!(a.id));
    put("company_id", json!(c.id));
    put("user_id", json!(a.owner_id));
    put("done", json!(a.done));
    put("type", json!(a.kind));
    put("due_date", json!(a.due_date));
    put("due_time", json!(a.due_time.clone().unwrap_or_default()));
    put("duration", json!(a.duration.clone().unwrap_or_default()));
    put("busy_flag", json!(a.busy));
    put("add_time", json!(v1_time(a.add_time)));
    put(
        "marked_as_done_time",
        json!(a.marked_as_done_time.map(v1_time)),
    );
    put("subject", json!(a.subject));
    put("public_description", json!(a.public_description));
    put(
        "location",
        json!(a.location.as_ref().and_then(|l| l.get("value")).cloned()),
    );
    put("org_id", json!(a.org_id));
    put("person_id", json!(a.person_id));
    put("deal_id", json!(a.deal_id));
    put("lead_id", json!(a.lead_id));
    put("project_id", json!(a.project_id));
    put("active_flag", json!(!a.is_deleted));
    put("update_time", json!(v1_time(a.update_time)));
    put("update_user_id", Value::Null);
    put("note", json!(a.note));
    put("created_by_user_id", json!(a.creator_user_id));
    put(
        "participants",
        json!(a
            .participants
            .iter()
            .map(|(id, primary)| json!({"person_id": id, "primary_flag": primary}))
            .collect::<Vec<_>>()),
    );
    put("attendees", json!(a.attendees));
    let person = a.person_id.and_then(|id| {
        rel.persons.insert(id);
        c.persons.get(&id)
    });
    let org = a.org_id.and_then(|id| {
        rel.organizations.insert(id);
        c.organizations.get(&id)
    });
    let deal = a.deal_id.and_then(|id| {
        rel.deals.insert(id);
        c.deals.get(&id)
    });
    put("person_name", json!(person.map(|p| p.name.clone())));
    put("org_name", json!(org.map(|o| o.name.clone())));
    put("deal_title", json!(deal.map(|d| d.title.clone())));
    put("owner_name", json!(c.user_name(a.owner_id)));
    put("assigned_to_user_id", json!(a.owner_id));
    without_nulls(Value::Object(m))
}

/// A product (`v1.getProducts`, `v1.getProduct`, `v1.getRecents`).
pub(super) fn product(c: &Company, p: &Product, rel: &mut Related) -> Value {
    rel.users.insert(p.owner_id);
    let mut m = Map::with_capacity(24);
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("id", json!(p.id));
    put("name", json!(p.name));
    put("code", json!(p.code));
    put("description", json!(p.description));
    put("unit", json!(p.unit));
    put("tax", json!(p.tax));
    put("category", json!(p.category));
    put("active_flag", json!(!p.is_deleted));
    put("selectable", json!(p.is_linkable));
    put("first_char", json!(first_char(&p.name)));
    put("visible_to", json!(p.visible_to.to_string()));
    put("owner_id", user_ref(c, p.owner_id));
    put("files_count", Value::Null);
    put("add_time", json!(v1_time(p.add_time)));
    put("update_time", json!(v1_time(p.update_time)));
    put("billing_frequency", json!(p.billing_frequency));
    put(
        "billing_frequency_cycles",
        json!(p.billing_frequency_cycles),
    );
    put(
        "prices",
        Value::Array(
            p.prices
                .iter()
                .enumerate()
                .map(|(i, pr)| {
                    json!({"id": p.id * 100 + i as i64 + 1, "product_id": p.id, "price": pr.price,
                           "currency": pr.currency, "cost": pr.cost,
                           "overhead_cost": pr.direct_cost.unwrap_or(0.0), "notes": pr.notes})
                })
                .collect(),
        ),
    );
    put_v1_custom(&mut m, &c.product_fields, |k| p.custom_fields.get(k));
    without_nulls(Value::Object(m))
}
