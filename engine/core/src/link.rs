//! The state of one link (a local contact ↔ a CRM person) and its pure transitions.
//!
//! A link remembers:
//! - the **base**: the field values both sides last agreed on;
//! - the newest **version** merged from each side (so late and duplicate snapshots change
//!   nothing);
//! - what tandem **last wrote** and the CRM confirmed (its echo is not a change);
//! - writes whose **outcome is unknown**: recorded *before* a request leaves (write-ahead), so
//!   a write that lands while tandem times out, loses the answer or is killed is still
//!   recognised as tandem's own when the CRM shows it later, instead of being taken for a
//!   CRM user's newer edit that would undo what the contact changed since;
//! - values the CRM **refused** (a write that cannot succeed): not sent again until the
//!   contact's value changes or an admin retries, so one refused edit is one request.
//!
//! The engine loads a link, asks it what to do (a remote snapshot arrives, what to write now,
//! a write began / succeeded / was refused, first meeting of a person), applies the answer in
//! the same transaction and saves the link. Every rule the chaos runs depend on lives here and
//! is property-tested (`properties.rs`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::merge::{merge_delta, Conflict, LinkVersions, MergePolicy, Side};
use crate::value::{FieldKey, FieldValue, Snapshot};

/// How many unknown-outcome values are remembered per field (the oldest are forgotten first).
pub const MAX_UNCERTAIN_PER_FIELD: usize = 8;

/// Where a remote snapshot comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteSource {
    /// Read from the CRM after every write of this link was recorded: a write's answer, or a
    /// re-read serialised with the contact's writes. It is the person as it is now.
    Fresh,
    /// Read by a poll, the initial sync or reconciliation: when, relative to tandem's own
    /// writes of this person, is not known (a page read before a write may be applied after
    /// it, with the same whole-second version).
    Listed,
    /// A pushed notification (webhook): possibly a late, duplicated or reordered copy.
    Notification,
}

/// What to do with a remote snapshot, before merging it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteCheck {
    /// Older than (or a copy of) what was merged: nothing to do.
    Stale,
    /// A notification with the same version as the merged state but values that add something:
    /// ambiguous (a second edit within the CRM's clock resolution, or a late copy of tandem's own
    /// earlier write). Re-read the person and merge that instead.
    Reread,
    /// Merge it.
    Merge,
}

/// What merging a remote snapshot decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteMerge {
    /// Values to write to the local contact.
    pub to_local: BTreeMap<FieldKey, FieldValue>,
    /// Whether the contact holds values the CRM lacks (a push is due).
    pub push: bool,
    /// Conflicts, with the winner and the reason.
    pub conflicts: Vec<Conflict>,
}

/// A link's merge state. See the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkState {
    /// What both sides last agreed on.
    pub base: Snapshot,
    /// The newest version merged from each side.
    pub versions: LinkVersions,
    /// What tandem last wrote to the CRM and the CRM confirmed, per field.
    pub last_written: BTreeMap<FieldKey, FieldValue>,
    /// Values sent to the CRM whose outcome is not known, per field, oldest first.
    pub uncertain: BTreeMap<FieldKey, Vec<FieldValue>>,
    /// Values the CRM refused, per field.
    pub refused: BTreeMap<FieldKey, FieldValue>,
}

impl LinkState {
    /// Whether `value` in the CRM's `key` may be tandem's own write (confirmed or not).
    pub fn is_ours(&self, key: &FieldKey, value: &FieldValue) -> bool {
        self.last_written.get(key) == Some(value)
            || self.uncertain.get(key).is_some_and(|vs| vs.contains(value))
    }

