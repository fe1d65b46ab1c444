//! Connections (`connection`): one tenant's link to a CRM account, with its credentials
//! (encrypted) and its state.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::entities::connection;
use super::{Conn, StoreError};

/// A connection's row.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionRow {
    pub id: Uuid,
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
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<connection::Model> for ConnectionRow {
    fn from(row: connection::Model) -> Self {
        Self {
            id: row.id,
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
            last_success_at: row.last_success_at,
            last_error: row.last_error,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// Every connection, oldest first.
pub async fn list(db: &impl Conn) -> Result<Vec<ConnectionRow>, StoreError> {
    Ok(connection::Entity::find()
        .order_by_asc(connection::Column::CreatedAt)
        .all(db.raw())
        .await?
        .into_iter()
        .map(ConnectionRow::from)
        .collect())
}

/// One connection.
pub async fn get(db: &impl Conn, id: Uuid) -> Result<Option<ConnectionRow>, StoreError> {
    Ok(connection::Entity::find_by_id(id)
        .one(db.raw())
        .await?
        .map(ConnectionRow::from))
}

/// Moves a connection to `new_state` with the error the admin sees (or none).
pub async fn set_state(
    db: &impl Conn,
    id: Uuid,
    new_state: &str,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    connection::Entity::update_many()
        .col_expr(connection::Column::State, Expr::value(new_state))
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
    id: Uuid,
    tokens: RefreshedTokens,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
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

/// The oldest connection not in `excluded_state`, if any.
pub async fn oldest_not_in(
    db: &impl Conn,
    excluded_state: &str,
) -> Result<Option<Uuid>, StoreError> {
    use sea_orm::{ColumnTrait, QueryFilter};
    Ok(connection::Entity::find()
        .filter(connection::Column::State.ne(excluded_state))
        .all(db.raw())
        .await?
        .into_iter()
        .min_by_key(|c| c.created_at)
        .map(|c| c.id))
}
