//! The mirror's tables: created and altered at runtime from the streams' columns (not a
//! migration: the columns follow each company's custom fields), written with idempotent
//! upserts, one transaction per page together with the stream's cursor. Works on tandem's own
//! database (tables `pipedrive_{stream}`, cursors in `mirror_cursor`) or on a Postgres target
//! (schema `pipedrive`, tables named by stream, cursors in `pipedrive._mirror_cursor`).

use std::collections::BTreeMap;

use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, FromQueryResult, Statement,
    TransactionTrait, Value,
};

use super::{Store, StoreError, MAX_BIND_PARAMS};
use tandem_core::ConnectionId;

/// A column's type, mapped to each database's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ColKind {
    BigInt,
    Double,
    Bool,
    Text,
    Json,
    Time,
}

impl ColKind {
    fn sql(self, backend: DbBackend) -> &'static str {
        let postgres = backend == DbBackend::Postgres;
        match self {
            Self::BigInt => "BIGINT",
            Self::Double => "DOUBLE PRECISION",
            Self::Bool => "BOOLEAN",
            Self::Text => "TEXT",
            // SQLite: a type name containing TEXT keeps TEXT affinity (a bare JSON would turn
            // the string '12' into the number 12) and reads back as itself.
            Self::Json if postgres => "JSONB",
            Self::Json => "JSON TEXT",
            Self::Time if postgres => "TIMESTAMPTZ",
            Self::Time => "TIMESTAMP TEXT",
        }
    }

    fn from_declared(declared: &str) -> Self {
        let t = declared.to_ascii_lowercase();
        if t.contains("json") {
            Self::Json
        } else if t.contains("timestamp") {
            Self::Time
        } else if t.contains("int") {
            Self::BigInt
        } else if t.contains("double") || t.contains("real") || t.contains("numeric") {
            Self::Double
        } else if t.contains("bool") {
            Self::Bool
        } else {
            Self::Text
        }
    }

    /// The placeholder for parameter `n` (Postgres casts text to its JSON and time types).
    fn placeholder(self, n: usize, backend: DbBackend) -> String {
        match (self, backend) {
            (Self::Json, DbBackend::Postgres) => format!("${n}::jsonb"),
            (Self::Time, DbBackend::Postgres) => format!("${n}::timestamptz"),
            _ => format!("${n}"),
        }
    }

    /// The `n`th of parameters that appear in order in the statement (a multi-row upsert):
    /// on SQLite an anonymous `?`. When binding, sqlx asks SQLite for each parameter's name,
    /// and SQLite finds a numbered one's (`$n`, `?n`) by walking a list of them: binding a
    /// 900-value upsert was quadratic (a third of an extraction's CPU). Anonymous ones have no
    /// name to look up.
    fn placeholder_in_order(self, n: usize, backend: DbBackend) -> String {
        match backend {
            DbBackend::Sqlite => "?".to_owned(),
            _ => self.placeholder(n, backend),
        }
    }
}

/// One value to write.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Text, JSON text or an RFC 3339 time, as the column's kind says.
    Text(String),
}

impl Cell {
    fn value(&self) -> Value {
        match self {
            Self::Null => Value::String(None),
            Self::Int(v) => Value::BigInt(Some(*v)),
            Self::Float(v) => Value::Double(Some(*v)),
            Self::Bool(v) => Value::Bool(Some(*v)),
            Self::Text(v) => Value::String(Some(Box::new(v.clone()))),
        }
    }

    /// [`Cell::value`] without copying the text; `Null` typed as `kind`'s column.
    fn into_value(self, kind: ColKind) -> Value {
        match self {
            Self::Null => Self::typed_null(kind),
            Self::Text(v) => Value::String(Some(Box::new(v))),
            other => other.value(),
        }
    }

    fn typed_null(kind: ColKind) -> Value {
        match kind {
            ColKind::BigInt => Value::BigInt(None),
            ColKind::Double => Value::Double(None),
            ColKind::Bool => Value::Bool(None),
            ColKind::Text | ColKind::Json | ColKind::Time => Value::String(None),
        }
    }
}

