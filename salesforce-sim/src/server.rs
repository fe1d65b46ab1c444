//! Binding the three listeners (instance, production login, sandbox login), serving HTTP and
//! HTTPS on each port (the first byte of a connection tells them apart), shutdown, and
//! [`SfSimHandle`], the hooks for tests.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::api::App;
use crate::config::SfSimConfig;
use crate::error::SfSimError;
use crate::faults::FaultSpec;
use crate::hooks::{DuplicateRule, Hooks, OrgKind};
use crate::shared::{ConnCtl, Shared, Urls};
use crate::state::{Counters, Org, Permissions, State, PRODUCTION, SANDBOX};

/// The self-signed certificate (PEM) the simulator presents on HTTPS connections; valid for
/// `127.0.0.1` and `localhost`. Clients that insist on `https://` trust it with this.
pub const TLS_CERT_PEM: &str = include_str!("../certs/sim-cert.pem");
const TLS_KEY_PEM: &str = include_str!("../certs/sim-key.pem");

/// A running simulator. Dropping it stops the listeners (as `shutdown` does, without waiting).
#[derive(Debug)]
pub struct SfSim {
    handle: SfSimHandle,
    stop: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl SfSim {
    /// A cheap, cloneable handle to inspect and change the state.
    pub fn handle(&self) -> SfSimHandle {
        self.handle.clone()
    }

    /// `http://127.0.0.1:PORT` of the instance (the `instance_url` of token answers).
    pub fn instance_url(&self) -> &str {
        self.handle.instance_url()
    }

    /// `http://127.0.0.1:PORT` of the production (`false`) or sandbox (`true`) login host.
    pub fn login_url(&self, sandbox: bool) -> &str {
        self.handle.login_url(sandbox)
    }

    /// Stops accepting, ends open connections, and waits for the listeners.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        for s in self.servers.drain(..) {
            s.await.ok();
        }
    }

    /// Waits until the listeners stop.
    pub async fn wait(mut self) {
        for s in self.servers.drain(..) {
            s.await.ok();
        }
    }
}