    /// The fields of a remote snapshot that are not tandem's own echo.
    pub fn strip_echo(
        &self,
        fields: &BTreeMap<FieldKey, FieldValue>,
    ) -> BTreeMap<FieldKey, FieldValue> {
        fields
            .iter()
            .filter(|(key, value)| !self.is_ours(key, value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// How a remote snapshot compares with what was merged.
    pub fn check_remote(&self, remote: &Snapshot, source: RemoteSource) -> RemoteCheck {
        match remote.version.cmp(&self.versions.remote) {
            std::cmp::Ordering::Less => RemoteCheck::Stale,
            std::cmp::Ordering::Greater => RemoteCheck::Merge,
            // A fresh read is the truth now: a tie is merged (a true copy merges to nothing).
            std::cmp::Ordering::Equal if source == RemoteSource::Fresh => RemoteCheck::Merge,
            // A listed page or a notification with the version already merged may predate a
            // write tandem recorded within the same second: only what adds something is
            // re-read.
            std::cmp::Ordering::Equal => {
                let news = self.strip_echo(&remote.fields);
                if news.iter().all(|(k, v)| self.base.get(k) == Some(v)) {
                    RemoteCheck::Stale
                } else {
                    RemoteCheck::Reread
                }
            }
        }
    }

    /// Merges a remote snapshot (already checked with [`Self::check_remote`]) against the
    /// contact's mapped values `local`: the base moves where both sides now agree, fields still
    /// to be written to the CRM keep their old base (so the push sees them as changed).
    pub fn merge_remote(
        &mut self,
        local: &Snapshot,
        remote: &Snapshot,
        policy: &MergePolicy,
    ) -> RemoteMerge {
        self.note_landed(remote);
        // A field the CRM holds because tandem wrote it is agreed at that value (tandem sent the
        // contact's value): a contact that differs from it changed since, and is pushed, even
        // when it went back to the value the base held before the write (whose answer was
        // lost). Left at the old base, such a contact would look unchanged and the CRM would
        // keep tandem's older write.
        for (key, value) in &remote.fields {
            if self.last_written.get(key) == Some(value) {
                self.base.fields.insert(key.clone(), value.clone());
            }
        }
        let changes = Snapshot {
            fields: self.strip_echo(&remote.fields),
            version: remote.version,
        };
        let delta = merge_delta(&self.base, local, &changes, policy);
        let mut final_local = local.fields.clone();
        final_local.extend(delta.to_local.clone());
        for (key, value) in &remote.fields {
            if final_local.get(key) == Some(value) {
                self.base.fields.insert(key.clone(), value.clone());
            }
        }
        self.base.version = self.base.version.max(remote.version);
        self.versions.record(Side::Remote, remote.version);
        // What the CRM now holds supersedes what we last wrote.
        self.last_written
            .retain(|k, v| remote.fields.get(k).is_none_or(|r| r == v));
        RemoteMerge {
            // A value the CRM refused is not a reason to write again.
            push: delta
                .to_remote
                .iter()
                .any(|(k, v)| self.refused.get(k) != Some(v)),
            to_local: delta.to_local,
            conflicts: delta.conflicts,
        }
    }

    /// A person met for the first time, linked to an existing contact: merged against an empty
    /// base (the newer side wins differing fields; a field only one side has is copied to the
    /// other), or against the remote itself when `created_by_us_untouched` (a person tandem
    /// created for this contact and nobody edited since holds exactly what tandem sent, so where
    /// the contact differs it changed after the create read it, and is pushed).
    pub fn first_meeting(
        local: &Snapshot,
        remote: &Snapshot,
        created_by_us_untouched: bool,
        policy: &MergePolicy,
    ) -> (Self, RemoteMerge) {
        let base = if created_by_us_untouched {
            remote.clone()
        } else {
            Snapshot::default()
        };
        let delta = merge_delta(&base, local, remote, policy);
        let mut final_local = local.fields.clone();
        final_local.extend(delta.to_local.clone());
        let fields = if created_by_us_untouched {
            base.fields
        } else {
            remote
                .fields
                .iter()
                .filter(|(k, v)| final_local.get(*k) == Some(*v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut state = Self {
            base: Snapshot {
                fields,
                version: remote.version,
            },
            ..Self::default()
        };
        state.versions.record(Side::Remote, remote.version);
        (
            state,
            RemoteMerge {
                push: !delta.to_remote.is_empty(),
                to_local: delta.to_local,
                conflicts: delta.conflicts,
            },
        )
    }

    /// A person the CRM just created from the contact's values `sent` (`remote` is the
    /// create's answer), with the fields the CRM normalised (see [`Self::write_succeeded`]).
    pub fn created(
        sent: &BTreeMap<FieldKey, FieldValue>,
        remote: &Snapshot,
    ) -> (Self, BTreeMap<FieldKey, FieldValue>) {
        let mut state = Self::default();
        let normalised = state.write_succeeded(sent, remote);
        state.base.version = remote.version;
        state.versions.record(Side::Remote, remote.version);
        (state, normalised)
    }

    /// The contact's mapped values (`local`, already restricted to mapped fields) that must be
    /// written to the CRM now: flowing out, different from the base, and not a value the CRM
    /// refused.
    pub fn pending_writes(
        &self,
        local: &BTreeMap<FieldKey, FieldValue>,
        policy: &MergePolicy,
    ) -> BTreeMap<FieldKey, FieldValue> {
        local
            .iter()
            .filter(|(key, value)| {
                policy.rule_for(key).direction.flows_from(Side::Local)
                    && self.base.get(key) != Some(*value)
                    && self.refused.get(*key) != Some(*value)
            })
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }

    /// A write is about to leave: its values are ours until the CRM answers (write-ahead; the
    /// engine saves this before sending).
    pub fn begin_write(&mut self, writes: &BTreeMap<FieldKey, FieldValue>) {
        for (key, value) in writes {
            let values = self.uncertain.entry(key.clone()).or_default();
            values.retain(|v| v != value);
            values.push(value.clone());
            if values.len() > MAX_UNCERTAIN_PER_FIELD {
                values.remove(0);
            }
        }
    }

    /// The CRM accepted a write and answered with the person as it is now. The answered values
    /// become the base and what tandem last wrote; earlier unknown-outcome writes of these
    /// fields are settled (this one was sent after them). Returns the fields the CRM stored in
    /// a normalised form (different from what was sent): the contact takes that form too, or it
    /// would differ from the base forever and be sent again.
    pub fn write_succeeded(
        &mut self,
        writes: &BTreeMap<FieldKey, FieldValue>,
        remote: &Snapshot,
    ) -> BTreeMap<FieldKey, FieldValue> {
        let mut normalised = BTreeMap::new();
        for (key, sent) in writes {
            let agreed = remote.get(key).cloned().unwrap_or_else(|| sent.clone());
            if &agreed != sent {
                normalised.insert(key.clone(), agreed.clone());
            }
            self.base.fields.insert(key.clone(), agreed.clone());
            self.last_written.insert(key.clone(), agreed);
            self.uncertain.remove(key);
            self.refused.remove(key);
        }
        normalised
    }

    /// The CRM refused a write that cannot succeed as it is: it did not land, and these values
    /// are not sent again until they change.
    pub fn write_refused(&mut self, writes: &BTreeMap<FieldKey, FieldValue>) {
        for (key, value) in writes {
            if let Some(values) = self.uncertain.get_mut(key) {
                values.retain(|v| v != value);
                if values.is_empty() {
                    self.uncertain.remove(key);
                }
            }
            self.refused.insert(key.clone(), value.clone());
        }
    }

    /// An admin asked for refused writes to be tried again (or the mapping changed).
    pub fn forget_refused(&mut self) {
        self.refused.clear();
    }

    /// The CRM shows one of our unknown-outcome values: it landed. It becomes what tandem last
    /// wrote, and it and the writes sent before it are settled (writes of one contact leave one
    /// at a time, in order).
    fn note_landed(&mut self, remote: &Snapshot) {
        for (key, value) in &remote.fields {
            let Some(values) = self.uncertain.get_mut(key) else {
                continue;
            };
            if let Some(at) = values.iter().position(|v| v == value) {
                values.drain(..=at);
                if values.is_empty() {
                    self.uncertain.remove(key);
                }
                self.last_written.insert(key.clone(), value.clone());
            }
        }
    }
}
