//! The Salesforce adapter (issue 19, ADR 0013): REST API `vNN.0` on the connection's
//! `instance_url` (the session's `api_domain`), bearer auth. A CRM person is a Lead
//! (unconverted) or a Contact. `client` speaks HTTP (reading `Sforce-Limit-Info` into the
//! connection's budget), `wire` holds the JSON shapes, `mapping` converts records to and from
//! the core's snapshots, `errors` classifies Salesforce's error arrays, `ops` holds the calls
//! beyond persons (user, describe, Tooling fields, journey objects, OAuth with PKCE).
//!
//! Salesforce ids are 18-character strings; the boundary speaks `i64`. The connector hands out
//! a stable surrogate (a 63-bit hash of the id, [`ids::surrogate`]) and remembers, per
//! connection, which id a surrogate stands for ([`ids::SfKeys`]); `CrmPerson.key` carries the
//! id itself so storage can keep it (ADR 0013).

pub mod client;
pub(crate) mod errors;
pub mod field_rules;
pub mod ids;
pub mod mapping;
pub(crate) mod ops;
pub mod wire;

pub use client::SalesforceClient;
pub use ops::{pkce_challenge, SfOAuthApp};

use crate::config::SalesforceSettings;

/// What the connector needs from the settings besides the OAuth app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SfConfig {
    /// `vNN.0`.
    pub api_version: String,
    /// The external-id custom field carrying the apId (`tandem_id__c`).
    pub external_id_field: String,
    /// `LastName` written when the app has none.
    pub last_name_placeholder: String,
    /// `Company` written on a new Lead when the app has none.
    pub company_placeholder: String,
    /// Daily API calls left to other tools.
    pub api_reserve: u64,
    /// `Sforce-Call-Options: client=…` on every write.
    pub call_options_client: String,
    /// New persons become this object (Lead by default).
    pub create_as: SObject,
    /// How long pushes wait for company after a batch that was not full.
    pub write_batch_window: std::time::Duration,
    /// How long tandem waits after the daily allocation ran out (`REQUEST_LIMIT_EXCEEDED`) or
    /// while the budget is inside the reserve, before calling again.
    pub quota_backoff: std::time::Duration,
}

impl Default for SfConfig {
    fn default() -> Self {
        Self {
            api_version: "v62.0".into(),
            external_id_field: "tandem_id__c".into(),
            last_name_placeholder: "[not provided]".into(),
            company_placeholder: "[not provided]".into(),
            api_reserve: 1000,
            call_options_client: "tandem".into(),
            create_as: SObject::Lead,
            write_batch_window: std::time::Duration::from_millis(1000),
            quota_backoff: std::time::Duration::from_secs(300),
        }
    }
}

impl SfConfig {
    pub fn from_settings(settings: &SalesforceSettings) -> Self {
        Self {
            api_version: settings.api_version.clone(),
            external_id_field: settings.external_id_field.clone(),
            last_name_placeholder: settings.lead_last_name_placeholder.clone(),
            company_placeholder: settings.lead_company_placeholder.clone(),
            api_reserve: settings.api_reserve,
            call_options_client: settings.call_options_client.clone(),
            create_as: if settings.create_as == "Contact" {
                SObject::Contact
            } else {
                SObject::Lead
            },
            write_batch_window: std::time::Duration::from_millis(settings.write_batch_window_ms),
            quota_backoff: std::time::Duration::from_secs(settings.quota_backoff_secs),
        }
    }
}

/// The sObjects a CRM person can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SObject {
    Lead,
    Contact,
}

impl SObject {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Lead => "Lead",
            Self::Contact => "Contact",
        }
    }

    /// The object of this API name (`Lead`, `Contact`).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "Lead" => Some(Self::Lead),
            "Contact" => Some(Self::Contact),
            _ => None,
        }
    }

    /// The object an id belongs to, by its key prefix (`00Q` Lead, `003` Contact).
    pub fn of_id(id: &str) -> Option<Self> {
        match id.get(..3) {
            Some("00Q") => Some(Self::Lead),
            Some("003") => Some(Self::Contact),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod sim_tests;
