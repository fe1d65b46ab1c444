//! The mirror chaos run (issue 20): a small company with every kind of object, the live mirror
//! switched on for its connection, then random creates, edits and deletes across deals,
//! persons, organizations, activities, notes, leads and products made in the simulator while
//! it drops, duplicates and reorders webhooks, and tandem — a child `tandem serve` — is
//! SIGKILLed and restarted at random points. Then faults off; the mirror catches up on its own
//! (backstop and delete passes at short intervals from the run's configuration), and the mirror
//! is verified against the simulator as `tandem extract --verify` does (count and checksum of
//! `(key, update_time)` per stream, and the keys that differ). Used by `bench mirror-chaos`.
//!
//! Loopback only: the simulator runs in this process on 127.0.0.1, tandem's egress is limited
//! to 127.0.0.1. Bounded: a number of operations, a number of kills, a drain timeout.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use pipedrive_sim::{FaultSpec, RateLimits, SeedCounts, SimConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tandem_engine::mirror::StreamCheck;
use tandem_engine::store::mirror::MirrorDb;
use tandem_engine::sync::{connections, Engine};
use uuid::Uuid;

use crate::chaos::Harness;
use crate::child::{MirrorIntervals, TandemProcess};

/// The objects the run creates, edits and deletes (the mirror's streams with write endpoints
/// in the simulator).
pub const OBJECTS: [&str; 7] = [
    "deals",
    "persons",
    "organizations",
    "activities",
    "notes",
    "leads",
    "products",
];

/// What to run.
#[derive(Debug, Clone)]
pub struct MirrorChaosConfig {
    pub persons: usize,
    pub objects: SeedCounts,
    /// Creates, edits and deletes made in the simulator.
    pub operations: usize,
    /// SIGKILLs of tandem during the operations.
    pub kills: usize,
    pub seed: u64,
    /// The simulator's faults during the operations.
    pub faults: String,
    /// Largest pause between two operations (uniform 0..=max).
    pub max_gap: Duration,
    pub dir: PathBuf,
    /// `None`: a SQLite file in `dir`.
    pub database_url: Option<String>,
    /// The mirror's backstop and delete-pass intervals in the run's configuration.
    pub intervals: MirrorIntervals,
    /// How long the catch-up may take before the last verify's differences are reported.
    pub drain_timeout: Duration,
}

impl MirrorChaosConfig {
    pub fn new(operations: usize, kills: usize, seed: u64, dir: PathBuf) -> Self {
        Self {
            persons: 300,
            objects: SeedCounts {
                organizations: 40,
                deals: 600,
                activities: 120,
                notes: 60,
                leads: 30,
                products: 10,
            },
            operations,
            kills,
            seed,
            faults: "webhooks:drop=0.1,duplicate=0.1,reorder=0.1".to_owned(),
            max_gap: Duration::from_millis(4),
            dir,
            database_url: None,
            intervals: MirrorIntervals {
                poll_interval_secs: 2,
                delete_pass_interval_secs: 6,
            },
            drain_timeout: Duration::from_secs(180),
        }
    }
}

/// Operations made on one object.
#[derive(Debug, Clone, Copy, Default)]
pub struct Made {
    pub created: usize,
    pub edited: usize,
    pub deleted: usize,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct MirrorChaosReport {
    pub made: BTreeMap<&'static str, Made>,
    pub kills: usize,
    /// The last verification, per stream.
    pub checks: Vec<StreamCheck>,
    /// Verifications run during the catch-up (the last one is reported).
    pub verifies: usize,
    pub api_calls: u64,
    /// Webhook delivery attempts that did not reach tandem (dropped, or tandem was down).
    pub webhooks_failed: usize,
    pub webhooks_delivered: usize,
    pub edit_phase: Duration,
    pub drain: Duration,
}

impl MirrorChaosReport {
    pub fn differences(&self) -> usize {
        self.checks.iter().map(|c| c.differences).sum()
    }

