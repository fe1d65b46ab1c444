//! Failed-authentication throttling (ADR 8), in memory, per process.
//!
//! Every authenticated surface (the console login and admin Bearer, the app's API keys, the
//! Pipedrive webhooks' Basic credentials, the app's signed webhooks) counts failures per
//! **client address**: after [`Policy::free_failures`] failures in a row the address is locked
//! for a delay that doubles with each further attempt (attempts made while locked count too),
//! up to [`Policy::max_client_lock`]. A locked address gets 429 `too_many_attempts` without its
//! credentials being looked at, so the right token does not get through a lock either.
//!
//! The admin token and the API keys are also counted per **credential target**, across
//! addresses, against attacks spread over many addresses; that lock is short
//! ([`Policy::max_target_lock`]) and does not apply to addresses that authenticated
//! successfully within [`Policy::trust_for`], so an attacker cannot lock the real admin out.
//! Webhook receivers have no target lock: it would let anyone stop Pipedrive's deliveries.
//!
//! The logic is pure (time is passed in), so its tests need no clock.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// What is being authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Surface {
    /// The console login and the admin Bearer token.
    Admin,
    /// The app's API keys on `/api/v1`.
    Api,
    /// Basic credentials on `/webhooks/pipedrive/{connection}` and Pipedrive's uninstall call.
    PipedriveWebhook,
    /// Signed deliveries on `/webhooks/app`.
    AppWebhook,
    /// The Bearer token on `/metrics` (the main port or its own listener).
    Metrics,
}

impl Surface {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Api => "api",
            Self::PipedriveWebhook => "pipedrive_webhook",
            Self::AppWebhook => "app_webhook",
            Self::Metrics => "metrics",
        }
    }

    /// Whether the request's check reports its outcome through an [`AuthProbe`] (the console
    /// and the APIs); the others are judged by their status (401 is a failure).
    pub(crate) fn reports_through_probe(self) -> bool {
        matches!(self, Self::Admin | Self::Api)
    }

    /// Whether failures are also counted across addresses.
    fn has_target_lock(self) -> bool {
        matches!(self, Self::Admin | Self::Api)
    }
}

/// The numbers; [`Policy::default`] is what tandem runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Failures in a row an address may make before it is locked.
    pub(crate) free_failures: u32,
    /// The first lock; each further failure doubles it.
    pub(crate) first_lock: Duration,
    pub(crate) max_client_lock: Duration,
    /// Failures across all addresses before the target itself is locked.
    pub(crate) target_free_failures: u32,
    pub(crate) max_target_lock: Duration,
    /// A counter without a failure for this long starts again from zero.
    pub(crate) forget_after: Duration,
    /// How long an address that authenticated stays exempt from the target lock.
    pub(crate) trust_for: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            free_failures: 5,
            first_lock: Duration::from_secs(1),
            max_client_lock: Duration::from_secs(15 * 60),
            target_free_failures: 50,
            max_target_lock: Duration::from_secs(60),
            forget_after: Duration::from_secs(60 * 60),
            trust_for: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

/// A lock that has just started (for the audit entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NewLock {
    /// `true` for the target lock (failures from several addresses).
    pub(crate) target: bool,
    pub(crate) failures: u32,
    pub(crate) duration: Duration,
}

/// How stale a trust may get before a success renews it (far below [`Policy::trust_for`]).
const TRUST_RENEWAL: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub(crate) struct AuthThrottle {
    policy: Policy,
    clients: DashMap<(Surface, IpAddr), Counter>,
    targets: DashMap<Surface, Counter>,
    trusted: DashMap<(Surface, IpAddr), Instant>,
}

fn lock_for(failures: u32, free: u32, first: Duration, max: Duration) -> Option<Duration> {
    let over = failures.checked_sub(free)?.checked_sub(1)?;
    let factor = 1_u32.checked_shl(over.min(31)).unwrap_or(u32::MAX);
    Some(first.saturating_mul(factor).min(max))
}