impl Drop for SfSim {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

fn tls_acceptor() -> Result<TlsAcceptor, SfSimError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(TLS_CERT_PEM.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| SfSimError::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(TLS_KEY_PEM.as_bytes())
        .map_err(|e| SfSimError::Tls(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SfSimError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| SfSimError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn bind(port: u16) -> Result<(TcpListener, String), SfSimError> {
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| SfSimError::Bind { port, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SfSimError::Bind { port, source })?;
    Ok((listener, format!("http://{addr}")))
}

/// Starts a simulator on 127.0.0.1 (three listeners; ports from the config, 0 = any free
/// port) on the current tokio runtime.
pub async fn start(config: SfSimConfig) -> Result<SfSim, SfSimError> {
    let (instance, instance_url) = bind(config.instance_port).await?;
    let (login, login_url) = bind(config.login_port).await?;
    let (sandbox, sandbox_url) = bind(config.sandbox_login_port).await?;
    let tls = Arc::new(tls_acceptor()?);
    let now = chrono::Utc::now().timestamp_millis();
    let mut orgs = vec![
        Org::new(false, config.daily_api_requests, now),
        Org::new(true, config.daily_api_requests, now),
    ];
    for o in &mut orgs {
        crate::seed::seed(
            o,
            config.leads,
            config.contacts,
            config.accounts,
            config.seed,
            now,
        );
    }
    let state = State {
        orgs,
        codes: Default::default(),
        sessions: Default::default(),
        grants: Default::default(),
        cursors: Default::default(),
        cursor_seq: 0,
        session_ttl_ms: config.session_lifetime.as_millis() as i64,
        counters: Counters::default(),
        faults: Arc::new(config.faults.clone()),
    };
    let (stop, shutdown) = watch::channel(false);
    let shared = Arc::new(Shared {
        state: Mutex::new(state),
        rng: Mutex::new(StdRng::seed_from_u64(config.seed)),
        config,
        urls: Urls {
            instance: instance_url,
            login: login_url,
            sandbox_login: sandbox_url,
        },
        clock_offset_ms: AtomicI64::new(0),
        frozen_at_ms: AtomicI64::new(0),
        shutdown,
    });
    let router = |login_org: Option<usize>| {
        Router::new()
            .fallback(crate::api::dispatch)
            .with_state(App {
                shared: shared.clone(),
                login_org,
            })
    };
    let servers = vec![
        tokio::spawn(accept_loop(
            instance,
            router(None),
            shared.clone(),
            tls.clone(),
        )),
        tokio::spawn(accept_loop(
            login,
            router(Some(PRODUCTION)),
            shared.clone(),
            tls.clone(),
        )),
        tokio::spawn(accept_loop(
            sandbox,
            router(Some(SANDBOX)),
            shared.clone(),
            tls,
        )),
    ];
    Ok(SfSim {
        handle: SfSimHandle { shared },
        stop,
        servers,
    })
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    shared: Arc<Shared>,
    tls: Arc<TlsAcceptor>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shared.wait_shutdown() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        tokio::spawn(serve_connection(
            stream,
            app.clone(),
            shared.clone(),
            tls.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    app: Router,
    shared: Arc<Shared>,
    tls: Arc<TlsAcceptor>,
) {
    stream.set_nodelay(true).ok();
    let mut first = [0u8; 1];
    let is_tls = tokio::select! {
        r = stream.peek(&mut first) => matches!(r, Ok(1) if first[0] == 0x16),
        _ = shared.wait_shutdown() => return,
    };
    // Keep a duplicate of the socket so that a `reset` fault can set SO_LINGER to 0.
    let Ok(std_stream) = stream.into_std() else {
        return;
    };
    let Ok(dup) = std_stream.try_clone() else {
        return;
    };
    let Ok(stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    if is_tls {
        let accepted = tokio::select! {
            r = tls.accept(stream) => r,
            _ = shared.wait_shutdown() => return,
        };
        if let Ok(s) = accepted {
            serve_io(s, app, shared, dup).await;
        }
    } else {
        serve_io(stream, app, shared, dup).await;
    }
}

async fn serve_io<I>(io: I, app: Router, shared: Arc<Shared>, dup: std::net::TcpStream)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctl = Arc::new(Notify::new());
    let ext = ConnCtl(ctl.clone());
    let svc = app.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ext.clone());
        req
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(svc));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = ctl.notified() => {
            socket2::SockRef::from(&dup).set_linger(Some(Duration::ZERO)).ok();
        }
        _ = shared.wait_shutdown() => {
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await.ok();
        }
    }
}

/// A token answer, as `/services/oauth2/token` gives it.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The session id (`Authorization: Bearer ...`).
    pub access_token: String,
    /// The refresh token.
    pub refresh_token: String,
    /// Where API calls go.
    pub instance_url: String,
    /// The identity URL.
    pub id: String,
}

/// Inspect and change the simulator's state from tests, benchmarks and the demo.
/// Cheap to clone; every method is synchronous.
#[derive(Clone, Debug)]
pub struct SfSimHandle {
    shared: Arc<Shared>,
}

impl SfSimHandle {
    fn hooks(&self) -> Hooks<'_> {
        Hooks(&self.shared)
    }

    /// `http://127.0.0.1:PORT` of the instance.
    pub fn instance_url(&self) -> &str {
        &self.shared.urls.instance
    }

    /// `http://127.0.0.1:PORT` of the production (`false`) or sandbox (`true`) login host.
    pub fn login_url(&self, sandbox: bool) -> &str {
        if sandbox {
            &self.shared.urls.sandbox_login
        } else {
            &self.shared.urls.login
        }
    }

    /// The configuration the simulator started with.
    pub fn config(&self) -> &SfSimConfig {
        &self.shared.config
    }

    /// Issues a session and refresh token as the web-server flow would, for `user` (an id
    /// or a username; default: the org's admin), without the browser round trip.
    pub fn issue_tokens(&self, org: OrgKind, user: Option<&str>) -> Result<Tokens, SfSimError> {
        let v = self.hooks().issue_session(org, user, true)?;
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Tokens {
            access_token: s("access_token"),
            refresh_token: s("refresh_token"),
            instance_url: s("instance_url"),
            id: s("id"),
        })
    }

    /// Users of an org as `(id, username)`: the admin (System Administrator), then two
    /// Standard Users.
    pub fn users(&self, org: OrgKind) -> Vec<(String, String)> {
        self.hooks().users(org)
    }

    /// A user's id from an id or a username.
    pub fn user_id(&self, org: OrgKind, user: &str) -> Result<String, SfSimError> {
        self.hooks().resolve_user(org, user)
    }

    /// The org's admin (and default login user) id.
    pub fn admin_user(&self, org: OrgKind) -> String {
        self.shared.state.lock().orgs[org.index()]
            .login_user
            .clone()
    }

