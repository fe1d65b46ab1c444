//! The simulator's state: two orgs (production and sandbox) with their records, schema,
//! users and permissions, rules and API usage; the OAuth codes, sessions and refresh tokens;
//! open query cursors. Every write goes through [`Org::create`], [`Org::update`],
//! [`Org::delete`] (the API) or the hooks, so that indexes, timestamps and checks stay in one
//! place.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{json, Map, Value};

use crate::ids::{make_id, parse_id};
use crate::schema::{self, FieldDef, FieldType, ObjectDef};
use crate::soql::{self, Cond, Kind, Typed};

/// Index of the production org in [`State::orgs`].
pub(crate) const PRODUCTION: usize = 0;
/// Index of the sandbox org in [`State::orgs`].
pub(crate) const SANDBOX: usize = 1;

/// The system permissions the simulator checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    /// "API Enabled": without it, login works but every API call is refused
    /// (`API_DISABLED_FOR_ORG`).
    pub api_enabled: bool,
    /// "Modify All Data": read and write every record, whoever owns it.
    pub modify_all_data: bool,
    /// "View All Data": read every record.
    pub view_all_data: bool,
    /// "Customize Application": create custom fields, permission sets, field permissions.
    pub customize_application: bool,
}

impl Permissions {
    /// Every permission (System Administrator).
    pub fn all() -> Self {
        Permissions {
            api_enabled: true,
            modify_all_data: true,
            view_all_data: true,
            customize_application: true,
        }
    }

    /// API Enabled only (Standard User).
    pub fn standard() -> Self {
        Permissions {
            api_enabled: true,
            ..Permissions::default()
        }
    }
}

/// What one user may do: system permissions (profile ∪ assigned permission sets) and
/// field-level security from `FieldPermissions` records.
#[derive(Clone, Debug, Default)]
pub(crate) struct Perms {
    pub(crate) user_id: String,
    pub(crate) flags: Permissions,
    /// `object.field` (lower case) → (read, edit), for fields with FieldPermissions records.
    pub(crate) fls: HashMap<String, (bool, bool)>,
}

/// Who writes: an API session (checks FLS, sharing, rules) or a user of the UI (a hook).
#[derive(Clone, Debug)]
pub(crate) struct Actor {
    pub(crate) perms: Perms,
    /// False for hooks acting as a UI user: no FLS or sharing checks.
    pub(crate) api: bool,
}

/// A record-level error, as Salesforce reports it (`errorCode`/`statusCode`, message, fields).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DmlError {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) fields: Vec<String>,
    /// The `duplicateResut` block of `DUPLICATES_DETECTED`.
    pub(crate) duplicate: Option<Value>,
}

impl DmlError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        DmlError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            duplicate: None,
        }
    }

    pub(crate) fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }

    pub(crate) fn not_found() -> Self {
        DmlError::new(404, "NOT_FOUND", "The requested resource does not exist")
    }
}

/// One record: its values in the order of its object's fields.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) values: Vec<Value>,
    pub(crate) deleted_ms: Option<i64>,
    pub(crate) modstamp_ms: i64,
}

impl Record {
    pub(crate) fn get(&self, pos: usize) -> &Value {
        self.values.get(pos).unwrap_or(&Value::Null)
    }

    fn set(&mut self, pos: usize, v: Value) {
        if self.values.len() <= pos {
            self.values.resize(pos + 1, Value::Null);
        }
        self.values[pos] = v;
    }
}

/// One object's records, with the e-mail and external-id indexes (live records only).
#[derive(Clone, Debug, Default)]
pub(crate) struct Table {
    pub(crate) records: BTreeMap<String, Record>,
    email: HashMap<String, BTreeSet<String>>,
    /// Field position → lower-cased value → ids.
    ext: HashMap<usize, HashMap<String, BTreeSet<String>>>,
}

/// A validation rule: when `condition` holds for the record being saved, the save fails
/// with `FIELD_CUSTOM_VALIDATION_EXCEPTION`.
#[derive(Clone, Debug)]
pub(crate) struct ValidationRule {
    pub(crate) object: &'static str,
    pub(crate) name: String,
    pub(crate) condition: Cond,
    pub(crate) message: String,
    pub(crate) field: Option<String>,
}

/// A custom field created through the Tooling API.
#[derive(Clone, Debug)]
pub(crate) struct CustomField {
    pub(crate) id: String,
    pub(crate) object: &'static str,
    pub(crate) name: String,
    pub(crate) metadata: Value,
    pub(crate) created_ms: i64,
}

/// The org's rolling 24-hour API usage, in one-minute buckets.
#[derive(Clone, Debug)]
pub(crate) struct ApiUsage {
    pub(crate) max: u64,
    buckets: VecDeque<(i64, u64)>,
    used: u64,
}

impl ApiUsage {
    fn new(max: u64) -> Self {
        ApiUsage {
            max,
            buckets: VecDeque::new(),
            used: 0,
        }
    }

    fn prune(&mut self, now_ms: i64) {
        let oldest = now_ms / 60_000 - 24 * 60;
        while let Some(&(minute, n)) = self.buckets.front() {
            if minute > oldest {
                break;
            }
            self.used -= n;
            self.buckets.pop_front();
        }
    }

    /// Calls in the last 24 hours.
    pub(crate) fn used(&mut self, now_ms: i64) -> u64 {
        self.prune(now_ms);
        self.used
    }

    /// Counts one call; false (and nothing counted) when the allocation is used up.
    pub(crate) fn charge(&mut self, now_ms: i64) -> bool {
        self.prune(now_ms);
        if self.used >= self.max {
            return false;
        }
        let minute = now_ms / 60_000;
        match self.buckets.back_mut() {
            Some((m, n)) if *m == minute => *n += 1,
            _ => self.buckets.push_back((minute, 1)),
        }
        self.used += 1;
        true
    }

    pub(crate) fn reset(&mut self) {
        self.buckets.clear();
        self.used = 0;
    }
}

/// One org.
#[derive(Clone, Debug)]
pub(crate) struct Org {
    pub(crate) sandbox: bool,
    pub(crate) org_id: String,
    pod: &'static str,
    pub(crate) schema: HashMap<&'static str, ObjectDef>,
    pub(crate) tables: HashMap<&'static str, Table>,
    seq: u64,
    pub(crate) validation_rules: Vec<ValidationRule>,
    /// Duplicate rules by object: `true` blocks, `false` alerts (API saves pass only with
    /// `Sforce-Duplicate-Rule-Header: allowSave=true`).
    pub(crate) duplicate_rules: HashMap<&'static str, bool>,
    pub(crate) api: ApiUsage,
    /// Org-wide API access (false: every user gets `API_DISABLED_FOR_ORG`).
    pub(crate) api_enabled: bool,
    /// Who signs in at `/services/oauth2/authorize` when no `login_hint` names a user.
    pub(crate) login_user: String,
    pub(crate) custom_fields: Vec<CustomField>,
}

/// `2024-05-01T10:00:00.000+0000`, Salesforce's date-time format.
pub(crate) fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
}

/// Parses a date-time as clients send it: RFC 3339, or Salesforce's `+0000` form.
pub(crate) fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    None
}

