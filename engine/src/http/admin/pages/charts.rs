//! A connection's charts for the last hour or day, as inline SVG drawn on the server (no
//! JavaScript; colours are presentation attributes, which the Content-Security-Policy allows):
//! propagation latency p50/p95 each way, CRM writes per minute by outcome, webhook events per
//! minute, queue depth, daily budget used vs allowed, and 429 answers. Read from the minute
//! series (`metric_minute`), never from the sync log.

use std::collections::BTreeMap;
use tandem_core::ConnectionId;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Duration, Utc};

use crate::http::admin::api_error;
use crate::http::admin::layout::{error_page, render, Chrome};
use crate::http::admin::session::PageAdmin;
use crate::http::AppState;
use crate::meter::series_name as s;
use crate::store::metrics::{read_series, MinutePoint};
use crate::sync::connections::admin;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 150.0;
const LEFT: f64 = 48.0;
const TOP: f64 = 8.0;

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct RangeQuery {
    #[serde(default)]
    range: Option<String>,
}

/// One line of a chart.
#[derive(Debug)]
pub(super) struct Line {
    label: &'static str,
    color: &'static str,
    /// The polyline's `points` attribute.
    points: String,
    /// The newest value, for the legend.
    last: String,
}

/// One chart, ready for the template.
#[derive(Debug)]
pub(super) struct Chart {
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    /// The top of the y axis, formatted.
    top: String,
    lines: Vec<Line>,
    empty: bool,
}

#[derive(askama::Template)]
#[template(path = "admin/charts.html")]
struct ChartsPage<'a> {
    chrome: Chrome<'a>,
    id: ConnectionId,
    day: bool,
    from: String,
    to: String,
    charts: Vec<Chart>,
    width: f64,
    left: f64,
    top_margin: f64,
    bottom: f64,
}

/// How a series turns into a value per slot (one or more minutes).
#[derive(Debug, Clone, Copy)]
enum Read {
    /// Events per minute (`count`).
    PerMinute,
    /// The gauge's mean (`sum / count`).
    Mean,
    P50,
    P95,
    /// Allowed minus left (two gauges): the budget used.
    Used,
}

/// Values per slot of `series` between `from` and `to`, in slots of `step` minutes.
fn values(
    points: &[MinutePoint],
    series: &str,
    read: Read,
    from: DateTime<Utc>,
    slots: usize,
    step: i64,
) -> Vec<Option<f64>> {
    let slot_of = |t: DateTime<Utc>| -> Option<usize> {
        let minutes = (t - from).num_minutes();
        (minutes >= 0)
            .then(|| usize::try_from(minutes / step).ok())
            .flatten()
            .filter(|i| *i < slots)
    };
    let mut acc: BTreeMap<usize, (f64, f64, f64)> = BTreeMap::new(); // (count, sum, max)
    for p in points.iter().filter(|p| p.series == series) {
        let Some(i) = slot_of(p.minute) else { continue };
        let e = acc.entry(i).or_insert((0.0, 0.0, 0.0));
        let count = p.count as f64;
        match read {
            Read::PerMinute => e.0 += count,
            Read::Mean | Read::Used => {
                e.0 += count;
                e.1 += p.sum;
            }
            Read::P50 => e.2 = e.2.max(p.p50.unwrap_or(0.0)),
            Read::P95 => e.2 = e.2.max(p.p95.unwrap_or(0.0)),
        }
    }
    (0..slots)
        .map(|i| match (read, acc.get(&i)) {
            // No row: nothing happened in those minutes.
            (Read::PerMinute, None) => Some(0.0),
            (Read::PerMinute, Some(e)) => Some(e.0 / step as f64),
            (Read::Mean | Read::Used, Some(e)) if e.0 > 0.0 => Some(e.1 / e.0),
            (Read::P50 | Read::P95, Some(e)) => Some(e.2),
            _ => None,
        })
        .collect()
}

/// A chart of `lines`, each `(label, colour, values per slot)`.
fn chart(
    id: &'static str,
    title: &'static str,
    unit: &'static str,
    lines: Vec<(&'static str, &'static str, Vec<Option<f64>>)>,
) -> Chart {
    let max = lines
        .iter()
        .flat_map(|(_, _, v)| v.iter().flatten())
        .fold(0.0_f64, |m, v| m.max(*v));
    let empty = max <= 0.0;
    let top = nice_ceiling(max);
    let lines = lines
        .into_iter()
        .map(|(label, color, values)| {
            let n = values.len().max(2) - 1;
            let points = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let v = (*v)?;
                    let x = LEFT + (WIDTH - LEFT) * i as f64 / n as f64;
                    let y = TOP + HEIGHT * (1.0 - v / top);
                    Some(format!("{x:.1},{y:.1}"))
                })
                .collect::<Vec<_>>()
                .join(" ");
            let last = values
                .iter()
                .rev()
                .flatten()
                .next()
                .map_or_else(|| "–".to_owned(), |v| format_value(*v));
            Line {
                label,
                color,
                points,
                last,
            }
        })
        .collect();
    Chart {
        id,
        title,
        unit,
        top: format_value(top),
        lines,
        empty,
    }
}

