//! One stream's run, page by page: each page's rows and the stream's cursor are written in one
//! transaction, so a run killed at any point resumes at the page after the last one written,
//! and upserts make a page written twice harmless.
//!
//! Incremental streams ask for `updated_since` the newest `update_time` of the last completed
//! run (Pipedrive's `updated_since` is inclusive: the boundary records are read again), oldest
//! change first. Full passes (full-refresh mode, files, the delete pass) mark the rows they did
//! not see as deleted when they complete.

use serde_json::Value;

use super::catalog::{Changes, Paging, Stream};
use super::columns::{FieldDef, Layout};
use super::replication::{Mode, Planned};
use super::{normalize_time, now_text, MirrorError, Source};
use crate::crm::pipedrive::client::{Op, RawPage};
use crate::store::mirror::{CursorRow, MirrorDb, TableRef};

/// What a stream's run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamReport {
    pub stream: String,
    pub records: u64,
    pub pages: u64,
    pub marked_deleted: u64,
    /// False when the run stopped early (`stop_after_pages`); the next run resumes it.
    pub complete: bool,
}

/// Progress of a run: `(stream, records so far, done)`.
pub type Progress<'a> = &'a (dyn Fn(&str, u64, bool) + Send + Sync);

#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Stop every stream after this many pages (as a kill would; tests).
    pub stop_after_pages: Option<u64>,
    /// Read every incremental stream in full and mark what Pipedrive no longer lists as
    /// deleted (the periodic id pass).
    pub delete_pass: bool,
}

/// Runs every planned stream in order (field definitions first, so custom-field columns are
/// named before the data arrives).
pub async fn extract(
    source: &Source,
    db: &MirrorDb,
    plan: &[Planned],
    options: ExtractOptions,
    progress: Progress<'_>,
) -> Result<Vec<StreamReport>, MirrorError> {
    let mut reports = Vec::with_capacity(plan.len());
    for planned in plan {
        reports.push(run_stream(source, db, planned, options, progress).await?);
    }
    Ok(reports)
}

/// The table a planned stream writes.
pub fn table_of(db: &MirrorDb, planned: &Planned) -> TableRef {
    match &planned.object {
        Some(object) => db.object_table(object),
        None => db.table(planned.stream.name),
    }
}

/// Reads every page of a list (field definitions, `--verify`).
pub async fn read_all(source: &Source, stream: &Stream) -> Result<Vec<Value>, MirrorError> {
    let mut items = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = fetch(source, stream, next.as_deref(), None, false).await?;
        let position = next_position(stream, &page);
        items.extend(page.items);
        match position {
            Some(n) => next = Some(n),
            None => return Ok(items),
        }
    }
}

/// The custom-field definitions for `stream`'s columns (one list call, or none).
pub async fn field_defs(source: &Source, stream: &Stream) -> Result<Vec<FieldDef>, MirrorError> {
    let Some(fields) = stream.fields_stream.and_then(super::catalog::stream) else {
        return Ok(Vec::new());
    };
    Ok(read_all(source, fields)
        .await?
        .iter()
        .filter_map(FieldDef::from_json)
        .collect())
}

async fn fetch(
    source: &Source,
    stream: &Stream,
    position: Option<&str>,
    since: Option<&str>,
    by_update: bool,
) -> Result<RawPage, MirrorError> {
    let mut query: Vec<(String, String)> = Vec::new();
    match stream.paging {
        Paging::Cursor => {
            query.push(("limit".into(), stream.page_max.to_string()));
            if let Some(cursor) = position {
                query.push(("cursor".into(), cursor.to_owned()));
            }
        }
        Paging::Offset => {
            query.push(("limit".into(), stream.page_max.to_string()));
            query.push(("start".into(), position.unwrap_or("0").to_owned()));
        }
        Paging::None => {}
    }
    if by_update && stream.changes != Changes::FullOnly {
        match stream.paging {
            Paging::Cursor => {
                query.push(("sort_by".into(), "update_time".into()));
                query.push(("sort_direction".into(), "asc".into()));
            }
            _ => query.push(("sort".into(), "update_time ASC".into())),
        }
        if let (Some(since), Changes::UpdatedSince) = (since, stream.changes) {
            query.push(("updated_since".into(), since.to_owned()));
        }
    }
    Ok(source
        .client
        .list_page(
            &source.session,
            Op::MirrorList(stream.cost),
            stream.path,
            &query,
            source.priority,
        )
        .await?)
}

fn next_position(stream: &Stream, page: &RawPage) -> Option<String> {
    match stream.paging {
        Paging::Cursor => page.next_cursor.clone(),
        Paging::Offset => page.next_start.map(|s| s.to_string()),
        Paging::None => None,
    }
}

