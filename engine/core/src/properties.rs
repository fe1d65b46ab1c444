//! Property tests over the merge: identity, idempotence, convergence, echo suppression and
//! tolerance of reordered and duplicated events.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::echo::{strip_echo, strip_echo_snapshot};
use crate::ids::Timestamp;
use crate::merge::{
    merge, merge_delta, ConflictRule, Direction, FieldRule, LinkVersions, MergePolicy, Side,
};
use crate::value::{FieldKey, FieldValue, Snapshot};

const KEYS: &[&str] = &[
    "name",
    "email",
    "org_name",
    "owner_id",
    "946947d1b02fd3ef20798d6112ec5d895a686a21",
    "0123456789abcdef0123456789abcdef01234567",
];

fn key(i: usize) -> FieldKey {
    FieldKey::new(KEYS[i % KEYS.len()]).unwrap()
}

/// A small value domain, so that sides often agree and often collide.
fn value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        prop::sample::select(vec!["a", "b", "c", ""]).prop_map(FieldValue::text),
        (0i64..3).prop_map(FieldValue::Option),
        prop::collection::vec(0i64..3, 0..3).prop_map(FieldValue::options),
        Just(FieldValue::Cleared),
        (0i32..3).prop_map(|n| FieldValue::number(f64::from(n)).unwrap()),
    ]
}

fn fields() -> impl Strategy<Value = BTreeMap<FieldKey, FieldValue>> {
    prop::collection::btree_map((0..KEYS.len()).prop_map(key), value(), 0..=KEYS.len())
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (fields(), 0i64..20).prop_map(|(fields, version)| Snapshot {
        fields,
        version: Timestamp(version),
    })
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Local), Just(Side::Remote)]
}

fn conflict_rule() -> impl Strategy<Value = ConflictRule> {
    prop_oneof![
        Just(ConflictRule::LastWriterWins),
        side().prop_map(ConflictRule::Owner)
    ]
}

/// Any policy: one-way fields, owners, either default.
fn policy() -> impl Strategy<Value = MergePolicy> {
    let rule = (
        prop_oneof![
            Just(Direction::Inbound),
            Just(Direction::Outbound),
            Just(Direction::Bidirectional)
        ],
        prop::option::of(side()),
    )
        .prop_map(|(direction, owner)| FieldRule { direction, owner });
    (
        conflict_rule(),
        prop::collection::btree_map((0..KEYS.len()).prop_map(key), rule, 0..=KEYS.len()),
    )
        .prop_map(|(default, fields)| MergePolicy { default, fields })
}

/// Policies whose fields are all bidirectional.
fn bidirectional_policy() -> impl Strategy<Value = MergePolicy> {
    (
        conflict_rule(),
        prop::collection::btree_map(
            (0..KEYS.len()).prop_map(key),
            prop::option::of(side()).prop_map(|owner| FieldRule {
                direction: Direction::Bidirectional,
                owner,
            }),
            0..=KEYS.len(),
        ),
    )
        .prop_map(|(default, fields)| MergePolicy { default, fields })
}

/// Both sides after tandem's writes are applied.
fn applied(local: &Snapshot, remote: &Snapshot, out: &crate::MergeOutcome) -> (Snapshot, Snapshot) {
    let mut local = local.clone();
    let mut remote = remote.clone();
    local.apply(&out.to_local);
    remote.apply(&out.to_remote);
    (local, remote)
}

/// The value a side effectively has: its own if known, else the agreed base.
fn effective<'a>(side: &'a Snapshot, base: &'a Snapshot, key: &FieldKey) -> Option<&'a FieldValue> {
    side.get(key).or_else(|| base.get(key))
}

/// A link as the engine keeps it, driven by full-snapshot events from either side.
#[derive(Debug, Clone, PartialEq)]
struct Link {
    base: Snapshot,
    local: Snapshot,
    remote: Snapshot,
    versions: LinkVersions,
}

impl Link {
    fn new(initial: &Snapshot) -> Self {
        Self {
            base: initial.clone(),
            local: initial.clone(),
            remote: initial.clone(),
            versions: LinkVersions {
                local: initial.version,
                remote: initial.version,
            },
        }
    }

    /// Ignores stale and duplicate events; otherwise merges the event and performs the writes.
    fn deliver(&mut self, side: Side, event: &Snapshot, policy: &MergePolicy) {
        if !self.versions.check(side, event.version).should_apply() {
            return;
        }
        self.versions.record(side, event.version);
        match side {
            Side::Local => self.local = event.clone(),
            Side::Remote => self.remote = event.clone(),
        }
        let out = merge(&self.base, &self.local, &self.remote, policy);
        self.local.apply(&out.to_local);
        self.remote.apply(&out.to_remote);
        self.base = out.new_base;
    }
}

