//! "Why isn't this record syncing?" (issue 19): the answer for one e-mail on one connection,
//! from what tandem knows (the app contact, its link, its dead letters, how far the initial
//! sync and the change capture reach) and at most one CRM lookup (the linked record read by its
//! id, or the records the connecting user finds with the e-mail). Pure: the use-case gathers
//! the facts; every answer has a stable code and the troubleshooting guide's fix.

/// One answer. The order of the checks is [`diagnose`]'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Answer {
    /// The contact is linked and the connecting user reads its record: it syncs.
    Linked,
    /// A write for the contact was refused for good (dead letter); the CRM's error says why.
    DeadLettered,
    /// The linked CRM record has no e-mail: tandem matches by e-mail.
    NoEmail,
    /// A CRM record has this e-mail only up to case or surrounding spaces.
    EmailDiffers,
    /// The connecting user cannot read the record (Salesforce sharing, Pipedrive visibility
    /// groups), or no record with this e-mail exists.
    NotVisible,
    /// The record exists and is visible, but neither the initial sync nor the change capture
    /// reached it (the initial sync has not run to the end, or the record was last changed
    /// before the change capture's reach).
    OutsideInitialSyncWindow,
    /// The app contact is not in the CRM list, so tandem does not send it to the CRM.
    Filtered,
    /// The record is visible and recent: the next poll (or the push queued for the contact)
    /// links it.
    Pending,
    /// The record has this e-mail, but tandem linked it to another app contact (by its
    /// primary e-mail, or before an e-mail changed): a record is linked to one contact.
    LinkedToAnother,
}

impl Answer {
    /// The stable code of the answer.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Linked => "linked",
            Self::DeadLettered => "dead_lettered",
            Self::NoEmail => "no_email",
            Self::EmailDiffers => "email_differs",
            Self::NotVisible => "not_visible",
            Self::OutsideInitialSyncWindow => "outside_initial_sync_window",
            Self::Filtered => "filtered",
            Self::Pending => "pending",
            Self::LinkedToAnother => "linked_to_another_contact",
        }
    }

    /// Every answer, for documentation and tests.
    pub const ALL: [Answer; 9] = [
        Self::Linked,
        Self::DeadLettered,
        Self::NoEmail,
        Self::EmailDiffers,
        Self::NotVisible,
        Self::OutsideInitialSyncWindow,
        Self::Filtered,
        Self::Pending,
        Self::LinkedToAnother,
    ];
}

/// A record as the lookup found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRecord {
    /// Its e-mail exactly as the CRM holds it (`None`: empty).
    pub email: Option<String>,
    /// When it was last changed (milliseconds), if the lookup says.
    pub modified_ms: Option<i64>,
    /// tandem links it to another app contact already (looked up for the first record, the one
    /// [`diagnose`] reads).
    pub linked_to_another: bool,
}

/// The one CRM lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The contact's linked record read by its id: `None` when the CRM answered "not found" or
    /// "forbidden" to the connecting user.
    Linked(Option<FoundRecord>),
    /// The records the connecting user finds with the e-mail (not linked to this contact).
    ByEmail(Vec<FoundRecord>),
}

/// What tandem knows about one e-mail on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// The e-mail as the admin typed it.
    pub email: String,
    /// An app contact has this e-mail; whether it is in the CRM list.
    pub contact_in_crm_list: Option<bool>,
    /// A write for the contact is a dead letter.
    pub dead_lettered: bool,
    pub lookup: Lookup,
    /// The connection's initial sync has run to the end.
    pub initial_sync_done: bool,
    /// How far back the change capture reaches (milliseconds): records changed before it are
    /// seen only by an initial sync.
    pub change_capture_from_ms: Option<i64>,
}

