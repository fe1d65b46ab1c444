//! Pipedrive connections: adding one (API token now; OAuth in `http::connect`), loading it as a
//! ready-to-call session with its field map, and moving it between states.

pub mod admin;
pub mod context;
pub mod fields;
pub mod route;
pub mod tokens;
pub mod webhooks;

use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use serde::Serialize;
use std::sync::Arc;
use tandem_core::{ConnectionId, ContactId, TenantId};
use tandem_core::{Direction, FieldKey, FieldRule, Side};
use tandem_webhooks::pipedrive::BasicCredentials;
use uuid::Uuid;

use crate::config::Redacted;
use crate::crm::limiter::documented_burst;
use crate::crm::{
    Auth, FieldMap, MappedField, NotificationTarget, RemoteField, Session, TokenKind,
};
use crate::store::connections::{self as stored, ConnectionRow};
use crate::store::{field_mappings, Conn};
use crate::sync::synclog::{self, Entry, Level};
use crate::sync::{Engine, SyncError};

pub use context::{kind, state, ConnectionCtx};

/// Name of the custom field that carries the local contact id.
pub const APID_FIELD_NAME: &str = "apId";

/// Loads a connection with its decrypted credentials and field map.
pub async fn load(engine: &Engine, id: ConnectionId) -> Result<ConnectionCtx, SyncError> {
    let db = &engine.store;
    let mut row = stored::get(db, id)
        .await?
        .ok_or(SyncError::ConnectionNotFound(id))?;
    // Refresh before expiry, so calls do not have to fail with a 401 first.
    if row.auth_kind == "oauth"
        && row.refresh_token_enc.is_some()
        && matches!(row.state.as_str(), state::CONNECTED | state::SYNCING)
        && tokens::expiring(row.token_expires_at, engine.now())
    {
        if let tokens::Refreshed::Yes { .. } =
            tokens::refresh_connection(engine, id, None, None).await?
        {
            row = stored::get(db, id)
                .await?
                .ok_or(SyncError::ConnectionNotFound(id))?;
        }
    }
    let token = match &row.access_token_enc {
        Some(sealed) => engine.vault.decrypt_string(sealed)?,
        None => String::new(),
    };
    let auth = if row.auth_kind == "oauth" {
        Auth::Bearer(Redacted::new(token))
    } else {
        Auth::ApiToken(Redacted::new(token))
    };
    let seed_burst = documented_burst(
        row.plan
            .as_deref()
            .unwrap_or(&engine.settings.pipedrive.plan),
        row.auth_kind == "oauth",
    );
    let mut map = FieldMap::defaults(row.apid_key_or_none());
    for mapping in field_mappings::of_connection(db, id).await? {
        let Ok(local) = FieldKey::new(&mapping.local_field) else {
            continue;
        };
        let direction = match mapping.direction.as_str() {
            "inbound" => Direction::Inbound,
            "outbound" => Direction::Outbound,
            _ => Direction::Bidirectional,
        };
        let owner = match mapping.owner.as_deref() {
            Some("local") => Some(Side::Local),
            Some("remote") => Some(Side::Remote),
            _ => None,
        };
        let organizations = engine.crm_of(&row.crm).has_organizations();
        let currency = mapping
            .currency
            .as_deref()
            .and_then(|c| tandem_core::CurrencyCode::parse(c).ok());
        let remote = match mapping.remote_field.as_str() {
            // A field of the person's organization (Pipedrive's organization, Salesforce's
            // Account).
            _ if mapping.entity == field_mappings::entity::ORGANIZATION => {
                RemoteField::OrganizationField {
                    key: mapping.remote_field.clone(),
                    field_type: mapping.remote_type.clone(),
                    currency,
                }
            }
            "name" => RemoteField::Name,
            "emails" | "email" => RemoteField::Emails,
            "phones" | "phone" => RemoteField::Phones,
            "owner_id" => RemoteField::OwnerId,
            "org_id" if organizations => RemoteField::Organization,
            key => RemoteField::Custom {
                key: key.to_owned(),
                field_type: mapping.remote_type.clone(),
                currency,
            },
        };
        map.fields.retain(|f| f.local != local);
        map.fields.push(MappedField {
            local,
            remote,
            rule: FieldRule { direction, owner },
        });
    }
    let crm = engine.crm_of(&row.crm).clone();
    if crm.has_organizations() {
        map = map.with_organization();
    } else if let Some(field) = crm.company_field() {
        map = map.with_company_field(field);
    }
    if crm.record_keys_unseeded(id) {
        crm.seed_record_keys(id, crate::store::record_keys::of_connection(db, id).await?);
    }
    let conn = ConnectionCtx {
        id,
        tenant: row.tenant.clone(),
        crm,
        state: row.state.clone(),
        paused: row.paused,
        session: Session {
            connection_id: id,
            api_domain: row.api_domain.clone(),
            auth,
            seed_burst,
        },
        map,
        default_owner: row.user_id,
        company_id: row.company_id,
    };
    save_record_keys(engine, &engine.store, &conn).await?;
    Ok(conn)
}