/// How an upsert treats a row marked deleted (`deleted_at` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revive<'a> {
    /// A listing (extraction, backstop, delete pass) is Pipedrive's current state: a row it
    /// lists is live again (a restore, or a false positive of the delete pass).
    Listed,
    /// A webhook's change: a deleted row comes back only when the change's version, as a time
    /// in the mirror's format, is strictly newer than its `deleted_at` (Pipedrive does not
    /// undelete with an older version); without a version it stays deleted.
    NewerThanDelete(Option<&'a str>),
}

/// A table of the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub schema: Option<String>,
    pub name: String,
}

impl TableRef {
    fn sql(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", quote(schema), quote(&self.name)),
            None => quote(&self.name),
        }
    }
}

/// A stream's cursor row: where an interrupted run resumes, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromQueryResult)]
pub struct CursorRow {
    pub scope: String,
    pub stream: String,
    /// The next page of the run in progress (v2 cursor, or v1 `start` offset as text).
    pub page_cursor: Option<String>,
    /// `updated_since` of the run in progress.
    pub run_since: Option<String>,
    /// When the run in progress started (RFC 3339): rows not seen since are gone (full pass).
    pub run_started_at: Option<String>,
    /// The newest `update_time` seen by the run in progress.
    pub run_max: Option<String>,
    /// The newest `update_time` of the last completed run: the next run's `updated_since`.
    pub high_water: Option<String>,
    pub completed_at: Option<String>,
    pub pages: i64,
}

/// A custom field's column.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct FieldMapRow {
    pub stream: String,
    pub field_key: String,
    pub column_name: String,
    pub field_name: String,
    pub field_type: String,
}

