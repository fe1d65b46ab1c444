//! Retry maths (C8): a configured schedule, a passed-in jitter factor, `Retry-After` honoured
//! only to postpone, and the classification of CRM errors. No clock, no RNG.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CrmError, ErrorClass};

/// How much of a step jitter may take off: a factor of 1 shortens the step by 25 %.
pub const JITTER_SPREAD: f64 = 0.25;

/// A retry schedule: the delay before each retry, and the total number of attempts allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delay before retry 1, 2, ...; attempts past the end reuse the last (longest) step.
    pub schedule: Vec<Duration>,
    /// Total attempts, the first one included.
    pub max_attempts: u32,
}

/// What the worker does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RetryDecision {
    /// Try again after this delay.
    RetryAfter {
        /// The delay.
        after: Duration,
    },
    /// Give up: dead letter, with the CRM's error text in the sync log.
    DeadLetter,
    /// Refresh the token (once), then retry or mark the connection "Token expired".
    Reauthenticate,
    /// Pause the connection's writes until it is reconnected.
    PauseConnection,
}

impl RetryPolicy {
    /// An exponential schedule: `initial`, then multiplied by `factor` each step until it
    /// reaches `cap` (the cap is the last step).
    pub fn exponential(initial: Duration, factor: u32, cap: Duration, max_attempts: u32) -> Self {
        let mut schedule = Vec::new();
        let mut step = initial.min(cap);
        loop {
            schedule.push(step);
            if step >= cap || factor <= 1 || schedule.len() >= 64 {
                break;
            }
            step = step.saturating_mul(factor).min(cap);
        }
        Self {
            schedule,
            max_attempts,
        }
    }

    /// The longest step of the schedule (the cap).
    pub fn longest_step(&self) -> Duration {
        self.schedule.iter().max().copied().unwrap_or_default()
    }

    /// The delay before the next attempt after `attempt` attempts (1 = the first one) failed,
    /// or `None` when no attempt is left. `jitter_factor` in `[0, 1]` (from the caller's RNG;
    /// out-of-range values are clamped, NaN counts as 0) shortens the step by up to
    /// [`JITTER_SPREAD`], so the delay never exceeds the schedule.
    pub fn next_delay(&self, attempt: u32, jitter_factor: f64) -> Option<Duration> {
        if attempt >= self.max_attempts || self.schedule.is_empty() {
            return None;
        }
        let index = usize::try_from(attempt.saturating_sub(1))
            .unwrap_or(usize::MAX)
            .min(self.schedule.len() - 1);
        let step = self.schedule[index];
        let factor = if jitter_factor.is_nan() {
            0.0
        } else {
            jitter_factor.clamp(0.0, 1.0)
        };
        let scaled = step.as_secs_f64() * (1.0 - JITTER_SPREAD * factor);
        Some(Duration::try_from_secs_f64(scaled).map_or(step, |d| d.min(step)))
    }

    /// [`RetryPolicy::next_delay`], postponed (never brought forward) to honour a server hint
    /// (`Retry-After` / `x-ratelimit-reset`), which is capped at the longest step. Pass a hint
    /// only for a 429.
    pub fn next_delay_honouring(
        &self,
        attempt: u32,
        jitter_factor: f64,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        let delay = self.next_delay(attempt, jitter_factor)?;
        Some(match retry_after {
            Some(hint) => delay.max(hint.min(self.longest_step())),
            None => delay,
        })
    }

    /// The decision for a classified CRM error after `attempt` attempts; the error's hint is
    /// honoured (it is only ever set on a 429).
    pub fn decide(&self, error: &CrmError, attempt: u32, jitter_factor: f64) -> RetryDecision {
        match error.retry {
            ErrorClass::Retry => self
                .next_delay_honouring(attempt, jitter_factor, error.retry_after)
                .map_or(RetryDecision::DeadLetter, |after| {
                    RetryDecision::RetryAfter { after }
                }),
            ErrorClass::DontRetry => RetryDecision::DeadLetter,
            ErrorClass::Reauthenticate => RetryDecision::Reauthenticate,
            ErrorClass::PauseConnection => RetryDecision::PauseConnection,
        }
    }