/// Checks a connection's API base (Pipedrive's `api_domain`, Salesforce's `instance_url`)
/// against the egress policy of its CRM: credentials are only ever sent to an allowed host.
pub fn check_api_domain(
    engine: &Engine,
    crm_kind: &str,
    url: &str,
) -> Result<(), crate::egress::EgressError> {
    match crm_kind {
        kind::SALESFORCE | kind::SALESFORCE_SANDBOX => {
            crate::egress::check_salesforce_url(&engine.settings, url)
        }
        _ => crate::egress::check_crm_url(&engine.settings, url),
    }
}

/// A CRM error as the sync log shows it: the CRM's message verbatim, with its error code.
pub fn verbatim(error: &tandem_core::CrmError) -> String {
    match &error.code {
        Some(code) if !error.message.contains(code.as_str()) => {
            format!("{code}: {}", error.message)
        }
        _ => error.message.clone(),
    }
}

/// Stores the record keys the connection's connector learned since the last call (the CRM's
/// own ids behind the boundary's `i64`s, ADR 0013), so that links keep reaching their records
/// after a restart. Called in the transactions that store links, and after each job.
pub async fn save_record_keys(
    engine: &Engine,
    db: &impl Conn,
    conn: &ConnectionCtx,
) -> Result<(), SyncError> {
    let keys = conn.crm.take_new_record_keys(conn.id);
    remember_record_keys(engine, db, conn, &keys).await
}

/// Stores `keys` (taken with `Crm::take_new_record_keys`); storing them twice is harmless.
pub async fn remember_record_keys(
    engine: &Engine,
    db: &impl Conn,
    conn: &ConnectionCtx,
    keys: &[(i64, String)],
) -> Result<(), SyncError> {
    if !keys.is_empty() {
        crate::store::record_keys::remember(db, conn.id, keys, engine.now()).await?;
    }
    Ok(())
}

/// A transaction that stores `keys` (taken with `Crm::take_new_record_keys`) first: the records
/// they name are stored in it. Should it fail, [`keep_record_keys`].
pub async fn begin_with_keys(
    engine: &Engine,
    conn: &ConnectionCtx,
    keys: &[(i64, String)],
) -> Result<crate::store::Tx, SyncError> {
    let txn = engine.store.begin().await?;
    remember_record_keys(engine, &txn, conn, keys).await?;
    Ok(txn)
}

/// Stores `keys` that a failed transaction was to store, on their own: taken from the
/// connector, they would otherwise be lost with it. A failure here is logged (the keys stay
/// known to this process until it stops).
pub async fn keep_record_keys(engine: &Engine, conn: &ConnectionCtx, keys: &[(i64, String)]) {
    if let Err(error) = remember_record_keys(engine, &engine.store, conn, keys).await {
        tracing::error!(connection_id = %conn.id, keys = keys.len(), error = %error, "Storing record keys after a failed transaction failed.");
    }
}

trait ApidKey {
    fn apid_key_or_none(&self) -> Option<String>;
}

impl ApidKey for ConnectionRow {
    fn apid_key_or_none(&self) -> Option<String> {
        self.apid_field_key.clone().filter(|k| !k.is_empty())
    }
}

/// The oldest active connection of `tenant`, if any (what a request that names no connection
/// and concerns no linked contact goes to).
pub async fn active_id(
    db: &impl crate::store::Conn,
    tenant: &TenantId,
) -> Result<Option<ConnectionId>, SyncError> {
    Ok(crate::store::connections::oldest_not_in(db, tenant, state::DISCONNECTED).await?)
}

/// The connections of `tenant` new app contacts in its CRM list are created in, oldest first:
/// every one not disconnected, except a second company connected alongside another in the
/// same tenant.
pub async fn list_receivers(
    db: &impl crate::store::Conn,
    tenant: &TenantId,
) -> Result<Vec<ConnectionId>, SyncError> {
    Ok(crate::store::connections::list_receivers(db, tenant).await?)
}

pub async fn set_paused(
    db: &impl Conn,
    id: ConnectionId,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    stored::set_paused(db, id, paused, now).await?;
    if !paused {
        queue_unlinked_list_members(db, id, now).await?;
    }
    Ok(())
}