/// Where the mirror writes.
#[derive(Debug, Clone)]
pub struct MirrorDb {
    db: DatabaseConnection,
    schema: Option<String>,
    prefix: &'static str,
    cursor_table: TableRef,
    field_map: TableRef,
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl MirrorDb {
    /// tandem's own database: tables `pipedrive_{stream}`.
    pub fn in_store(store: &Store) -> Self {
        Self {
            db: store.db().clone(),
            schema: None,
            prefix: "pipedrive_",
            cursor_table: TableRef {
                schema: None,
                name: "mirror_cursor".into(),
            },
            field_map: TableRef {
                schema: None,
                name: "pipedrive__field_map".into(),
            },
        }
    }

    /// A Postgres database given as the target: schema `pipedrive`, created if missing.
    pub async fn connect_target(url: &str) -> Result<Self, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StoreError::Connect(
                "the mirror's target must be a postgres:// URL".into(),
            ));
        }
        let db = Database::connect(url)
            .await
            .map_err(|e| StoreError::Connect(e.to_string()))?;
        let schema = "pipedrive".to_owned();
        let this = Self {
            db,
            cursor_table: TableRef {
                schema: Some(schema.clone()),
                name: "_mirror_cursor".into(),
            },
            field_map: TableRef {
                schema: Some(schema.clone()),
                name: "_field_map".into(),
            },
            schema: Some(schema),
            prefix: "",
        };
        this.exec(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote("pipedrive")
        ))
        .await?;
        this.exec(&format!(
            "CREATE TABLE IF NOT EXISTS {} (scope TEXT NOT NULL, stream TEXT NOT NULL, \
             page_cursor TEXT, run_since TEXT, run_started_at TEXT, run_max TEXT, \
             high_water TEXT, completed_at TEXT, pages BIGINT NOT NULL DEFAULT 0, \
             PRIMARY KEY (scope, stream))",
            this.cursor_table.sql()
        ))
        .await?;
        Ok(this)
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// The database connection (for the journey conditions' queries in `store`).
    pub(super) fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The table of stream `stream` (`object` naming: `pipedrive.{stream_name}` by default).
    pub fn table(&self, stream: &str) -> TableRef {
        TableRef {
            schema: self.schema.clone(),
            name: format!("{}{stream}", self.prefix),
        }
    }

    /// The table named by a replication's `object` (`schema.table` on Postgres; on SQLite the
    /// dot becomes an underscore).
    pub fn object_table(&self, object: &str) -> TableRef {
        match (&self.schema, object.split_once('.')) {
            (Some(_), Some((schema, name))) => TableRef {
                schema: Some(schema.to_owned()),
                name: name.to_owned(),
            },
            (Some(schema), None) => TableRef {
                schema: Some(schema.clone()),
                name: object.to_owned(),
            },
            (None, _) => TableRef {
                schema: None,
                name: object.replace('.', "_"),
            },
        }
    }

    async fn exec(&self, sql: &str) -> Result<(), StoreError> {
        self.db.execute_unprepared(sql).await?;
        Ok(())
    }

    /// Creates `table` with its key if missing; returns its columns as they are now.
    pub async fn ensure_table(
        &self,
        table: &TableRef,
        key: &str,
        key_kind: ColKind,
    ) -> Result<BTreeMap<String, ColKind>, StoreError> {
        let backend = self.backend();
        if let Some(schema) = &table.schema {
            self.exec(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote(schema)))
                .await?;
        }
        self.exec(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({} {} NOT NULL PRIMARY KEY, {} {}, {} {}, {} {})",
            table.sql(),
            quote(key),
            key_kind.sql(backend),
            quote("_raw"),
            ColKind::Json.sql(backend),
            quote("_synced_at"),
            ColKind::Time.sql(backend),
            quote("deleted_at"),
            ColKind::Time.sql(backend),
        ))
        .await?;
        self.columns(table).await
    }

    /// The table's columns and their kinds.
    pub async fn columns(&self, table: &TableRef) -> Result<BTreeMap<String, ColKind>, StoreError> {
        #[derive(FromQueryResult)]
        struct Column {
            name: String,
            kind: String,
        }
        let backend = self.backend();
        let statement = match backend {
            DbBackend::Postgres => Statement::from_sql_and_values(
                backend,
                "SELECT column_name AS name, data_type AS kind FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2",
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
                "SELECT name, type AS kind FROM pragma_table_info($1)",
                [table.name.clone().into()],
            ),
        };
        Ok(Column::find_by_statement(statement)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.name, ColKind::from_declared(&c.kind)))
            .collect())
    }

    /// Adds columns (`ALTER TABLE … ADD COLUMN`, one per statement as SQLite requires).
    pub async fn add_columns(
        &self,
        table: &TableRef,
        columns: &[(String, ColKind)],
    ) -> Result<(), StoreError> {
        let backend = self.backend();
        for (name, kind) in columns {
            let if_not = if backend == DbBackend::Postgres {
                "IF NOT EXISTS "
            } else {
                ""
            };
            self.exec(&format!(
                "ALTER TABLE {} ADD COLUMN {if_not}{} {}",
                table.sql(),
                quote(name),
                kind.sql(backend)
            ))
            .await?;
        }
        Ok(())
    }

    fn upsert_sql(
        &self,
        table: &TableRef,
        key: &str,
        columns: &[(String, ColKind)],
        rows: usize,
        version: Option<&str>,
        revive: Revive<'_>,
    ) -> String {
        let backend = self.backend();
        let names: Vec<String> = columns.iter().map(|(n, _)| quote(n)).collect();
        let mut values = Vec::with_capacity(rows);
        let mut n = 0;
        for _ in 0..rows {
            let row: Vec<String> = columns
                .iter()
                .map(|(_, kind)| {
                    n += 1;
                    kind.placeholder_in_order(n, backend)
                })
                .collect();
            values.push(format!("({})", row.join(", ")));
        }
        let updates: Vec<String> = columns
            .iter()
            .filter(|(name, _)| name != key)
            .map(|(name, _)| format!("{0} = excluded.{0}", quote(name)))
            .collect();
        let t = table.sql();
        let mut conditions: Vec<String> = Vec::new();
        if let Some(v) = version {
            conditions.push(format!(
                "({t}.{v} IS NULL OR excluded.{v} IS NULL OR excluded.{v} >= {t}.{v})",
                v = quote(v)
            ));
        }
        if let Revive::NewerThanDelete(version_time) = revive {
            // The version as a time (a parameter after the rows'), compared with `deleted_at` as
            // times: `timestamptz` on Postgres, text of one format on SQLite.
            let d = quote("deleted_at");
            conditions.push(match version_time {
                Some(_) => format!(
                    "({t}.{d} IS NULL OR {t}.{d} < {})",
                    ColKind::Time.placeholder_in_order(n + 1, backend)
                ),
                None => format!("{t}.{d} IS NULL"),
            });
        }
        let guard = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        format!(
            "INSERT INTO {} ({}) VALUES {} ON CONFLICT ({}) DO UPDATE SET {}{guard}",
            table.sql(),
            names.join(", "),
            values.join(", "),
            quote(key),
            updates.join(", ")
        )
    }

    /// Writes one page of a listing: upserts `rows` (values in `columns` order; an older
    /// `version` than the stored one changes nothing; a row marked deleted is live again, as
    /// Pipedrive lists it) and stores `cursor`, in one transaction.
    pub async fn write_page(
        &self,
        table: &TableRef,
        key: &str,
        columns: &[(String, ColKind)],
        rows: Vec<Vec<Cell>>,
        version: Option<&str>,
        cursor: Option<&CursorRow>,
    ) -> Result<(), StoreError> {
        self.write_rows(table, key, columns, rows, version, Revive::Listed, cursor)
            .await
    }

    /// Writes one webhook's change: upserts `row` as [`MirrorDb::write_page`] does, except that
    /// a row marked deleted stays deleted unless `version_time` (the row's `version` as a time,
    /// in the mirror's format) is strictly newer than its `deleted_at`: a late or repeated
    /// webhook for an edit made before the delete does not bring the row back.
    pub async fn write_change(
        &self,
        table: &TableRef,
        key: &str,
        columns: &[(String, ColKind)],
        row: &[Cell],
        version: Option<&str>,
        version_time: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write_rows(
            table,
            key,
            columns,
            vec![row.to_vec()],
            version,
            Revive::NewerThanDelete(version_time),
            None,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_rows(
        &self,
        table: &TableRef,
        key: &str,
        columns: &[(String, ColKind)],
        rows: Vec<Vec<Cell>>,
        version: Option<&str>,
        revive: Revive<'_>,
        cursor: Option<&CursorRow>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin().await?;
        let backend = self.backend();
        let per_statement = (MAX_BIND_PARAMS.saturating_sub(1) / columns.len().max(1)).max(1);
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<Vec<Cell>> = rows.by_ref().take(per_statement).collect();
            let sql = self.upsert_sql(table, key, columns, chunk.len(), version, revive);
            let mut values = Vec::with_capacity(chunk.len() * columns.len() + 1);
            for row in chunk {
                for ((_, kind), cell) in columns.iter().zip(row) {
                    values.push(cell.into_value(*kind));
                }
            }
            if let Revive::NewerThanDelete(Some(time)) = revive {
                values.push(time.into());
            }
            txn.execute(Statement::from_sql_and_values(backend, sql, values))
                .await?;
        }
        if let Some(cursor) = cursor {
            self.put_cursor(&txn, cursor).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn put_cursor<C: ConnectionTrait>(
        &self,
        db: &C,
        c: &CursorRow,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {} (scope, stream, page_cursor, run_since, run_started_at, run_max, \
             high_water, completed_at, pages) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (scope, stream) DO UPDATE SET page_cursor = excluded.page_cursor, \
             run_since = excluded.run_since, run_started_at = excluded.run_started_at, \
             run_max = excluded.run_max, high_water = excluded.high_water, \
             completed_at = excluded.completed_at, pages = excluded.pages",
            self.cursor_table.sql()
        );
        let text = |v: &Option<String>| Value::String(v.clone().map(Box::new));
        db.execute(Statement::from_sql_and_values(
            self.backend(),
            sql,
            [
                c.scope.clone().into(),
                c.stream.clone().into(),
                text(&c.page_cursor),
                text(&c.run_since),
                text(&c.run_started_at),
                text(&c.run_max),
                text(&c.high_water),
                text(&c.completed_at),
                c.pages.into(),
            ],
        ))
        .await?;
        Ok(())
    }

    /// Stores a stream's cursor on its own (a run's start or end).
    pub async fn save_cursor(&self, cursor: &CursorRow) -> Result<(), StoreError> {
        self.put_cursor(&self.db, cursor).await
    }

    pub async fn cursor(&self, scope: &str, stream: &str) -> Result<Option<CursorRow>, StoreError> {
        let sql = format!(
            "SELECT scope, stream, page_cursor, run_since, run_started_at, run_max, high_water, \
             completed_at, pages FROM {} WHERE scope = $1 AND stream = $2",
            self.cursor_table.sql()
        );
        Ok(CursorRow::find_by_statement(Statement::from_sql_and_values(
            self.backend(),
            sql,
            [scope.into(), stream.into()],
        ))
        .one(&self.db)
        .await?)
    }

    /// Forgets every cursor of `scope` (the next run extracts everything again).
    pub async fn reset_cursors(&self, scope: &str) -> Result<(), StoreError> {
        let sql = format!("DELETE FROM {} WHERE scope = $1", self.cursor_table.sql());
        self.db
            .execute(Statement::from_sql_and_values(
                self.backend(),
                sql,
                [scope.into()],
            ))
            .await?;
        Ok(())
    }

    async fn ensure_field_map(&self) -> Result<(), StoreError> {
        self.exec(&format!(
            "CREATE TABLE IF NOT EXISTS {} (stream TEXT NOT NULL, field_key TEXT NOT NULL, \
             column_name TEXT NOT NULL, field_name TEXT NOT NULL, field_type TEXT NOT NULL, \
             PRIMARY KEY (stream, field_key))",
            self.field_map.sql()
        ))
        .await
    }

    /// The custom-field columns of `stream`, as assigned so far.
    pub async fn field_map(&self, stream: &str) -> Result<Vec<FieldMapRow>, StoreError> {
        self.ensure_field_map().await?;
        let sql = format!(
            "SELECT stream, field_key, column_name, field_name, field_type FROM {} \
             WHERE stream = $1 ORDER BY column_name",
            self.field_map.sql()
        );
        Ok(
            FieldMapRow::find_by_statement(Statement::from_sql_and_values(
                self.backend(),
                sql,
                [stream.into()],
            ))
            .all(&self.db)
            .await?,
        )
    }

    /// Records custom fields' columns (a field's name is updated; its column never changes).
    pub async fn save_field_map(&self, rows: &[FieldMapRow]) -> Result<(), StoreError> {
        self.ensure_field_map().await?;
        let sql = format!(
            "INSERT INTO {} (stream, field_key, column_name, field_name, field_type) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (stream, field_key) DO UPDATE SET \
             field_name = excluded.field_name, field_type = excluded.field_type",
            self.field_map.sql()
        );
        let txn = self.db.begin().await?;
        for r in rows {
            txn.execute(Statement::from_sql_and_values(
                self.backend(),
                sql.clone(),
                [
                    r.stream.clone().into(),
                    r.field_key.clone().into(),
                    r.column_name.clone().into(),
                    r.field_name.clone().into(),
                    r.field_type.clone().into(),
                ],
            ))
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Marks a row deleted at `at` (when Pipedrive deleted it, in the mirror's time format),
    /// keeping it; a row already marked keeps its time. A record the table does not hold yet
    /// gets a row with only its key and `deleted_at` (a tombstone), so that a late webhook of
    /// its creation does not bring it in as live.
    pub async fn mark_deleted(
        &self,
        table: &TableRef,
        key: &str,
        id: Cell,
        at: &str,
    ) -> Result<u64, StoreError> {
        if id == Cell::Null {
            return Ok(0);
        }
        let backend = self.backend();
        let sql = format!(
            "INSERT INTO {t} ({k}, {d}) VALUES ($1, {at}) ON CONFLICT ({k}) DO UPDATE \
             SET {d} = excluded.{d} WHERE {t}.{d} IS NULL",
            t = table.sql(),
            k = quote(key),
            d = quote("deleted_at"),
            at = ColKind::Time.placeholder(2, backend),
        );
        Ok(self
            .db
            .execute(Statement::from_sql_and_values(
                backend,
                sql,
                [id.value(), at.into()],
            ))
            .await?
            .rows_affected())
    }

    /// Marks deleted every live row not written since `since` (the end of a full pass).
    pub async fn mark_unseen_deleted(
        &self,
        table: &TableRef,
        since: &str,
        at: &str,
    ) -> Result<u64, StoreError> {
        let backend = self.backend();
        let sql = format!(
            "UPDATE {t} SET {d} = {at} WHERE {d} IS NULL AND ({s} IS NULL OR {s} < {since})",
            t = table.sql(),
            d = quote("deleted_at"),
            s = quote("_synced_at"),
            at = ColKind::Time.placeholder(1, backend),
            since = ColKind::Time.placeholder(2, backend),
        );
        Ok(self
            .db
            .execute(Statement::from_sql_and_values(
                backend,
                sql,
                [at.into(), since.into()],
            ))
            .await?
            .rows_affected())
    }

    /// Deletes rows marked deleted before `before` (the purge setting).
    pub async fn purge_deleted(&self, table: &TableRef, before: &str) -> Result<u64, StoreError> {
        let backend = self.backend();
        let sql = format!(
            "DELETE FROM {} WHERE {d} IS NOT NULL AND {d} < {}",
            table.sql(),
            ColKind::Time.placeholder(1, backend),
            d = quote("deleted_at"),
        );
        Ok(self
            .db
            .execute(Statement::from_sql_and_values(
                backend,
                sql,
                [before.into()],
            ))
            .await?
            .rows_affected())
    }

    /// Every live row's key and `version` column, as text, ordered by key (for `--verify`).
    pub async fn live_versions(
        &self,
        table: &TableRef,
        key: &str,
        version: Option<&str>,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            k: Option<String>,
            v: Option<String>,
        }
        let version = version.map_or_else(|| "NULL".to_owned(), quote);
        let sql = format!(
            "SELECT CAST({k} AS TEXT) AS k, CAST({version} AS TEXT) AS v FROM {t} \
             WHERE {d} IS NULL",
            k = quote(key),
            t = table.sql(),
            d = quote("deleted_at"),
        );
        let mut rows: Vec<(String, Option<String>)> =
            Row::find_by_statement(Statement::from_string(self.backend(), sql))
                .all(&self.db)
                .await?
                .into_iter()
                .filter_map(|r| Some((r.k?, r.v)))
                .collect();
        rows.sort();
        Ok(rows)
    }

    /// The raw JSON of the live (not deleted) rows of `table` whose integer column `column` is
    /// `value`, with each row's `_synced_at`; none when the table or the column does not exist
    /// yet (the stream was never extracted).
    pub async fn live_rows_where(
        &self,
        table: &TableRef,
        column: &str,
        value: i64,
    ) -> Result<Vec<(serde_json::Value, Option<String>)>, StoreError> {
        let columns = self.columns(table).await?;
        if !columns.contains_key(column) || !columns.contains_key("_raw") {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        let sql = format!(
            "SELECT {raw}, {synced} FROM {table} WHERE {column} = $1 AND {deleted} IS NULL",
            raw = quote("_raw"),
            synced = quote("_synced_at"),
            table = table.sql(),
            column = quote(column),
            deleted = quote("deleted_at"),
        );
        let rows = self
            .db
            .query_all(Statement::from_sql_and_values(backend, sql, [value.into()]))
            .await?;
        Ok(raw_rows(rows))
    }

    /// The raw JSON of the live rows of `table` whose column `column`, as text, is at most
    /// `upto` (e.g. activities due by a date), with each row's `_synced_at`; none when the
    /// table or column does not exist yet.
    pub async fn live_rows_upto(
        &self,
        table: &TableRef,
        column: &str,
        upto: &str,
    ) -> Result<Vec<(serde_json::Value, Option<String>)>, StoreError> {
        let columns = self.columns(table).await?;
        if !columns.contains_key(column) || !columns.contains_key("_raw") {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        let sql = format!(
            "SELECT {raw}, {synced} FROM {table} WHERE CAST({column} AS TEXT) <= $1 \
             AND {deleted} IS NULL",
            raw = quote("_raw"),
            synced = quote("_synced_at"),
            table = table.sql(),
            column = quote(column),
            deleted = quote("deleted_at"),
        );
        let rows = self
            .db
            .query_all(Statement::from_sql_and_values(backend, sql, [upto.into()]))
            .await?;
        Ok(raw_rows(rows))
    }

    /// Runs a read-only query and returns the first column of every row as text (tests,
    /// reports).
    pub async fn query_texts(&self, sql: &str) -> Result<Vec<Option<String>>, StoreError> {
        let rows = self
            .db
            .query_all(Statement::from_string(self.backend(), sql.to_owned()))
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let text = row
                .try_get_by_index::<Option<String>>(0)
                .or_else(|_| {
                    row.try_get_by_index::<Option<i64>>(0)
                        .map(|v| v.map(|v| v.to_string()))
                })
                .or_else(|_| {
                    row.try_get_by_index::<Option<f64>>(0)
                        .map(|v| v.map(|v| v.to_string()))
                })
                .or_else(|_| {
                    row.try_get_by_index::<Option<bool>>(0)
                        .map(|v| v.map(|v| v.to_string()))
                })
                // Postgres keeps JSON columns as `jsonb`; SQLite as text.
                .or_else(|_| {
                    row.try_get_by_index::<Option<serde_json::Value>>(0)
                        .map(|v| {
                            v.map(|v| match v {
                                serde_json::Value::String(text) => text,
                                other => other.to_string(),
                            })
                        })
                })
                .or_else(|_| {
                    row.try_get_by_index::<Option<chrono::DateTime<chrono::Utc>>>(0)
                        .map(|v| v.map(|v| v.to_rfc3339()))
                })?;
            out.push(text);
        }
        Ok(out)
    }

    /// The table's name in SQL (quoted, with its schema).
    pub fn sql_name(&self, table: &TableRef) -> String {
        table.sql()
    }

    pub async fn close(self) -> Result<(), StoreError> {
        self.db.close().await?;
        Ok(())
    }
}

/// The `_raw` JSON and `_synced_at` of rows selected as (`_raw`, `_synced_at`).
fn raw_rows(rows: Vec<sea_orm::QueryResult>) -> Vec<(serde_json::Value, Option<String>)> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let raw = row
            .try_get_by_index::<Option<serde_json::Value>>(0)
            .ok()
            .flatten()
            .map(|v| match v {
                serde_json::Value::String(text) => {
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                }
                other => other,
            })
            .or_else(|| {
                row.try_get_by_index::<Option<String>>(0)
                    .ok()
                    .flatten()
                    .and_then(|t| serde_json::from_str(&t).ok())
            })
            .unwrap_or(serde_json::Value::Null);
        let synced = row
            .try_get_by_index::<Option<String>>(1)
            .ok()
            .flatten()
            .or_else(|| {
                row.try_get_by_index::<Option<chrono::DateTime<chrono::Utc>>>(1)
                    .ok()
                    .flatten()
                    .map(|t| t.to_rfc3339())
            });
        out.push((raw, synced));
    }
    out
}

/// Whether connection `id` keeps a live mirror (`mirror_connection.enabled`).
pub async fn mirror_enabled(store: &Store, id: ConnectionId) -> Result<bool, StoreError> {
    let id = id.uuid();
    #[derive(FromQueryResult)]
    struct Row {
        enabled: bool,
    }
    let db = store.db();
    Ok(Row::find_by_statement(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT enabled FROM mirror_connection WHERE connection_id = $1",
        [id.into()],
    ))
    .one(db)
    .await?
    .is_some_and(|r| r.enabled))
}

/// Switches connection `id`'s live mirror on or off.
pub async fn set_mirror_enabled(
    store: &Store,
    id: ConnectionId,
    enabled: bool,
) -> Result<(), StoreError> {
    let id = id.uuid();
    let db = store.db();
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        "INSERT INTO mirror_connection (connection_id, enabled) VALUES ($1, $2) \
         ON CONFLICT (connection_id) DO UPDATE SET enabled = excluded.enabled",
        [id.into(), enabled.into()],
    ))
    .await?;
    Ok(())
}

