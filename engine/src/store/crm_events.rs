//! The newest CRM change seen per record (`crm_event_version`), for journey triggers: a
//! change older than it arrived late (webhooks are not delivered in order).

use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
use tandem_core::ConnectionId;

use super::{Conn, StoreError};

/// Records `version` for the record if it is newer than the stored one (or the first);
/// returns whether it was not older (`false`: the change arrived after a newer one).
pub async fn advance(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
    object_id: &str,
    version: &str,
) -> Result<bool, StoreError> {
    let connection = connection.uuid();
    #[derive(FromQueryResult)]
    struct Row {
        version: String,
    }
    let backend = db.raw().get_database_backend();
    let stored = Row::find_by_statement(Statement::from_sql_and_values(
        backend,
        "SELECT version FROM crm_event_version \
         WHERE connection_id = $1 AND object = $2 AND object_id = $3",
        [connection.into(), object.into(), object_id.into()],
    ))
    .one(db.raw())
    .await?;
    if stored
        .as_ref()
        .is_some_and(|s| s.version.as_str() > version)
    {
        return Ok(false);
    }
    db.raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO crm_event_version (connection_id, object, object_id, version) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, object, object_id) \
             DO UPDATE SET version = excluded.version",
            [
                connection.into(),
                object.into(),
                object_id.into(),
                version.into(),
            ],
        ))
        .await?;
    Ok(true)
}

/// Records that trigger `kind` was announced for the record under `key` (for
/// `activity.overdue`, the due time); returns whether this call recorded it (`false`: it was
/// already announced under this key, by an earlier scan or another replica).
pub async fn announce_once(
    db: &impl Conn,
    connection: ConnectionId,
    kind: &str,
    object_id: &str,
    key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, StoreError> {
    let backend = db.raw().get_database_backend();
    let done = db
        .raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO crm_trigger_announced \
             (connection_id, kind, object_id, announced, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection_id, kind, object_id) \
             DO UPDATE SET announced = excluded.announced, updated_at = excluded.updated_at \
             WHERE crm_trigger_announced.announced <> excluded.announced",
            [
                connection.uuid().into(),
                kind.into(),
                object_id.into(),
                key.into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The key trigger `kind` was last announced under for each of these records.
pub async fn announced(
    db: &impl Conn,
    connection: ConnectionId,
    kind: &str,
) -> Result<std::collections::HashMap<String, String>, StoreError> {
    #[derive(FromQueryResult)]
    struct Row {
        object_id: String,
        announced: String,
    }
    let backend = db.raw().get_database_backend();
    let rows = Row::find_by_statement(Statement::from_sql_and_values(
        backend,
        "SELECT object_id, announced FROM crm_trigger_announced \
         WHERE connection_id = $1 AND kind = $2",
        [connection.uuid().into(), kind.into()],
    ))
    .all(db.raw())
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.object_id, r.announced))
        .collect())
}

/// A record's state as the app last heard it (`crm_trigger_state`).
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct TriggerState {
    pub object_id: String,
    /// The fields triggers read, as JSON text.
    pub state: String,
    /// The record's version (its `update_time`, in the mirror's time format) at that state.
    pub version: String,
    /// A catch-up event told the app of every change up to this version.
    pub covered: Option<String>,
}

/// Makes the caller's transaction the only one deciding what the app hears of one record
/// until it ends: a webhook's triggers (`sync::triggers::observe`) and a mirror pass's
/// catch-up both read the record's `crm_trigger_state`, announce from it and write it back; so
/// do a change poll's person reads (`sync::triggers::person_read`, Salesforce) and the note of
/// the owner a journey action gave (`sync::triggers::note_person_owner`).
///
/// On Postgres a plain read does not wait for a transaction that changed the row and has not
/// committed (read committed): a webhook read the state a catch-up was moving, did not see the
/// change covered, and told it a second time (the trigger chaos run: 2 runs of 71).
/// `FOR UPDATE` would not do: the row may not exist yet (a record no event was told of, whose
/// creation both would tell). So each takes a transaction-scoped advisory lock on the record's
/// key. SQLite has one writer (ADR 1): its transactions already take turns.
///
/// A transaction that locks several records takes them together with
/// [`lock_trigger_states`], which keeps the one order every such transaction follows.
pub async fn lock_trigger_state(
    txn: &impl Conn,
    connection: ConnectionId,
    object: &str,
    object_id: &str,
) -> Result<(), StoreError> {
    let backend = txn.raw().get_database_backend();
    if backend != sea_orm::DatabaseBackend::Postgres {
        return Ok(());
    }
    let key = format!("{}{object_id}", lock_prefix(connection, object));
    txn.raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [key.into()],
        ))
        .await?;
    Ok(())
}