    pub fn clean(&self) -> bool {
        !self.checks.is_empty() && self.differences() == 0
    }
}

/// The simulator's REST API, as a Pipedrive user's script would call it.
struct Pipedrive {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Pipedrive {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-token", &self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.ok()?;
        if !response.status().is_success() {
            tracing::debug!(path, status = %response.status(), "A chaos operation was refused.");
            return None;
        }
        response.json().await.ok()
    }
}

/// The path of an object's collection and the name of its text field.
fn endpoint(object: &str) -> (&'static str, &'static str) {
    match object {
        "deals" => ("/api/v2/deals", "title"),
        "persons" => ("/api/v2/persons", "name"),
        "organizations" => ("/api/v2/organizations", "name"),
        "activities" => ("/api/v2/activities", "subject"),
        "products" => ("/api/v2/products", "name"),
        "leads" => ("/api/v1/leads", "title"),
        _ => ("/api/v1/notes", "content"),
    }
}

/// The ids of an object's live rows in the mirror (the run's pools start from them).
async fn mirrored_ids(db: &MirrorDb, stream: &str) -> anyhow::Result<Vec<String>> {
    let table = db.sql_name(&db.table(stream));
    Ok(db
        .query_texts(&format!(
            "SELECT id FROM {table} WHERE deleted_at IS NULL ORDER BY id"
        ))
        .await?
        .into_iter()
        .flatten()
        .map(|id| id.trim_end_matches(".0").to_owned())
        .collect())
}

/// Random creates, edits and deletes across [`OBJECTS`] in the simulator, from a seed.
pub struct Operator {
    pipedrive: Pipedrive,
    rng: StdRng,
    /// Each object's ids that exist (as far as this operator knows).
    pools: BTreeMap<&'static str, Vec<String>>,
    pub made: BTreeMap<&'static str, Made>,
}

impl Operator {
    /// An operator on `handle`'s simulator, starting from the ids in the mirror `db` (after its
    /// initial extraction).
    pub async fn new(
        handle: &pipedrive_sim::SimHandle,
        db: &MirrorDb,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let mut pools = BTreeMap::new();
        for object in OBJECTS {
            pools.insert(object, mirrored_ids(db, object).await?);
        }
        Ok(Self {
            pipedrive: Pipedrive {
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()?,
                base: handle.base_url().to_owned(),
                token: handle.config().api_token.clone(),
            },
            rng: StdRng::seed_from_u64(seed),
            pools,
            made: BTreeMap::new(),
        })
    }

    fn pick(&mut self, object: &str) -> Option<String> {
        let pool = self.pools.get(object).filter(|p| !p.is_empty())?;
        Some(pool[self.rng.gen_range(0..pool.len())].clone())
    }

    /// One random operation on a random object (`i` numbers the texts it writes); a refused
    /// one (a record a cascade had removed) counts for nothing.
    pub async fn step(&mut self, i: usize) {
        let object = OBJECTS[self.rng.gen_range(0..OBJECTS.len())];
        let done = self.operate(object, i).await;
        let made = self.made.entry(object).or_default();
        match done {
            Some(Op::Created) => made.created += 1,
            Some(Op::Edited) => made.edited += 1,
            Some(Op::Deleted) => made.deleted += 1,
            None => {}
        }
    }

    async fn operate(&mut self, object: &'static str, i: usize) -> Option<Op> {
        let (path, field) = endpoint(object);
        let roll = self.rng.gen_range(0..10);
        let existing = self.pick(object);
        match (roll, existing) {
            // Deletes are rarer than creates, so the pools do not run dry.
            (0, Some(id)) => {
                if let Some(pool) = self.pools.get_mut(object) {
                    pool.retain(|x| *x != id);
                }
                self.pipedrive
                    .call(reqwest::Method::DELETE, &format!("{path}/{id}"), None)
                    .await?;
                Some(Op::Deleted)
            }
            (1..=3, _) | (_, None) => {
                let mut body = json!({ field: format!("Chaos {object} {i}") });
                match object {
                    "leads" => {
                        let person = self.pick("persons")?;
                        body["person_id"] = json!(person.parse::<i64>().ok()?);
                    }
                    "notes" => {
                        let deal = self.pick("deals")?;
                        body["deal_id"] = json!(deal.parse::<i64>().ok()?);
                    }
                    _ => {}
                }
                let created = self
                    .pipedrive
                    .call(reqwest::Method::POST, path, Some(body))
                    .await?;
                let id = match &created["data"]["id"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                self.pools.entry(object).or_default().push(id);
                Some(Op::Created)
            }
            (_, Some(id)) => {
                let method = if object == "notes" {
                    reqwest::Method::PUT
                } else {
                    reqwest::Method::PATCH
                };
                self.pipedrive
                    .call(
                        method,
                        &format!("{path}/{id}"),
                        Some(json!({ field: format!("Chaos edit {i}") })),
                    )
                    .await?;
                Some(Op::Edited)
            }
        }
    }
}

enum Op {
    Created,
    Edited,
    Deleted,
}

/// The mirror's verification, as the console's "Verify mirror" runs it.
pub async fn verify(engine: &Engine, connection: Uuid) -> anyhow::Result<Vec<StreamCheck>> {
    let conn = connections::load(engine, connection.into()).await?;
    Ok(tandem_engine::mirror::background::verify(&engine.crm, &engine.store, conn.session).await?)
}

/// Runs the mirror chaos scenario.
pub async fn run(config: MirrorChaosConfig) -> anyhow::Result<MirrorChaosReport> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    std::fs::create_dir_all(&config.dir)?;
    let database_url = config
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", config.dir.join("mirror-chaos.db").display()));
    let sim = pipedrive_sim::start(SimConfig {
        // Webhook retries after 30 ms, 300 ms, 1.5 s.
        time_scale: 0.01,
        seed: config.seed,
        webhook_timeout: Duration::from_secs(2),
        rate_limits: RateLimits::generous(),
        persons: config.persons,
        objects: config.objects,
        ..SimConfig::default()
    })
    .await?;
    let handle = sim.handle();
    let Harness {
        engine,
        store,
        child: mut child_config,
    } = Harness::new(&config.dir, &database_url, sim.base_url()).await?;
    child_config.mirror = Some(config.intervals);
    child_config.lease_secs = Some(3);

