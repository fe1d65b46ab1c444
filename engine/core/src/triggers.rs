//! Journey triggers: what a CRM change means for the app's journeys (issue 22). Pure: a
//! change is a record's state before and after (the CRM's webhook gives the current record and
//! the previous values of the fields that changed); the answer is the list of trigger events,
//! at most one of each kind, in a stable order.

/// A deal's state, as far as triggers care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DealState {
    pub stage_id: Option<i64>,
    pub pipeline_id: Option<i64>,
    /// `open`, `won`, `lost` (or `deleted`).
    pub status: Option<String>,
    pub owner_id: Option<i64>,
    pub lost_reason: Option<String>,
    /// The lead the deal was converted from (Pipedrive's `lead_id`), when it was.
    pub lead_id: Option<String>,
}

/// An activity's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityState {
    pub done: bool,
}

/// An activity's state for the date trigger: done or not, and when it is due (Unix seconds:
/// the due date's time, or the end of its day when it has none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActivityDue {
    pub done: bool,
    pub deleted: bool,
    pub due_at: Option<i64>,
}

/// An organization's state: the fields that matter to a journey (name, address, owner, custom
/// fields, …), each as its canonical text; bookkeeping fields are left out by
/// [`organization_triggers`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizationState {
    pub fields: std::collections::BTreeMap<String, String>,
}

/// A lead's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeadState {
    pub person_id: Option<i64>,
}

/// A person's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonState {
    pub owner_id: Option<i64>,
}

/// One change of one CRM record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<T> {
    Created(T),
    Changed { before: T, after: T },
    Deleted,
}

/// A trigger event, as the app receives it (`type` is [`Trigger::kind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    DealCreated,
    DealStageChanged {
        from_stage: Option<i64>,
        to_stage: Option<i64>,
        from_pipeline: Option<i64>,
        to_pipeline: Option<i64>,
    },
    DealWon,
    DealLost {
        reason: Option<String>,
    },
    DealReopened,
    DealOwnerChanged {
        from: Option<i64>,
        to: Option<i64>,
    },
    DealDeleted,
    ActivityCreated,
    ActivityCompleted,
    PersonOwnerChanged {
        from: Option<i64>,
        to: Option<i64>,
    },
    PersonDeleted,
    PersonMerged {
        into: i64,
    },
    /// Fields of the organization changed (their names, sorted).
    OrganizationChanged {
        fields: Vec<String>,
    },
    LeadCreated,
    /// A lead was converted: into the deal `deal_id` (Pipedrive, where a lead is a deal to
    /// be), or into the person `person_id` with the organization and deal the conversion made,
    /// if it made them (Salesforce, where a Lead becomes a Contact).
    LeadConverted {
        lead_id: String,
        deal_id: Option<i64>,
        person_id: Option<i64>,
        organization_id: Option<i64>,
    },
    /// An open activity's due time (Unix seconds) passed.
    ActivityOverdue {
        due_at: i64,
    },
}

impl Trigger {
    /// The event's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DealCreated => "deal.created",
            Self::DealStageChanged { .. } => "deal.stage_changed",
            Self::DealWon => "deal.won",
            Self::DealLost { .. } => "deal.lost",
            Self::DealReopened => "deal.reopened",
            Self::DealOwnerChanged { .. } => "deal.owner_changed",
            Self::DealDeleted => "deal.deleted",
            Self::ActivityCreated => "activity.created",
            Self::ActivityCompleted => "activity.completed",
            Self::PersonOwnerChanged { .. } => "person.owner_changed",
            Self::PersonDeleted => "person.deleted",
            Self::PersonMerged { .. } => "person.merged",
            Self::OrganizationChanged { .. } => "organization.changed",
            Self::LeadCreated => "lead.created",
            Self::LeadConverted { .. } => "lead.converted",
            Self::ActivityOverdue { .. } => "activity.overdue",
        }
    }

    /// Every event type, for subscriptions' filters and the documentation.
    pub const KINDS: [&'static str; 16] = [
        "deal.created",
        "deal.stage_changed",
        "deal.won",
        "deal.lost",
        "deal.reopened",
        "deal.owner_changed",
        "deal.deleted",
        "activity.created",
        "activity.completed",
        "person.owner_changed",
        "person.deleted",
        "person.merged",
        "organization.changed",
        "lead.created",
        "lead.converted",
        "activity.overdue",
    ];
}

