//! Durable ingest of received deliveries with group commit: every receiver hands its event to
//! one writer task, which stores whatever has queued up meanwhile in one multi-row
//! `INSERT … ON CONFLICT DO NOTHING` (when fewer rows than events went in, the ids of those that
//! did are read back), then answers each request (new or duplicate). A delivery is
//! acknowledged only after its row is committed.

use std::sync::{Arc, OnceLock};

use tandem_webhooks::pipedrive::{Accepted, InboxError};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::store::{queue, Store, StoreError};
use crate::sync::worker::inbox_state;

/// Most events stored in one statement.
const MAX_BATCH: usize = 256;

/// An event to store in `inbox_event`.
pub use crate::store::queue::NewInboxEvent as NewEvent;

type Reply = oneshot::Sender<Result<Accepted, InboxError>>;

/// A handle on the writer task (started on first use, inside the runtime).
#[derive(Clone)]
pub struct IngestWriter {
    store: Store,
    clock: Arc<dyn Clock>,
    tx: Arc<OnceLock<mpsc::Sender<(NewEvent, Reply)>>>,
}

impl IngestWriter {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            tx: Arc::default(),
        }
    }

    fn sender(&self) -> &mpsc::Sender<(NewEvent, Reply)> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(write_loop(self.store.clone(), Arc::clone(&self.clock), rx));
            tx
        })
    }

    /// Stores one event durably; answers once it is committed.
    pub async fn store(&self, event: NewEvent) -> Result<Accepted, InboxError> {
        let (reply, answer) = oneshot::channel();
        self.sender()
            .send((event, reply))
            .await
            .map_err(|_| InboxError("the ingest writer stopped".into()))?;
        answer
            .await
            .map_err(|_| InboxError("the ingest writer stopped".into()))?
    }
}

async fn write_loop(
    store: Store,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<(NewEvent, Reply)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match insert(&store, clock.as_ref(), &mut batch).await {
            Ok(inserted) => {
                for ((_, reply), new) in batch.drain(..).zip(inserted) {
                    reply
                        .send(Ok(if new {
                            Accepted::New
                        } else {
                            Accepted::Duplicate
                        }))
                        .ok();
                }
            }
            Err(error) => {
                tracing::error!(error = %error, events = batch.len(), "Storing received deliveries failed; they were refused (the sender retries).");
                for (_, reply) in batch.drain(..) {
                    reply.send(Err(InboxError(error.to_string()))).ok();
                }
            }
        }
    }
}

/// Stores the batch's events (their values are moved into the statement) and says, for each,
/// whether its row was inserted (see [`queue::insert_inbox_events`]).
async fn insert(
    store: &Store,
    clock: &dyn Clock,
    batch: &mut [(NewEvent, Reply)],
) -> Result<Vec<bool>, StoreError> {
    queue::insert_inbox_events(
        store,
        batch.iter_mut().map(|(event, _)| event),
        inbox_state::PENDING,
        clock.now(),
    )
    .await
}
