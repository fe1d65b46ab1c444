//! Identity resolution as pure decisions over candidates the caller looked up.
//!
//! Inbound (a Pipedrive person arrives): its link → its `apId` → its primary e-mail matching
//! exactly one unlinked contact → otherwise a new contact. Persons sharing an e-mail stay separate
//! contacts keyed by person id and are reported as a duplicate group. Outbound (a contact must be
//! created in Pipedrive): search by `apId`, then by e-mail, then create, unless the caller's own
//! pulled knowledge is fresh and no earlier attempt ended in an uncertain failure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::email::EmailAddress;
use crate::ids::{ApId, ContactId, PersonId};

/// What identity resolution needs to know about an inbound Pipedrive person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundPerson {
    /// The person's id.
    pub person_id: PersonId,
    /// The person's `apId` custom field, if set.
    pub ap_id: Option<ApId>,
    /// The person's primary e-mail, if any.
    pub email: Option<EmailAddress>,
}

/// A local contact found by the caller, and the person it is linked to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalCandidate {
    /// The contact.
    pub contact: ContactId,
    /// The Pipedrive person the contact is already linked to.
    pub linked_person: Option<PersonId>,
}

impl LocalCandidate {
    fn is_free_for(&self, person: PersonId) -> bool {
        self.linked_person.is_none_or(|linked| linked == person)
    }
}

/// The candidates the caller looked up for an inbound person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityCandidates {
    /// The contact already linked to this person id.
    pub linked_contact: Option<ContactId>,
    /// The contact named by the person's `apId`, if it exists.
    pub ap_id_contact: Option<LocalCandidate>,
    /// Local contacts whose e-mail equals the person's primary e-mail.
    pub email_contacts: Vec<LocalCandidate>,
}

/// How an inbound person maps to a local contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum InboundIdentity {
    /// Already linked: merge into this contact.
    Linked {
        /// The linked contact.
        contact: ContactId,
    },
    /// Link to the contact its `apId` names (not linked to another person), then merge.
    LinkByApId {
        /// The contact to link.
        contact: ContactId,
    },
    /// Link to the only unlinked contact with the same e-mail, then merge.
    LinkByEmail {
        /// The contact to link.
        contact: ContactId,
    },
    /// Create a new local contact keyed by this person id.
    CreateContact {
        /// Other persons with the same e-mail (already linked to their own contacts): with this
        /// one they form a duplicate group for the report. Ascending.
        same_email_persons: Vec<PersonId>,
    },
}

/// Decides which local contact an inbound person belongs to.
///
/// An `apId` naming a contact already linked to a different person is ignored (that contact
/// belongs to the other person, e.g. a person duplicated in Pipedrive). Several unlinked contacts
/// with the same e-mail are ambiguous and do not link.
pub fn resolve_inbound(person: &InboundPerson, candidates: &IdentityCandidates) -> InboundIdentity {
    if let Some(contact) = candidates.linked_contact {
        return InboundIdentity::Linked { contact };
    }
    if let Some(candidate) = candidates.ap_id_contact {
        if person.ap_id.is_some() && candidate.is_free_for(person.person_id) {
            return InboundIdentity::LinkByApId {
                contact: candidate.contact,
            };
        }
    }
    if person.email.is_some() {
        let mut free = candidates
            .email_contacts
            .iter()
            .filter(|c| c.is_free_for(person.person_id));
        if let (Some(only), None) = (free.next(), free.next()) {
            return InboundIdentity::LinkByEmail {
                contact: only.contact,
            };
        }
    }
    let mut same_email_persons: Vec<PersonId> = if person.email.is_some() {
        candidates
            .email_contacts
            .iter()
            .filter_map(|c| c.linked_person)
            .filter(|p| *p != person.person_id)
            .collect()
    } else {
        Vec::new()
    };
    same_email_persons.sort_unstable();
    same_email_persons.dedup();
    InboundIdentity::CreateContact { same_email_persons }
}

/// Pipedrive persons sharing one e-mail address (for the duplicate report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateGroup {
    /// The shared address (normalised).
    pub email: EmailAddress,
    /// The persons, ascending; at least two.
    pub persons: Vec<PersonId>,
}