impl Trigger {
    /// Whether a Salesforce connection sends this kind: every one, from the records it reads
    /// (deals and activities from its Opportunities and Tasks, persons and leads from its Leads
    /// and Contacts, organizations from its Accounts).
    pub fn from_salesforce(kind: &str) -> bool {
        Self::KINDS.contains(&kind)
    }
}

/// What the CRM connections can tell, for [`unavailable_reason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TriggerSources {
    /// Connections not disconnected, of any CRM.
    pub connections: usize,
    /// Of those, Pipedrive connections (every trigger, two with the mirror); the others are
    /// Salesforce connections, whose Opportunities, Tasks, Leads, Contacts and Accounts become
    /// every trigger.
    pub pipedrive: usize,
    /// Whether any of those Pipedrive connections keeps a live mirror (the date trigger scans
    /// it, and lead webhooks are registered only with it).
    pub mirrored: bool,
}

/// Why a subscription's event type `kind` cannot fire with these connections, or `None` when
/// it can (or is not a CRM trigger): a subscription is told instead of waiting in silence.
pub fn unavailable_reason(kind: &str, sources: TriggerSources) -> Option<&'static str> {
    if !Trigger::KINDS.contains(&kind) {
        return None;
    }
    if sources.connections == 0 {
        return Some(
            "no CRM connection is active: CRM triggers start once Pipedrive or Salesforce is connected",
        );
    }
    // Salesforce connections send every kind, from the records they read (Opportunities,
    // Tasks, Leads, Contacts, Accounts); Pipedrive's need its mirror for two.
    if sources.connections > sources.pipedrive && Trigger::from_salesforce(kind) {
        return None;
    }
    if matches!(kind, "activity.overdue" | "lead.created") && !sources.mirrored {
        return Some("needs the live mirror of the Pipedrive connection: switch it on (the connection card, or POST /admin/api/connections/{id}/mirror {\"enabled\": true})");
    }
    None
}

/// The triggers of a deal's change: created / deleted, else a stage move (stage or pipeline),
/// a status transition (won, lost, reopened: open after won or lost), an owner change.
/// A deal created from a lead (`lead_id` set; `deal_id` is the new deal's id) also converts the
/// lead: Pipedrive creates the deal and deletes the lead, and the deal is the only one of the two
/// changes that says so.
pub fn deal_triggers(change: &Change<DealState>, deal_id: Option<i64>) -> Vec<Trigger> {
    let (before, after) = match change {
        Change::Created(state) => {
            let mut out = vec![Trigger::DealCreated];
            if let (Some(lead_id), Some(deal_id)) = (&state.lead_id, deal_id) {
                out.push(Trigger::LeadConverted {
                    lead_id: lead_id.clone(),
                    deal_id: Some(deal_id),
                    person_id: None,
                    organization_id: None,
                });
            }
            return out;
        }
        Change::Deleted => return vec![Trigger::DealDeleted],
        Change::Changed { before, after } => (before, after),
    };
    let mut out = Vec::new();
    if before.stage_id != after.stage_id || before.pipeline_id != after.pipeline_id {
        out.push(Trigger::DealStageChanged {
            from_stage: before.stage_id,
            to_stage: after.stage_id,
            from_pipeline: before.pipeline_id,
            to_pipeline: after.pipeline_id,
        });
    }
    if before.status != after.status {
        match after.status.as_deref() {
            Some("won") => out.push(Trigger::DealWon),
            Some("lost") => out.push(Trigger::DealLost {
                reason: after.lost_reason.clone(),
            }),
            Some("open") if matches!(before.status.as_deref(), Some("won" | "lost")) => {
                out.push(Trigger::DealReopened);
            }
            Some("deleted") => out.push(Trigger::DealDeleted),
            _ => {}
        }
    }
    if before.owner_id != after.owner_id {
        out.push(Trigger::DealOwnerChanged {
            from: before.owner_id,
            to: after.owner_id,
        });
    }
    out
}

