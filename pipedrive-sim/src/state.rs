//! The in-memory store: companies with their persons, deals, activities, fields, pipelines
//! and webhooks; OAuth grants; counters; rate-limit windows; the delivery log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

use crate::config::RateLimits;
use crate::faults::FaultSpec;
use crate::model::{
    apply_activity_body, apply_deal_body, apply_person_body, check_custom_value, previous_values,
    v2_time, Activity, Channel, Deal, FieldDef, Invalid, Person,
};
use crate::ops::Op;
use crate::records::{FileMeta, Lead, Note, Organization, Product};
use crate::seed;
use crate::table::Table;

/// A change to report through webhooks.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub(crate) company_id: i64,
    pub(crate) entity: &'static str,
    pub(crate) action: &'static str,
    pub(crate) entity_id: String,
    pub(crate) data: Option<Value>,
    pub(crate) previous: Option<Value>,
    pub(crate) change_source: &'static str,
    pub(crate) user_id: i64,
    pub(crate) extra_meta: Vec<(&'static str, Value)>,
}

/// A user of a company.
#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) email: String,
    pub(crate) is_admin: bool,
    /// The user's visibility group (Pipedrive's Professional and Enterprise plans); every
    /// user starts in group 1.
    pub(crate) visibility_group: i64,
}

/// A webhook subscription and its delivery state.
#[derive(Clone, Debug)]
pub(crate) struct Webhook {
    pub(crate) id: i64,
    pub(crate) company_id: i64,
    pub(crate) owner_id: i64,
    pub(crate) user_id: i64,
    pub(crate) event_action: String,
    pub(crate) event_object: String,
    pub(crate) subscription_url: String,
    pub(crate) version: String,
    pub(crate) add_time: i64,
    pub(crate) kind: &'static str,
    pub(crate) http_auth_user: Option<String>,
    pub(crate) http_auth_password: Option<String>,
    pub(crate) name: String,
    pub(crate) ban_counter: u32,
    /// Until when (the simulator's clock, unix seconds) the webhook is banned.
    pub(crate) banned_until: Option<i64>,
    pub(crate) last_delivery_time: Option<i64>,
    pub(crate) last_http_status: Option<u16>,
}

impl Webhook {
    pub(crate) fn v1_json(&self, now: i64) -> Value {
        let iso = |t: i64| {
            chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
                .unwrap_or_default()
                .format("%Y-%m-%dT%H:%M:%S.000Z")
                .to_string()
        };
        json!({
            "id": self.id,
            "company_id": self.company_id,
            "owner_id": self.owner_id,
            "user_id": self.user_id,
            "event_action": self.event_action,
            "event_object": self.event_object,
            "subscription_url": self.subscription_url,
            "version": self.version,
            "is_active": if self.banned_until.is_some_and(|b| b > now) { 0 } else { 1 },
            "add_time": iso(self.add_time),
            "remove_time": null,
            "type": self.kind,
            "http_auth_user": self.http_auth_user,
            "http_auth_password": self.http_auth_password,
            "remove_reason": null,
            "last_delivery_time": self.last_delivery_time.map(iso),
            "last_http_status": self.last_http_status,
            "admin_id": self.owner_id,
            "name": self.name,
        })
    }

    pub(crate) fn matches(&self, entity: &str, action: &str) -> bool {
        (self.event_object == "*" || self.event_object == entity)
            && (self.event_action == "*" || self.event_action == action)
    }
}

/// A pipeline stage.
#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub(crate) id: i64,
    pub(crate) pipeline_id: i64,
    pub(crate) name: String,
    pub(crate) order_nr: i64,
    pub(crate) probability: i64,
}

