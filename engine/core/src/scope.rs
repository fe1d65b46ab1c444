//! Which local contacts reach Pipedrive at all, and what deletes do.
//!
//! A contact created in the app is not pushed to Pipedrive by itself: it must be linked, in the
//! "Pipedrive contacts" list, or flow through a journey action that creates persons (Add Deal,
//! Assign Person Owner, Schedule Activity). Deletes never flow from the app to Pipedrive; a
//! person deleted in Pipedrive unlinks the contact, removes it from the "Pipedrive contacts"
//! list and, if the connection says so, archives it.

use serde::{Deserialize, Serialize};

/// What decides whether a local contact's changes are sent to Pipedrive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContactScope {
    /// The contact is linked to a Pipedrive person.
    pub linked: bool,
    /// The contact is in the "Pipedrive contacts" list.
    pub in_pipedrive_list: bool,
    /// The contact flowed through a journey action that creates persons.
    pub touched_by_creating_action: bool,
}

/// Whether a local contact's changes (and creation) reach Pipedrive; all other contacts stay local.
pub fn reaches_pipedrive(scope: &ContactScope) -> bool {
    scope.linked || scope.in_pipedrive_list || scope.touched_by_creating_action
}

/// A Pipedrive action in a journey of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JourneyAction {
    /// Add a deal for the contact.
    AddDeal,
    /// Assign the person's owner.
    AssignPersonOwner,
    /// Schedule an activity for the contact.
    ScheduleActivity,
    /// Update one Pipedrive field of an existing person.
    UpdatePipedriveField,
    /// Move the contact's deal to another stage.
    UpdateDealStage,
    /// Add the contact to a marketing campaign (Salesforce: a CampaignMember).
    AddToCampaign,
}

impl JourneyAction {
    /// Whether the action creates the person when the contact is not in the CRM yet (every
    /// action except Update Pipedrive Field and Update Deal Stage).
    pub const fn creates_person(self) -> bool {
        !matches!(self, Self::UpdatePipedriveField | Self::UpdateDealStage)
    }
}

/// What happens to the local contact when its Pipedrive person is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteDecision {
    /// Unlink the contact and take it out of the "Pipedrive contacts" list; keep it otherwise.
    Unlink,
    /// As `Unlink`, and archive the contact.
    UnlinkAndArchive,
}

impl DeleteDecision {
    /// Whether the contact is archived.
    pub const fn archives(self) -> bool {
        matches!(self, Self::UnlinkAndArchive)
    }
}

/// The decision for a person deleted in Pipedrive, given the connection's archive setting.
pub const fn on_person_deleted(archive_on_person_delete: bool) -> DeleteDecision {
    if archive_on_person_delete {
        DeleteDecision::UnlinkAndArchive
    } else {
        DeleteDecision::Unlink
    }
}

/// What happens in Pipedrive when a contact is deleted in the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocalDeleteDecision {
    /// Nothing is sent: the Pipedrive person stays (the link is dropped with the contact).
    KeepPipedrivePerson,
}

/// Deletes never flow from the app to Pipedrive, to prevent accidental deletion.
pub const fn on_contact_deleted_locally() -> LocalDeleteDecision {
    LocalDeleteDecision::KeepPipedrivePerson
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unlinked_contact_outside_the_list_and_untouched_by_actions_stays_local() {
        assert!(!reaches_pipedrive(&ContactScope::default()));
    }

    #[test]
    fn a_linked_contact_reaches_pipedrive() {
        assert!(reaches_pipedrive(&ContactScope {
            linked: true,
            ..ContactScope::default()
        }));
    }

    #[test]
    fn a_contact_in_the_pipedrive_contacts_list_reaches_pipedrive() {
        assert!(reaches_pipedrive(&ContactScope {
            in_pipedrive_list: true,
            ..ContactScope::default()
        }));
    }

    #[test]
    fn a_contact_touched_by_a_creating_journey_action_reaches_pipedrive() {
        assert!(reaches_pipedrive(&ContactScope {
            touched_by_creating_action: true,
            ..ContactScope::default()
        }));
    }

    #[test]
    fn only_add_deal_assign_owner_and_schedule_activity_create_persons() {
        assert!(JourneyAction::AddDeal.creates_person());
        assert!(JourneyAction::AssignPersonOwner.creates_person());
        assert!(JourneyAction::ScheduleActivity.creates_person());
        assert!(!JourneyAction::UpdatePipedriveField.creates_person());
        assert!(!JourneyAction::UpdateDealStage.creates_person());
        assert!(JourneyAction::AddToCampaign.creates_person());
    }

    #[test]
    fn a_person_deleted_in_pipedrive_unlinks_and_archives_only_by_setting() {
        assert_eq!(on_person_deleted(false), DeleteDecision::Unlink);
        assert_eq!(on_person_deleted(true), DeleteDecision::UnlinkAndArchive);
        assert!(on_person_deleted(true).archives());
        assert!(!on_person_deleted(false).archives());
    }

    #[test]
    fn a_contact_deleted_in_the_app_never_deletes_the_pipedrive_person() {
        assert_eq!(
            on_contact_deleted_locally(),
            LocalDeleteDecision::KeepPipedrivePerson
        );
    }
}
