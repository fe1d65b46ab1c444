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

/// Per statement: how many ran, their seconds, their rows (returned or changed; SQLite reports
/// the last change count for a query, so a query's figure is not its rows).
#[derive(Default)]
struct Agg {
    by: HashMap<String, (u64, f64, u64)>,
}

fn agg() -> &'static Mutex<Agg> {
    static A: OnceLock<Mutex<Agg>> = OnceLock::new();
    A.get_or_init(|| Mutex::new(Agg::default()))
}

struct SqlLayer;

#[derive(Default)]
struct V {
    statement: String,
    summary: String,
    elapsed: f64,
    rows: u64,
}

impl tracing::field::Visit for V {
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed = value;
        }
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        if field.name() == "rows_affected" || field.name() == "rows_returned" {
            self.rows += value;
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
        let mut v = V::default();
        event.record(&mut v);
        let text = if v.statement.is_empty() {
            v.summary
        } else {
            v.statement
        };
        let key: String = text.chars().take(70).collect();
        let mut a = agg().lock().unwrap();
        let e = a.by.entry(key).or_default();
        e.0 += 1;
        e.1 += v.elapsed;
        e.2 += v.rows;
    }
}

pub(crate) fn install(enabled: bool) {
    if enabled {
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("sqlx::query", tracing::Level::DEBUG);
        tracing_subscriber::registry()
            .with(SqlLayer.with_filter(filter))
            .init();
    }
}

pub(crate) fn reset() {
    agg().lock().unwrap().by.clear();
}

pub(crate) fn print() {
    let a = agg().lock().unwrap();
    let mut rows: Vec<_> = a.by.iter().collect();
    rows.sort_by(|x, y| y.1 .1.partial_cmp(&x.1 .1).unwrap());
    let total: f64 = rows.iter().map(|r| r.1 .1).sum();
    let n: u64 = rows.iter().map(|r| r.1 .0).sum();
    if rows.is_empty() {
        return;
    }
    eprintln!("Database time (sqlx's timing): {total:.3} s in {n} statements; the biggest:");
    for (k, (c, t, r)) in rows.iter().take(40) {
        eprintln!("{t:8.3} s {c:6} stmts {r:8} rows  {k}");
    }
}