/// One company's data.
#[derive(Debug)]
pub(crate) struct Company {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) users: Vec<User>,
    /// Visibility groups' parents (child → parent), for `visible_to` 5 ("owner's visibility
    /// group and sub-groups").
    pub(crate) visibility_parents: HashMap<i64, i64>,
    pub(crate) persons: Table<Arc<Person>>,
    pub(crate) email_index: HashMap<String, BTreeSet<i64>>,
    pub(crate) next_person_id: i64,
    pub(crate) deals: Table<Deal>,
    pub(crate) next_deal_id: i64,
    pub(crate) activities: Table<Activity>,
    pub(crate) next_activity_id: i64,
    pub(crate) person_fields: Vec<FieldDef>,
    pub(crate) person_field_keys: Arc<Vec<String>>,
    pub(crate) deal_fields: Vec<FieldDef>,
    pub(crate) org_fields: Vec<FieldDef>,
    pub(crate) org_field_keys: Arc<Vec<String>>,
    pub(crate) product_fields: Vec<FieldDef>,
    pub(crate) product_field_keys: Arc<Vec<String>>,
    pub(crate) organizations: Table<Organization>,
    pub(crate) next_org_id: i64,
    pub(crate) products: Table<Product>,
    pub(crate) next_product_id: i64,
    /// Leads by creation number; `lead_index` maps their UUIDs to it.
    pub(crate) leads: Table<Lead>,
    pub(crate) lead_index: HashMap<String, i64>,
    pub(crate) next_lead_seq: i64,
    /// `(uuid, name, color)`.
    pub(crate) lead_labels: Vec<(String, String, String)>,
    pub(crate) notes: Table<Note>,
    pub(crate) next_note_id: i64,
    pub(crate) files: Table<FileMeta>,
    pub(crate) next_file_id: i64,
    pub(crate) next_field_id: i64,
    pub(crate) next_option_id: i64,
    pub(crate) pipelines: Vec<(i64, String)>,
    pub(crate) stages: Vec<Stage>,
    pub(crate) webhooks: BTreeMap<i64, Webhook>,
    pub(crate) created: i64,
    pub(crate) daily_day: i64,
    pub(crate) daily_spent: u64,
    pub(crate) daily_writes: u64,
    /// The names written to each person through the API (creates and updates that set a
    /// name), in order: a value written twice is a double send (see `SimHandle::person_writes`).
    pub(crate) name_writes: HashMap<i64, Vec<String>>,
}

fn index_emails(index: &mut HashMap<String, BTreeSet<i64>>, p: &Person, add: bool) {
    for e in &p.emails {
        let key = e.value.trim().to_lowercase();
        if add {
            index.entry(key).or_default().insert(p.id);
        } else if let Some(set) = index.get_mut(&key) {
            set.remove(&p.id);
            if set.is_empty() {
                index.remove(&key);
            }
        }
    }
}

impl Company {
    /// A company with one pipeline of five stages, three lead labels and no fields.
    pub(crate) fn empty(id: i64, name: &str, users: Vec<User>, now: i64) -> Self {
        Company {
            id,
            name: name.to_owned(),
            users,
            visibility_parents: HashMap::new(),
            persons: Table::default(),
            email_index: HashMap::new(),
            next_person_id: 1,
            deals: Table::default(),
            next_deal_id: 1,
            activities: Table::default(),
            next_activity_id: 1,
            person_fields: Vec::new(),
            person_field_keys: Arc::new(Vec::new()),
            deal_fields: Vec::new(),
            org_fields: Vec::new(),
            org_field_keys: Arc::new(Vec::new()),
            product_fields: Vec::new(),
            product_field_keys: Arc::new(Vec::new()),
            organizations: Table::default(),
            next_org_id: 1,
            products: Table::default(),
            next_product_id: 1,
            leads: Table::default(),
            lead_index: HashMap::new(),
            next_lead_seq: 1,
            lead_labels: [
                ("f08b42a0-4e75-11ea-9643-03698ef1cfd6", "Hot", "red"),
                ("f08b42a1-4e75-11ea-9643-03698ef1cfd6", "Warm", "yellow"),
                ("f08b42a2-4e75-11ea-9643-03698ef1cfd6", "Cold", "blue"),
            ]
            .iter()
            .map(|(u, n, c)| ((*u).to_owned(), (*n).to_owned(), (*c).to_owned()))
            .collect(),
            notes: Table::default(),
            next_note_id: 1,
            files: Table::default(),
            next_file_id: 1,
            next_field_id: 9000,
            next_option_id: 1,
            pipelines: vec![(1, "Sales pipeline".to_owned())],
            stages: [
                "Qualified",
                "Contact Made",
                "Demo Scheduled",
                "Proposal Made",
                "Negotiations Started",
            ]
            .iter()
            .enumerate()
            .map(|(i, n)| Stage {
                id: i as i64 + 1,
                pipeline_id: 1,
                name: (*n).to_owned(),
                order_nr: i as i64,
                probability: 100,
            })
            .collect(),
            webhooks: BTreeMap::new(),
            created: now - 365 * 86_400,
            daily_day: now.div_euclid(86_400),
            daily_spent: 0,
            daily_writes: 0,
            name_writes: HashMap::new(),
        }
    }

