//! Token lifecycle: OAuth access tokens are refreshed with the stored refresh token before
//! they expire (when a connection is loaded within five minutes of expiry) and after a 401.
//! Every refresh stores the `api_domain` Pipedrive answers with, so a company moved to another
//! data centre keeps syncing; the move is written to the sync log as an "api_domain mismatch".
//! API-token connections cannot be refreshed: a 401 means the token was revoked, and the
//! connection goes to "Token expired" until it is reconnected.

use std::sync::LazyLock;
use tandem_core::ConnectionId;

use chrono::{DateTime, Utc};
use tandem_core::{CrmError, CrmErrorKind};

use super::context::{state, ConnectionCtx};
use crate::store;
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};

/// Refresh this long before the access token expires.
pub const REFRESH_MARGIN_SECS: i64 = 300;

/// One refresh at a time per process: concurrent 401s on one connection refresh once.
static REFRESH_LOCK: LazyLock<tokio::sync::Mutex<()>> =
    LazyLock::new(|| tokio::sync::Mutex::new(()));

/// What a refresh attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// New tokens are stored.
    Yes { api_domain_moved: bool },
    /// Another task refreshed the token in the meantime; the stored one is newer.
    AlreadyNewer,
    /// Not an OAuth connection, or no refresh token stored.
    NotRefreshable,
    /// Pipedrive refused the refresh (its message, verbatim).
    Refused {
        status: Option<u16>,
        message: String,
    },
}

/// Tries to refresh the connection's token after a 401; returns whether it now has a working
/// one. A failure is recorded in the sync log; the caller moves the connection's state.
pub async fn refresh(engine: &Engine, conn: &ConnectionCtx) -> bool {
    let used = match &conn.session.auth {
        crate::crm::Auth::Bearer(t) => Some(t.expose().clone()),
        crate::crm::Auth::ApiToken(_) => None,
    };
    match refresh_connection(
        engine,
        conn.id,
        used.as_deref(),
        Some(&conn.session.api_domain),
    )
    .await
    {
        Ok(Refreshed::Yes { .. } | Refreshed::AlreadyNewer) => true,
        Ok(Refreshed::NotRefreshable | Refreshed::Refused { .. }) => false,
        Err(error) => {
            tracing::error!(connection_id = %conn.id, error = %error, "Refreshing the Pipedrive token failed inside tandem.");
            false
        }
    }
}

/// Whether a stored OAuth token is close enough to expiry to refresh it before use.
pub fn expiring(row_expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    row_expires_at.is_some_and(|at| at - now <= chrono::Duration::seconds(REFRESH_MARGIN_SECS))
}

