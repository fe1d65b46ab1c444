//! Binding, serving, shutdown, and the inspection handle.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify};
use tower::ServiceExt;

use crate::config::{RateLimits, SimConfig};
use crate::error::SimError;
use crate::faults::FaultSpec;
use crate::ops::Op;
use crate::shared::{ConnCtl, Shared};
use crate::state::{Company, Counters, Delivery, State, User};
use crate::webhooks;

/// A running simulator. Dropping it stops the server (as `shutdown` does, without waiting).
#[derive(Debug)]
pub struct Simulator {
    addr: SocketAddr,
    base_url: String,
    handle: SimHandle,
    stop: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Simulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: API v2 at `{base}/api/v2`, v1 at `{base}/v1` and
    /// `{base}/api/v1`, OAuth at `{base}/oauth/...`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A cheap, cloneable handle to inspect and change the state.
    pub fn handle(&self) -> SimHandle {
        self.handle.clone()
    }

    /// Stops accepting, ends open connections and pending webhook retries, and waits for
    /// the server task.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        if let Some(server) = self.server.take() {
            server.await.ok();
        }
    }

    /// Waits until the server stops (i.e. forever unless the runtime ends).
    pub async fn wait(mut self) {
        if let Some(server) = self.server.take() {
            server.await.ok();
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Starts a simulator on 127.0.0.1 (port from the config, 0 = any free port) on the
/// current tokio runtime.
pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
    let listener = TcpListener::bind(("127.0.0.1", config.port))
        .await
        .map_err(|source| SimError::Bind {
            port: config.port,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimError::Bind {
        port: config.port,
        source,
    })?;
    let base_url = format!("http://{addr}");
    let mut rng = StdRng::seed_from_u64(config.seed);
    let now = chrono::Utc::now().timestamp();
    let users = vec![
        User {
            id: config.user_id,
            name: config.user_name.clone(),
            email: config.user_email.clone(),
            is_admin: true,
            visibility_group: 1,
        },
        User {
            id: config.user_id + 1,
            name: "Grace Hopper".into(),
            email: "grace.hopper@example.com".into(),
            is_admin: false,
            visibility_group: 1,
        },
    ];
    let mut company = Company::new(
        config.company_id,
        &config.company_name,
        users,
        now,
        &mut rng,
    );
    company.seed_persons(config.persons, now, &mut rng);
    company.seed_objects(&config.objects, now, &mut rng);
    let mut companies = std::collections::HashMap::new();
    companies.insert(config.company_id, company);
    let state = State {
        companies,
        current_company: config.company_id,
        api_domain: config
            .api_domain
            .clone()
            .unwrap_or_else(|| base_url.clone()),
        faults: Arc::new(config.faults.clone()),
        limits: config.rate_limits.clone(),
        access_tokens: Default::default(),
        refresh_tokens: Default::default(),
        codes: Default::default(),
        exchanged_api_tokens: Default::default(),
        consent: true,
        scopes: config.scopes.clone(),
        token_ttl_secs: config.access_token_ttl.as_secs() as i64,
        counters: Counters::default(),
        windows: Default::default(),
        company_api_tokens: Default::default(),
        traffic: Default::default(),
        deliveries: Vec::new(),
        next_webhook_id: 0,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = watch::channel(false);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(8)
        .build()
        .map_err(|e| SimError::Invalid(format!("HTTP client: {e}")))?;
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        rng: Mutex::new(rng),
        config,
        base_url: base_url.clone(),
        clock_offset: AtomicI64::new(0),
        frozen_at: AtomicI64::new(0),
        deliveries_tx: tx,
        delivery_notify: Notify::new(),
        http,
        shutdown,
    });
    tokio::spawn(webhooks::dispatcher(shared.clone(), rx));
    let app = Router::new()
        .fallback(crate::api::dispatch)
        .with_state(shared.clone());
    let server = tokio::spawn(accept_loop(listener, app, shared.clone()));
    Ok(Simulator {
        addr,
        base_url,
        handle: SimHandle { shared },
        stop,
        server: Some(server),
    })
}

async fn accept_loop(listener: TcpListener, app: Router, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shared.wait_shutdown() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        tokio::spawn(serve_connection(stream, app.clone(), shared.clone()));
    }
}