    // Connected with the API token and the mirror switched on before tandem starts: its
    // worker begins with the initial extraction.
    let connection = connections::connect(
        &engine,
        connections::NewConnection {
            api_domain: handle.base_url().to_owned(),
            auth_kind: "api_token",
            access_token: handle.config().api_token.clone(),
            refresh_token: None,
            token_expires_at: None,
        },
    )
    .await?
    .id;
    tandem_engine::sync::mirror::set_enabled(&engine, connection, true).await?;
    let mut tandem = Some(TandemProcess::start(&child_config).await?);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status = tandem_engine::sync::mirror::status(&engine, connection)
            .await?
            .context("the mirror is on")?;
        if status.initial_done_at.is_some() {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the initial extraction did not end"
        );
        // Another process does the work: nothing to be notified by.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let db = MirrorDb::in_store(&store);
    let mut operator = Operator::new(&handle, &db, config.seed.wrapping_add(1)).await?;

    handle.set_faults(FaultSpec::parse(&config.faults)?);
    let mut kill_at: Vec<usize> = (0..config.kills)
        .map(|_| rng.gen_range(0..config.operations.max(1)))
        .collect();
    kill_at.sort_unstable();
    let mut restart_at: Option<usize> = None;
    let mut report = MirrorChaosReport::default();
    let started = Instant::now();
    for i in 0..config.operations {
        while kill_at.first() == Some(&i) {
            kill_at.remove(0);
            if let Some(process) = tandem.take() {
                process.kill().await?;
                report.kills += 1;
                restart_at = Some(i + rng.gen_range(1..=(config.operations / 20).max(2)));
            }
        }
        if restart_at.is_some_and(|at| at <= i) && tandem.is_none() {
            tandem = Some(TandemProcess::start(&child_config).await?);
            restart_at = None;
        }
        operator.step(i).await;
        let gap = rng.gen_range(0..=config.max_gap.as_micros() as u64);
        if gap > 0 {
            tokio::time::sleep(Duration::from_micros(gap)).await;
        }
    }
    report.edit_phase = started.elapsed();
    report.made = operator.made.clone();

    // Catch-up: faults off, tandem up; its backstop and delete passes run at the run's short
    // intervals. Done when a verification finds no difference, and a later one, after a
    // further pass completed, still finds none.
    handle.set_faults(FaultSpec::default());
    let tandem = match tandem {
        Some(t) => t,
        None => TandemProcess::start(&child_config).await?,
    };
    let drain_started = Instant::now();
    let mut clean_after: Option<String> = None;
    loop {
        report.checks = verify(&engine, connection.uuid()).await?;
        report.verifies += 1;
        let last_poll = tandem_engine::sync::mirror::status(&engine, connection)
            .await?
            .and_then(|s| s.last_poll_at)
            .unwrap_or_default();
        if report.clean() {
            match &clean_after {
                Some(at) if last_poll > *at => break,
                Some(_) => {}
                None => clean_after = Some(last_poll),
            }
        } else {
            clean_after = None;
        }
        if drain_started.elapsed() > config.drain_timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.drain = drain_started.elapsed();
    report.api_calls = handle.total_calls();
    let deliveries = handle.delivered_webhooks();
    report.webhooks_failed = deliveries.iter().filter(|d| !d.delivered).count();
    report.webhooks_delivered = deliveries.iter().filter(|d| d.delivered).count();
    tandem.kill().await?;
    store.close().await?;
    sim.shutdown().await;
    Ok(report)
}
