//! The field-level three-way merge of a link's base against both sides, and the ordering rules
//! that keep old and duplicate events from changing anything.
//!
//! Rules, field by field (a field absent from a side's snapshot is unchanged on that side):
//! - unchanged on both sides: nothing;
//! - changed on one side: written to the other, if the field's direction lets it flow that way
//!   (a one-way field changed on its receiving side is held back: not written, base unchanged);
//! - changed on both sides to the same value: no write, the base takes the value;
//! - changed on both sides to different values: a conflict, decided by the field's direction
//!   (a one-way field always takes its source side), else its fixed owner, else the policy
//!   default (last writer wins on the sides' own versions; on a tie Pipedrive wins, so the
//!   outcome never depends on arrival order).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::Timestamp;
use crate::value::{FieldKey, FieldValue, Snapshot};

/// One side of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The marketing-automation app's contact.
    Local,
    /// The CRM (Pipedrive) person.
    Remote,
}

impl Side {
    /// The other side.
    pub const fn other(self) -> Self {
        match self {
            Self::Local => Self::Remote,
            Self::Remote => Self::Local,
        }
    }
}

/// Which way a mapped field flows (from the field mapping).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Pipedrive → app only.
    Inbound,
    /// App → Pipedrive only.
    Outbound,
    /// Both ways.
    #[default]
    Bidirectional,
}

impl Direction {
    /// Whether a change made on `from` may be written to the other side.
    pub const fn flows_from(self, from: Side) -> bool {
        matches!(
            (self, from),
            (Self::Bidirectional, _)
                | (Self::Inbound, Side::Remote)
                | (Self::Outbound, Side::Local)
        )
    }
}

/// How a conflict on a bidirectional field without its own owner is decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictRule {
    /// The side with the newer version wins; Pipedrive wins a tie.
    #[default]
    LastWriterWins,
    /// This side always wins.
    Owner(Side),
}

/// The mapping's rule for one field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldRule {
    /// Which way the field flows.
    pub direction: Direction,
    /// The side that wins conflicts on this field; `None` = the policy default.
    #[serde(default)]
    pub owner: Option<Side>,
}

/// The merge policy of a connection: a default conflict rule and per-field rules.
/// `MergePolicy::default()` is last writer wins, every field bidirectional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergePolicy {
    /// How conflicts on fields without a fixed owner are decided.
    pub default: ConflictRule,
    /// Per-field rules; a field not listed is bidirectional with the default rule.
    #[serde(default)]
    pub fields: BTreeMap<FieldKey, FieldRule>,
}

impl MergePolicy {
    /// The rule that applies to a field.
    pub fn rule_for(&self, key: &FieldKey) -> FieldRule {
        self.fields.get(key).copied().unwrap_or_default()
    }
}

/// Why a conflict went the way it did (for the sync log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ConflictReason {
    /// The newer side won (Pipedrive on a tie).
    LastWriterWins {
        /// The local side's version.
        local_version: Timestamp,
        /// The remote side's version.
        remote_version: Timestamp,
    },
    /// The field has a fixed owner (per field or policy-wide).
    FieldOwner,
    /// The field is one-way; its source side wins.
    OneWay {
        /// The field's direction.
        direction: Direction,
    },
}

/// A field changed on both sides to different values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The field.
    pub field: FieldKey,
    /// The local value.
    pub local: FieldValue,
    /// The remote value.
    pub remote: FieldValue,
    /// The side whose value was kept.
    pub winner: Side,
    /// Why.
    pub reason: ConflictReason,
}

/// What a merge decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeOutcome {
    /// Values to write to the local contact.
    pub to_local: BTreeMap<FieldKey, FieldValue>,
    /// Values to write to the Pipedrive person.
    pub to_remote: BTreeMap<FieldKey, FieldValue>,
    /// The link's new base: what both sides agree on once the writes are done. Its version is
    /// the newest of the three inputs' versions.
    pub new_base: Snapshot,
    /// Every conflict, with the winner and the reason, in field order.
    pub conflicts: Vec<Conflict>,
    /// Fields changed on a side that a one-way mapping does not let flow out (not written).
    pub held_back: Vec<(FieldKey, Side)>,
}

impl MergeOutcome {
    /// Whether nothing needs writing to either side.
    pub fn is_noop(&self) -> bool {
        self.to_local.is_empty() && self.to_remote.is_empty()
    }