/// `""` as a page cursor: every page was written, only the run's end is left.
const PAGES_DONE: &str = "";

async fn run_stream(
    source: &Source,
    db: &MirrorDb,
    planned: &Planned,
    options: ExtractOptions,
    progress: Progress<'_>,
) -> Result<StreamReport, MirrorError> {
    let stream = planned.stream;
    let incremental = planned.mode == Mode::Incremental
        && stream.changes == Changes::UpdatedSince
        && !options.delete_pass;
    let table = table_of(db, planned);
    let defs = field_defs(source, stream).await?;
    let mut layout = Layout::load(db, stream, table.clone(), &defs).await?;
    let mut cursor = db
        .cursor(&source.scope, stream.name)
        .await?
        .unwrap_or_else(|| CursorRow {
            scope: source.scope.clone(),
            stream: stream.name.to_owned(),
            ..CursorRow::default()
        });
    if cursor.run_started_at.is_none() {
        // A new run.
        cursor.run_started_at = Some(now_text());
        cursor.run_since = if incremental {
            cursor.high_water.clone().or_else(|| {
                planned
                    .anchor_date
                    .as_ref()
                    .map(|d| format!("{d}T00:00:00Z"))
            })
        } else {
            None
        };
        cursor.page_cursor = None;
        cursor.run_max = None;
        db.save_cursor(&cursor).await?;
    }
    // A run without `updated_since` reads everything: what it did not see is gone.
    let full_pass = cursor.run_since.is_none();
    let mut report = StreamReport {
        stream: stream.name.to_owned(),
        ..StreamReport::default()
    };
    let mut pages_this_run = 0u64;
    // The next page, read while the current one is written (`None`: not read yet).
    let mut prefetched: Option<RawPage> = None;
    while cursor.page_cursor.as_deref() != Some(PAGES_DONE) {
        if options
            .stop_after_pages
            .is_some_and(|n| pages_this_run >= n)
        {
            progress(stream.name, report.records, false);
            return Ok(report);
        }
        let mut page = match prefetched.take() {
            Some(page) => page,
            None => {
                fetch(
                    source,
                    stream,
                    cursor.page_cursor.as_deref(),
                    cursor.run_since.as_deref(),
                    true,
                )
                .await?
            }
        };
        if let Some(version) = stream.version_column {
            for item in &page.items {
                if let Some(t) = item
                    .get(version)
                    .and_then(Value::as_str)
                    .and_then(normalize_time)
                {
                    if cursor.run_max.as_ref().is_none_or(|m| *m < t) {
                        cursor.run_max = Some(t);
                    }
                }
            }
        }
        let next = next_position(stream, &page);
        cursor.page_cursor = Some(next.clone().unwrap_or_default());
        cursor.pages += 1;
        let items = std::mem::take(&mut page.items);
        let write = async {
            let synced_at = now_text();
            let (columns, rows) = layout.rows(db, items, &synced_at).await?;
            let written = rows.len() as u64;
            db.write_page(
                &table,
                stream.key,
                &columns,
                rows,
                stream.version_column,
                Some(&cursor),
            )
            .await?;
            Ok::<u64, MirrorError>(written)
        };
        // Read the next page while this one is written, unless the run stops after this page.
        let read_ahead = next.as_deref().filter(|_| {
            options
                .stop_after_pages
                .is_none_or(|n| pages_this_run + 1 < n)
        });
        let written = match read_ahead {
            Some(position) => {
                let since = cursor.run_since.clone();
                let (written, fetched) = tokio::join!(
                    write,
                    fetch(source, stream, Some(position), since.as_deref(), true)
                );
                let written = written?;
                // The page is written with its cursor: a failed read resumes after it.
                prefetched = Some(fetched?);
                written
            }
            None => write.await?,
        };
        pages_this_run += 1;
        report.pages += 1;
        report.records += written;
        progress(stream.name, report.records, false);
    }
    // Every page is written: end the run.
    if full_pass {
        if let Some(started) = &cursor.run_started_at {
            report.marked_deleted = db.mark_unseen_deleted(&table, started, &now_text()).await?;
        }
    }
    cursor.high_water = match (cursor.high_water.take(), cursor.run_max.take()) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    cursor.run_started_at = None;
    cursor.run_since = None;
    cursor.page_cursor = None;
    cursor.completed_at = Some(now_text());
    db.save_cursor(&cursor).await?;
    report.complete = true;
    progress(stream.name, report.records, true);
    Ok(report)
}
