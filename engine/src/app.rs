//! The composition root: builds the store, the HTTP server and the workers from `Settings`,
//! and runs them until the shutdown token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::http::{self, AppState};
use crate::store::Store;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Opens the database (migrating it unless disabled) and binds the HTTP listener
    /// (`http.port = 0` picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = Store::connect(&settings.database)
            .await
            .context("opening the database")?;
        if settings.database.migrate_on_start {
            store.migrate_up().await.context("running migrations")?;
        }
        let listener = TcpListener::bind((settings.http.host, settings.http.port))
            .await
            .with_context(|| format!("binding {}:{}", settings.http.host, settings.http.port))?;
        let addr = listener.local_addr()?;
        let state = AppState {
            store,
            settings: Arc::new(settings),
        };
        Ok(Self {
            listener,
            addr,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "tandem is listening.");
        let router = http::router(self.state.clone());
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("serving HTTP")?;
        tracing::info!("tandem stopped.");
        Ok(())
    }
}

/// Cancels `token` on SIGTERM or ctrl-c.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        drop(tokio::signal::ctrl_c().await);
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("Shutdown requested.");
    token.cancel();
}
