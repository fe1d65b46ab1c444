//! Batched writes (issue 19): how a connector that writes many persons per call (Salesforce's
//! sObject Collections, 200 records) gets its pending pushes. Pure: the outbox claims, this
//! decides, the worker sends or defers.
//!
//! - Pushes go in batches of at most the connector's limit, in the order claimed (each push is
//!   of another contact: the queue never claims two jobs of one contact at once, so a batch
//!   cannot reorder one contact's writes).
//! - A full batch leaves at once.
//! - A batch that is not full leaves at once unless another batch that was not full left less
//!   than a window ago. Then it waits for company, and pushes claimed meanwhile join it:
//!   - In a stream of edits (the other batch, or this one, carries several pushes) it waits a
//!     whole window, counted from its oldest push (or from the other batch, if that left
//!     later): each window opens with the first edit after the previous call, so a stream
//!     takes at most one call per window, and fewer calls than its length has windows. It
//!     leaves early by the time the connection's recent partial batches took to reach the CRM
//!     (at most half a window), so its oldest push is *in the CRM* a window after it was
//!     queued, not a window plus the call (ADR 35).
//!   - Behind a batch of one push, a batch of one waits half a window: edits made one at a
//!     time, each after the previous one reached the CRM, come one per batch whatever the
//!     window, so a long wait gains nothing (ADR 22).
//! - The first edit after a quiet time is not delayed, and no push waits longer than a window
//!   after it was queued (one put back, paced or retried before the other batch left waits at
//!   most a window after that batch; ADR 32 has the restart case).

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

/// A connection's batching between two plans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchWindow {
    /// The last batch that was not full when it left.
    pub last: Option<PartialBatch>,
    /// Until when the pushes put back for company wait: pushes claimed before then join them.
    pub waiting_until: Option<i64>,
    /// How long the connection's recent partial batches took from leaving until the CRM
    /// answered (milliseconds; a slowly decaying maximum, [`BatchWindow::sent`]).
    pub send_ms: i64,
}

impl BatchWindow {
    /// Records that a partial batch took `took_ms` from leaving until the CRM answered. The
    /// estimate follows a slower call at once and forgets it by an eighth per batch, so most
    /// batches take no longer than it says.
    pub fn sent(&mut self, took_ms: i64) {
        let decayed = self.send_ms - self.send_ms / 8;
        self.send_ms = took_ms.max(decayed).max(0);
    }
}

/// What to do with one batch of claimed pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchDecision {
    /// Send it now.
    Send,
    /// Put its pushes back until this instant (milliseconds), without counting an attempt.
    WaitUntil(i64),
}