    pub(crate) fn new(id: i64, name: &str, users: Vec<User>, now: i64, rng: &mut impl Rng) -> Self {
        let mut c = Company::empty(id, name, users, now);
        // "Some custom fields" every seeded company has.
        c.add_person_field(
            "Lead source",
            "enum",
            &["Website", "Referral", "Event", "Cold call"],
            now,
            rng,
        )
        .ok();
        c.add_person_field("Customer tier", "varchar", &[], now, rng)
            .ok();
        c.add_person_field("Lifetime value", "monetary", &[], now, rng)
            .ok();
        // Custom fields of every type on deals and organizations, with keys drawn from their
        // own RNG so that the persons a seed generates stay the same as before they existed.
        let mut own = StdRng::seed_from_u64(0x5eed_f1e1d ^ id as u64);
        for entity in ["deal", "organization"] {
            for (name, t, options) in seed::EVERY_TYPE {
                c.add_field(entity, name, t, options, now, &mut own).ok();
            }
        }
        c
    }

    /// Adds the custom person fields of every type that the person fields do not have yet
    /// (the full seed does this; a plain `--persons` seed keeps the three classic fields).
    pub(crate) fn add_every_person_field_type(&mut self, now: i64) {
        let mut own = StdRng::seed_from_u64(0x09e7_50e5 ^ self.id as u64);
        for (name, t, options) in seed::EVERY_TYPE {
            if !self.person_fields.iter().any(|f| f.name == *name) {
                self.add_field("person", name, t, options, now, &mut own)
                    .ok();
            }
        }
    }

    pub(crate) fn user_ids(&self) -> Vec<i64> {
        self.users.iter().map(|u| u.id).collect()
    }

    pub(crate) fn user_name(&self, id: i64) -> String {
        self.users
            .iter()
            .find(|u| u.id == id)
            .map(|u| u.name.clone())
            .unwrap_or_default()
    }

    pub(crate) fn add_person_field(
        &mut self,
        name: &str,
        field_type: &str,
        options: &[&str],
        now: i64,
        rng: &mut impl Rng,
    ) -> Result<FieldDef, Invalid> {
        self.add_field("person", name, field_type, options, now, rng)
    }

    /// Adds a custom field to `person`, `deal`, `organization` or `product`.
    pub(crate) fn add_field(
        &mut self,
        entity: &str,
        name: &str,
        field_type: &str,
        options: &[&str],
        now: i64,
        rng: &mut impl Rng,
    ) -> Result<FieldDef, Invalid> {
        const TYPES: &[&str] = &[
            "varchar",
            "text",
            "double",
            "phone",
            "date",
            "daterange",
            "time",
            "timerange",
            "set",
            "enum",
            "varchar_auto",
            "address",
            "monetary",
            "org",
            "people",
            "user",
        ];
        if name.trim().is_empty() {
            return Err("Validation failed: field_name: must not be empty".into());
        }
        if !TYPES.contains(&field_type) {
            return Err(format!(
                "Validation failed: field_type: {field_type:?} is not allowed"
            ));
        }
        if matches!(field_type, "enum" | "set") && options.is_empty() {
            return Err("Validation failed: options: required for enum and set fields".into());
        }
        let opts = options
            .iter()
            .map(|l| {
                let id = self.next_option_id;
                self.next_option_id += 1;
                (id, (*l).to_owned())
            })
            .collect();
        let f = FieldDef {
            id: self.next_field_id,
            key: seed::field_key(rng),
            name: name.trim().to_owned(),
            field_type: field_type.to_owned(),
            options: opts,
            custom: true,
            add_time: now,
        };
        self.next_field_id += 1;
        let keys = |fs: &[FieldDef]| Arc::new(fs.iter().map(|f| f.key.clone()).collect());
        match entity {
            "person" => {
                self.person_fields.push(f.clone());
                self.person_field_keys = keys(&self.person_fields);
            }
            "deal" => self.deal_fields.push(f.clone()),
            "organization" => {
                self.org_fields.push(f.clone());
                self.org_field_keys = keys(&self.org_fields);
            }
            "product" => {
                self.product_fields.push(f.clone());
                self.product_field_keys = keys(&self.product_fields);
            }
            other => return Err(format!("Validation failed: no fields for {other}")),
        }
        Ok(f)
    }

