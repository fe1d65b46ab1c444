//! What the request handlers, the webhook dispatcher and the inspection handle share: the
//! state behind its lock, the RNG, the configuration, the clock, the shutdown signal, and the
//! queue of webhook deliveries ([`Job`]s) that `webhooks::emit` fills and
//! `webhooks::dispatcher` drains.
//!
//! It sits below `server`, `api` and `webhooks` (it imports none of them), so that imports
//! between those three point one way: `server` → `api` → `webhooks` → `shared`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::{mpsc, watch, Notify};

use crate::config::SimConfig;
use crate::state::State;

/// Lets a handler close its connection without answering (fault `reset`).
#[derive(Clone, Debug)]
pub(crate) struct ConnCtl(pub(crate) Arc<Notify>);

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    pub(crate) rng: Mutex<StdRng>,
    pub(crate) config: SimConfig,
    pub(crate) base_url: String,
    pub(crate) clock_offset: AtomicI64,
    /// While non-zero, the clock stands still at this unix second (see `SimHandle::freeze_clock`).
    pub(crate) frozen_at: AtomicI64,
    pub(crate) deliveries_tx: mpsc::UnboundedSender<Job>,
    pub(crate) delivery_notify: Notify,
    pub(crate) http: reqwest::Client,
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// The simulator's clock, in unix seconds (wall clock plus `advance_clock` offsets).
    pub(crate) fn now(&self) -> i64 {
        match self.frozen_at.load(Ordering::Relaxed) {
            0 => chrono::Utc::now().timestamp() + self.clock_offset.load(Ordering::Relaxed),
            frozen => frozen,
        }
    }

    pub(crate) fn now_iso_millis(&self) -> String {
        let t = chrono::Utc::now()
            + chrono::Duration::seconds(self.clock_offset.load(Ordering::Relaxed));
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub(crate) fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.config.time_scale.max(0.0))
    }

    pub(crate) async fn wait_shutdown(&self) {
        let mut rx = self.shutdown.clone();
        // An error means the sender is gone, which is a shutdown too.
        rx.wait_for(|stop| *stop).await.ok();
    }
}

/// One delivery to make (all its attempts): the item of the delivery queue.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub(crate) webhook_id: i64,
    pub(crate) company_id: i64,
    pub(crate) url: String,
    pub(crate) auth: Option<(String, String)>,
    pub(crate) body: Value,
}
