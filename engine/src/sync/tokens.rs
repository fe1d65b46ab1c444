//! Token lifecycle. API-token connections cannot be refreshed: a 401 means the token was
//! revoked and the connection goes to "Token expired" until it is reconnected.

use super::connections::ConnectionCtx;
use super::Engine;

/// Tries to refresh the connection's token; returns whether it now has a working one.
pub async fn refresh(_engine: &Engine, _conn: &ConnectionCtx) -> bool {
    false
}