    /// Marks a custom person field as deleted: it leaves the listings and persons' `custom_fields`,
    /// and writes naming it are refused as for an unknown field. `Err(true)` for a built-in
    /// field's code, `Err(false)` for an unknown one.
    pub(crate) fn delete_person_field(&mut self, code: &str) -> Result<FieldDef, bool> {
        let Some(at) = self.person_fields.iter().position(|f| f.key == code) else {
            let builtin = crate::model::builtin_fields("person")
                .iter()
                .any(|(key, _, _)| *key == code);
            return Err(builtin);
        };
        let f = self.person_fields.remove(at);
        self.person_field_keys =
            Arc::new(self.person_fields.iter().map(|f| f.key.clone()).collect());
        Ok(f)
    }

    /// Whether `user` sees person `p`, as Pipedrive's visibility groups decide: admins see
    /// everything; otherwise `visible_to` 1 is the owner only, 3 the owner's visibility group,
    /// 5 that group and its sub-groups, 7 the entire company.
    pub(crate) fn person_visible_to(&self, p: &Person, user: i64) -> bool {
        let Some(me) = self.users.iter().find(|u| u.id == user) else {
            return true;
        };
        if me.is_admin || p.visible_to >= 7 {
            return true;
        }
        let group_of = |id: i64| {
            self.users
                .iter()
                .find(|u| u.id == id)
                .map_or(1, |u| u.visibility_group)
        };
        let owner_group = group_of(p.owner_id);
        match p.visible_to {
            1 => p.owner_id == user,
            3 => p.owner_id == user || owner_group == me.visibility_group,
            _ => {
                // 5: the owner's group or any group below it.
                let mut group = Some(me.visibility_group);
                let mut steps = 0;
                while let Some(g) = group {
                    if g == owner_group || p.owner_id == user {
                        return true;
                    }
                    group = self.visibility_parents.get(&g).copied();
                    steps += 1;
                    if steps > 64 {
                        break;
                    }
                }
                false
            }
        }
    }

    pub(crate) fn live_person(&self, id: i64) -> Option<&Arc<Person>> {
        self.persons.get(&id).filter(|p| !p.is_deleted)
    }

    pub(crate) fn person_json(&self, p: &Person) -> Value {
        p.v2_json(&self.person_field_keys, None)
    }

    pub(crate) fn event(
        &self,
        entity: &'static str,
        action: &'static str,
        id: impl std::fmt::Display,
        source: &'static str,
        user: i64,
    ) -> Event {
        Event {
            company_id: self.id,
            entity,
            action,
            entity_id: id.to_string(),
            data: None,
            previous: None,
            change_source: source,
            user_id: user,
            extra_meta: Vec::new(),
        }
    }

    pub(crate) fn create_person(
        &mut self,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Value, Event), Invalid> {
        let mut p = Person::new(self.next_person_id, user, now);
        apply_person_body(&mut p, body, &self.person_fields, &self.user_ids(), true)?;
        self.next_person_id += 1;
        index_emails(&mut self.email_index, &p, true);
        if source == "api" && body.contains_key("name") {
            self.name_writes
                .entry(p.id)
                .or_default()
                .push(p.name.clone());
        }
        let json = self.person_json(&p);
        self.persons.insert(p.id, Arc::new(p.clone()));
        let mut ev = self.event("person", "create", p.id, source, user);
        ev.data = Some(json.clone());
        Ok((json, ev))
    }