/// Queues a push (a create, deduplicated by apId and e-mail as every create is) for each
/// member of the "Pipedrive contacts" list that has no person in this connection, no push
/// queued and no dead letter: contacts added to the list before the connection existed, while
/// it was disconnected, or before a company reset. Called on connect and on resume; returns
/// how many were queued (none for a connection the list does not reach).
pub async fn queue_unlinked_list_members(
    db: &impl Conn,
    id: ConnectionId,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    use crate::queue::{self, JobPayload, Priority};
    use crate::sync::{app::contacts, links};
    use std::collections::HashSet;

    const PAGE: u64 = 500;
    let Some(tenant) = stored::get(db, id)
        .await?
        .filter(|c| c.receives_list)
        .map(|c| c.tenant)
    else {
        return Ok(0);
    };
    let mut queued = 0;
    let mut after = None;
    loop {
        let (members, more) =
            contacts::list_members(db, &tenant, contacts::PIPEDRIVE_LIST, after, PAGE).await?;
        let ids: Vec<ContactId> = members.iter().map(|(contact, _)| *contact).collect();
        after = ids.last().copied();
        // Jobs before links: a push links its contact before its job ends, so a job that ends
        // between the two reads is seen as a link (read in the other order, the contact would
        // look unlinked and unqueued, and be queued a second time).
        let keys: Vec<String> = ids.iter().map(ContactId::to_string).collect();
        let has_job = crate::store::queue::keys_with_jobs(db, id, &keys).await?;
        let linked = links::persons_of_contacts(db, id, &ids).await?;
        let live: HashSet<ContactId> = contacts::heads(db, &ids)
            .await?
            .into_iter()
            .filter(|c| !c.archived)
            .map(|c| c.id)
            .collect();
        for (contact, key) in ids.iter().zip(&keys) {
            if linked.contains_key(contact) || !live.contains(contact) || has_job.contains(key) {
                continue;
            }
            queue::enqueue(
                db,
                id,
                key,
                Priority::Edit,
                &JobPayload::PushContact {
                    contact_id: (*contact),
                },
                now,
            )
            .await?;
            queued += 1;
        }
        if !more || ids.is_empty() {
            break;
        }
    }
    if queued > 0 {
        tracing::info!(connection_id = %id, queued, "Queued the list members not yet in Pipedrive.");
    }
    Ok(queued)
}

/// What a new connection needs besides its credentials.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub api_domain: String,
    pub auth_kind: &'static str,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub id: ConnectionId,
    pub company_id: Option<i64>,
    pub user_id: i64,
    pub webhooks_registered: usize,
    pub apid_field_key: String,
}

/// Adds (or re-adds, for the same company) a connection: checks the credentials with
/// `users/me`, makes sure the `apId` field exists, registers webhooks, and stores it all.
/// Refuses a different company than the one already connected (see [`connect_with`]).
pub async fn connect(engine: &Engine, new: NewConnection) -> Result<Connected, SyncError> {
    connect_with(engine, new, false).await
}

/// As [`connect`]; with `confirm_reset`, a connection to a *different* Pipedrive company
/// replaces the old one: the old company's links, queued writes, cursors and mappings are
/// dropped (local contacts stay), then the new company is connected from scratch.
pub async fn connect_with(
    engine: &Engine,
    new: NewConnection,
    confirm_reset: bool,
) -> Result<Connected, SyncError> {
    let others = if confirm_reset {
        OtherCompanies::Reset
    } else {
        OtherCompanies::Refuse
    };
    connect_pipedrive(engine, new, others, &TenantId::default()).await
}

/// As [`connect`], for the tenant `tenant` and keeping the connections to other Pipedrive
/// companies: one database serving many companies (issue 24), each connection with its own
/// tokens, limiter, cursors, webhooks and links, and each company the CRM of one tenant (the
/// app's account, ADR 26): its persons meet only that tenant's contacts. The first company of
/// a tenant receives the tenant's CRM list (`receives_list`); a second company connected
/// alongside it in the same tenant does not (the list would reach both). A company already
/// connected for another tenant is refused (422 `validation_failed` on `tenant`).
pub async fn connect_alongside(
    engine: &Engine,
    new: NewConnection,
    tenant: &TenantId,
) -> Result<Connected, SyncError> {
    connect_pipedrive(engine, new, OtherCompanies::Keep, tenant).await
}

/// Connects a Pipedrive company for `tenant`, as the console, the admin API and the CLI do:
/// the default tenant's one company as [`connect_with`] (a second one is refused, or replaces
/// the first with `confirm_reset`); a named tenant's company alongside the others, as
/// [`connect_alongside`] (`confirm_reset` has nothing to reset there).
pub async fn connect_for(
    engine: &Engine,
    new: NewConnection,
    confirm_reset: bool,
    tenant: &TenantId,
) -> Result<Connected, SyncError> {
    if tenant.is_default() {
        connect_with(engine, new, confirm_reset).await
    } else {
        connect_alongside(engine, new, tenant).await
    }
}

/// A company (a Salesforce org) is the CRM of one tenant: its persons cannot be two tenants'
/// contacts. Refuses connecting `what`, already connected as `existing`, for another tenant.
fn serves_one_tenant(
    existing: Option<&ConnectionRow>,
    tenant: &TenantId,
    what: &str,
) -> Result<(), SyncError> {
    match existing.filter(|c| c.tenant != *tenant) {
        Some(other) => Err(SyncError::Validation {
            field: "tenant".to_owned(),
            message: format!(
                "{what} is already connected for another tenant (connection {}); a company serves one tenant",
                other.id
            ),
        }),
        None => Ok(()),
    }
}

