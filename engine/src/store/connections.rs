//! Connections (`connection`): one tenant's link to a CRM account, with its credentials
//! (encrypted) and its state.

use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, QueryOrder};
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