impl AuthThrottle {
    pub(crate) fn new(policy: Policy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// `Err(retry_after)` when `client` may not try `surface` now.
    pub(crate) fn check(
        &self,
        surface: Surface,
        client: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let locked = |counter: Option<Counter>| {
            counter
                .and_then(|c| c.locked_until)
                .filter(|until| *until > now)
                .map(|until| until - now)
        };
        if let Some(wait) = locked(self.clients.get(&(surface, client)).map(|c| *c)) {
            return Err(wait);
        }
        if surface.has_target_lock() && !self.is_trusted(surface, client, now) {
            if let Some(wait) = locked(self.targets.get(&surface).map(|c| *c)) {
                return Err(wait);
            }
        }
        Ok(())
    }

    fn is_trusted(&self, surface: Surface, client: IpAddr, now: Instant) -> bool {
        self.trusted
            .get(&(surface, client))
            .is_some_and(|since| now.saturating_duration_since(*since) < self.policy.trust_for)
    }

    /// Counts a failed (or refused-while-locked) attempt; returns the locks it started.
    pub(crate) fn failed(&self, surface: Surface, client: IpAddr, now: Instant) -> Vec<NewLock> {
        let p = self.policy;
        let mut started = Vec::new();
        let mut bump = |counter: &mut Counter, free: u32, max: Duration, target: bool| {
            if now.saturating_duration_since(counter.last_failure) > p.forget_after {
                counter.failures = 0;
            }
            counter.failures = counter.failures.saturating_add(1);
            counter.last_failure = now;
            if let Some(duration) = lock_for(counter.failures, free, p.first_lock, max) {
                if counter.locked_until.is_none_or(|until| until <= now) {
                    started.push(NewLock {
                        target,
                        failures: counter.failures,
                        duration,
                    });
                }
                counter.locked_until = Some(now + duration);
            }
        };
        let fresh = Counter {
            failures: 0,
            last_failure: now,
            locked_until: None,
        };
        bump(
            &mut self.clients.entry((surface, client)).or_insert(fresh),
            p.free_failures,
            p.max_client_lock,
            false,
        );
        if surface.has_target_lock() {
            bump(
                &mut self.targets.entry(surface).or_insert(fresh),
                p.target_free_failures,
                p.max_target_lock,
                true,
            );
        }
        started
    }

    /// A successful authentication: the address starts again from zero and is trusted.
    ///
    /// Every accepted request passes here (a webhook delivery, an API call), so the maps are
    /// only written when something changes: a counter to drop, a trust older than a minute
    /// to renew. Reads share a shard; writes would serialise every request from one address.
    pub(crate) fn succeeded(&self, surface: Surface, client: IpAddr, now: Instant) {
        let key = (surface, client);
        if self.clients.contains_key(&key) {
            self.clients.remove(&key);
        }
        let fresh = self
            .trusted
            .get(&key)
            .is_some_and(|since| now.saturating_duration_since(*since) < TRUST_RENEWAL);
        if !fresh {
            self.trusted.insert(key, now);
        }
    }

    /// Drops counters nobody needs any more (called now and then, so memory stays bounded).
    pub(crate) fn retain_recent(&self, now: Instant) {
        let p = self.policy;
        let keep = |c: &Counter| {
            now.saturating_duration_since(c.last_failure) <= p.forget_after
                || c.locked_until.is_some_and(|until| until > now)
        };
        self.clients.retain(|_, c| keep(c));
        self.targets.retain(|_, c| keep(c));
        self.trusted
            .retain(|_, since| now.saturating_duration_since(*since) < p.trust_for);
    }

    /// Addresses with a counter (for the bound on memory).
    pub(crate) fn tracked(&self) -> usize {
        self.clients.len() + self.trusted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_is_locked_after_five_failures_for_a_delay_that_doubles_up_to_the_cap() {
        let throttle = AuthThrottle::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(throttle.failed(Surface::Admin, ip(1), t0).is_empty());
            assert_eq!(throttle.check(Surface::Admin, ip(1), t0), Ok(()));
        }
        let locks = throttle.failed(Surface::Admin, ip(1), t0);
        assert_eq!(locks[0].duration, Duration::from_secs(1));
        assert_eq!(
            throttle.check(Surface::Admin, ip(1), t0),
            Err(Duration::from_secs(1))
        );
        // Attempts while locked count: the lock grows, up to 15 minutes.
        for _ in 0..40 {
            throttle.failed(Surface::Admin, ip(1), t0);
        }
        assert_eq!(
            throttle.check(Surface::Admin, ip(1), t0),
            Err(Duration::from_secs(15 * 60))
        );
        // Another address and another surface are not affected.
        assert_eq!(throttle.check(Surface::Admin, ip(2), t0), Ok(()));
        assert_eq!(throttle.check(Surface::Api, ip(1), t0), Ok(()));
        // The lock ends.
        assert_eq!(
            throttle.check(Surface::Admin, ip(1), t0 + Duration::from_secs(15 * 60)),
            Ok(())
        );
    }

    #[test]
    fn failures_spread_over_addresses_lock_the_target_briefly_but_never_a_trusted_address() {
        let throttle = AuthThrottle::default();
        let t0 = Instant::now();
        throttle.succeeded(Surface::Admin, ip(1), t0);
        let mut target_locks = Vec::new();
        for i in 0..100_u8 {
            target_locks.extend(
                throttle
                    .failed(Surface::Admin, ip(100 + i), t0)
                    .into_iter()
                    .filter(|l| l.target),
            );
        }
        assert_eq!(target_locks.len(), 1, "one audit entry per lock");
        let wait = throttle.check(Surface::Admin, ip(3), t0).unwrap_err();
        assert!(wait <= Duration::from_secs(60), "{wait:?}");
        assert_eq!(throttle.check(Surface::Admin, ip(1), t0), Ok(()), "trusted");
        // Webhooks have no target lock.
        for i in 0..100_u8 {
            throttle.failed(Surface::PipedriveWebhook, ip(100 + i), t0);
        }
        assert_eq!(throttle.check(Surface::PipedriveWebhook, ip(3), t0), Ok(()));
    }

    #[test]
    fn a_success_resets_the_address_and_old_counters_are_forgotten() {
        let throttle = AuthThrottle::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            throttle.failed(Surface::Api, ip(1), t0);
        }
        throttle.succeeded(Surface::Api, ip(1), t0);
        for _ in 0..5 {
            assert!(throttle.failed(Surface::Api, ip(1), t0).is_empty());
        }
        let later = t0 + Duration::from_secs(2 * 60 * 60);
        assert!(throttle.failed(Surface::Api, ip(1), later).is_empty());
        throttle.failed(Surface::Api, ip(9), t0);
        throttle.retain_recent(later);
        assert_eq!(
            throttle.tracked(),
            2,
            "ip 1 (recent) and its trust; ip 9 dropped"
        );
    }
}