    /// The writes for one side.
    pub fn writes_to(&self, side: Side) -> &BTreeMap<FieldKey, FieldValue> {
        match side {
            Side::Local => &self.to_local,
            Side::Remote => &self.to_remote,
        }
    }
}

/// Merges one link field by field: `base` is what both sides last agreed on, `local` and
/// `remote` are the sides' current values (absent fields are unchanged). Pure and deterministic.
///
/// Builds the whole new base (a clone of `base` plus the changes); [`merge_delta`] returns only
/// the changed base fields and is cheaper when the caller stores the base per field.
pub fn merge(
    base: &Snapshot,
    local: &Snapshot,
    remote: &Snapshot,
    policy: &MergePolicy,
) -> MergeOutcome {
    let delta = merge_delta(base, local, remote, policy);
    let mut new_base = Snapshot {
        fields: base.fields.clone(),
        version: delta.base_version,
    };
    for (key, value) in delta.base_changes {
        new_base.fields.insert(key, value);
    }
    MergeOutcome {
        to_local: delta.to_local,
        to_remote: delta.to_remote,
        new_base,
        conflicts: delta.conflicts,
        held_back: delta.held_back,
    }
}

/// What a merge decided, with the base as a set of changes rather than a whole snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeDelta {
    /// Values to write to the local contact.
    pub to_local: BTreeMap<FieldKey, FieldValue>,
    /// Values to write to the Pipedrive person.
    pub to_remote: BTreeMap<FieldKey, FieldValue>,
    /// Base fields that take a new value (all others keep theirs).
    pub base_changes: BTreeMap<FieldKey, FieldValue>,
    /// The new base's version: the newest of the three inputs' versions.
    pub base_version: Timestamp,
    /// Every conflict, with the winner and the reason, in field order.
    pub conflicts: Vec<Conflict>,
    /// Fields changed on a side that a one-way mapping does not let flow out (not written).
    pub held_back: Vec<(FieldKey, Side)>,
}

impl MergeDelta {
    /// Whether nothing needs writing to either side.
    pub fn is_noop(&self) -> bool {
        self.to_local.is_empty() && self.to_remote.is_empty()
    }
}

/// [`merge`] without building the whole new base: the same decisions, with the base returned as
/// [`MergeDelta::base_changes`].
pub fn merge_delta(
    base: &Snapshot,
    local: &Snapshot,
    remote: &Snapshot,
    policy: &MergePolicy,
) -> MergeDelta {
    let mut out = MergeDelta {
        to_local: BTreeMap::new(),
        to_remote: BTreeMap::new(),
        base_changes: BTreeMap::new(),
        base_version: base.version.max(local.version).max(remote.version),
        conflicts: Vec::new(),
        held_back: Vec::new(),
    };
    let mut bs = base.fields.iter().peekable();
    let mut ls = local.fields.iter().peekable();
    let mut rs = remote.fields.iter().peekable();
    while let Some((key, in_base, in_local, in_remote)) = next_key(
        bs.peek().map(|e| e.0),
        ls.peek().map(|e| e.0),
        rs.peek().map(|e| e.0),
    ) {
        let b = if in_base {
            bs.next().map(|e| e.1)
        } else {
            None
        };
        let l = if in_local {
            ls.next().map(|e| e.1)
        } else {
            None
        };
        let r = if in_remote {
            rs.next().map(|e| e.1)
        } else {
            None
        };
        merge_field(
            &mut out,
            key,
            b,
            l,
            r,
            local.version,
            remote.version,
            policy,
        );
    }
    out
}

/// The smallest of the three maps' next keys, and which maps have it next (two comparisons per
/// key in the common case where all three hold it).
fn next_key<'a>(
    base: Option<&'a FieldKey>,
    local: Option<&'a FieldKey>,
    remote: Option<&'a FieldKey>,
) -> Option<(&'a FieldKey, bool, bool, bool)> {
    let (min, in_base, in_local) = match (base, local) {
        (Some(b), Some(l)) => match l.cmp(b) {
            Ordering::Less => (l, false, true),
            Ordering::Equal => (b, true, true),
            Ordering::Greater => (b, true, false),
        },
        (Some(b), None) => (b, true, false),
        (None, Some(l)) => (l, false, true),
        (None, None) => return remote.map(|r| (r, false, false, true)),
    };
    Some(match remote.map(|r| (r, r.cmp(min))) {
        Some((r, Ordering::Less)) => (r, false, false, true),
        Some((_, Ordering::Equal)) => (min, in_base, in_local, true),
        Some((_, Ordering::Greater)) | None => (min, in_base, in_local, false),
    })
}