/// What connecting a Pipedrive company does with connections to other companies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OtherCompanies {
    Refuse,
    Reset,
    Keep,
}

async fn connect_pipedrive(
    engine: &Engine,
    new: NewConnection,
    policy: OtherCompanies,
    tenant: &TenantId,
) -> Result<Connected, SyncError> {
    let now = engine.now();
    let db = &engine.store;
    // Credentials are only ever sent to an allowed Pipedrive host (egress policy).
    crate::egress::check_crm_url(&engine.settings, &new.api_domain).map_err(|e| {
        SyncError::Validation {
            field: "api_domain".to_owned(),
            message: e.to_string(),
        }
    })?;
    let id = ConnectionId::new(Uuid::now_v7());
    let auth = if new.auth_kind == "oauth" {
        Auth::Bearer(Redacted::new(new.access_token.clone()))
    } else {
        Auth::ApiToken(Redacted::new(new.access_token.clone()))
    };
    let session = Session {
        connection_id: id,
        api_domain: new.api_domain.clone(),
        auth,
        seed_burst: documented_burst(&engine.settings.pipedrive.plan, new.auth_kind == "oauth"),
    };
    let me = engine.crm.whoami(&session).await?;

    // A different company than the one tandem syncs: refuse unless the admin confirmed a reset.
    let mut others = stored::of_other_companies(db, me.company_id).await?;
    // Other CRMs' connections (Salesforce) are not "another company", nor are other tenants'.
    let tenant_has_pipedrive = others
        .iter()
        .any(|c| c.crm == kind::PIPEDRIVE && c.tenant == *tenant && c.state != state::DISCONNECTED);
    others.retain(|c| {
        c.crm == kind::PIPEDRIVE && c.tenant == *tenant && policy != OtherCompanies::Keep
    });
    let confirm_reset = policy == OtherCompanies::Reset;
    if let Some(other) = others.first() {
        if !confirm_reset {
            synclog::record(
                db,
                Entry::new(
                    Level::Warn,
                    synclog::Direction::Connection,
                    "company_changed",
                    format!(
                        "Company changed: you signed in to Pipedrive company {}, but tandem is connected to company {}. The connection was refused.",
                        fmt_company(me.company_id),
                        fmt_company(other.company_id)
                    ),
                )
                .connection(other.id)
                .hint("Sign in with the original Pipedrive company, or reconnect confirming a reset (links to the old company's persons are dropped; contacts stay)."),
                now,
            )
            .await?;
            return Err(SyncError::CompanyChanged {
                connected: other.company_id,
                offered: me.company_id,
            });
        }
        for other in &others {
            reset(engine, other.id, me.company_id).await?;
        }
    }

    // Reconnecting the same company reuses the old connection (and its links): no duplicates.
    let existing = stored::of_company(db, me.company_id)
        .await?
        .into_iter()
        .find(|c| c.crm == kind::PIPEDRIVE);
    serves_one_tenant(
        existing.as_ref(),
        tenant,
        &format!("Pipedrive company {}", fmt_company(me.company_id)),
    )?;
    let id = existing.as_ref().map_or(id, |c| c.id);
    let session = Session {
        connection_id: id,
        ..session
    };

    let apid_field_key = ensure_apid_field(&engine.crm, &session).await?;
    // A reconnect keeps the webhook credentials Pipedrive already has (its webhooks stay valid
    // across restarts); a first connect, or a stored password that no key opens, gets new ones.
    let kept = existing.as_ref().and_then(|c| {
        let user = c.webhook_user.clone()?;
        let password = engine
            .vault
            .decrypt_string(c.webhook_password_enc.as_deref()?)
            .ok()?;
        Some((user, password))
    });
    let (webhook_user, webhook_password) = kept.unwrap_or_else(|| {
        (
            format!("tandem-{}", &id.uuid().simple().to_string()[..12]),
            Alphanumeric.sample_string(&mut rand::thread_rng(), 32),
        )
    });

    let sealed = engine.vault.encrypt_str(&new.access_token);
    let sealed_refresh = new
        .refresh_token
        .as_deref()
        .map(|t| engine.vault.encrypt_str(t));
    let sealed_password = engine.vault.encrypt_str(&webhook_password);
    let row = ConnectionRow {
        id,
        crm: "pipedrive".into(),
        name: me
            .name
            .clone()
            .map_or_else(|| "Pipedrive".to_owned(), |n| format!("Pipedrive ({n})")),
        state: state::CONNECTED.into(),
        auth_kind: new.auth_kind.into(),
        api_domain: new.api_domain.clone(),
        company_id: me.company_id,
        user_id: Some(me.id),
        plan: Some(engine.settings.pipedrive.plan.clone()),
        access_token_enc: Some(sealed),
        refresh_token_enc: sealed_refresh,
        token_expires_at: new.token_expires_at,
        webhook_user: Some(webhook_user.clone()),
        webhook_password_enc: Some(sealed_password),
        apid_field_key: Some(apid_field_key.clone()),
        paused: false,
        // A reconnect keeps it; a second company connected alongside another of the same
        // tenant does not get the tenant's list (the first one does).
        receives_list: existing.as_ref().map_or(
            policy != OtherCompanies::Keep || !tenant_has_pipedrive,
            |c| c.receives_list,
        ),
        tenant: tenant.clone(),
        last_success_at: Some(now),
        last_error: None,
        created_at: existing.as_ref().map_or(now, |c| c.created_at),
        updated_at: now,
    };
    stored::save(db, row, existing.is_some()).await?;
    // Contacts put in the list while there was no (working) connection reach Pipedrive now
    // (not a company connected alongside others: `receives_list` is off).
    let list_members_queued = queue_unlinked_list_members(db, id, now).await?;
    engine.webhook_auth.forget(id);
    engine.replica.forget();

    let webhooks_registered = if engine.settings.pipedrive.register_webhooks {
        register_webhooks(
            engine,
            &engine.crm,
            &session,
            &webhook_user,
            &webhook_password,
        )
        .await?
    } else {
        0
    };
    synclog::record(
        db,
        Entry::new(Level::Info, synclog::Direction::Connection, "connected", "Pipedrive connected.")
            .connection(id)
            .detail(serde_json::json!({ "company_id": me.company_id, "user_id": me.id, "webhooks": webhooks_registered, "list_members_queued": list_members_queued })),
        now,
    )
    .await?;
    tracing::info!(connection_id = %id, "Pipedrive connection added.");
    Ok(Connected {
        id,
        company_id: me.company_id,
        user_id: me.id,
        webhooks_registered,
        apid_field_key,
    })
}