fn typed(ft: FieldType, v: &Value) -> Typed {
    match v {
        Value::Null => Typed::Null,
        Value::Bool(b) => Typed::Bool(*b),
        Value::Number(n) => Typed::Number(n.as_f64().unwrap_or_default()),
        Value::String(s) => match ft {
            FieldType::DateTime => parse_datetime(s)
                .map(|d| Typed::Instant(d.timestamp_millis()))
                .unwrap_or(Typed::Null),
            FieldType::Date => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Typed::Date)
                .unwrap_or(Typed::Null),
            _ => Typed::Text(s.clone()),
        },
        _ => Typed::Null,
    }
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        && !domain.contains('@')
}

/// The outcome of an upsert.
pub(crate) enum Upserted {
    Created(String),
    Updated(String),
    Multiple(Vec<String>),
}

/// One change an all-or-none batch can undo.
pub(crate) type Undo = Vec<(&'static str, String, Option<Record>)>;

impl Org {
    pub(crate) fn new(sandbox: bool, api_max: u64, now_ms: i64) -> Self {
        let pod = if sandbox { "8s" } else { "5g" };
        let mut org = Org {
            sandbox,
            org_id: make_id("00D", pod, if sandbox { 2 } else { 1 }),
            pod,
            schema: schema::standard_objects(),
            tables: schema::OBJECTS
                .iter()
                .map(|o| (*o, Table::default()))
                .collect(),
            seq: 0,
            validation_rules: Vec::new(),
            duplicate_rules: [("Lead", true), ("Contact", true)].into_iter().collect(),
            api: ApiUsage::new(api_max),
            api_enabled: true,
            login_user: String::new(),
            custom_fields: Vec::new(),
        };
        let admin_profile = org.add_profile("System Administrator", Permissions::all(), now_ms);
        let std_profile = org.add_profile("Standard User", Permissions::standard(), now_ms);
        let domain = if sandbox {
            "tandem-sim.example.sandbox"
        } else {
            "tandem-sim.example"
        };
        let admin = org.add_user(
            "Ada",
            "Admin",
            &format!("admin@{domain}"),
            &admin_profile,
            now_ms,
        );
        org.add_user(
            "Sam",
            "Sales",
            &format!("sam.sales@{domain}"),
            &std_profile,
            now_ms,
        );
        org.add_user(
            "Riley",
            "Rep",
            &format!("riley.rep@{domain}"),
            &std_profile,
            now_ms,
        );
        org.login_user = admin;
        org
    }

    pub(crate) fn next_id(&mut self, object: &str) -> String {
        self.seq += 1;
        let prefix = self
            .schema
            .get(object)
            .map(|o| o.key_prefix)
            .unwrap_or("000");
        make_id(prefix, self.pod, self.seq)
    }

    pub(crate) fn obj(&self, name: &str) -> Option<&ObjectDef> {
        self.schema.get(schema::canonical_object(name)?)
    }

    fn table(&self, object: &str) -> Option<&Table> {
        self.tables.get(object)
    }

    /// A live or deleted record of `object`.
    pub(crate) fn record(&self, object: &str, id: &str) -> Option<&Record> {
        self.table(object)?.records.get(id)
    }

    /// The object an id belongs to.
    pub(crate) fn object_of(&self, id: &str) -> Option<&'static str> {
        schema::object_of_id(&self.schema, id)
    }

    /// A value of a record by field name.
    pub(crate) fn value(&self, object: &str, id: &str, field: &str) -> Value {
        let Some(pos) = self.schema.get(object).and_then(|o| o.pos(field)) else {
            return Value::Null;
        };
        self.record(object, id)
            .map(|r| r.get(pos).clone())
            .unwrap_or(Value::Null)
    }

    fn insert_raw(
        &mut self,
        object: &'static str,
        fields: &[(&str, Value)],
        owner: Option<&str>,
        at_ms: i64,
    ) -> String {
        let id = self.next_id(object);
        let Some(obj) = self.schema.get(object) else {
            return id;
        };
        let mut rec = Record {
            id: id.clone(),
            values: vec![Value::Null; obj.fields.len()],
            deleted_ms: None,
            modstamp_ms: at_ms,
        };
        for f in &obj.fields {
            if let (Some(d), Some(p)) = (&f.default, obj.pos(&f.name)) {
                rec.set(p, d.clone());
            }
        }
        for (name, v) in fields {
            if let Some(p) = obj.pos(name) {
                rec.set(p, v.clone());
            }
        }
        let creator = owner
            .map(str::to_owned)
            .unwrap_or_else(|| self.login_user.clone());
        stamp_new(obj, &mut rec, &creator, owner, at_ms);
        derive(obj, &mut rec);
        self.put(object, rec);
        id
    }

    /// Inserts a record without checks (seeding), owned by the login user.
    pub(crate) fn seed_insert(
        &mut self,
        object: &'static str,
        fields: &[(&str, Value)],
        at_ms: i64,
    ) -> String {
        self.insert_raw(object, fields, None, at_ms)
    }

    fn add_profile(&mut self, name: &str, flags: Permissions, now_ms: i64) -> String {
        let profile = self.insert_raw(
            "Profile",
            &[("Name", json!(name)), ("UserType", json!("Standard"))],
            None,
            now_ms,
        );
        let ps_name = format!("X00e{}", &profile[3..15]);
        self.insert_raw(
            "PermissionSet",
            &[
                ("Name", json!(ps_name)),
                ("Label", json!(ps_name)),
                ("IsOwnedByProfile", json!(true)),
                ("ProfileId", json!(profile)),
                ("PermissionsApiEnabled", json!(flags.api_enabled)),
                ("PermissionsModifyAllData", json!(flags.modify_all_data)),
                ("PermissionsViewAllData", json!(flags.view_all_data)),
                (
                    "PermissionsCustomizeApplication",
                    json!(flags.customize_application),
                ),
            ],
            None,
            now_ms,
        );
        profile
    }

    pub(crate) fn add_user(
        &mut self,
        first: &str,
        last: &str,
        username: &str,
        profile: &str,
        now_ms: i64,
    ) -> String {
        let alias: String = format!("{}{}", &first[..1.min(first.len())], last)
            .to_lowercase()
            .chars()
            .take(8)
            .collect();
        self.insert_raw(
            "User",
            &[
                ("Username", json!(username)),
                ("FirstName", json!(first)),
                ("LastName", json!(last)),
                ("Email", json!(username)),
                ("Alias", json!(alias)),
                ("IsActive", json!(true)),
                ("ProfileId", json!(profile)),
                ("TimeZoneSidKey", json!("Europe/London")),
            ],
            None,
            now_ms,
        )
    }

    /// Live records of `object` matching `pred` on a field.
    fn live<'a>(&'a self, object: &str) -> impl Iterator<Item = &'a Record> + 'a {
        self.table(object)
            .into_iter()
            .flat_map(|t| t.records.values())
            .filter(|r| r.deleted_ms.is_none())
    }

    fn field_is(&self, object: &str, rec: &Record, field: &str, want: &Value) -> bool {
        self.schema
            .get(object)
            .and_then(|o| o.pos(field))
            .is_some_and(|p| rec.get(p) == want)
    }

    /// The user's users' record id by username (case-insensitive).
    pub(crate) fn user_by_username(&self, username: &str) -> Option<String> {
        let pos = self.schema.get("User")?.pos("Username")?;
        self.live("User")
            .find(|r| {
                r.get(pos)
                    .as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(username))
            })
            .map(|r| r.id.clone())
    }

    /// The permission set owned by a profile.
    pub(crate) fn profile_permission_set(&self, profile: &str) -> Option<String> {
        self.live("PermissionSet")
            .find(|r| {
                self.field_is("PermissionSet", r, "IsOwnedByProfile", &json!(true))
                    && self.field_is("PermissionSet", r, "ProfileId", &json!(profile))
            })
            .map(|r| r.id.clone())
    }

    /// What a user may do.
    pub(crate) fn perms(&self, user_id: &str) -> Perms {
        let mut perms = Perms {
            user_id: user_id.to_owned(),
            ..Perms::default()
        };
        let active = self.value("User", user_id, "IsActive") == json!(true);
        if !active {
            return perms;
        }
        let profile = self.value("User", user_id, "ProfileId");
        let mut sets: Vec<String> = profile
            .as_str()
            .and_then(|p| self.profile_permission_set(p))
            .into_iter()
            .collect();
        sets.extend(
            self.live("PermissionSetAssignment")
                .filter(|r| {
                    self.field_is("PermissionSetAssignment", r, "AssigneeId", &json!(user_id))
                })
                .filter_map(|r| {
                    self.value("PermissionSetAssignment", &r.id, "PermissionSetId")
                        .as_str()
                        .map(str::to_owned)
                }),
        );
        let flag = |ps: &str, f: &str| self.value("PermissionSet", ps, f) == json!(true);
        for ps in &sets {
            perms.flags.api_enabled |= flag(ps, "PermissionsApiEnabled");
            perms.flags.modify_all_data |= flag(ps, "PermissionsModifyAllData");
            perms.flags.view_all_data |= flag(ps, "PermissionsViewAllData");
            perms.flags.customize_application |= flag(ps, "PermissionsCustomizeApplication");
        }
        for r in self.live("FieldPermissions") {
            let parent = self.value("FieldPermissions", &r.id, "ParentId");
            if !parent.as_str().is_some_and(|p| sets.iter().any(|s| s == p)) {
                continue;
            }
            let Some(field) = self
                .value("FieldPermissions", &r.id, "Field")
                .as_str()
                .map(str::to_lowercase)
            else {
                continue;
            };
            let read = self.value("FieldPermissions", &r.id, "PermissionsRead") == json!(true);
            let edit = self.value("FieldPermissions", &r.id, "PermissionsEdit") == json!(true);
            let e = perms.fls.entry(field).or_insert((false, false));
            e.0 |= read || edit;
            e.1 |= edit;
        }
        perms
    }

    /// (readable, editable) of a field for this actor, by field-level security.
    pub(crate) fn field_access(
        &self,
        obj: &ObjectDef,
        f: &FieldDef,
        actor: &Actor,
    ) -> (bool, bool) {
        if !actor.api {
            return (true, true);
        }
        let key = format!("{}.{}", obj.name, f.name).to_lowercase();
        match actor.perms.fls.get(&key) {
            Some(&(r, e)) => (r, e),
            None if f.custom => (true, false),
            None => (true, true),
        }
    }

    /// Whether the actor can see a record (private sharing: owner, View All, Modify All).
    pub(crate) fn visible(&self, obj: &ObjectDef, rec: &Record, actor: &Actor) -> bool {
        if !actor.api || !obj.owned {
            return true;
        }
        let f = &actor.perms.flags;
        f.view_all_data || f.modify_all_data || self.owner_of(obj, rec) == actor.perms.user_id
    }

    fn editable(&self, obj: &ObjectDef, rec: &Record, actor: &Actor) -> bool {
        if !actor.api {
            return true;
        }
        if matches!(
            obj.name,
            "PermissionSet" | "PermissionSetAssignment" | "FieldPermissions"
        ) {
            return actor.perms.flags.customize_application;
        }
        !obj.owned
            || actor.perms.flags.modify_all_data
            || self.owner_of(obj, rec) == actor.perms.user_id
    }

    fn owner_of(&self, obj: &ObjectDef, rec: &Record) -> String {
        obj.pos("OwnerId")
            .and_then(|p| rec.get(p).as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn put(&mut self, object: &'static str, rec: Record) {
        let Some(obj) = self.schema.get(object) else {
            return;
        };
        let Some(table) = self.tables.get_mut(object) else {
            return;
        };
        if let Some(old) = table.records.remove(&rec.id) {
            unindex(obj, table, &old);
        }
        index(obj, table, &rec);
        table.records.insert(rec.id.clone(), rec);
    }

    fn remove(&mut self, object: &'static str, id: &str) {
        let Some(obj) = self.schema.get(object) else {
            return;
        };
        if let Some(table) = self.tables.get_mut(object) {
            if let Some(old) = table.records.remove(id) {
                unindex(obj, table, &old);
            }
        }
    }

    /// Puts back what an all-or-none batch changed, newest first.
    pub(crate) fn rollback(&mut self, undo: Undo) {
        for (object, id, before) in undo.into_iter().rev() {
            match before {
                Some(rec) => self.put(object, rec),
                None => self.remove(object, &id),
            }
        }
    }

    /// Live ids of `object` whose e-mail is `email` (case-insensitive).
    pub(crate) fn by_email(&self, object: &str, email: &str) -> Vec<String> {
        self.table(object)
            .and_then(|t| t.email.get(&email.trim().to_lowercase()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Live ids of `object` whose external-id field `pos` equals `value` (case-insensitive).
    pub(crate) fn by_external_id(&self, object: &str, pos: usize, value: &str) -> Vec<String> {
        self.table(object)
            .and_then(|t| t.ext.get(&pos))
            .and_then(|m| m.get(&value.to_lowercase()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Rebuilds the external-id index of one field (after the field became an external id).
    pub(crate) fn reindex_external(&mut self, object: &'static str, pos: usize) {
        let Some(table) = self.tables.get_mut(object) else {
            return;
        };
        let mut m: HashMap<String, BTreeSet<String>> = HashMap::new();
        for r in table.records.values().filter(|r| r.deleted_ms.is_none()) {
            if let Some(k) = ext_key(r.get(pos)) {
                m.entry(k).or_default().insert(r.id.clone());
            }
        }
        table.ext.insert(pos, m);
    }

    /// Salesforce reads a request's records into typed fields before it saves any: a value of
    /// the wrong JSON type for its field (a string for a checkbox, a word for a number) fails
    /// the whole request with `JSON_PARSER_ERROR`, not just its record.
    pub(crate) fn parse_check(
        &self,
        object: &str,
        body: &Map<String, Value>,
    ) -> Result<(), DmlError> {
        let Some(obj) = self.schema.get(object) else {
            return Ok(());
        };
        for (k, v) in body {
            let Some(f) = obj.field(k) else { continue };
            match self.coerce(f, v) {
                Err(e) if e.code == "JSON_PARSER_ERROR" => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Converts a body value for a field, or says why it cannot be stored.
    fn coerce(&self, f: &FieldDef, v: &Value) -> Result<Value, DmlError> {
        let parse_err = |what: &str| {
            DmlError::new(
                400,
                "JSON_PARSER_ERROR",
                format!(
                    "Cannot deserialize instance of {what} from {} value {} or request may be missing a required field",
                    json_token(v),
                    v
                ),
            )
        };
        if v.is_null() {
            return Ok(Value::Null);
        }
        let field_err = |code: &'static str, msg: String| {
            DmlError::new(400, code, msg).with_fields(vec![f.name.clone()])
        };
        Ok(match f.ftype {
            FieldType::String
            | FieldType::Email
            | FieldType::Phone
            | FieldType::Url
            | FieldType::TextArea
            | FieldType::Picklist => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err(parse_err("string")),
                };
                if f.length > 0 && s.chars().count() > f.length as usize {
                    return Err(field_err(
                        "STRING_TOO_LONG",
                        format!(
                            "{}: data value too large: {} (max length={})",
                            f.label, s, f.length
                        ),
                    ));
                }
                if f.ftype == FieldType::Email && !s.is_empty() && !valid_email(&s) {
                    return Err(field_err(
                        "INVALID_EMAIL_ADDRESS",
                        format!("{}: invalid email address: {s}", f.label),
                    ));
                }
                if s.is_empty() {
                    Value::Null
                } else {
                    Value::String(s)
                }
            }
            FieldType::Id | FieldType::Reference => {
                let s = v.as_str().ok_or_else(|| parse_err("reference"))?;
                if s.is_empty() {
                    return Ok(Value::Null);
                }
                let id = parse_id(s).ok_or_else(|| {
                    field_err(
                        "MALFORMED_ID",
                        format!("{}: id value of incorrect type: {s}", f.label),
                    )
                })?;
                let target = self.object_of(&id);
                if !target.is_some_and(|t| f.reference_to.contains(&t)) {
                    return Err(field_err(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: id value of incorrect type: {s}", f.label),
                    ));
                }
                let live = target
                    .and_then(|t| self.record(t, &id))
                    .is_some_and(|r| r.deleted_ms.is_none());
                if !live {
                    return Err(field_err(
                        "INVALID_CROSS_REFERENCE_KEY",
                        "invalid cross reference id".into(),
                    ));
                }
                Value::String(id)
            }
            FieldType::Boolean => Value::Bool(v.as_bool().ok_or_else(|| parse_err("boolean"))?),
            FieldType::Double | FieldType::Currency | FieldType::Percent => {
                let n = match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| parse_err("double"))?;
                json!(n)
            }
            FieldType::Int => {
                let n = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                }
                .ok_or_else(|| parse_err("int"))?;
                json!(n)
            }
            FieldType::Date => {
                let s = v.as_str().ok_or_else(|| parse_err("date"))?;
                let d = NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
                    .map_err(|_| parse_err("date"))?;
                json!(d.format("%Y-%m-%d").to_string())
            }
            FieldType::DateTime => {
                let s = v.as_str().ok_or_else(|| parse_err("datetime"))?;
                let d = parse_datetime(s).ok_or_else(|| parse_err("datetime"))?;
                json!(iso(d.timestamp_millis()))
            }
        })
    }

    /// Applies body fields to `rec` with the checks of an insert (`creating`) or update.
    fn apply_body(
        &self,
        obj: &ObjectDef,
        rec: &mut Record,
        body: &Map<String, Value>,
        actor: &Actor,
        creating: bool,
    ) -> Result<(), DmlError> {
        let mut not_writable = Vec::new();
        let mut changes = Vec::new();
        for (k, v) in body {
            if k == "attributes" {
                continue;
            }
            let field = obj.field(k).filter(|f| self.field_access(obj, f, actor).0);
            let Some(f) = field else {
                return Err(DmlError::new(
                    400,
                    "INVALID_FIELD",
                    format!("No such column '{k}' on sobject of type {}", obj.name),
                ));
            };
            if f.name == "Id" && !creating {
                continue;
            }
            let allowed = if creating { f.createable } else { f.updateable };
            let fls = self.field_access(obj, f, actor).1;
            if actor.api && !(allowed && fls) {
                not_writable.push(f.name.clone());
                continue;
            }
            changes.push((f, v));
        }
        if !not_writable.is_empty() {
            return Err(DmlError::new(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                format!(
                    "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                    not_writable.join(", ")
                ),
            )
            .with_fields(not_writable));
        }
        for (f, v) in changes {
            let value = self.coerce(f, v)?;
            if let Some(p) = obj.pos(&f.name) {
                rec.set(p, value);
            }
        }
        Ok(())
    }

    /// Required fields, validation rules and duplicate rules, on the record as it would be saved.
    fn check_rules(
        &self,
        obj: &ObjectDef,
        rec: &Record,
        actor: &Actor,
        allow_dup: bool,
        now_ms: i64,
    ) -> Result<(), DmlError> {
        let missing: Vec<String> = obj
            .fields
            .iter()
            .filter(|f| f.required && f.createable)
            .filter(|f| obj.pos(&f.name).is_none_or(|p| rec.get(p).is_null()))
            .map(|f| f.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(DmlError::new(
                400,
                "REQUIRED_FIELD_MISSING",
                format!("Required fields are missing: [{}]", missing.join(", ")),
            )
            .with_fields(missing));
        }
        for rule in self
            .validation_rules
            .iter()
            .filter(|r| r.object == obj.name)
        {
            let get = |name: &str| {
                obj.field(name)
                    .map(|f| {
                        let p = obj.pos(&f.name).unwrap_or(usize::MAX);
                        (f.ftype.kind(), typed(f.ftype, rec.get(p)))
                    })
                    .unwrap_or((Kind::Text, Typed::Null))
            };
            if soql::eval(&rule.condition, &get, now_ms) {
                return Err(DmlError::new(
                    400,
                    "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                    rule.message.clone(),
                )
                .with_fields(rule.field.iter().cloned().collect()));
            }
        }
        let rule = self.duplicate_rules.get(obj.name).copied();
        if actor.api && rule.is_some_and(|block| block || !allow_dup) {
            if let Some(email) = obj.pos("Email").and_then(|p| rec.get(p).as_str()) {
                let converted = obj.pos("IsConverted");
                let matches: Vec<String> = self
                    .by_email(obj.name, email)
                    .into_iter()
                    .filter(|id| *id != rec.id)
                    .filter(|id| {
                        converted.is_none_or(|p| {
                            self.record(obj.name, id)
                                .is_none_or(|r| r.get(p) != &json!(true))
                        })
                    })
                    .collect();
                if !matches.is_empty() {
                    let mut e = DmlError::new(
                        400,
                        "DUPLICATES_DETECTED",
                        "You're creating a duplicate record. We recommend you use an existing record instead.",
                    );
                    e.duplicate = Some(json!({
                        "allowSave": rule == Some(false),
                        "duplicateRule": format!("Standard_{}_Duplicate_Rule", obj.name),
                        "duplicateRuleEntityType": obj.name,
                        "errorMessage": "You're creating a duplicate record. We recommend you use an existing record instead.",
                        "matchResults": [{
                            "entityType": obj.name,
                            "errors": [],
                            "matchEngine": "ExactMatchEngine",
                            "matchRecords": matches.iter().map(|id| json!({
                                "additionalInformation": [],
                                "fieldDiffs": [],
                                "matchConfidence": 100.0,
                                "record": {"attributes": {"type": obj.name}, "Id": id}
                            })).collect::<Vec<_>>(),
                            "rule": format!("Standard_{}_Match_Rule_v1_0", obj.name),
                            "size": matches.len(),
                            "success": true
                        }]
                    }));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Inserts a record (API create, composite create, upsert's insert, hooks).
    pub(crate) fn create(
        &mut self,
        object: &'static str,
        body: &Map<String, Value>,
        actor: &Actor,
        allow_dup: bool,
        now_ms: i64,
        undo: Option<&mut Undo>,
    ) -> Result<String, DmlError> {
        let obj = self.schema.get(object).ok_or_else(DmlError::not_found)?;
        if actor.api && !obj.createable {
            return Err(DmlError::new(
                400,
                "INVALID_TYPE_FOR_OPERATION",
                format!("entity type cannot be inserted: {object}"),
            ));
        }
        if actor.api
            && matches!(
                object,
                "PermissionSet" | "PermissionSetAssignment" | "FieldPermissions"
            )
            && !actor.perms.flags.customize_application
        {
            return Err(DmlError::new(
                400,
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
            ));
        }
        let mut rec = Record {
            id: String::new(),
            values: vec![Value::Null; obj.fields.len()],
            deleted_ms: None,
            modstamp_ms: now_ms,
        };
        for f in &obj.fields {
            if let (Some(d), Some(p)) = (&f.default, obj.pos(&f.name)) {
                rec.set(p, d.clone());
            }
        }
        self.apply_body(obj, &mut rec, body, actor, true)?;
        let owner = obj
            .pos("OwnerId")
            .and_then(|p| rec.get(p).as_str().map(str::to_owned));
        if let Some(o) = &owner {
            if self.value("User", o, "IsActive") != json!(true) {
                return Err(DmlError::new(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    "invalid cross reference id",
                )
                .with_fields(vec!["OwnerId".into()]));
            }
        }
        if object == "FieldPermissions" {
            self.check_field_permission(&rec)?;
        }
        if object == "CampaignMember" {
            self.check_campaign_member(obj, &rec)?;
        }
        derive(obj, &mut rec);
        self.check_rules(obj, &rec, actor, allow_dup, now_ms)?;
        self.check_unique(obj, &rec)?;
        let actor_id = actor.perms.user_id.clone();
        let obj = obj.clone();
        rec.id = self.next_id(object);
        stamp_new(
            &obj,
            &mut rec,
            &actor_id,
            owner.as_deref().or(Some(&actor_id)),
            now_ms,
        );
        let id = rec.id.clone();
        self.put(object, rec);
        if let Some(u) = undo {
            u.push((object, id.clone(), None));
        }
        Ok(id)
    }

    fn check_field_permission(&self, rec: &Record) -> Result<(), DmlError> {
        let Some(obj) = self.schema.get("FieldPermissions") else {
            return Ok(());
        };
        let get = |n: &str| obj.pos(n).map(|p| rec.get(p).clone()).unwrap_or_default();
        let field = get("Field");
        let sobject = get("SobjectType");
        let bad = || {
            DmlError::new(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                format!(
                    "Field Name: bad value for restricted picklist field: {}",
                    field.as_str().unwrap_or_default()
                ),
            )
            .with_fields(vec!["Field".into()])
        };
        let (Some(f), Some(s)) = (field.as_str(), sobject.as_str()) else {
            return Err(bad());
        };
        let Some((o, name)) = f.split_once('.') else {
            return Err(bad());
        };
        let target = self.obj(o).filter(|t| t.name.eq_ignore_ascii_case(s));
        if target.and_then(|t| t.field(name)).is_none() {
            return Err(bad());
        }
        Ok(())
    }

    /// A CampaignMember names a Lead or a Contact, and one person is a member of a campaign
    /// once: Salesforce refuses a second with 400 `DUPLICATE_VALUE` "Already a campaign
    /// member." (no `fields`).
    fn check_campaign_member(&self, obj: &ObjectDef, rec: &Record) -> Result<(), DmlError> {
        let get = |n: &str| {
            obj.pos(n)
                .and_then(|p| rec.get(p).as_str().map(str::to_owned))
        };
        let campaign = get("CampaignId");
        let (column, person) = match (get("LeadId"), get("ContactId")) {
            (Some(lead), _) => ("LeadId", lead),
            (None, Some(contact)) => ("ContactId", contact),
            (None, None) => {
                return Err(DmlError::new(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    "Required fields are missing: [LeadId, ContactId]",
                )
                .with_fields(vec!["LeadId".into(), "ContactId".into()]))
            }
        };
        let (Some(cpos), Some(ppos)) = (obj.pos("CampaignId"), obj.pos(column)) else {
            return Ok(());
        };
        let duplicate = self.table("CampaignMember").is_some_and(|t| {
            t.records.values().any(|r| {
                r.deleted_ms.is_none()
                    && r.get(cpos).as_str() == campaign.as_deref()
                    && r.get(ppos).as_str() == Some(person.as_str())
            })
        });
        if duplicate {
            return Err(DmlError::new(
                400,
                "DUPLICATE_VALUE",
                "Already a campaign member.",
            ));
        }
        Ok(())
    }

    fn check_unique(&self, obj: &ObjectDef, rec: &Record) -> Result<(), DmlError> {
        for f in obj.fields.iter().filter(|f| f.unique) {
            let Some(p) = obj.pos(&f.name) else { continue };
            let Some(key) = ext_key(rec.get(p)) else {
                continue;
            };
            if let Some(other) = self
                .by_external_id(obj.name, p, &key)
                .into_iter()
                .find(|id| *id != rec.id)
            {
                return Err(DmlError::new(
                    400,
                    "DUPLICATE_VALUE",
                    format!(
                        "duplicate value found: {} duplicates value on record with id: {other}",
                        f.name
                    ),
                )
                .with_fields(vec![f.name.clone()]));
            }
        }
        Ok(())
    }

    /// Updates a record (API update, composite update, upsert's update, UI edits).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        object: &'static str,
        id: &str,
        body: &Map<String, Value>,
        actor: &Actor,
        allow_dup: bool,
        now_ms: i64,
        undo: Option<&mut Undo>,
    ) -> Result<(), DmlError> {
        let obj = self.schema.get(object).ok_or_else(DmlError::not_found)?;
        let before = self
            .record(object, id)
            .filter(|r| self.visible(obj, r, actor))
            .ok_or_else(DmlError::not_found)?;
        if before.deleted_ms.is_some() {
            return Err(DmlError::new(404, "ENTITY_IS_DELETED", "entity is deleted"));
        }
        if actor.api && !obj.createable {
            return Err(DmlError::new(
                400,
                "INVALID_TYPE_FOR_OPERATION",
                format!("entity type cannot be updated: {object}"),
            ));
        }
        if !self.editable(obj, before, actor) {
            return Err(DmlError::new(
                400,
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
            ));
        }
        if actor.api
            && obj
                .pos("IsConverted")
                .is_some_and(|p| before.get(p) == &json!(true))
        {
            return Err(DmlError::new(
                400,
                "CANNOT_UPDATE_CONVERTED_LEAD",
                "cannot reference converted lead",
            ));
        }
        let mut rec = before.clone();
        self.apply_body(obj, &mut rec, body, actor, false)?;
        derive(obj, &mut rec);
        self.check_rules(obj, &rec, actor, allow_dup, now_ms)?;
        self.check_unique(obj, &rec)?;
        touch(obj, &mut rec, &actor.perms.user_id, now_ms);
        let before = before.clone();
        self.put(object, rec);
        if let Some(u) = undo {
            u.push((object, id.to_owned(), Some(before)));
        }
        Ok(())
    }

    /// Moves a record to the recycle bin (`IsDeleted`, shown by queryAll and getDeleted).
    pub(crate) fn delete(
        &mut self,
        object: &'static str,
        id: &str,
        actor: &Actor,
        now_ms: i64,
        mut undo: Option<&mut Undo>,
    ) -> Result<(), DmlError> {
        let obj = self.schema.get(object).ok_or_else(DmlError::not_found)?;
        let before = self
            .record(object, id)
            .filter(|r| self.visible(obj, r, actor))
            .ok_or_else(DmlError::not_found)?;
        if before.deleted_ms.is_some() {
            return Err(DmlError::new(404, "ENTITY_IS_DELETED", "entity is deleted"));
        }
        if (actor.api && !obj.createable) || !self.editable(obj, before, actor) {
            return Err(DmlError::new(
                400,
                "INSUFFICIENT_ACCESS_OR_READONLY",
                "insufficient access rights on object id",
            ));
        }
        let mut rec = before.clone();
        let before = before.clone();
        mark_deleted(obj, &mut rec, &actor.perms.user_id, now_ms);
        self.put(object, rec);
        if let Some(u) = undo.as_deref_mut() {
            u.push((object, id.to_owned(), Some(before)));
        }
        if object == "Opportunity" {
            // An Opportunity's contact roles are deleted with it.
            let roles = "OpportunityContactRole";
            let role_def = self.schema.get(roles).ok_or_else(DmlError::not_found)?;
            let gone: Vec<(Record, Record)> = self
                .live(roles)
                .filter(|r| self.field_is(roles, r, "OpportunityId", &json!(id)))
                .map(|role| {
                    let mut gone = role.clone();
                    mark_deleted(role_def, &mut gone, &actor.perms.user_id, now_ms);
                    (role.clone(), gone)
                })
                .collect();
            for (role, gone) in gone {
                self.put(roles, gone);
                if let Some(u) = undo.as_deref_mut() {
                    u.push((roles, role.id.clone(), Some(role)));
                }
            }
        }
        Ok(())
    }

    /// Upsert by an external-id field.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn upsert(
        &mut self,
        object: &'static str,
        pos: usize,
        value: &str,
        body: &Map<String, Value>,
        actor: &Actor,
        allow_dup: bool,
        now_ms: i64,
        undo: Option<&mut Undo>,
    ) -> Result<Upserted, DmlError> {
        let obj = self.schema.get(object).ok_or_else(DmlError::not_found)?;
        let field = obj
            .fields
            .get(pos)
            .ok_or_else(DmlError::not_found)?
            .name
            .clone();
        let hits: Vec<String> = self
            .by_external_id(object, pos, value)
            .into_iter()
            .filter(|id| {
                self.record(object, id)
                    .is_some_and(|r| self.visible(obj, r, actor))
            })
            .collect();
        let mut body = body.clone();
        body.retain(|k, _| !k.eq_ignore_ascii_case(&field));
        match hits.as_slice() {
            [] => {
                body.insert(field, Value::String(value.to_owned()));
                self.create(object, &body, actor, allow_dup, now_ms, undo)
                    .map(Upserted::Created)
            }
            [one] => {
                let one = one.clone();
                self.update(object, &one, &body, actor, allow_dup, now_ms, undo)
                    .map(|()| Upserted::Updated(one))
            }
            _ => Ok(Upserted::Multiple(hits)),
        }
    }

    /// Converts a lead as a user would in the UI: an Account (named after the Company) and a
    /// Contact are created unless given, the lead is marked converted.
    pub(crate) fn convert_lead(
        &mut self,
        lead_id: &str,
        account: Option<&str>,
        contact: Option<&str>,
        now_ms: i64,
    ) -> Result<(String, String), DmlError> {
        let rec = self
            .record("Lead", lead_id)
            .filter(|r| r.deleted_ms.is_none())
            .cloned()
            .ok_or_else(DmlError::not_found)?;
        let lead = self
            .schema
            .get("Lead")
            .cloned()
            .ok_or_else(DmlError::not_found)?;
        if lead
            .pos("IsConverted")
            .is_some_and(|p| rec.get(p) == &json!(true))
        {
            return Err(DmlError::new(
                400,
                "CANNOT_UPDATE_CONVERTED_LEAD",
                "cannot reference converted lead",
            ));
        }
        let get = |n: &str| lead.pos(n).map(|p| rec.get(p).clone()).unwrap_or_default();
        let owner = get("OwnerId");
        let owner_id = owner.as_str().unwrap_or_default().to_owned();
        let ui = Actor {
            perms: Perms {
                user_id: owner_id.clone(),
                flags: Permissions::all(),
                fls: HashMap::new(),
            },
            api: false,
        };
        let lead_values: Vec<(String, Value)> = lead
            .fields
            .iter()
            .map(|f| (f.name.clone(), get(&f.name)))
            .collect();
        let account_id = match account {
            Some(a) => a.to_owned(),
            None => {
                let mut b = Map::new();
                let company = get("Company");
                b.insert(
                    "Name".into(),
                    if company.is_null() {
                        json!("Unknown")
                    } else {
                        company
                    },
                );
                b.insert("OwnerId".into(), owner.clone());
                self.create("Account", &b, &ui, true, now_ms, None)?
            }
        };
        let contact_id = match contact {
            Some(c) => c.to_owned(),
            None => {
                let contact_obj = self.schema.get("Contact").ok_or_else(DmlError::not_found)?;
                let mut b = Map::new();
                for (name, v) in &lead_values {
                    let copy = matches!(
                        name.as_str(),
                        "FirstName"
                            | "LastName"
                            | "Salutation"
                            | "Title"
                            | "Email"
                            | "Phone"
                            | "MobilePhone"
                            | "LeadSource"
                            | "Description"
                            | "HasOptedOutOfEmail"
                            | "DoNotCall"
                            | "OwnerId"
                    ) || (name.ends_with("__c") && contact_obj.field(name).is_some());
                    if copy && !v.is_null() {
                        b.insert(name.clone(), v.clone());
                    }
                }
                b.insert("AccountId".into(), json!(account_id));
                self.create("Contact", &b, &ui, true, now_ms, None)?
            }
        };
        let mut rec = rec;
        let today = Utc
            .timestamp_millis_opt(now_ms)
            .single()
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        for (n, v) in [
            ("IsConverted", json!(true)),
            ("ConvertedAccountId", json!(account_id)),
            ("ConvertedContactId", json!(contact_id)),
            ("ConvertedDate", json!(today)),
            ("Status", json!("Closed - Converted")),
        ] {
            if let Some(p) = lead.pos(n) {
                rec.set(p, v);
            }
        }
        touch(&lead, &mut rec, &owner_id, now_ms);
        self.put("Lead", rec);
        Ok((account_id, contact_id))
    }

    /// Merges records as a user would: the losers are deleted with `MasterRecordId` set, the
    /// master's modstamp moves, and (for accounts) the losers' contacts move to the master.
    pub(crate) fn merge(
        &mut self,
        object: &'static str,
        master: &str,
        losers: &[String],
        user: &str,
        now_ms: i64,
    ) -> Result<(), DmlError> {
        let obj = self
            .schema
            .get(object)
            .ok_or_else(DmlError::not_found)?
            .clone();
        let mut m = self
            .record(object, master)
            .filter(|r| r.deleted_ms.is_none())
            .cloned()
            .ok_or_else(DmlError::not_found)?;
        for id in losers {
            let mut l = self
                .record(object, id)
                .filter(|r| r.deleted_ms.is_none())
                .cloned()
                .ok_or_else(DmlError::not_found)?;
            if let Some(p) = obj.pos("MasterRecordId") {
                l.set(p, json!(master));
            }
            mark_deleted(&obj, &mut l, user, now_ms);
            self.put(object, l);
        }
        if object == "Account" {
            let contacts: Vec<String> = self
                .live("Contact")
                .filter(|r| {
                    losers
                        .iter()
                        .any(|l| self.field_is("Contact", r, "AccountId", &json!(l)))
                })
                .map(|r| r.id.clone())
                .collect();
            for c in contacts {
                let mut b = Map::new();
                b.insert("AccountId".into(), json!(master));
                let ui = Actor {
                    perms: Perms {
                        user_id: user.to_owned(),
                        flags: Permissions::all(),
                        fls: HashMap::new(),
                    },
                    api: false,
                };
                self.update("Contact", &c, &b, &ui, true, now_ms, None)?;
            }
        }
        touch(&obj, &mut m, user, now_ms);
        self.put(object, m);
        Ok(())
    }

    /// Adds a custom field (Tooling API `CustomField`, or a hook). Nobody may edit it until a
    /// `FieldPermissions` record grants Edit.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_custom_field(
        &mut self,
        object: &str,
        name: &str,
        metadata: &Value,
        now_ms: i64,
    ) -> Result<String, DmlError> {
        let obj_name = schema::canonical_object(object)
            .filter(|o| {
                matches!(
                    *o,
                    "Lead" | "Contact" | "Account" | "Opportunity" | "Task" | "Campaign"
                )
            })
            .ok_or_else(|| {
                DmlError::new(
                    400,
                    "FIELD_INTEGRITY_EXCEPTION",
                    format!("Invalid entity: {object}"),
                )
            })?;
        let valid = name.ends_with("__c")
            && name.len() > 3
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.trim_end_matches("__c").contains("__");
        if !valid {
            return Err(DmlError::new(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                format!("Invalid field name: {name}"),
            ));
        }
        let obj = self
            .schema
            .get_mut(obj_name)
            .ok_or_else(DmlError::not_found)?;
        if obj.field(name).is_some() {
            return Err(DmlError::new(
                400,
                "DUPLICATE_DEVELOPER_NAME",
                format!(
                    "There's already a field named {} on {obj_name}.",
                    name.trim_end_matches("__c")
                ),
            ));
        }
        let mtype = metadata
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Text");
        let ftype = FieldType::from_metadata(mtype).ok_or_else(|| {
            DmlError::new(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                format!("Invalid type: {mtype}"),
            )
        })?;
        let length = metadata
            .get("length")
            .and_then(Value::as_u64)
            .map(|n| n as u32)
            .unwrap_or(match ftype {
                FieldType::String => 255,
                FieldType::TextArea => 32_768,
                FieldType::Email | FieldType::Url | FieldType::Picklist => 255,
                FieldType::Phone => 40,
                _ => 0,
            });
        let flag = |k: &str| metadata.get(k).and_then(Value::as_bool).unwrap_or(false);
        let external_id = flag("externalId");
        let unique = flag("unique");
        let label = metadata
            .get("label")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| name.trim_end_matches("__c").replace('_', " "));
        obj.add_field(FieldDef {
            name: name.to_owned(),
            label,
            ftype,
            length,
            createable: true,
            updateable: true,
            nillable: ftype != FieldType::Boolean,
            required: false,
            external_id,
            unique,
            custom: true,
            picklist: Vec::new(),
            reference_to: Vec::new(),
            default: (ftype == FieldType::Boolean).then_some(json!(false)),
        });
        let pos = obj.fields.len() - 1;
        let canonical = obj.fields[pos].name.clone();
        if external_id || unique {
            self.reindex_external(obj_name, pos);
        }
        let id = self.next_id("CustomField");
        let id = format!("00N{}", &id[3..]);
        self.custom_fields.push(CustomField {
            id: id.clone(),
            object: obj_name,
            name: canonical,
            metadata: metadata.clone(),
            created_ms: now_ms,
        });
        Ok(id)
    }

    /// Resolves a condition's field names against an object (canonical names, readable by
    /// the actor) and checks its literals; the error is `(field as written, message)`.
    pub(crate) fn bind_condition(
        &self,
        obj: &ObjectDef,
        cond: &mut Cond,
        actor: &Actor,
    ) -> Result<(), (String, Option<String>)> {
        for name in cond.fields() {
            let f = obj
                .field(name)
                .filter(|f| self.field_access(obj, f, actor).0)
                .ok_or_else(|| (name.to_owned(), None))?;
            let _ = f;
        }
        cond.map_fields(&|n| {
            obj.field(n)
                .map(|f| f.name.clone())
                .unwrap_or_else(|| n.to_owned())
        });
        check_literals(obj, cond).map_err(|(f, m)| (f, Some(m)))
    }

    /// A typed value of a record for SOQL.
    pub(crate) fn typed_value(obj: &ObjectDef, rec: &Record, field: &str) -> (Kind, Typed) {
        let Some(p) = obj.pos(field) else {
            return (Kind::Text, Typed::Null);
        };
        let f = &obj.fields[p];
        if f.name == "SystemModstamp" {
            return (Kind::DateTime, Typed::Instant(rec.modstamp_ms));
        }
        (f.ftype.kind(), typed(f.ftype, rec.get(p)))
    }
}

fn check_literals(obj: &ObjectDef, cond: &Cond) -> Result<(), (String, String)> {
    match cond {
        Cond::And(cs) | Cond::Or(cs) => cs.iter().try_for_each(|c| check_literals(obj, c)),
        Cond::Not(c) => check_literals(obj, c),
        Cond::Cmp { field, value, .. } => kind_check(obj, field, std::slice::from_ref(value)),
        Cond::In { field, values, .. } => kind_check(obj, field, values),
        Cond::Like { field, .. } => match obj.field(field).map(|f| f.ftype.kind()) {
            Some(Kind::Text) | None => Ok(()),
            Some(_) => Err((
                field.clone(),
                format!("invalid operator on {} field: {field}", "non-string"),
            )),
        },
    }
}

fn kind_check(
    obj: &ObjectDef,
    field: &str,
    values: &[soql::Literal],
) -> Result<(), (String, String)> {
    let Some(f) = obj.field(field) else {
        return Ok(());
    };
    for v in values {
        soql::check_literal(&f.name, f.ftype.kind(), v).map_err(|m| (field.to_owned(), m))?;
    }
    Ok(())
}

fn json_token(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "VALUE_STRING",
        Value::Number(_) => "VALUE_NUMBER_INT",
        Value::Bool(true) => "VALUE_TRUE",
        Value::Bool(false) => "VALUE_FALSE",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
        Value::Null => "VALUE_NULL",
    }
}

fn ext_key(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn index(obj: &ObjectDef, table: &mut Table, rec: &Record) {
    if rec.deleted_ms.is_some() {
        return;
    }
    if let Some(e) = obj.pos("Email").and_then(|p| rec.get(p).as_str()) {
        table
            .email
            .entry(e.trim().to_lowercase())
            .or_default()
            .insert(rec.id.clone());
    }
    for (i, f) in obj.fields.iter().enumerate() {
        if f.external_id || f.unique {
            if let Some(k) = ext_key(rec.get(i)) {
                table
                    .ext
                    .entry(i)
                    .or_default()
                    .entry(k)
                    .or_default()
                    .insert(rec.id.clone());
            }
        }
    }
}

fn unindex(obj: &ObjectDef, table: &mut Table, rec: &Record) {
    if let Some(e) = obj.pos("Email").and_then(|p| rec.get(p).as_str()) {
        let key = e.trim().to_lowercase();
        if let Some(set) = table.email.get_mut(&key) {
            set.remove(&rec.id);
            if set.is_empty() {
                table.email.remove(&key);
            }
        }
    }
    for (i, f) in obj.fields.iter().enumerate() {
        if f.external_id || f.unique {
            if let (Some(k), Some(m)) = (ext_key(rec.get(i)), table.ext.get_mut(&i)) {
                if let Some(set) = m.get_mut(&k) {
                    set.remove(&rec.id);
                    if set.is_empty() {
                        m.remove(&k);
                    }
                }
            }
        }
    }
}

fn set_by_name(obj: &ObjectDef, rec: &mut Record, name: &str, v: Value) {
    if let Some(p) = obj.pos(name) {
        rec.set(p, v);
    }
}

fn stamp_new(obj: &ObjectDef, rec: &mut Record, creator: &str, owner: Option<&str>, now_ms: i64) {
    set_by_name(obj, rec, "Id", json!(rec.id));
    if obj.owned {
        let current = obj.pos("OwnerId").map(|p| rec.get(p).clone());
        if current.is_none_or(|v| v.is_null()) {
            set_by_name(obj, rec, "OwnerId", json!(owner.unwrap_or(creator)));
        }
    }
    set_by_name(obj, rec, "IsDeleted", json!(false));
    set_by_name(obj, rec, "CreatedDate", json!(iso(now_ms)));
    set_by_name(obj, rec, "CreatedById", json!(creator));
    touch(obj, rec, creator, now_ms);
}

fn touch(obj: &ObjectDef, rec: &mut Record, user: &str, now_ms: i64) {
    rec.modstamp_ms = now_ms;
    set_by_name(obj, rec, "LastModifiedDate", json!(iso(now_ms)));
    set_by_name(obj, rec, "LastModifiedById", json!(user));
    set_by_name(obj, rec, "SystemModstamp", json!(iso(now_ms)));
}

fn mark_deleted(obj: &ObjectDef, rec: &mut Record, user: &str, now_ms: i64) {
    rec.deleted_ms = Some(now_ms);
    set_by_name(obj, rec, "IsDeleted", json!(true));
    touch(obj, rec, user, now_ms);
}

/// Calculated fields: `Name` of people, `IsConverted` default, `IsClosed`/`IsWon`.
fn derive(obj: &ObjectDef, rec: &mut Record) {
    let get = |rec: &Record, n: &str| {
        obj.pos(n)
            .and_then(|p| rec.get(p).as_str().map(str::to_owned))
    };
    match obj.name {
        "Lead" | "Contact" | "User" => {
            let name = [get(rec, "FirstName"), get(rec, "LastName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            set_by_name(
                obj,
                rec,
                "Name",
                if name.is_empty() {
                    Value::Null
                } else {
                    json!(name)
                },
            );
            if obj.name == "Lead" && obj.pos("IsConverted").is_some_and(|p| rec.get(p).is_null()) {
                set_by_name(obj, rec, "IsConverted", json!(false));
            }
        }
        "Opportunity" => {
            let stage = get(rec, "StageName").unwrap_or_default();
            set_by_name(obj, rec, "IsClosed", json!(stage.starts_with("Closed")));
            set_by_name(obj, rec, "IsWon", json!(stage == "Closed Won"));
        }
        "Task" => {
            let status = get(rec, "Status").unwrap_or_default();
            set_by_name(obj, rec, "IsClosed", json!(status == "Completed"));
        }
        _ => {}
    }
}

/// An authorization code waiting for `/services/oauth2/token`.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub(crate) org: usize,
    pub(crate) user: String,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: Option<String>,
    pub(crate) expires_ms: i64,
}

/// An access token.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) org: usize,
    pub(crate) user: String,
    pub(crate) expires_ms: i64,
    /// The refresh token it was issued with or from.
    pub(crate) refresh: Option<String>,
}

/// A refresh token (the app's grant).
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub(crate) org: usize,
    pub(crate) user: String,
    pub(crate) client_id: String,
}

/// Rows of a query waiting for `nextRecordsUrl`.
#[derive(Clone, Debug)]
pub(crate) struct Cursor {
    pub(crate) user: String,
    pub(crate) org: usize,
    pub(crate) rows: Vec<Value>,
    pub(crate) batch: usize,
    pub(crate) opened_seq: u64,
}

/// Calls counted by operation and by token.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    pub(crate) by_op: HashMap<&'static str, u64>,
    /// Subrequests of Composite calls (`POST /composite`), by operation: not API calls of
    /// their own (the Composite call is the one counted in `by_op`).
    pub(crate) subrequests: HashMap<&'static str, u64>,
    /// Writes that came without `Sforce-Call-Options: client=…`.
    pub(crate) writes_without_client: u64,
    /// Write calls being served now, and the most ever served at once.
    pub(crate) writes_in_flight: u64,
    pub(crate) max_writes_in_flight: u64,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) orgs: Vec<Org>,
    pub(crate) codes: HashMap<String, AuthCode>,
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) grants: HashMap<String, Grant>,
    pub(crate) cursors: HashMap<String, Cursor>,
    pub(crate) cursor_seq: u64,
    pub(crate) session_ttl_ms: i64,
    pub(crate) counters: Counters,
    pub(crate) faults: std::sync::Arc<crate::faults::FaultSpec>,
}

impl State {
    /// Forgets every session and refresh token of one org whose user is `user` (or all).
    pub(crate) fn revoke(&mut self, org: usize, user: Option<&str>) {
        let hit = |o: usize, u: &str| o == org && user.is_none_or(|x| x == u);
        self.sessions.retain(|_, s| !hit(s.org, &s.user));
        self.grants.retain(|_, g| !hit(g.org, &g.user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(org: &Org, user: &str) -> Actor {
        Actor {
            perms: org.perms(user),
            api: true,
        }
    }

    #[test]
    fn the_rolling_window_forgets_calls_older_than_a_day() {
        let mut u = ApiUsage::new(2);
        assert!(u.charge(0));
        assert!(u.charge(1_000));
        assert!(!u.charge(2_000));
        assert!(u.charge(24 * 3_600_000 + 60_000));
        assert_eq!(u.used(24 * 3_600_000 + 60_000), 1);
    }

    #[test]
    fn a_lead_without_company_is_refused_and_a_valid_one_is_indexed_by_email() {
        let mut org = Org::new(false, 100, 0);
        let admin = org.login_user.clone();
        let a = api(&org, &admin);
        let mut body = Map::new();
        body.insert("LastName".into(), json!("Lovelace"));
        let e = org.create("Lead", &body, &a, false, 1, None).unwrap_err();
        assert_eq!(e.code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.fields, vec!["Company".to_string()]);
        body.insert("Company".into(), json!("Analytical"));
        body.insert("Email".into(), json!("Ada@Example.com"));
        let id = org.create("Lead", &body, &a, false, 1, None).unwrap();
        assert!(id.starts_with("00Q"));
        assert_eq!(org.by_email("Lead", "ada@example.COM"), vec![id]);
        assert_eq!(
            org.create("Lead", &body, &a, false, 2, None)
                .unwrap_err()
                .code,
            "DUPLICATES_DETECTED"
        );
    }

    #[test]
    fn rolling_back_an_undo_log_restores_the_table() {
        let mut org = Org::new(false, 100, 0);
        let admin = org.login_user.clone();
        let a = api(&org, &admin);
        let mut body = Map::new();
        body.insert("Name".into(), json!("Acme"));
        let mut undo = Undo::new();
        let id = org
            .create("Account", &body, &a, false, 1, Some(&mut undo))
            .unwrap();
        org.rollback(undo);
        assert!(org.record("Account", &id).is_none());
    }
}
