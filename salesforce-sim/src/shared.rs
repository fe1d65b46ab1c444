//! What the handlers and the handle share: the state behind its lock, the RNG, the
//! configuration, the clock, the listeners' URLs and the shutdown signal.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use tokio::sync::{watch, Notify};

use crate::config::SfSimConfig;
use crate::state::State;

/// Lets a handler close its connection without answering (fault `reset`).
#[derive(Clone, Debug)]
pub(crate) struct ConnCtl(pub(crate) Arc<Notify>);

/// The URLs of the three listeners.
#[derive(Clone, Debug, Default)]
pub(crate) struct Urls {
    pub(crate) instance: String,
    pub(crate) login: String,
    pub(crate) sandbox_login: String,
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) config: SfSimConfig,
    pub(crate) urls: Urls,
    /// Milliseconds added to the wall clock (`advance_clock`).
    pub(crate) clock_offset_ms: AtomicI64,
    /// While non-zero, the clock stands still at this unix millisecond.
    pub(crate) frozen_at_ms: AtomicI64,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// The simulator's clock, in unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        match self.frozen_at_ms.load(Ordering::Relaxed) {
            0 => {
                chrono::Utc::now().timestamp_millis() + self.clock_offset_ms.load(Ordering::Relaxed)
            }
            frozen => frozen,
        }
    }

    pub(crate) async fn wait_shutdown(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the sender is gone, which is a shutdown too.
        rx.wait_for(|stop| *stop).await.ok();
    }

    /// The login host URL of an org.
    pub(crate) fn login_url(&self, org: usize) -> &str {
        if org == crate::state::SANDBOX {
            &self.urls.sandbox_login
        } else {
            &self.urls.login
        }
    }
}
