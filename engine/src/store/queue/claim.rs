//! The one claim statement of every queue (ADR 3), for both databases.
//!
//! Each queue (outbox jobs, inbox events, app deliveries) is a table described by a [`Lane`]:
//! which column says when a row is due, which holds its lease, what makes two rows "of the same
//! key" (one person, one contact) and which of them came first. The statement claims up to `n`
//! rows that are due (pending and `run_at` passed) or abandoned (running, lease passed), only
//! the **oldest unfinished row of each key** and only when no row of that key holds a live
//! lease, and marks them running until `now + lease`:
//!
//! - **Postgres**: `UPDATE … WHERE id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED) RETURNING …`:
//!   replicas never block on, or double-claim, each other's rows. Because only the oldest row of
//!   a key is a candidate, a row skipped because another transaction is claiming it never lets
//!   a later row of the same key through.
//! - **SQLite**: the same statement without the lock clause; SQLite's single writer (ADR 1)
//!   makes it atomic.
//!
//! Parameters: `$1` the lease's end, `$2` now, `$3` the limit, `$4` the boolean `false` (for
//! eligibility clauses on boolean columns), `$5` the claiming replica (for eligibility clauses
//! on connection leases; only when the lane's clause names it), `$6` one connection's id (for
//! lanes that claim one connection's rows; only when the lane's clause names it).
//!
//! The lanes themselves (which table, which states, which order) are the queue's policy
//! (`crate::queue`); this module turns one into the statement and runs it.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, FromQueryResult, Statement};

use super::super::{Conn, StoreError};

/// How one queue table is claimed. Every SQL fragment names the candidate row `j` and the
/// other row of the same key `o`.
#[derive(Debug)]
pub struct Lane {
    pub table: &'static str,
    /// The state of a row waiting to run, and of a claimed one.
    pub pending: &'static str,
    pub running: &'static str,
    /// The column with the time a pending row is due (`NULL` counts as due when `due_nullable`).
    pub run_at: &'static str,
    pub due_nullable: bool,
    /// The column with a running row's lease end (may be `run_at` itself).
    pub locked_until: &'static str,
    /// `o` and `j` belong to the same key. `<=>` is null-safe equality, written in each
    /// database's indexable form (SQLite `IS`, Postgres `IS NOT DISTINCT FROM`): an `OR` of
    /// "equal or both null" keeps SQLite from searching the key's index, and the claim then
    /// reads every row of the table once per candidate.
    pub same_key: &'static str,
    /// `o` was enqueued before `j`.
    pub earlier: &'static str,
    /// Extra condition on `j` (active connection, enabled subscription), or `""`.
    pub eligible: &'static str,
    pub order_by: &'static str,
    /// SQLite only: the index to walk in claim order, if the planner needs telling.
    pub sqlite_index: &'static str,
    /// Extra `SET` assignments, each starting with a comma.
    pub also_set: &'static str,
    pub returning: &'static str,
}

/// Claims up to `limit` rows of `lane` (see the module's doc) until `lease_end`, read as `T`;
/// `replica` is `$5` of the lane's eligibility clause.
pub(super) async fn claim<T: FromQueryResult>(
    db: &impl Conn,
    lane: &Lane,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u32,
    replica: Option<&str>,
) -> Result<Vec<T>, StoreError> {
    claim_of(db, lane, now, lease_end, limit, replica, None).await
}

/// As [`claim`], with `connection` as `$6` of the lane's eligibility clause.
pub(super) async fn claim_of<T: FromQueryResult>(
    db: &impl Conn,
    lane: &Lane,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u32,
    replica: Option<&str>,
    connection: Option<uuid::Uuid>,
) -> Result<Vec<T>, StoreError> {
    let db = db.raw();
    let statement = statement(
        lane,
        db.get_database_backend(),
        now,
        lease_end,
        limit,
        replica,
        connection,
    );
    Ok(T::find_by_statement(statement).all(db).await?)
}