    /// Who signs in at `/services/oauth2/authorize` without a `login_hint`.
    pub fn set_login_user(&self, org: OrgKind, user: &str) -> Result<(), SfSimError> {
        self.hooks().set_login_user(org, user)
    }

    /// Inserts a record as a UI user (no FLS, sharing or duplicate checks; required fields
    /// and validation rules apply). `OwnerId` in the body chooses the owner.
    pub fn insert_record(
        &self,
        org: OrgKind,
        object: &str,
        body: Value,
    ) -> Result<String, SfSimError> {
        self.hooks().insert(org, object, body)
    }

    /// Edits a record as the admin would in the UI (moves `SystemModstamp`).
    pub fn update_record_as_user(
        &self,
        org: OrgKind,
        object: &str,
        id: &str,
        patch: Value,
    ) -> Result<(), SfSimError> {
        self.hooks().update(org, object, id, patch, None)
    }

    /// Deletes a record as a UI user (to the recycle bin: queryAll and getDeleted see it).
    pub fn delete_record(&self, org: OrgKind, object: &str, id: &str) -> Result<(), SfSimError> {
        self.hooks().delete(org, object, id)
    }

    /// A record with every field (deleted ones too), whoever may see it.
    pub fn record(&self, org: OrgKind, object: &str, id: &str) -> Option<Value> {
        self.hooks().record(org, object, id)
    }

    /// Live record ids with this e-mail (case-insensitive).
    pub fn ids_by_email(&self, org: OrgKind, object: &str, email: &str) -> Vec<String> {
        self.hooks().ids_by_email(org, object, email)
    }

    /// The ids of an object's live records.
    pub fn ids(&self, org: OrgKind, object: &str) -> Vec<String> {
        self.hooks().ids(org, object)
    }

    /// Live records of an object.
    pub fn count(&self, org: OrgKind, object: &str) -> usize {
        self.hooks().count(org, object)
    }

    /// Converts a lead: creates an Account and a Contact (or links the given ones), sets
    /// `IsConverted`, `ConvertedContactId`, `ConvertedAccountId`. Returns (account, contact).
    pub fn convert_lead(
        &self,
        org: OrgKind,
        lead: &str,
        account: Option<&str>,
        contact: Option<&str>,
    ) -> Result<(String, String), SfSimError> {
        self.hooks().convert_lead(org, lead, account, contact)
    }

    /// Merges `losers` into `master` (Lead, Contact or Account): losers are deleted with
    /// `MasterRecordId` set.
    pub fn merge(
        &self,
        org: OrgKind,
        object: &str,
        master: &str,
        losers: &[&str],
    ) -> Result<(), SfSimError> {
        let losers: Vec<String> = losers.iter().map(|s| (*s).to_owned()).collect();
        self.hooks().merge(org, object, master, &losers)
    }

    /// Revokes the app's tokens in an org (all users, or one): sessions get 401, refreshing
    /// gets `invalid_grant`.
    pub fn revoke_tokens(&self, org: OrgKind, user: Option<&str>) {
        self.hooks().revoke_tokens(org, user)
    }

    /// Expires every session (`None`) or one; refresh tokens keep working.
    pub fn expire_sessions(&self, token: Option<&str>) {
        self.hooks().expire_sessions(token)
    }

    /// Replaces a session's token with a new one (the old one gets 401); returns the new one.
    pub fn rotate_session(&self, token: &str) -> Option<String> {
        self.hooks().rotate_session(token)
    }

    /// Lifetime of sessions issued from now on.
    pub fn set_session_lifetime(&self, d: Duration) {
        self.hooks().set_session_lifetime(d)
    }

    /// Adds (or replaces, by name) a validation rule: when `condition` (a SOQL WHERE
    /// condition, e.g. `LeadSource = null`) holds for the record being saved, the save fails
    /// with `FIELD_CUSTOM_VALIDATION_EXCEPTION` and `message` (on `field`, if given).
    pub fn set_validation_rule(
        &self,
        org: OrgKind,
        object: &str,
        name: &str,
        condition: &str,
        message: &str,
        field: Option<&str>,
    ) -> Result<(), SfSimError> {
        self.hooks()
            .set_validation_rule(org, object, name, condition, message, field)
    }

    /// Removes every validation rule of an org.
    pub fn clear_validation_rules(&self, org: OrgKind) {
        self.hooks().clear_validation_rules(org)
    }