async fn serve_connection(stream: TcpStream, app: Router, shared: Arc<Shared>) {
    stream.set_nodelay(true).ok();
    // Keep a duplicate of the socket so that a `reset` fault can set SO_LINGER to 0.
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let Ok(dup) = std_stream.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let ctl = Arc::new(Notify::new());
    let ext = ConnCtl(ctl.clone());
    let svc = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ext.clone());
        req
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = ctl.notified() => {
            socket2::SockRef::from(&dup).set_linger(Some(Duration::ZERO)).ok();
        }
        _ = shared.wait_shutdown() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await.ok();
        }
    }
}

/// A company made by [`SimHandle::add_company`]: its id, its own API token, its persons.
#[derive(Clone, Debug)]
pub struct CompanyAccess {
    pub company_id: i64,
    pub api_token: String,
    pub person_ids: Vec<i64>,
}

/// One company's API traffic (see [`SimHandle::company_traffic`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompanyTraffic {
    /// Authenticated calls that reached the rate limiter.
    pub requests: u64,
    /// Of them, answered 429 by the burst window or the daily budget.
    pub rate_limited: u64,
    /// The most admitted (non-search) calls within any one window length, sliding (the
    /// simulator's windows are fixed, so up to twice the limit fits here without a 429).
    pub max_in_window: u32,
}

/// Inspect and change the simulator's state from tests, benchmarks and the demo.
/// Cheap to clone; every method is synchronous except the waits.
#[derive(Clone, Debug)]
pub struct SimHandle {
    shared: Arc<Shared>,
}

fn to_map(v: Value) -> Result<Map<String, Value>, SimError> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(SimError::Invalid("expected a JSON object".into())),
    }
}

impl SimHandle {
    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The configuration the simulator started with.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    fn with_current<T>(&self, f: impl FnOnce(&mut Company, i64, &mut StdRng) -> T) -> T {
        let now = self.shared.now();
        let mut st = self.shared.state.lock();
        let mut rng = self.shared.rng.lock();
        f(st.current_mut(), now, &mut rng)
    }

    fn emit(&self, events: Vec<crate::state::Event>) {
        if !events.is_empty() {
            webhooks::emit(&self.shared, events);
        }
    }

    /// Seeds `n` realistic persons in the current company (no webhooks); returns their ids.
    pub fn seed_persons(&self, n: usize) -> Vec<i64> {
        self.with_current(|c, now, rng| c.seed_persons(n, now, rng))
    }

    /// Seeds linked organizations, deals, activities, notes (and files), leads and products in
    /// the current company (no webhooks); see [`SeedCounts`](crate::SeedCounts).
    pub fn seed_objects(&self, counts: crate::config::SeedCounts) {
        self.with_current(|c, now, rng| c.seed_objects(&counts, now, rng));
    }

    /// Every live organization (v2 JSON).
    pub fn organizations(&self) -> Vec<Value> {
        let st = self.shared.state.lock();
        let c = st.current();
        c.organizations
            .values()
            .filter(|o| !o.is_deleted)
            .map(|o| c.org_json(o))
            .collect()
    }

