//! `--sql-profile`: where a benchmark's database time goes. sqlx times every statement it runs
//! (from the start of its execution to its last row) and logs it at DEBUG under `sqlx::query`;
//! this layer adds those times up by statement (its first 70 characters) and prints the
//! biggest to stderr. It costs the measured run a little (every statement's text is copied
//! into the log event), so recorded tables come from runs without it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Per statement (its first 70 characters): how many ran and their seconds.
fn totals() -> &'static Mutex<HashMap<String, (u64, f64)>> {
    static TOTALS: OnceLock<Mutex<HashMap<String, (u64, f64)>>> = OnceLock::new();
    TOTALS.get_or_init(Default::default)
}

struct SqlLayer;

/// The fields of one statement's log event that are added up.
#[derive(Default)]
struct Timed {
    statement: String,
    summary: String,
    elapsed: f64,
}

impl tracing::field::Visit for Timed {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed = value;
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "db.statement" => self.statement = value.trim().to_owned(),
            "summary" => self.summary = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.summary = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for SqlLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut timed = Timed::default();
        event.record(&mut timed);
        // A short statement comes as its summary alone, a long one in `db.statement` too.
        let text = if timed.statement.is_empty() {
            timed.summary
        } else {
            timed.statement
        };
        let key: String = text.chars().take(70).collect();
        let mut totals = totals().lock().unwrap();
        let total = totals.entry(key).or_default();
        total.0 += 1;
        total.1 += timed.elapsed;
    }
}

/// Installs the layer when `--sql-profile` is given.
pub(crate) fn install(enabled: bool) {
    if enabled {
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::DEBUG);
        tracing_subscriber::registry()
            .with(SqlLayer.with_filter(filter))
            .init();
    }
}

/// Starts a measured phase afresh.
pub(crate) fn reset() {
    totals().lock().unwrap().clear();
}

/// Prints the phase's database time, biggest statements first (nothing without the layer).
pub(crate) fn print() {
    let totals = totals().lock().unwrap();
    if totals.is_empty() {
        return;
    }
    let mut rows: Vec<_> = totals.iter().collect();
    rows.sort_by(|x, y| y.1 .1.total_cmp(&x.1 .1));
    let seconds: f64 = rows.iter().map(|r| r.1 .1).sum();
    let count: u64 = rows.iter().map(|r| r.1 .0).sum();
    eprintln!("Database time (sqlx's timing): {seconds:.3} s in {count} statements; the biggest:");
    for (statement, (count, seconds)) in rows.iter().take(40) {
        eprintln!("{seconds:8.3} s {count:6} statements  {statement}");
    }
}
