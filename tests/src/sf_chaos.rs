//! The chaos harness against Salesforce (issue 19): the Pipedrive harness's scenario with the
//! Salesforce simulator as the CRM. N contacts (half start as Salesforce Leads and Contacts, half
//! in the app and are pushed as Leads), random edits on both sides, the simulator injecting
//! faults (5xx, hangs, lost answers and resets on batched writes and their read-backs, queries),
//! sessions expired, the daily API allocation used up and freed again, Leads converted in the
//! middle of the run, and tandem (a child `tandem serve`) killed with SIGKILL and restarted. At
//! the end faults are turned off, tandem drains, and both sides are compared field by field.
//!
//! The app edits `name` (Salesforce `FirstName` + `LastName`) and the company (a Lead's
//! `Company`, a Contact's Account, found or created by name from a small set of names, so
//! batches and restarted workers race to create the same Account), Salesforce users edit
//! `Phone`, so every single edit must survive, whatever the interleaving, kills, faults and
//! conversions; and no Account may be created twice for one name (the Accounts a Lead
//! conversion makes are Salesforce's, not counted).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use salesforce_sim::{FaultSpec, OrgKind, SfSimConfig, SfSimHandle};
use serde_json::{json, Value};
use tandem_core::PersonId;
use tandem_engine::crm::salesforce::ids::person_surrogate;
use tandem_engine::crypto::Vault;
use tandem_engine::store::{connections as stored, cursors, Store};
use tandem_engine::sync::{app::contacts, connections, inbound::poller, links, Engine};
use uuid::Uuid;

use crate::chaos::{
    pause, points, settings_for, AppSide, Expected, CHAOS_ADMIN_TOKEN, CHAOS_API_KEY,
};
use crate::child::{ChildConfig, SalesforceChild};

const ORG: OrgKind = OrgKind::Production;

/// The companies the app gives contacts (a few, so that many contacts share each).
const COMPANIES: [&str; 6] = [
    "Initech",
    "Globex",
    "Umbrella",
    "Hooli",
    "Vandelay Industries",
    "Chaos Inc",
];

/// The company placeholder tandem writes to a Lead the app gives none (read back as none).
const COMPANY_PLACEHOLDER: &str = "[not provided]";

/// What to run.
#[derive(Debug, Clone)]
pub struct SfChaosConfig {
    pub contacts: usize,
    pub edits: usize,
    pub kills: usize,
    /// How many times every Salesforce session is expired during the run.
    pub session_expiries: usize,
    /// How many times the daily API allocation runs out (and is freed again a few edits on).
    pub quota_exhaustions: usize,
    /// How many Leads a Salesforce user converts during the run.
    pub conversions: usize,
    pub seed: u64,
    /// Simulator fault specification during the run.
    pub faults: String,
    /// Largest pause between two edits (uniform 0..=max).
    pub max_gap: Duration,
    /// Working directory (database, config, logs of the child).
    pub dir: PathBuf,
    /// `None`: a SQLite file in `dir`.
    pub database_url: Option<String>,
    /// How long the final drain may take before what is left counts as divergent.
    pub drain_timeout: Duration,
}

