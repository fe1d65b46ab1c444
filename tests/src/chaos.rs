//! The chaos harness: N contacts, random edits on both sides at random times, the simulator
//! injecting faults (5xx, 429, hangs that time out, dropped/duplicated/reordered webhooks), and
//! tandem — a child `tandem serve` — killed with SIGKILL and restarted at random points. At the
//! end faults are turned off, tandem drains (workers and poller), and both sides are compared
//! field by field. Used by the test suite at a small size and by `bench chaos` at a large one.
//!
//! The app talks to tandem as a real app does, through `/api/v1` (tandem alone writes its
//! database); Pipedrive is connected through OAuth, and the simulator expires the access tokens
//! at random points; Pipedrive-side edits are made as a Pipedrive user would. To make
//! "edits lost" exact, the app side edits `name` and Pipedrive edits `phone`: every single edit
//! must survive, whatever the interleaving, kills and faults.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pipedrive_sim::{FaultSpec, SimConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::{ConnectionTrait, Statement};
use tandem_core::FieldValue;
use tandem_engine::config::{Redacted, Settings};
use tandem_engine::crypto::Vault;
use tandem_engine::store::{cursors, Store};
use tandem_engine::sync::{app::contacts, connections, inbound::poller, links, Engine};
use uuid::Uuid;

use crate::child::{ChildConfig, OAuthClient, TandemProcess};

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub contacts: usize,
    pub edits: usize,
    pub kills: usize,
    /// How many times Pipedrive expires the access tokens during the run.
    pub token_expiries: usize,
    pub seed: u64,
    /// Simulator fault specification during the run.
    pub faults: String,
    /// Largest pause between two edits (uniform 0..=max).
    pub max_gap: Duration,
    /// Working directory (database, config, logs of the child).
    pub dir: PathBuf,
    /// `None`: a SQLite file in `dir`.
    pub database_url: Option<String>,
    /// Multiplies the simulator's webhook retry delays (3 s, 30 s, 150 s): 1.0 is Pipedrive's.
    pub webhook_time_scale: f64,
    /// How long the final drain may take before the comparison counts what is left as divergent.
    pub drain_timeout: Duration,
}