/// Connects (or reconnects) a Salesforce org with the tokens of the OAuth web-server flow:
/// production or, with `sandbox`, the sandbox login host, each a connection of its own. Checks
/// the user and its API access (`userinfo`, `describe`), makes sure the external-id field
/// exists (creating it through the Tooling API when the user may), and stores the tokens
/// encrypted with the token answer's `instance_url`. Reconnecting the same org reuses its
/// connection, links and cursors: nothing is duplicated. Failures are worded as Salesforce's
/// troubleshooting guide words them.
pub async fn connect_salesforce(
    engine: &Engine,
    new: NewConnection,
    sandbox: bool,
    tenant: &TenantId,
) -> Result<Connected, SyncError> {
    let now = engine.now();
    let db = &engine.store;
    let crm_kind = if sandbox {
        kind::SALESFORCE_SANDBOX
    } else {
        kind::SALESFORCE
    };
    let crm = engine.crm_of(crm_kind).clone();
    check_api_domain(engine, crm_kind, &new.api_domain).map_err(|e| SyncError::Validation {
        field: "instance_url".to_owned(),
        message: e.to_string(),
    })?;
    let session_for = |id| Session {
        connection_id: id,
        api_domain: new.api_domain.clone(),
        auth: Auth::Bearer(Redacted::new(new.access_token.clone())),
        seed_burst: 100,
    };
    // Who signed in, in which org: the org picks the connection (a reconnect reuses it).
    let me = crm
        .whoami(&session_for(ConnectionId::new(Uuid::now_v7())))
        .await
        .map_err(connect_refused)?;
    let existing = stored::of_company(db, me.company_id)
        .await?
        .into_iter()
        .find(|c| c.crm == crm_kind);
    serves_one_tenant(
        existing.as_ref(),
        tenant,
        if sandbox {
            "This Salesforce sandbox"
        } else {
            "This Salesforce org"
        },
    )?;
    let id = existing
        .as_ref()
        .map_or_else(|| ConnectionId::new(Uuid::now_v7()), |c| c.id);
    let session = session_for(id);
    // Again under the connection's own id, so its registry knows the user (the default owner).
    let me = crm.whoami(&session).await.map_err(connect_refused)?;
    crm.check_write_access(&session)
        .await
        .map_err(connect_refused)?;
    let apid_field_key = match ensure_apid_field(&crm, &session).await {
        Ok(key) => Some(key),
        Err(SyncError::Crm(error))
            if error.retry == tandem_core::ErrorClass::PauseConnection
                || error.kind == tandem_core::CrmErrorKind::Forbidden =>
        {
            if error.code.as_deref() == Some("API_DISABLED_FOR_ORG") {
                return Err(connect_refused(error));
            }
            let (name, _) = crm.external_id_field();
            synclog::record(
                db,
                Entry::new(
                    Level::Warn,
                    synclog::Direction::Connection,
                    "external_id_field_missing",
                    format!("tandem could not create its external-id field {name} on Lead and Contact."),
                )
                .connection(id)
                .status(error.status)
                .remote_error(verbatim(&error))
                .hint(format!("The connecting user needs Customize Application to create custom fields. Grant it and reconnect, or create {name} by hand on Lead and Contact (Setup -> Object Manager -> Fields & Relationships -> New: Text(255), External ID, Unique) and give the connecting user's profile Edit access to it.")),
                now,
            )
            .await?;
            None
        }
        Err(error) => return Err(error),
    };
    let display = if sandbox {
        "Salesforce sandbox"
    } else {
        "Salesforce"
    };
    let row = ConnectionRow {
        id,
        crm: crm_kind.into(),
        name: me
            .name
            .clone()
            .map_or_else(|| display.to_owned(), |n| format!("{display} ({n})")),
        state: state::CONNECTED.into(),
        auth_kind: "oauth".into(),
        api_domain: new.api_domain.clone(),
        company_id: me.company_id,
        user_id: Some(me.id),
        plan: None,
        access_token_enc: Some(engine.vault.encrypt_str(&new.access_token)),
        refresh_token_enc: new
            .refresh_token
            .as_deref()
            .map(|t| engine.vault.encrypt_str(t)),
        token_expires_at: new.token_expires_at.or_else(|| {
            crm.assumed_token_lifetime_secs()
                .map(|secs| now + chrono::Duration::seconds(secs))
        }),
        webhook_user: None,
        webhook_password_enc: None,
        apid_field_key: apid_field_key.clone(),
        paused: false,
        receives_list: existing.as_ref().is_none_or(|c| c.receives_list),
        tenant: tenant.clone(),
        last_success_at: Some(now),
        last_error: None,
        created_at: existing.as_ref().map_or(now, |c| c.created_at),
        updated_at: now,
    };
    stored::save(db, row, existing.is_some()).await?;
    let conn = load(engine, id).await?;
    save_record_keys(engine, db, &conn).await?;
    let list_members_queued = queue_unlinked_list_members(db, id, now).await?;
    // The replica's next round takes the new connection at once, as after a Pipedrive
    // connect: its pushes and change polls run only where it is owned, and would otherwise
    // wait for the next ownership round (up to a third of the lease, 5 s by default).
    engine.replica.forget();
    synclog::record(
        db,
        Entry::new(
            Level::Info,
            synclog::Direction::Connection,
            "connected",
            format!(
                "{display} {}.",
                if existing.is_some() {
                    "reconnected"
                } else {
                    "connected"
                }
            ),
        )
        .connection(id)
        .detail(serde_json::json!({
            "instance_url": new.api_domain,
            "sandbox": sandbox,
            "list_members_queued": list_members_queued,
        })),
        now,
    )
    .await?;
    tracing::info!(connection_id = %id, sandbox, "Salesforce connection added.");
    Ok(Connected {
        id,
        company_id: me.company_id,
        user_id: me.id,
        webhooks_registered: 0,
        apid_field_key: apid_field_key.unwrap_or_default(),
    })
}