/// Groups persons by normalised e-mail and keeps the groups with two or more distinct persons,
/// ordered by e-mail.
pub fn duplicate_groups<'a>(
    persons: impl IntoIterator<Item = (PersonId, &'a EmailAddress)>,
) -> Vec<DuplicateGroup> {
    let mut by_email: BTreeMap<&EmailAddress, Vec<PersonId>> = BTreeMap::new();
    for (person, email) in persons {
        by_email.entry(email).or_default().push(person);
    }
    by_email
        .into_iter()
        .filter_map(|(email, mut persons)| {
            persons.sort_unstable();
            persons.dedup();
            (persons.len() >= 2).then(|| DuplicateGroup {
                email: email.clone(),
                persons,
            })
        })
        .collect()
}

/// How a contact entering the app by other means than the Pipedrive sync (a form, an import)
/// maps to existing contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum LocalIdentity {
    /// Merge into this existing contact.
    Existing {
        /// The contact.
        contact: ContactId,
    },
    /// Create a new contact.
    New,
}

/// Local contacts are deduplicated by e-mail: given the contacts with the same (normalised)
/// e-mail in the caller's preference order (oldest first), the first one is the match.
pub fn resolve_local(same_email_contacts: &[ContactId]) -> LocalIdentity {
    match same_email_contacts.first() {
        Some(contact) => LocalIdentity::Existing { contact: *contact },
        None => LocalIdentity::New,
    }
}

/// What the caller knows before creating a person for a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCreate {
    /// The contact's `apId` (its id), written to the new person.
    pub ap_id: ApId,
    /// The contact's e-mail, if any.
    pub email: Option<EmailAddress>,
    /// The caller's own pulled knowledge of Pipedrive persons is fresh and holds no match, so a
    /// search would find nothing new.
    pub knowledge_is_fresh: bool,
    /// An earlier create for this contact failed without a clear answer (timeout, connection
    /// reset): the person may exist already, whatever the caller's knowledge says.
    pub after_uncertain_failure: bool,
}

/// How to create a person without creating a duplicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundCreatePlan {
    /// Search by `apId`; if nothing is found, by e-mail (if any); then call
    /// [`decide_outbound_create`] with the results.
    SearchFirst {
        /// Search this `apId` first.
        ap_id: ApId,
        /// Then this e-mail.
        email: Option<EmailAddress>,
    },
    /// Create the person directly.
    CreateDirectly,
}

/// Plans an outbound create: search first unless the caller's knowledge is fresh and no earlier
/// attempt ended in an uncertain failure.
pub fn plan_outbound_create(request: &OutboundCreate) -> OutboundCreatePlan {
    if request.knowledge_is_fresh && !request.after_uncertain_failure {
        OutboundCreatePlan::CreateDirectly
    } else {
        OutboundCreatePlan::SearchFirst {
            ap_id: request.ap_id.clone(),
            email: request.email.clone(),
        }
    }
}

/// A person found by an outbound search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FoundPerson {
    /// The person.
    pub person: PersonId,
    /// Whether it is already linked to another local contact.
    pub linked_elsewhere: bool,
}

/// What an outbound search found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundSearchResults {
    /// Persons whose `apId` equals the contact's.
    pub by_ap_id: Vec<PersonId>,
    /// Persons with the contact's e-mail.
    pub by_email: Vec<FoundPerson>,
}

/// How a found person matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// The `apId` custom field.
    ApId,
    /// The e-mail address.
    Email,
}

/// What to do after an outbound search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum OutboundCreateDecision {
    /// Link the contact to this existing person (and merge), instead of creating one.
    LinkExisting {
        /// The person.
        person: PersonId,
        /// How it matched.
        via: MatchedBy,
    },
    /// Nothing matched: create the person.
    Create,
}

