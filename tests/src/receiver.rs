//! A test webhook receiver: a tiny axum server on 127.0.0.1:0 that collects every request into
//! a channel and answers 200, or a failure status for the first `fail_first` requests (or all).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::sync::mpsc;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the receiver answered.
    pub answered: StatusCode,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

struct Behaviour {
    fail_first: AtomicUsize,
    always_fail: bool,
    tx: mpsc::UnboundedSender<Received>,
}

pub struct TestReceiver {
    pub url: String,
    rx: mpsc::UnboundedReceiver<Received>,
}

impl TestReceiver {
    /// Answers 200 to everything.
    pub async fn start() -> Self {
        Self::start_with(0, false).await
    }

    /// Answers 500 to the first `fail_first` requests (to every request when `always_fail`).
    pub async fn start_with(fail_first: usize, always_fail: bool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let behaviour = Arc::new(Behaviour {
            fail_first: AtomicUsize::new(fail_first),
            always_fail,
            tx,
        });
        let router = Router::new()
            .route("/hook", post(receive))
            .with_state(behaviour);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("receiver address");
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url: format!("http://{addr}/hook"),
            rx,
        }
    }

    /// The next request, waiting at most 10 s.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.rx.recv())
            .await
            .expect("a webhook arrives within 10 s")
            .expect("the receiver is running")
    }

    /// Every request received so far, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Ok(received) = self.rx.try_recv() {
            all.push(received);
        }
        all
    }
}

async fn receive(
    State(behaviour): State<Arc<Behaviour>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let fail = behaviour.always_fail
        || behaviour
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let answered = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    drop(behaviour.tx.send(Received {
        headers,
        body,
        answered,
    }));
    answered
}

/// A receiver subscribed (the default tenant's app webhook subscription) to the event `types`
/// at `stage_ids` (none: every stage).
pub async fn subscribed(
    engine: &tandem_engine::sync::Engine,
    types: &[&str],
    stage_ids: Vec<i64>,
) -> TestReceiver {
    use tandem_engine::sync::app::{self, EventFilter};
    let receiver = TestReceiver::start().await;
    app::create_subscription_with(
        engine,
        &tandem_core::TenantId::default(),
        &receiver.url,
        app::generate_secret(),
        EventFilter {
            event_types: Some(types.iter().map(|t| (*t).to_owned()).collect()),
            pipeline_ids: Vec::new(),
            stage_ids,
        },
    )
    .await
    .expect("the subscription is created");
    receiver
}