/// A refused Salesforce connect, in the troubleshooting guide's words.
fn connect_refused(error: tandem_core::CrmError) -> SyncError {
    let code = error.code.clone().unwrap_or_default();
    let text = verbatim(&error);
    match code.as_str() {
        "API_DISABLED_FOR_ORG" => SyncError::AdminRequired(format!(
            "User not authorised: the Salesforce user has no API access ({text}). Grant API Enabled (Profile -> Administrative Permissions -> API Enabled) and reconnect."
        )),
        "INSUFFICIENT_ACCESS_OR_READONLY" => SyncError::AdminRequired(format!(
            "insufficient_access_or_readonly: the user's profile lacks Modify All Data ({text}). Grant it, or reconnect with a System Administrator."
        )),
        "INVALID_SESSION_ID" | "invalid_grant" | "Bad_OAuth_Token" => {
            SyncError::AdminRequired(format!(
                "Session expired or invalid ({text}). Sign in to Salesforce fresh and retry."
            ))
        }
        _ => SyncError::Crm(error),
    }
}

fn fmt_company(id: Option<i64>) -> String {
    id.map_or_else(|| "(unknown)".to_owned(), |id| id.to_string())
}

/// Drops a connection to a company tandem no longer syncs: its links, queued writes, cursors
/// and mappings go with the row (foreign keys cascade); local contacts and the sync log stay.
async fn reset(
    engine: &Engine,
    id: ConnectionId,
    new_company: Option<i64>,
) -> Result<(), SyncError> {
    let db = &engine.store;
    let now = engine.now();
    let old = stored::get(db, id).await?;
    stored::delete(db, id).await?;
    synclog::record(
        db,
        Entry::new(
            Level::Warn,
            synclog::Direction::Connection,
            "company_reset",
            format!(
                "The admin confirmed a reset: the connection to Pipedrive company {} was removed with its links; company {} is connected instead.",
                fmt_company(old.and_then(|o| o.company_id)),
                fmt_company(new_company)
            ),
        )
        .connection(id),
        now,
    )
    .await?;
    tracing::warn!(connection_id = %id, "A connection was reset for a different Pipedrive company.");
    Ok(())
}