#[allow(clippy::too_many_arguments)]
fn merge_field(
    out: &mut MergeDelta,
    key: &FieldKey,
    base: Option<&FieldValue>,
    local: Option<&FieldValue>,
    remote: Option<&FieldValue>,
    local_version: Timestamp,
    remote_version: Timestamp,
    policy: &MergePolicy,
) {
    let local_change = local.filter(|v| Some(*v) != base);
    let remote_change = remote.filter(|v| Some(*v) != base);
    if local_change.is_none() && remote_change.is_none() {
        return;
    }
    let rule = policy.rule_for(key);
    match (local_change, remote_change) {
        (None, None) => {}
        (Some(value), None) => propagate(out, key, value, Side::Local, rule.direction),
        (None, Some(value)) => propagate(out, key, value, Side::Remote, rule.direction),
        (Some(l), Some(r)) if l == r => {
            out.base_changes.insert(key.clone(), l.clone());
        }
        // A field the base never held (newly mapped, or a first meeting) that one side has
        // empty: nothing to choose, the value is copied over.
        (Some(value), Some(empty))
            if base.is_none() && empty.is_cleared() && rule.direction.flows_from(Side::Local) =>
        {
            propagate(out, key, value, Side::Local, rule.direction);
        }
        (Some(empty), Some(value))
            if base.is_none() && empty.is_cleared() && rule.direction.flows_from(Side::Remote) =>
        {
            propagate(out, key, value, Side::Remote, rule.direction);
        }
        (Some(l), Some(r)) => {
            let (winner, reason) = match (rule.direction, rule.owner, policy.default) {
                (Direction::Inbound, ..) => (
                    Side::Remote,
                    ConflictReason::OneWay {
                        direction: Direction::Inbound,
                    },
                ),
                (Direction::Outbound, ..) => (
                    Side::Local,
                    ConflictReason::OneWay {
                        direction: Direction::Outbound,
                    },
                ),
                (Direction::Bidirectional, Some(owner), _)
                | (Direction::Bidirectional, None, ConflictRule::Owner(owner)) => {
                    (owner, ConflictReason::FieldOwner)
                }
                (Direction::Bidirectional, None, ConflictRule::LastWriterWins) => (
                    last_writer(local_version, remote_version),
                    ConflictReason::LastWriterWins {
                        local_version,
                        remote_version,
                    },
                ),
            };
            let kept = match winner {
                Side::Local => l,
                Side::Remote => r,
            };
            out.base_changes.insert(key.clone(), kept.clone());
            let writes = match winner {
                Side::Local => &mut out.to_remote,
                Side::Remote => &mut out.to_local,
            };
            writes.insert(key.clone(), kept.clone());
            out.conflicts.push(Conflict {
                field: key.clone(),
                local: l.clone(),
                remote: r.clone(),
                winner,
                reason,
            });
        }
    }
}

fn propagate(
    out: &mut MergeDelta,
    key: &FieldKey,
    value: &FieldValue,
    from: Side,
    direction: Direction,
) {
    if !direction.flows_from(from) {
        out.held_back.push((key.clone(), from));
        return;
    }
    out.base_changes.insert(key.clone(), value.clone());
    let writes = match from {
        Side::Local => &mut out.to_remote,
        Side::Remote => &mut out.to_local,
    };
    writes.insert(key.clone(), value.clone());
}

/// The winner under last-writer-wins: the newer version; the CRM on a tie. Versions are
/// compared at the resolution both sides have: whole seconds (the CRM's `update_time` has no
/// more), so an app edit at 12:00:00.471 and a CRM edit at 12:00:00.900 are a tie, which the
/// CRM (the system of record for persons) wins.
pub fn last_writer(local_version: Timestamp, remote_version: Timestamp) -> Side {
    if whole_seconds(local_version) > whole_seconds(remote_version) {
        Side::Local
    } else {
        Side::Remote
    }
}

/// How an incoming event's version compares with the newest version already merged from the
/// same side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    /// Newer than anything merged: apply it.
    Newer,
    /// The same version as the state already merged: a redelivery; ignore it. (If its content
    /// differs, two edits shared a version, e.g. within Pipedrive's one-second resolution:
    /// re-fetch the record instead of trusting either event.)
    Duplicate,
    /// Older than the state already merged: ignore it.
    Older,
}

