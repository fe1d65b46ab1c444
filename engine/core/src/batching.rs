//! Batched writes (issue 19): how a connector that writes many persons per call (Salesforce's
//! sObject Collections, 200 records) gets its pending pushes. Pure: the outbox claims, this
//! decides, the worker sends or defers.
//!
//! - Pushes go in batches of at most the connector's limit, in the order claimed (each push is
//!   of another contact: the queue never claims two jobs of one contact at once, so a batch
//!   cannot reorder one contact's writes).
//! - A full batch leaves at once.
//! - A batch that is not full leaves at once unless another batch that was not full left less
//!   than a window ago; then it waits, collecting the pushes that come in meanwhile: until
//!   that window ends when the other carried several pushes (a stream of edits: one call per
//!   window), until half of it when the other carried one (edits made one at a time, each
//!   after the previous one reached the CRM, gain nothing from a long wait: they come one per
//!   batch whatever the window). A trickle of edits becomes one call per window, the first
//!   edit after a quiet time is not delayed, and no push waits longer than a window.

use std::ops::Range;

/// A connector's batching, as the use-cases see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBatching {
    /// Most pushes per call (1: the connector writes one by one).
    pub limit: usize,
    /// How long a batch that is not full waits behind the previous one, in milliseconds.
    pub window_ms: i64,
}

/// The last batch that was not full when it left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialBatch {
    /// When it left (milliseconds).
    pub at_ms: i64,
    /// How many pushes it carried.
    pub pushes: usize,
}

/// What to do with one batch of claimed pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDecision {
    /// Send it now.
    Send,
    /// Put its pushes back until this instant (milliseconds), without counting an attempt.
    WaitUntil(i64),
}

