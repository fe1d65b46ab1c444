//! Simulator configuration.

use std::time::Duration;

use crate::faults::FaultSpec;

/// Everything the simulator needs to start. `Default` gives a ready-to-use configuration.
#[derive(Clone, Debug)]
pub struct SfSimConfig {
    /// Port of the instance listener (the API, `instance_url`) on 127.0.0.1; 0 = any free port.
    pub instance_port: u16,
    /// Port of the production login host (`login.salesforce.com`'s stand-in); 0 = any.
    pub login_port: u16,
    /// Port of the sandbox login host (`test.salesforce.com`'s stand-in); 0 = any.
    pub sandbox_login_port: u16,
    /// The connected app's consumer key.
    pub client_id: String,
    /// The connected app's consumer secret.
    pub client_secret: String,
    /// Accepted callback URLs (empty: any `http://127.0.0.1…`/`http://localhost…` URL).
    pub redirect_uris: Vec<String>,
    /// Whether the connected app requires PKCE (a code_challenge on every authorize).
    pub require_pkce: bool,
    /// Access-token (session) lifetime; Salesforce's default session timeout is 2 hours.
    pub session_lifetime: Duration,
    /// Daily API request allocation of each org (rolling 24 hours).
    pub daily_api_requests: u64,
    /// Leads to seed in each org.
    pub leads: usize,
    /// Contacts to seed in each org.
    pub contacts: usize,
    /// Accounts to seed in each org.
    pub accounts: usize,
    /// Seed for generated data and fault draws.
    pub seed: u64,
    /// Fault injection.
    pub faults: FaultSpec,
}

impl Default for SfSimConfig {
    fn default() -> Self {
        SfSimConfig {
            instance_port: 0,
            login_port: 0,
            sandbox_login_port: 0,
            client_id: "sim-consumer-key".into(),
            client_secret: "sim-consumer-secret".into(),
            redirect_uris: Vec::new(),
            require_pkce: false,
            session_lifetime: Duration::from_secs(2 * 3600),
            daily_api_requests: 100_000,
            leads: 0,
            contacts: 0,
            accounts: 0,
            seed: 0,
            faults: FaultSpec::default(),
        }
    }
}
