//! Scale-out on Postgres (issue 24): many Pipedrive companies (one simulator, a company and an
//! API token per connection, burst limits on) synced by R `tandem serve` replicas on one
//! database behind a round-robin proxy, with a steady stream of app and Pipedrive edits; then
//! a drain and the verdicts (requests over a rate limit, double sends, lost edits, final states)
//! with throughput and per-replica CPU and memory. `idle-connections`: memory and CPU of one
//! process holding many idle connections and a few active ones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pipedrive_sim::{CompanyAccess, RateLimits, SimConfig, SimHandle};
use sea_orm::{ConnectionTrait, Statement};
use tandem_engine::crypto::Vault;
use tandem_engine::store::Store;
use tandem_engine::sync::{app::contacts, connections, inbound::poller, links, Engine};
use tandem_tests::chaos::{settings_for, AppClient, CHAOS_ADMIN_TOKEN, CHAOS_API_KEY};
use tandem_tests::child::{ChildConfig, OAuthClient, TandemProcess};
use tandem_tests::fields::text_of;
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::report::{verdict, Section};

/// A round-robin TCP proxy (a load balancer): each accepted connection goes to the next
/// backend that accepts it, so a dead replica is skipped.
struct Proxy {
    url: String,
    backends: Arc<std::sync::Mutex<Vec<SocketAddr>>>,
}

impl Proxy {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let backends: Arc<std::sync::Mutex<Vec<SocketAddr>>> = Arc::default();
        let next = Arc::new(AtomicUsize::new(0));
        let shared = backends.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let backends = shared.lock().unwrap().clone();
                let next = next.clone();
                tokio::spawn(async move {
                    for _ in 0..backends.len() {
                        let i = next.fetch_add(1, Ordering::Relaxed) % backends.len();
                        if let Ok(mut outbound) = TcpStream::connect(backends[i]).await {
                            inbound.set_nodelay(true).ok();
                            outbound.set_nodelay(true).ok();
                            copy_bidirectional(&mut inbound, &mut outbound).await.ok();
                            return;
                        }
                    }
                });
            }
        });
        Ok(Self { url, backends })
    }

    fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().unwrap() = backends;
    }
}

/// `utime + stime` of a process, in seconds (`/proc/<pid>/stat`; 100 ticks per second).
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start at the closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// `VmRSS` and `VmHWM` of a process, in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One connected company: its simulator access, its connection, and its persons' contacts.
struct Company {
    access: CompanyAccess,
    /// The app's account the company syncs for: each company is a tenant of its own.
    tenant: tandem_core::TenantId,
    connection: Uuid,
    /// (person id, contact id), in the simulator's order.
    persons: Vec<(i64, Uuid)>,
}

/// The bench's own engine on the replicas' database (connects companies, inspects).
async fn harness_engine(
    database_url: &str,
    key: &str,
    public_url: &str,
    sim_url: &str,
) -> anyhow::Result<Engine> {
    let mut settings = settings_for(database_url, key, public_url);
    settings.pipedrive.oauth_base_url = sim_url.to_owned();
    settings.security.egress_allowed_hosts = vec!["127.0.0.1".to_owned()];
    settings.database.max_connections = 8;
    let store = Store::connect(&settings.database).await?;
    store.migrate_up().await?;
    Ok(Engine::new(
        store,
        Arc::new(Vault::from_base64_keys(&[key.to_owned()])?),
        Arc::new(settings),
        public_url.to_owned(),
    ))
}