/// The triggers of an activity's change: created, and completed when it became done.
pub fn activity_triggers(change: &Change<ActivityState>) -> Vec<Trigger> {
    match change {
        Change::Created(state) if state.done => {
            vec![Trigger::ActivityCreated, Trigger::ActivityCompleted]
        }
        Change::Created(_) => vec![Trigger::ActivityCreated],
        Change::Changed { before, after } if !before.done && after.done => {
            vec![Trigger::ActivityCompleted]
        }
        Change::Changed { .. } | Change::Deleted => Vec::new(),
    }
}

/// The triggers of a person's change: an owner change, a delete, or a merge into `merged_into`.
pub fn person_triggers(change: &Change<PersonState>, merged_into: Option<i64>) -> Vec<Trigger> {
    match change {
        Change::Deleted => match merged_into {
            Some(into) => vec![Trigger::PersonMerged { into }],
            None => vec![Trigger::PersonDeleted],
        },
        Change::Changed { before, after } if before.owner_id != after.owner_id => {
            vec![Trigger::PersonOwnerChanged {
                from: before.owner_id,
                to: after.owner_id,
            }]
        }
        Change::Created(_) | Change::Changed { .. } => Vec::new(),
    }
}

/// How a person a read finds gone left (a CRM without webhooks: Salesforce's `deleted`
/// resource, a merge, a Lead's conversion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonGone {
    Deleted,
    /// Merged into the person `into` (the survivor).
    Merged {
        into: i64,
    },
    /// A lead converted into the person `into`, with the organization and deal the conversion
    /// made, if any.
    Converted {
        lead_id: String,
        into: i64,
        organization_id: Option<i64>,
        deal_id: Option<i64>,
    },
}

/// The triggers of a person found by reading (a CRM without webhooks, whose persons are read
/// by a change poll): `heard` is the state the app last heard (`None`: never; `heard_gone`:
/// it heard the person leave, so nothing more is news), `now` the state read, `gone` how the
/// read finds it gone. A person never heard of is news only as a new lead (`new_lead`: a lead
/// created since the last read, by someone other than tandem, and linked to an app contact);
/// its owner then is no change.
pub fn read_person_triggers(
    heard: Option<&PersonState>,
    heard_gone: bool,
    now: &PersonState,
    gone: Option<&PersonGone>,
    new_lead: bool,
) -> Vec<Trigger> {
    if heard_gone {
        return Vec::new();
    }
    match (gone, heard) {
        (
            Some(PersonGone::Converted {
                lead_id,
                into,
                organization_id,
                deal_id,
            }),
            _,
        ) => vec![Trigger::LeadConverted {
            lead_id: lead_id.clone(),
            deal_id: *deal_id,
            person_id: Some(*into),
            organization_id: *organization_id,
        }],
        (Some(PersonGone::Merged { into }), _) => person_triggers(&Change::Deleted, Some(*into)),
        (Some(PersonGone::Deleted), _) => person_triggers(&Change::Deleted, None),
        (None, None) if new_lead => vec![Trigger::LeadCreated],
        (None, None) => Vec::new(),
        (None, Some(before)) => person_triggers(
            &Change::Changed {
                before: before.clone(),
                after: now.clone(),
            },
            None,
        ),
    }
}

/// Fields an organization's change carries that are no change to a journey: Pipedrive's
/// bookkeeping (times, counters, who last touched it), and Salesforce's on an Account (its
/// `attributes`, id and times).
pub const ORGANIZATION_BOOKKEEPING: [&str; 21] = [
    "id",
    "update_time",
    "add_time",
    "version",
    "last_activity_id",
    "next_activity_id",
    "last_activity_date",
    "next_activity_date",
    "people_count",
    "open_deals_count",
    "label",
    "last_updated_by_user_id",
    "attributes",
    "Id",
    "CreatedDate",
    "SystemModstamp",
    "LastModifiedDate",
    "LastModifiedById",
    "LastActivityDate",
    "LastViewedDate",
    "LastReferencedDate",
];

