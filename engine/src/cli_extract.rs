//! `tandem extract`: every Pipedrive object into tables, once (the extract connector's job), for
//! a connection or for an API token and domain given here; `--verify` compares the tables with
//! Pipedrive instead.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tandem_core::ConnectionId;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::config::{Redacted, Settings};
use crate::crm::limiter::documented_burst;
use crate::crm::pipedrive::client::Priority;
use crate::crm::{Auth, Crm, Session};
use crate::mirror::{self, ExtractOptions, Replication, Source};
use crate::store::mirror::MirrorDb;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Extract for this connection (from `tandem connections list`).
    #[arg(long, conflicts_with_all = ["api_token", "domain"])]
    pub connection: Option<ConnectionId>,
    /// A Pipedrive API token (instead of a connection).
    #[arg(
        long,
        env = "TANDEM_PIPEDRIVE_API_TOKEN",
        hide_env_values = true,
        requires = "domain"
    )]
    pub api_token: Option<String>,
    /// The company's domain: `mycompany` or `https://mycompany.pipedrive.com`.
    #[arg(long)]
    pub domain: Option<String>,
    /// A Postgres URL to write to (schema `pipedrive`); default: tandem's database.
    #[arg(long)]
    pub target: Option<String>,
    /// A replication file (YAML or TOML): streams, `mode`, `anchor_date`, `object`.
    #[arg(long, value_name = "FILE")]
    pub replication: Option<PathBuf>,
    /// Where incremental streams start on their first run (`YYYY-MM-DD`; default: everything).
    #[arg(long)]
    pub anchor_date: Option<String>,
    /// Compare row counts and checksums per stream with Pipedrive; list the differences.
    #[arg(long)]
    pub verify: bool,
    /// Read every stream in full and mark rows Pipedrive no longer lists as deleted.
    #[arg(long)]
    pub delete_pass: bool,
}

fn api_domain(domain: &str) -> String {
    let domain = domain.trim().trim_end_matches('/');
    if domain.contains("://") {
        domain.to_owned()
    } else {
        format!("https://{domain}.pipedrive.com")
    }
}

/// Runs `tandem extract`.
pub async fn run(settings: Settings, args: ExtractArgs) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database)
        .await
        .context("opening the database")?;
    if settings.database.migrate_on_start {
        store.migrate_up().await.context("running migrations")?;
    }
    let settings = Arc::new(settings);
    let crm = Crm::from_settings(&settings);
    let session = match (&args.connection, &args.api_token, &args.domain) {
        (Some(id), _, _) => {
            let vault = Arc::new(crate::app::open_vault(&settings, &store).await?);
            let public_url = settings.public_url(settings.http.port);
            let engine =
                crate::sync::Engine::new(store.clone(), vault, Arc::clone(&settings), public_url);
            crate::sync::connections::load(&engine, *id).await?.session
        }
        (None, Some(token), Some(domain)) => {
            let api_domain = api_domain(domain);
            crate::egress::check_crm_url(&settings, &api_domain)
                .map_err(|e| anyhow::anyhow!("--domain {api_domain} {e}"))?;
            Session {
                connection_id: ConnectionId::nil(),
                api_domain,
                auth: Auth::ApiToken(Redacted::new(token.clone())),
                seed_burst: documented_burst(&settings.pipedrive.plan, false),
            }
        }
        _ => anyhow::bail!("give --connection, or --api-token with --domain"),
    };
    let mut source = Source::new(&crm, session.clone(), Priority::Sync)?;
    if args.connection.is_none() {
        source.scope = session.api_domain.clone();
    }
    let replication = match &args.replication {
        Some(path) => Replication::from_file(path)?,
        None => Replication::all(args.anchor_date.clone()),
    };
    let db = match &args.target {
        Some(url) => MirrorDb::connect_target(url).await?,
        None => MirrorDb::in_store(&store),
    };
    if args.verify {
        let checks = mirror::verify(&source, &db, &replication.streams).await?;
        let mut differences = 0;
        println!(
            "{:<22} {:>9} {:>9} {:>17} {:>17}  DIFFERENCES",
            "STREAM", "PIPEDRIVE", "MIRROR", "CHECKSUM (PD)", "CHECKSUM (MIRROR)"
        );
        for c in &checks {
            println!(
                "{:<22} {:>9} {:>9} {:>17} {:>17}  {}",
                c.stream,
                c.remote_rows,
                c.local_rows,
                c.remote_checksum,
                c.local_checksum,
                c.differences
            );
            for (what, keys) in [
                ("missing", &c.missing),
                ("extra", &c.extra),
                ("stale", &c.stale),
            ] {
                if !keys.is_empty() {
                    println!("    {what}: {}", keys.join(", "));
                }
            }
            differences += c.differences;
        }
        if args.target.is_some() {
            db.close().await?;
        }
        store.close().await?;
        if differences > 0 {
            anyhow::bail!("{differences} difference(s) between Pipedrive and the mirror");
        }
        println!("the mirror matches Pipedrive");
        return Ok(());
    }
    let bars = MultiProgress::new();
    let open: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let progress = |stream: &str, records: u64, done: bool| {
        let Ok(mut open) = open.lock() else {
            return;
        };
        let bar = open.entry(stream.to_owned()).or_insert_with(|| {
            let bar = bars.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<20} {pos:>9} records {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(stream.to_owned());
            bar
        });
        bar.set_position(records);
        if done {
            bar.finish_with_message("done");
        } else {
            bar.tick();
        }
    };
    let options = ExtractOptions {
        stop_after_pages: None,
        delete_pass: args.delete_pass,
    };
    let reports = mirror::extract(&source, &db, &replication.streams, options, &progress).await?;
    let records: u64 = reports.iter().map(|r| r.records).sum();
    let pages: u64 = reports.iter().map(|r| r.pages).sum();
    let budget = crm.budget(&session);
    println!(
        "extracted {records} records in {pages} pages from {} streams ({} requests, {} tokens)",
        reports.len(),
        budget.requests.load(std::sync::atomic::Ordering::Relaxed),
        budget
            .tokens_spent
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    if args.target.is_some() {
        db.close().await?;
    }
    store.close().await?;
    Ok(())
}