/// Makes `n` companies of `persons` persons in the simulator and connects each (its own API
/// token) alongside the others, with its initial sync, 8 at a time.
async fn connect_companies(
    engine: &Engine,
    sim: &SimHandle,
    n: usize,
    persons: usize,
) -> anyhow::Result<Vec<Company>> {
    let accesses: Vec<(CompanyAccess, tandem_core::TenantId)> = (0..n)
        .map(|i| {
            let tenant = tandem_core::TenantId::parse(&format!("tenant-{i}"))?;
            anyhow::Ok((sim.add_company(persons), tenant))
        })
        .collect::<anyhow::Result<_>>()?;
    let semaphore = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for (access, tenant) in accesses {
        let (engine, sim_url, semaphore) =
            (engine.clone(), sim.base_url().to_owned(), semaphore.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = semaphore.acquire().await?;
            let connected = connections::connect_alongside(
                &engine,
                connections::NewConnection {
                    api_domain: sim_url,
                    auth_kind: "api_token",
                    access_token: access.api_token.clone(),
                    refresh_token: None,
                    token_expires_at: None,
                },
                &tenant,
            )
            .await?;
            poller::initial_sync(&engine, connected.id, |_| {}).await?;
            let mut persons = Vec::with_capacity(access.person_ids.len());
            for person in &access.person_ids {
                let link = links::by_person(
                    &engine.store,
                    connected.id,
                    tandem_core::PersonId::new(*person)?,
                )
                .await?
                .context("a seeded person is linked by the initial sync")?;
                persons.push((*person, link.contact_id.uuid()));
            }
            anyhow::Ok(Company {
                access,
                tenant,
                connection: connected.id.uuid(),
                persons,
            })
        }));
    }
    let mut companies = Vec::with_capacity(n);
    for task in tasks {
        companies.push(task.await??);
    }
    Ok(companies)
}

async fn query_pairs(engine: &Engine, sql: &str) -> anyhow::Result<Vec<(String, i64)>> {
    let db = engine.store.db();
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<String>(0)?,
                r.try_get_by_index::<i64>(1)?,
            ))
        })
        .collect()
}

/// Live leases per owner.
async fn lease_owners(engine: &Engine) -> anyhow::Result<HashMap<String, i64>> {
    Ok(query_pairs(
        engine,
        "SELECT owner, count(*) FROM connection_lease WHERE expires_at > now() GROUP BY owner",
    )
    .await?
    .into_iter()
    .collect())
}

/// The connections a replica holds a live lease on.
async fn leased_by(engine: &Engine, owner: &str) -> anyhow::Result<Vec<Uuid>> {
    let rows = query_pairs(
        engine,
        &format!(
            "SELECT connection_id::text, 0::bigint FROM connection_lease WHERE owner = '{owner}' AND expires_at > now()"
        ),
    )
    .await?;
    rows.into_iter()
        .map(|(id, _)| Ok(Uuid::parse_str(&id)?))
        .collect()
}

fn replica_config(
    dir: &std::path::Path,
    database_url: &str,
    key: &str,
    sim_url: &str,
    i: usize,
) -> anyhow::Result<ChildConfig> {
    let mut child = ChildConfig::new(&dir.join(format!("replica-{i}")), database_url, key)?;
    child.api_key = Some(CHAOS_API_KEY.to_owned());
    child.admin_token = Some(CHAOS_ADMIN_TOKEN.to_owned());
    child.replica_id = Some(format!("replica-{i}"));
    let sim_defaults = SimConfig::default();
    child.oauth = Some(OAuthClient {
        base_url: sim_url.to_owned(),
        client_id: sim_defaults.client_id,
        client_secret: sim_defaults.client_secret,
    });
    child.max_connections = 10;
    // The defaults of a deployment: the change-capture poll, the lease, retries.
    child.poll_interval_secs = 30;
    child.idle_poll_ms = 100;
    child.request_timeout_secs = 10;
    Ok(child)
}

/// What the run asked for.
#[derive(Debug, Clone)]
pub(crate) struct ScaleOptions {
    pub(crate) replicas: Vec<usize>,
    pub(crate) connections: usize,
    pub(crate) persons: usize,
    pub(crate) duration: Duration,
    /// App edits per second per connection (and as many Pipedrive edits).
    pub(crate) rate: f64,
    pub(crate) burst: u32,
    pub(crate) kill: bool,
    pub(crate) postgres: String,
}

/// One run's numbers.
struct ScaleRun {
    replicas: usize,
    killed: bool,
    edits: u64,
    load: Duration,
    drain: Duration,
    converged: bool,
    requests: u64,
    rate_limited: u64,
    max_in_window: u32,
    double_sends: usize,
    echoes: usize,
    lost: usize,
    differing: usize,
    takeover: Option<Duration>,
    /// (replica, CPU seconds over load + drain, RSS MiB at the end, peak RSS MiB, leases at the start).
    per_replica: Vec<(String, f64, f64, f64, i64)>,
}