/// What disconnecting did.
#[derive(Debug, Clone, Serialize)]
pub struct Disconnected {
    pub id: ConnectionId,
    pub webhooks_removed: usize,
    pub token_revoked: bool,
    /// Problems met on the way (Pipedrive's text); the connection is disconnected regardless.
    pub warnings: Vec<String>,
}

/// Disconnects: removes tandem's webhooks at Pipedrive, revokes the OAuth token, forgets the
/// credentials and stops syncing. Contacts, links, mappings and queued writes stay, so
/// reconnecting the same company later picks up where it stopped, without duplicates.
pub async fn disconnect(engine: &Engine, id: ConnectionId) -> Result<Disconnected, SyncError> {
    let db = &engine.store;
    let row = stored::get(db, id)
        .await?
        .ok_or(SyncError::ConnectionNotFound(id))?;
    let mut result = Disconnected {
        id,
        webhooks_removed: 0,
        token_revoked: false,
        warnings: Vec::new(),
    };
    if row.state == state::DISCONNECTED {
        return Ok(result);
    }
    let has_token = row.access_token_enc.is_some();
    if has_token {
        let conn = load(engine, id).await?;
        match remove_webhooks(engine, &conn.crm, &conn.session).await {
            Ok(n) => result.webhooks_removed = n,
            Err(e) => result
                .warnings
                .push(format!("removing webhooks failed: {e}")),
        }
    }
    // Revoke the refresh token (which revokes its access tokens); else the access token.
    let sealed = if row.auth_kind == "oauth" {
        row.refresh_token_enc
            .as_ref()
            .map(|s| (s, TokenKind::Refresh))
            .or_else(|| {
                row.access_token_enc
                    .as_ref()
                    .map(|s| (s, TokenKind::Access))
            })
    } else {
        None
    };
    if let Some((sealed, hint)) = sealed {
        let token = engine.vault.decrypt_string(sealed)?;
        match engine.crm_of(&row.crm).revoke_token(&token, hint).await {
            Ok(()) => result.token_revoked = true,
            Err(e) => result
                .warnings
                .push(format!("revoking the token failed: {e}")),
        }
    }
    let now = engine.now();
    stored::drop_tokens(db, id, state::DISCONNECTED, None, now).await?;
    engine.webhook_auth.forget(id);
    engine.replica.forget();
    let crm = engine.crm_of(&row.crm);
    let mut entry = Entry::new(
        Level::Info,
        synclog::Direction::Connection,
        "disconnected",
        format!(
            "{} disconnected: {} webhook(s) removed, token {}. Contacts and links are kept.",
            crm.display_name(),
            result.webhooks_removed,
            if result.token_revoked {
                "revoked"
            } else {
                "not revoked"
            }
        ),
    )
    .connection(id)
    .detail(serde_json::json!({ "warnings": result.warnings }));
    if !result.warnings.is_empty() {
        entry = entry.hint(if crm.pushes_changes() {
            "Check Pipedrive's Settings → Marketplace apps / Webhooks for leftovers."
        } else {
            "To remove tandem on Salesforce's side too: Setup -> Connected Apps OAuth Usage -> tandem -> Revoke."
        });
    }
    synclog::record(db, entry, now).await?;
    tracing::info!(connection_id = %id, "Pipedrive connection disconnected.");
    Ok(result)
}

/// Pipedrive's uninstall callback: the app was removed for `company_id`; its tokens are dead.
pub async fn app_removed(
    engine: &Engine,
    company_id: i64,
) -> Result<Option<ConnectionId>, SyncError> {
    let db = &engine.store;
    let Some(row) = stored::of_company_not_in(db, company_id, state::DISCONNECTED).await? else {
        return Ok(None);
    };
    let id = row.id;
    let now = engine.now();
    stored::drop_tokens(
        db,
        id,
        state::APP_REMOVED,
        Some("The app was uninstalled in Pipedrive."),
        now,
    )
    .await?;
    engine.webhook_auth.forget(id);
    engine.replica.forget();
    synclog::record(
        db,
        Entry::new(
            Level::Error,
            synclog::Direction::Connection,
            "app_removed",
            "tandem was uninstalled in Pipedrive (Marketplace apps); syncing stopped.",
        )
        .connection(id)
        .hint("Click Reconnect to install the app again; contacts and links are kept."),
        now,
    )
    .await?;
    tracing::error!(connection_id = %id, "The Pipedrive app was uninstalled; the connection stopped.");
    Ok(Some(id))
}

/// Finds the CRM's apId field (Pipedrive's `apId`, Salesforce's external-id field), creating
/// it if missing.
pub async fn ensure_apid_field(
    crm: &crate::crm::Crm,
    session: &Session,
) -> Result<String, SyncError> {
    let (name, field_type) = crm.external_id_field();
    let fields = crm.field_catalog(session).await?;
    if let Some(field) = fields
        .iter()
        .find(|f| f.name == name || f.key.eq_ignore_ascii_case(name))
    {
        return Ok(field.key.clone());
    }
    Ok(crm.create_field(session, name, field_type).await?.key)
}