    /// The longest time a job can spend retrying (no jitter): log it at startup.
    pub fn worst_case_window(&self) -> Duration {
        (1..self.max_attempts)
            .filter_map(|attempt| self.next_delay(attempt, 0.0))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

impl Default for RetryPolicy {
    /// 1 s, 2 s, 4 s ... capped at 5 min, 12 attempts.
    fn default() -> Self {
        Self::exponential(Duration::from_secs(1), 2, Duration::from_secs(300), 12)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::classify;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy::exponential(secs(1), 2, secs(10), 6)
    }

    #[test]
    fn an_exponential_schedule_doubles_up_to_its_cap() {
        assert_eq!(
            policy().schedule,
            vec![secs(1), secs(2), secs(4), secs(8), secs(10)]
        );
        assert_eq!(policy().longest_step(), secs(10));
    }

    #[test]
    fn the_delay_follows_the_schedule_and_reuses_the_last_step() {
        let p = RetryPolicy {
            max_attempts: 10,
            ..policy()
        };
        let delays: Vec<_> = (1..10).map(|a| p.next_delay(a, 0.0).unwrap()).collect();
        assert_eq!(
            delays,
            vec![
                secs(1),
                secs(2),
                secs(4),
                secs(8),
                secs(10),
                secs(10),
                secs(10),
                secs(10),
                secs(10)
            ]
        );
    }

    #[test]
    fn no_delay_is_given_once_the_attempts_are_used_up() {
        assert!(policy().next_delay(5, 0.0).is_some());
        assert_eq!(policy().next_delay(6, 0.0), None);
        assert_eq!(policy().next_delay(60, 0.0), None);
        let empty = RetryPolicy {
            schedule: vec![],
            max_attempts: 3,
        };
        assert_eq!(empty.next_delay(1, 0.0), None);
    }

    #[test]
    fn jitter_shortens_a_step_by_at_most_a_quarter() {
        assert_eq!(policy().next_delay(3, 1.0), Some(secs(3)));
        assert_eq!(
            policy().next_delay(3, 0.5),
            Some(Duration::from_millis(3500))
        );
        assert_eq!(policy().next_delay(3, 7.0), Some(secs(3)));
        assert_eq!(policy().next_delay(3, f64::NAN), Some(secs(4)));
    }

    #[test]
    fn a_retry_after_hint_postpones_a_retry_but_never_brings_it_forward() {
        let p = policy();
        assert_eq!(p.next_delay_honouring(1, 0.0, Some(secs(5))), Some(secs(5)));
        assert_eq!(p.next_delay_honouring(4, 0.0, Some(secs(1))), Some(secs(8)));
    }

    #[test]
    fn a_retry_after_hint_is_capped_at_the_longest_step() {
        assert_eq!(
            policy().next_delay_honouring(1, 0.0, Some(secs(3600))),
            Some(secs(10))
        );
    }

    #[test]
    fn a_retry_after_hint_does_not_grant_attempts_beyond_the_limit() {
        assert_eq!(policy().next_delay_honouring(6, 0.0, Some(secs(1))), None);
    }

    #[test]
    fn rate_limits_timeouts_server_errors_and_transport_errors_are_retried() {
        for status in [
            None,
            Some(429),
            Some(408),
            Some(500),
            Some(502),
            Some(503),
            Some(599),
        ] {
            assert_eq!(classify(status, None), ErrorClass::Retry, "{status:?}");
        }
    }

    #[test]
    fn a_401_asks_for_reauthentication() {
        assert_eq!(classify(Some(401), None), ErrorClass::Reauthenticate);
    }

    #[test]
    fn a_403_pauses_the_connection() {
        assert_eq!(classify(Some(403), None), ErrorClass::PauseConnection);
        assert_eq!(classify(Some(402), None), ErrorClass::PauseConnection);
    }

    #[test]
    fn a_403_for_an_account_feature_cap_fails_only_that_request() {
        assert_eq!(
            classify(Some(403), Some("feature_capping_deals_limit")),
            ErrorClass::DontRetry
        );
    }

    #[test]
    fn requests_that_cannot_succeed_are_not_retried() {
        for status in [400, 404, 405, 410, 415, 422] {
            assert_eq!(
                classify(Some(status), None),
                ErrorClass::DontRetry,
                "{status}"
            );
        }
    }

    #[test]
    fn a_retryable_error_past_the_last_attempt_is_dead_lettered() {
        let p = policy();
        let err = CrmError::from_response(Some(503), None, "maintenance", None);
        assert_eq!(
            p.decide(&err, 1, 0.0),
            RetryDecision::RetryAfter { after: secs(1) }
        );
        assert_eq!(p.decide(&err, 6, 0.0), RetryDecision::DeadLetter);
    }

    #[test]
    fn a_429_decision_honours_its_hint_and_other_errors_ignore_theirs() {
        let p = policy();
        let limited = CrmError::from_response(Some(429), None, "Request over limit", Some(secs(7)));
        assert_eq!(
            p.decide(&limited, 1, 0.0),
            RetryDecision::RetryAfter { after: secs(7) }
        );
        let server = CrmError::from_response(Some(500), None, "", Some(secs(7)));
        assert_eq!(
            p.decide(&server, 1, 0.0),
            RetryDecision::RetryAfter { after: secs(1) }
        );
    }

    #[test]
    fn non_retryable_errors_map_to_their_worker_actions() {
        let p = policy();
        let decide = |status| {
            p.decide(
                &CrmError::from_response(Some(status), None, "", None),
                1,
                0.0,
            )
        };
        assert_eq!(decide(422), RetryDecision::DeadLetter);
        assert_eq!(decide(401), RetryDecision::Reauthenticate);
        assert_eq!(decide(403), RetryDecision::PauseConnection);
    }

    #[test]
    fn the_worst_case_window_sums_the_unjittered_delays() {
        // 5 retries after 6 attempts: 1 + 2 + 4 + 8 + 10.
        assert_eq!(policy().worst_case_window(), secs(25));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_delay_never_exceeds_its_step_nor_drops_below_three_quarters_of_it(
            attempt in 1u32..20,
            jitter in proptest::num::f64::ANY,
            hint in proptest::option::of(0u64..100_000),
        ) {
            let p = RetryPolicy { max_attempts: 20, ..policy() };
            let step = p.next_delay(attempt, 0.0).unwrap();
            let delay = p.next_delay(attempt, jitter).unwrap();
            prop_assert!(delay <= step);
            prop_assert!(delay >= step.mul_f64(0.75));
            let honoured = p
                .next_delay_honouring(attempt, jitter, hint.map(Duration::from_millis))
                .unwrap();
            prop_assert!(honoured >= delay);
            prop_assert!(honoured <= p.longest_step());
        }
    }
}