/// Refreshes the connection's OAuth token with its stored refresh token.
///
/// `used_token` is the access token the caller saw fail (if any): when the stored token differs,
/// another task refreshed already and nothing is done. `used_domain` is the `api_domain` the
/// failed request went to, for the mismatch entry.
pub async fn refresh_connection(
    engine: &Engine,
    id: ConnectionId,
    used_token: Option<&str>,
    used_domain: Option<&str>,
) -> Result<Refreshed, SyncError> {
    let _guard = REFRESH_LOCK.lock().await;
    let db = &engine.store;
    let row = store::connections::get(db, id)
        .await?
        .ok_or(SyncError::ConnectionNotFound(id))?;
    if row.auth_kind != "oauth" {
        return Ok(Refreshed::NotRefreshable);
    }
    let Some(sealed_refresh) = &row.refresh_token_enc else {
        return Ok(Refreshed::NotRefreshable);
    };
    if let (Some(used), Some(sealed)) = (used_token, &row.access_token_enc) {
        if engine.vault.decrypt_string(sealed)? != used {
            return Ok(Refreshed::AlreadyNewer);
        }
    }
    let refresh_token = engine.vault.decrypt_string(sealed_refresh)?;
    let crm = engine.crm_of(&row.crm);
    let crm_name = crm.display_name();
    let answer = crm.refresh_token(&refresh_token).await;
    let now = engine.now();
    let tokens = match answer {
        Ok(tokens) => tokens,
        Err(error) => {
            tracing::error!(connection_id = %id, crm = crm_name, status = ?error.status, error = %error, "The CRM refused to refresh the token.");
            let hint = if crm.pushes_changes() {
                "Reconnect Pipedrive from the connection card (the app may have been removed, or the refresh token expired after 60 days unused)."
            } else {
                "Click Reconnect on the Salesforce card: the refresh token was revoked (tandem was removed from Connected Apps OAuth Usage, or a session policy rotated tokens). Reconnecting as the same Salesforce user resumes without duplicates."
            };
            synclog::record(
                db,
                Entry::new(
                    Level::Error,
                    Direction::Connection,
                    "token_refresh_failed",
                    format!("{crm_name} refused to refresh the access token."),
                )
                .connection(id)
                .status(error.status)
                .remote_error(error.message.clone())
                .hint(hint),
                now,
            )
            .await?;
            return Ok(Refreshed::Refused {
                status: error.status,
                message: error.message,
            });
        }
    };
    let old_domain = row.api_domain.clone();
    let new_domain = tokens.api_domain.clone();
    let changed = !new_domain.is_empty() && new_domain != old_domain.trim_end_matches('/');
    // The token endpoint's answer is followed only to an allowed Pipedrive host: a token is
    // never sent elsewhere (egress policy).
    let refused_domain = changed && super::check_api_domain(engine, &row.crm, &new_domain).is_err();
    let moved = changed && !refused_domain;
    let sealed = store::connections::RefreshedTokens {
        access_token_enc: engine.vault.encrypt_str(tokens.access_token.expose()),
        refresh_token_enc: tokens
            .refresh_token
            .as_ref()
            .map(|refresh| engine.vault.encrypt_str(refresh.expose())),
        token_expires_at: tokens
            .expires_in
            .or(crm.assumed_token_lifetime_secs())
            .map(|secs| now + chrono::Duration::seconds(secs)),
        api_domain: moved.then(|| new_domain.clone()),
    };
    store::connections::store_tokens(db, id, sealed, now).await?;
    if refused_domain {
        tracing::error!(connection_id = %id, "Pipedrive's token endpoint named an api_domain outside the allowed domains; it is not followed.");
        synclog::record(
            db,
            Entry::new(
                Level::Error,
                Direction::Connection,
                "api_domain_refused",
                format!("The token endpoint answered with api_domain {new_domain}, which is not an allowed Pipedrive domain (pipedrive.allowed_api_domains); tandem keeps using {old_domain}."),
            )
            .connection(id)
            .hint("If Pipedrive really moved the company, add the domain to pipedrive.allowed_api_domains and reconnect."),
            now,
        )
        .await?;
    }
    if moved {
        let sent_to = used_domain.unwrap_or(&old_domain);
        tracing::warn!(connection_id = %id, "Pipedrive answered with a new api_domain; the connection now uses it.");
        synclog::record(
            db,
            Entry::new(
                Level::Warn,
                Direction::Connection,
                "api_domain_mismatch",
                format!(
                    "api_domain mismatch: requests were sent to {sent_to}, but Pipedrive now serves this company at {new_domain} (a data-centre move). The connection was updated."
                ),
            )
            .connection(id)
            .detail(serde_json::json!({ "old": old_domain, "new": new_domain }))
            .hint("Nothing to do: tandem follows the new domain. If errors continue, click Reconnect."),
            now,
        )
        .await?;
    }
    tracing::info!(connection_id = %id, crm = crm_name, "Access token refreshed.");
    Ok(Refreshed::Yes {
        api_domain_moved: moved,
    })
}

/// Handles a 401 or 403 from a call made outside the outbox (poller, admin actions): a 401
/// refreshes the token once and, failing that, moves the connection to "Token expired"; a 403
/// moves it to "Not authorised". Both are written to the sync log with Pipedrive's text.
/// Returns whether the call is worth retrying now (the token was refreshed).
pub async fn on_auth_error(
    engine: &Engine,
    conn: &ConnectionCtx,
    error: &CrmError,
) -> Result<bool, SyncError> {
    let db = &engine.store;
    match error.kind {
        CrmErrorKind::Unauthorized => {
            if refresh(engine, conn).await {
                return Ok(true);
            }
            let now = engine.now();
            store::connections::set_state(
                db,
                conn.id,
                state::TOKEN_EXPIRED,
                Some(&error.message),
                now,
            )
            .await?;
            let crm_name = conn.crm.display_name();
            tracing::error!(connection_id = %conn.id, crm = crm_name, error = %error, "The CRM refused the token; the connection is paused until it is reconnected.");
            synclog::record(
                db,
                Entry::new(
                    Level::Error,
                    Direction::Connection,
                    "token_expired",
                    format!("{crm_name} refused the access token (401); syncing is paused until you reconnect."),
                )
                .connection(conn.id)
                .status(error.status)
                .remote_error(super::verbatim(error))
                .hint(error.hint.clone().unwrap_or_else(|| format!("Reconnect {crm_name} from the connection card."))),
                now,
            )
            .await?;
            Ok(false)
        }
        CrmErrorKind::Forbidden => {
            let now = engine.now();
            store::connections::set_state(
                db,
                conn.id,
                state::NOT_AUTHORISED,
                Some(&error.message),
                now,
            )
            .await?;
            synclog::record(
                db,
                Entry::new(
                    Level::Error,
                    Direction::Connection,
                    "not_authorised",
                    format!("{} refused the request (403): the connecting user lacks rights or scopes; syncing is paused.", conn.crm.display_name()),
                )
                .connection(conn.id)
                .status(error.status)
                .remote_error(super::verbatim(error))
                .hint(error.hint.clone().unwrap_or_else(|| format!("Reconnect with a {} admin user, or grant the missing scopes.", conn.crm.display_name()))),
                now,
            )
            .await?;
            Ok(false)
        }
        _ => Ok(false),
    }
}
