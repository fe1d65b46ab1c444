//! Errors of the simulator's library API.

/// Why the simulator could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SfSimError {
    /// Binding a listener failed.
    #[error("could not bind 127.0.0.1:{port}")]
    Bind {
        /// The requested port.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The built-in TLS certificate could not be loaded.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// A fault specification did not parse.
    #[error("invalid fault spec: {0}")]
    FaultSpec(String),
    /// No such object.
    #[error("{0} not found")]
    NotFound(String),
    /// A value was rejected; the message is the one the API would return.
    #[error("{code}: {message}")]
    Rejected {
        /// Salesforce's error code, e.g. `REQUIRED_FIELD_MISSING`.
        code: String,
        /// Its message.
        message: String,
    },
    /// An argument was invalid.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl From<crate::state::DmlError> for SfSimError {
    fn from(e: crate::state::DmlError) -> Self {
        SfSimError::Rejected {
            code: e.code.to_owned(),
            message: e.message,
        }
    }
}