/// The smallest of 1, 2, 5 × 10ⁿ at or above `v` (1 for nothing).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn format_value(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The page's charts from the minute points since `from`.
fn charts(points: &[MinutePoint], from: DateTime<Utc>, slots: usize, step: i64) -> Vec<Chart> {
    let v = |series, read| values(points, series, read, from, slots, step);
    let used = {
        let total = v(s::BUDGET_TOTAL, Read::Used);
        let left = v(s::BUDGET_LEFT, Read::Used);
        total
            .iter()
            .zip(left.iter())
            .map(|(t, l)| Some(t.as_ref()? - l.as_ref()?))
            .collect()
    };
    vec![
        chart(
            "latency-app-to-crm",
            "Propagation latency, app → CRM",
            "seconds",
            vec![
                ("p50", "#2456d3", v(s::LATENCY_APP_TO_CRM, Read::P50)),
                ("p95", "#d33d24", v(s::LATENCY_APP_TO_CRM, Read::P95)),
            ],
        ),
        chart(
            "latency-crm-to-app",
            "Propagation latency, CRM → app",
            "seconds",
            vec![
                ("p50", "#2456d3", v(s::LATENCY_CRM_TO_APP, Read::P50)),
                ("p95", "#d33d24", v(s::LATENCY_CRM_TO_APP, Read::P95)),
            ],
        ),
        chart(
            "writes",
            "CRM writes per minute, by outcome",
            "writes/min",
            vec![
                ("2xx", "#2e9e4f", v(s::WRITES_2XX, Read::PerMinute)),
                ("4xx", "#b5892a", v(s::WRITES_4XX, Read::PerMinute)),
                ("429", "#8a3ccf", v(s::WRITES_429, Read::PerMinute)),
                ("5xx", "#d33d24", v(s::WRITES_5XX, Read::PerMinute)),
                ("timeout", "#555c6b", v(s::WRITES_TIMEOUT, Read::PerMinute)),
            ],
        ),
        chart(
            "webhooks",
            "Webhook events per minute",
            "events/min",
            vec![
                ("received", "#2456d3", v(s::WEBHOOK_EVENTS, Read::PerMinute)),
                (
                    "rejected",
                    "#d33d24",
                    v(s::WEBHOOK_REJECTED, Read::PerMinute),
                ),
            ],
        ),
        chart(
            "queues",
            "Queue depth",
            "items",
            vec![
                ("inbox", "#2456d3", v(s::INBOX_DEPTH, Read::Mean)),
                ("outbox", "#b5892a", v(s::OUTBOX_DEPTH, Read::Mean)),
            ],
        ),
        chart(
            "budget",
            "Daily budget: used vs allowed",
            "tokens",
            vec![
                ("used", "#d33d24", used),
                ("allowed", "#2e9e4f", v(s::BUDGET_TOTAL, Read::Mean)),
            ],
        ),
        chart(
            "rate-limited",
            "429 answers per minute",
            "answers/min",
            vec![("429", "#8a3ccf", v(s::CRM_429, Read::PerMinute))],
        ),
    ]
}

pub(super) async fn page(
    PageAdmin(admin): PageAdmin,
    State(state): State<AppState>,
    Path(id): Path<ConnectionId>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let status = match admin::connection_status(&state.engine, id).await {
        Ok(status) => status,
        Err(e) => return error_page(&api_error(e)),
    };
    let day = q.range.as_deref() == Some("day");
    let (span, step) = if day {
        (Duration::days(1), 10)
    } else {
        (Duration::hours(1), 1)
    };
    let to = Utc::now();
    let from = to - span;
    let from = from - Duration::seconds(i64::from(from.timestamp().rem_euclid(60) as i32));
    let slots = usize::try_from(span.num_minutes() / step).unwrap_or(60);
    let points = match read_series(&state.store, id, from).await {
        Ok(points) => points,
        Err(e) => return error_page(&api_error(crate::sync::SyncError::from(e))),
    };
    let title = format!("Charts · {}", status.name);
    render(
        StatusCode::OK,
        &ChartsPage {
            chrome: Chrome::new(&title, admin.csrf.as_deref(), None),
            id,
            day,
            from: from.format("%Y-%m-%d %H:%M UTC").to_string(),
            to: to.format("%Y-%m-%d %H:%M UTC").to_string(),
            charts: charts(&points, from, slots, step),
            width: WIDTH,
            left: LEFT,
            top_margin: TOP,
            bottom: TOP + HEIGHT,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(series: &str, minute: i64, count: i64, sum: f64, p95: Option<f64>) -> MinutePoint {
        MinutePoint {
            connection_id: ConnectionId::nil(),
            minute: DateTime::from_timestamp(minute * 60, 0).expect("valid"),
            series: series.to_owned(),
            count,
            sum,
            p50: p95,
            p95,
        }
    }

    #[test]
    fn series_become_values_per_slot() {
        let from = DateTime::from_timestamp(0, 0).expect("valid");
        let points = [
            point("w", 0, 4, 4.0, None),
            point("w", 1, 6, 6.0, None),
            point("w", 5, 3, 3.0, None),
            point("lat", 1, 2, 3.0, Some(2.5)),
            point("lat", 2, 1, 1.0, Some(1.0)),
        ];
        assert_eq!(
            values(&points, "w", Read::PerMinute, from, 3, 2),
            vec![Some(5.0), Some(0.0), Some(1.5)]
        );
        assert_eq!(
            values(&points, "lat", Read::P95, from, 3, 2),
            vec![Some(2.5), Some(1.0), None]
        );
    }

    #[test]
    fn a_chart_scales_to_a_round_top_and_has_one_point_per_value() {
        let c = chart(
            "x",
            "X",
            "u",
            vec![("a", "#000", vec![Some(0.0), None, Some(7.0)])],
        );
        assert_eq!(c.top, "10");
        assert!(!c.empty);
        assert_eq!(c.lines[0].points.split(' ').count(), 2);
        assert_eq!(c.lines[0].last, "7");
        assert_eq!(nice_ceiling(0.3), 0.5);
        assert_eq!(nice_ceiling(120.0), 200.0);
    }
}
