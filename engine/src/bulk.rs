//! The bulk thread: work that reads and writes many records in a row (an initial sync of a
//! connection's whole CRM) runs on a runtime of its own with one worker thread, beside the
//! runtime that serves requests and drains the queues
//! ([ADR 28](../../docs/decisions/0028-initial-syncs-run-on-a-bulk-thread.md)).
//!
//! Two reasons. A page of a thousand persons parsed, merged and written is a burst of small
//! allocations; on the serving runtime the burst lands on whichever worker polls it, so every
//! worker's malloc arena grows to hold a page, and glibc keeps each arena at its peak (about
//! 6 MiB of a 51 MiB peak RSS at 100,000 persons went to that). On one thread it stays in one
//! arena. And the page work no longer queues behind (or in front of) webhook acks and pushes on
//! the serving workers.
//!
//! The runtime is built on first use and lives as long as the process. If it cannot be built
//! (no thread can be started), the work runs where it was called from.

use std::future::Future;
use std::sync::OnceLock;

use tracing::Instrument;

static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();

fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    RUNTIME
        .get_or_init(|| {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("tandem-bulk")
                .enable_all()
                .build()
            {
                Ok(runtime) => Some(runtime),
                Err(error) => {
                    tracing::warn!(error = %error, "The bulk thread could not be started; initial syncs run on the serving workers.");
                    None
                }
            }
        })
        .as_ref()
}

/// Runs `work` on the bulk thread and returns its output. Dropping the returned future (a
/// shutdown, a lost lease) cancels `work` at its next await, as it would be where it was
/// called. A panic in `work` is resumed here.
pub async fn run<F>(work: F) -> Result<F::Output, Cancelled>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let Some(runtime) = runtime() else {
        return Ok(work.await);
    };
    let mut task = Task(runtime.spawn(work.in_current_span()));
    match (&mut task.0).await {
        Ok(output) => Ok(output),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(Cancelled(error.to_string())),
    }
}

/// The bulk runtime cancelled the work (it is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the bulk thread cancelled the work: {0}")]
pub struct Cancelled(String);

/// The bulk task, aborted when dropped.
struct Task<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