    /// `Ok(None)`: not found.
    pub(crate) fn update_person(
        &mut self,
        id: i64,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Option<Event>)>, Invalid> {
        let Some(old) = self.live_person(id).cloned() else {
            return Ok(None);
        };
        let mut p = (*old).clone();
        apply_person_body(&mut p, body, &self.person_fields, &self.user_ids(), false)?;
        if source == "api" && body.contains_key("name") {
            self.name_writes.entry(id).or_default().push(p.name.clone());
        }
        let old_json = self.person_json(&old);
        let mut new_json = self.person_json(&p);
        let prev = previous_values(&old_json, &new_json);
        if prev.is_empty() {
            return Ok(Some((old_json, None)));
        }
        p.update_time = now.max(old.update_time);
        new_json["update_time"] = json!(v2_time(p.update_time));
        index_emails(&mut self.email_index, &old, false);
        index_emails(&mut self.email_index, &p, true);
        self.persons.insert(id, Arc::new(p));
        let mut ev = self.event("person", "change", id, source, user);
        ev.data = Some(new_json.clone());
        ev.previous = Some(Value::Object(prev));
        Ok(Some((new_json, Some(ev))))
    }

    pub(crate) fn delete_person(
        &mut self,
        id: i64,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Option<Event> {
        let old = self.live_person(id).cloned()?;
        let prev_json = self.person_json(&old);
        index_emails(&mut self.email_index, &old, false);
        let mut p = (*old).clone();
        p.is_deleted = true;
        p.update_time = now.max(old.update_time);
        self.persons.insert(id, Arc::new(p));
        let mut ev = self.event("person", "delete", id, source, user);
        ev.previous = Some(prev_json);
        Some(ev)
    }

    /// Merges `id` into `merge_with_id` (which survives and wins conflicts).
    pub(crate) fn merge_persons(
        &mut self,
        id: i64,
        merge_with_id: i64,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Person, Vec<Event>), Invalid> {
        if id == merge_with_id {
            return Err("Cannot merge a person with itself".into());
        }
        let gone = self.live_person(id).cloned().ok_or("Person not found")?;
        let keep = self
            .live_person(merge_with_id)
            .cloned()
            .ok_or("Person to merge with not found")?;
        let mut merged = (*keep).clone();
        let add_channels = |into: &mut Vec<Channel>, from: &[Channel]| {
            for c in from {
                if !into.iter().any(|x| x.value.eq_ignore_ascii_case(&c.value)) {
                    into.push(Channel {
                        primary: false,
                        ..c.clone()
                    });
                }
            }
        };
        add_channels(&mut merged.emails, &gone.emails);
        add_channels(&mut merged.phones, &gone.phones);
        add_channels(&mut merged.im, &gone.im);
        for (k, v) in &gone.custom_fields {
            merged
                .custom_fields
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        merged.org_id = merged.org_id.or(gone.org_id);
        merged.notes = merged.notes.or(gone.notes.clone());
        merged.job_title = merged.job_title.or(gone.job_title.clone());
        merged.update_time = now.max(keep.update_time);
        let keep_json = self.person_json(&keep);
        let merged_json = self.person_json(&merged);
        let mut events = Vec::new();
        let mut del = self
            .delete_person(id, user, source, now)
            .ok_or("Person not found")?;
        del.extra_meta
            .push(("merged_to_id", json!(merge_with_id.to_string())));
        events.push(del);
        index_emails(&mut self.email_index, &keep, false);
        index_emails(&mut self.email_index, &merged, true);
        self.persons.insert(merge_with_id, Arc::new(merged.clone()));
        let deal_ids: Vec<i64> = self
            .deals
            .values()
            .filter(|d| d.person_id == Some(id))
            .map(|d| d.id)
            .collect();
        for did in deal_ids {
            self.deals.modify(did, |d| {
                d.person_id = Some(merge_with_id);
                d.update_time = now;
            });
        }
        let activity_ids: Vec<i64> = self
            .activities
            .values()
            .filter(|a| a.person_id == Some(id) || a.participants.iter().any(|p| p.0 == id))
            .map(|a| a.id)
            .collect();
        for aid in activity_ids {
            self.activities.modify(aid, |a| {
                if a.person_id == Some(id) {
                    a.person_id = Some(merge_with_id);
                }
                for p in a.participants.iter_mut().filter(|p| p.0 == id) {
                    p.0 = merge_with_id;
                }
            });
        }
        let mut ch = self.event("person", "change", merge_with_id, source, user);
        ch.previous = Some(Value::Object(previous_values(&keep_json, &merged_json)));
        ch.data = Some(merged_json);
        ch.extra_meta
            .push(("merged_from_id", json!(id.to_string())));
        events.push(ch);
        Ok((merged, events))
    }

    /// Values of the company's deal fields are checked against their type (keys of no
    /// defined field are stored as given, as before deal fields were simulated).
    fn check_deal_custom_values(&self, body: &Map<String, Value>) -> Result<(), Invalid> {
        if let Some(Value::Object(cf)) = body.get("custom_fields") {
            for (k, v) in cf {
                if let Some(f) = self.deal_fields.iter().find(|f| &f.key == k) {
                    check_custom_value(f, v)?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn create_deal(
        &mut self,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Value, Event), Invalid> {
        let mut d = Deal {
            id: self.next_deal_id,
            title: String::new(),
            creator_user_id: user,
            owner_id: user,
            value: 0.0,
            currency: "EUR".into(),
            person_id: None,
            org_id: None,
            pipeline_id: 1,
            stage_id: 1,
            add_time: now,
            update_time: now,
            stage_change_time: None,
            is_deleted: false,
            is_archived: false,
            status: "open".into(),
            probability: None,
            lost_reason: None,
            visible_to: 3,
            close_time: None,
            won_time: None,
            lost_time: None,
            expected_close_date: None,
            label_ids: Vec::new(),
            custom_fields: Map::new(),
            lead_id: None,
        };
        self.check_deal_custom_values(body)?;
        let users = self.user_ids();
        {
            let stages = &self.stages;
            let persons = &self.persons;
            let sp = |s: i64| stages.iter().find(|x| x.id == s).map(|x| x.pipeline_id);
            let pe = |id: i64| persons.get(&id).is_some_and(|p| !p.is_deleted);
            apply_deal_body(&mut d, body, &users, &sp, &pe, now, true)?;
        }
        self.next_deal_id += 1;
        let json = d.v2_json();
        self.deals.insert(d.id, d.clone());
        let mut ev = self.event("deal", "create", d.id, source, user);
        ev.data = Some(json.clone());
        Ok((json, ev))
    }

    pub(crate) fn update_deal(
        &mut self,
        id: i64,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Option<Event>)>, Invalid> {
        let Some(old) = self.deals.get(&id).filter(|d| !d.is_deleted).cloned() else {
            return Ok(None);
        };
        let mut d = old.clone();
        self.check_deal_custom_values(body)?;
        let users = self.user_ids();
        {
            let stages = &self.stages;
            let persons = &self.persons;
            let sp = |s: i64| stages.iter().find(|x| x.id == s).map(|x| x.pipeline_id);
            let pe = |id: i64| persons.get(&id).is_some_and(|p| !p.is_deleted);
            apply_deal_body(&mut d, body, &users, &sp, &pe, now, false)?;
        }
        let old_json = old.v2_json();
        let prev = previous_values(&old_json, &d.v2_json());
        if prev.is_empty() {
            return Ok(Some((old_json, None)));
        }
        d.update_time = now.max(old.update_time);
        let json = d.v2_json();
        self.deals.insert(id, d);
        let mut ev = self.event("deal", "change", id, source, user);
        ev.data = Some(json.clone());
        ev.previous = Some(Value::Object(prev));
        Ok(Some((json, Some(ev))))
    }

    pub(crate) fn delete_deal(
        &mut self,
        id: i64,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Option<Event> {
        let prev = self.deals.get(&id).filter(|d| !d.is_deleted)?.v2_json();
        self.deals.modify(id, |d| {
            d.is_deleted = true;
            d.update_time = now.max(d.update_time);
        });
        let mut ev = self.event("deal", "delete", id, source, user);
        ev.previous = Some(prev);
        Some(ev)
    }

    pub(crate) fn create_activity(
        &mut self,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<(Value, Event), Invalid> {
        let mut a = Activity {
            id: self.next_activity_id,
            subject: String::new(),
            kind: "task".into(),
            owner_id: user,
            creator_user_id: user,
            is_deleted: false,
            add_time: now,
            update_time: now,
            deal_id: None,
            lead_id: None,
            person_id: None,
            org_id: None,
            project_id: None,
            due_date: None,
            due_time: None,
            duration: None,
            busy: false,
            done: false,
            marked_as_done_time: None,
            location: None,
            participants: Vec::new(),
            attendees: Vec::new(),
            public_description: None,
            priority: None,
            note: None,
        };
        apply_activity_body(&mut a, body, &self.user_ids(), now)?;
        if a.subject.is_empty() {
            a.subject = "Task".into();
        }
        self.next_activity_id += 1;
        let json = a.v2_json();
        self.activities.insert(a.id, a.clone());
        let mut ev = self.event("activity", "create", a.id, source, user);
        ev.data = Some(json.clone());
        Ok((json, ev))
    }

    pub(crate) fn update_activity(
        &mut self,
        id: i64,
        body: &Map<String, Value>,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Result<Option<(Value, Option<Event>)>, Invalid> {
        let Some(old) = self.activities.get(&id).filter(|a| !a.is_deleted).cloned() else {
            return Ok(None);
        };
        let mut a = old.clone();
        apply_activity_body(&mut a, body, &self.user_ids(), now)?;
        let old_json = old.v2_json();
        let prev = previous_values(&old_json, &a.v2_json());
        if prev.is_empty() {
            return Ok(Some((old_json, None)));
        }
        a.update_time = now.max(old.update_time);
        let json = a.v2_json();
        self.activities.insert(id, a);
        let mut ev = self.event("activity", "change", id, source, user);
        ev.data = Some(json.clone());
        ev.previous = Some(Value::Object(prev));
        Ok(Some((json, Some(ev))))
    }

    pub(crate) fn delete_activity(
        &mut self,
        id: i64,
        user: i64,
        source: &'static str,
        now: i64,
    ) -> Option<Event> {
        let prev = self
            .activities
            .get(&id)
            .filter(|a| !a.is_deleted)?
            .v2_json();
        self.activities.modify(id, |a| {
            a.is_deleted = true;
            a.update_time = now.max(a.update_time);
        });
        let mut ev = self.event("activity", "delete", id, source, user);
        ev.previous = Some(prev);
        Some(ev)
    }

    /// Seeds `n` realistic persons (no webhooks are sent for seeded data).
    pub(crate) fn seed_persons(&mut self, n: usize, now: i64, rng: &mut impl Rng) -> Vec<i64> {
        let source_field = self
            .person_fields
            .iter()
            .find(|f| f.name == "Lead source")
            .cloned();
        let tier_key = self
            .person_fields
            .iter()
            .find(|f| f.name == "Customer tier")
            .map(|f| f.key.clone());
        let value_key = self
            .person_fields
            .iter()
            .find(|f| f.name == "Lifetime value")
            .map(|f| f.key.clone());
        let owners = self.user_ids();
        let mut recent: Vec<String> = Vec::new();
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let id = self.next_person_id;
            self.next_person_id += 1;
            let s = seed::person(rng, id as u64, &recent);
            let add = now - s.age_secs;
            let mut p = Person::new(id, owners[rng.gen_range(0..owners.len())], add);
            p.update_time = now - s.touched_secs;
            p.first_name = Some(s.first.clone());
            p.last_name = Some(s.last.clone());
            p.name = format!("{} {}", s.first, s.last);
            p.emails.push(Channel {
                value: s.email.clone(),
                primary: true,
                label: "work".into(),
            });
            if let Some(e) = s.second_email {
                p.emails.push(Channel {
                    value: e,
                    primary: false,
                    label: "home".into(),
                });
            }
            if let Some(ph) = s.phone {
                p.phones.push(Channel {
                    value: ph,
                    primary: true,
                    label: "mobile".into(),
                });
            }
            if let (Some(f), Some(i)) = (&source_field, s.source_option) {
                if let Some((opt, _)) = f.options.get(i) {
                    p.custom_fields.insert(f.key.clone(), json!(opt));
                }
            }
            if let (Some(k), Some(t)) = (&tier_key, s.tier) {
                p.custom_fields.insert(k.clone(), json!(t));
            }
            if let (Some(k), Some(v)) = (&value_key, s.value) {
                p.custom_fields.insert(k.clone(), v);
            }
            if recent.len() < 1000 {
                recent.push(s.email);
            } else {
                let i = rng.gen_range(0..recent.len());
                recent[i] = s.email;
            }
            index_emails(&mut self.email_index, &p, true);
            self.persons.insert(id, Arc::new(p));
            ids.push(id);
        }
        ids
    }
}

/// An OAuth access token.
#[derive(Clone, Debug)]
pub(crate) struct AccessToken {
    pub(crate) company_id: i64,
    pub(crate) user_id: i64,
    pub(crate) expires_at: i64,
    pub(crate) refresh_token: String,
}

/// An OAuth refresh token.
#[derive(Clone, Debug)]
pub(crate) struct RefreshToken {
    pub(crate) company_id: i64,
    pub(crate) user_id: i64,
    pub(crate) expires_at: i64,
}

/// An authorization code.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub(crate) company_id: i64,
    pub(crate) user_id: i64,
    pub(crate) redirect_uri: String,
    pub(crate) expires_at: i64,
}

/// A burst window.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) count: u32,
}

/// One recorded webhook delivery attempt (or a delivery that was never attempted).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Delivery {
    /// The subscription.
    pub webhook_id: i64,
    /// `meta.id` of the event.
    pub event_id: String,
    /// `meta.entity`.
    pub entity: String,
    /// `meta.action`.
    pub action: String,
    /// `meta.entity_id`.
    pub entity_id: i64,
    /// 1..=4; 0 when the delivery was never attempted.
    pub attempt: u32,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// Transport error or reason (`timeout`, `dropped by fault injection`, `webhook banned`,
    /// `not visible to the webhook's user`: never sent, as Pipedrive sends a webhook only what its
    /// user may see).
    pub error: Option<String>,
    /// Whether this attempt succeeded (2xx).
    pub delivered: bool,
    /// The payload that was (or would have been) sent.
    pub body: Value,
}

/// Counters for inspection.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) by_op: HashMap<Op, u64>,
    pub(crate) by_token: HashMap<String, u64>,
    pub(crate) by_token_op: HashMap<(String, Op), u64>,
    pub(crate) spent_by_token: HashMap<String, u64>,
    pub(crate) spent_total: u64,
    pub(crate) rate_limited: u64,
}

/// One company's API traffic (see `SimHandle::company_traffic`).
#[derive(Debug, Default)]
pub(crate) struct CompanyTraffic {
    /// Authenticated calls that reached the rate limiter.
    pub(crate) requests: u64,
    /// Of them, refused with 429 by the burst window or the daily budget.
    pub(crate) rate_limited: u64,
    /// The most admitted (non-search) calls within any one window length, sliding.
    pub(crate) max_in_window: u32,
    /// Admitted calls of the last window length, oldest first.
    pub(crate) recent: std::collections::VecDeque<Instant>,
}

/// The whole simulator state, behind one mutex.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) companies: HashMap<i64, Company>,
    pub(crate) current_company: i64,
    pub(crate) api_domain: String,
    pub(crate) faults: Arc<FaultSpec>,
    pub(crate) limits: RateLimits,
    pub(crate) access_tokens: HashMap<String, AccessToken>,
    pub(crate) refresh_tokens: HashMap<String, RefreshToken>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) exchanged_api_tokens: BTreeSet<String>,
    pub(crate) consent: bool,
    pub(crate) scopes: Vec<String>,
    pub(crate) token_ttl_secs: i64,
    pub(crate) counters: Counters,
    pub(crate) windows: HashMap<String, Window>,
    /// API tokens of companies made with `SimHandle::add_company` (the configured API token
    /// acts in the current company).
    pub(crate) company_api_tokens: HashMap<String, i64>,
    pub(crate) traffic: HashMap<i64, CompanyTraffic>,
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) next_webhook_id: i64,
}

impl State {
    pub(crate) fn current(&self) -> &Company {
        // The current company always exists: `switch_company` creates it.
        &self.companies[&self.current_company]
    }

    pub(crate) fn current_mut(&mut self) -> &mut Company {
        let id = self.current_company;
        self.companies
            .entry(id)
            .or_insert_with(|| unreachable_company(id))
    }
}

fn unreachable_company(id: i64) -> Company {
    Company::empty(id, &format!("Company {id}"), Vec::new(), 0)
}