/// The claim statement of `lane` on `backend`.
fn statement(
    lane: &Lane,
    backend: DatabaseBackend,
    now: DateTime<Utc>,
    lease_end: DateTime<Utc>,
    limit: u32,
    replica: Option<&str>,
    connection: Option<uuid::Uuid>,
) -> Statement {
    let (lock_clause, index_hint) = match backend {
        DatabaseBackend::Postgres => ("FOR UPDATE SKIP LOCKED", String::new()),
        DatabaseBackend::Sqlite | DatabaseBackend::MySql if !lane.sqlite_index.is_empty() => {
            ("", format!("INDEXED BY {}", lane.sqlite_index))
        }
        DatabaseBackend::Sqlite | DatabaseBackend::MySql => ("", String::new()),
    };
    let Lane {
        table,
        pending,
        running,
        run_at,
        locked_until,
        same_key,
        earlier,
        order_by,
        also_set,
        returning,
        ..
    } = lane;
    let same_key = null_safe_equality(same_key, backend);
    let due = if lane.due_nullable {
        format!("(j.{run_at} IS NULL OR j.{run_at} <= $2)")
    } else {
        format!("j.{run_at} <= $2")
    };
    let eligible = if lane.eligible.is_empty() {
        String::new()
    } else {
        format!("AND {} ", lane.eligible)
    };
    let sql = format!(
        "UPDATE {table} SET state = '{running}', {locked_until} = $1{also_set} \
         WHERE id IN ( \
           SELECT j.id FROM {table} j {index_hint} \
           WHERE ((j.state = '{pending}' AND {due}) OR (j.state = '{running}' AND j.{locked_until} < $2)) \
             {eligible}\
             AND NOT EXISTS ( \
               SELECT 1 FROM {table} o \
               WHERE {same_key} AND o.id <> j.id \
                 AND ((o.state = '{running}' AND o.{locked_until} >= $2) \
                   OR (o.state IN ('{pending}', '{running}') AND ({earlier})))) \
           ORDER BY {order_by} \
           LIMIT $3 {lock_clause}) \
         RETURNING {returning}"
    );
    let mut values: Vec<sea_orm::Value> =
        vec![lease_end.into(), now.into(), i64::from(limit).into()];
    let sixth = lane.eligible.contains("$6");
    if sixth || lane.eligible.contains("$4") || lane.eligible.contains("$5") {
        values.push(false.into());
    }
    if sixth || lane.eligible.contains("$5") {
        values.push(replica.unwrap_or_default().into());
    }
    if sixth {
        values.push(connection.unwrap_or_default().into());
    }
    Statement::from_sql_and_values(backend, sql, values)
}

/// `a <=> b` (null-safe equality) in the form each database can join on. SQLite: `a IS b`,
/// which its index search takes. Postgres: `IS NOT DISTINCT FROM` is neither hashable nor
/// indexable, so the claim's anti-join could hash on the other key columns only (`source`,
/// `object`: one bucket for every person event) and compared every pending event with every
/// other: 30 s per inbox claim at 10,000 pending events (`bench scale-out`, issue 24). There it
/// is written as two plain equalities, `(a IS NULL) = (b IS NULL) AND COALESCE(a::text, '') =
/// COALESCE(b::text, '')`, the same truth table, which a hash or merge anti-join keys on.
fn null_safe_equality(same_key: &str, backend: DatabaseBackend) -> String {
    let tokens: Vec<&str> = same_key.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "<=>" && !out.is_empty() && i + 1 < tokens.len() {
            let left = out.pop().unwrap_or_default();
            let right = tokens[i + 1];
            out.push(match backend {
                DatabaseBackend::Postgres => format!(
                    "(({left} IS NULL) = ({right} IS NULL) AND COALESCE({left}::text, '') = COALESCE({right}::text, ''))"
                ),
                DatabaseBackend::Sqlite | DatabaseBackend::MySql => format!("{left} IS {right}"),
            });
            i += 2;
        } else {
            out.push(tokens[i].to_owned());
            i += 1;
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANE: Lane = Lane {
        table: "t",
        pending: "pending",
        running: "running",
        run_at: "run_at",
        due_nullable: true,
        locked_until: "locked_until",
        same_key: "o.k = j.k AND o.n <=> j.n",
        earlier: "o.id < j.id",
        eligible: "",
        order_by: "j.id",
        sqlite_index: "t_idx",
        also_set: "",
        returning: "id",
    };

    #[test]
    fn postgres_skips_locked_rows_and_sqlite_walks_its_index() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let pg = statement(&LANE, DatabaseBackend::Postgres, now, now, 3, None, None).to_string();
        assert!(pg.contains("FOR UPDATE SKIP LOCKED"), "{pg}");
        assert!(!pg.contains("INDEXED BY"), "{pg}");
        let lite = statement(&LANE, DatabaseBackend::Sqlite, now, now, 3, None, None).to_string();
        assert!(!lite.contains("SKIP LOCKED"), "{lite}");
        assert!(lite.contains("INDEXED BY t_idx"), "{lite}");
        assert!(lite.contains("run_at IS NULL OR"), "{lite}");
        assert!(lite.contains("o.n IS j.n"), "{lite}");
        assert!(
            pg.contains("((o.n IS NULL) = (j.n IS NULL) AND COALESCE(o.n::text, '') = COALESCE(j.n::text, ''))"),
            "{pg}"
        );
    }

    #[test]
    fn postgres_writes_null_safe_equality_as_plain_equalities_an_anti_join_can_hash_on() {
        let key = "o.source = j.source AND o.object_id <=> j.object_id AND o.c <=> j.c";
        let pg = null_safe_equality(key, DatabaseBackend::Postgres);
        assert!(!pg.contains("DISTINCT"), "{pg}");
        assert!(!pg.contains("<=>"), "{pg}");
        assert_eq!(pg.matches("COALESCE(").count(), 4, "{pg}");
        assert!(pg.starts_with("o.source = j.source AND (("), "{pg}");
        assert_eq!(
            null_safe_equality(key, DatabaseBackend::Sqlite),
            "o.source = j.source AND o.object_id IS j.object_id AND o.c IS j.c"
        );
    }
}
