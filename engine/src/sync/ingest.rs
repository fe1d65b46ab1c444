//! Durable ingest of received deliveries with group commit: every receiver hands its event to
//! one writer task, which stores whatever has queued up meanwhile in one multi-row
//! `INSERT … ON CONFLICT DO NOTHING` (when fewer rows than events went in, the ids of those that
//! did are read back), then answers each request (new or duplicate). A delivery is
//! acknowledged only after its row is committed.

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
/// whether its row was inserted: `false` for a delivery already stored, or repeated earlier in
/// the batch (`ON CONFLICT DO NOTHING` on the source and delivery id). Each row gets its id
/// here; when fewer rows than events were inserted, the ids that made it are read back.
async fn insert(store: &Store, batch: &mut [(NewEvent, Reply)]) -> Result<Vec<bool>, DbErr> {
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
    let mut ids = Vec::with_capacity(batch.len());
    for (event, _) in batch.iter_mut() {
        let id = Uuid::now_v7();
        ids.push(id);
        query.values_panic([
            Expr::value(id),
            Expr::value(event.connection_id),
            Expr::value(std::mem::take(&mut event.source)),
            Expr::value(std::mem::take(&mut event.delivery_id)),
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
    let db = store.db();
    let backend = db.get_database_backend();
    let (sql, values) = build(backend, &query);
    let inserted = db
        .execute(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .rows_affected();
    if usize::try_from(inserted).is_ok_and(|n| n == ids.len()) {
        return Ok(vec![true; ids.len()]);
    }
    let (sql, values) = build(
        backend,
        Query::select()
            .column(C::Id)
            .from(inbox_event::Entity)
            .and_where(Expr::col(C::Id).is_in(ids.iter().copied())),
    );
    let stored: HashSet<Uuid> = db
        .query_all(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .into_iter()
        .map(|row| row.try_get::<Uuid>("", "id"))
        .collect::<Result<_, _>>()?;
    Ok(ids.iter().map(|id| stored.contains(id)).collect())
}

fn build<Q: sea_orm::sea_query::QueryStatementWriter>(
    backend: sea_orm::DatabaseBackend,
    query: &Q,
) -> (String, sea_orm::sea_query::Values) {
    match backend {
        sea_orm::DatabaseBackend::Postgres => query.build(sea_orm::sea_query::PostgresQueryBuilder),
        _ => query.build(sea_orm::sea_query::SqliteQueryBuilder),
    }
}
