//! Which replica runs which connection's outbound work (ADR 0014).
//!
//! Several tandem processes may share one database. Any of them receives webhooks and applies
//! events (the queue's claims make each happen once), but a connection's **writes to the CRM
//! and its change-capture polls** run in one replica at a time, so that the connection's rate
//! limit (an in-memory limiter) and the order of its requests hold. Ownership is a lease per
//! connection in the database: its owner renews it every round (a third of the lease), a
//! replica that stops cleanly gives its leases up at once, and a lease that ran out (its
//! replica died) is taken over by the next replica's round. Each replica takes its fair share
//! (connections ÷ live replicas, rounded up) and gives up what it holds beyond it, so a new
//! replica gets its share within one lease period.

use std::collections::HashSet;
use std::sync::Mutex;
use tandem_core::ConnectionId;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{connections as stored_connections, leases};
use crate::sync::connections::state;
use crate::sync::{Engine, SyncError};

/// This process as a replica: its id, and what its last round found.
#[derive(Debug)]
pub struct Replica {
    pub id: String,
    pub host: String,
    last: Mutex<Option<Round>>,
}

#[derive(Debug, Clone)]
struct Round {
    at: DateTime<Utc>,
    owned: HashSet<ConnectionId>,
}

impl Replica {
    /// A replica named `id`, or (none given) after the host, the process and a random tail,
    /// so two processes on one host never share an id.
    pub fn new(id: Option<String>) -> Self {
        // The kernel's host name (a container's name under Docker and Kubernetes).
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let id = id.filter(|i| !i.trim().is_empty()).unwrap_or_else(|| {
            format!(
                "{host}-{}-{}",
                std::process::id(),
                &Uuid::new_v4().simple().to_string()[..6]
            )
        });
        Self {
            id,
            host,
            last: Mutex::new(None),
        }
    }

    /// Forgets the last round, so the next [`owned`] runs one: connections were added,
    /// removed, or changed state in this process.
    pub fn forget(&self) {
        self.remember(None);
    }

    fn last(&self) -> Option<Round> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn remember(&self, round: Option<Round>) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = round;
    }
}

impl Engine {
    /// How long a connection lease lasts without renewal.
    pub fn lease_period(&self) -> chrono::Duration {
        chrono::Duration::seconds(
            i64::try_from(self.settings.workers.lease_secs.max(3)).unwrap_or(15),
        )
    }
}

/// Connections that are owned: every one that is not disconnected or uninstalled.
fn ownable(state_name: &str) -> bool {
    !matches!(state_name, state::DISCONNECTED | state::APP_REMOVED)
}

/// One ownership round: heartbeat, renew what this replica holds, give up what is beyond its
/// fair share, take free or run-out leases up to it. Returns the connections it owns.
pub async fn round(engine: &Engine) -> Result<HashSet<ConnectionId>, SyncError> {
    let now = engine.now();
    let period = engine.lease_period();
    let until = now + period;
    let replica = &engine.replica;
    let db = &engine.store;
    leases::heartbeat(db, &replica.id, &replica.host, now).await?;
    let replicas = leases::live_replicas(db, now - period).await?.len().max(1);
    let mut mine = leases::renew(db, &replica.id, now, until).await?;
    let connections: Vec<ConnectionId> = stored_connections::list(db)
        .await?
        .into_iter()
        .filter(|c| ownable(&c.state))
        .map(|c| c.id)
        .collect();
    let share = connections.len().div_ceil(replicas);
    if mine.len() > share {
        // The newest leases go first: a new replica takes them on its next round.
        let surplus = mine.split_off(share);
        leases::release(db, &replica.id, &surplus).await?;
        tracing::info!(replica = %replica.id, released = surplus.len(), share, "Handed connections over to other replicas.");
    }
    for connection in &connections {
        if mine.len() >= share {
            break;
        }
        if !mine.contains(connection)
            && leases::try_acquire(db, *connection, &replica.id, now, until).await?
        {
            tracing::info!(replica = %replica.id, connection_id = %connection, "This replica took over the connection.");
            mine.push(*connection);
        }
    }
    let owned: HashSet<ConnectionId> = mine.into_iter().collect();
    replica.remember(Some(Round {
        at: now,
        owned: owned.clone(),
    }));
    Ok(owned)
}

/// The connections this replica owns, after a round if the last one is older than a third of
/// the lease (so every lease is renewed well before it runs out).
pub async fn owned(engine: &Engine) -> Result<HashSet<ConnectionId>, SyncError> {
    let now = engine.now();
    match engine.replica.last() {
        Some(last) if now - last.at < engine.lease_period() / 3 && now >= last.at => Ok(last.owned),
        _ => round(engine).await,
    }
}

/// Whether this replica owns `connection` (see [`owned`]).
pub async fn owns(engine: &Engine, connection: ConnectionId) -> Result<bool, SyncError> {
    Ok(owned(engine).await?.contains(&connection))
}

/// A clean stop: every lease of this replica is given up at once and the replica forgotten,
/// so the others take its connections over on their next round.
pub async fn stop(engine: &Engine) -> Result<(), SyncError> {
    let replica = &engine.replica;
    replica.forget();
    leases::release_all(&engine.store, &replica.id).await?;
    let forgotten_before = engine.now() - engine.lease_period() * 10;
    leases::forget_replicas(&engine.store, &replica.id, forgotten_before).await?;
    tracing::info!(replica = %replica.id, "Gave up this replica's connections.");
    Ok(())
}

/// A connection's owner as the console and the admin API show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OwnerView {
    pub replica: String,
    /// Whether it is the replica answering.
    pub this_replica: bool,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Whether the lease ran out (its replica stopped renewing it).
    pub expired: bool,
}

/// Every connection's owner, by connection.
pub async fn owners(
    engine: &Engine,
) -> Result<std::collections::HashMap<ConnectionId, OwnerView>, SyncError> {
    let now = engine.now();
    Ok(leases::list(&engine.store)
        .await?
        .into_iter()
        .map(|l| {
            (
                ConnectionId::from(l.connection_id),
                OwnerView {
                    this_replica: l.owner == engine.replica.id,
                    replica: l.owner,
                    acquired_at: l.acquired_at,
                    expires_at: l.expires_at,
                    expired: l.expires_at <= now,
                },
            )
        })
        .collect())
}
