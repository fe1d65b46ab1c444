//! Journey conditions on the contacts list (issue 22): which Pipedrive persons satisfy
//! `crm.*` filters, answered from the live mirror's tables (`pipedrive_persons`,
//! `pipedrive_deals`, `pipedrive_activities`, `pipedrive_leads`), and the indexes those
//! questions and `GET /api/v1/contacts/{id}/crm` need.
//!
//! The mirror's tables are created at runtime (their columns follow each company's fields), so
//! their indexes are too: [`ensure_condition_indexes`] after every mirror pass.

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};

use super::mirror::{ColKind, MirrorDb, TableRef};
use super::StoreError;

/// A deal condition: one deal of the person satisfies all the given parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DealCondition {
    pub stage_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    /// `open`, `won` or `lost`.
    pub status: Option<String>,
    pub owner_id: Option<i64>,
}

impl DealCondition {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The `crm.*` filters of the contacts list; every given part must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrmConditions {
    /// The person's owner (`crm.owner_id`).
    pub owner_id: Option<i64>,
    /// The person's organization (`crm.org_id`).
    pub org_id: Option<i64>,
    /// The person has a deal satisfying this (`crm.deal.*`).
    pub deal: DealCondition,
    /// The person has an open (not done) activity of this type (`crm.activity.open_type`).
    pub activity_open_type: Option<String>,
    /// The person has (true) or has no (false) open lead, one not archived (`crm.lead.open`).
    pub lead_open: Option<bool>,
}

impl CrmConditions {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Columns the conditions and the contact's CRM records look rows up by, per stream.
const INDEXED: &[(&str, &[&str])] = &[
    ("persons", &["owner_id", "org_id"]),
    ("deals", &["person_id", "stage_id", "owner_id"]),
    ("activities", &["person_id"]),
    ("leads", &["person_id"]),
];

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// A parameter of a column's kind: a boolean column on either database, an integer one for a
/// `0`/`1` flag the mirror inferred as a number.
fn flag(kind: ColKind, value: bool) -> Value {
    match kind {
        ColKind::BigInt => Value::BigInt(Some(i64::from(value))),
        _ => Value::Bool(Some(value)),
    }
}

/// The parameters of the subqueries being built, in the order they appear.
#[derive(Debug, Default)]
struct Sql {
    values: Vec<Value>,
}

/// Creates the indexes of [`INDEXED`] that the mirror's tables in `db` lack (tables or columns
/// not there yet are skipped; the next pass adds them). Returns how many were created.
pub async fn ensure_condition_indexes(db: &MirrorDb) -> Result<usize, StoreError> {
    #[derive(FromQueryResult)]
    struct Name {
        name: String,
    }
    let backend = db.backend();
    let mut created = 0;
    for (stream, columns) in INDEXED {
        let table = db.table(stream);
        let present = db.columns(&table).await?;
        if present.is_empty() {
            continue;
        }
        let existing: Vec<String> = Name::find_by_statement(match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                "SELECT indexname AS name FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
                [
                    table
                        .schema
                        .clone()
                        .unwrap_or_else(|| "public".into())
                        .into(),
                    table.name.clone().into(),
                ],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1",
                [table.name.clone().into()],
            ),
        })
        .all(db.connection())
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
        for column in columns.iter().filter(|c| present.contains_key(**c)) {
            let index = format!("{}_{column}_idx", table.name);
            if existing.contains(&index) {
                continue;
            }
            db.connection()
                .execute_unprepared(&format!(
                    "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
                    quote(&index),
                    db.sql_name(&table),
                    quote(column)
                ))
                .await?;
            created += 1;
        }
    }
    Ok(created)
}

