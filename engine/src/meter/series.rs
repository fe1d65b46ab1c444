//! The console's minute series, in memory until [`super::writer`] drains them: per
//! (connection, series, minute) a count, a sum and, for latencies, a small fixed histogram from
//! which p50 and p95 are read. Memory is bounded by connections × series × minutes not yet
//! written (normally one or two).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use tandem_core::ConnectionId;

use chrono::{DateTime, TimeZone, Utc};

pub use crate::store::metrics::MinutePoint;

/// Upper bounds (seconds) of the latency histogram's buckets; the last one is open.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    f64::INFINITY,
];

#[derive(Debug, Clone, Default)]
struct Bucket {
    count: u64,
    sum: f64,
    histogram: Option<[u32; LATENCY_BOUNDS.len()]>,
}

type Key = (ConnectionId, &'static str, i64);

static SERIES: LazyLock<Mutex<HashMap<Key, Bucket>>> = LazyLock::new(Mutex::default);

/// The minute `at` falls in, as seconds since the epoch.
pub fn minute_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(60) * 60
}

fn with_bucket(
    connection: ConnectionId,
    series: &'static str,
    at: DateTime<Utc>,
    f: impl FnOnce(&mut Bucket),
) {
    let mut map = SERIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(map.entry((connection, series, minute_of(at))).or_default());
}

/// Counts `value` (an event, tokens) in `series` at `at`.
pub fn add(connection: ConnectionId, series: &'static str, value: f64, at: DateTime<Utc>) {
    with_bucket(connection, series, at, |b| {
        b.count += 1;
        b.sum += value;
    });
}

/// Records a latency of `seconds` in `series` at `at`.
pub fn observe(connection: ConnectionId, series: &'static str, seconds: f64, at: DateTime<Utc>) {
    with_bucket(connection, series, at, |b| {
        b.count += 1;
        b.sum += seconds;
        let histogram = b.histogram.get_or_insert([0; LATENCY_BOUNDS.len()]);
        let slot = LATENCY_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len() - 1);
        histogram[slot] += 1;
    });
}

/// The `q` quantile (0..1) of a histogram: the upper bound of the bucket it falls in (the
/// largest finite bound for the open bucket).
pub fn quantile(histogram: &[u32], q: f64) -> Option<f64> {
    let total: u64 = histogram.iter().map(|c| u64::from(*c)).sum();
    if total == 0 {
        return None;
    }
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, count) in histogram.iter().enumerate() {
        seen += u64::from(*count);
        if seen >= rank {
            let bound = LATENCY_BOUNDS[i.min(LATENCY_BOUNDS.len() - 1)];
            return Some(if bound.is_finite() { bound } else { 3600.0 });
        }
    }
    None
}

/// Takes every minute that ended before `now` (all of them when `everything`) out of memory.
pub fn drain(now: DateTime<Utc>, everything: bool) -> Vec<MinutePoint> {
    let current = minute_of(now);
    let mut map = SERIES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let due: Vec<Key> = map
        .keys()
        .filter(|(_, _, minute)| everything || *minute < current)
        .copied()
        .collect();
    due.into_iter()
        .filter_map(|key| {
            let bucket = map.remove(&key)?;
            let (connection_id, series, minute) = key;
            Some(MinutePoint {
                connection_id,
                minute: Utc.timestamp_opt(minute, 0).single()?,
                series: series.to_owned(),
                count: i64::try_from(bucket.count).unwrap_or(i64::MAX),
                sum: bucket.sum,
                p50: bucket.histogram.as_ref().and_then(|h| quantile(h, 0.5)),
                p95: bucket.histogram.as_ref().and_then(|h| quantile(h, 0.95)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn quantiles_are_the_upper_bound_of_the_bucket_they_fall_in() {
        let mut histogram = [0u32; LATENCY_BOUNDS.len()];
        histogram[0] = 40; // <= 0.05 s
        histogram[4] = 55; // <= 1 s
        histogram[7] = 5; // <= 10 s
        assert_eq!(quantile(&histogram, 0.5), Some(1.0));
        assert_eq!(quantile(&histogram, 0.4), Some(0.05));
        assert_eq!(quantile(&histogram, 0.95), Some(1.0));
        assert_eq!(quantile(&histogram, 0.99), Some(10.0));
        assert_eq!(quantile(&[0; LATENCY_BOUNDS.len()], 0.5), None);
    }

    #[test]
    fn a_drain_takes_finished_minutes_and_leaves_the_current_one() {
        let connection = ConnectionId::new(Uuid::new_v4());
        let now = Utc.timestamp_opt(1_800_000_030, 0).single().expect("valid");
        let earlier = now - chrono::Duration::minutes(2);
        add(connection, "test_series", 3.0, earlier);
        add(connection, "test_series", 4.0, earlier);
        observe(connection, "test_latency", 0.3, earlier);
        add(connection, "test_series", 1.0, now);
        let mine = |points: Vec<MinutePoint>| -> Vec<MinutePoint> {
            points
                .into_iter()
                .filter(|p| p.connection_id == connection)
                .collect()
        };
        let drained = mine(drain(now, false));
        assert_eq!(drained.len(), 2, "{drained:?}");
        let counter = drained
            .iter()
            .find(|p| p.series == "test_series")
            .expect("counter");
        assert_eq!((counter.count, counter.sum), (2, 7.0));
        assert_eq!(counter.minute.timestamp(), minute_of(earlier));
        let latency = drained
            .iter()
            .find(|p| p.series == "test_latency")
            .expect("latency");
        assert_eq!((latency.p50, latency.p95), (Some(0.5), Some(0.5)));
        let rest = mine(drain(now, true));
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].count, 1);
    }
}
