//! Model-based property tests of the link state machine: an app contact, a CRM person and
//! tandem between them, driven through random interleavings of edits on both sides, writes that
//! land, lose their answer or are killed, notifications that arrive late, twice or never, and
//! polls. The app edits `name` only and CRM users edit `phone` only (as in the chaos runs), so
//! each field has exactly one expected final value: after a drain both sides hold it.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::ids::Timestamp;
use crate::link::{LinkState, RemoteCheck, RemoteSource};
use crate::merge::{MergePolicy, Side};
use crate::value::{FieldKey, FieldValue, Snapshot};

fn key(name: &str) -> FieldKey {
    FieldKey::new(name).unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    /// The clock moves on by this many milliseconds.
    Tick(i64),
    AppEdit,
    /// The app user undoes their last edit: the name goes back to the value before it.
    AppUndo,
    CrmEdit,
    /// tandem sends what is pending (if nothing is in flight).
    PushSend,
    /// The request in flight is carried out by the CRM.
    PushLand,
    /// The answer of a landed request reaches tandem.
    PushAnswer,
    /// The request in flight fails without an answer (timeout, 5xx): it may have landed.
    PushUnknown,
    /// The CRM refuses the request in flight (a 4xx).
    PushRefused,
    /// tandem is killed: whatever was in flight is forgotten by tandem.
    Kill,
    /// A queued notification is delivered (index modulo the queue; it stays queued when
    /// `keep` is set, to be delivered again).
    Deliver {
        index: usize,
        keep: bool,
    },
    /// A notification is lost.
    Drop(usize),
    /// tandem reads the person (a re-read serialised with the contact's writes).
    Poll,
    /// A poll reads a page holding the person ...
    PollRead,
    /// ... and applies it later (writes may have been recorded meanwhile).
    PollApply(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0i64..1_500).prop_map(Op::Tick),
        3 => Just(Op::AppEdit),
        1 => Just(Op::AppUndo),
        3 => Just(Op::CrmEdit),
        3 => Just(Op::PushSend),
        3 => Just(Op::PushLand),
        2 => Just(Op::PushAnswer),
        1 => Just(Op::PushUnknown),
        1 => Just(Op::Kill),
        3 => (0usize..8, any::<bool>()).prop_map(|(index, keep)| Op::Deliver { index, keep }),
        1 => (0usize..8).prop_map(Op::Drop),
        1 => Just(Op::Poll),
        2 => Just(Op::PollRead),
        2 => (0usize..4).prop_map(Op::PollApply),
    ]
}

#[derive(Debug, Clone)]
struct InFlight {
    writes: BTreeMap<FieldKey, FieldValue>,
    /// The CRM's state right after it carried the request out, once it did.
    landed: Option<Snapshot>,
}

#[derive(Debug)]
struct World {
    now: i64,
    edits: u32,
    local: Snapshot,
    remote: Snapshot,
    link: LinkState,
    in_flight: Option<InFlight>,
    notifications: Vec<Snapshot>,
    /// Pages read by a poll, not applied yet.
    listed: Vec<Snapshot>,
    policy: MergePolicy,
    last_app_name: FieldValue,
    /// The name before the last app edit (what an undo goes back to).
    previous_app_name: FieldValue,
    last_crm_phone: FieldValue,
}

impl World {
    fn new() -> Self {
        let fields: BTreeMap<FieldKey, FieldValue> = [
            (key("name"), FieldValue::text("App 0")),
            (key("phone"), FieldValue::text("CRM 0")),
        ]
        .into_iter()
        .collect();
        let local = Snapshot {
            fields: fields.clone(),
            version: Timestamp(1_000),
        };
        let remote = Snapshot {
            fields: fields.clone(),
            version: Timestamp(1_000),
        };
        let mut link = LinkState {
            base: remote.clone(),
            ..LinkState::default()
        };
        link.versions.record(Side::Remote, remote.version);
        link.versions.record(Side::Local, local.version);
        Self {
            now: 2_000,
            edits: 0,
            local,
            remote,
            link,
            in_flight: None,
            notifications: Vec::new(),
            listed: Vec::new(),
            policy: MergePolicy::default(),
            last_app_name: FieldValue::text("App 0"),
            previous_app_name: FieldValue::text("App 0"),
            last_crm_phone: FieldValue::text("CRM 0"),
        }
    }

    /// The CRM stamps changes in whole seconds.
    fn crm_stamp(&self) -> Timestamp {
        Timestamp(self.now.div_euclid(1000) * 1000)
    }

    fn crm_changed(&mut self) {
        self.remote.version = self.crm_stamp();
        self.notifications.push(self.remote.clone());
    }

    fn merge(&mut self, remote: &Snapshot, source: RemoteSource) {
        match self.link.check_remote(remote, source) {
            RemoteCheck::Stale => {}
            RemoteCheck::Reread => {
                let fresh = self.remote.clone();
                self.merge(&fresh, RemoteSource::Fresh);
            }
            RemoteCheck::Merge => {
                let outcome = self.link.merge_remote(&self.local, remote, &self.policy);
                self.local.fields.extend(outcome.to_local);
            }
        }
    }

