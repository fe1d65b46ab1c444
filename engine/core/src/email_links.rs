//! Where a logged e-mail goes (issue 23), by Pipedrive's own e-mail linking rules: the e-mail
//! is linked to every participant who is a known person, and to a deal or lead only when
//! Pipedrive would link it automatically:
//!
//! - a reply stays on the item its thread is linked to;
//! - otherwise, the open items (open deals, unconverted leads) of all its participants
//!   together, counting only items that existed when the e-mail was sent or received (no
//!   retroactive linking) and not closed ones (won / lost deals);
//! - exactly one such item: linked to it; none: persons only; several: persons only, and the
//!   e-mail waits for a manual link with those items as candidates.
//!
//! Pure: the caller brings the participants' open items (from the mirror) and the thread's
//! previous link.

/// A deal or a lead.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    Deal(i64),
    /// Pipedrive's leads have UUIDs.
    Lead(String),
}

/// One of a participant's items, as the mirror knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownItem {
    pub item: Item,
    /// When the item was created, in milliseconds since the epoch.
    pub created_at_ms: i64,
    /// Open deal or unconverted, unarchived lead.
    pub open: bool,
}

/// A participant of the e-mail (a recipient of sent mail, the sender of received mail, and
/// the other addresses on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// The CRM person with this address, if any.
    pub person: Option<i64>,
    pub items: Vec<KnownItem>,
}

/// What to decide about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailFacts {
    /// When the e-mail was sent or received, in milliseconds since the epoch.
    pub at_ms: i64,
    pub participants: Vec<Participant>,
    /// The item an earlier e-mail of the same thread is linked to.
    pub thread_item: Option<Item>,
}

/// Why an e-mail is linked to no item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoItem {
    /// No participant has an open item that existed at the time.
    NoOpenItem,
    /// Several open items: an admin (or the app) picks one; these are the candidates.
    Ambiguous(Vec<Item>),
}

/// Where the e-mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    /// Every participant that is a person, once, in order.
    pub persons: Vec<i64>,
    pub item: Result<Item, NoItem>,
}