/// The triggers of an organization's change: `organization.changed` naming the fields whose
/// value differs (bookkeeping left out); nothing for a create, a delete or a change of nothing
/// that matters (Pipedrive sends a change when only the counters moved).
pub fn organization_triggers(change: &Change<OrganizationState>) -> Vec<Trigger> {
    let Change::Changed { before, after } = change else {
        return Vec::new();
    };
    let mut fields: Vec<String> = before
        .fields
        .keys()
        .chain(after.fields.keys())
        .filter(|k| !ORGANIZATION_BOOKKEEPING.contains(&k.as_str()))
        .filter(|k| before.fields.get(*k) != after.fields.get(*k))
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    if fields.is_empty() {
        Vec::new()
    } else {
        vec![Trigger::OrganizationChanged { fields }]
    }
}

/// The triggers of a lead's change: created only (a conversion shows on the deal it became,
/// see [`deal_triggers`]).
pub fn lead_triggers(change: &Change<LeadState>) -> Vec<Trigger> {
    match change {
        Change::Created(_) => vec![Trigger::LeadCreated],
        Change::Changed { .. } | Change::Deleted => Vec::new(),
    }
}

/// How long after its due time an activity is still announced as overdue: seven days.
pub const OVERDUE_HORIZON_SECS: i64 = 7 * 24 * 3600;