/// [`lock_trigger_state`] of many records of `object`, in one statement.
///
/// Two transactions that each lock several records wait for each other forever (until
/// Postgres' deadlock check aborts one) if they take them in different orders; so the locks
/// are taken in the order of their keys (the hashes the locks are), whatever the order of
/// `object_ids`. The `ORDER BY` decides the order the locking function runs in (Postgres
/// evaluates a volatile output column after the sort).
pub async fn lock_trigger_states(
    txn: &impl Conn,
    connection: ConnectionId,
    object: &str,
    object_ids: &[&str],
) -> Result<(), StoreError> {
    let backend = txn.raw().get_database_backend();
    if backend != sea_orm::DatabaseBackend::Postgres || object_ids.is_empty() {
        return Ok(());
    }
    let ids = serde_json::Value::from(object_ids.to_vec());
    txn.raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "SELECT pg_advisory_xact_lock(keys.key) FROM ( \
               SELECT DISTINCT hashtextextended($1 || id, 0) AS key \
               FROM jsonb_array_elements_text($2::jsonb) AS id \
             ) AS keys ORDER BY keys.key",
            [lock_prefix(connection, object).into(), ids.into()],
        ))
        .await?;
    Ok(())
}

/// The start of the advisory lock key of `object`'s records on the connection (the record's
/// id follows).
fn lock_prefix(connection: ConnectionId, object: &str) -> String {
    format!("crm_trigger_state/{}/{object}/", connection.uuid())
}

/// The stored state of one record.
pub async fn trigger_state(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
    object_id: &str,
) -> Result<Option<TriggerState>, StoreError> {
    let backend = db.raw().get_database_backend();
    Ok(
        TriggerState::find_by_statement(Statement::from_sql_and_values(
            backend,
            "SELECT object_id, state, version, covered FROM crm_trigger_state \
         WHERE connection_id = $1 AND object = $2 AND object_id = $3",
            [connection.uuid().into(), object.into(), object_id.into()],
        ))
        .one(db.raw())
        .await?,
    )
}

/// Every stored state of `object`'s records on the connection, by id.
pub async fn trigger_states(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
) -> Result<std::collections::HashMap<String, TriggerState>, StoreError> {
    let backend = db.raw().get_database_backend();
    Ok(
        TriggerState::find_by_statement(Statement::from_sql_and_values(
            backend,
            "SELECT object_id, state, version, covered FROM crm_trigger_state \
         WHERE connection_id = $1 AND object = $2",
            [connection.uuid().into(), object.into()],
        ))
        .all(db.raw())
        .await?
        .into_iter()
        .map(|s| (s.object_id.clone(), s))
        .collect(),
    )
}

/// Stores a record's state at `version` unless a newer version is stored; `covered` (a
/// catch-up's) only ever grows. Returns whether the row was written.
pub async fn put_trigger_state(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
    object_id: &str,
    state: &str,
    version: &str,
    covered: Option<&str>,
) -> Result<bool, StoreError> {
    let row = TriggerStateRow {
        object_id,
        state,
        version,
        covered,
    };
    Ok(put_trigger_states(db, connection, object, &[row]).await? > 0)
}

/// A record's state to store with [`put_trigger_states`].
#[derive(Debug, Clone, Copy)]
pub struct TriggerStateRow<'a> {
    pub object_id: &'a str,
    pub state: &'a str,
    pub version: &'a str,
    pub covered: Option<&'a str>,
}