impl ChaosConfig {
    pub fn new(contacts: usize, edits: usize, kills: usize, seed: u64, dir: PathBuf) -> Self {
        Self {
            contacts,
            edits,
            kills,
            token_expiries: kills.max(1),
            seed,
            faults:
                "persons:5xx=0.05,429=0.05,hang=0.005;webhooks:drop=0.1,duplicate=0.1,reorder=0.1"
                    .to_owned(),
            max_gap: Duration::from_millis(4),
            dir,
            database_url: None,
            webhook_time_scale: 1.0,
            drain_timeout: Duration::from_secs(90),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    pub contacts: usize,
    pub edits_made: usize,
    pub app_edits: usize,
    pub pipedrive_edits: usize,
    pub kills: usize,
    pub token_expiries: usize,
    pub divergent_records: usize,
    pub duplicates_created: usize,
    pub edits_lost: usize,
    pub api_calls: u64,
    /// Requests the simulator's rate limiter answered 429 (injected 429s not included).
    pub rate_limited: u64,
    /// Webhook delivery attempts that did not reach tandem (dropped, or tandem was down).
    pub webhooks_failed: usize,
    pub edit_phase: Duration,
    pub drain: Duration,
    /// A few examples of what diverged, for the failure message.
    pub examples: Vec<String>,
}

impl ChaosReport {
    pub fn clean(&self) -> bool {
        self.divergent_records == 0 && self.duplicates_created == 0 && self.edits_lost == 0
    }
}

pub fn first_value(value: Option<&FieldValue>) -> Option<String> {
    match value? {
        FieldValue::Text(t) => Some(t.clone()),
        FieldValue::Emails(l) | FieldValue::Phones(l) => l.first().map(|v| v.value.clone()),
        _ => None,
    }
}

pub fn settings_for(url: &str, key: &str, public_url: &str) -> Settings {
    let mut settings = Settings::defaults();
    settings.database.url = Redacted::new(url.to_owned());
    settings.database.max_connections = 3;
    settings.http.public_url = public_url.to_owned();
    settings.workers.enabled = false;
    settings.security.encryption_keys = vec![Redacted::new(key.to_owned())];
    settings
}

/// The harness' own engine (app-side edits, inspection) on the database a child tandem uses.
pub struct Harness {
    pub engine: Engine,
    pub store: Store,
    pub child: ChildConfig,
}

impl Harness {
    pub async fn new(
        dir: &std::path::Path,
        database_url: &str,
        sim_url: &str,
    ) -> anyhow::Result<Self> {
        let key = Vault::generate_key();
        let mut child = ChildConfig::new(dir, database_url, &key)?;
        child.api_key = Some(CHAOS_API_KEY.to_owned());
        child.admin_token = Some(CHAOS_ADMIN_TOKEN.to_owned());
        // A restarted tandem takes its connection back after 3 s, not the default 15 s, so it
        // is up (and racing the edits) for most of the run.
        child.lease_secs = Some(3);
        let sim_defaults = SimConfig::default();
        child.oauth = Some(OAuthClient {
            base_url: sim_url.to_owned(),
            client_id: sim_defaults.client_id,
            client_secret: sim_defaults.client_secret,
        });
        let mut settings = settings_for(database_url, &key, &child.base_url());
        settings.pipedrive.oauth_base_url = sim_url.to_owned();
        let store = Store::connect(&settings.database).await?;
        store.migrate_up().await?;
        let engine = Engine::new(
            store.clone(),
            Arc::new(Vault::from_base64_keys(&[key])?),
            Arc::new(settings),
            child.base_url(),
        );
        Ok(Self {
            engine,
            store,
            child,
        })
    }
}

/// Connects the simulator's company with its API token and runs the initial sync.
pub async fn connect_and_sync(
    engine: &Engine,
    handle: &pipedrive_sim::SimHandle,
) -> anyhow::Result<connections::Connected> {
    let connected = connections::connect(
        engine,
        connections::NewConnection {
            api_domain: handle.base_url().to_owned(),
            auth_kind: "api_token",
            access_token: handle.config().api_token.clone(),
            refresh_token: None,
            token_expires_at: None,
        },
    )
    .await?;
    poller::initial_sync(engine, connected.id, |_| {}).await?;
    Ok(connected)
}

/// How many rows a `SELECT count(*) ...` returns.
pub async fn count(engine: &Engine, sql: &str) -> anyhow::Result<i64> {
    let db = engine.store.db();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?
        .context("count returned no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// The last value each side's edits gave a contact: what both sides must hold at the end.
#[derive(Default)]
pub struct Expected {
    /// The app's last rename.
    pub name: Option<String>,
    /// The CRM user's last phone edit.
    pub phone: Option<String>,
    /// The app's last company edit.
    pub company: Option<String>,
}

/// `n` edit indices in `0..edits` (kill points, token expiries, ...), in order.
pub fn points(n: usize, edits: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut at: Vec<usize> = (0..n).map(|_| rng.gen_range(0..edits.max(1))).collect();
    at.sort_unstable();
    at
}

/// A pause of up to `max_gap` between two edits.
pub async fn pause(rng: &mut StdRng, max_gap: Duration) {
    let gap = rng.gen_range(0..=max_gap.as_micros() as u64);
    if gap > 0 {
        tokio::time::sleep(Duration::from_micros(gap)).await;
    }
}

/// The app and tandem of a chaos run: tandem is a child process (`tandem serve`) that is
/// SIGKILLed at random edits and restarted a random number of edits later; the app renames
/// contacts through `/api/v1`, and the renames made while tandem is down are sent, in order,
/// once it is back (as an app retrying would).
pub struct AppSide {
    child: ChildConfig,
    pub app: AppClient,
    tandem: Option<TandemProcess>,
    /// Field edits (`{"name": …}`) made while tandem was down, in order.
    unsent: Vec<(Uuid, serde_json::Value)>,
    restart_at: Option<usize>,
    /// SIGKILLs so far.
    pub kills: usize,
}

impl AppSide {
    /// Starts tandem.
    pub async fn start(child: ChildConfig) -> anyhow::Result<Self> {
        let tandem = Some(TandemProcess::start(&child).await?);
        Ok(Self {
            app: AppClient::new(child.base_url())?,
            child,
            tandem,
            unsent: Vec::new(),
            restart_at: None,
            kills: 0,
        })
    }

    /// SIGKILLs tandem at edit `i` (a kill point while it is down is skipped) and picks the
    /// edit it comes back at.
    pub async fn kill(&mut self, i: usize, edits: usize, rng: &mut StdRng) -> anyhow::Result<()> {
        if let Some(process) = self.tandem.take() {
            process.kill().await?;
            self.kills += 1;
            self.restart_at = Some(i + rng.gen_range(1..=(edits / 20).max(2)));
        }
        Ok(())
    }

    /// Restarts tandem when edit `i` is its time, and sends the renames held meanwhile.
    pub async fn restart_if_due(&mut self, i: usize) -> anyhow::Result<()> {
        if self.restart_at.is_some_and(|at| at <= i) && self.tandem.is_none() {
            self.tandem = Some(TandemProcess::start(&self.child).await?);
            self.restart_at = None;
            self.send_held().await?;
        }
        Ok(())
    }

    /// Renames a contact now, or once tandem is back.
    pub async fn rename(&mut self, contact: Uuid, name: &str) -> anyhow::Result<()> {
        self.edit(contact, serde_json::json!({ "name": name }))
            .await
    }

    /// Edits a contact's fields (`{"org_name": …}`) now, or once tandem is back.
    pub async fn edit(&mut self, contact: Uuid, fields: serde_json::Value) -> anyhow::Result<()> {
        if self.tandem.is_some() {
            self.app.edit_in(None, contact, fields).await
        } else {
            self.unsent.push((contact, fields));
            Ok(())
        }
    }

    /// tandem up (started if it is down) and every held rename sent: the drain can begin.
    pub async fn up(mut self) -> anyhow::Result<TandemProcess> {
        let tandem = match self.tandem.take() {
            Some(t) => t,
            None => TandemProcess::start(&self.child).await?,
        };
        self.tandem = Some(tandem);
        self.send_held().await?;
        Ok(self.tandem.take().expect("started above"))
    }

    async fn send_held(&mut self) -> anyhow::Result<()> {
        for (contact, fields) in std::mem::take(&mut self.unsent) {
            self.app.edit_in(None, contact, fields).await?;
        }
        Ok(())
    }
}

/// The app's key for tandem's `/api/v1` in chaos runs.
pub const CHAOS_API_KEY: &str = "chaos-api-key-0123456789";
/// The admin token of chaos runs (connecting Pipedrive through OAuth).
pub const CHAOS_ADMIN_TOKEN: &str = "chaos-admin-token-0123456789";

/// The app, as tandem sees it: a client of `/api/v1`.
pub struct AppClient {
    http: reqwest::Client,
    base_url: String,
}

impl AppClient {
    pub fn new(base_url: String) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base_url,
        })
    }

    /// Sends a request until tandem answers 2xx (an app retries what tandem did not take);
    /// a 4xx is a harness bug and stops the run.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        self.send_as(None, method, path, body).await
    }