pub(crate) fn webhook_url(engine: &Engine, connection: ConnectionId) -> String {
    format!("{}/webhooks/pipedrive/{connection}", engine.public_url)
}

/// Registers (or repairs) tandem's change notifications (Pipedrive: person, deal and activity
/// webhooks) and, when the connection's live mirror is on, the mirror's (organization,
/// product, lead, note; ADR 15); returns how many were created. One whose credentials differ
/// from the stored ones (left over from an earlier connect) is replaced, so the CRM and tandem
/// always agree. The connect (and so a reconnect) and the reconciliation both come here.
pub async fn register_webhooks(
    engine: &Engine,
    crm: &crate::crm::Crm,
    session: &Session,
    user: &str,
    password: &str,
) -> Result<usize, SyncError> {
    let url = webhook_url(engine, session.connection_id);
    let target = NotificationTarget {
        url: &url,
        user,
        password,
    };
    let mut created = crm.register_notifications(session, target).await?;
    if crate::store::mirror::mirror_enabled(&engine.store, session.connection_id).await? {
        created += crm.register_mirror_notifications(session, target).await?;
    }
    Ok(created)
}

/// Removes tandem's change notifications at the CRM.
pub async fn remove_webhooks(
    engine: &Engine,
    crm: &crate::crm::Crm,
    session: &Session,
) -> Result<usize, SyncError> {
    let url = webhook_url(engine, session.connection_id);
    Ok(crm.remove_notifications(session, &url).await?)
}

/// The Basic credentials Pipedrive must send to this connection's webhook endpoint.
pub async fn webhook_credentials(
    engine: &Engine,
    db: &impl Conn,
    id: ConnectionId,
) -> Result<Option<(String, String)>, SyncError> {
    let Some(row) = stored::get(db, id).await? else {
        return Ok(None);
    };
    match (row.webhook_user, row.webhook_password_enc) {
        (Some(user), Some(sealed)) => Ok(Some((user, engine.vault.decrypt_string(&sealed)?))),
        _ => Ok(None),
    }
}

/// The credentials the webhook receiver accepts for a connection: none for an unknown or a
/// disconnected (or uninstalled) connection, whose deliveries are refused and never stored.
pub async fn accepted_webhook_credentials(
    engine: &Engine,
    db: &impl Conn,
    id: ConnectionId,
) -> Result<Option<(String, String)>, SyncError> {
    let Some(row) = stored::get(db, id).await? else {
        return Ok(None);
    };
    if matches!(row.state.as_str(), state::DISCONNECTED | state::APP_REMOVED) {
        return Ok(None);
    }
    match (row.webhook_user, row.webhook_password_enc) {
        (Some(user), Some(sealed)) => Ok(Some((user, engine.vault.decrypt_string(&sealed)?))),
        _ => Ok(None),
    }
}

/// The receiver's view of [`accepted_webhook_credentials`], cached per process. Every change
/// made here (connect, reconnect, disconnect, uninstall) forgets the entry; an entry is also
/// re-read after [`WEBHOOK_AUTH_TTL`] and whenever presented credentials do not match it, so a
/// change made by another tandem process on the same database is followed too.
#[derive(Clone, Default)]
pub struct WebhookAuthCache {
    entries: std::sync::Arc<dashmap::DashMap<ConnectionId, CachedCredentials>>,
}

type CachedCredentials = (Option<Arc<BasicCredentials>>, std::time::Instant);

/// How long a cached entry is trusted before the store is read again.
pub const WEBHOOK_AUTH_TTL: std::time::Duration = std::time::Duration::from_secs(60);

impl WebhookAuthCache {
    /// Drops what is cached for `id` (its credentials or its state changed).
    pub fn forget(&self, id: ConnectionId) {
        self.entries.remove(&id);
    }

    /// The accepted credentials of `id`: cached unless `fresh`, else read from the store.
    pub async fn get(
        &self,
        engine: &Engine,
        id: ConnectionId,
        fresh: bool,
    ) -> Result<Option<Arc<BasicCredentials>>, SyncError> {
        if !fresh {
            if let Some(entry) = self.entries.get(&id) {
                if entry.1.elapsed() < WEBHOOK_AUTH_TTL {
                    return Ok(entry.0.clone());
                }
            }
        }
        let found = accepted_webhook_credentials(engine, &engine.store, id)
            .await?
            .map(|(user, password)| Arc::new(BasicCredentials { user, password }));
        // Only real credentials are kept: unknown ids (anyone can invent them) fill no memory.
        match &found {
            Some(credentials) => {
                self.entries.insert(
                    id,
                    (Some(Arc::clone(credentials)), std::time::Instant::now()),
                );
            }
            None => self.forget(id),
        }
        Ok(found)
    }
}
