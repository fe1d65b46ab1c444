//! Which connection a request about one contact goes to, when several connections sync side by
//! side (a Pipedrive company and a Salesforce org, two Pipedrive companies: issue 24).
//!
//! 1. A connection the request names (`connection_id`) wins, if it exists and is not
//!    disconnected.
//! 2. Else the one active connection that links the contact (the contact's person lives there).
//!    A contact linked in several active connections is refused: tandem does not guess which
//!    CRM the caller meant (there is no "primary" connection).
//! 3. Else (linked nowhere) the oldest active connection, as when tandem synced one company.
//!
//! Links in a disconnected connection do not count. The routed connection is stored on the
//! request's record and on its outbox job, so retries, also after a restart, go there.
//!
//! Every step sees only the caller's tenant's connections (ADR 26): a `connection_id` of
//! another tenant is unknown, as if it did not exist.

use tandem_core::{ConnectionId, ContactId, TenantId};

use crate::store::connections as stored;
use crate::store::Conn;
use crate::sync::connections::state;
use crate::sync::SyncError;

/// Why a request could not be routed to a connection.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("there is no connection {0}: name one of the connections tandem has (GET /admin/api/connections lists them), or leave `connection_id` out")]
    Unknown(ConnectionId),
    #[error("connection {0} is disconnected: reconnect it, or name another connection")]
    Disconnected(ConnectionId),
    #[error("{what} linked in {} connections ({}): name the one to use with `connection_id`", .connections.len(), list(.connections))]
    Ambiguous {
        /// Who is linked: "the contact is", "the e-mail's participants are".
        what: &'static str,
        connections: Vec<ConnectionId>,
    },
    #[error("no CRM connection is active")]
    NotConnected,
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<crate::store::StoreError> for RouteError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Sync(error.into())
    }
}

fn list(ids: &[ConnectionId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The connection a request names, if it can take work: it exists and is not disconnected
/// (a paused connection queues the work for when it resumes).
pub async fn named(
    db: &impl Conn,
    tenant: &TenantId,
    id: ConnectionId,
) -> Result<ConnectionId, RouteError> {
    match stored::get(db, id).await? {
        None => Err(RouteError::Unknown(id)),
        Some(row) if row.tenant != *tenant => Err(RouteError::Unknown(id)),
        Some(row) if row.state == state::DISCONNECTED => Err(RouteError::Disconnected(id)),
        Some(_) => Ok(id),
    }
}

/// Fails with [`RouteError::NotConnected`] when no connection is active, so that a request
/// is refused for that before its contact is looked up.
pub async fn require_active(db: &impl Conn, tenant: &TenantId) -> Result<(), RouteError> {
    match super::active_id(db, tenant).await? {
        Some(_) => Ok(()),
        None => Err(RouteError::NotConnected),
    }
}

/// The connection for a request about `contact` that names none (steps 2 and 3 above).
pub async fn for_contact(
    db: &impl Conn,
    tenant: &TenantId,
    contact: ContactId,
) -> Result<ConnectionId, RouteError> {
    for_contacts(db, tenant, &[contact], "the contact is").await
}

/// [`for_contact`] for a request about several contacts (an e-mail's participants): the one
/// active connection that links any of them, else the oldest active one; `what` names them in
/// the refusal when several connections link them.
pub async fn for_contacts(
    db: &impl Conn,
    tenant: &TenantId,
    contacts: &[ContactId],
    what: &'static str,
) -> Result<ConnectionId, RouteError> {
    let mut all = Vec::new();
    for contact in contacts {
        all.extend(crate::store::links::connections_of_contact(db, *contact).await?);
    }
    let mut linked = Vec::new();
    for id in all {
        if linked.contains(&id) {
            continue;
        }
        let active = stored::get(db, id)
            .await?
            .is_some_and(|row| row.state != state::DISCONNECTED && row.tenant == *tenant);
        if active {
            linked.push(id);
        }
    }
    let oldest = if linked.is_empty() {
        super::active_id(db, tenant).await?
    } else {
        None
    };
    decide(linked, oldest, what)
}

/// The rule itself: the one linking connection, else the oldest active one.
fn decide(
    linked_active: Vec<ConnectionId>,
    oldest_active: Option<ConnectionId>,
    what: &'static str,
) -> Result<ConnectionId, RouteError> {
    match linked_active.as_slice() {
        [one] => Ok(*one),
        [] => oldest_active.ok_or(RouteError::NotConnected),
        _ => Err(RouteError::Ambiguous {
            what,
            connections: linked_active,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id() -> ConnectionId {
        ConnectionId::new(Uuid::now_v7())
    }

    #[test]
    fn the_connection_that_links_the_contact_wins_over_the_oldest_one() {
        let (linking, oldest) = (id(), id());
        assert_eq!(
            decide(vec![linking], Some(oldest), "the contact is").unwrap(),
            linking
        );
    }

    #[test]
    fn an_unlinked_contact_goes_to_the_oldest_active_connection_or_nowhere() {
        let oldest = id();
        assert_eq!(
            decide(Vec::new(), Some(oldest), "the contact is").unwrap(),
            oldest
        );
        assert!(matches!(
            decide(Vec::new(), None, "the contact is"),
            Err(RouteError::NotConnected)
        ));
    }

    #[test]
    fn a_contact_linked_in_two_connections_is_refused_naming_both() {
        let (a, b) = (id(), id());
        let error = decide(vec![a, b], None, "the contact is").unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&a.to_string()) && text.contains(&b.to_string()),
            "{text}"
        );
        assert!(text.contains("connection_id"), "{text}");
    }
}