    /// As [`Self::send`], for `tenant` (the `Tandem-Tenant` header) when given.
    async fn send_as(
        &self,
        tenant: Option<&tandem_core::TenantId>,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let mut tries = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base_url))
                .bearer_auth(CHAOS_API_KEY)
                .json(&body);
            if let Some(tenant) = tenant {
                request = request.header("Tandem-Tenant", tenant.as_str());
            }
            let response = request.send().await;
            match response {
                Ok(r) if r.status().is_success() => return Ok(r.json().await?),
                Ok(r) if r.status().is_client_error() => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    anyhow::bail!("{method} {path} answered {status}: {text}");
                }
                other if tries < 50 => {
                    tries += 1;
                    tracing::debug!(?other, "retrying an app request");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(r) => anyhow::bail!("{method} {path} kept answering {}", r.status()),
                Err(error) => return Err(error).context("an app request kept failing"),
            }
        }
    }

    pub async fn create_contact(&self, name: &str, email: &str) -> anyhow::Result<()> {
        let created = self
            .send(
                reqwest::Method::POST,
                "/api/v1/contacts",
                serde_json::json!({ "fields": {
                    "name": name,
                    "email": [{ "value": email, "label": "work", "primary": true }],
                } }),
            )
            .await?;
        let id = created["id"]
            .as_str()
            .context("a created contact has an id")?;
        self.send(
            reqwest::Method::POST,
            "/api/v1/lists/pipedrive_contacts/members",
            serde_json::json!({ "contact_id": id }),
        )
        .await?;
        Ok(())
    }

    pub async fn rename(&self, contact: Uuid, name: &str) -> anyhow::Result<()> {
        self.rename_in(None, contact, name).await
    }

    /// Renames a contact of `tenant` (the default tenant when `None`).
    pub async fn rename_in(
        &self,
        tenant: Option<&tandem_core::TenantId>,
        contact: Uuid,
        name: &str,
    ) -> anyhow::Result<()> {
        self.edit_in(tenant, contact, serde_json::json!({ "name": name }))
            .await
    }

    /// Changes fields (`{"name": …}`) of a contact of `tenant` (the default tenant when `None`).
    pub async fn edit_in(
        &self,
        tenant: Option<&tandem_core::TenantId>,
        contact: Uuid,
        fields: serde_json::Value,
    ) -> anyhow::Result<()> {
        self.send_as(
            tenant,
            reqwest::Method::PATCH,
            &format!("/api/v1/contacts/{contact}"),
            serde_json::json!({ "fields": fields }),
        )
        .await?;
        Ok(())
    }
}