/// The batches of `count` claimed pushes, each with its decision, and the last batch that was
/// not full when it left (to remember for the next call). Times are milliseconds on one clock.
pub fn plan_batches(
    count: usize,
    batching: WriteBatching,
    last_partial: Option<PartialBatch>,
    now_ms: i64,
) -> (Vec<(Range<usize>, BatchDecision)>, Option<PartialBatch>) {
    let limit = batching.limit.max(1);
    let mut last = last_partial;
    let mut plan = Vec::new();
    let mut start = 0;
    while start < count {
        let end = (start + limit).min(count);
        let full = end - start == limit;
        let wait_ms = |previous: &PartialBatch| {
            if previous.pushes > 1 {
                batching.window_ms
            } else {
                batching.window_ms / 2
            }
        };
        let decision = match last {
            _ if full || batching.window_ms <= 0 => BatchDecision::Send,
            Some(previous) if previous.at_ms + wait_ms(&previous) > now_ms => {
                BatchDecision::WaitUntil(previous.at_ms + wait_ms(&previous))
            }
            _ => {
                last = Some(PartialBatch {
                    at_ms: now_ms,
                    pushes: end - start,
                });
                BatchDecision::Send
            }
        };
        plan.push((start..end, decision));
        start = end;
    }
    (plan, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SF: WriteBatching = WriteBatching {
        limit: 200,
        window_ms: 1000,
    };

    fn left(at_ms: i64, pushes: usize) -> Option<PartialBatch> {
        Some(PartialBatch { at_ms, pushes })
    }

    #[test]
    fn four_hundred_fifty_pushes_make_two_full_batches_and_one_partial_all_sent_now() {
        let (plan, last) = plan_batches(450, SF, None, 10_000);
        assert_eq!(
            plan,
            vec![
                (0..200, BatchDecision::Send),
                (200..400, BatchDecision::Send),
                (400..450, BatchDecision::Send)
            ]
        );
        assert_eq!(last, left(10_000, 50));
    }

    #[test]
    fn a_partial_batch_within_the_window_of_a_batch_of_several_waits_for_its_end_and_a_full_one_does_not(
    ) {
        let (plan, last) = plan_batches(3, SF, left(9_500, 7), 10_000);
        assert_eq!(plan, vec![(0..3, BatchDecision::WaitUntil(10_500))]);
        assert_eq!(last, left(9_500, 7));
        let (plan, _) = plan_batches(200, SF, left(9_500, 7), 10_000);
        assert_eq!(plan, vec![(0..200, BatchDecision::Send)]);
        let (plan, last) = plan_batches(3, SF, left(9_000, 7), 10_000);
        assert_eq!(plan, vec![(0..3, BatchDecision::Send)]);
        assert_eq!(last, left(10_000, 3));
    }

    #[test]
    fn behind_a_batch_of_one_push_a_partial_batch_waits_half_a_window() {
        let (plan, last) = plan_batches(1, SF, left(9_800, 1), 10_000);
        assert_eq!(plan, vec![(0..1, BatchDecision::WaitUntil(10_300))]);
        assert_eq!(last, left(9_800, 1));
        let (plan, last) = plan_batches(1, SF, left(9_500, 1), 10_000);
        assert_eq!(plan, vec![(0..1, BatchDecision::Send)]);
        assert_eq!(last, left(10_000, 1));
    }

    /// Sends pushes arriving at `arrivals` (ms, ascending) as the worker does: each claim plans
    /// what is due; deferred pushes come back at their time. Returns each push's wait and the
    /// number of calls.
    fn simulate(arrivals: &[i64], after_send: impl Fn(i64) -> Option<i64>) -> (Vec<i64>, usize) {
        let mut pending: Vec<(i64, i64)> = Vec::new(); // (due, arrived)
        let mut waits = Vec::new();
        let mut calls = 0;
        let mut last = None;
        let mut next = arrivals.iter().copied().peekable();
        let mut extra: Vec<i64> = Vec::new();
        loop {
            let due = pending.iter().map(|p| p.0).min();
            let now = match (next.peek().copied(), due) {
                (Some(a), Some(d)) => a.min(d),
                (Some(a), None) => a,
                (None, Some(d)) => d,
                (None, None) => break,
            };
            while next.peek().is_some_and(|a| *a <= now) {
                let a = next.next().unwrap_or(now);
                pending.push((a, a));
            }
            let (ready, later): (Vec<_>, Vec<_>) = pending.iter().partition(|p| p.0 <= now);
            pending = later;
            if ready.is_empty() {
                continue;
            }
            let (plan, new_last) = plan_batches(ready.len(), SF, last, now);
            last = new_last;
            for (range, decision) in plan {
                match decision {
                    BatchDecision::Send => {
                        calls += 1;
                        waits.extend(ready[range].iter().map(|p| now - p.1));
                        if let Some(a) = after_send(now) {
                            extra.push(a);
                        }
                    }
                    BatchDecision::WaitUntil(at) => {
                        pending.extend(ready[range].iter().map(|p| (at, p.1)));
                    }
                }
            }
            if let Some(a) = extra.pop() {
                pending.push((a, a));
            }
        }
        (waits, calls)
    }

    #[test]
    fn a_thousand_edits_spread_over_a_minute_take_about_one_call_per_window_and_none_waits_longer_than_a_window(
    ) {
        let arrivals: Vec<i64> = (0..1000).map(|i| i * 60).collect();
        let (waits, calls) = simulate(&arrivals, |_| None);
        assert_eq!(waits.len(), 1000);
        assert!(calls <= 62, "{calls} calls");
        assert!(waits.iter().all(|w| *w <= 1000), "{waits:?}");
    }

    #[test]
    fn edits_made_one_at_a_time_each_after_the_previous_one_left_wait_at_most_half_a_window() {
        // The next edit 20 ms after each send, 200 edits in all.
        let count = std::cell::Cell::new(1);
        let (waits, calls) = simulate(&[0], |sent| {
            (count.get() < 200).then(|| {
                count.set(count.get() + 1);
                sent + 20
            })
        });
        assert_eq!(waits.len(), 200);
        assert_eq!(calls, 200);
        assert!(waits.iter().all(|w| *w <= 500), "{waits:?}");
    }

    #[test]
    fn a_connector_writing_one_by_one_sends_every_push_alone_at_once() {
        let one = WriteBatching {
            limit: 1,
            window_ms: 0,
        };
        let (plan, _) = plan_batches(3, one, left(1, 1), 2);
        assert_eq!(plan.len(), 3);
        assert!(plan
            .iter()
            .all(|(r, d)| r.len() == 1 && *d == BatchDecision::Send));
    }

    proptest! {
        #[test]
        fn every_push_is_in_exactly_one_batch_of_at_most_the_limit_and_at_most_one_partial_leaves_per_window(
            count in 0usize..1000,
            limit in 1usize..300,
            window_ms in 0i64..5000,
            last in proptest::option::of((0i64..10_000, 1usize..300)),
            now in 10_000i64..20_000,
        ) {
            let batching = WriteBatching { limit, window_ms };
            // The previous batch left at or before now.
            let last = last.map(|(ago, pushes)| PartialBatch { at_ms: now - ago, pushes });
            let (plan, new_last) = plan_batches(count, batching, last, now);
            let mut next = 0;
            let mut partial_sent = 0;
            for (range, decision) in &plan {
                prop_assert_eq!(range.start, next);
                prop_assert!(!range.is_empty() && range.len() <= limit);
                next = range.end;
                if range.len() < limit && *decision == BatchDecision::Send {
                    partial_sent += 1;
                }
                if let BatchDecision::WaitUntil(at) = decision {
                    prop_assert!(*at > now);
                    prop_assert!(*at <= now + window_ms);
                }
            }
            prop_assert_eq!(next, count);
            prop_assert!(partial_sent <= 1);
            if partial_sent == 1 && window_ms > 0 {
                prop_assert_eq!(new_last.map(|l| l.at_ms), Some(now));
            }
        }
    }
}
