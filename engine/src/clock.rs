//! The engine's one clock. Use-cases read the time from [`Engine::now`](crate::sync::Engine::now),
//! which asks the clock the engine was built with: the [`SystemClock`] in production, a
//! [`TestClock`] that tests move by hand (retention, leases, token expiry) without sleeping.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// What time it is.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that says the wall-clock time plus an offset the test moves with [`TestClock::advance`]
/// (time keeps flowing, so leases and `updated_at` orderings behave as in production), or a
/// fixed instant after [`TestClock::freeze`].
#[derive(Debug, Clone, Default)]
pub struct TestClock(Arc<Mutex<TestTime>>);

#[derive(Debug, Clone, Copy, Default)]
struct TestTime {
    offset: Duration,
    frozen: Option<DateTime<Utc>>,
}

impl TestClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut time = self.lock();
        time.offset += by;
        if let Some(frozen) = time.frozen.as_mut() {
            *frozen += by;
        }
    }

    /// Stops the clock at `at`; [`TestClock::advance`] still moves it.
    pub fn freeze(&self, at: DateTime<Utc>) {
        self.lock().frozen = Some(at);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TestTime> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let time = *self.lock();
        time.frozen.unwrap_or_else(|| Utc::now() + time.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_clock_moves_when_told() {
        let clock = TestClock::new();
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        clock.freeze(at);
        assert_eq!(clock.now(), at);
        clock.advance(Duration::hours(2));
        assert_eq!(clock.now(), at + Duration::hours(2));
    }

    #[test]
    fn an_unfrozen_test_clock_runs_ahead_by_its_offset() {
        let clock = TestClock::new();
        clock.advance(Duration::days(1));
        assert!(clock.now() > SystemClock.now() + Duration::hours(23));
    }
}