/// The expected final name of each person (company index, person index), and the edits made.
#[derive(Default)]
struct Expected {
    names: std::sync::Mutex<HashMap<(usize, usize), String>>,
    edits: AtomicU64,
}

/// Drives app edits (through the proxy) of the even persons and Pipedrive users' edits of the
/// odd persons of one company, `rate` of each per second, until `stop`. An edit's value is
/// unique (`app-<company>-<person>-<n>`), so a value written twice is a double send.
async fn drive_company(
    k: usize,
    company: Arc<Company>,
    sim: SimHandle,
    app: Arc<AppClient>,
    rate: f64,
    stop: Instant,
    expected: Arc<Expected>,
) -> anyhow::Result<()> {
    let period = Duration::from_secs_f64(1.0 / rate);
    // Spread the companies' ticks over one period.
    let mut next = Instant::now() + period.mul_f64((k % 97) as f64 / 97.0);
    let mut n = 0usize;
    let count = company.persons.len();
    while Instant::now() < stop {
        tokio::time::sleep_until(next.into()).await;
        next += period;
        let app_person = (2 * n) % count;
        let pd_person = (2 * n + 1) % count;
        let value = format!("app-{k}-{app_person}-{n}");
        app.rename_in(Some(&company.tenant), company.persons[app_person].1, &value)
            .await?;
        expected
            .names
            .lock()
            .unwrap()
            .insert((k, app_person), value);
        expected.edits.fetch_add(1, Ordering::Relaxed);
        if pd_person != app_person {
            let value = format!("pd-{k}-{pd_person}-{n}");
            sim.update_person_as_user_in(
                company.access.company_id,
                company.persons[pd_person].0,
                serde_json::json!({ "name": value }),
            )?;
            expected.names.lock().unwrap().insert((k, pd_person), value);
            expected.edits.fetch_add(1, Ordering::Relaxed);
        }
        n += 1;
    }
    Ok(())
}

/// Persons whose state differs from the last edit, on the Pipedrive side and the app side.
async fn differences(
    engine: &Engine,
    sim: &SimHandle,
    companies: &[Arc<Company>],
    expected: &Expected,
) -> anyhow::Result<(usize, usize)> {
    let names = expected.names.lock().unwrap().clone();
    let (mut in_pipedrive, mut in_app) = (0, 0);
    for (k, company) in companies.iter().enumerate() {
        let persons: HashMap<i64, String> = sim
            .persons_of(company.access.company_id)
            .into_iter()
            .filter_map(|p| Some((p["id"].as_i64()?, p["name"].as_str()?.to_owned())))
            .collect();
        for (i, (person, contact)) in company.persons.iter().enumerate() {
            let Some(want) = names.get(&(k, i)) else {
                continue;
            };
            if persons.get(person) != Some(want) {
                in_pipedrive += 1;
            }
            let local = contacts::load(&engine.store, (*contact).into()).await?;
            let got = local.and_then(|c| text_of(&c, "name"));
            if got.as_deref() != Some(want.as_str()) {
                in_app += 1;
            }
        }
    }
    Ok((in_pipedrive, in_app))
}