/// Decides an e-mail's links (see the module's rules).
pub fn decide(facts: &EmailFacts) -> Links {
    let mut persons: Vec<i64> = Vec::new();
    for person in facts.participants.iter().filter_map(|p| p.person) {
        if !persons.contains(&person) {
            persons.push(person);
        }
    }
    if let Some(item) = &facts.thread_item {
        return Links {
            persons,
            item: Ok(item.clone()),
        };
    }
    let mut candidates: Vec<Item> = facts
        .participants
        .iter()
        .filter(|p| p.person.is_some())
        .flat_map(|p| &p.items)
        .filter(|i| i.open && i.created_at_ms <= facts.at_ms)
        .map(|i| i.item.clone())
        .collect();
    candidates.sort();
    candidates.dedup();
    let item = match candidates.len() {
        0 => Err(NoItem::NoOpenItem),
        1 => Ok(candidates.remove(0)),
        _ => Err(NoItem::Ambiguous(candidates)),
    };
    Links { persons, item }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SENT: i64 = 1_000_000;

    fn deal(id: i64, created: i64, open: bool) -> KnownItem {
        KnownItem {
            item: Item::Deal(id),
            created_at_ms: created,
            open,
        }
    }

    fn lead(id: &str, created: i64) -> KnownItem {
        KnownItem {
            item: Item::Lead(id.to_owned()),
            created_at_ms: created,
            open: true,
        }
    }

    fn person(id: i64, items: Vec<KnownItem>) -> Participant {
        Participant {
            person: Some(id),
            items,
        }
    }

    fn facts(participants: Vec<Participant>) -> EmailFacts {
        EmailFacts {
            at_ms: SENT,
            participants,
            thread_item: None,
        }
    }

    #[test]
    fn a_person_with_exactly_one_open_deal_gets_the_email_on_that_deal() {
        let links = decide(&facts(vec![person(1, vec![deal(10, 0, true)])]));
        assert_eq!(links.persons, [1]);
        assert_eq!(links.item, Ok(Item::Deal(10)));
    }

    #[test]
    fn a_single_open_lead_counts_like_a_single_open_deal() {
        let links = decide(&facts(vec![person(1, vec![lead("ab-12", 0)])]));
        assert_eq!(links.item, Ok(Item::Lead("ab-12".into())));
    }

    #[test]
    fn several_open_items_link_the_person_only_and_list_the_candidates() {
        let links = decide(&facts(vec![person(
            1,
            vec![deal(10, 0, true), lead("ab-12", 0)],
        )]));
        assert_eq!(links.persons, [1]);
        assert_eq!(
            links.item,
            Err(NoItem::Ambiguous(vec![
                Item::Deal(10),
                Item::Lead("ab-12".into())
            ]))
        );
    }

    #[test]
    fn with_several_recipients_only_a_single_open_item_across_all_of_them_is_linked() {
        let shared = decide(&facts(vec![
            person(1, vec![deal(10, 0, true)]),
            person(2, vec![deal(10, 0, true), deal(11, 0, false)]),
        ]));
        assert_eq!(shared.persons, [1, 2]);
        assert_eq!(shared.item, Ok(Item::Deal(10)));
        let two = decide(&facts(vec![
            person(1, vec![deal(10, 0, true)]),
            person(2, vec![deal(12, 0, true)]),
        ]));
        assert!(matches!(two.item, Err(NoItem::Ambiguous(ref c)) if c.len() == 2));
    }

    #[test]
    fn an_item_created_after_the_email_is_never_linked_retroactively() {
        let links = decide(&facts(vec![person(1, vec![deal(10, SENT + 1, true)])]));
        assert_eq!(links.item, Err(NoItem::NoOpenItem));
    }

    #[test]
    fn won_and_lost_deals_do_not_count_as_open() {
        let links = decide(&facts(vec![person(
            1,
            vec![deal(10, 0, false), deal(11, 0, true)],
        )]));
        assert_eq!(links.item, Ok(Item::Deal(11)));
    }

    #[test]
    fn a_reply_stays_on_the_item_its_thread_is_linked_to() {
        let mut reply = facts(vec![person(1, vec![deal(10, 0, true), deal(11, 0, true)])]);
        reply.thread_item = Some(Item::Deal(11));
        assert_eq!(decide(&reply).item, Ok(Item::Deal(11)));
    }

    #[test]
    fn addresses_without_a_person_are_not_linked_and_their_items_do_not_count() {
        let links = decide(&facts(vec![
            Participant {
                person: None,
                items: vec![deal(99, 0, true)],
            },
            person(2, Vec::new()),
        ]));
        assert_eq!(links.persons, [2]);
        assert_eq!(links.item, Err(NoItem::NoOpenItem));
    }

    fn any_item() -> impl Strategy<Value = KnownItem> {
        (1_i64..6, 0_i64..(2 * SENT), any::<bool>()).prop_map(|(id, created, open)| KnownItem {
            item: Item::Deal(id),
            created_at_ms: created,
            open,
        })
    }

    fn any_participant() -> impl Strategy<Value = Participant> {
        (
            prop::option::of(1_i64..5),
            prop::collection::vec(any_item(), 0..4),
        )
            .prop_map(|(person, items)| Participant { person, items })
    }

    proptest! {
        #[test]
        fn a_linked_item_is_open_existed_at_the_time_and_belongs_to_a_participant(
            participants in prop::collection::vec(any_participant(), 0..5)
        ) {
            let facts = facts(participants);
            let links = decide(&facts);
            if let Ok(item) = &links.item {
                let owned = facts.participants.iter().filter(|p| p.person.is_some()).flat_map(|p| &p.items);
                prop_assert!(owned.clone().any(|i| &i.item == item && i.open && i.created_at_ms <= SENT));
                // ...and it is the only such item.
                let mut all: Vec<_> = owned
                    .filter(|i| i.open && i.created_at_ms <= SENT)
                    .map(|i| i.item.clone())
                    .collect();
                all.sort();
                all.dedup();
                prop_assert_eq!(all, vec![item.clone()]);
            }
            // Every person participant is linked once.
            let mut persons = links.persons.clone();
            persons.sort_unstable();
            persons.dedup();
            prop_assert_eq!(persons.len(), links.persons.len());
        }

        #[test]
        fn a_reply_stays_on_its_threads_item_whatever_the_participants_have(
            participants in prop::collection::vec(any_participant(), 0..5),
            thread in 1_i64..10,
        ) {
            let mut reply = facts(participants);
            reply.thread_item = Some(Item::Deal(thread));
            prop_assert_eq!(decide(&reply).item, Ok(Item::Deal(thread)));
        }

        #[test]
        fn closed_items_and_items_created_after_the_email_never_change_the_decision(
            participants in prop::collection::vec(any_participant(), 0..5),
            extra in prop::collection::vec((0_usize..5, 1_i64..10, any::<bool>()), 0..6),
        ) {
            // Adding items that are closed, or created after the e-mail, to any participant
            // decides the same as without them.
            let before = decide(&facts(participants.clone()));
            let mut more = participants;
            let n = more.len();
            for (at, id, closed) in extra {
                if n == 0 {
                    break;
                }
                more[at % n].items.push(if closed {
                    deal(id, 0, false)
                } else {
                    deal(id, SENT + 1, true)
                });
            }
            prop_assert_eq!(decide(&facts(more)).item, before.item);
        }

        #[test]
        fn several_open_items_across_the_participants_are_all_candidates_and_none_is_linked(
            participants in prop::collection::vec(any_participant(), 0..5)
        ) {
            let facts = facts(participants);
            let mut open: Vec<Item> = facts
                .participants
                .iter()
                .filter(|p| p.person.is_some())
                .flat_map(|p| &p.items)
                .filter(|i| i.open && i.created_at_ms <= SENT)
                .map(|i| i.item.clone())
                .collect();
            open.sort();
            open.dedup();
            let links = decide(&facts);
            match open.len() {
                0 => prop_assert_eq!(links.item, Err(NoItem::NoOpenItem)),
                1 => prop_assert_eq!(links.item, Ok(open[0].clone())),
                _ => prop_assert_eq!(links.item, Err(NoItem::Ambiguous(open))),
            }
        }

        #[test]
        fn addresses_without_a_person_are_never_linked_and_their_items_never_count(
            participants in prop::collection::vec(any_participant(), 0..5),
            strangers in prop::collection::vec(prop::collection::vec(any_item(), 0..4), 0..3),
        ) {
            let before = decide(&facts(participants.clone()));
            let mut more = participants;
            more.extend(strangers.into_iter().map(|items| Participant { person: None, items }));
            prop_assert_eq!(decide(&facts(more)), before);
        }

        #[test]
        fn the_decision_does_not_depend_on_the_order_of_the_participants(
            participants in prop::collection::vec(any_participant(), 0..5)
        ) {
            let forward = decide(&facts(participants.clone()));
            let mut reversed = participants;
            reversed.reverse();
            let backward = decide(&facts(reversed));
            prop_assert_eq!(forward.item, backward.item);
        }
    }
}