/// A side's own history: each event is the full state after one more edit, at a newer version.
/// Versions are distinct across sides (local odd, remote even) so last-writer-wins has no ties.
fn history(initial: &Snapshot, edits: &[(usize, FieldValue)], side: Side) -> Vec<Snapshot> {
    let mut state = initial.clone();
    let parity = match side {
        Side::Local => 1,
        Side::Remote => 2,
    };
    edits
        .iter()
        .enumerate()
        .map(|(i, (field, value))| {
            state.fields.insert(key(*field), value.clone());
            state.version = Timestamp(100 + 10 * i64::try_from(i).unwrap() + parity);
            state.clone()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merging_a_state_with_itself_is_a_noop(s in snapshot(), policy in policy()) {
        let out = merge(&s, &s, &s, &policy);
        prop_assert!(out.is_noop());
        prop_assert!(out.conflicts.is_empty());
        prop_assert_eq!(out.new_base, s);
    }

    #[test]
    fn merge_is_idempotent_once_its_writes_are_applied(
        base in snapshot(), local in snapshot(), remote in snapshot(), policy in policy(),
    ) {
        let first = merge(&base, &local, &remote, &policy);
        let (local, remote) = applied(&local, &remote, &first);
        let second = merge(&first.new_base, &local, &remote, &policy);
        prop_assert!(second.is_noop(), "{:?}", second);
        prop_assert!(second.conflicts.is_empty());
        prop_assert_eq!(&second.new_base.fields, &first.new_base.fields);
    }

    #[test]
    fn merge_delta_makes_the_same_decisions_as_merge(
        base in snapshot(), local in snapshot(), remote in snapshot(), policy in policy(),
    ) {
        let full = merge(&base, &local, &remote, &policy);
        let delta = merge_delta(&base, &local, &remote, &policy);
        let mut rebuilt = base.clone();
        rebuilt.apply(&delta.base_changes);
        rebuilt.version = delta.base_version;
        prop_assert_eq!(&rebuilt, &full.new_base);
        prop_assert_eq!(&delta.to_local, &full.to_local);
        prop_assert_eq!(&delta.to_remote, &full.to_remote);
        prop_assert_eq!(&delta.conflicts, &full.conflicts);
        prop_assert_eq!(&delta.held_back, &full.held_back);
        prop_assert_eq!(delta.is_noop(), full.is_noop());
    }

    #[test]
    fn merge_is_deterministic(
        base in snapshot(), local in snapshot(), remote in snapshot(), policy in policy(),
    ) {
        prop_assert_eq!(
            merge(&base, &local, &remote, &policy),
            merge(&base, &local, &remote, &policy)
        );
    }

    #[test]
    fn applying_the_writes_makes_both_sides_equal_on_bidirectional_fields(
        base in snapshot(), local in snapshot(), remote in snapshot(),
        policy in bidirectional_policy(),
    ) {
        let out = merge(&base, &local, &remote, &policy);
        let (local, remote) = applied(&local, &remote, &out);
        let keys = base.fields.keys().chain(local.fields.keys()).chain(remote.fields.keys());
        for key in keys {
            let l = effective(&local, &out.new_base, key);
            let r = effective(&remote, &out.new_base, key);
            prop_assert_eq!(l, r, "{}", key);
            prop_assert_eq!(l, out.new_base.get(key), "{}", key);
        }
        prop_assert!(out.held_back.is_empty());
    }

    #[test]
    fn a_write_only_ever_goes_where_the_field_direction_allows(
        base in snapshot(), local in snapshot(), remote in snapshot(), policy in policy(),
    ) {
        let out = merge(&base, &local, &remote, &policy);
        for key in out.to_remote.keys() {
            prop_assert!(policy.rule_for(key).direction != Direction::Inbound);
        }
        for key in out.to_local.keys() {
            prop_assert!(policy.rule_for(key).direction != Direction::Outbound);
        }
    }

    #[test]
    fn the_echo_of_tandems_own_writes_never_produces_a_write(
        base in snapshot(), local in snapshot(), remote in snapshot(), policy in policy(),
        later in 1i64..10,
    ) {
        let out = merge(&base, &local, &remote, &policy);
        let (local, remote) = applied(&local, &remote, &out);
        // Pipedrive echoes our write to it; the app echoes our write to it.
        let remote_echo = Snapshot { fields: out.to_remote.clone(), version: Timestamp(remote.version.0 + later) };
        let local_echo = Snapshot { fields: out.to_local.clone(), version: Timestamp(local.version.0 + later) };
        prop_assert!(strip_echo(&remote_echo.fields, &out.to_remote).is_empty());
        prop_assert!(strip_echo(&local_echo.fields, &out.to_local).is_empty());
        let stripped = strip_echo_snapshot(&remote_echo, &out.to_remote);
        let after_remote_echo = merge(&out.new_base, &local, &stripped, &policy);
        prop_assert!(after_remote_echo.is_noop());
        let stripped = strip_echo_snapshot(&local_echo, &out.to_local);
        let after_local_echo = merge(&out.new_base, &stripped, &remote, &policy);
        prop_assert!(after_local_echo.is_noop());
        // Even unstripped, an echo that arrives before anything else changes is harmless.
        prop_assert!(merge(&out.new_base, &local, &remote_echo, &policy).is_noop());
        prop_assert!(merge(&out.new_base, &local_echo, &remote, &policy).is_noop());
    }

    #[test]
    fn a_stripped_echo_never_writes_its_fields_back_whatever_happened_since(
        base in snapshot(), local in snapshot(), last_written in fields(), extra in fields(),
        version in 0i64..40, policy in policy(),
    ) {
        // The event carries our own earlier write plus, maybe, genuine changes elsewhere.
        let mut event = Snapshot { fields: extra, version: Timestamp(version) };
        for (key, value) in &last_written {
            event.fields.insert(key.clone(), value.clone());
        }
        let out = merge(&base, &local, &strip_echo_snapshot(&event, &last_written), &policy);
        for key in last_written.keys() {
            prop_assert!(!out.to_local.contains_key(key), "{}", key);
            prop_assert!(!out.conflicts.iter().any(|c| &c.field == key), "{}", key);
        }
        // A pure echo has exactly the effect of no event at all.
        let echo = Snapshot { fields: last_written.clone(), version: Timestamp(version) };
        let quiet = Snapshot { fields: BTreeMap::new(), version: Timestamp(version) };
        prop_assert_eq!(
            merge(&base, &local, &strip_echo_snapshot(&echo, &last_written), &policy),
            merge(&base, &local, &quiet, &policy)
        );
    }

    #[test]
    fn a_stale_or_duplicate_event_changes_nothing(
        initial in snapshot(), events in prop::collection::vec((side(), snapshot()), 1..6),
        replay in any::<prop::sample::Index>(), policy in policy(),
    ) {
        let mut link = Link::new(&initial);
        for (side, event) in &events {
            link.deliver(*side, event, &policy);
        }
        let before = link.clone();
        let (side, event) = replay.get(&events);
        link.deliver(*side, event, &policy);
        prop_assert_eq!(link, before);
    }

    #[test]
    fn reordered_and_duplicated_events_converge_to_the_same_state_under_last_writer_wins(
        initial in fields(),
        event_side in side(),
        edits in prop::collection::vec((0..KEYS.len(), value()), 1..6),
        order in any::<u64>(),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let initial = Snapshot { fields: initial, version: Timestamp(0) };
        let policy = MergePolicy::default();
        // One side's webhooks, each the full state after an edit at a newer version, arrive in
        // any order and some twice; the other side stays as it was.
        let mut events = history(&initial, &edits, event_side);

        // Each event once, in version order.
        let mut expected = Link::new(&initial);
        for event in &events {
            expected.deliver(event_side, event, &policy);
        }
        // Only the newest event.
        let mut newest_only = Link::new(&initial);
        newest_only.deliver(event_side, events.last().unwrap(), &policy);

        // Shuffled (a deterministic Fisher-Yates from the generated seed), with duplicates.
        for index in &duplicates {
            let dup = index.get(&events).clone();
            events.push(dup);
        }
        let mut seed = order;
        for i in (1..events.len()).rev() {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from(seed >> 33).unwrap() % (i + 1);
            events.swap(i, j);
        }
        let mut actual = Link::new(&initial);
        for event in &events {
            actual.deliver(event_side, event, &policy);
        }
        prop_assert_eq!(&actual.local.fields, &expected.local.fields);
        prop_assert_eq!(&actual.remote.fields, &expected.remote.fields);
        prop_assert_eq!(&actual.local.fields, &newest_only.local.fields);
        prop_assert_eq!(&actual.remote.fields, &newest_only.remote.fields);
    }
}
