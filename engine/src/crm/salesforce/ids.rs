//! Salesforce ids behind the boundary's `i64` ids (ADR 0013).
//!
//! An id is 15 case-sensitive characters plus a 3-character case-safe suffix; it does not fit
//! an `i64`. The surrogate is the first 53 bits of SHA-256 over the 15-character form: stable
//! across processes and restarts (a stored link keeps meaning the same record), equal for the
//! 15- and 18-character forms, positive, and exact as an `f64` and a JavaScript number (owner
//! ids travel as numbers in field values and JSON). The way back is a per-connection registry filled
//! by every record the connector reads or writes, and persisted by the use-cases
//! (`store::record_keys`): seeded from storage when a connection is loaded, journaled as it
//! learns. A surrogate it has never seen is a classified "not found". Two ids of one connection with the same surrogate are
//! refused loudly rather than confused (probability about n²/2⁵⁴: 6·10⁻⁵ for a million
//! records of one connection).

use std::sync::Arc;
use tandem_core::{ConnectionId, PersonId};

use dashmap::DashMap;
use sha2::{Digest, Sha256};

/// The boundary's `i64` for a Salesforce key (an id, or a text key such as a stage name).
pub fn surrogate(key: &str) -> i64 {
    let canonical = if key.len() == 18 && key.is_ascii() {
        &key[..15]
    } else {
        key
    };
    let digest = Sha256::digest(canonical.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let value = (u64::from_be_bytes(bytes) >> 11) as i64;
    value.max(1)
}

/// The boundary's person id of a Lead or Contact id.
pub fn person_surrogate(key: &str) -> PersonId {
    PersonId::new(surrogate(key)).expect("a surrogate is at least 1")
}

/// A surrogate collision: two keys of one connection hash alike.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("two Salesforce ids share the surrogate {0}")]
pub struct Collision(pub i64);

/// Which Salesforce key each surrogate stands for, per connection. Seeded from storage when a
/// connection is first loaded in a process ([`SfKeys::seed`]); every key learned afterwards is
/// also journaled until the use-cases take it ([`SfKeys::take_new`]) and store it, so the way
/// back survives restarts.
#[derive(Debug, Clone, Default)]
pub struct SfKeys {
    keys: Arc<DashMap<(ConnectionId, i64), String>>,
    learned: Arc<DashMap<ConnectionId, Vec<(i64, String)>>>,
    seeded: Arc<DashMap<ConnectionId, ()>>,
}

impl SfKeys {
    /// The surrogate of `key`, remembered for the way back.
    pub fn remember(&self, connection: ConnectionId, key: &str) -> Result<i64, Collision> {
        let id = surrogate(key);
        let mut fresh = false;
        let entry = self.keys.entry((connection, id)).or_insert_with(|| {
            fresh = true;
            key.to_owned()
        });
        if entry.get(..15) == key.get(..15) || *entry == key {
            drop(entry);
            if fresh {
                self.learned
                    .entry(connection)
                    .or_default()
                    .push((id, key.to_owned()));
            }
            Ok(id)
        } else {
            Err(Collision(id))
        }
    }

    /// The key a surrogate stands for, if this process has seen it.
    pub fn resolve(&self, connection: ConnectionId, id: i64) -> Option<String> {
        self.keys.get(&(connection, id)).map(|k| k.clone())
    }

    /// Whether the connection's stored keys were loaded into this registry.
    pub fn is_seeded(&self, connection: ConnectionId) -> bool {
        self.seeded.contains_key(&connection)
    }

    /// Loads keys kept in storage (not journaled again).
    pub fn seed(&self, connection: ConnectionId, keys: Vec<(i64, String)>) {
        for (id, key) in keys {
            self.keys.entry((connection, id)).or_insert(key);
        }
        self.seeded.insert(connection, ());
    }

    /// The keys learned since the last call, for storage.
    pub fn take_new(&self, connection: ConnectionId) -> Vec<(i64, String)> {
        self.learned
            .remove(&connection)
            .map(|(_, keys)| keys)
            .unwrap_or_default()
    }

    /// Forgets a connection's keys (disconnect).
    pub fn forget(&self, connection: ConnectionId) {
        self.keys.retain(|(c, _), _| *c != connection);
        self.learned.remove(&connection);
        self.seeded.remove(&connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn surrogates_are_stable_positive_and_agree_for_15_and_18_character_ids() {
        let long = "00Q5g00000AbCdEFGH";
        assert_eq!(surrogate(long), surrogate(&long[..15]));
        assert!(surrogate(long) > 0);
        assert_ne!(surrogate("00Q5g00000AbCdE"), surrogate("00Q5g00000abCdE"));
        assert_eq!(surrogate(long), surrogate("00Q5g00000AbCdEXYZ"));
    }

    #[test]
    fn the_registry_maps_back_per_connection() {
        let keys = SfKeys::default();
        let (a, b) = (
            ConnectionId::new(Uuid::new_v4()),
            ConnectionId::new(Uuid::new_v4()),
        );
        let id = keys.remember(a, "0035g00000XyZabAAA").unwrap();
        assert_eq!(keys.resolve(a, id).as_deref(), Some("0035g00000XyZabAAA"));
        assert_eq!(keys.resolve(b, id), None);
        keys.forget(a);
        assert_eq!(keys.resolve(a, id), None);
    }

    #[test]
    fn learned_keys_are_journaled_once_and_seeded_keys_not_at_all() {
        let keys = SfKeys::default();
        let a = ConnectionId::new(Uuid::new_v4());
        assert!(!keys.is_seeded(a));
        keys.seed(
            a,
            vec![(surrogate("00Q000000000001AAA"), "00Q000000000001AAA".into())],
        );
        assert!(keys.is_seeded(a));
        keys.remember(a, "00Q000000000001AAA").unwrap();
        let id = keys.remember(a, "0035g00000XyZabAAA").unwrap();
        keys.remember(a, "0035g00000XyZabAAA").unwrap();
        assert_eq!(
            keys.take_new(a),
            vec![(id, "0035g00000XyZabAAA".to_owned())]
        );
        assert!(keys.take_new(a).is_empty());
    }
}