/// The e-mail as tandem compares it: trimmed, lower-case.
pub fn normalised(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The answer for these facts.
pub fn diagnose(facts: &Facts) -> Answer {
    if facts.dead_lettered {
        return Answer::DeadLettered;
    }
    match &facts.lookup {
        Lookup::Linked(None) => Answer::NotVisible,
        Lookup::Linked(Some(record)) => match record.email.as_deref().map(str::trim) {
            None | Some("") => Answer::NoEmail,
            Some(_) => Answer::Linked,
        },
        Lookup::ByEmail(found) => match found.first() {
            None => match facts.contact_in_crm_list {
                Some(false) => Answer::Filtered,
                Some(true) => Answer::Pending,
                None => Answer::NotVisible,
            },
            Some(record) => {
                let typed = facts.email.trim();
                let held = record.email.as_deref().unwrap_or_default();
                if held != typed && normalised(held) == normalised(typed) {
                    return Answer::EmailDiffers;
                }
                if record.linked_to_another {
                    return Answer::LinkedToAnother;
                }
                let before_reach = match (record.modified_ms, facts.change_capture_from_ms) {
                    (Some(modified), Some(from)) => modified < from,
                    _ => false,
                };
                if !facts.initial_sync_done || before_reach {
                    Answer::OutsideInitialSyncWindow
                } else {
                    Answer::Pending
                }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(lookup: Lookup) -> Facts {
        Facts {
            email: "ada@example.com".into(),
            contact_in_crm_list: None,
            dead_lettered: false,
            lookup,
            initial_sync_done: true,
            change_capture_from_ms: Some(1_000),
        }
    }

    fn record(email: &str, modified_ms: i64) -> FoundRecord {
        FoundRecord {
            email: (!email.is_empty()).then(|| email.to_owned()),
            modified_ms: Some(modified_ms),
            linked_to_another: false,
        }
    }

    #[test]
    fn a_record_found_by_email_but_linked_to_another_contact_is_said_so_before_any_window() {
        let mut found = record("ada@example.com", 500);
        found.linked_to_another = true;
        let mut f = facts(Lookup::ByEmail(vec![found]));
        f.initial_sync_done = false;
        assert_eq!(diagnose(&f), Answer::LinkedToAnother);
        assert_eq!(Answer::LinkedToAnother.code(), "linked_to_another_contact");
    }

    #[test]
    fn a_dead_letter_is_the_answer_whatever_the_lookup_found() {
        let mut f = facts(Lookup::Linked(Some(record("ada@example.com", 5_000))));
        f.dead_lettered = true;
        assert_eq!(diagnose(&f), Answer::DeadLettered);
    }

    #[test]
    fn a_linked_record_read_with_its_email_is_linked_and_without_one_has_no_email() {
        let f = facts(Lookup::Linked(Some(record("ada@example.com", 5_000))));
        assert_eq!(diagnose(&f), Answer::Linked);
        let f = facts(Lookup::Linked(Some(record("  ", 5_000))));
        assert_eq!(diagnose(&f), Answer::NoEmail);
    }

    #[test]
    fn a_linked_record_the_connecting_user_cannot_read_is_not_visible() {
        assert_eq!(diagnose(&facts(Lookup::Linked(None))), Answer::NotVisible);
    }

    #[test]
    fn nothing_found_is_filtered_pending_or_not_visible_by_the_app_contact() {
        let mut f = facts(Lookup::ByEmail(Vec::new()));
        assert_eq!(diagnose(&f), Answer::NotVisible);
        f.contact_in_crm_list = Some(false);
        assert_eq!(diagnose(&f), Answer::Filtered);
        f.contact_in_crm_list = Some(true);
        assert_eq!(diagnose(&f), Answer::Pending);
    }

    #[test]
    fn a_record_whose_email_differs_only_in_case_or_spaces_is_email_differs() {
        let f = facts(Lookup::ByEmail(vec![record(" Ada@Example.com", 5_000)]));
        assert_eq!(diagnose(&f), Answer::EmailDiffers);
    }

    #[test]
    fn an_unlinked_record_before_the_change_captures_reach_or_before_the_initial_sync_is_outside_the_window(
    ) {
        let f = facts(Lookup::ByEmail(vec![record("ada@example.com", 500)]));
        assert_eq!(diagnose(&f), Answer::OutsideInitialSyncWindow);
        let mut f = facts(Lookup::ByEmail(vec![record("ada@example.com", 5_000)]));
        assert_eq!(diagnose(&f), Answer::Pending);
        f.initial_sync_done = false;
        assert_eq!(diagnose(&f), Answer::OutsideInitialSyncWindow);
    }

    #[test]
    fn every_answer_has_its_own_code() {
        let codes: std::collections::BTreeSet<_> = Answer::ALL.iter().map(|a| a.code()).collect();
        assert_eq!(codes.len(), Answer::ALL.len());
    }
}