/// The person ids that satisfy `conditions`, as SQL over the mirror's tables for use in
/// `person_id IN (…)` / `NOT IN (…)` clauses: `(include, exclude)` subqueries whose
/// parameters are numbered after `first_param - 1` already bound on Postgres, anonymous (`?`)
/// on SQLite. `None` when a table or
/// column a condition needs does not exist (yet): no person can satisfy it.
pub async fn person_subqueries(
    db: &MirrorDb,
    conditions: &CrmConditions,
    first_param: usize,
) -> Result<Option<PersonSubqueries>, StoreError> {
    let mut sql = Sql::default();
    // Postgres: parameters numbered from `first_param` (the caller binds the ones before).
    // SQLite: anonymous `?`, bound in the order they appear (sea-query's custom expressions
    // only fill the backend's own placeholder); every subquery's parameters are pushed in the
    // order the subqueries are written (includes, then the one exclude).
    let offset = first_param.saturating_sub(1);
    let numbered = db.backend() == DbBackend::Postgres;
    let param = |sql: &mut Sql, value: Value| -> String {
        sql.values.push(value);
        if numbered {
            format!("${}", sql.values.len() + offset)
        } else {
            "?".to_owned()
        }
    };
    let mut include: Vec<String> = Vec::new();
    let mut exclude: Vec<String> = Vec::new();
    let deleted = quote("deleted_at");

    if conditions.owner_id.is_some() || conditions.org_id.is_some() {
        let table = db.table("persons");
        let Some(where_) = where_clause(
            db,
            &table,
            &[
                ("owner_id", conditions.owner_id),
                ("org_id", conditions.org_id),
            ],
            &mut sql,
            &param,
        )
        .await?
        else {
            return Ok(None);
        };
        include.push(format!(
            "SELECT {} FROM {} WHERE {where_} AND {deleted} IS NULL",
            quote("id"),
            db.sql_name(&table)
        ));
    }
    if !conditions.deal.is_empty() {
        let table = db.table("deals");
        let deal = &conditions.deal;
        let Some(mut where_) = where_clause(
            db,
            &table,
            &[
                ("stage_id", deal.stage_id),
                ("pipeline_id", deal.pipeline_id),
                ("owner_id", deal.owner_id),
            ],
            &mut sql,
            &param,
        )
        .await?
        else {
            return Ok(None);
        };
        if let Some(status) = &deal.status {
            if !db.columns(&table).await?.contains_key("status") {
                return Ok(None);
            }
            let p = param(&mut sql, status.clone().into());
            where_.push_str(&format!(" AND {} = {p}", quote("status")));
        }
        include.push(format!(
            "SELECT {p} FROM {t} WHERE {where_} AND {p} IS NOT NULL AND {deleted} IS NULL",
            p = quote("person_id"),
            t = db.sql_name(&table)
        ));
    }
    if let Some(kind) = &conditions.activity_open_type {
        let table = db.table("activities");
        let columns = db.columns(&table).await?;
        let (Some(_), Some(_), Some(done)) = (
            columns.get("person_id"),
            columns.get("type"),
            columns.get("done"),
        ) else {
            return Ok(None);
        };
        let t = param(&mut sql, kind.clone().into());
        let not_done = param(&mut sql, flag(*done, false));
        include.push(format!(
            "SELECT {p} FROM {tb} WHERE {ty} = {t} AND ({d} IS NULL OR {d} = {not_done}) \
             AND {p} IS NOT NULL AND {deleted} IS NULL",
            p = quote("person_id"),
            tb = db.sql_name(&table),
            ty = quote("type"),
            d = quote("done"),
        ));
    }
    if let Some(open) = conditions.lead_open {
        let table = db.table("leads");
        let columns = db.columns(&table).await?;
        let open_leads = match (columns.get("person_id"), columns.get("is_archived")) {
            (Some(_), Some(archived)) => {
                let no = param(&mut sql, flag(*archived, false));
                Some(format!(
                    "SELECT {p} FROM {tb} WHERE ({a} IS NULL OR {a} = {no}) \
                     AND {p} IS NOT NULL AND {deleted} IS NULL",
                    p = quote("person_id"),
                    tb = db.sql_name(&table),
                    a = quote("is_archived"),
                ))
            }
            (Some(_), None) => Some(format!(
                "SELECT {p} FROM {tb} WHERE {p} IS NOT NULL AND {deleted} IS NULL",
                p = quote("person_id"),
                tb = db.sql_name(&table),
            )),
            _ => None,
        };
        match (open, open_leads) {
            (true, Some(q)) => include.push(q),
            (true, None) => return Ok(None),
            (false, Some(q)) => exclude.push(q),
            // No leads at all: every person has no open lead.
            (false, None) => {}
        }
    }
    Ok(Some(PersonSubqueries {
        include,
        exclude,
        values: sql.values,
    }))
}

