//! The test hooks: what a user of the Salesforce UI, an admin or the passing of time would
//! do, for [`crate::SfSimHandle`] and the HTTP admin path (`/__sim`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::error::SfSimError;
use crate::faults::FaultSpec;
use crate::schema::canonical_object;
use crate::shared::Shared;
use crate::state::{Actor, Permissions, Perms, PRODUCTION, SANDBOX};

/// Which org: production (login host `login_url(false)`) or sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgKind {
    /// The production org.
    Production,
    /// The sandbox org (separate data, separate login host).
    Sandbox,
}

impl OrgKind {
    pub(crate) fn index(self) -> usize {
        match self {
            OrgKind::Production => PRODUCTION,
            OrgKind::Sandbox => SANDBOX,
        }
    }

    /// `production` / `sandbox` as used in admin paths.
    pub fn parse(s: &str) -> Option<OrgKind> {
        match s {
            "production" | "prod" => Some(OrgKind::Production),
            "sandbox" | "test" => Some(OrgKind::Sandbox),
            _ => None,
        }
    }
}

/// What a duplicate rule does to API saves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DuplicateRule {
    /// No rule.
    Off,
    /// Refuse the save (`DUPLICATES_DETECTED`).
    Block,
    /// Refuse unless `Sforce-Duplicate-Rule-Header: allowSave=true`.
    Alert,
}

fn object(name: &str) -> Result<&'static str, SfSimError> {
    canonical_object(name).ok_or_else(|| SfSimError::NotFound(format!("object {name}")))
}

fn to_map(v: Value) -> Result<Map<String, Value>, SfSimError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(SfSimError::Invalid("expected a JSON object".into())),
    }
}

fn ui(user: &str) -> Actor {
    Actor {
        perms: Perms {
            user_id: user.to_owned(),
            flags: Permissions::all(),
            fls: HashMap::new(),
        },
        api: false,
    }
}

/// The hooks, on the shared state.
pub(crate) struct Hooks<'a>(pub(crate) &'a Arc<Shared>);

