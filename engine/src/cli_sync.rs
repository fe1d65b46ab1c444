//! `tandem sync …`: run the change-capture steps by hand on a server without a browser —
//! the initial sync with a progress bar, one poll, one reconciliation pass, or a drain of every
//! pending event and write.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::app::open_vault;
use crate::config::Settings;
use crate::store::Store;
use crate::sync::{connections, inbound::poller, worker, Engine};

#[derive(Debug, Subcommand)]
pub enum SyncAction {
    /// Run (or resume) the initial sync, showing progress; `--restart` forgets a finished one.
    Initial {
        #[arg(long)]
        restart: bool,
    },
    /// Ask Pipedrive once for persons changed since the poll cursor.
    Poll,
    /// Compare every person now: repair drift, unlink deleted persons, repair webhooks.
    Reconcile,
    /// Apply every pending event and send every pending write, then exit.
    Drain,
}

/// The initial sync's progress on stderr (indicatif draws nothing when it is not a terminal):
/// the total is unknown until the last page, so a spinner with the count and the rate.
fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} initial sync: {pos} persons, {msg}/s")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

pub async fn run(settings: Settings, action: SyncAction) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database)
        .await
        .context("opening the database")?;
    store.migrate_up().await?;
    let vault = Arc::new(open_vault(&settings, &store).await?);
    let public_url = settings.public_url(settings.http.port);
    let engine = Engine::new(store, vault, Arc::new(settings), public_url);
    let id = connections::active_id(&engine.store, &tandem_core::TenantId::default())
        .await?
        .context("no Pipedrive connection: add one with `tandem connections add`")?;
    let conn = connections::load(&engine, id).await?;
    match action {
        SyncAction::Initial { restart } => {
            if restart {
                poller::reset_initial_sync(&engine, id).await?;
            }
            let bar = spinner();
            let progress = poller::initial_sync(&engine, id, |p| {
                bar.set_position(p.done);
                bar.set_message(format!("{:.0}", p.persons_per_sec));
            })
            .await?;
            bar.finish_and_clear();
            println!(
                "initial sync finished: {} persons ({} new contacts, {} linked to existing ones)",
                progress.done, progress.created, progress.linked
            );
        }
        SyncAction::Poll => {
            let changed = poller::poll_once(&engine, &conn).await?;
            println!("poll: {changed} contacts changed");
        }
        SyncAction::Reconcile => {
            let report = poller::reconcile(&engine, &conn).await?;
            println!(
                "reconcile: {} persons checked, {} repaired, {} unlinked, {} webhooks repaired",
                report.persons_seen, report.repaired, report.unlinked, report.webhooks_repaired
            );
        }
        SyncAction::Drain => {
            worker::drive_until_idle(&engine).await?;
            println!("drained: nothing pending");
        }
    }
    Ok(())
}
