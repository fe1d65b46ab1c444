//! Connections (`connection`): one tenant's link to a CRM account, with its credentials
//! (encrypted) and its state.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use tandem_core::{ConnectionId, TenantId};
use uuid::Uuid;

use super::entities::connection;
use super::{Conn, StoreError};

/// A connection's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    pub id: ConnectionId,
    /// The app's account this connection syncs: only its contacts meet this CRM.
    pub tenant: TenantId,
    pub crm: String,
    pub name: String,
    pub state: String,
    pub auth_kind: String,
    pub api_domain: String,
    pub company_id: Option<i64>,
    pub user_id: Option<i64>,
    pub plan: Option<String>,
    pub access_token_enc: Option<Vec<u8>>,
    pub refresh_token_enc: Option<Vec<u8>>,
    pub token_expires_at: Option<DateTime<Utc>>,
    pub webhook_user: Option<String>,
    pub webhook_password_enc: Option<Vec<u8>>,
    pub apid_field_key: Option<String>,
    pub paused: bool,
    /// New app contacts in the CRM list are created here (off for a company connected
    /// alongside others: the list holds the other companies' contacts too).
    pub receives_list: bool,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<connection::Model> for ConnectionRow {
    type Error = StoreError;
    fn try_from(row: connection::Model) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.id.into(),
            tenant: super::parse_tenant(&row.tenant)?,
            crm: row.crm,
            name: row.name,
            state: row.state,
            auth_kind: row.auth_kind,
            api_domain: row.api_domain,
            company_id: row.company_id,
            user_id: row.user_id,
            plan: row.plan,
            access_token_enc: row.access_token_enc,
            refresh_token_enc: row.refresh_token_enc,
            token_expires_at: row.token_expires_at,
            webhook_user: row.webhook_user,
            webhook_password_enc: row.webhook_password_enc,
            apid_field_key: row.apid_field_key,
            paused: row.paused,
            receives_list: row.receives_list,
            last_success_at: row.last_success_at,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

fn rows(models: Vec<connection::Model>) -> Result<Vec<ConnectionRow>, StoreError> {
    models.into_iter().map(ConnectionRow::try_from).collect()
}

/// Every connection, oldest first.
pub async fn list(db: &impl Conn) -> Result<Vec<ConnectionRow>, StoreError> {
    rows(
        connection::Entity::find()
            .order_by_asc(connection::Column::CreatedAt)
            .all(db.raw())
            .await?,
    )
}

/// One connection.
pub async fn get(db: &impl Conn, id: ConnectionId) -> Result<Option<ConnectionRow>, StoreError> {
    let id = id.uuid();
    connection::Entity::find_by_id(id)
        .one(db.raw())
        .await?
        .map(ConnectionRow::try_from)
        .transpose()
}

/// Moves a connection to `new_state` with the error the admin sees (or none), unless the
/// admin disconnected it: only a reconnect ([`save`]) brings a disconnected connection back,
/// so a push or a poll that was in flight during the disconnect (its 401 after the revoke, the
/// initial sync finishing) cannot turn it into "token expired" or "connected" again.
pub async fn set_state(
    db: &impl Conn,
    id: ConnectionId,
    new_state: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = id.uuid();
    connection::Entity::update_many()
        .col_expr(connection::Column::State, Expr::value(new_state))
        .col_expr(
            connection::Column::LastError,
            Expr::value(error.map(str::to_owned)),
        )
        .col_expr(connection::Column::UpdatedAt, Expr::value(now))
        .filter(connection::Column::Id.eq(id))
        .filter(connection::Column::State.ne(DISCONNECTED))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// `connection.state` of a connection the admin disconnected (the use-cases' name for it is
/// `sync::connections::state::DISCONNECTED`).
const DISCONNECTED: &str = "disconnected";

/// Tokens a refresh brought, sealed, for [`store_tokens`].
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshedTokens {
    pub access_token_enc: Vec<u8>,
    /// Kept as it is when `None` (the CRM did not rotate it).
    pub refresh_token_enc: Option<Vec<u8>>,
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Kept as it is when `None`.
    pub api_domain: Option<String>,
}

/// Stores the tokens of a refresh on the connection `id`.
pub async fn store_tokens(
    db: &impl Conn,
    id: ConnectionId,
    tokens: RefreshedTokens,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = id.uuid();
    use sea_orm::{ActiveModelTrait, ActiveValue};
    let mut model = connection::ActiveModel {
        id: ActiveValue::Unchanged(id),
        access_token_enc: ActiveValue::Set(Some(tokens.access_token_enc)),
        token_expires_at: ActiveValue::Set(tokens.token_expires_at),
        updated_at: ActiveValue::Set(now),
        ..Default::default()
    };
    if let Some(refresh) = tokens.refresh_token_enc {
        model.refresh_token_enc = ActiveValue::Set(Some(refresh));
    }
    if let Some(domain) = tokens.api_domain {
        model.api_domain = ActiveValue::Set(domain);
    }
    model.update(db.raw()).await?;
    Ok(())
}

/// The oldest connection of `tenant` not in `excluded_state`, if any.
pub async fn oldest_not_in(
    db: &impl Conn,
    tenant: &TenantId,
    excluded_state: &str,
) -> Result<Option<ConnectionId>, StoreError> {
    Ok(connection::Entity::find()
        .filter(connection::Column::Tenant.eq(tenant.as_str()))
        .filter(connection::Column::State.ne(excluded_state))
        .all(db.raw())
        .await?
        .into_iter()
        .min_by_key(|c| c.created_at)
        .map(|c| c.id.into()))
}

/// The connections to the CRM company `company` (none for an unknown company), oldest first.
pub async fn of_company(
    db: &impl Conn,
    company: Option<i64>,
) -> Result<Vec<ConnectionRow>, StoreError> {
    rows(
        connection::Entity::find()
            .filter(connection::Column::CompanyId.eq(company))
            .order_by_asc(connection::Column::CreatedAt)
            .all(db.raw())
            .await?,
    )
}

/// The connections to another CRM company than `company`, oldest first.
pub async fn of_other_companies(
    db: &impl Conn,
    company: Option<i64>,
) -> Result<Vec<ConnectionRow>, StoreError> {
    rows(
        connection::Entity::find()
            .filter(connection::Column::CompanyId.ne(company))
            .order_by_asc(connection::Column::CreatedAt)
            .all(db.raw())
            .await?,
    )
}

/// The connection to `company` that is not in `excluded_state`, if any.
pub async fn of_company_not_in(
    db: &impl Conn,
    company: i64,
    excluded_state: &str,
) -> Result<Option<ConnectionRow>, StoreError> {
    connection::Entity::find()
        .filter(connection::Column::CompanyId.eq(company))
        .filter(connection::Column::State.ne(excluded_state))
        .one(db.raw())
        .await?
        .map(ConnectionRow::try_from)
        .transpose()
}

/// The connections of `tenant` (not disconnected) that new app contacts in its CRM list are
/// created in, oldest first.
pub async fn list_receivers(
    db: &impl Conn,
    tenant: &TenantId,
) -> Result<Vec<ConnectionId>, StoreError> {
    use sea_orm::QuerySelect;
    Ok(connection::Entity::find()
        .select_only()
        .column(connection::Column::Id)
        .filter(connection::Column::Tenant.eq(tenant.as_str()))
        .filter(connection::Column::ReceivesList.eq(true))
        .filter(connection::Column::State.ne(DISCONNECTED))
        .order_by_asc(connection::Column::CreatedAt)
        .order_by_asc(connection::Column::Id)
        .into_tuple::<Uuid>()
        .all(db.raw())
        .await?
        .into_iter()
        .map(ConnectionId::from)
        .collect())
}

/// The ids of the connections that are not paused and in one of `states`.
pub async fn running_ids(db: &impl Conn, states: &[&str]) -> Result<Vec<ConnectionId>, StoreError> {
    use sea_orm::QuerySelect;
    Ok(connection::Entity::find()
        .select_only()
        .column(connection::Column::Id)
        .filter(connection::Column::Paused.eq(false))
        .filter(connection::Column::State.is_in(states.iter().copied()))
        .into_tuple::<Uuid>()
        .all(db.raw())
        .await?
        .into_iter()
        .map(ConnectionId::from)
        .collect())
}

/// Stores `row`: a new connection, or (with `exists`) every column of the connection `row.id`.
pub async fn save(db: &impl Conn, row: ConnectionRow, exists: bool) -> Result<(), StoreError> {
    use sea_orm::{ActiveModelTrait, Set};
    let model = connection::ActiveModel {
        id: Set(row.id.uuid()),
        crm: Set(row.crm),
        name: Set(row.name),
        state: Set(row.state),
        auth_kind: Set(row.auth_kind),
        api_domain: Set(row.api_domain),
        company_id: Set(row.company_id),
        user_id: Set(row.user_id),
        plan: Set(row.plan),
        access_token_enc: Set(row.access_token_enc),
        refresh_token_enc: Set(row.refresh_token_enc),
        token_expires_at: Set(row.token_expires_at),
        webhook_user: Set(row.webhook_user),
        webhook_password_enc: Set(row.webhook_password_enc),
        apid_field_key: Set(row.apid_field_key),
        paused: Set(row.paused),
        receives_list: Set(row.receives_list),
        tenant: Set(row.tenant.as_str().to_owned()),
        last_success_at: Set(row.last_success_at),
        last_error: Set(row.last_error),
        created_at: Set(row.created_at),
        updated_at: Set(row.updated_at),
    };
    if exists {
        model.update(db.raw()).await?;
    } else {
        model.insert(db.raw()).await?;
    }
    Ok(())
}

/// Moves a connection to `new_state` and forgets its tokens (a disconnect, an uninstall); its
/// webhook credentials, links and mappings stay.
pub async fn drop_tokens(
    db: &impl Conn,
    id: ConnectionId,
    new_state: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = id.uuid();
    use sea_orm::{ActiveModelTrait, ActiveValue};
    connection::ActiveModel {
        id: ActiveValue::Unchanged(id),
        state: ActiveValue::Set(new_state.to_owned()),
        access_token_enc: ActiveValue::Set(None),
        refresh_token_enc: ActiveValue::Set(None),
        token_expires_at: ActiveValue::Set(None),
        last_error: ActiveValue::Set(error.map(str::to_owned)),
        updated_at: ActiveValue::Set(now),
        ..Default::default()
    }
    .update(db.raw())
    .await?;
    Ok(())
}

/// Pauses or resumes a connection.
pub async fn set_paused(
    db: &impl Conn,
    id: ConnectionId,
    paused: bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = id.uuid();
    connection::Entity::update_many()
        .col_expr(connection::Column::Paused, Expr::value(paused))
        .col_expr(connection::Column::UpdatedAt, Expr::value(now))
        .filter(connection::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Records that a call to the CRM succeeded at `now`.
pub async fn mark_success(
    db: &impl Conn,
    id: ConnectionId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = id.uuid();
    connection::Entity::update_many()
        .col_expr(connection::Column::LastSuccessAt, Expr::value(now))
        .filter(connection::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Sets the error the admin sees on the card, keeping the state.
pub async fn set_last_error(
    db: &impl Conn,
    id: ConnectionId,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let id = id.uuid();
    connection::Entity::update_many()
        .col_expr(
            connection::Column::LastError,
            Expr::value(error.map(str::to_owned)),
        )
        .col_expr(connection::Column::UpdatedAt, Expr::value(now))
        .filter(connection::Column::Id.eq(id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Deletes a connection; its links, queued writes, cursors and mappings go with it (foreign
/// keys cascade), and so do its duplicate groups.
pub async fn delete(db: &impl Conn, id: ConnectionId) -> Result<(), StoreError> {
    let id = id.uuid();
    use super::entities::duplicate_group;
    duplicate_group::Entity::delete_many()
        .filter(duplicate_group::Column::ConnectionId.eq(id))
        .exec(db.raw())
        .await?;
    connection::Entity::delete_by_id(id).exec(db.raw()).await?;
    Ok(())
}