async fn scale_run(
    options: &ScaleOptions,
    replicas: usize,
    kill: bool,
) -> anyhow::Result<ScaleRun> {
    let dir = std::env::temp_dir().join(format!("tandem-scale-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let database = tandem_tests::TestDatabase::create_on(Some(&options.postgres)).await?;
    let sim = pipedrive_sim::start(SimConfig {
        time_scale: 0.01,
        rate_limits: RateLimits::generous(),
        webhook_timeout: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await?;
    let handle = sim.handle();
    let proxy = Proxy::start().await?;
    let key = Vault::generate_key();
    let engine = harness_engine(&database.url, &key, &proxy.url, sim.base_url()).await?;
    let started = Instant::now();
    let companies: Vec<Arc<Company>> =
        connect_companies(&engine, &handle, options.connections, options.persons)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
    println!(
        "{replicas} replica(s): {} companies connected and synced in {:.1} s",
        companies.len(),
        started.elapsed().as_secs_f64()
    );

    let mut children = Vec::new();
    let mut configs = Vec::new();
    for i in 0..replicas {
        let config = replica_config(&dir, &database.url, &key, sim.base_url(), i)?;
        children.push(Some(TandemProcess::start(&config).await?));
        configs.push(config);
    }
    proxy.set_backends(
        configs
            .iter()
            .map(|c| SocketAddr::from(([127, 0, 0, 1], c.port)))
            .collect(),
    );
    // Until the connections are spread (each replica within one of its fair share).
    let share = options.connections.div_ceil(replicas) as i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let owners = loop {
        let owners = lease_owners(&engine).await?;
        let total: i64 = owners.values().sum();
        if total == options.connections as i64
            && owners.len() == replicas
            && owners.values().all(|n| *n <= share)
        {
            break owners;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the connections were not spread over the replicas: {owners:?}"
        );
        // Other processes take the leases: nothing to be notified by.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut limits = RateLimits::generous();
    limits.api_token_burst = options.burst;
    limits.oauth_burst = options.burst;
    handle.set_rate_limits(limits);
    handle.reset_counts();
    let cpu_before: Vec<f64> = children
        .iter()
        .map(|c| c.as_ref().map_or(0.0, |c| cpu_secs(c.pid)))
        .collect();

    let app = Arc::new(AppClient::new(proxy.url.clone())?);
    let expected = Arc::new(Expected::default());
    let load_started = Instant::now();
    let stop = load_started + options.duration;
    let mut drivers = Vec::new();
    for (k, company) in companies.iter().enumerate() {
        drivers.push(tokio::spawn(drive_company(
            k,
            company.clone(),
            handle.clone(),
            app.clone(),
            options.rate,
            stop,
            expected.clone(),
        )));
    }
    // The SIGKILL (halfway) and the wait for the takeover run beside the load.
    let mut killed_cpu = None;
    let watcher = if kill {
        tokio::time::sleep(options.duration / 2).await;
        let victim = "replica-0";
        let theirs = leased_by(&engine, victim).await?;
        let companies_of: Vec<i64> = companies
            .iter()
            .filter(|c| theirs.contains(&c.connection))
            .map(|c| c.access.company_id)
            .collect();
        let writes = move |handle: &SimHandle| -> usize {
            companies_of
                .iter()
                .map(|c| {
                    handle
                        .person_writes(*c)
                        .values()
                        .map(Vec::len)
                        .sum::<usize>()
                })
                .sum()
        };
        let process = children[0].take().context("replica 0 runs")?;
        killed_cpu = Some(cpu_secs(process.pid) - cpu_before[0]);
        process.kill().await?;
        let killed_at = Instant::now();
        let before = writes(&handle);
        println!(
            "SIGKILLed {victim} holding {} connections ({:.1} s into the load)",
            theirs.len(),
            load_started.elapsed().as_secs_f64()
        );
        let handle = handle.clone();
        Some(tokio::spawn(async move {
            let deadline = killed_at + Duration::from_secs(120);
            while writes(&handle) == before {
                anyhow::ensure!(Instant::now() < deadline, "no takeover within 120 s");
                // Polling the simulator's counters: the other replicas are other processes.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            println!("takeover: {:.1} s", killed_at.elapsed().as_secs_f64());
            anyhow::Ok(killed_at.elapsed())
        }))
    } else {
        None
    };
    for driver in drivers {
        driver.await??;
    }
    let load = load_started.elapsed();
    let drain_started = Instant::now();
    let deadline = drain_started + Duration::from_secs(600);
    let mut converged = false;
    while Instant::now() < deadline {
        let (a, b) = differences(&engine, &handle, &companies, &expected).await?;
        if a == 0 && b == 0 {
            converged = true;
            break;
        }
        // The replicas are other processes: poll the two sides.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drain = drain_started.elapsed();
    let takeover = match watcher {
        Some(w) => Some(w.await??),
        None => None,
    };
    // A little more time for late double sends to show up before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (in_pipedrive, in_app) = differences(&engine, &handle, &companies, &expected).await?;

    let mut per_replica = Vec::new();
    for (i, child) in children.iter().enumerate() {
        let id = format!("replica-{i}");
        let leases = owners.get(&id).copied().unwrap_or(0);
        match child {
            Some(c) => {
                let (rss, peak) = rss_mib(c.pid);
                per_replica.push((id, cpu_secs(c.pid) - cpu_before[i], rss, peak, leases));
            }
            None => per_replica.push((
                format!("{id} (killed; CPU until the kill)"),
                killed_cpu.unwrap_or(0.0),
                0.0,
                0.0,
                leases,
            )),
        }
    }
    let (mut requests, mut rate_limited, mut max_in_window) = (0, 0, 0);
    let (mut double_sends, mut echoes) = (0, 0);
    for company in &companies {
        let traffic = handle.company_traffic(company.access.company_id);
        requests += traffic.requests;
        rate_limited += traffic.rate_limited;
        max_in_window = max_in_window.max(traffic.max_in_window);
        for written in handle.person_writes(company.access.company_id).values() {
            let mut seen = std::collections::HashSet::new();
            for value in written {
                if value.starts_with("pd-") {
                    echoes += 1;
                } else if !seen.insert(value) {
                    double_sends += 1;
                }
            }
        }
    }
    for child in children.into_iter().flatten() {
        child.kill().await?;
    }
    sim.shutdown().await;
    drop(std::fs::remove_dir_all(&dir));
    Ok(ScaleRun {
        replicas,
        killed: kill,
        edits: expected.edits.load(Ordering::Relaxed),
        load,
        drain,
        converged,
        requests,
        rate_limited,
        max_in_window,
        double_sends,
        echoes,
        lost: in_pipedrive + in_app,
        differing: in_pipedrive.max(in_app),
        takeover,
        per_replica,
    })
}

pub(crate) async fn scale_out(options: &ScaleOptions) -> anyhow::Result<Section> {
    let mut runs = Vec::new();
    for &replicas in &options.replicas {
        runs.push(scale_run(options, replicas, false).await?);
    }
    if options.kill {
        let replicas = options.replicas.iter().copied().max().unwrap_or(2).max(2);
        runs.push(scale_run(options, replicas, true).await?);
    }
    let one = runs
        .iter()
        .find(|r| r.replicas == 1 && !r.killed)
        .map(|r| r.edits as f64 / (r.load + r.drain).as_secs_f64());
    let rows = runs
        .iter()
        .map(|r| {
            let total = (r.load + r.drain).as_secs_f64();
            let throughput = r.edits as f64 / total;
            let cpu: Vec<String> = r
                .per_replica
                .iter()
                .map(|(id, cpu, rss, peak, leases)| {
                    if *peak > 0.0 {
                        format!(
                            "{id}: {cpu:.1} s CPU, {rss:.0} MiB (peak {peak:.0}), {leases} conn."
                        )
                    } else {
                        format!("{id}: {cpu:.1} s CPU, {leases} conn.")
                    }
                })
                .collect();
            vec![
                format!(
                    "{}{}",
                    r.replicas,
                    if r.killed { ", one SIGKILLed" } else { "" }
                ),
                r.edits.to_string(),
                format!("{:.0} + {:.1}", r.load.as_secs_f64(), r.drain.as_secs_f64()),
                format!(
                    "{throughput:.1}{}",
                    one.map(|o| format!(" ({:.2}×)", throughput / o))
                        .unwrap_or_default()
                ),
                r.requests.to_string(),
                format!("{} (max {} in a window)", r.rate_limited, r.max_in_window),
                r.double_sends.to_string(),
                r.echoes.to_string(),
                format!(
                    "{}{}",
                    r.lost,
                    if r.converged { "" } else { " (not drained)" }
                ),
                r.takeover
                    .map_or_else(|| "—".to_owned(), |t| format!("{:.1} s", t.as_secs_f64())),
                cpu.join("; "),
                verdict(
                    r.rate_limited == 0 && r.double_sends == 0 && r.lost == 0 && r.differing == 0,
                ),
            ]
        })
        .collect();
    let c = options.connections;
    Ok(Section {
        id: "scale-out",
        title: format!(
            "Scale-out on Postgres: {c} connections over {} replica(s) (issue 24)",
            options
                .replicas
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ),
        command: format!(
            "cargo run {}-p tandem-bench -- scale-out --replicas {} --connections {c} --persons {} --duration {} --rate {} --burst {}{} --postgres $PG_URL",
            if cfg!(debug_assertions) { "" } else { "--release " },
            options.replicas.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            options.persons,
            options.duration.as_secs(),
            options.rate,
            options.burst,
            if options.kill { " --kill" } else { "" },
        ),
        header: vec![
            "replicas",
            "edits",
            "load + drain (s)",
            "edits applied/s (vs 1 replica)",
            "API requests",
            "429s",
            "double sends",
            "echoes",
            "lost / differing",
            "takeover",
            "per replica (load + drain)",
            "0 / 0 / 0",
        ],
        rows,
        notes: vec![
            format!("One in-process simulator with {c} companies (`SimHandle::add_company`), each with {} persons, its own API token, burst window ({} requests / 2 s per token, as Pipedrive's per-token burst limit) and webhooks; one Postgres database; R `tandem serve` child processes (`workers.replica_id` replica-0…, `database.max_connections = 10`, default lease 15 s, change-capture poll 30 s and idle poll 100 ms as a deployment has them; retries from 50 ms up to 2 s) behind a round-robin TCP proxy in this process (the load balancer): the app's edits and Pipedrive's webhooks reach any replica. The companies are connected, each for a tenant of its own (`connections::connect_alongside`, tenants `tenant-0`…; the app's edits name theirs with `Tandem-Tenant`; webhooks registered at the proxy) and synced before the replicas start; the run starts once the leases are spread (each replica at most its fair share).", options.persons, options.burst),
            format!("Load: per connection, {} app edits/s (`PATCH /api/v1/contacts/{{id}}` through the proxy, renaming the even persons) and as many Pipedrive users' edits/s (the simulator's UI hook, renaming the odd persons; webhooks to the proxy), each value unique. Then drain: until every person's name on both sides is its last edit (polled every 0.5 s). Edits applied/s = edits ÷ (load + drain).", options.rate),
            "Verdicts: 429s = requests the simulator refused for a company's burst window (any is a request over the limit; \"max in a window\" is the most admitted requests in any sliding 2 s, which the simulator's fixed windows allow up to twice the limit); double sends = the same value written twice to a person by the API; echoes = a Pipedrive edit written back to Pipedrive; lost = persons whose final name differs from the last edit on either side. Takeover = from the SIGKILL of replica-0 to the first write to Pipedrive for one of its connections by another replica.".to_owned(),
            "CPU = utime + stime from `/proc/<pid>/stat` over load and drain; RSS = `VmRSS` at the end (peak = `VmHWM`). The machine has 2 cores and the simulator, the proxy and the load run on them too: the 1/2/4 comparison is CPU-bound, read it with the per-replica CPU.".to_owned(),
        ],
    })
}

/// `idle-connections`: one replica, `idle` idle connections then `active` more with edits.
pub(crate) async fn idle_connections(
    idle: usize,
    active: usize,
    window: Duration,
    rate: f64,
    postgres: &str,
) -> anyhow::Result<Section> {
    let dir = std::env::temp_dir().join(format!("tandem-idle-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let database = tandem_tests::TestDatabase::create_on(Some(postgres)).await?;
    let sim = pipedrive_sim::start(SimConfig {
        time_scale: 0.01,
        rate_limits: RateLimits::generous(),
        ..SimConfig::default()
    })
    .await?;
    let handle = sim.handle();
    let proxy = Proxy::start().await?;
    let key = Vault::generate_key();
    let engine = harness_engine(&database.url, &key, &proxy.url, sim.base_url()).await?;
    let config = replica_config(&dir, &database.url, &key, sim.base_url(), 0)?;
    let process = TandemProcess::start(&config).await?;
    proxy.set_backends(vec![SocketAddr::from(([127, 0, 0, 1], config.port))]);
    let pid = process.pid;
    let settle = |n: i64| {
        let engine = engine.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(300);
            loop {
                let owned: i64 = lease_owners(&engine).await?.values().sum();
                if owned >= n {
                    return anyhow::Ok(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "only {owned} of {n} leases taken"
                );
                // Another process takes the leases.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    // Baseline: no connection, the idle window.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu0 = cpu_secs(pid);
    tokio::time::sleep(window).await;
    let (rss0, _) = rss_mib(pid);
    let cpu_empty = cpu_secs(pid) - cpu0;

    let started = Instant::now();
    connect_companies(&engine, &handle, idle, 1).await?;
    println!(
        "{idle} idle companies connected in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    settle(idle as i64).await?;
    handle.reset_counts();
    let cpu1 = cpu_secs(pid);
    tokio::time::sleep(window).await;
    let (rss1, _) = rss_mib(pid);
    let cpu_idle = cpu_secs(pid) - cpu1;
    let idle_requests = handle.total_calls();

    let companies: Vec<Arc<Company>> = connect_companies(&engine, &handle, active, 10)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect();
    settle((idle + active) as i64).await?;
    handle.reset_counts();
    let app = Arc::new(AppClient::new(proxy.url.clone())?);
    let expected = Arc::new(Expected::default());
    let cpu2 = cpu_secs(pid);
    let stop = Instant::now() + window;
    let mut drivers = Vec::new();
    for (k, company) in companies.iter().enumerate() {
        drivers.push(tokio::spawn(drive_company(
            k,
            company.clone(),
            handle.clone(),
            app.clone(),
            rate,
            stop,
            expected.clone(),
        )));
    }
    for driver in drivers {
        driver.await??;
    }
    let (rss2, peak) = rss_mib(pid);
    let cpu_active = cpu_secs(pid) - cpu2;
    let edits = expected.edits.load(Ordering::Relaxed);
    let active_requests = handle.total_calls();
    process.kill().await?;
    sim.shutdown().await;
    drop(std::fs::remove_dir_all(&dir));

    let w = window.as_secs_f64();
    let rows = vec![
        vec![
            "no connection".to_owned(),
            format!("{rss0:.1}"),
            format!("{cpu_empty:.2}"),
            "—".to_owned(),
            "—".to_owned(),
        ],
        vec![
            format!("{idle} idle"),
            format!("{rss1:.1}"),
            format!("{cpu_idle:.2}"),
            format!(
                "{:.1} KiB / idle connection",
                (rss1 - rss0) * 1024.0 / idle as f64
            ),
            format!("{idle_requests} requests to Pipedrive"),
        ],
        vec![
            format!("{idle} idle + {active} active ({edits} edits)"),
            format!("{rss2:.1} (peak {peak:.1})"),
            format!("{cpu_active:.2}"),
            format!(
                "{:.1} KiB / active connection",
                (rss2 - rss1) * 1024.0 / active as f64
            ),
            format!("{active_requests} requests to Pipedrive"),
        ],
    ];
    Ok(Section {
        id: "idle-connections",
        title: format!("{idle} idle connections + {active} active in one process (issue 24)"),
        command: format!(
            "cargo run {}-p tandem-bench -- idle-connections --idle {idle} --active {active} --window {} --rate {rate} --postgres $PG_URL",
            if cfg!(debug_assertions) { "" } else { "--release " },
            window.as_secs()
        ),
        header: vec![
            "state",
            "RSS (MiB)",
            "CPU seconds over the window",
            "memory per connection",
            "Pipedrive requests in the window",
        ],
        rows,
        notes: vec![
            format!("One `tandem serve` (Postgres, `database.max_connections = 10`, change-capture poll every 30 s, idle poll 100 ms, lease 15 s: a deployment's defaults) and the simulator in this process. Each state is measured over a {w:.0} s window: first with no connection, then after {idle} companies of one person each were connected (their own API tokens and webhooks) and synced and the process held their {idle} leases, then with {active} more companies of 10 persons each under {rate} app edits/s and {rate} Pipedrive edits/s per connection. RSS is `VmRSS` at the end of the window; memory per connection is the RSS difference divided by the connections added."),
            "An idle connection is not free of work: each is polled for changes (every 30 s here) and its lease renewed with the others every 5 s; the requests column counts what the idle ones cost Pipedrive.".to_owned(),
        ],
    })
}
