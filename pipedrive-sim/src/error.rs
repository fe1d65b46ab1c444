//! Errors of the simulator's library API.

/// Why the simulator could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding the listener failed.
    #[error("could not bind 127.0.0.1:{port}")]
    Bind {
        /// The requested port.
        port: u16,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A fault specification did not parse.
    #[error("invalid fault spec: {0}")]
    FaultSpec(String),
    /// No such object.
    #[error("{0} not found")]
    NotFound(String),
    /// A value was rejected (the message is the one the API would return).
    #[error("invalid request: {0}")]
    Invalid(String),
}
