//! What the queues share about claims: a lease's end. The one claim statement is
//! `store::queue::claim`'s; each queue describes its table there as a `Lane`.

use chrono::{DateTime, Utc};

/// A lease's end, to whole milliseconds: completing a row compares it with the stored value,
/// which both databases keep at least to the millisecond.
pub(super) fn lease_end(now: DateTime<Utc>, lease: chrono::Duration) -> DateTime<Utc> {
    use chrono::DurationRound;
    let end = now + lease;
    end.duration_trunc(chrono::Duration::milliseconds(1))
        .unwrap_or(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_end_has_whole_milliseconds() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let end = lease_end(now, chrono::Duration::seconds(5));
        assert_eq!(end.to_rfc3339(), "2026-12-03T10:00:05.123+00:00");
    }
}