/// Connects Pipedrive as an admin would ("Connect with Pipedrive": tandem → the simulator's
/// consent → tandem's callback, over HTTP) and waits (bounded) until the child's poller has
/// finished the initial sync.
pub async fn oauth_connect_and_wait_for_initial_sync(
    engine: &Engine,
    base_url: &str,
    timeout: Duration,
) -> anyhow::Result<Uuid> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = http
        .get(format!("{base_url}/connections/pipedrive/connect"))
        .bearer_auth(CHAOS_ADMIN_TOKEN)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success() || response.status().is_redirection(),
        "the OAuth connect answered {}",
        response.status()
    );
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(id) =
            connections::active_id(engine.store.db(), &tandem_core::TenantId::default()).await?
        {
            let done = cursors::get(
                &engine.store,
                id,
                tandem_engine::sync::inbound::poller::INITIAL_SYNC_DONE,
            )
            .await?;
            if done.is_some() {
                return Ok(id.uuid());
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the initial sync did not finish in time"
        );
        // Another process does the work: nothing to be notified by.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the chaos scenario. tandem runs as a child process (`tandem serve`) that alone writes
/// the database; the app talks to it through `/api/v1` (app edits made while it is down are
/// sent, in order, once it is back, as an app retrying would), Pipedrive is connected through
/// OAuth and its access tokens are expired at random points.
pub async fn run(config: ChaosConfig) -> anyhow::Result<ChaosReport> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    std::fs::create_dir_all(&config.dir)?;
    let database_url = config
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", config.dir.join("chaos.db").display()));
    let sim = pipedrive_sim::start(SimConfig {
        time_scale: config.webhook_time_scale,
        seed: config.seed,
        webhook_timeout: Duration::from_secs(2),
        ..SimConfig::default()
    })
    .await?;
    let handle = sim.handle();
    let Harness {
        engine,
        store,
        child: child_config,
    } = Harness::new(&config.dir, &database_url, sim.base_url()).await?;

    // Half the contacts start in Pipedrive, half in the app.
    let remote_half = config.contacts / 2;
    for i in 0..remote_half {
        handle.insert_person(serde_json::json!({
            "name": format!("Remote {i}"),
            "emails": [{"value": format!("remote{i}@chaos.example"), "primary": true}],
            "phones": [{"value": format!("+1000{i:07}"), "primary": true}],
        }))?;
    }
    let base_url = child_config.base_url();
    let mut side = AppSide::start(child_config).await?;
    let connection =
        oauth_connect_and_wait_for_initial_sync(&engine, &base_url, Duration::from_secs(120))
            .await?;
    for i in remote_half..config.contacts {
        side.app
            .create_contact(&format!("Local {i}"), &format!("local{i}@chaos.example"))
            .await?;
    }
    let contact_ids = all_contact_ids(&engine).await?;
    anyhow::ensure!(
        contact_ids.len() == config.contacts,
        "expected {} contacts before the run, found {}",
        config.contacts,
        contact_ids.len()
    );

    handle.set_faults(FaultSpec::parse(&config.faults)?);

    // Kill points (and how many edits later tandem comes back), token expiry points.
    let mut kill_at = points(config.kills, config.edits, &mut rng);
    let mut expire_at = points(config.token_expiries, config.edits, &mut rng);
    let mut report = ChaosReport {
        contacts: config.contacts,
        ..ChaosReport::default()
    };
    let mut expected: HashMap<Uuid, Expected> = contact_ids
        .iter()
        .map(|id| (*id, Expected::default()))
        .collect();
    let started = Instant::now();
    for i in 0..config.edits {
        while kill_at.first() == Some(&i) {
            kill_at.remove(0);
            side.kill(i, config.edits, &mut rng).await?;
        }
        while expire_at.first() == Some(&i) {
            expire_at.remove(0);
            handle.expire_access_tokens();
            report.token_expiries += 1;
        }
        side.restart_if_due(i).await?;
        let contact = contact_ids[rng.gen_range(0..contact_ids.len())];
        let link = links::by_contact(engine.store.db(), connection.into(), contact.into()).await?;
        let remote_side = rng.gen_bool(0.5) && link.is_some();
        if let (true, Some(link)) = (remote_side, link) {
            let phone = format!("+2{i:09}");
            match handle.update_person_as_user(
                link.person_id.get(),
                serde_json::json!({ "phones": [{"value": phone, "primary": true}] }),
            ) {
                Ok(_) => {
                    report.pipedrive_edits += 1;
                    if let Some(e) = expected.get_mut(&contact) {
                        e.phone = Some(phone);
                    }
                }
                // The person was merged or deleted meanwhile: not an edit.
                Err(_) => continue,
            }
        } else {
            let name = format!("App edit {i}");
            side.rename(contact, &name).await?;
            report.app_edits += 1;
            if let Some(e) = expected.get_mut(&contact) {
                e.name = Some(name);
            }
        }
        report.edits_made += 1;
        pause(&mut rng, config.max_gap).await;
    }
    report.edit_phase = started.elapsed();
    report.kills = side.kills;

    // Drain: faults off, tandem up, wait until both sides agree (bounded).
    handle.set_faults(FaultSpec::default());
    let tandem = side.up().await?;
    let drain_started = Instant::now();
    loop {
        compare(&engine, &handle, connection, &expected, &mut report).await?;
        if report.clean() || drain_started.elapsed() > config.drain_timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report.drain = drain_started.elapsed();
    let state = connections::load(&engine, connection.into()).await?.state;
    if state != connections::state::CONNECTED {
        report
            .examples
            .push(format!("the connection ended in state {state}"));
    }
    report.api_calls = handle.total_calls();
    report.rate_limited = handle.rate_limited();
    report.webhooks_failed = handle
        .delivered_webhooks()
        .iter()
        .filter(|d| !d.delivered)
        .count();
    tandem.kill().await?;
    store.close().await?;
    sim.shutdown().await;
    Ok(report)
}

pub async fn all_contact_ids(engine: &Engine) -> anyhow::Result<Vec<Uuid>> {
    let db = engine.store.db();
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM contact ORDER BY created_at, id".to_owned(),
        ))
        .await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

