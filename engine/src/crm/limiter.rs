//! Outbound rate limiting, one set of limiters per connection (conventions C9).
//!
//! Pipedrive counts requests per token in a rolling 2-second window, and tokens per company per
//! day. The limiter is a GCRA bucket of capacity 1: consecutive requests are at least
//! `T = 2 s / (limit - 0.5)` apart, so any 2-second window holds at most `ceil(2 s / T) = limit`
//! of them, with `T / 2` (50 ms at a limit of 20) of slack for requests that reach Pipedrive
//! closer together than they left; steady writeback uses `(limit - 0.5) / limit` of the window
//! (97.5 % at 20). Search has its own
//! tighter window. The limits are seeded from the plan and replaced as soon as a response's
//! `x-ratelimit-limit` says otherwise; the daily budget is tracked from the token costs spent and
//! the `x-daily-ratelimit-token-remaining` header.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tandem_core::ConnectionId;

use dashmap::DashMap;
use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// Documented burst limits per 2 s (api_notes 5.4).
pub fn documented_burst(plan: &str, oauth: bool) -> u32 {
    let (token, app) = match plan.to_ascii_lowercase().as_str() {
        "lite" | "essential" => (20, 80),
        "growth" | "advanced" => (40, 160),
        "premium" | "professional" => (100, 400),
        "ultimate" | "power" | "enterprise" => (120, 480),
        _ => (20, 80),
    };
    if oauth {
        app
    } else {
        token
    }
}

/// Search: 10 requests per 2 s on every plan.
pub const SEARCH_BURST: u32 = 10;

fn paced(limit: u32) -> Direct {
    let per_window = f64::from(limit.max(2)) - 0.5;
    let period = Duration::from_secs_f64(2.0 / per_window);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN);
    RateLimiter::direct(quota)
}

/// The limiters and counters of one connection.
pub struct ConnectionBudget {
    general: RwLock<Arc<Direct>>,
    search: Direct,
    limit: AtomicU32,
    /// Sync requests waiting for a slot: background reads wait while any does.
    sync_waiting: AtomicU32,
    /// Tokens spent since start (by our own accounting of `x-token-cost`).
    pub tokens_spent: AtomicU64,
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Daily tokens left as Pipedrive last reported them (-1 = unknown).
    daily_left: AtomicI64,
    daily_total: AtomicI64,
    /// Daily calls kept for other tools (-1 = none: the 10 % rule alone). Salesforce sets it
    /// from `salesforce.api_reserve`.
    reserve: AtomicI64,
    /// When the daily numbers were last reported ([`process_ms`]).
    daily_seen_ms: AtomicU64,
}