    /// Switches the same-e-mail duplicate rule of Lead or Contact (default: Block on both).
    pub fn set_duplicate_rule(
        &self,
        org: OrgKind,
        object: &str,
        rule: DuplicateRule,
    ) -> Result<(), SfSimError> {
        self.hooks().set_duplicate_rule(org, object, rule)
    }

    /// Sets the permissions of a user's profile (assigned permission sets still add theirs).
    pub fn set_user_permissions(
        &self,
        org: OrgKind,
        user: &str,
        p: Permissions,
    ) -> Result<(), SfSimError> {
        self.hooks().set_user_permissions(org, user, p)
    }

    /// A user's effective permissions.
    pub fn permissions(&self, org: OrgKind, user: &str) -> Result<Permissions, SfSimError> {
        self.hooks().permissions(org, user)
    }

    /// Turns API access off (or on) for the whole org.
    pub fn set_api_enabled_for_org(&self, org: OrgKind, enabled: bool) {
        self.hooks().set_api_enabled_for_org(org, enabled)
    }

    /// The org's daily API allocation (rolling 24 hours).
    pub fn set_daily_api_requests(&self, org: OrgKind, max: u64) {
        self.hooks().set_daily_api_requests(org, max)
    }

    /// Forgets the org's API usage.
    pub fn reset_api_usage(&self, org: OrgKind) {
        self.hooks().reset_api_usage(org)
    }

    /// `(used in the last 24 h, allocation)`.
    pub fn api_usage(&self, org: OrgKind) -> (u64, u64) {
        self.hooks().api_usage(org)
    }

    /// Adds a custom field as the Tooling API would (`metadata` as `CustomField.Metadata`:
    /// `type`, `length`, `label`, `externalId`, `unique`); nobody may edit it until
    /// [`SfSimHandle::grant_field_access`] or a `FieldPermissions` record allows it.
    pub fn add_custom_field(
        &self,
        org: OrgKind,
        object: &str,
        name: &str,
        metadata: Value,
    ) -> Result<String, SfSimError> {
        self.hooks().add_custom_field(org, object, name, metadata)
    }

    /// Field-level security on a user's profile for `Object.Field`; returns the
    /// `FieldPermissions` id.
    pub fn grant_field_access(
        &self,
        org: OrgKind,
        user: &str,
        field: &str,
        read: bool,
        edit: bool,
    ) -> Result<String, SfSimError> {
        self.hooks()
            .grant_field_access(org, user, field, read, edit)
    }

    /// Seeds more records into an org.
    pub fn seed(&self, org: OrgKind, leads: usize, contacts: usize, accounts: usize) {
        self.hooks().seed(org, leads, contacts, accounts)
    }

    /// Moves the clock forward (timestamps, session expiry, the rolling API window).
    pub fn advance_clock(&self, by: Duration) {
        self.hooks().advance_clock(by)
    }

    /// Moves the clock back: what a user does next is stamped in the past (records that were
    /// last modified long before tandem connected).
    pub fn rewind_clock(&self, by: Duration) {
        self.hooks().rewind_clock(by)
    }

    /// Stops the clock (`true`) or lets it run again.
    pub fn freeze_clock(&self, frozen: bool) {
        self.hooks().freeze_clock(frozen)
    }

    /// The simulator's clock, unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.shared.now_ms()
    }

    /// Replaces the fault specification.
    pub fn set_faults(&self, faults: FaultSpec) {
        self.hooks().set_faults(faults)
    }

    /// Calls of one operation by name (`sobject.create`, `query`, `oauth.token`; see
    /// [`crate::Op::name`]); every routed call counts, whatever its answer.
    pub fn calls(&self, operation: &str) -> u64 {
        self.hooks().calls(operation)
    }

    /// Subrequests of `operation` carried inside Composite calls (`POST /composite`); they are
    /// not API calls of their own ([`Self::calls`] counts the Composite call once).
    pub fn subrequests(&self, operation: &str) -> u64 {
        self.hooks().subrequests(operation)
    }

    /// Write calls (creates, updates, deletes, upserts, collections, Tooling creates) that came
    /// without `Sforce-Call-Options: client=…`, which Salesforce asks every integration to send.
    pub fn writes_without_call_options(&self) -> u64 {
        self.hooks().writes_without_client()
    }

    /// The most write calls (as [`Self::writes_without_call_options`] counts them) the
    /// simulator served at once: a client's concurrency as Salesforce would see it.
    pub fn max_writes_in_flight(&self) -> u64 {
        self.hooks().max_writes_in_flight()
    }
}