async fn compare(
    engine: &Engine,
    handle: &pipedrive_sim::SimHandle,
    connection: Uuid,
    expected: &HashMap<Uuid, Expected>,
    report: &mut ChaosReport,
) -> anyhow::Result<()> {
    let mut divergent = 0;
    let mut lost = 0;
    let mut examples = Vec::new();
    let ids = all_contact_ids(engine).await?;
    let persons = handle.persons();
    let mut per_email: HashMap<String, usize> = HashMap::new();
    for person in &persons {
        if let Some(email) = person["emails"][0]["value"].as_str() {
            *per_email.entry(email.to_lowercase()).or_default() += 1;
        }
    }
    let duplicate_persons: usize = per_email.values().map(|n| n.saturating_sub(1)).sum();
    let missing_persons = expected.len().saturating_sub(persons.len());
    report.duplicates_created = duplicate_persons
        + persons.len().saturating_sub(expected.len())
        + ids.len().saturating_sub(expected.len());
    for (id, want) in expected {
        let Some(contact) = contacts::load(engine.store.db(), (*id).into()).await? else {
            lost += 1;
            continue;
        };
        let Some(link) =
            links::by_contact(engine.store.db(), connection.into(), (*id).into()).await?
        else {
            divergent += 1;
            if examples.len() < 5 {
                examples.push(format!("contact {id} is not linked"));
            }
            continue;
        };
        let Some(person) = handle.person(link.person_id.get()) else {
            divergent += 1;
            continue;
        };
        let local_name = first_value(contact.fields.get("name"));
        let local_email = first_value(contact.fields.get("email"));
        let local_phone = first_value(contact.fields.get("phone"));
        let remote_name = person["name"].as_str().map(str::to_owned);
        let remote_email = person["emails"][0]["value"].as_str().map(str::to_owned);
        let remote_phone = person["phones"][0]["value"].as_str().map(str::to_owned);
        if local_name != remote_name || local_email != remote_email || local_phone != remote_phone {
            divergent += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} / person {}: name {local_name:?} vs {remote_name:?}, phone {local_phone:?} vs {remote_phone:?}",
                    link.person_id
                ));
            }
        }
        if want.name.is_some() && (want.name != local_name || want.name != remote_name) {
            lost += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} / person {}: last app edit {:?}, app has {local_name:?}, Pipedrive has {remote_name:?}",
                    link.person_id, want.name
                ));
            }
        }
        if want.phone.is_some() && (want.phone != local_phone || want.phone != remote_phone) {
            lost += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} / person {}: last Pipedrive edit {:?}, app has {local_phone:?}, Pipedrive has {remote_phone:?}",
                    link.person_id, want.phone
                ));
            }
        }
    }
    report.divergent_records = divergent + missing_persons;
    report.edits_lost = lost;
    report.examples = examples;
    Ok(())
}