impl Freshness {
    /// Whether the event should be merged.
    pub const fn should_apply(self) -> bool {
        matches!(self, Self::Newer)
    }
}

/// Compares an event's version (the side's own `update_time`, never arrival time) with the
/// newest version already merged from that side.
pub fn freshness(event_version: Timestamp, merged_version: Timestamp) -> Freshness {
    match event_version.cmp(&merged_version) {
        Ordering::Greater => Freshness::Newer,
        Ordering::Equal => Freshness::Duplicate,
        Ordering::Less => Freshness::Older,
    }
}

/// Whether an event must be ignored because the state already merged from its side is as new
/// or newer (out-of-order or duplicate delivery).
pub fn is_stale(event_version: Timestamp, merged_version: Timestamp) -> bool {
    !freshness(event_version, merged_version).should_apply()
}

/// The newest version merged from each side of a link; the engine stores it with the link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkVersions {
    /// Newest local version merged.
    pub local: Timestamp,
    /// Newest remote version merged (Pipedrive `update_time`, including the ones returned by
    /// tandem's own writes).
    pub remote: Timestamp,
}

impl LinkVersions {
    /// The newest version merged from a side.
    pub const fn get(&self, side: Side) -> Timestamp {
        match side {
            Side::Local => self.local,
            Side::Remote => self.remote,
        }
    }

    /// How an event from `side` at `version` compares with what was merged.
    pub fn check(&self, side: Side, version: Timestamp) -> Freshness {
        freshness(version, self.get(side))
    }

    /// Records that `version` from `side` was merged (never moves backwards).
    pub fn record(&mut self, side: Side, version: Timestamp) {
        let slot = match side {
            Side::Local => &mut self.local,
            Side::Remote => &mut self.remote,
        };
        *slot = (*slot).max(version);
    }
}

