//! What a use-case holds of a connection: its state names and the loaded context (credentials,
//! field map, owner). Plain data, so the token lifecycle (`tokens`) and the loader (`super`)
//! both use it without depending on each other.

use tandem_core::{ConnectionId, TenantId};

use crate::crm::{Crm, FieldMap, Session};

/// Connection states as the admin sees them.
pub mod state {
    pub const CONNECTED: &str = "connected";
    pub const SYNCING: &str = "syncing";
    pub const TOKEN_EXPIRED: &str = "token_expired";
    pub const NOT_AUTHORISED: &str = "not_authorised";
    pub const APP_REMOVED: &str = "app_removed";
    pub const DISCONNECTED: &str = "disconnected";
}

/// The CRM a connection's row names (`connection.crm`).
pub mod kind {
    pub const PIPEDRIVE: &str = "pipedrive";
    pub const SALESFORCE: &str = "salesforce";
    /// Salesforce through the sandbox login host: a separate connection from production.
    pub const SALESFORCE_SANDBOX: &str = "salesforce_sandbox";
}

/// A connection ready to call the CRM.
#[derive(Debug, Clone)]
pub struct ConnectionCtx {
    pub id: ConnectionId,
    /// The app's account this connection syncs: its persons meet only this tenant's contacts.
    pub tenant: TenantId,
    /// The CRM this connection is to (its connector): every call of a use-case goes here.
    pub crm: Crm,
    pub state: String,
    pub paused: bool,
    pub session: Session,
    pub map: FieldMap,
    /// The connecting user: owner of persons tandem creates.
    pub default_owner: Option<i64>,
    pub company_id: Option<i64>,
}