impl Hooks<'_> {
    fn default_user(&self, org: OrgKind) -> String {
        self.0.state.lock().orgs[org.index()].login_user.clone()
    }

    pub(crate) fn issue_session(
        &self,
        org: OrgKind,
        user: Option<&str>,
        with_refresh: bool,
    ) -> Result<Value, SfSimError> {
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        let o = &st.orgs[org.index()];
        let user = match user {
            Some(u) if u.contains('@') => o
                .user_by_username(u)
                .ok_or_else(|| SfSimError::NotFound(format!("user {u}")))?,
            Some(u) => u.to_owned(),
            None => o.login_user.clone(),
        };
        Ok(crate::tokens::issue(
            self.0,
            &mut st,
            org.index(),
            &user,
            None,
            with_refresh,
            now,
        ))
    }

    pub(crate) fn insert(
        &self,
        org: OrgKind,
        obj: &str,
        body: Value,
    ) -> Result<String, SfSimError> {
        let obj = object(obj)?;
        let body = to_map(body)?;
        let user = body
            .get("OwnerId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| self.default_user(org));
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        Ok(st.orgs[org.index()].create(obj, &body, &ui(&user), true, now, None)?)
    }

    pub(crate) fn update(
        &self,
        org: OrgKind,
        obj: &str,
        id: &str,
        body: Value,
        user: Option<&str>,
    ) -> Result<(), SfSimError> {
        let obj = object(obj)?;
        let body = to_map(body)?;
        let user = user
            .map(str::to_owned)
            .unwrap_or_else(|| self.default_user(org));
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        Ok(st.orgs[org.index()].update(obj, id, &body, &ui(&user), true, now, None)?)
    }

    pub(crate) fn delete(&self, org: OrgKind, obj: &str, id: &str) -> Result<(), SfSimError> {
        let obj = object(obj)?;
        let user = self.default_user(org);
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        Ok(st.orgs[org.index()].delete(obj, id, &ui(&user), now, None)?)
    }

    pub(crate) fn record(&self, org: OrgKind, obj: &str, id: &str) -> Option<Value> {
        let obj = canonical_object(obj)?;
        let st = self.0.state.lock();
        let o = &st.orgs[org.index()];
        let def = o.obj(obj)?;
        let rec = o.record(obj, id)?;
        let mut m = Map::new();
        m.insert("attributes".into(), json!({"type": obj}));
        for (p, f) in def.fields.iter().enumerate() {
            m.insert(f.name.clone(), rec.get(p).clone());
        }
        Some(Value::Object(m))
    }

    pub(crate) fn ids_by_email(&self, org: OrgKind, obj: &str, email: &str) -> Vec<String> {
        let Some(obj) = canonical_object(obj) else {
            return Vec::new();
        };
        self.0.state.lock().orgs[org.index()].by_email(obj, email)
    }

    pub(crate) fn ids(&self, org: OrgKind, obj: &str) -> Vec<String> {
        let Some(obj) = canonical_object(obj) else {
            return Vec::new();
        };
        let st = self.0.state.lock();
        st.orgs[org.index()]
            .tables
            .get(obj)
            .map(|t| {
                t.records
                    .iter()
                    .filter(|(_, r)| r.deleted_ms.is_none())
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn count(&self, org: OrgKind, obj: &str) -> usize {
        let Some(obj) = canonical_object(obj) else {
            return 0;
        };
        let st = self.0.state.lock();
        st.orgs[org.index()]
            .tables
            .get(obj)
            .map(|t| {
                t.records
                    .values()
                    .filter(|r| r.deleted_ms.is_none())
                    .count()
            })
            .unwrap_or(0)
    }

    pub(crate) fn convert_lead(
        &self,
        org: OrgKind,
        lead: &str,
        account: Option<&str>,
        contact: Option<&str>,
    ) -> Result<(String, String), SfSimError> {
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        Ok(st.orgs[org.index()].convert_lead(lead, account, contact, now)?)
    }

    pub(crate) fn merge(
        &self,
        org: OrgKind,
        obj: &str,
        master: &str,
        losers: &[String],
    ) -> Result<(), SfSimError> {
        let obj = object(obj)?;
        if !matches!(obj, "Lead" | "Contact" | "Account") {
            return Err(SfSimError::Invalid(format!(
                "{obj} records cannot be merged"
            )));
        }
        let user = self.default_user(org);
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        Ok(st.orgs[org.index()].merge(obj, master, losers, &user, now)?)
    }

    pub(crate) fn revoke_tokens(&self, org: OrgKind, user: Option<&str>) {
        self.0.state.lock().revoke(org.index(), user);
    }

    pub(crate) fn expire_sessions(&self, token: Option<&str>) {
        let now = self.0.now_ms();
        for (t, s) in self.0.state.lock().sessions.iter_mut() {
            if token.is_none_or(|x| x == t) {
                s.expires_ms = now;
            }
        }
    }

    pub(crate) fn rotate_session(&self, token: &str) -> Option<String> {
        let fresh = crate::tokens::random_token(self.0, 96);
        let mut st = self.0.state.lock();
        let s = st.sessions.remove(token)?;
        let prefix = token.split('!').next().unwrap_or("").to_owned();
        let new = format!("{prefix}!{fresh}");
        st.sessions.insert(new.clone(), s);
        Some(new)
    }

    pub(crate) fn set_session_lifetime(&self, d: Duration) {
        self.0.state.lock().session_ttl_ms = d.as_millis() as i64;
    }

    pub(crate) fn set_validation_rule(
        &self,
        org: OrgKind,
        obj: &str,
        name: &str,
        condition: &str,
        message: &str,
        field: Option<&str>,
    ) -> Result<(), SfSimError> {
        let obj = object(obj)?;
        let q = format!("SELECT Id FROM {obj} WHERE {condition}");
        let mut parsed = crate::soql::parse(&q).map_err(|e| SfSimError::Invalid(e.to_string()))?;
        let mut st = self.0.state.lock();
        let o = &mut st.orgs[org.index()];
        let def = o.obj(obj).ok_or_else(|| SfSimError::NotFound(obj.into()))?;
        let mut cond = parsed
            .condition
            .take()
            .ok_or_else(|| SfSimError::Invalid("empty condition".into()))?;
        o.bind_condition(def, &mut cond, &ui(""))
            .map_err(|(f, m)| {
                SfSimError::Invalid(m.unwrap_or_else(|| format!("no such field {f}")))
            })?;
        let field = match field {
            Some(f) => Some(
                def.field(f)
                    .map(|d| d.name.clone())
                    .ok_or_else(|| SfSimError::Invalid(format!("no such field {f}")))?,
            ),
            None => None,
        };
        o.validation_rules
            .retain(|r| !(r.object == obj && r.name == name));
        o.validation_rules.push(crate::state::ValidationRule {
            object: obj,
            name: name.to_owned(),
            condition: cond,
            message: message.to_owned(),
            field,
        });
        Ok(())
    }

    pub(crate) fn clear_validation_rules(&self, org: OrgKind) {
        self.0.state.lock().orgs[org.index()]
            .validation_rules
            .clear();
    }

    pub(crate) fn set_duplicate_rule(
        &self,
        org: OrgKind,
        obj: &str,
        rule: DuplicateRule,
    ) -> Result<(), SfSimError> {
        let obj = object(obj)?;
        let mut st = self.0.state.lock();
        let rules = &mut st.orgs[org.index()].duplicate_rules;
        match rule {
            DuplicateRule::Off => rules.remove(obj),
            DuplicateRule::Block => rules.insert(obj, true),
            DuplicateRule::Alert => rules.insert(obj, false),
        };
        Ok(())
    }

    pub(crate) fn set_user_permissions(
        &self,
        org: OrgKind,
        user: &str,
        p: Permissions,
    ) -> Result<(), SfSimError> {
        let user = self.resolve_user(org, user)?;
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        let o = &mut st.orgs[org.index()];
        let profile = o.value("User", &user, "ProfileId");
        let ps = profile
            .as_str()
            .and_then(|p| o.profile_permission_set(p))
            .ok_or_else(|| SfSimError::NotFound(format!("profile of {user}")))?;
        let admin = o.login_user.clone();
        let body = to_map(json!({
            "PermissionsApiEnabled": p.api_enabled,
            "PermissionsModifyAllData": p.modify_all_data,
            "PermissionsViewAllData": p.view_all_data,
            "PermissionsCustomizeApplication": p.customize_application,
        }))?;
        Ok(o.update("PermissionSet", &ps, &body, &ui(&admin), true, now, None)?)
    }

    pub(crate) fn permissions(&self, org: OrgKind, user: &str) -> Result<Permissions, SfSimError> {
        let user = self.resolve_user(org, user)?;
        Ok(self.0.state.lock().orgs[org.index()].perms(&user).flags)
    }

    /// A user id from an id or a username.
    pub(crate) fn resolve_user(&self, org: OrgKind, user: &str) -> Result<String, SfSimError> {
        let st = self.0.state.lock();
        let o = &st.orgs[org.index()];
        if user.contains('@') {
            return o
                .user_by_username(user)
                .ok_or_else(|| SfSimError::NotFound(format!("user {user}")));
        }
        crate::ids::parse_id(user)
            .filter(|id| o.record("User", id).is_some())
            .ok_or_else(|| SfSimError::NotFound(format!("user {user}")))
    }

    pub(crate) fn users(&self, org: OrgKind) -> Vec<(String, String)> {
        let st = self.0.state.lock();
        let o = &st.orgs[org.index()];
        o.tables
            .get("User")
            .map(|t| {
                t.records
                    .keys()
                    .map(|id| {
                        let u = o.value("User", id, "Username");
                        (id.clone(), u.as_str().unwrap_or_default().to_owned())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn set_login_user(&self, org: OrgKind, user: &str) -> Result<(), SfSimError> {
        let user = self.resolve_user(org, user)?;
        self.0.state.lock().orgs[org.index()].login_user = user;
        Ok(())
    }

    pub(crate) fn set_api_enabled_for_org(&self, org: OrgKind, enabled: bool) {
        self.0.state.lock().orgs[org.index()].api_enabled = enabled;
    }

    pub(crate) fn set_daily_api_requests(&self, org: OrgKind, max: u64) {
        self.0.state.lock().orgs[org.index()].api.max = max;
    }

    pub(crate) fn reset_api_usage(&self, org: OrgKind) {
        self.0.state.lock().orgs[org.index()].api.reset();
    }

    pub(crate) fn api_usage(&self, org: OrgKind) -> (u64, u64) {
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        let api = &mut st.orgs[org.index()].api;
        (api.used(now), api.max)
    }

    pub(crate) fn add_custom_field(
        &self,
        org: OrgKind,
        obj: &str,
        name: &str,
        metadata: Value,
    ) -> Result<String, SfSimError> {
        let now = self.0.now_ms();
        let mut st = self.0.state.lock();
        Ok(st.orgs[org.index()].add_custom_field(obj, name, &metadata, now)?)
    }

    pub(crate) fn grant_field_access(
        &self,
        org: OrgKind,
        user: &str,
        field: &str,
        read: bool,
        edit: bool,
    ) -> Result<String, SfSimError> {
        let user = self.resolve_user(org, user)?;
        let (obj, _) = field
            .split_once('.')
            .ok_or_else(|| SfSimError::Invalid(format!("{field} is not Object.Field")))?;
        let ps = {
            let st = self.0.state.lock();
            let o = &st.orgs[org.index()];
            o.value("User", &user, "ProfileId")
                .as_str()
                .and_then(|p| o.profile_permission_set(p))
                .ok_or_else(|| SfSimError::NotFound(format!("profile of {user}")))?
        };
        self.insert(
            org,
            "FieldPermissions",
            json!({"ParentId": ps, "SobjectType": obj, "Field": field, "PermissionsRead": read || edit, "PermissionsEdit": edit}),
        )
    }

    pub(crate) fn advance_clock(&self, by: Duration) {
        self.shift_clock(by.as_millis() as i64);
    }

    pub(crate) fn rewind_clock(&self, by: Duration) {
        self.shift_clock(-(by.as_millis() as i64));
    }

    fn shift_clock(&self, ms: i64) {
        self.0.clock_offset_ms.fetch_add(ms, Ordering::Relaxed);
        let frozen = self.0.frozen_at_ms.load(Ordering::Relaxed);
        if frozen != 0 {
            self.0.frozen_at_ms.store(frozen + ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn freeze_clock(&self, frozen: bool) {
        let at = if frozen { self.0.now_ms() } else { 0 };
        self.0.frozen_at_ms.store(at, Ordering::Relaxed);
    }

    pub(crate) fn set_faults(&self, spec: FaultSpec) {
        self.0.state.lock().faults = Arc::new(spec);
    }

    pub(crate) fn calls(&self, op: &str) -> u64 {
        self.0
            .state
            .lock()
            .counters
            .by_op
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn subrequests(&self, op: &str) -> u64 {
        self.0
            .state
            .lock()
            .counters
            .subrequests
            .get(op)
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn writes_without_client(&self) -> u64 {
        self.0.state.lock().counters.writes_without_client
    }

    pub(crate) fn max_writes_in_flight(&self) -> u64 {
        self.0.state.lock().counters.max_writes_in_flight
    }

    pub(crate) fn seed(&self, org: OrgKind, leads: usize, contacts: usize, accounts: usize) {
        let now = self.0.now_ms();
        let seed = self.0.config.seed;
        let mut st = self.0.state.lock();
        crate::seed::seed(
            &mut st.orgs[org.index()],
            leads,
            contacts,
            accounts,
            seed,
            now,
        );
    }
}