/// Where an authentication check reports its outcome to the throttle: the throttle layer puts
/// one in each request's extensions, and the admin and API-key checks fill it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuthProbe(std::sync::Arc<std::sync::OnceLock<bool>>);

impl AuthProbe {
    /// Records whether the credentials presented with this request were right.
    pub(crate) fn record(extensions: &axum::http::Extensions, ok: bool) {
        if let Some(probe) = extensions.get::<Self>() {
            probe.set(ok);
        }
    }

    /// The first outcome recorded for a request is the one that counts.
    pub(crate) fn set(&self, ok: bool) {
        self.0.get_or_init(|| ok);
    }

    fn outcome(&self) -> Option<bool> {
        self.0.get().copied()
    }
}

/// The surface a request authenticates against, by route.
pub(crate) fn surface_of(method: &axum::http::Method, path: &str) -> Option<Surface> {
    if path == "/admin"
        || path.starts_with("/admin/")
        || path == "/connections/pipedrive/connect"
        || path == "/connections/salesforce/connect"
    {
        Some(Surface::Admin)
    } else if path.starts_with("/api/v1/") {
        Some(Surface::Api)
    } else if path.starts_with("/webhooks/pipedrive/")
        || (path == "/connections/pipedrive/callback" && method == axum::http::Method::DELETE)
    {
        Some(Surface::PipedriveWebhook)
    } else if path == "/webhooks/app" {
        Some(Surface::AppWebhook)
    } else if path == "/metrics" {
        Some(Surface::Metrics)
    } else {
        None
    }
}

/// The outcome of one request: what the check recorded, or for the webhook receivers (another
/// crate, which answers 401 for every refusal) the status.
pub(crate) fn outcome(
    surface: Surface,
    probe: Option<&AuthProbe>,
    status: axum::http::StatusCode,
) -> Option<bool> {
    probe.and_then(AuthProbe::outcome).or(match surface {
        Surface::PipedriveWebhook | Surface::AppWebhook | Surface::Metrics => {
            if status == axum::http::StatusCode::UNAUTHORIZED {
                Some(false)
            } else if status.is_success() {
                Some(true)
            } else {
                None
            }
        }
        Surface::Admin | Surface::Api => None,
    })
}
