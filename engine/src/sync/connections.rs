//! Pipedrive connections: adding one (API token now; OAuth in `http::connect`), loading it as a
//! ready-to-call session with its field map, and moving it between states.

use chrono::{DateTime, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde::Serialize;
use tandem_core::{Direction, FieldKey, FieldRule, Side};
use uuid::Uuid;

use super::synclog::{self, Entry, Level};
use super::{Engine, SyncError};
use crate::config::Redacted;
use crate::crm::limiter::documented_burst;
use crate::crm::pipedrive::client::{Auth, Session};
use crate::crm::pipedrive::mapping::{FieldMap, MappedField, RemoteField};
use crate::crm::pipedrive::wire::WebhookCreate;
use crate::store::entities::{connection, field_mapping, sync_cursor};

/// Connection states as the admin sees them.
pub mod state {
    pub const CONNECTED: &str = "connected";
    pub const SYNCING: &str = "syncing";
    pub const TOKEN_EXPIRED: &str = "token_expired";
    pub const NOT_AUTHORISED: &str = "not_authorised";
    pub const APP_REMOVED: &str = "app_removed";
    pub const DISCONNECTED: &str = "disconnected";
}

/// Name of the custom field that carries the local contact id.
pub const APID_FIELD_NAME: &str = "apId";

/// A connection ready to call Pipedrive.
#[derive(Debug, Clone)]
pub struct ConnectionCtx {
    pub id: Uuid,
    pub state: String,
    pub paused: bool,
    pub session: Session,
    pub map: FieldMap,
    /// The connecting user: owner of persons tandem creates.
    pub default_owner: Option<i64>,
    pub company_id: Option<i64>,
}

/// Loads a connection with its decrypted credentials and field map.
pub async fn load(engine: &Engine, id: Uuid) -> Result<ConnectionCtx, SyncError> {
    let db = engine.store.db();
    let row = connection::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(SyncError::ConnectionNotFound(id))?;
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
    for mapping in field_mapping::Entity::find()
        .filter(field_mapping::Column::ConnectionId.eq(id))
        .all(db)
        .await?
    {
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
        let remote = match mapping.remote_field.as_str() {
            "name" => RemoteField::Name,
            "emails" | "email" => RemoteField::Emails,
            "phones" | "phone" => RemoteField::Phones,
            "owner_id" => RemoteField::OwnerId,
            key => RemoteField::Custom {
                key: key.to_owned(),
                field_type: mapping.remote_type.clone(),
            },
        };
        map.fields.retain(|f| f.local != local);
        map.fields.push(MappedField {
            local,
            remote,
            rule: FieldRule { direction, owner },
        });
    }
    Ok(ConnectionCtx {
        id,
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
    })
}

trait ApidKey {
    fn apid_key_or_none(&self) -> Option<String>;
}

impl ApidKey for connection::Model {
    fn apid_key_or_none(&self) -> Option<String> {
        self.apid_field_key.clone().filter(|k| !k.is_empty())
    }
}

/// The one active Pipedrive connection, if any (tandem syncs one Pipedrive company).
pub async fn active_id<C: ConnectionTrait>(db: &C) -> Result<Option<Uuid>, SyncError> {
    Ok(connection::Entity::find()
        .filter(connection::Column::State.ne(state::DISCONNECTED))
        .all(db)
        .await?
        .into_iter()
        .min_by_key(|c| c.created_at)
        .map(|c| c.id))
}

pub async fn set_state<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    new_state: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    connection::Entity::update_many()
        .col_expr(connection::Column::State, Expr::value(new_state))
        .col_expr(
            connection::Column::LastError,
            Expr::value(error.map(str::to_owned)),
        )
        .col_expr(connection::Column::UpdatedAt, Expr::value(now))
        .filter(connection::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn set_paused<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    connection::Entity::update_many()
        .col_expr(connection::Column::Paused, Expr::value(paused))
        .col_expr(connection::Column::UpdatedAt, Expr::value(now))
        .filter(connection::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn mark_success<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    connection::Entity::update_many()
        .col_expr(connection::Column::LastSuccessAt, Expr::value(now))
        .filter(connection::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// A cursor or marker stored per connection (`poll`, `initial_sync`, …).
pub async fn cursor<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    name: &str,
) -> Result<Option<String>, SyncError> {
    Ok(sync_cursor::Entity::find_by_id((id, name.to_owned()))
        .one(db)
        .await?
        .map(|c| c.value))
}

pub async fn set_cursor<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    name: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<(), SyncError> {
    use sea_orm::sea_query::OnConflict;
    sync_cursor::Entity::insert(sync_cursor::ActiveModel {
        connection_id: Set(id),
        name: Set(name.to_owned()),
        value: Set(value.to_owned()),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([sync_cursor::Column::ConnectionId, sync_cursor::Column::Name])
            .update_columns([sync_cursor::Column::Value, sync_cursor::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(())
}

pub async fn clear_cursor<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    name: &str,
) -> Result<(), SyncError> {
    sync_cursor::Entity::delete_by_id((id, name.to_owned()))
        .exec(db)
        .await?;
    Ok(())
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
    pub id: Uuid,
    pub company_id: Option<i64>,
    pub user_id: i64,
    pub webhooks_registered: usize,
    pub apid_field_key: String,
}

/// Adds (or re-adds, for the same company) a connection: checks the credentials with
/// `users/me`, makes sure the `apId` field exists, registers webhooks, and stores it all.
pub async fn connect(engine: &Engine, new: NewConnection) -> Result<Connected, SyncError> {
    let now = engine.now();
    let db = engine.store.db();
    let id = Uuid::now_v7();
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
    let me = engine.client.users_me(&session).await?;

    // Reconnecting the same company reuses the old connection (and its links): no duplicates.
    let existing = connection::Entity::find()
        .filter(connection::Column::CompanyId.eq(me.company_id))
        .all(db)
        .await?
        .into_iter()
        .min_by_key(|c| c.created_at);
    let id = existing.as_ref().map_or(id, |c| c.id);
    let session = Session {
        connection_id: id,
        ..session
    };

    let apid_field_key = ensure_apid_field(engine, &session).await?;
    let webhook_password = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    let webhook_user = format!("tandem-{}", &id.simple().to_string()[..12]);

    let sealed = engine.vault.encrypt_str(&new.access_token);
    let sealed_refresh = new
        .refresh_token
        .as_deref()
        .map(|t| engine.vault.encrypt_str(t));
    let sealed_password = engine.vault.encrypt_str(&webhook_password);
    let model = connection::ActiveModel {
        id: Set(id),
        crm: Set("pipedrive".into()),
        name: Set(me
            .name
            .clone()
            .map_or_else(|| "Pipedrive".to_owned(), |n| format!("Pipedrive ({n})"))),
        state: Set(state::CONNECTED.into()),
        auth_kind: Set(new.auth_kind.into()),
        api_domain: Set(new.api_domain.clone()),
        company_id: Set(me.company_id),
        user_id: Set(Some(me.id)),
        plan: Set(Some(engine.settings.pipedrive.plan.clone())),
        access_token_enc: Set(Some(sealed)),
        refresh_token_enc: Set(sealed_refresh),
        token_expires_at: Set(new.token_expires_at),
        webhook_user: Set(Some(webhook_user.clone())),
        webhook_password_enc: Set(Some(sealed_password)),
        apid_field_key: Set(Some(apid_field_key.clone())),
        paused: Set(false),
        last_success_at: Set(Some(now)),
        last_error: Set(None),
        created_at: Set(existing.as_ref().map_or(now, |c| c.created_at)),
        updated_at: Set(now),
    };
    if existing.is_some() {
        model.update(db).await?;
    } else {
        model.insert(db).await?;
    }

    let webhooks_registered = if engine.settings.pipedrive.register_webhooks {
        register_webhooks(engine, &session, &webhook_user, &webhook_password).await?
    } else {
        0
    };
    synclog::record(
        db,
        Entry::new(Level::Info, synclog::Direction::Connection, "connected", "Pipedrive connected.")
            .connection(id)
            .detail(serde_json::json!({ "company_id": me.company_id, "user_id": me.id, "webhooks": webhooks_registered })),
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

/// Finds the `apId` person field, creating it (varchar) if missing.
pub async fn ensure_apid_field(engine: &Engine, session: &Session) -> Result<String, SyncError> {
    let fields = engine.client.list_person_fields(session).await?;
    if let Some(field) = fields.iter().find(|f| f.field_name == APID_FIELD_NAME) {
        return Ok(field.field_code.clone());
    }
    Ok(engine
        .client
        .create_person_field(session, APID_FIELD_NAME, "varchar")
        .await?
        .field_code)
}

fn webhook_url(engine: &Engine, connection: Uuid) -> String {
    format!("{}/webhooks/pipedrive/{connection}", engine.public_url)
}

/// Registers (or repairs) tandem's person/deal/activity webhooks; returns how many were created.
pub async fn register_webhooks(
    engine: &Engine,
    session: &Session,
    user: &str,
    password: &str,
) -> Result<usize, SyncError> {
    let url = webhook_url(engine, session.connection_id);
    let existing = engine.client.list_webhooks(session).await?;
    let mut created = 0;
    for object in ["person", "deal", "activity"] {
        let present = existing
            .iter()
            .any(|w| w.subscription_url == url && w.event_object.as_deref() == Some(object));
        if present {
            continue;
        }
        let body = WebhookCreate {
            subscription_url: &url,
            event_action: "*",
            event_object: object,
            name: "tandem sync",
            http_auth_user: user,
            http_auth_password: password,
            version: "2.0",
        };
        engine.client.create_webhook(session, &body).await?;
        created += 1;
    }
    Ok(created)
}

/// Removes tandem's webhooks at Pipedrive.
pub async fn remove_webhooks(engine: &Engine, session: &Session) -> Result<usize, SyncError> {
    let url = webhook_url(engine, session.connection_id);
    let mut removed = 0;
    for hook in engine.client.list_webhooks(session).await? {
        if hook.subscription_url == url {
            engine.client.delete_webhook(session, hook.id).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The Basic credentials Pipedrive must send to this connection's webhook endpoint.
pub async fn webhook_credentials<C: ConnectionTrait>(
    engine: &Engine,
    db: &C,
    id: Uuid,
) -> Result<Option<(String, String)>, SyncError> {
    let Some(row) = connection::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    match (row.webhook_user, row.webhook_password_enc) {
        (Some(user), Some(sealed)) => Ok(Some((user, engine.vault.decrypt_string(&sealed)?))),
        _ => Ok(None),
    }
}