/// A connection's live mirror: the switch and its background passes (times are RFC 3339 text,
/// as the mirror writes them).
#[derive(Debug, Clone, Default, PartialEq, Eq, FromQueryResult, serde::Serialize)]
pub struct MirrorConnectionRow {
    pub connection_id: uuid::Uuid,
    pub enabled: bool,
    /// When the initial extraction completed (none: it has not yet).
    pub initial_done_at: Option<String>,
    /// When the last backstop incremental pass completed.
    pub last_poll_at: Option<String>,
    /// When the last delete pass completed.
    pub last_delete_pass_at: Option<String>,
    /// The pass in progress (`initial`, `incremental`, `delete`), resumed stream by stream.
    pub pass_kind: Option<String>,
    pub pass_started_at: Option<String>,
    pub last_purge_at: Option<String>,
    pub last_error: Option<String>,
}

const MIRROR_CONNECTION_COLUMNS: &str = "connection_id, enabled, initial_done_at, last_poll_at, \
     last_delete_pass_at, pass_kind, pass_started_at, last_purge_at, last_error";

/// Connection `id`'s live mirror, if it was ever switched.
pub async fn mirror_connection(
    store: &Store,
    id: ConnectionId,
) -> Result<Option<MirrorConnectionRow>, StoreError> {
    let id = id.uuid();
    let db = store.db();
    Ok(
        MirrorConnectionRow::find_by_statement(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT {MIRROR_CONNECTION_COLUMNS} FROM mirror_connection WHERE connection_id = $1"
            ),
            [id.into()],
        ))
        .one(db)
        .await?,
    )
}

