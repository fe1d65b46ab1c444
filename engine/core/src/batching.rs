//! Batched writes (issue 19): how a connector that writes many persons per call (Salesforce's
//! sObject Collections, 200 records) gets its pending pushes. Pure: the outbox claims, this
//! decides, the worker sends or defers.
//!
//! - Pushes go in batches of at most the connector's limit, in the order claimed (each push is
//!   of another contact: the queue never claims two jobs of one contact at once, so a batch
//!   cannot reorder one contact's writes).
//! - A full batch leaves at once.
//! - A batch that is not full leaves at once unless another batch that was not full left less
//!   than a window ago; then it waits until that window ends, collecting the pushes that come
//!   in meanwhile. A trickle of edits becomes one call per window, and the first edit after a
//!   quiet time is not delayed.

use std::ops::Range;

/// A connector's batching, as the use-cases see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteBatching {
    /// Most pushes per call (1: the connector writes one by one).
    pub limit: usize,
    /// How long a batch that is not full waits behind the previous one, in milliseconds.
    pub window_ms: i64,
}

/// What to do with one batch of claimed pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDecision {
    /// Send it now.
    Send,
    /// Put its pushes back until this instant (milliseconds), without counting an attempt.
    WaitUntil(i64),
}

/// The batches of `count` claimed pushes, each with its decision, and when the last batch that
/// was not full left (to remember for the next call). `last_partial_ms` and `now_ms` are
/// milliseconds on one clock.
pub fn plan_batches(
    count: usize,
    batching: WriteBatching,
    last_partial_ms: Option<i64>,
    now_ms: i64,
) -> (Vec<(Range<usize>, BatchDecision)>, Option<i64>) {
    let limit = batching.limit.max(1);
    let mut last = last_partial_ms;
    let mut plan = Vec::new();
    let mut start = 0;
    while start < count {
        let end = (start + limit).min(count);
        let full = end - start == limit;
        let decision = match last {
            _ if full || batching.window_ms <= 0 => BatchDecision::Send,
            Some(at) if at + batching.window_ms > now_ms => {
                BatchDecision::WaitUntil(at + batching.window_ms)
            }
            _ => {
                last = Some(now_ms);
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
        assert_eq!(last, Some(10_000));
    }

    #[test]
    fn a_partial_batch_within_the_window_waits_for_its_end_and_a_full_one_does_not() {
        let (plan, last) = plan_batches(3, SF, Some(9_500), 10_000);
        assert_eq!(plan, vec![(0..3, BatchDecision::WaitUntil(10_500))]);
        assert_eq!(last, Some(9_500));
        let (plan, _) = plan_batches(200, SF, Some(9_500), 10_000);
        assert_eq!(plan, vec![(0..200, BatchDecision::Send)]);
        let (plan, last) = plan_batches(3, SF, Some(9_000), 10_000);
        assert_eq!(plan, vec![(0..3, BatchDecision::Send)]);
        assert_eq!(last, Some(10_000));
    }

    #[test]
    fn a_connector_writing_one_by_one_sends_every_push_alone_at_once() {
        let one = WriteBatching {
            limit: 1,
            window_ms: 0,
        };
        let (plan, _) = plan_batches(3, one, Some(1), 2);
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
            last in proptest::option::of(0i64..20_000),
            now in 10_000i64..20_000,
        ) {
            let batching = WriteBatching { limit, window_ms };
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
                }
            }
            prop_assert_eq!(next, count);
            prop_assert!(partial_sent <= 1);
            if partial_sent == 1 && window_ms > 0 {
                prop_assert_eq!(new_last, Some(now));
            }
        }
    }
}
