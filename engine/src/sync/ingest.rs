//! Durable ingest of received deliveries with group commit: every receiver hands its event to
//! one writer task, which stores whatever has queued up meanwhile in one multi-row
//! `INSERT … ON CONFLICT DO NOTHING RETURNING delivery_id`, then answers each request
//! (new or duplicate). A delivery is acknowledged only after its row is committed.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use chrono::Utc;
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, Statement};
use tandem_webhooks::pipedrive::{Accepted, InboxError};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::worker::inbox_state;
use crate::store::entities::inbox_event;
use crate::store::Store;

/// Most events stored in one statement.
const MAX_BATCH: usize = 256;

/// An event to store in `inbox_event`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub connection_id: Option<Uuid>,
    pub source: String,
    pub delivery_id: String,
    pub object: String,
    pub action: String,
    pub object_id: Option<String>,
    pub payload: String,
}

type Reply = oneshot::Sender<Result<Accepted, InboxError>>;

/// A handle on the writer task (started on first use, inside the runtime).
#[derive(Clone)]
pub struct IngestWriter {
    store: Store,
    tx: Arc<OnceLock<mpsc::Sender<(NewEvent, Reply)>>>,
}

impl IngestWriter {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            tx: Arc::default(),
        }
    }

    fn sender(&self) -> &mpsc::Sender<(NewEvent, Reply)> {
        self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
            tokio::spawn(write_loop(self.store.clone(), rx));
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

async fn write_loop(store: Store, mut rx: mpsc::Receiver<(NewEvent, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        match insert(&store, &mut batch).await {
            Ok(inserted) => {
                let mut answered = HashSet::new();
                for (event, reply) in batch.drain(..) {
                    let key = (event.source, event.delivery_id);
                    // Only the first of several identical deliveries in one batch is new.
                    let new = inserted.contains(&key) && answered.insert(key);
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

/// Stores the batch's events; the rows' values are moved out of them, but for `source` and
/// `delivery_id`, which identify the new ones among the returned keys.
async fn insert(
    store: &Store,
    batch: &mut [(NewEvent, Reply)],
) -> Result<HashSet<(String, String)>, DbErr> {
    use inbox_event::Column as C;
    let now = Utc::now();
    let mut query = Query::insert();
    query.into_table(inbox_event::Entity).columns([
        C::Id,
        C::ConnectionId,
        C::Source,
        C::DeliveryId,
        C::Object,
        C::Action,
        C::ObjectId,
        C::Payload,
        C::State,
        C::Attempts,
        C::ReceivedAt,
    ]);
    for (event, _) in batch.iter_mut() {
        query.values_panic([
            Expr::value(Uuid::now_v7()),
            Expr::value(event.connection_id),
            Expr::value(event.source.clone()),
            Expr::value(event.delivery_id.clone()),
            Expr::value(std::mem::take(&mut event.object)),
            Expr::value(std::mem::take(&mut event.action)),
            Expr::value(event.object_id.take()),
            Expr::value(std::mem::take(&mut event.payload)),
            Expr::value(inbox_state::PENDING),
            Expr::value(0),
            Expr::value(now),
        ]);
    }
    query.on_conflict(
        OnConflict::columns([C::Source, C::DeliveryId])
            .do_nothing()
            .to_owned(),
    );
    query.returning(Query::returning().columns([C::Source, C::DeliveryId]));
    let db = store.db();
    let backend = db.get_database_backend();
    let (sql, values) = match backend {
        sea_orm::DatabaseBackend::Postgres => query.build(sea_orm::sea_query::PostgresQueryBuilder),
        _ => query.build(sea_orm::sea_query::SqliteQueryBuilder),
    };
    let rows = db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok((
                row.try_get::<String>("", "source")?,
                row.try_get::<String>("", "delivery_id")?,
            ))
        })
        .collect()
}