/// The date trigger: whether the activity is overdue at `now` (Unix seconds) and was not yet
/// announced for this due time (`announced`: the due time last announced for it). Done or
/// deleted activities and activities without a due time never are; an activity rescheduled to
/// a new due time is eligible again once that one passes.
/// An activity that has been overdue for longer than [`OVERDUE_HORIZON_SECS`] (an old open
/// activity when the mirror is first filled) is not news: it is not announced.
pub fn activity_overdue(
    activity: &ActivityDue,
    announced: Option<i64>,
    now: i64,
) -> Option<Trigger> {
    let due_at = activity.due_at?;
    let recent = now.saturating_sub(due_at) <= OVERDUE_HORIZON_SECS;
    (!activity.done && !activity.deleted && due_at <= now && recent && announced != Some(due_at))
        .then_some(Trigger::ActivityOverdue { due_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn event_types_that_cannot_fire_say_why_and_the_others_say_nothing() {
        let all = TriggerSources {
            connections: 1,
            pipedrive: 1,
            mirrored: true,
        };
        for kind in Trigger::KINDS {
            assert_eq!(unavailable_reason(kind, all), None, "{kind}");
        }
        assert_eq!(
            unavailable_reason(
                "contact.updated",
                TriggerSources {
                    connections: 0,
                    pipedrive: 0,
                    mirrored: false
                }
            ),
            None
        );
        let unmirrored = TriggerSources {
            mirrored: false,
            ..all
        };
        assert!(unavailable_reason("activity.overdue", unmirrored)
            .is_some_and(|r| r.contains("mirror")));
        assert!(unavailable_reason("lead.created", unmirrored).is_some());
        assert_eq!(unavailable_reason("deal.won", unmirrored), None);
        let salesforce_only = TriggerSources {
            connections: 1,
            pipedrive: 0,
            mirrored: false,
        };
        for kind in Trigger::KINDS {
            assert_eq!(
                unavailable_reason(kind, salesforce_only),
                None,
                "{kind}: from the Opportunities, Tasks, Leads, Contacts and Accounts"
            );
        }
        // Beside a Pipedrive connection without its mirror, the Tasks of a Salesforce one
        // still become overdue and its Leads are still created; Pipedrive's leads alone need
        // the mirror.
        let both_unmirrored = TriggerSources {
            connections: 2,
            pipedrive: 1,
            mirrored: false,
        };
        assert_eq!(
            unavailable_reason("activity.overdue", both_unmirrored),
            None
        );
        assert_eq!(
            unavailable_reason("lead.created", both_unmirrored),
            None,
            "Salesforce's new Leads"
        );
        let pipedrive_unmirrored = TriggerSources {
            connections: 1,
            pipedrive: 1,
            mirrored: false,
        };
        assert!(unavailable_reason("lead.created", pipedrive_unmirrored).is_some());
        let none = TriggerSources {
            connections: 0,
            pipedrive: 0,
            mirrored: false,
        };
        assert!(
            unavailable_reason("deal.won", none).is_some_and(|r| r.contains("no CRM connection"))
        );
    }

    fn deal(stage: i64, status: &str, owner: i64) -> DealState {
        DealState {
            stage_id: Some(stage),
            pipeline_id: Some(1),
            status: Some(status.to_owned()),
            owner_id: Some(owner),
            lost_reason: (status == "lost").then(|| "Too expensive".to_owned()),
            lead_id: None,
        }
    }

    #[test]
    fn a_deal_moved_won_and_handed_over_in_one_change_gives_three_events_in_a_stable_order() {
        let change = Change::Changed {
            before: deal(1, "open", 7),
            after: deal(2, "won", 8),
        };
        let kinds: Vec<_> = deal_triggers(&change, None)
            .iter()
            .map(Trigger::kind)
            .collect();
        assert_eq!(
            kinds,
            ["deal.stage_changed", "deal.won", "deal.owner_changed"]
        );
    }

    #[test]
    fn a_lost_deal_carries_its_reason_and_reopening_it_is_its_own_event() {
        let lost = deal_triggers(
            &Change::Changed {
                before: deal(1, "open", 7),
                after: deal(1, "lost", 7),
            },
            None,
        );
        assert_eq!(
            lost,
            [Trigger::DealLost {
                reason: Some("Too expensive".into())
            }]
        );
        let reopened = deal_triggers(
            &Change::Changed {
                before: deal(1, "lost", 7),
                after: deal(1, "open", 7),
            },
            None,
        );
        assert_eq!(reopened, [Trigger::DealReopened]);
    }

    #[test]
    fn activities_trigger_on_creation_and_on_becoming_done_only() {
        let done = ActivityState { done: true };
        let open = ActivityState { done: false };
        assert_eq!(
            activity_triggers(&Change::Created(open.clone())),
            [Trigger::ActivityCreated]
        );
        assert_eq!(
            activity_triggers(&Change::Changed {
                before: open.clone(),
                after: done.clone()
            }),
            [Trigger::ActivityCompleted]
        );
        assert!(activity_triggers(&Change::Changed {
            before: done,
            after: open
        })
        .is_empty());
    }

    #[test]
    fn a_deleted_person_is_merged_when_the_crm_names_a_survivor() {
        assert_eq!(
            person_triggers(&Change::Deleted, Some(9)),
            [Trigger::PersonMerged { into: 9 }]
        );
        assert_eq!(
            person_triggers(&Change::Deleted, None),
            [Trigger::PersonDeleted]
        );
    }

    #[test]
    fn a_person_read_tells_an_owner_change_a_delete_a_merge_and_a_conversion_once_each() {
        let owned = |o: i64| PersonState { owner_id: Some(o) };
        assert_eq!(
            read_person_triggers(Some(&owned(1)), false, &owned(2), None, false),
            [Trigger::PersonOwnerChanged {
                from: Some(1),
                to: Some(2)
            }]
        );
        assert!(read_person_triggers(Some(&owned(1)), false, &owned(1), None, false).is_empty());
        assert!(
            read_person_triggers(None, false, &owned(2), None, false).is_empty(),
            "never heard of: its owner is no change"
        );
        assert_eq!(
            read_person_triggers(None, false, &owned(2), None, true),
            [Trigger::LeadCreated]
        );
        assert_eq!(
            read_person_triggers(
                Some(&owned(1)),
                false,
                &owned(1),
                Some(&PersonGone::Deleted),
                false
            ),
            [Trigger::PersonDeleted]
        );
        assert_eq!(
            read_person_triggers(
                Some(&owned(1)),
                false,
                &owned(1),
                Some(&PersonGone::Merged { into: 7 }),
                false
            ),
            [Trigger::PersonMerged { into: 7 }]
        );
        let converted = PersonGone::Converted {
            lead_id: "00Q1".into(),
            into: 7,
            organization_id: Some(8),
            deal_id: None,
        };
        assert_eq!(
            read_person_triggers(Some(&owned(1)), false, &owned(1), Some(&converted), false),
            [Trigger::LeadConverted {
                lead_id: "00Q1".into(),
                deal_id: None,
                person_id: Some(7),
                organization_id: Some(8)
            }]
        );
        assert!(
            read_person_triggers(Some(&owned(1)), true, &owned(1), Some(&converted), false)
                .is_empty(),
            "a person the app heard leave is not news again"
        );
    }

    #[test]
    fn a_deal_created_from_a_lead_converts_the_lead_and_an_ordinary_deal_does_not() {
        let mut from_lead = deal(1, "open", 7);
        from_lead.lead_id = Some("adf21080-0e10-11eb-879b-05d71fb426ec".into());
        assert_eq!(
            deal_triggers(&Change::Created(from_lead), Some(42)),
            [
                Trigger::DealCreated,
                Trigger::LeadConverted {
                    lead_id: "adf21080-0e10-11eb-879b-05d71fb426ec".into(),
                    deal_id: Some(42),
                    person_id: None,
                    organization_id: None,
                }
            ]
        );
        assert_eq!(
            deal_triggers(&Change::Created(deal(1, "open", 7)), Some(43)),
            [Trigger::DealCreated]
        );
        assert_eq!(
            lead_triggers(&Change::Created(LeadState::default())),
            [Trigger::LeadCreated]
        );
        assert!(lead_triggers(&Change::Deleted).is_empty());
    }

    fn org(fields: &[(&str, &str)]) -> OrganizationState {
        OrganizationState {
            fields: fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn an_organization_change_names_the_fields_that_changed_and_ignores_bookkeeping() {
        let before = org(&[
            ("name", "Acme"),
            ("address", "1 Road"),
            ("update_time", "a"),
        ]);
        let after = org(&[
            ("name", "Acme Ltd"),
            ("address", "1 Road"),
            ("update_time", "b"),
        ]);
        assert_eq!(
            organization_triggers(&Change::Changed { before, after }),
            [Trigger::OrganizationChanged {
                fields: vec!["name".into()]
            }]
        );
        let salesforce_times_only = Change::Changed {
            before: org(&[("Name", "Acme"), ("SystemModstamp", "a")]),
            after: org(&[("Name", "Acme"), ("SystemModstamp", "b")]),
        };
        assert!(organization_triggers(&salesforce_times_only).is_empty());
        let counters_only = Change::Changed {
            before: org(&[("name", "Acme"), ("people_count", "1")]),
            after: org(&[("name", "Acme"), ("people_count", "2")]),
        };
        assert!(organization_triggers(&counters_only).is_empty());
    }

    #[test]
    fn an_activity_is_overdue_once_its_due_time_passed_and_never_when_done() {
        let open = ActivityDue {
            done: false,
            deleted: false,
            due_at: Some(100),
        };
        assert_eq!(activity_overdue(&open, None, 99), None);
        assert_eq!(
            activity_overdue(&open, None, 100),
            Some(Trigger::ActivityOverdue { due_at: 100 })
        );
        assert_eq!(activity_overdue(&open, Some(100), 500), None, "once");
        let done = ActivityDue { done: true, ..open };
        assert_eq!(activity_overdue(&done, None, 500), None);
        let rescheduled = ActivityDue {
            due_at: Some(200),
            ..open
        };
        assert_eq!(activity_overdue(&rescheduled, Some(100), 150), None);
        assert!(activity_overdue(&rescheduled, Some(100), 200).is_some());
    }

    fn any_deal() -> impl Strategy<Value = DealState> {
        (
            1_i64..4,
            1_i64..3,
            prop::sample::select(vec!["open", "won", "lost"]),
            1_i64..3,
        )
            .prop_map(|(stage, pipeline, status, owner)| DealState {
                stage_id: Some(stage),
                pipeline_id: Some(pipeline),
                status: Some(status.to_owned()),
                owner_id: Some(owner),
                lost_reason: None,
                lead_id: None,
            })
    }

    proptest! {
        #[test]
        fn an_unchanged_deal_triggers_nothing(state in any_deal()) {
            let change = Change::Changed { before: state.clone(), after: state };
            prop_assert!(deal_triggers(&change, None).is_empty());
        }

        #[test]
        fn the_stage_events_of_a_deals_history_chain_from_its_first_stage_to_its_last(
            history in prop::collection::vec(any_deal(), 1..20)
        ) {
            let mut at = history[0].stage_id;
            let mut status = history[0].status.clone();
            for pair in history.windows(2) {
                let change = Change::Changed { before: pair[0].clone(), after: pair[1].clone() };
                let events = deal_triggers(&change, None);
                for event in &events {
                    if let Trigger::DealStageChanged { from_stage, to_stage, .. } = event {
                        prop_assert_eq!(*from_stage, at, "no phantom or skipped move");
                        at = *to_stage;
                    }
                }
                // One status event per status change, naming the new status.
                let status_events: Vec<_> = events
                    .iter()
                    .filter(|e| matches!(e, Trigger::DealWon | Trigger::DealLost { .. } | Trigger::DealReopened))
                    .collect();
                prop_assert_eq!(status_events.len(), usize::from(pair[1].status != status));
                status = pair[1].status.clone();
                // At most one event of each kind per change.
                let mut kinds: Vec<_> = events.iter().map(Trigger::kind).collect();
                let all = kinds.len();
                kinds.dedup();
                prop_assert_eq!(kinds.len(), all);
            }
            prop_assert_eq!(at, history.last().and_then(|d| d.stage_id));
        }

        /// A history of activity states seen at moving times (the scan, a restart, a webhook
        /// again): `activity.overdue` fires at most once per due time, only for a due time that
        /// passed while the activity was open, and for every such due time the scan saw.
        #[test]
        fn overdue_fires_once_per_due_time_and_never_for_a_done_or_future_activity(
            steps in prop::collection::vec((any::<bool>(), any::<bool>(), prop::option::of(0_i64..5), 0_i64..4), 1..30)
        ) {
            let mut announced: Option<i64> = None;
            let mut fired: Vec<i64> = Vec::new();
            let mut now = 0_i64;
            for (done, deleted, due, tick) in steps {
                now += tick;
                let state = ActivityDue { done, deleted, due_at: due.map(|d| d * 2) };
                for _ in 0..2 {
                    // Seen twice at the same time (a duplicate scan): the second never fires.
                    if let Some(Trigger::ActivityOverdue { due_at }) = activity_overdue(&state, announced, now) {
                        prop_assert!(!done && !deleted, "no phantom for a done or deleted activity");
                        prop_assert!(due_at <= now, "not before it is due");
                        prop_assert_eq!(Some(due_at), state.due_at);
                        prop_assert_ne!(fired.last(), Some(&due_at), "never twice in a row for one due time");
                        fired.push(due_at);
                        announced = Some(due_at);
                    }
                }
                // Every due time that passed while the activity was open was announced.
                if !done && !deleted && state.due_at.is_some_and(|d| d <= now) {
                    prop_assert_eq!(announced, state.due_at);
                }
            }
        }

        #[test]
        fn an_unchanged_organization_triggers_nothing_and_a_change_names_exactly_the_changed_fields(
            before in prop::collection::btree_map(prop::sample::select(vec!["name", "address", "owner_id", "abc123", "update_time"]), "[a-c]{0,2}", 0..5),
            after in prop::collection::btree_map(prop::sample::select(vec!["name", "address", "owner_id", "abc123", "update_time"]), "[a-c]{0,2}", 0..5),
        ) {
            let before = OrganizationState { fields: before.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() };
            let after = OrganizationState { fields: after.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() };
            let unchanged = Change::Changed { before: before.clone(), after: before.clone() };
            prop_assert!(organization_triggers(&unchanged).is_empty());
            let events = organization_triggers(&Change::Changed { before: before.clone(), after: after.clone() });
            let expected: Vec<String> = ["abc123", "address", "name", "owner_id"]
                .iter()
                .filter(|k| before.fields.get(**k) != after.fields.get(**k))
                .map(|k| (*k).to_owned())
                .collect();
            if expected.is_empty() {
                prop_assert!(events.is_empty(), "no phantom: {:?}", events);
            } else {
                prop_assert_eq!(events, vec![Trigger::OrganizationChanged { fields: expected }]);
            }
        }
    }
}