    fn step(&mut self, op: &Op) {
        self.now += 1;
        match op {
            Op::Tick(ms) => self.now += ms,
            Op::AppEdit => {
                self.edits += 1;
                let value = FieldValue::text(format!("App {}", self.edits));
                self.local.fields.insert(key("name"), value.clone());
                self.local.version = Timestamp(self.now);
                self.previous_app_name = std::mem::replace(&mut self.last_app_name, value);
            }
            Op::AppUndo => {
                let value = self.previous_app_name.clone();
                self.local.fields.insert(key("name"), value.clone());
                self.local.version = Timestamp(self.now);
                self.previous_app_name = std::mem::replace(&mut self.last_app_name, value);
            }
            Op::CrmEdit => {
                self.edits += 1;
                let value = FieldValue::text(format!("CRM {}", self.edits));
                self.remote.fields.insert(key("phone"), value.clone());
                self.last_crm_phone = value;
                self.crm_changed();
            }
            Op::PushSend => {
                if self.in_flight.is_none() {
                    let writes = self.link.pending_writes(&self.local.fields, &self.policy);
                    if !writes.is_empty() {
                        self.link.begin_write(&writes);
                        self.in_flight = Some(InFlight {
                            writes,
                            landed: None,
                        });
                    }
                }
            }
            Op::PushLand => {
                if let Some(flight) = self.in_flight.as_mut() {
                    if flight.landed.is_none() {
                        self.remote.fields.extend(flight.writes.clone());
                        self.remote.version = Timestamp(self.now.div_euclid(1000) * 1000);
                        flight.landed = Some(self.remote.clone());
                        self.notifications.push(self.remote.clone());
                    }
                }
            }
            Op::PushAnswer => {
                if let Some(InFlight {
                    writes,
                    landed: Some(answer),
                }) = self.in_flight.clone()
                {
                    self.in_flight = None;
                    // The answer is the person as it is now.
                    let answer = Snapshot {
                        fields: self.remote.fields.clone(),
                        version: self.remote.version.max(answer.version),
                    };
                    let normalised = self.link.write_succeeded(&writes, &answer);
                    self.local.fields.extend(normalised);
                    self.link.versions.record(Side::Local, self.local.version);
                    self.merge(&answer, RemoteSource::Fresh);
                }
            }
            Op::PushUnknown | Op::Kill => {
                // Either way tandem learns nothing more about this request; a request that has
                // not landed yet never will (the connection is gone).
                self.in_flight = None;
            }
            Op::PushRefused => {
                if let Some(InFlight {
                    writes,
                    landed: None,
                }) = self.in_flight.take()
                {
                    self.link.write_refused(&writes);
                }
            }
            Op::Deliver { index, keep } => {
                if !self.notifications.is_empty() {
                    let at = index % self.notifications.len();
                    let snapshot = if *keep {
                        self.notifications[at].clone()
                    } else {
                        self.notifications.remove(at)
                    };
                    self.merge(&snapshot, RemoteSource::Notification);
                }
            }
            Op::Drop(index) => {
                if !self.notifications.is_empty() {
                    let at = index % self.notifications.len();
                    self.notifications.remove(at);
                }
            }
            Op::Poll => {
                let fresh = self.remote.clone();
                self.merge(&fresh, RemoteSource::Fresh);
            }
            Op::PollRead => self.listed.push(self.remote.clone()),
            Op::PollApply(index) => {
                if !self.listed.is_empty() {
                    let at = index % self.listed.len();
                    let page = self.listed.remove(at);
                    self.merge(&page, RemoteSource::Listed);
                }
            }
        }
    }

    /// Faults off: late notifications arrive, writes go through, a final poll.
    fn drain(&mut self) {
        self.now += 5_000;
        if let Some(flight) = self.in_flight.take() {
            if flight.landed.is_some() {
                self.in_flight = Some(flight);
                self.step(&Op::PushAnswer);
            }
        }
        while !self.notifications.is_empty() {
            self.step(&Op::Deliver {
                index: 0,
                keep: false,
            });
        }
        for _ in 0..4 {
            self.step(&Op::Poll);
            self.step(&Op::Tick(1_000));
            self.step(&Op::PushSend);
            self.step(&Op::PushLand);
            self.step(&Op::PushAnswer);
        }
        self.step(&Op::Poll);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn any_interleaving_of_edits_writes_kills_and_late_or_repeated_notifications_converges_with_no_edit_lost(
        ops in prop::collection::vec(op(), 0..60)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.step(op);
        }
        world.drain();
        prop_assert_eq!(&world.local.fields, &world.remote.fields, "both sides agree");
        prop_assert_eq!(world.local.fields.get(&key("name")), Some(&world.last_app_name), "the last app edit holds");
        prop_assert_eq!(world.remote.fields.get(&key("phone")), Some(&world.last_crm_phone), "the last CRM edit holds");
        prop_assert!(world.link.pending_writes(&world.local.fields, &world.policy).is_empty(), "nothing left to write: no ping-pong");
    }

    #[test]
    fn redelivering_every_notification_after_a_drain_changes_nothing(
        ops in prop::collection::vec(op(), 0..40)
    ) {
        let mut world = World::new();
        let mut seen = Vec::new();
        for op in &ops {
            world.step(op);
            seen.extend(world.notifications.iter().cloned());
        }
        world.drain();
        let (local, remote) = (world.local.clone(), world.remote.clone());
        for snapshot in seen.into_iter().rev() {
            world.merge(&snapshot, RemoteSource::Notification);
        }
        prop_assert_eq!(&world.local, &local);
        prop_assert_eq!(&world.remote, &remote);
        prop_assert!(world.link.pending_writes(&world.local.fields, &world.policy).is_empty());
    }
}

#[test]
fn a_refused_value_is_not_pending_until_the_contact_changes_it() {
    let mut world = World::new();
    world.step(&Op::AppEdit);
    world.step(&Op::PushSend);
    world.step(&Op::PushRefused);
    assert!(world
        .link
        .pending_writes(&world.local.fields, &world.policy)
        .is_empty());
    world.step(&Op::AppEdit);
    assert_eq!(
        world
            .link
            .pending_writes(&world.local.fields, &world.policy)
            .len(),
        1
    );
}