/// Every connection whose live mirror is switched on.
pub async fn enabled_mirrors(store: &Store) -> Result<Vec<MirrorConnectionRow>, StoreError> {
    let db = store.db();
    Ok(
        MirrorConnectionRow::find_by_statement(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT {MIRROR_CONNECTION_COLUMNS} FROM mirror_connection WHERE enabled = $1 \
                 ORDER BY connection_id"
            ),
            [true.into()],
        ))
        .all(db)
        .await?,
    )
}

/// Stores a connection's background state (everything but the switch).
pub async fn save_mirror_connection(
    store: &Store,
    row: &MirrorConnectionRow,
) -> Result<(), StoreError> {
    let db = store.db();
    let text = |v: &Option<String>| -> Value { v.clone().into() };
    db.execute(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE mirror_connection SET initial_done_at = $2, last_poll_at = $3, \
         last_delete_pass_at = $4, pass_kind = $5, pass_started_at = $6, last_purge_at = $7, \
         last_error = $8 WHERE connection_id = $1",
        [
            row.connection_id.into(),
            text(&row.initial_done_at),
            text(&row.last_poll_at),
            text(&row.last_delete_pass_at),
            text(&row.pass_kind),
            text(&row.pass_started_at),
            text(&row.last_purge_at),
            text(&row.last_error),
        ],
    ))
    .await?;
    Ok(())
}

