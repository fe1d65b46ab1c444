//! The `tandem` command line. Parsing lives here; every command calls into the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{cancel_on_signal, Application};
use crate::config::Settings;
use crate::store::Store;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Two-way, real-time sync between your app's contacts and Pipedrive."
)]
pub struct Cli {
    /// Configuration file (TOML). Without it, ./tandem.toml is read if present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the sync workers until SIGTERM or ctrl-c.
    Serve {
        /// Do not run pending migrations on start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Run sync steps by hand: initial sync (with progress), poll, reconcile, drain.
    Sync {
        #[command(subcommand)]
        action: crate::cli_sync::SyncAction,
    },
    /// Extract every Pipedrive object into tables (tandem's database or a Postgres target);
    /// `--verify` compares them with Pipedrive.
    Extract(crate::cli_extract::ExtractArgs),
    /// Manage CRM connections without a browser.
    Connections {
        #[command(subcommand)]
        action: ConnectionsAction,
    },
    /// Try tandem end to end in under a minute: a simulated Pipedrive, OAuth, initial sync,
    /// live edits on both sides, a summary. Needs nothing but this binary.
    Demo(crate::demo::DemoArgs),
    /// Run the built-in Pipedrive simulator (the same flags as `pipedrive-sim`).
    Sim(pipedrive_sim::SimArgs),
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsAction {
    /// Connect a CRM with an API token (checks it, creates the apId field, registers webhooks).
    Add {
        #[command(subcommand)]
        crm: AddCrm,
    },
    /// List connections: id, state, company, last successful sync, pending/failed/dead writes.
    List,
    /// Disconnect: remove webhooks, revoke the token, stop syncing; data and links are kept.
    Remove {
        /// The connection id (from `tandem connections list`).
        id: tandem_core::ConnectionId,
    },
}

#[derive(Debug, Subcommand)]
pub enum AddCrm {
    /// Pipedrive (Settings → Personal preferences → API gives the token).
    Pipedrive {
        /// The API token.
        #[arg(long, env = "TANDEM_PIPEDRIVE_API_TOKEN", hide_env_values = true)]
        api_token: String,
        /// The company's API domain.
        #[arg(long, default_value = "https://api.pipedrive.com")]
        api_domain: String,
        /// Replace a connection to a different Pipedrive company (drops its links; contacts stay).
        #[arg(long)]
        confirm_reset: bool,
        /// The tenant (the app's account) whose contacts the company syncs; without it, the
        /// `default` tenant's one company (ADR 26).
        #[arg(long, value_parser = tandem_core::TenantId::parse)]
        tenant: Option<tandem_core::TenantId>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back migrations (all of them unless --steps is given).
    Down {
        /// How many migrations to roll back.
        #[arg(long)]
        steps: Option<u32>,
    },
    /// List applied and pending migrations.
    Status,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // Self-contained: they read no configuration file.
        Command::Demo(args) => {
            let mut telemetry_settings = Settings::defaults().telemetry;
            telemetry_settings.filter = "warn".to_owned();
            telemetry::init(&telemetry_settings);
            return crate::demo::run(args).await;
        }
        Command::Sim(args) => return pipedrive_sim::run_cli(args).await,
        _ => {}
    }
    let mut settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.telemetry);
    match cli.command {
        Command::Serve { no_migrate } => {
            if no_migrate {
                settings.database.migrate_on_start = false;
            }
            let app = Application::build(settings).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            app.run_until_stopped(shutdown).await
        }
        Command::Migrate { action } => {
            let store = Store::connect(&settings.database)
                .await
                .context("opening the database")?;
            match action {
                MigrateAction::Up => {
                    store.migrate_up().await?;
                    println!("migrations applied");
                }
                MigrateAction::Down { steps } => {
                    store.migrate_down(steps).await?;
                    println!("migrations rolled back");
                }
                MigrateAction::Status => {
                    let status = store.migration_status().await?;
                    for name in &status.applied {
                        println!("applied  {name}");
                    }
                    for name in &status.pending {
                        println!("pending  {name}");
                    }
                }
            }
            store.close().await?;
            Ok(())
        }
        Command::Sync { action } => crate::cli_sync::run(settings, action).await,
        Command::Extract(args) => crate::cli_extract::run(settings, args).await,
        Command::Config => {
            print!("{}", settings.to_redacted_toml());
            Ok(())
        }
        Command::Connections { action } => connections_command(settings, action).await,
        Command::Demo(_) | Command::Sim(_) => Ok(()),
    }
}

async fn connections_command(settings: Settings, action: ConnectionsAction) -> anyhow::Result<()> {
    use crate::sync::{connections, connections::admin, Engine};
    let store = Store::connect(&settings.database)
        .await
        .context("opening the database")?;
    if settings.database.migrate_on_start {
        store.migrate_up().await.context("running migrations")?;
    }
    let vault = std::sync::Arc::new(crate::app::open_vault(&settings, &store).await?);
    let public_url = settings.public_url(settings.http.port);
    let engine = Engine::new(
        store.clone(),
        vault,
        std::sync::Arc::new(settings),
        public_url,
    );
    match action {
        ConnectionsAction::Add {
            crm:
                AddCrm::Pipedrive {
                    api_token,
                    api_domain,
                    confirm_reset,
                    tenant,
                },
        } => {
            let connected = connections::connect_for(
                &engine,
                connections::NewConnection {
                    api_domain: api_domain.trim_end_matches('/').to_owned(),
                    auth_kind: "api_token",
                    access_token: api_token,
                    refresh_token: None,
                    token_expires_at: None,
                },
                confirm_reset,
                &tenant.unwrap_or_default(),
            )
            .await?;
            println!(
                "connected {} (company {}, user {}, {} webhook(s) registered)",
                connected.id,
                connected
                    .company_id
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                connected.user_id,
                connected.webhooks_registered
            );
        }
        ConnectionsAction::List => {
            println!(
                "{:<36}  {:<14}  {:>10}  {:<24}  {:>7}  {:>6}  {:>4}",
                "ID", "STATE", "COMPANY", "LAST SYNC", "PENDING", "FAILED", "DEAD"
            );
            for c in admin::list_connections(&engine).await? {
                println!(
                    "{:<36}  {:<14}  {:>10}  {:<24}  {:>7}  {:>6}  {:>4}",
                    c.id,
                    c.label,
                    c.company_id.map(|v| v.to_string()).unwrap_or_default(),
                    c.last_success_at
                        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
                        .unwrap_or_else(|| "never".into()),
                    c.pending,
                    c.failed,
                    c.dead
                );
            }
        }
        ConnectionsAction::Remove { id } => {
            let done = connections::disconnect(&engine, id).await?;
            println!(
                "disconnected {id}: {} webhook(s) removed, token {}",
                done.webhooks_removed,
                if done.token_revoked {
                    "revoked"
                } else {
                    "not revoked"
                }
            );
            for warning in done.warnings {
                println!("warning: {warning}");
            }
        }
    }
    store.close().await?;
    Ok(())
}
