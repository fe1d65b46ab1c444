//! The composition root: builds the store, the engine, the HTTP server and the workers from
//! `Settings`, and runs them until the shutdown token is cancelled.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::crypto::Vault;
use crate::http::{self, AppState};
use crate::store::Store;
use crate::sync::Engine;

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    /// `/metrics` on a listener of its own (`metrics.addr`).
    metrics_listener: Option<TcpListener>,
}

/// The encryption keys from the settings, or from the key file; a new key file is generated only
/// when the database holds no secret yet, and start-up stops when a stored secret cannot be
/// opened by any configured key (with the steps to recover), instead of failing later.
pub async fn open_vault(settings: &Settings, store: &Store) -> anyhow::Result<Vault> {
    let sealed = store
        .sealed_secrets()
        .await
        .context("reading stored secrets")?;
    let configured = !settings.security.encryption_keys.is_empty();
    let key_file = Path::new(&settings.security.key_file);
    if !configured && !key_file.exists() && !sealed.is_empty() {
        anyhow::bail!(
            "{} stored secret(s) exist but the key file {} is missing and security.encryption_keys is empty; refusing to generate a new key that could not open them. {}",
            sealed.len(),
            key_file.display(),
            RECOVERY
        );
    }
    let vault = load_vault(settings)?;
    let unreadable: Vec<&str> = sealed
        .iter()
        .filter(|(_, s)| vault.decrypt(s).is_err())
        .map(|(what, _)| *what)
        .collect();
    if let Some(first) = unreadable.first() {
        anyhow::bail!(
            "{} of {} stored secret(s) (e.g. {first}) cannot be opened with the configured encryption key(s); refusing to start. {}",
            unreadable.len(),
            sealed.len(),
            RECOVERY
        );
    }
    Ok(vault)
}

const RECOVERY: &str = "To recover: put the key that encrypted them back, either in security.encryption_keys (TANDEM_SECURITY__ENCRYPTION_KEYS='[\"<key>\"]'; after a rotation list the new key first and the old one after it) or in the key file (security.key_file), then start again. If that key is lost for good, the stored Pipedrive tokens and webhook secrets cannot be read by anyone: with tandem stopped, clear them (UPDATE connection SET access_token_enc = NULL, refresh_token_enc = NULL, webhook_password_enc = NULL, state = 'disconnected'; UPDATE webhook_subscription SET secret_enc = NULL, enabled = false;), start tandem, reconnect Pipedrive (contacts and links are kept) and create the app's webhook subscriptions again.";

/// The encryption keys from the settings, or from (a newly generated) key file.
pub fn load_vault(settings: &Settings) -> anyhow::Result<Vault> {
    let configured: Vec<String> = settings
        .security
        .encryption_keys
        .iter()
        .map(|k| k.expose().clone())
        .collect();
    if !configured.is_empty() {
        return Ok(Vault::from_base64_keys(&configured)?);
    }
    let path = Path::new(&settings.security.key_file);
    let key = if path.exists() {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    } else {
        let key = Vault::generate_key();
        write_private(path, &key).with_context(|| format!("writing {}", path.display()))?;
        tracing::warn!(path = %path.display(), "No encryption key configured; generated one. Back it up: without it, stored tokens cannot be read.");
        key
    };
    Ok(Vault::from_base64_keys(&[key.trim().to_owned()])?)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
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
        let vault = Arc::new(open_vault(&settings, &store).await?);
        let listener = TcpListener::bind((settings.http.host, settings.http.port))
            .await
            .with_context(|| format!("binding {}:{}", settings.http.host, settings.http.port))?;
        let addr = listener.local_addr()?;
        crate::meter::exposition::init(&settings.metrics);
        let metrics_listener = match settings.metrics.addr.as_str() {
            "" => None,
            metrics_addr => Some(
                TcpListener::bind(metrics_addr)
                    .await
                    .with_context(|| format!("binding metrics.addr {metrics_addr}"))?,
            ),
        };
        let public_url = settings.public_url(addr.port());
        let settings = Arc::new(settings);
        let engine = Engine::new(store.clone(), vault, Arc::clone(&settings), public_url);
        let state = AppState {
            store,
            settings,
            engine,
        };
        Ok(Self {
            listener,
            addr,
            state,
            metrics_listener,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port of the separate `/metrics` listener, when `metrics.addr` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// Serves (and runs the workers, if enabled) until `shutdown` is cancelled, then drains
    /// in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "tandem is listening.");
        let mut workers = if self.state.settings.workers.enabled {
            let mut handles =
                crate::sync::worker::spawn_workers(self.state.engine.clone(), shutdown.clone());
            handles.push(crate::meter::writer::spawn(
                self.state.engine.clone(),
                shutdown.clone(),
            ));
            handles
        } else {
            Vec::new()
        };
        if let Some(listener) = self.metrics_listener {
            let router = crate::http::metrics::separate_router(self.state.clone());
            let stop = shutdown.clone();
            workers.push(tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(error) = served {
                    tracing::error!(error = %error, "The /metrics listener stopped.");
                }
            }));
        }
        let router = http::router(self.state.clone());
        // The peer address feeds the failed-authentication throttle.
        axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await
        .context("serving HTTP")?;
        shutdown.cancel();
        for worker in workers {
            drop(worker.await);
        }
        if self.state.settings.workers.enabled {
            // A clean stop hands this replica's connections over at once (ADR 0014).
            if let Err(error) = crate::sync::ownership::stop(&self.state.engine).await {
                tracing::warn!(error = %error, "Could not give up this replica's connections; they are taken over when their leases run out.");
            }
        }
        tracing::info!("tandem stopped.");
        crate::telemetry::shutdown();
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