impl MirrorDb {
    /// Records (or clears) the last error of a stream's runs.
    pub async fn set_stream_error(
        &self,
        scope: &str,
        stream: &str,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {} (scope, stream, last_error) VALUES ($1, $2, $3) \
             ON CONFLICT (scope, stream) DO UPDATE SET last_error = excluded.last_error",
            self.cursor_table.sql()
        );
        self.db
            .execute(Statement::from_sql_and_values(
                self.backend(),
                sql,
                [scope.into(), stream.into(), error.map(str::to_owned).into()],
            ))
            .await?;
        Ok(())
    }

    /// The last error of every stream of `scope` that has one (tandem's own database only).
    pub async fn stream_errors(&self, scope: &str) -> Result<BTreeMap<String, String>, StoreError> {
        #[derive(FromQueryResult)]
        struct Row {
            stream: String,
            last_error: Option<String>,
        }
        let sql = format!(
            "SELECT stream, last_error FROM {} WHERE scope = $1 AND last_error IS NOT NULL",
            self.cursor_table.sql()
        );
        Ok(Row::find_by_statement(Statement::from_sql_and_values(
            self.backend(),
            sql,
            [scope.into()],
        ))
        .all(&self.db)
        .await?
        .into_iter()
        .filter_map(|r| Some((r.stream, r.last_error?)))
        .collect())
    }

    /// The rows of `table` not marked deleted (0 when the table does not exist yet).
    pub async fn count_live(&self, table: &TableRef) -> Result<u64, StoreError> {
        if self.columns(table).await?.is_empty() {
            return Ok(0);
        }
        #[derive(FromQueryResult)]
        struct Row {
            n: i64,
        }
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {} WHERE {} IS NULL",
            table.sql(),
            quote("deleted_at")
        );
        Ok(
            Row::find_by_statement(Statement::from_string(self.backend(), sql))
                .one(&self.db)
                .await?
                .map_or(0, |r| u64::try_from(r.n).unwrap_or(0)),
        )
    }

    /// Whether `table` exists.
    pub async fn has_table(&self, table: &TableRef) -> Result<bool, StoreError> {
        Ok(!self.columns(table).await?.is_empty())
    }
}