/// Subqueries selecting person ids: a person satisfies the conditions when it is in every
/// `include` and in no `exclude`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonSubqueries {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub values: Vec<Value>,
}

/// `col = $n AND …` for the given integer parts; `None` when a column is missing.
async fn where_clause(
    db: &MirrorDb,
    table: &TableRef,
    parts: &[(&str, Option<i64>)],
    sql: &mut Sql,
    param: &impl Fn(&mut Sql, Value) -> String,
) -> Result<Option<String>, StoreError> {
    let columns = db.columns(table).await?;
    let mut out = vec!["1 = 1".to_owned()];
    for (column, value) in parts {
        let Some(value) = value else { continue };
        if !columns.contains_key(*column) {
            return Ok(None);
        }
        let p = param(sql, Value::BigInt(Some(*value)));
        out.push(format!("{} = {p}", quote(column)));
    }
    Ok(Some(out.join(" AND ")))
}

/// A row of the mirror as catch-up triggers read it.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorRow {
    pub id: String,
    /// The record as Pipedrive gave it (none for a delete's tombstone).
    pub raw: Option<serde_json::Value>,
    /// When it was marked deleted (the mirror's time format).
    pub deleted_at: Option<String>,
}

/// The rows of `stream` written or marked deleted at or after `since` (every row: `None`).
pub async fn rows_changed_since(
    db: &MirrorDb,
    stream: &str,
    since: Option<&str>,
) -> Result<Vec<MirrorRow>, StoreError> {
    let table = db.table(stream);
    if db.columns(&table).await?.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.backend();
    let (time, text) = match backend {
        DbBackend::Postgres => ("CAST($1 AS TIMESTAMPTZ)", "TEXT"),
        _ => ("$1", "TEXT"),
    };
    let deleted = match backend {
        // The mirror's own text format on both databases.
        DbBackend::Postgres => format!(
            "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
            quote("deleted_at")
        ),
        _ => format!("CAST({} AS TEXT)", quote("deleted_at")),
    };
    let mut sql = format!(
        "SELECT CAST({id} AS {text}) AS id, CAST({raw} AS TEXT) AS raw, {deleted} AS deleted_at \
         FROM {t}",
        id = quote("id"),
        raw = quote("_raw"),
        t = db.sql_name(&table),
    );
    let mut values: Vec<Value> = Vec::new();
    if let Some(since) = since {
        sql.push_str(&format!(
            " WHERE {s} >= {time} OR {d} >= {time}",
            s = quote("_synced_at"),
            d = quote("deleted_at"),
        ));
        values.push(since.into());
    }
    #[derive(FromQueryResult)]
    struct Row {
        id: Option<String>,
        raw: Option<String>,
        deleted_at: Option<String>,
    }
    Ok(
        Row::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(db.connection())
            .await?
            .into_iter()
            .filter_map(|r| {
                Some(MirrorRow {
                    id: r.id?,
                    raw: r.raw.and_then(|t| serde_json::from_str(&t).ok()),
                    deleted_at: r.deleted_at,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_is_bound_as_the_columns_kind() {
        assert_eq!(flag(ColKind::Bool, true), Value::Bool(Some(true)));
        assert_eq!(flag(ColKind::BigInt, false), Value::BigInt(Some(0)));
    }
}