/// Milliseconds since this process first asked (a monotonic clock for the budget's ages).
fn process_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    u64::try_from(
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

impl ConnectionBudget {
    fn new(limit: u32) -> Self {
        Self {
            general: RwLock::new(Arc::new(paced(limit))),
            search: paced(SEARCH_BURST),
            limit: AtomicU32::new(limit),
            sync_waiting: AtomicU32::new(0),
            tokens_spent: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            daily_left: AtomicI64::new(-1),
            daily_total: AtomicI64::new(-1),
            reserve: AtomicI64::new(-1),
            daily_seen_ms: AtomicU64::new(0),
        }
    }

    /// Waits for a slot in the burst window (and the search window for searches).
    pub async fn acquire(&self, search: bool) {
        if search {
            self.search.until_ready().await;
        }
        self.sync_waiting.fetch_add(1, Ordering::SeqCst);
        self.general().until_ready().await;
        self.sync_waiting.fetch_sub(1, Ordering::SeqCst);
    }

    fn general(&self) -> Arc<Direct> {
        self.general
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Waits for a slot that no sync request is waiting for (the mirror's reads): it takes a
    /// free slot only, so the sync is never starved, whatever the volume of background work.
    pub async fn acquire_background(&self) {
        loop {
            if self.sync_waiting.load(Ordering::SeqCst) == 0 {
                match self.general().check() {
                    Ok(()) => return,
                    Err(not_until) => {
                        let wait = not_until
                            .wait_time_from(governor::clock::Clock::now(&DefaultClock::default()));
                        tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
                    }
                }
            } else {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Adapts to what Pipedrive reported.
    pub fn observe(
        &self,
        burst_limit: Option<u32>,
        daily_left: Option<i64>,
        daily_total: Option<i64>,
    ) {
        if let Some(limit) = burst_limit.filter(|l| *l >= 2) {
            if self.limit.swap(limit, Ordering::Relaxed) != limit {
                tracing::info!(
                    limit,
                    "Pipedrive reported a different burst limit; adapting."
                );
                match self.general.write() {
                    Ok(mut general) => *general = Arc::new(paced(limit)),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(paced(limit)),
                }
            }
        }
        if let Some(left) = daily_left {
            self.daily_left.store(left, Ordering::Relaxed);
            self.daily_seen_ms.store(process_ms(), Ordering::SeqCst);
        }
        if let Some(total) = daily_total {
            self.daily_total.store(total, Ordering::Relaxed);
        }
    }

    pub fn burst_limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    /// True when less than 10 % of the daily budget is left: background work waits.
    pub fn daily_budget_low(&self) -> bool {
        let (left, total) = (
            self.daily_left.load(Ordering::Relaxed),
            self.daily_total.load(Ordering::Relaxed),
        );
        (left >= 0 && total > 0 && left * 10 < total) || self.in_reserve()
    }

    /// Keeps `calls` of the daily budget for other tools (Salesforce's shared org allocation).
    pub fn set_reserve(&self, calls: u64) {
        self.reserve
            .store(i64::try_from(calls).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// True when the daily budget left is known and no more than the reserve: no calls now.
    pub fn in_reserve(&self) -> bool {
        let (left, reserve) = (
            self.daily_left.load(Ordering::Relaxed),
            self.reserve.load(Ordering::Relaxed),
        );
        left >= 0 && reserve >= 0 && left <= reserve
    }

    /// Whether calls must keep waiting for the reserve: the budget is inside it, as reported
    /// less than `recheck` ago. Once that is older, one caller is let through to read the
    /// numbers again (the rolling 24 hours free calls as old ones leave them, and only an
    /// answer says so); the others keep waiting for its answer.
    pub fn reserve_holds(&self, recheck: Duration) -> bool {
        if !self.in_reserve() {
            return false;
        }
        let seen = self.daily_seen_ms.load(Ordering::SeqCst);
        let now = process_ms();
        let recheck = u64::try_from(recheck.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(seen) < recheck {
            return true;
        }
        self.daily_seen_ms
            .compare_exchange(seen, now, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    }

    /// The daily budget as the CRM last reported it: (left, total).
    pub fn daily_total(&self) -> Option<i64> {
        Some(self.daily_total.load(Ordering::Relaxed)).filter(|v| *v >= 0)
    }

    pub fn daily_left(&self) -> Option<i64> {
        Some(self.daily_left.load(Ordering::Relaxed)).filter(|v| *v >= 0)
    }
}

/// Every connection's budget, created on first use.
#[derive(Default, Clone)]
pub struct Limiters {
    budgets: Arc<DashMap<ConnectionId, Arc<ConnectionBudget>>>,
}

impl Limiters {
    pub fn budget(&self, connection: ConnectionId, seed_limit: u32) -> Arc<ConnectionBudget> {
        self.budgets
            .entry(connection)
            .or_insert_with(|| Arc::new(ConnectionBudget::new(seed_limit)))
            .clone()
    }

    /// The connection's budget if a call created it (metrics read it without creating one).
    pub fn get(&self, connection: ConnectionId) -> Option<Arc<ConnectionBudget>> {
        self.budgets.get(&connection).map(|b| Arc::clone(&b))
    }

    pub fn forget(&self, connection: ConnectionId) {
        self.budgets.remove(&connection);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn a_sync_request_takes_the_next_slot_before_a_background_read_that_waited_longer() {
        // 40 / 2 s: a slot every ~51 ms.
        let budget = Arc::new(ConnectionBudget::new(40));
        while budget.general().check().is_ok() {}
        let order = Arc::new(Mutex::new(Vec::new()));
        let (b, o) = (Arc::clone(&budget), Arc::clone(&order));
        let background = tokio::spawn(async move {
            b.acquire_background().await;
            o.lock().unwrap().push("background");
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (b, o) = (Arc::clone(&budget), Arc::clone(&order));
        let sync = tokio::spawn(async move {
            b.acquire(false).await;
            o.lock().unwrap().push("sync");
        });
        sync.await.unwrap();
        background.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["sync", "background"]);
    }

    #[test]
    fn inside_the_reserve_calls_wait_and_once_the_numbers_are_old_one_caller_probes_for_the_rest() {
        let budget = ConnectionBudget::new(20);
        budget.set_reserve(100);
        budget.observe(None, Some(5_000), Some(10_000));
        assert!(!budget.reserve_holds(Duration::from_secs(3600)));
        budget.observe(None, Some(50), Some(10_000));
        let an_hour = Duration::from_secs(3600);
        assert!(budget.reserve_holds(an_hour), "reported just now");
        assert!(
            !budget.reserve_holds(Duration::ZERO),
            "older than the recheck: this caller probes"
        );
        assert!(
            budget.reserve_holds(an_hour),
            "the others wait for the probe's answer"
        );
        // The probe's answer: the window freed calls.
        budget.observe(None, Some(2_000), Some(10_000));
        assert!(!budget.reserve_holds(an_hour));
    }
}