/// [`put_trigger_state`] of many records of `object`, in multi-row statements (a record named
/// twice goes to a later statement: one statement may not update a row twice). Returns how
/// many rows were written.
pub async fn put_trigger_states(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
    rows: &[TriggerStateRow<'_>],
) -> Result<u64, StoreError> {
    const COLUMNS: usize = 6;
    let backend = db.raw().get_database_backend();
    let mut written = 0;
    let mut rest = rows;
    while !rest.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let take = rest
            .iter()
            .take(super::MAX_BIND_PARAMS / COLUMNS)
            .take_while(|row| seen.insert(row.object_id))
            .count();
        let (chunk, after) = rest.split_at(take);
        rest = after;
        let mut sql = String::from(
            "INSERT INTO crm_trigger_state (connection_id, object, object_id, state, version, covered) VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * COLUMNS);
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let n = values.len();
            sql.push_str(&format!("({})", super::placeholders(n, 6)));
            values.extend([
                connection.uuid().into(),
                object.into(),
                row.object_id.into(),
                row.state.into(),
                row.version.into(),
                row.covered.map(str::to_owned).into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (connection_id, object, object_id) \
             DO UPDATE SET state = excluded.state, version = excluded.version, \
             covered = CASE WHEN excluded.covered IS NULL THEN crm_trigger_state.covered \
                            WHEN crm_trigger_state.covered IS NULL THEN excluded.covered \
                            WHEN excluded.covered > crm_trigger_state.covered THEN excluded.covered \
                            ELSE crm_trigger_state.covered END \
             WHERE crm_trigger_state.version <= excluded.version",
        );
        let done = db
            .raw()
            .execute(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        written += done.rows_affected();
    }
    Ok(written)
}

/// Records the states of records the app has not heard of yet (the mirror's initial
/// extraction: what is there is not news); states already stored are kept.
pub async fn seed_trigger_states(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
    rows: &[(String, String, String)],
) -> Result<(), StoreError> {
    let backend = db.raw().get_database_backend();
    for chunk in rows.chunks(super::MAX_BIND_PARAMS / 6) {
        let mut sql = String::from(
            "INSERT INTO crm_trigger_state (connection_id, object, object_id, state, version) VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 5);
        for (i, (object_id, state, version)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let n = values.len();
            sql.push_str(&format!("({})", super::placeholders(n, 5)));
            values.extend([
                connection.uuid().into(),
                object.into(),
                object_id.clone().into(),
                state.clone().into(),
                version.clone().into(),
            ]);
        }
        sql.push_str(" ON CONFLICT (connection_id, object, object_id) DO NOTHING");
        db.raw()
            .execute(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// Moves a record's state from the stored `expected` version to `state` at `version`, as a
/// catch-up event covering every change up to it; `false` when the stored row is not at
/// `expected` any more (a webhook moved it meanwhile: that one told the app).
pub async fn catch_up_state(
    db: &impl Conn,
    connection: ConnectionId,
    object: &str,
    object_id: &str,
    expected: Option<&str>,
    state: &str,
    version: &str,
) -> Result<bool, StoreError> {
    let backend = db.raw().get_database_backend();
    let done = match expected {
        Some(expected) => {
            db.raw()
                .execute(Statement::from_sql_and_values(
                    backend,
                    "UPDATE crm_trigger_state SET state = $4, version = $5, covered = $5 \
                 WHERE connection_id = $1 AND object = $2 AND object_id = $3 AND version = $6",
                    [
                        connection.uuid().into(),
                        object.into(),
                        object_id.into(),
                        state.into(),
                        version.into(),
                        expected.into(),
                    ],
                ))
                .await?
        }
        None => {
            db.raw()
                .execute(Statement::from_sql_and_values(
                    backend,
                    "INSERT INTO crm_trigger_state \
                 (connection_id, object, object_id, state, version, covered) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (connection_id, object, object_id) DO NOTHING",
                    [
                        connection.uuid().into(),
                        object.into(),
                        object_id.into(),
                        state.into(),
                        version.into(),
                    ],
                ))
                .await?
        }
    };
    Ok(done.rows_affected() > 0)
}

/// Where the connection's next catch-up starts: the start of the last mirror pass whose
/// catch-up completed (every row written before it was caught up or announced by its webhook).
pub async fn catch_up_since(
    db: &impl Conn,
    connection: ConnectionId,
) -> Result<Option<String>, StoreError> {
    #[derive(FromQueryResult)]
    struct Row {
        since: String,
    }
    let backend = db.raw().get_database_backend();
    Ok(Row::find_by_statement(Statement::from_sql_and_values(
        backend,
        "SELECT since FROM crm_trigger_catch_up WHERE connection_id = $1",
        [connection.uuid().into()],
    ))
    .one(db.raw())
    .await?
    .map(|r| r.since))
}

/// Records that the catch-up of the pass that started at `since` completed.
pub async fn set_catch_up_since(
    db: &impl Conn,
    connection: ConnectionId,
    since: &str,
) -> Result<(), StoreError> {
    let backend = db.raw().get_database_backend();
    db.raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO crm_trigger_catch_up (connection_id, since) VALUES ($1, $2) \
             ON CONFLICT (connection_id) DO UPDATE SET since = excluded.since",
            [connection.uuid().into(), since.into()],
        ))
        .await?;
    Ok(())
}