    /// Counts of live records per stream: `persons`, `deals`, `organizations`, `activities`,
    /// `notes`, `leads`, `products`, `files`.
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let st = self.shared.state.lock();
        let c = st.current();
        [
            (
                "persons",
                c.persons.values().filter(|x| !x.is_deleted).count(),
            ),
            ("deals", c.deals.values().filter(|x| !x.is_deleted).count()),
            (
                "organizations",
                c.organizations.values().filter(|x| !x.is_deleted).count(),
            ),
            (
                "activities",
                c.activities.values().filter(|x| !x.is_deleted).count(),
            ),
            ("notes", c.notes.values().filter(|x| x.active).count()),
            ("leads", c.leads.len()),
            (
                "products",
                c.products.values().filter(|x| !x.is_deleted).count(),
            ),
            ("files", c.files.values().filter(|x| x.active).count()),
        ]
        .into_iter()
        .collect()
    }

    /// Adds a file's metadata linked to a deal, person and/or organization; returns its id.
    pub fn add_file(
        &self,
        file_name: &str,
        deal_id: Option<i64>,
        person_id: Option<i64>,
        org_id: Option<i64>,
    ) -> i64 {
        let user = self.shared.config.user_id;
        self.with_current(|c, now, _| {
            c.add_file(file_name, (deal_id, person_id, org_id), user, now)
        })
    }

    /// Inserts a person from a v2 POST body (no webhooks, as if it had always been there).
    pub fn insert_person(&self, body: Value) -> Result<i64, SimError> {
        let body = to_map(body)?;
        let user = self.shared.config.user_id;
        self.with_current(|c, now, _| c.create_person(&body, user, "app", now))
            .map(|(json, _)| json["id"].as_i64().unwrap_or_default())
            .map_err(SimError::Invalid)
    }

    /// Creates a person as a user of the Pipedrive UI would (fires `create` webhooks with
    /// `change_source: "app"`); returns its v2 JSON.
    pub fn create_person_as_user(&self, body: Value) -> Result<Value, SimError> {
        let body = to_map(body)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.create_person(&body, user, "app", now))
            .map_err(SimError::Invalid)?;
        self.emit(vec![ev]);
        Ok(json)
    }

    /// Edits a person as a user of the Pipedrive UI would: bumps `update_time` and fires
    /// `change` webhooks with `change_source: "app"`. Returns the new v2 JSON.
    pub fn update_person_as_user(&self, id: i64, patch: Value) -> Result<Value, SimError> {
        let body = to_map(patch)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.update_person(id, &body, user, "app", now))
            .map_err(SimError::Invalid)?
            .ok_or_else(|| SimError::NotFound(format!("person {id}")))?;
        self.emit(ev.into_iter().collect());
        Ok(json)
    }

    /// Makes a user of the current company an admin or a regular user (regular users see
    /// only what their visibility group allows; admins see everything).
    pub fn set_user_admin(&self, user_id: i64, admin: bool) {
        self.with_current(|c, _, _| {
            if let Some(u) = c.users.iter_mut().find(|u| u.id == user_id) {
                u.is_admin = admin;
            }
        });
    }

    /// Puts a user in a visibility group; `parent` makes the group a sub-group of another.
    pub fn set_visibility_group(&self, user_id: i64, group: i64, parent: Option<i64>) {
        self.with_current(|c, _, _| {
            if let Some(u) = c.users.iter_mut().find(|u| u.id == user_id) {
                u.visibility_group = group;
            }
            match parent {
                Some(p) => c.visibility_parents.insert(group, p),
                None => c.visibility_parents.remove(&group),
            };
        });
    }

    /// Creates an organization as a user of the Pipedrive UI would (`create` webhooks with
    /// `change_source: "app"`); returns its v2 JSON.
    pub fn create_org_as_user(&self, body: Value) -> Result<Value, SimError> {
        let body = to_map(body)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.create_org(&body, user, "app", now))
            .map_err(SimError::Invalid)?;
        self.emit(vec![ev]);
        Ok(json)
    }

    /// Edits an organization as a user of the Pipedrive UI would (`change` webhooks with
    /// `change_source: "app"`); returns its new v2 JSON.
    pub fn update_org_as_user(&self, id: i64, patch: Value) -> Result<Value, SimError> {
        let body = to_map(patch)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.update_org(id, &body, user, "app", now))
            .map_err(SimError::Invalid)?
            .ok_or_else(|| SimError::NotFound(format!("organization {id}")))?;
        self.emit(ev.into_iter().collect());
        Ok(json)
    }

    /// Creates a deal as a user of the Pipedrive UI would (`create` webhooks with
    /// `change_source: "app"`); returns its v2 JSON.
    pub fn create_deal_as_user(&self, body: Value) -> Result<Value, SimError> {
        let body = to_map(body)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.create_deal(&body, user, "app", now))
            .map_err(SimError::Invalid)?;
        self.emit(vec![ev]);
        Ok(json)
    }

    /// Edits a deal as a UI user would (a stage move, won / lost, a new owner): `change`
    /// webhooks with the previous values of the changed fields. Returns the new v2 JSON.
    pub fn update_deal_as_user(&self, id: i64, patch: Value) -> Result<Value, SimError> {
        let body = to_map(patch)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.update_deal(id, &body, user, "app", now))
            .map_err(SimError::Invalid)?
            .ok_or_else(|| SimError::NotFound(format!("deal {id}")))?;
        self.emit(ev.into_iter().collect());
        Ok(json)
    }

    /// Deletes a deal as a UI user would (fires `delete` webhooks).
    pub fn delete_deal_as_user(&self, id: i64) -> Result<(), SimError> {
        let user = self.shared.config.user_id;
        let ev = self
            .with_current(|c, now, _| c.delete_deal(id, user, "app", now))
            .ok_or_else(|| SimError::NotFound(format!("deal {id}")))?;
        self.emit(vec![ev]);
        Ok(())
    }

    /// Creates a lead as a UI user would (a lead `create` webhook); returns its v1 JSON.
    pub fn create_lead_as_user(&self, body: Value) -> Result<Value, SimError> {
        let body = to_map(body)?;
        let user = self.shared.config.user_id;
        let uuid = {
            let mut rng = self.shared.rng.lock();
            uuid::Builder::from_random_bytes(rand::Rng::gen(&mut *rng))
                .into_uuid()
                .to_string()
        };
        let (json, ev) = self
            .with_current(|c, now, _| c.create_lead(uuid, &body, user, "app", now))
            .map_err(SimError::Invalid)?;
        self.emit(vec![ev]);
        Ok(json)
    }

    /// Converts a lead to a deal as a UI user would (Pipedrive's conversion: the deal is
    /// created naming the lead in `lead_id`, the lead is deleted; both fire webhooks). Returns
    /// the deal's v2 JSON.
    pub fn convert_lead_as_user(&self, id: &str) -> Result<Value, SimError> {
        let user = self.shared.config.user_id;
        let (json, events) = self
            .with_current(|c, now, _| c.convert_lead_to_deal(id, user, "app", now))
            .map_err(SimError::Invalid)?
            .ok_or_else(|| SimError::NotFound(format!("lead {id}")))?;
        self.emit(events);
        Ok(json)
    }

    /// Creates an activity as a UI user would; returns its v2 JSON.
    pub fn create_activity_as_user(&self, body: Value) -> Result<Value, SimError> {
        let body = to_map(body)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.create_activity(&body, user, "app", now))
            .map_err(SimError::Invalid)?;
        self.emit(vec![ev]);
        Ok(json)
    }

    /// Edits an activity as a UI user would (e.g. marks it done); returns the new v2 JSON.
    pub fn update_activity_as_user(&self, id: i64, patch: Value) -> Result<Value, SimError> {
        let body = to_map(patch)?;
        let user = self.shared.config.user_id;
        let (json, ev) = self
            .with_current(|c, now, _| c.update_activity(id, &body, user, "app", now))
            .map_err(SimError::Invalid)?
            .ok_or_else(|| SimError::NotFound(format!("activity {id}")))?;
        self.emit(ev.into_iter().collect());
        Ok(json)
    }

    /// Deletes a person as a UI user would (fires `delete` webhooks).
    pub fn delete_person(&self, id: i64) -> Result<(), SimError> {
        let user = self.shared.config.user_id;
        let ev = self
            .with_current(|c, now, _| c.delete_person(id, user, "app", now))
            .ok_or_else(|| SimError::NotFound(format!("person {id}")))?;
        self.emit(vec![ev]);
        Ok(())
    }

    /// Merges person `id` into `merge_with_id` as a UI user would (the latter survives and
    /// wins conflicts; fires `delete` with `merged_to_id` and `change` with
    /// `merged_from_id`). Returns the survivor's v2 JSON.
    pub fn merge_persons(&self, id: i64, merge_with_id: i64) -> Result<Value, SimError> {
        let user = self.shared.config.user_id;
        let (json, events) = self
            .with_current(|c, now, _| {
                c.merge_persons(id, merge_with_id, user, "app", now)
                    .map(|(p, ev)| (c.person_json(&p), ev))
            })
            .map_err(SimError::Invalid)?;
        self.emit(events);
        Ok(json)
    }

    /// A person's current v2 JSON (deleted ones too, with `is_deleted: true`).
    pub fn person(&self, id: i64) -> Option<Value> {
        let st = self.shared.state.lock();
        let c = st.current();
        c.persons.get(&id).map(|p| c.person_json(p))
    }

    /// Every live person, by id.
    pub fn persons(&self) -> Vec<Value> {
        let st = self.shared.state.lock();
        let c = st.current();
        c.persons
            .values()
            .filter(|p| !p.is_deleted)
            .map(|p| c.person_json(p))
            .collect()
    }

    /// Live persons whose e-mail matches (case-insensitive).
    pub fn persons_by_email(&self, email: &str) -> Vec<Value> {
        let st = self.shared.state.lock();
        let c = st.current();
        c.email_index
            .get(&email.trim().to_lowercase())
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| c.live_person(*id))
                    .map(|p| c.person_json(p))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every live deal.
    pub fn deals(&self) -> Vec<Value> {
        let st = self.shared.state.lock();
        st.current()
            .deals
            .values()
            .filter(|d| !d.is_deleted)
            .map(|d| d.v2_json())
            .collect()
    }

    /// Every live activity.
    pub fn activities(&self) -> Vec<Value> {
        let st = self.shared.state.lock();
        st.current()
            .activities
            .values()
            .filter(|a| !a.is_deleted)
            .map(|a| a.v2_json())
            .collect()
    }

    /// Every live note, as `v1.getNote` shows it.
    pub fn notes(&self) -> Vec<Value> {
        let user = self.shared.config.user_id;
        let st = self.shared.state.lock();
        let c = st.current();
        c.notes
            .values()
            .filter(|n| n.active)
            .map(|n| c.note_json(n, user))
            .collect()
    }

    /// Adds a custom person field; returns its 40-hex key.
    pub fn add_person_field(
        &self,
        name: &str,
        field_type: &str,
        options: &[&str],
    ) -> Result<String, SimError> {
        self.with_current(|c, now, rng| c.add_person_field(name, field_type, options, now, rng))
            .map(|f| f.key)
            .map_err(SimError::Invalid)
    }

    /// Adds a custom organization field; returns its 40-hex key.
    pub fn add_organization_field(
        &self,
        name: &str,
        field_type: &str,
        options: &[&str],
    ) -> Result<String, SimError> {
        self.with_current(|c, now, rng| {
            c.add_field("organization", name, field_type, options, now, rng)
        })
        .map(|f| f.key)
        .map_err(SimError::Invalid)
    }

    /// The custom organization fields (v2 JSON: `field_code`, `field_name`, `field_type`,
    /// `options`).
    pub fn organization_fields(&self) -> Vec<Value> {
        let st = self.shared.state.lock();
        st.current()
            .org_fields
            .iter()
            .map(|f| f.v2_json())
            .collect()
    }

    /// The custom person fields (v2 JSON: `field_code`, `field_name`, `field_type`, `options`).
    pub fn person_fields(&self) -> Vec<Value> {
        let st = self.shared.state.lock();
        st.current()
            .person_fields
            .iter()
            .map(|f| f.v2_json())
            .collect()
    }

    /// The key of the custom person field with this name.
    pub fn person_field_key(&self, name: &str) -> Option<String> {
        let st = self.shared.state.lock();
        st.current()
            .person_fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.key.clone())
    }

    /// Calls of one operation by name (`v2.getPersons`, `v1.addWebhook`, `oauth.token`; see
    /// [`Op::name`]); every call that reached a route counts, whatever its answer.
    pub fn calls(&self, operation: &str) -> u64 {
        Op::from_name(operation)
            .map(|op| self.calls_op(op))
            .unwrap_or(0)
    }

    /// Calls of one operation.
    pub fn calls_op(&self, op: Op) -> u64 {
        self.shared
            .state
            .lock()
            .counters
            .by_op
            .get(&op)
            .copied()
            .unwrap_or(0)
    }

    /// Calls of every operation that was called.
    pub fn all_calls(&self) -> Vec<(Op, u64)> {
        let st = self.shared.state.lock();
        let mut v: Vec<(Op, u64)> = st.counters.by_op.iter().map(|(k, v)| (*k, *v)).collect();
        v.sort();
        v
    }

    /// Calls that presented this token (API token or OAuth access token).
    pub fn calls_by_token(&self, token: &str) -> u64 {
        self.shared
            .state
            .lock()
            .counters
            .by_token
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    /// Calls of one operation that presented this token.
    pub fn calls_by_token_op(&self, token: &str, operation: &str) -> u64 {
        let Some(op) = Op::from_name(operation) else {
            return 0;
        };
        self.shared
            .state
            .lock()
            .counters
            .by_token_op
            .get(&(token.to_owned(), op))
            .copied()
            .unwrap_or(0)
    }

    /// Total calls that reached a route.
    pub fn total_calls(&self) -> u64 {
        self.shared.state.lock().counters.by_op.values().sum()
    }

    /// Requests answered 429 by the rate limiter (injected 429s not included).
    pub fn rate_limited(&self) -> u64 {
        self.shared.state.lock().counters.rate_limited
    }

    /// Rate-limit tokens spent (sum of `x-token-cost` of the admitted calls).
    pub fn tokens_spent(&self) -> u64 {
        self.shared.state.lock().counters.spent_total
    }

    /// Rate-limit tokens spent by one credential.
    pub fn tokens_spent_by(&self, token: &str) -> u64 {
        self.shared
            .state
            .lock()
            .counters
            .spent_by_token
            .get(token)
            .copied()
            .unwrap_or(0)
    }

    /// Zeroes every counter (calls, tokens spent, rate-limited) and the burst windows.
    pub fn reset_counts(&self) {
        let mut st = self.shared.state.lock();
        st.counters = Counters::default();
        st.windows.clear();
        st.traffic.clear();
    }

    /// Replaces the fault specification.
    pub fn set_faults(&self, faults: FaultSpec) {
        self.shared.state.lock().faults = Arc::new(faults);
    }

    /// Replaces the rate limits (and clears the burst windows and today's spending).
    pub fn set_rate_limits(&self, limits: RateLimits) {
        let mut st = self.shared.state.lock();
        st.limits = limits;
        st.windows.clear();
        for c in st.companies.values_mut() {
            c.daily_spent = 0;
            c.daily_writes = 0;
        }
    }

    /// Forgets every access and refresh token (an uninstall): API calls with them get 401,
    /// refreshing gets `invalid_grant`.
    pub fn revoke_all_tokens(&self) {
        let mut st = self.shared.state.lock();
        st.access_tokens.clear();
        st.refresh_tokens.clear();
    }

    /// Expires every access token now (refresh tokens keep working).
    pub fn expire_access_tokens(&self) {
        let now = self.shared.now();
        for t in self.shared.state.lock().access_tokens.values_mut() {
            t.expires_at = now;
        }
    }

    /// Changes `expires_in` of access tokens issued from now on.
    pub fn set_access_token_ttl(&self, ttl: Duration) {
        self.shared.state.lock().token_ttl_secs = ttl.as_secs() as i64;
    }

    /// Changes the scopes granted to OAuth tokens (checked on every call: a call outside
    /// them gets 403 `Scope and URL mismatch`).
    pub fn set_scopes(&self, scopes: &[&str]) {
        self.shared.state.lock().scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
    }

    /// Whether the user approves the next `/oauth/authorize` (false: `error=user_denied`).
    pub fn set_consent(&self, approve: bool) {
        self.shared.state.lock().consent = approve;
    }

    /// Issues an authorization code as `/oauth/authorize` would after consent.
    pub fn authorization_code(&self, redirect_uri: &str) -> String {
        let now = self.shared.now();
        let mut st = self.shared.state.lock();
        let code = {
            let mut rng = self.shared.rng.lock();
            format!("{now}.{}", crate::seed::token(&mut *rng, 32))
        };
        let company_id = st.current_company;
        st.codes.insert(
            code.clone(),
            crate::state::AuthCode {
                company_id,
                user_id: self.shared.config.user_id,
                redirect_uri: redirect_uri.to_owned(),
                expires_at: now + 300,
            },
        );
        code
    }

    /// The `api_domain` returned by token responses from now on (a data-centre move).
    pub fn set_api_domain(&self, url: &str) {
        self.shared.state.lock().api_domain = url.trim_end_matches('/').to_owned();
    }

    /// The current `api_domain`.
    pub fn api_domain(&self) -> String {
        self.shared.state.lock().api_domain.clone()
    }

    /// Makes `id` the current company (created empty, with the same users and default
    /// fields, if new). New authorizations and the API token then act in it; OAuth tokens
    /// already issued stay bound to their own company.
    pub fn switch_company(&self, id: i64) {
        let now = self.shared.now();
        let mut st = self.shared.state.lock();
        if !st.companies.contains_key(&id) {
            let users = st.current().users.clone();
            let mut rng = self.shared.rng.lock();
            let c = Company::new(id, &format!("Company {id}"), users, now, &mut *rng);
            st.companies.insert(id, c);
        }
        st.current_company = id;
    }

    /// Makes a new company with `persons` persons (each with an address of its own,
    /// `person{i}@company{id}.example`, and the name `Person {i} of company {id}`) and an API
    /// token of its own that acts in it, whatever the current company is: N calls make N
    /// companies with their own data, burst windows (per token), daily budgets and webhooks.
    /// The current company does not change.
    pub fn add_company(&self, persons: usize) -> CompanyAccess {
        let now = self.shared.now();
        let mut st = self.shared.state.lock();
        let id = st.companies.keys().max().copied().unwrap_or(0) + 1;
        let users = st.current().users.clone();
        let mut rng = self.shared.rng.lock();
        let mut c = Company::new(id, &format!("Company {id}"), users, now, &mut *rng);
        let user = self.shared.config.user_id;
        let mut person_ids = Vec::with_capacity(persons);
        for i in 1..=persons {
            let body = to_map(serde_json::json!({
                "name": format!("Person {i} of company {id}"),
                "emails": [{ "value": format!("person{i}@company{id}.example"), "primary": true, "label": "work" }],
            }))
            .unwrap_or_default();
            if let Ok((json, _)) = c.create_person(&body, user, "seed", now) {
                person_ids.push(json["id"].as_i64().unwrap_or_default());
            }
        }
        let api_token = format!("company-{id}-{}", crate::seed::token(&mut *rng, 24));
        st.company_api_tokens.insert(api_token.clone(), id);
        st.companies.insert(id, c);
        CompanyAccess {
            company_id: id,
            api_token,
            person_ids,
        }
    }

    /// What one company's callers did since the last `reset_counts`: calls, 429s from the
    /// rate limiter, and the most admitted calls in any one window length (sliding).
    pub fn company_traffic(&self, company_id: i64) -> CompanyTraffic {
        let st = self.shared.state.lock();
        st.traffic
            .get(&company_id)
            .map(|t| CompanyTraffic {
                requests: t.requests,
                rate_limited: t.rate_limited,
                max_in_window: t.max_in_window,
            })
            .unwrap_or_default()
    }

    /// Every name written to each person of a company through the API (creates and
    /// updates that set one), in order, by person id. With distinct values per edit, a value
    /// that appears twice for one person is a write sent twice.
    pub fn person_writes(&self, company_id: i64) -> std::collections::HashMap<i64, Vec<String>> {
        let st = self.shared.state.lock();
        st.companies
            .get(&company_id)
            .map(|c| c.name_writes.clone())
            .unwrap_or_default()
    }

    /// Every live person of a company, by id.
    pub fn persons_of(&self, company_id: i64) -> Vec<Value> {
        let st = self.shared.state.lock();
        let Some(c) = st.companies.get(&company_id) else {
            return Vec::new();
        };
        c.persons
            .values()
            .filter(|p| !p.is_deleted)
            .map(|p| c.person_json(p))
            .collect()
    }

    /// Every live deal of a company (v2 JSON).
    pub fn deals_of(&self, company_id: i64) -> Vec<Value> {
        let st = self.shared.state.lock();
        st.companies
            .get(&company_id)
            .map(|c| {
                c.deals
                    .values()
                    .filter(|d| !d.is_deleted)
                    .map(|d| d.v2_json())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every live activity of a company (v2 JSON).
    pub fn activities_of(&self, company_id: i64) -> Vec<Value> {
        let st = self.shared.state.lock();
        st.companies
            .get(&company_id)
            .map(|c| {
                c.activities
                    .values()
                    .filter(|a| !a.is_deleted)
                    .map(|a| a.v2_json())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// [`insert_person`](Self::insert_person) in a given company (no webhooks).
    pub fn insert_person_in(&self, company_id: i64, body: Value) -> Result<i64, SimError> {
        let body = to_map(body)?;
        let user = self.shared.config.user_id;
        let now = self.shared.now();
        let mut st = self.shared.state.lock();
        let c = st
            .companies
            .get_mut(&company_id)
            .ok_or_else(|| SimError::NotFound(format!("company {company_id}")))?;
        c.create_person(&body, user, "app", now)
            .map(|(json, _)| json["id"].as_i64().unwrap_or_default())
            .map_err(SimError::Invalid)
    }

    /// [`update_person_as_user`](Self::update_person_as_user) in a given company.
    pub fn update_person_as_user_in(
        &self,
        company_id: i64,
        id: i64,
        patch: Value,
    ) -> Result<Value, SimError> {
        let body = to_map(patch)?;
        let user = self.shared.config.user_id;
        let now = self.shared.now();
        let (json, ev) = {
            let mut st = self.shared.state.lock();
            let c = st
                .companies
                .get_mut(&company_id)
                .ok_or_else(|| SimError::NotFound(format!("company {company_id}")))?;
            c.update_person(id, &body, user, "app", now)
                .map_err(SimError::Invalid)?
                .ok_or_else(|| SimError::NotFound(format!("person {id}")))?
        };
        self.emit(ev.into_iter().collect());
        Ok(json)
    }

    /// The current company's id.
    pub fn company_id(&self) -> i64 {
        self.shared.state.lock().current_company
    }

    /// Registered webhook subscriptions of the current company (v1 JSON).
    pub fn webhooks(&self) -> Vec<Value> {
        let now = self.shared.now();
        let st = self.shared.state.lock();
        st.current()
            .webhooks
            .values()
            .map(|w| w.v1_json(now))
            .collect()
    }

    /// Every delivery attempt so far, in the order they finished (plus dropped and banned
    /// deliveries, with `attempt: 0`).
    pub fn delivered_webhooks(&self) -> Vec<Delivery> {
        self.shared.state.lock().deliveries.clone()
    }

    /// Clears the delivery log.
    pub fn clear_deliveries(&self) {
        self.shared.state.lock().deliveries.clear();
    }

    /// Waits (without polling) until `done` holds for the delivery log, or `timeout` passes;
    /// returns the log either way.
    pub async fn wait_for_deliveries(
        &self,
        timeout: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.delivery_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.shared.state.lock();
                if done(&st.deliveries) {
                    return st.deliveries.clone();
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.delivered_webhooks();
            }
        }
    }

    /// Moves the simulator's clock forward (timestamps, token and code expiry).
    pub fn advance_clock(&self, by: Duration) {
        self.shared
            .clock_offset
            .fetch_add(by.as_secs() as i64, Ordering::Relaxed);
    }

    /// Stops the simulator's clock at the current second (`true`), so that several changes
    /// share one whole-second `update_time` however long they take, or lets it run again.
    pub fn freeze_clock(&self, frozen: bool) {
        let at = if frozen { self.shared.now() } else { 0 };
        self.shared.frozen_at.store(at, Ordering::Relaxed);
    }

    /// The simulator's clock as unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.now()
    }
}
