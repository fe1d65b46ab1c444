//! A connection's credentials and API base: what every CRM call carries.

use tandem_core::ConnectionId;

use crate::config::Redacted;

/// How a connection authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    ApiToken(Redacted<String>),
    Bearer(Redacted<String>),
}

/// Everything needed to call the CRM for one connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub connection_id: ConnectionId,
    /// The connection's API base, from the CRM's own token answer, never a constant:
    /// Pipedrive's `api_domain` (e.g. `https://company.pipedrive.com`), Salesforce's
    /// `instance_url`.
    pub api_domain: String,
    pub auth: Auth,
    /// The burst limit to start from, before the CRM reports its own.
    pub seed_burst: u32,
}