/// The batches of the claimed pushes, queued at `queued_ms` (one instant each, in claim
/// order), each with its decision, and the connection's batching to remember for the next
/// plan. Times are milliseconds on one clock.
pub fn plan_batches(
    queued_ms: &[i64],
    batching: WriteBatching,
    window: BatchWindow,
    now_ms: i64,
) -> (Vec<(Range<usize>, BatchDecision)>, BatchWindow) {
    let count = queued_ms.len();
    let limit = batching.limit.max(1);
    let mut window = window;
    let mut plan = Vec::new();
    let mut start = 0;
    while start < count {
        let end = (start + limit).min(count);
        let pushes = end - start;
        // When a batch behind `previous` leaves, if `previous` left less than a window ago: a
        // batch of one behind a batch of one waits half a window (edits made one at a time are
        // far inside it); in a stream, a whole window less the time a batch takes to reach the
        // CRM, so its oldest push is there a window after it was queued.
        let leaves = |previous: &PartialBatch| {
            let oldest = queued_ms[start..end]
                .iter()
                .copied()
                .min()
                .unwrap_or(now_ms)
                .min(now_ms);
            let (wait, lead) = if previous.pushes > 1 || pushes > 1 {
                let lead = window.send_ms.clamp(0, batching.window_ms / 2);
                (batching.window_ms, lead)
            } else {
                (batching.window_ms / 2, 0)
            };
            (previous.at_ms + wait > now_ms)
                .then(|| previous.at_ms.max(oldest) + wait - lead)
                .filter(|until| *until > now_ms)
        };
        let decision = match (window.waiting_until, window.last.and_then(|p| leaves(&p))) {
            _ if pushes == limit || batching.window_ms <= 0 => BatchDecision::Send,
            (Some(until), _) if until > now_ms => BatchDecision::WaitUntil(until),
            (_, Some(until)) => {
                window.waiting_until = Some(until);
                BatchDecision::WaitUntil(until)
            }
            _ => {
                window = BatchWindow {
                    last: Some(PartialBatch {
                        at_ms: now_ms,
                        pushes,
                    }),
                    waiting_until: None,
                    send_ms: window.send_ms,
                };
                BatchDecision::Send
            }
        };
        plan.push((start..end, decision));
        start = end;
    }
    (plan, window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SF: WriteBatching = WriteBatching {
        limit: 200,
        window_ms: 1000,
    };

    fn left(at_ms: i64, pushes: usize) -> BatchWindow {
        BatchWindow {
            last: Some(PartialBatch { at_ms, pushes }),
            ..BatchWindow::default()
        }
    }

    #[test]
    fn four_hundred_fifty_pushes_make_two_full_batches_and_one_partial_all_sent_now() {
        let (plan, window) = plan_batches(&[10_000; 450], SF, BatchWindow::default(), 10_000);
        assert_eq!(
            plan,
            vec![
                (0..200, BatchDecision::Send),
                (200..400, BatchDecision::Send),
                (400..450, BatchDecision::Send)
            ]
        );
        assert_eq!(window, left(10_000, 50));
    }

    #[test]
    fn a_partial_batch_within_the_window_of_a_batch_of_several_waits_a_window_from_its_oldest_push_and_a_full_one_does_not(
    ) {
        let (plan, window) = plan_batches(&[9_900, 9_600, 10_000], SF, left(9_500, 7), 10_000);
        assert_eq!(plan, vec![(0..3, BatchDecision::WaitUntil(10_600))]);
        assert_eq!(window.last, left(9_500, 7).last);
        assert_eq!(window.waiting_until, Some(10_600));
        let (plan, _) = plan_batches(&[10_000; 200], SF, left(9_500, 7), 10_000);
        assert_eq!(plan, vec![(0..200, BatchDecision::Send)]);
        let (plan, window) = plan_batches(&[9_900; 3], SF, left(9_000, 7), 10_000);
        assert_eq!(plan, vec![(0..3, BatchDecision::Send)]);
        assert_eq!(window, left(10_000, 3));
    }

    #[test]
    fn a_push_queued_before_the_previous_batch_left_waits_a_window_from_that_batch() {
        let (plan, _) = plan_batches(&[8_000], SF, left(9_500, 7), 10_000);
        assert_eq!(plan, vec![(0..1, BatchDecision::WaitUntil(10_500))]);
    }

    #[test]
    fn pushes_claimed_while_others_wait_join_them_and_a_wait_that_ended_is_forgotten() {
        let waiting = BatchWindow {
            waiting_until: Some(10_600),
            ..left(9_500, 7)
        };
        let (plan, window) = plan_batches(&[10_300], SF, waiting, 10_300);
        assert_eq!(plan, vec![(0..1, BatchDecision::WaitUntil(10_600))]);
        assert_eq!(window, waiting);
        let (plan, window) = plan_batches(&[10_300, 10_650], SF, waiting, 10_650);
        assert_eq!(plan, vec![(0..2, BatchDecision::Send)]);
        assert_eq!(window, left(10_650, 2));
    }

    #[test]
    fn behind_a_batch_of_one_push_a_batch_of_one_waits_half_a_window_and_a_batch_of_several_a_whole_one(
    ) {
        let (plan, window) = plan_batches(&[10_000], SF, left(9_800, 1), 10_000);
        assert_eq!(plan, vec![(0..1, BatchDecision::WaitUntil(10_500))]);
        assert_eq!(window.last, left(9_800, 1).last);
        let (plan, window) = plan_batches(&[10_000], SF, left(9_500, 1), 10_000);
        assert_eq!(plan, vec![(0..1, BatchDecision::Send)]);
        assert_eq!(window, left(10_000, 1));
        let (plan, _) = plan_batches(&[9_900, 10_000], SF, left(9_500, 1), 10_000);
        assert_eq!(plan, vec![(0..2, BatchDecision::WaitUntil(10_900))]);
    }

    /// Sends pushes arriving at `arrivals` (ms, ascending) as the worker does: each claim plans
    /// what is due; deferred pushes come back at their time. Returns each push's wait and the
    /// number of calls.
    fn simulate(arrivals: &[i64], after_send: impl Fn(i64) -> Option<i64>) -> (Vec<i64>, usize) {
        simulate_calls_of(0, arrivals, after_send)
    }

    /// [`simulate`] with calls that take `send_ms` to reach the CRM: each push's wait is until
    /// the CRM holds it.
    fn simulate_calls_of(
        send_ms: i64,
        arrivals: &[i64],
        after_send: impl Fn(i64) -> Option<i64>,
    ) -> (Vec<i64>, usize) {
        let mut pending: Vec<(i64, i64)> = Vec::new(); // (due, arrived)
        let mut waits = Vec::new();
        let mut calls = 0;
        let mut window = BatchWindow::default();
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
            let queued: Vec<i64> = ready.iter().map(|p| p.1).collect();
            let (plan, new_window) = plan_batches(&queued, SF, window, now);
            window = new_window;
            for (range, decision) in plan {
                match decision {
                    BatchDecision::Send => {
                        calls += 1;
                        if range.len() < SF.limit {
                            window.sent(send_ms);
                        }
                        waits.extend(ready[range].iter().map(|p| now + send_ms - p.1));
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
    fn a_thousand_edits_spread_over_a_minute_take_at_most_one_call_per_window_and_none_waits_longer_than_a_window(
    ) {
        let arrivals: Vec<i64> = (0..1000).map(|i| i * 60).collect();
        let (waits, calls) = simulate(&arrivals, |_| None);
        assert_eq!(waits.len(), 1000);
        assert!(calls <= 60, "{calls} calls");
        assert!(waits.iter().all(|w| *w <= 1000), "{waits:?}");
    }

    #[test]
    fn in_that_minute_with_calls_of_30_ms_every_edit_is_in_the_crm_a_window_after_it_was_made_and_the_calls_stay_at_sixty(
    ) {
        let arrivals: Vec<i64> = (0..1000).map(|i| i * 60).collect();
        let (waits, calls) = simulate_calls_of(30, &arrivals, |_| None);
        assert_eq!(waits.len(), 1000);
        assert!(calls <= 60, "{calls} calls");
        assert!(waits.iter().all(|w| *w <= 1000), "{waits:?}");
        // Without the lead, the oldest edit of each batch was there a window plus the call after.
        assert!(waits.iter().filter(|w| **w > 960).count() >= 50);
    }

    #[test]
    fn a_slow_call_is_followed_at_once_and_forgotten_by_an_eighth_per_batch_and_never_leads_by_more_than_half_a_window(
    ) {
        let mut window = BatchWindow::default();
        window.sent(400);
        assert_eq!(window.send_ms, 400);
        window.sent(10);
        assert_eq!(window.send_ms, 350);
        window.sent(900);
        assert_eq!(window.send_ms, 900);
        let (plan, _) = plan_batches(
            &[9_900, 10_000],
            SF,
            BatchWindow {
                last: left(9_800, 5).last,
                ..window
            },
            10_000,
        );
        assert_eq!(plan, vec![(0..2, BatchDecision::WaitUntil(10_400))]);
        // A lone edit behind a lone edit waits its half window, whatever the calls take.
        let (plan, _) = plan_batches(
            &[10_000],
            SF,
            BatchWindow {
                send_ms: 900,
                ..left(9_800, 1)
            },
            10_000,
        );
        assert_eq!(plan, vec![(0..1, BatchDecision::WaitUntil(10_500))]);
    }

    #[test]
    fn edits_a_third_of_a_window_apart_take_fewer_calls_than_their_time_has_windows() {
        // 100 s of edits: the old rule (a window from the previous call) took 102 calls.
        let arrivals: Vec<i64> = (0..300).map(|i| i * 333).collect();
        let (waits, calls) = simulate(&arrivals, |_| None);
        assert_eq!(waits.len(), 300);
        assert!(calls <= 80, "{calls} calls");
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
        let (plan, _) = plan_batches(&[1, 1, 1], one, left(1, 1), 2);
        assert_eq!(plan.len(), 3);
        assert!(plan
            .iter()
            .all(|(r, d)| r.len() == 1 && *d == BatchDecision::Send));
    }

    proptest! {
        #[test]
        fn every_push_is_in_exactly_one_batch_of_at_most_the_limit_and_at_most_one_partial_leaves_per_window(
            ages in proptest::collection::vec(0i64..10_000, 0..1000),
            limit in 1usize..300,
            window_ms in 0i64..5000,
            last in proptest::option::of((0i64..10_000, 1usize..300)),
            waiting in proptest::option::of(-5_000i64..5_000),
            send_ms in 0i64..10_000,
            now in 10_000i64..20_000,
        ) {
            let batching = WriteBatching { limit, window_ms };
            let queued: Vec<i64> = ages.iter().map(|age| now - age).collect();
            // The previous batch left at or before now; a wait an earlier plan set ends at most
            // a window after now.
            let window = BatchWindow {
                last: last.map(|(ago, pushes)| PartialBatch { at_ms: now - ago, pushes }),
                waiting_until: waiting.map(|w| now + w.min(window_ms)),
                send_ms,
            };
            let (plan, new_window) = plan_batches(&queued, batching, window, now);
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
                    prop_assert_eq!(new_window.waiting_until, Some(*at));
                }
            }
            prop_assert_eq!(next, queued.len());
            prop_assert!(partial_sent <= 1);
            if partial_sent == 1 && window_ms > 0 {
                prop_assert_eq!(new_window.last.map(|l| l.at_ms), Some(now));
                prop_assert_eq!(new_window.waiting_until, None);
            }
        }

        #[test]
        fn whatever_the_arrivals_and_the_calls_time_no_push_reaches_the_crm_later_than_a_window_plus_a_slower_call_and_no_two_partial_batches_leave_within_half_of_one(
            gaps in proptest::collection::vec(0i64..3_000, 1..300),
            send_ms in 0i64..2_000,
        ) {
            let arrivals: Vec<i64> = gaps
                .iter()
                .scan(0, |at, gap| {
                    *at += gap;
                    Some(*at)
                })
                .collect();
            let sent = std::cell::RefCell::new(Vec::new());
            let (waits, _) = simulate_calls_of(send_ms, &arrivals, |at| {
                sent.borrow_mut().push(at);
                None
            });
            prop_assert_eq!(waits.len(), arrivals.len());
            // Within a window when the call is no slower than half a window (the lead's cap).
            let late = (send_ms - SF.window_ms / 2).max(0);
            prop_assert!(waits.iter().all(|w| *w <= SF.window_ms + late), "{:?}", waits);
            let sent = sent.into_inner();
            prop_assert!(
                sent.windows(2).all(|w| w[1] - w[0] >= SF.window_ms / 2),
                "{:?}",
                sent
            );
        }
    }
}
