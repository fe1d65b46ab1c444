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
}

/// An activity's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivityState {
    pub done: bool,
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
        }
    }

    /// Every event type, for subscriptions' filters and the documentation.
    pub const KINDS: [&'static str; 12] = [
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
    ];
}

/// The triggers of a deal's change: created / deleted, else a stage move (stage or pipeline),
/// a status transition (won, lost, reopened: open after won or lost), an owner change.
pub fn deal_triggers(change: &Change<DealState>) -> Vec<Trigger> {
    let (before, after) = match change {
        Change::Created(_) => return vec![Trigger::DealCreated],
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn deal(stage: i64, status: &str, owner: i64) -> DealState {
        DealState {
            stage_id: Some(stage),
            pipeline_id: Some(1),
            status: Some(status.to_owned()),
            owner_id: Some(owner),
            lost_reason: (status == "lost").then(|| "Too expensive".to_owned()),
        }
    }

    #[test]
    fn a_deal_moved_won_and_handed_over_in_one_change_gives_three_events_in_a_stable_order() {
        let change = Change::Changed {
            before: deal(1, "open", 7),
            after: deal(2, "won", 8),
        };
        let kinds: Vec<_> = deal_triggers(&change).iter().map(Trigger::kind).collect();
        assert_eq!(
            kinds,
            ["deal.stage_changed", "deal.won", "deal.owner_changed"]
        );
    }

    #[test]
    fn a_lost_deal_carries_its_reason_and_reopening_it_is_its_own_event() {
        let lost = deal_triggers(&Change::Changed {
            before: deal(1, "open", 7),
            after: deal(1, "lost", 7),
        });
        assert_eq!(
            lost,
            [Trigger::DealLost {
                reason: Some("Too expensive".into())
            }]
        );
        let reopened = deal_triggers(&Change::Changed {
            before: deal(1, "lost", 7),
            after: deal(1, "open", 7),
        });
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
            })
    }

    proptest! {
        #[test]
        fn an_unchanged_deal_triggers_nothing(state in any_deal()) {
            let change = Change::Changed { before: state.clone(), after: state };
            prop_assert!(deal_triggers(&change).is_empty());
        }

        #[test]
        fn the_stage_events_of_a_deals_history_chain_from_its_first_stage_to_its_last(
            history in prop::collection::vec(any_deal(), 1..20)
        ) {
            let mut at = history[0].stage_id;
            let mut status = history[0].status.clone();
            for pair in history.windows(2) {
                let change = Change::Changed { before: pair[0].clone(), after: pair[1].clone() };
                let events = deal_triggers(&change);
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
    }
}