/// Decides after an outbound search: an `apId` match wins (the oldest, lowest id, if several);
/// else an e-mail match not linked to another contact (the oldest if several, so no further
/// duplicate is created); else create.
pub fn decide_outbound_create(results: &OutboundSearchResults) -> OutboundCreateDecision {
    if let Some(person) = results.by_ap_id.iter().min() {
        return OutboundCreateDecision::LinkExisting {
            person: *person,
            via: MatchedBy::ApId,
        };
    }
    match results
        .by_email
        .iter()
        .filter(|found| !found.linked_elsewhere)
        .map(|found| found.person)
        .min()
    {
        Some(person) => OutboundCreateDecision::LinkExisting {
            person,
            via: MatchedBy::Email,
        },
        None => OutboundCreateDecision::Create,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn contact(n: u128) -> ContactId {
        ContactId::new(Uuid::from_u128(n))
    }

    fn person(n: i64) -> PersonId {
        PersonId::new(n).unwrap()
    }

    fn email(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn inbound(id: i64) -> InboundPerson {
        InboundPerson {
            person_id: person(id),
            ap_id: Some(ApId::for_contact(contact(1))),
            email: Some(email("ada@example.com")),
        }
    }

    fn free(n: u128) -> LocalCandidate {
        LocalCandidate {
            contact: contact(n),
            linked_person: None,
        }
    }

    fn linked(n: u128, p: i64) -> LocalCandidate {
        LocalCandidate {
            contact: contact(n),
            linked_person: Some(person(p)),
        }
    }

    #[test]
    fn an_inbound_person_with_a_known_link_maps_to_that_contact() {
        let candidates = IdentityCandidates {
            linked_contact: Some(contact(7)),
            ap_id_contact: Some(free(1)),
            email_contacts: vec![free(2)],
        };
        assert_eq!(
            resolve_inbound(&inbound(10), &candidates),
            InboundIdentity::Linked {
                contact: contact(7)
            }
        );
    }

    #[test]
    fn an_inbound_person_without_a_link_maps_by_its_ap_id() {
        let candidates = IdentityCandidates {
            linked_contact: None,
            ap_id_contact: Some(free(1)),
            email_contacts: vec![free(2)],
        };
        assert_eq!(
            resolve_inbound(&inbound(10), &candidates),
            InboundIdentity::LinkByApId {
                contact: contact(1)
            }
        );
    }

    #[test]
    fn an_ap_id_naming_a_contact_linked_to_another_person_is_ignored() {
        let candidates = IdentityCandidates {
            linked_contact: None,
            ap_id_contact: Some(linked(1, 99)),
            email_contacts: vec![linked(1, 99)],
        };
        assert_eq!(
            resolve_inbound(&inbound(10), &candidates),
            InboundIdentity::CreateContact {
                same_email_persons: vec![person(99)]
            }
        );
    }

    #[test]
    fn an_inbound_person_with_an_email_matching_exactly_one_unlinked_contact_links_it() {
        let candidates = IdentityCandidates {
            linked_contact: None,
            ap_id_contact: None,
            email_contacts: vec![free(2), linked(3, 44)],
        };
        assert_eq!(
            resolve_inbound(&inbound(10), &candidates),
            InboundIdentity::LinkByEmail {
                contact: contact(2)
            }
        );
    }

    #[test]
    fn an_email_matching_several_unlinked_contacts_is_ambiguous_and_creates_a_contact() {
        let candidates = IdentityCandidates {
            linked_contact: None,
            ap_id_contact: None,
            email_contacts: vec![free(2), free(3)],
        };
        assert_eq!(
            resolve_inbound(&inbound(10), &candidates),
            InboundIdentity::CreateContact {
                same_email_persons: vec![]
            }
        );
    }

    #[test]
    fn an_inbound_person_with_no_match_creates_a_new_contact() {
        let person = InboundPerson {
            person_id: person(10),
            ap_id: None,
            email: None,
        };
        assert_eq!(
            resolve_inbound(&person, &IdentityCandidates::default()),
            InboundIdentity::CreateContact {
                same_email_persons: vec![]
            }
        );
    }

    #[test]
    fn a_second_pipedrive_person_with_the_same_email_stays_a_separate_contact_and_is_a_duplicate() {
        let candidates = IdentityCandidates {
            linked_contact: None,
            ap_id_contact: None,
            email_contacts: vec![linked(2, 30), linked(3, 20)],
        };
        let mut person = inbound(10);
        person.ap_id = None;
        assert_eq!(
            resolve_inbound(&person, &candidates),
            InboundIdentity::CreateContact {
                same_email_persons: vec![self::person(20), self::person(30)]
            }
        );
    }

    #[test]
    fn persons_are_grouped_by_normalised_email_into_duplicate_groups() {
        let a = email("Ada@Example.com");
        let a2 = email(" ada@example.COM");
        let b = email("bob@example.com");
        let groups = duplicate_groups([
            (person(3), &a),
            (person(1), &a2),
            (person(2), &b),
            (person(3), &a),
        ]);
        assert_eq!(
            groups,
            vec![DuplicateGroup {
                email: a.clone(),
                persons: vec![person(1), person(3)]
            }]
        );
    }

    #[test]
    fn a_contact_entering_by_a_form_is_deduplicated_by_email() {
        assert_eq!(
            resolve_local(&[contact(5), contact(6)]),
            LocalIdentity::Existing {
                contact: contact(5)
            }
        );
        assert_eq!(resolve_local(&[]), LocalIdentity::New);
    }

    #[test]
    fn an_outbound_create_searches_first_when_knowledge_is_stale() {
        let request = OutboundCreate {
            ap_id: ApId::for_contact(contact(1)),
            email: Some(email("ada@example.com")),
            knowledge_is_fresh: false,
            after_uncertain_failure: false,
        };
        assert_eq!(
            plan_outbound_create(&request),
            OutboundCreatePlan::SearchFirst {
                ap_id: request.ap_id.clone(),
                email: request.email.clone()
            }
        );
    }

    #[test]
    fn an_outbound_create_skips_the_search_when_the_callers_knowledge_is_fresh() {
        let request = OutboundCreate {
            ap_id: ApId::for_contact(contact(1)),
            email: None,
            knowledge_is_fresh: true,
            after_uncertain_failure: false,
        };
        assert_eq!(
            plan_outbound_create(&request),
            OutboundCreatePlan::CreateDirectly
        );
    }

    #[test]
    fn an_outbound_create_after_an_uncertain_failure_always_searches() {
        let request = OutboundCreate {
            ap_id: ApId::for_contact(contact(1)),
            email: None,
            knowledge_is_fresh: true,
            after_uncertain_failure: true,
        };
        assert!(matches!(
            plan_outbound_create(&request),
            OutboundCreatePlan::SearchFirst { .. }
        ));
    }

    #[test]
    fn an_outbound_search_prefers_an_ap_id_match_over_an_email_match() {
        let results = OutboundSearchResults {
            by_ap_id: vec![person(9), person(4)],
            by_email: vec![FoundPerson {
                person: person(1),
                linked_elsewhere: false,
            }],
        };
        assert_eq!(
            decide_outbound_create(&results),
            OutboundCreateDecision::LinkExisting {
                person: person(4),
                via: MatchedBy::ApId
            }
        );
    }

    #[test]
    fn an_outbound_search_links_an_email_match_not_linked_elsewhere() {
        let results = OutboundSearchResults {
            by_ap_id: vec![],
            by_email: vec![
                FoundPerson {
                    person: person(1),
                    linked_elsewhere: true,
                },
                FoundPerson {
                    person: person(8),
                    linked_elsewhere: false,
                },
            ],
        };
        assert_eq!(
            decide_outbound_create(&results),
            OutboundCreateDecision::LinkExisting {
                person: person(8),
                via: MatchedBy::Email
            }
        );
    }

    #[test]
    fn an_outbound_search_that_finds_nothing_free_creates_the_person() {
        let results = OutboundSearchResults {
            by_ap_id: vec![],
            by_email: vec![FoundPerson {
                person: person(1),
                linked_elsewhere: true,
            }],
        };
        assert_eq!(
            decide_outbound_create(&results),
            OutboundCreateDecision::Create
        );
    }
}