/// Whole seconds: the resolution both sides' versions share (the CRM keeps whole seconds).
pub const fn whole_seconds(version: Timestamp) -> i64 {
    version.0.div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str) -> FieldKey {
        FieldKey::new(name).unwrap()
    }

    fn t(text: &str) -> FieldValue {
        FieldValue::text(text)
    }

    fn snap(version: i64, fields: &[(&str, FieldValue)]) -> Snapshot {
        Snapshot {
            fields: fields
                .iter()
                .map(|(key, value)| (k(key), value.clone()))
                .collect(),
            version: Timestamp(version),
        }
    }

    fn writes(fields: &[(&str, FieldValue)]) -> BTreeMap<FieldKey, FieldValue> {
        fields
            .iter()
            .map(|(key, value)| (k(key), value.clone()))
            .collect()
    }

    fn policy_with(field: &str, rule: FieldRule) -> MergePolicy {
        MergePolicy {
            default: ConflictRule::LastWriterWins,
            fields: [(k(field), rule)].into(),
        }
    }

    #[test]
    fn merging_identical_states_is_a_noop() {
        let s = snap(1, &[("name", t("Ada")), ("email", FieldValue::Cleared)]);
        let out = merge(&s, &s, &s, &MergePolicy::default());
        assert!(out.is_noop());
        assert!(out.conflicts.is_empty());
        assert_eq!(out.new_base, s);
    }

    #[test]
    fn a_field_changed_only_locally_is_written_to_pipedrive() {
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(2, &[("name", t("Ada L."))]);
        let remote = snap(1, &[("name", t("Ada"))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_remote, writes(&[("name", t("Ada L."))]));
        assert!(out.to_local.is_empty());
        assert_eq!(out.new_base.get(&k("name")), Some(&t("Ada L.")));
        assert!(out.conflicts.is_empty());
    }

    #[test]
    fn a_field_changed_only_in_pipedrive_is_written_to_the_local_contact() {
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(1, &[("name", t("Ada"))]);
        let remote = snap(2, &[("name", t("Ada B."))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_local, writes(&[("name", t("Ada B."))]));
        assert!(out.to_remote.is_empty());
        assert_eq!(out.new_base.version, Timestamp(2));
    }

    #[test]
    fn a_field_absent_from_an_event_is_unknown_and_not_a_change() {
        let base = snap(1, &[("name", t("Ada")), ("org_name", t("ACME"))]);
        let local = snap(1, &[("name", t("Ada")), ("org_name", t("ACME"))]);
        let remote = snap(2, &[("name", t("Ada B."))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_local, writes(&[("name", t("Ada B."))]));
        assert_eq!(out.new_base.get(&k("org_name")), Some(&t("ACME")));
    }

    #[test]
    fn a_cleared_field_is_a_change_that_propagates() {
        let base = snap(1, &[("org_name", t("ACME"))]);
        let local = snap(1, &[("org_name", t("ACME"))]);
        let remote = snap(2, &[("org_name", FieldValue::Cleared)]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_local, writes(&[("org_name", FieldValue::Cleared)]));
    }

    #[test]
    fn a_field_new_on_one_side_and_unknown_on_the_other_is_propagated() {
        let base = snap(0, &[]);
        let local = snap(1, &[("label", FieldValue::Option(3))]);
        let remote = snap(0, &[]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_remote, writes(&[("label", FieldValue::Option(3))]));
    }

    #[test]
    fn a_field_changed_on_both_sides_to_the_same_value_writes_nothing_and_updates_the_base() {
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(2, &[("name", t("Ada K."))]);
        let remote = snap(3, &[("name", t("Ada K."))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert!(out.is_noop());
        assert!(out.conflicts.is_empty());
        assert_eq!(out.new_base.get(&k("name")), Some(&t("Ada K.")));
    }

    #[test]
    fn empty_text_on_one_side_and_cleared_on_the_other_is_the_same_value() {
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(2, &[("name", t(""))]);
        let remote = snap(3, &[("name", FieldValue::Cleared)]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert!(out.is_noop());
    }

    #[test]
    fn a_conflict_goes_to_the_newer_local_side_under_last_writer_wins() {
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(5_000, &[("name", t("Local"))]);
        let remote = snap(4_000, &[("name", t("Remote"))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_remote, writes(&[("name", t("Local"))]));
        assert!(out.to_local.is_empty());
        assert_eq!(
            out.conflicts,
            vec![Conflict {
                field: k("name"),
                local: t("Local"),
                remote: t("Remote"),
                winner: Side::Local,
                reason: ConflictReason::LastWriterWins {
                    local_version: Timestamp(5_000),
                    remote_version: Timestamp(4_000),
                },
            }]
        );
    }

    #[test]
    fn a_conflict_goes_to_the_newer_remote_side_under_last_writer_wins() {
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(4, &[("name", t("Local"))]);
        let remote = snap(5, &[("name", t("Remote"))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_local, writes(&[("name", t("Remote"))]));
        assert_eq!(out.conflicts[0].winner, Side::Remote);
        assert_eq!(out.new_base.get(&k("name")), Some(&t("Remote")));
    }

    #[test]
    fn a_conflict_with_equal_versions_goes_to_pipedrive() {
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(5, &[("name", t("Local"))]);
        let remote = snap(5, &[("name", t("Remote"))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.conflicts[0].winner, Side::Remote);
        assert_eq!(out.to_local, writes(&[("name", t("Remote"))]));
    }

    #[test]
    fn an_app_edit_and_a_later_crm_edit_within_the_same_second_are_a_tie_the_crm_wins() {
        // The app edit at 12:00:00.471, the Pipedrive edit at 12:00:00.900, which Pipedrive
        // stamps 12:00:00: compared in whole seconds, a tie.
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(43_200_471, &[("name", t("Local"))]);
        let remote = snap(43_200_000, &[("name", t("Remote"))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.conflicts[0].winner, Side::Remote);
        assert_eq!(out.to_local, writes(&[("name", t("Remote"))]));
        // One second later, the app edit is newer.
        let local = snap(43_201_002, &[("name", t("Local"))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.conflicts[0].winner, Side::Local);
    }

    #[test]
    fn a_newly_mapped_field_empty_on_one_side_takes_the_other_sides_value_whatever_the_versions() {
        // The base never held the field; Pipedrive's is empty and stamped in the same second.
        let base = snap(1, &[]);
        let local = snap(43_200_471, &[("deal_size", t("1234.5"))]);
        let remote = snap(43_200_000, &[("deal_size", FieldValue::Cleared)]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_remote, writes(&[("deal_size", t("1234.5"))]));
        assert!(out.conflicts.is_empty());
        let out = merge(&base, &remote, &local, &MergePolicy::default());
        assert_eq!(out.to_local, writes(&[("deal_size", t("1234.5"))]));
    }

    #[test]
    fn a_field_with_a_fixed_owner_wins_conflicts_even_when_older() {
        let policy = policy_with(
            "owner_id",
            FieldRule {
                direction: Direction::Bidirectional,
                owner: Some(Side::Local),
            },
        );
        let base = snap(1, &[("owner_id", FieldValue::Option(1))]);
        let local = snap(2, &[("owner_id", FieldValue::Option(2))]);
        let remote = snap(9, &[("owner_id", FieldValue::Option(3))]);
        let out = merge(&base, &local, &remote, &policy);
        assert_eq!(
            out.to_remote,
            writes(&[("owner_id", FieldValue::Option(2))])
        );
        assert_eq!(out.conflicts[0].reason, ConflictReason::FieldOwner);
    }

    #[test]
    fn a_fixed_owner_does_not_stop_the_other_side_from_changing_an_uncontested_field() {
        let policy = policy_with(
            "owner_id",
            FieldRule {
                direction: Direction::Bidirectional,
                owner: Some(Side::Local),
            },
        );
        let base = snap(1, &[("owner_id", FieldValue::Option(1))]);
        let local = snap(1, &[("owner_id", FieldValue::Option(1))]);
        let remote = snap(2, &[("owner_id", FieldValue::Option(3))]);
        let out = merge(&base, &local, &remote, &policy);
        assert_eq!(out.to_local, writes(&[("owner_id", FieldValue::Option(3))]));
    }

    #[test]
    fn a_policy_wide_owner_decides_conflicts_on_unlisted_fields() {
        let policy = MergePolicy {
            default: ConflictRule::Owner(Side::Remote),
            fields: BTreeMap::new(),
        };
        let base = snap(1, &[("name", t("Ada"))]);
        let local = snap(9, &[("name", t("Local"))]);
        let remote = snap(2, &[("name", t("Remote"))]);
        let out = merge(&base, &local, &remote, &policy);
        assert_eq!(out.conflicts[0].winner, Side::Remote);
        assert_eq!(out.conflicts[0].reason, ConflictReason::FieldOwner);
    }

    #[test]
    fn an_inbound_field_changed_locally_is_held_back_and_not_written_to_pipedrive() {
        let policy = policy_with(
            "label",
            FieldRule {
                direction: Direction::Inbound,
                owner: None,
            },
        );
        let base = snap(1, &[("label", FieldValue::Option(1))]);
        let local = snap(2, &[("label", FieldValue::Option(2))]);
        let remote = snap(1, &[("label", FieldValue::Option(1))]);
        let out = merge(&base, &local, &remote, &policy);
        assert!(out.is_noop());
        assert_eq!(out.held_back, vec![(k("label"), Side::Local)]);
        assert_eq!(out.new_base.get(&k("label")), Some(&FieldValue::Option(1)));
    }

    #[test]
    fn an_inbound_field_changed_in_pipedrive_is_written_locally() {
        let policy = policy_with(
            "label",
            FieldRule {
                direction: Direction::Inbound,
                owner: None,
            },
        );
        let base = snap(1, &[("label", FieldValue::Option(1))]);
        let local = snap(1, &[("label", FieldValue::Option(1))]);
        let remote = snap(2, &[("label", FieldValue::Option(4))]);
        let out = merge(&base, &local, &remote, &policy);
        assert_eq!(out.to_local, writes(&[("label", FieldValue::Option(4))]));
    }

    #[test]
    fn an_inbound_field_changed_on_both_sides_takes_pipedrive_even_when_local_is_newer() {
        let policy = policy_with(
            "label",
            FieldRule {
                direction: Direction::Inbound,
                owner: Some(Side::Local),
            },
        );
        let base = snap(1, &[("label", FieldValue::Option(1))]);
        let local = snap(9, &[("label", FieldValue::Option(2))]);
        let remote = snap(2, &[("label", FieldValue::Option(3))]);
        let out = merge(&base, &local, &remote, &policy);
        assert_eq!(out.to_local, writes(&[("label", FieldValue::Option(3))]));
        assert_eq!(
            out.conflicts[0].reason,
            ConflictReason::OneWay {
                direction: Direction::Inbound
            }
        );
    }

    #[test]
    fn an_outbound_field_changed_in_pipedrive_is_held_back_and_not_written_locally() {
        let policy = policy_with(
            "org_name",
            FieldRule {
                direction: Direction::Outbound,
                owner: None,
            },
        );
        let base = snap(1, &[("org_name", t("A"))]);
        let local = snap(1, &[("org_name", t("A"))]);
        let remote = snap(2, &[("org_name", t("B"))]);
        let out = merge(&base, &local, &remote, &policy);
        assert!(out.is_noop());
        assert_eq!(out.held_back, vec![(k("org_name"), Side::Remote)]);
    }

    #[test]
    fn an_outbound_field_changed_on_both_sides_takes_the_local_value() {
        let policy = policy_with(
            "org_name",
            FieldRule {
                direction: Direction::Outbound,
                owner: None,
            },
        );
        let base = snap(1, &[("org_name", t("A"))]);
        let local = snap(2, &[("org_name", t("L"))]);
        let remote = snap(9, &[("org_name", t("R"))]);
        let out = merge(&base, &local, &remote, &policy);
        assert_eq!(out.to_remote, writes(&[("org_name", t("L"))]));
        assert_eq!(out.conflicts[0].winner, Side::Local);
    }

    #[test]
    fn independent_fields_changed_on_opposite_sides_both_propagate() {
        let base = snap(1, &[("name", t("Ada")), ("org_name", t("ACME"))]);
        let local = snap(2, &[("name", t("Ada L.")), ("org_name", t("ACME"))]);
        let remote = snap(3, &[("name", t("Ada")), ("org_name", t("Initech"))]);
        let out = merge(&base, &local, &remote, &MergePolicy::default());
        assert_eq!(out.to_remote, writes(&[("name", t("Ada L."))]));
        assert_eq!(out.to_local, writes(&[("org_name", t("Initech"))]));
        assert!(out.conflicts.is_empty());
    }

    #[test]
    fn the_new_base_version_is_the_newest_input_version() {
        let out = merge(
            &snap(3, &[]),
            &snap(7, &[]),
            &snap(5, &[]),
            &MergePolicy::default(),
        );
        assert_eq!(out.new_base.version, Timestamp(7));
    }

    #[test]
    fn an_older_event_is_stale_and_the_same_event_twice_is_a_duplicate() {
        assert_eq!(freshness(Timestamp(5), Timestamp(4)), Freshness::Newer);
        assert_eq!(freshness(Timestamp(4), Timestamp(4)), Freshness::Duplicate);
        assert_eq!(freshness(Timestamp(3), Timestamp(4)), Freshness::Older);
        assert!(is_stale(Timestamp(3), Timestamp(4)));
        assert!(is_stale(Timestamp(4), Timestamp(4)));
        assert!(!is_stale(Timestamp(5), Timestamp(4)));
    }

    #[test]
    fn link_versions_only_move_forward_and_per_side() {
        let mut versions = LinkVersions::default();
        versions.record(Side::Remote, Timestamp(10));
        versions.record(Side::Remote, Timestamp(7));
        assert_eq!(versions.remote, Timestamp(10));
        assert_eq!(versions.local, Timestamp::EPOCH);
        assert_eq!(versions.check(Side::Remote, Timestamp(9)), Freshness::Older);
        assert_eq!(versions.check(Side::Local, Timestamp(9)), Freshness::Newer);
    }

    #[test]
    fn a_conflict_serialises_for_the_sync_log() {
        let conflict = Conflict {
            field: k("name"),
            local: t("L"),
            remote: t("R"),
            winner: Side::Remote,
            reason: ConflictReason::LastWriterWins {
                local_version: Timestamp(1),
                remote_version: Timestamp(2),
            },
        };
        let json = serde_json::to_string(&conflict).unwrap();
        assert_eq!(
            json,
            r#"{"field":"name","local":{"type":"text","value":"L"},"remote":{"type":"text","value":"R"},"winner":"remote","reason":{"rule":"last_writer_wins","local_version":1,"remote_version":2}}"#
        );
    }

    #[test]
    fn a_direction_says_which_side_may_send() {
        assert!(Direction::Inbound.flows_from(Side::Remote));
        assert!(!Direction::Inbound.flows_from(Side::Local));
        assert!(Direction::Outbound.flows_from(Side::Local));
        assert!(!Direction::Outbound.flows_from(Side::Remote));
        assert!(Direction::Bidirectional.flows_from(Side::Local));
        assert_eq!(Side::Local.other(), Side::Remote);
    }
}
