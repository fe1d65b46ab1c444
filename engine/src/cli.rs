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
        Command::Config => {
            print!("{}", settings.to_redacted_toml());
            Ok(())
        }
    }
}