impl SfChaosConfig {
    pub fn new(contacts: usize, edits: usize, kills: usize, seed: u64, dir: PathBuf) -> Self {
        Self {
            contacts,
            edits,
            kills,
            session_expiries: kills.max(1),
            quota_exhaustions: 1,
            conversions: (contacts / 10).max(1),
            seed,
            faults: "sobjects:5xx=0.03,hang=0.003;composite:5xx=0.03,lost_answer=0.01,reset=0.005;query:5xx=0.03"
                .to_owned(),
            max_gap: Duration::from_millis(4),
            dir,
            database_url: None,
            drain_timeout: Duration::from_secs(90),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct SfChaosReport {
    pub contacts: usize,
    pub edits_made: usize,
    pub app_edits: usize,
    pub salesforce_edits: usize,
    /// App edits that changed a company (counted in `app_edits`).
    pub company_edits: usize,
    /// Accounts in Salesforce at the end that no Lead conversion made (tandem's, and none
    /// before the run).
    pub accounts: usize,
    pub conversions: usize,
    pub kills: usize,
    pub session_expiries: usize,
    pub quota_exhaustions: usize,
    pub divergent_records: usize,
    pub duplicates_created: usize,
    pub edits_lost: usize,
    /// Writes tandem gave up on (nothing in the run is a refusal: every one is a bug).
    pub dead_letters: i64,
    /// REST calls the simulator served (OAuth not counted; a Composite call is one).
    pub api_calls: u64,
    pub edit_phase: Duration,
    pub drain: Duration,
    /// A few examples of what diverged, for the failure message.
    pub examples: Vec<String>,
}

impl SfChaosReport {
    pub fn clean(&self) -> bool {
        self.divergent_records == 0
            && self.duplicates_created == 0
            && self.edits_lost == 0
            && self.dead_letters == 0
    }
}

/// Connects Salesforce as an admin would ("Connect with Salesforce": tandem → the simulator's
/// consent → tandem's callback, over HTTP) and waits (bounded) until the child's poller has
/// finished the initial sync.
async fn oauth_connect_and_wait(
    engine: &Engine,
    base_url: &str,
    timeout: Duration,
) -> anyhow::Result<Uuid> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let response = http
        .get(format!("{base_url}/connections/salesforce/connect"))
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
            let done = cursors::get(&engine.store, id, poller::INITIAL_SYNC_DONE).await?;
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

fn object_of(id: &str) -> &'static str {
    if id.starts_with("00Q") {
        "Lead"
    } else {
        "Contact"
    }
}

/// Which Salesforce id a link's person id stands for, learnt from the simulator's ids when a
/// lookup misses (a record read one at a time: the edit phase must not copy the whole org).
#[derive(Default)]
struct Ids(HashMap<PersonId, String>);

impl Ids {
    fn refresh(&mut self, handle: &SfSimHandle) {
        for object in ["Lead", "Contact"] {
            for id in handle.ids(ORG, object) {
                self.0.insert(person_surrogate(&id), id);
            }
        }
    }

    /// The record a person id stands for now, following a Lead's conversion to its Contact.
    fn current(&mut self, handle: &SfSimHandle, person: PersonId) -> Option<(String, Value)> {
        if !self.0.contains_key(&person) {
            self.refresh(handle);
        }
        let id = self.0.get(&person)?.clone();
        let record = handle.record(ORG, object_of(&id), &id)?;
        if record["IsConverted"] == true {
            let contact = record["ConvertedContactId"].as_str()?.to_owned();
            let converted = handle.record(ORG, "Contact", &contact)?;
            return Some((contact, converted));
        }
        Some((id, record))
    }

    /// Every unconverted Lead and every Contact: the persons tandem syncs.
    fn persons(&mut self, handle: &SfSimHandle) -> Vec<Value> {
        self.refresh(handle);
        self.0
            .values()
            .filter_map(|id| handle.record(ORG, object_of(id), id))
            .filter(|r| r["IsConverted"] != true)
            .collect()
    }

    /// A Lead that is not converted yet.
    fn unconverted_lead(&mut self, handle: &SfSimHandle) -> Option<String> {
        self.refresh(handle);
        self.0
            .values()
            .filter(|id| id.starts_with("00Q"))
            .find(|id| {
                handle
                    .record(ORG, "Lead", id)
                    .is_some_and(|r| r["IsConverted"] != true)
            })
            .cloned()
    }
}

fn text(record: &Value, field: &str) -> Option<String> {
    record[field]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn record_name(record: &Value) -> Option<String> {
    let parts: Vec<String> = [text(record, "FirstName"), text(record, "LastName")]
        .into_iter()
        .flatten()
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A person's company as the app should see it: a Lead's `Company`, a Contact's Account's
/// name; none for none or the placeholder.
fn record_company(handle: &SfSimHandle, id: &str, record: &Value) -> Option<String> {
    let company = if object_of(id) == "Lead" {
        text(record, "Company")
    } else {
        let account = text(record, "AccountId")?;
        handle
            .record(ORG, "Account", &account)
            .and_then(|a| text(&a, "Name"))
    };
    company.filter(|c| c != COMPANY_PLACEHOLDER)
}

/// Runs the Salesforce chaos scenario (see the module's text).
pub async fn run(config: SfChaosConfig) -> anyhow::Result<SfChaosReport> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    std::fs::create_dir_all(&config.dir)?;
    let database_url = config
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", config.dir.join("sf-chaos.db").display()));
    let sim = salesforce_sim::start(SfSimConfig {
        seed: config.seed,
        ..SfSimConfig::default()
    })
    .await?;
    let handle = sim.handle();
    let key = Vault::generate_key();
    let mut child = ChildConfig::new(&config.dir, &database_url, &key)?;
    child.api_key = Some(CHAOS_API_KEY.to_owned());
    child.admin_token = Some(CHAOS_ADMIN_TOKEN.to_owned());
    child.salesforce = Some(SalesforceChild::for_sim(&sim));
    // A restarted tandem takes its connection back after 3 s, not the default 15 s, so it is
    // up (and racing the edits) for most of the run.
    child.lease_secs = Some(3);
    let settings = settings_for(&database_url, &key, &child.base_url());
    let store = Store::connect(&settings.database).await?;
    store.migrate_up().await?;
    let engine = Engine::new(
        store.clone(),
        Arc::new(Vault::from_base64_keys(&[key])?),
        Arc::new(settings),
        child.base_url(),
    );

    // Half the contacts start in Salesforce (Leads and Contacts), half in the app.
    let remote_half = config.contacts / 2;
    for i in 0..remote_half {
        let object = if i % 2 == 0 { "Lead" } else { "Contact" };
        let mut body = json!({
            "FirstName": "Remote",
            "LastName": format!("R{i}"),
            "Email": format!("remote{i}@chaos.example"),
            "Phone": format!("+1000{i:07}"),
        });
        if object == "Lead" {
            body["Company"] = json!("Chaos Inc");
        }
        handle.insert_record(ORG, object, body)?;
    }
    let base_url = child.base_url();
    let mut side = AppSide::start(child).await?;
    let connection = oauth_connect_and_wait(&engine, &base_url, Duration::from_secs(120)).await?;
    for i in remote_half..config.contacts {
        side.app
            .create_contact(&format!("Local L{i}"), &format!("local{i}@chaos.example"))
            .await?;
    }
    let contact_ids = crate::chaos::all_contact_ids(&engine).await?;
    anyhow::ensure!(
        contact_ids.len() == config.contacts,
        "expected {} contacts before the run, found {}",
        config.contacts,
        contact_ids.len()
    );

    handle.set_faults(FaultSpec::parse(&config.faults)?);
    let mut kill_at = points(config.kills, config.edits, &mut rng);
    let mut expire_at = points(config.session_expiries, config.edits, &mut rng);
    let mut exhaust_at = points(config.quota_exhaustions, config.edits, &mut rng);
    let mut convert_at = points(config.conversions, config.edits, &mut rng);
    let mut quota_back_at: Option<usize> = None;
    let (_, allocation) = handle.api_usage(ORG);
    let mut report = SfChaosReport {
        contacts: config.contacts,
        ..SfChaosReport::default()
    };
    let mut expected: HashMap<Uuid, Expected> = contact_ids
        .iter()
        .map(|id| (*id, Expected::default()))
        .collect();
    let mut ids = Ids::default();
    // The Accounts Lead conversions made (named after the Lead's company; not tandem's).
    let mut converted_accounts: HashSet<String> = HashSet::new();
    let started = Instant::now();
    for i in 0..config.edits {
        while kill_at.first() == Some(&i) {
            kill_at.remove(0);
            side.kill(i, config.edits, &mut rng).await?;
        }
        while expire_at.first() == Some(&i) {
            expire_at.remove(0);
            handle.expire_sessions(None);
            report.session_expiries += 1;
        }
        while exhaust_at.first() == Some(&i) {
            exhaust_at.remove(0);
            // Another tool uses up the org's allocation; the window frees calls a little later.
            let (used, _) = handle.api_usage(ORG);
            handle.set_daily_api_requests(ORG, used);
            quota_back_at = Some(i + rng.gen_range(1..=(config.edits / 10).max(2)));
            report.quota_exhaustions += 1;
        }
        if quota_back_at.is_some_and(|at| at <= i) {
            handle.set_daily_api_requests(ORG, allocation);
            quota_back_at = None;
        }
        side.restart_if_due(i).await?;
        while convert_at.first() == Some(&i) {
            convert_at.remove(0);
            // A Salesforce user converts a Lead.
            if let Some(lead) = ids.unconverted_lead(&handle) {
                let (account, _) = handle.convert_lead(ORG, &lead, None, None)?;
                converted_accounts.insert(account);
                report.conversions += 1;
            }
        }
        let contact = contact_ids[rng.gen_range(0..contact_ids.len())];
        let link = links::by_contact(engine.store.db(), connection.into(), contact.into()).await?;
        let record_id = link.and_then(|l| ids.current(&handle, l.person_id).map(|(id, _)| id));
        let remote_side = rng.gen_bool(0.5) && record_id.is_some();
        if let (true, Some(id)) = (remote_side, record_id) {
            let phone = format!("+2{i:09}");
            match handle.update_record_as_user(ORG, object_of(&id), &id, json!({ "Phone": phone }))
            {
                Ok(_) => {
                    report.salesforce_edits += 1;
                    if let Some(e) = expected.get_mut(&contact) {
                        e.phone = Some(phone);
                    }
                }
                // Converted meanwhile: not an edit.
                Err(_) => continue,
            }
        } else if rng.gen_bool(0.25) {
            let company = COMPANIES[rng.gen_range(0..COMPANIES.len())];
            side.edit(contact, json!({ tandem_core::keys::ORG_NAME: company }))
                .await?;
            report.app_edits += 1;
            report.company_edits += 1;
            if let Some(e) = expected.get_mut(&contact) {
                e.company = Some(company.to_owned());
            }
        } else {
            let name = format!("App E{i}");
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

    // Drain: faults off, the allocation back, tandem up, wait until both sides agree (bounded).
    handle.set_faults(FaultSpec::default());
    handle.set_daily_api_requests(ORG, allocation);
    let tandem = side.up().await?;
    let drain_started = Instant::now();
    loop {
        compare(
            &engine,
            &handle,
            &mut ids,
            connection,
            &expected,
            &converted_accounts,
            &mut report,
        )
        .await?;
        if report.clean() || drain_started.elapsed() > config.drain_timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    report.drain = drain_started.elapsed();
    let row = stored::get(engine.store.db(), connection.into())
        .await?
        .context("the connection is stored")?;
    if row.state != connections::state::CONNECTED {
        report
            .examples
            .push(format!("the connection ended in state {}", row.state));
    }
    report.api_calls = salesforce_sim::Op::ALL
        .iter()
        .filter(|op| op.resource() != "oauth")
        .map(|op| handle.calls(op.name()))
        .sum();
    tandem.kill().await?;
    store.close().await?;
    Ok(report)
}

async fn compare(
    engine: &Engine,
    handle: &SfSimHandle,
    records: &mut Ids,
    connection: Uuid,
    expected: &HashMap<Uuid, Expected>,
    converted_accounts: &HashSet<String>,
    report: &mut SfChaosReport,
) -> anyhow::Result<()> {
    let (mut divergent, mut lost) = (0, 0);
    // Accounts tandem created twice for one name (a conversion's are Salesforce's own).
    let mut per_name: HashMap<String, usize> = HashMap::new();
    for id in handle.ids(ORG, "Account") {
        if converted_accounts.contains(&id) {
            continue;
        }
        if let Some(name) = handle
            .record(ORG, "Account", &id)
            .and_then(|r| text(&r, "Name"))
        {
            *per_name.entry(name.trim().to_lowercase()).or_default() += 1;
        }
    }
    let duplicate_accounts: usize = per_name.values().map(|n| n.saturating_sub(1)).sum();
    report.accounts = per_name.values().sum();
    let mut examples = Vec::new();
    for (name, n) in per_name.iter().filter(|(_, n)| **n > 1).take(3) {
        examples.push(format!("{n} Accounts named {name:?}"));
    }
    let sf_persons = records.persons(handle);
    let persons = sf_persons.len();
    let mut per_email: HashMap<String, usize> = HashMap::new();
    for record in &sf_persons {
        if let Some(email) = text(record, "Email") {
            *per_email.entry(email.to_lowercase()).or_default() += 1;
        }
    }
    let ids = crate::chaos::all_contact_ids(engine).await?;
    report.duplicates_created = per_email
        .values()
        .map(|n| n.saturating_sub(1))
        .sum::<usize>()
        + persons.saturating_sub(expected.len())
        + ids.len().saturating_sub(expected.len())
        + duplicate_accounts;
    let missing = expected.len().saturating_sub(persons);
    for (email, n) in per_email.iter().filter(|(_, n)| **n > 1).take(3) {
        let holders: Vec<String> = sf_persons
            .iter()
            .filter(|r| text(r, "Email").is_some_and(|e| e.to_lowercase() == *email))
            .map(|r| format!("{} {}", r["Id"], r["CreatedDate"]))
            .collect();
        examples.push(format!("{n} Salesforce persons share {email}: {holders:?}"));
    }
    if ids.len() > expected.len() {
        let extra: Vec<&Uuid> = ids
            .iter()
            .filter(|id| !expected.contains_key(id))
            .take(3)
            .collect();
        examples.push(format!(
            "{} app contacts beyond the {} expected, e.g. {extra:?}",
            ids.len() - expected.len(),
            expected.len()
        ));
    }
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
        let Some((record_id, record)) = records.current(handle, link.person_id) else {
            divergent += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} is linked to {}, which Salesforce does not hold",
                    link.person_id
                ));
            }
            continue;
        };
        if person_surrogate(&record_id) != link.person_id {
            divergent += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} is still linked to a converted Lead, not to its Contact {record_id}"
                ));
            }
            continue;
        }
        let first = |key: &str| crate::chaos::first_value(contact.fields.get(key));
        let (local_name, local_email, local_phone) =
            (first("name"), first("email"), first("phone"));
        let remote_name = record_name(&record);
        let remote_email = text(&record, "Email");
        let remote_phone = text(&record, "Phone");
        let local_company = first(tandem_core::keys::ORG_NAME);
        let remote_company = record_company(handle, &record_id, &record);
        if local_name != remote_name
            || local_email != remote_email
            || local_phone != remote_phone
            || local_company != remote_company
        {
            divergent += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} / {record_id}: name {local_name:?} vs {remote_name:?}, phone {local_phone:?} vs {remote_phone:?}, company {local_company:?} vs {remote_company:?}"
                ));
            }
        }
        if want.company.is_some()
            && (want.company != local_company || want.company != remote_company)
        {
            lost += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} / {record_id}: last app company {:?}, app has {local_company:?}, Salesforce has {remote_company:?}",
                    want.company
                ));
            }
        }
        if want.name.is_some() && (want.name != local_name || want.name != remote_name) {
            lost += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} / {record_id}: last app edit {:?}, app has {local_name:?}, Salesforce has {remote_name:?}",
                    want.name
                ));
            }
        }
        if want.phone.is_some() && (want.phone != local_phone || want.phone != remote_phone) {
            lost += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "contact {id} / {record_id}: last Salesforce edit {:?}, app has {local_phone:?}, Salesforce has {remote_phone:?}",
                    want.phone
                ));
            }
        }
    }
    report.dead_letters = crate::chaos::count(
        engine,
        "SELECT count(*) FROM outbox_job WHERE state = 'dead'",
    )
    .await?;
    report.divergent_records = divergent + missing;
    report.edits_lost = lost;
    report.examples = examples;
    Ok(())
}
