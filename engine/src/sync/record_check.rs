//! "Why isn't this record syncing?" (issue 19) for one e-mail on one connection, Pipedrive or
//! Salesforce: gathers what tandem knows (the app contact with the e-mail, its link, its dead
//! letters, how far the initial sync and the change capture reach), makes at most one CRM
//! lookup (the linked record read by its id, or the records the connecting user finds with the
//! e-mail; none when a dead letter already answers), and lets the core decide
//! ([`tandem_core::record_check::diagnose`]). Each answer carries its stable code and the
//! troubleshooting guide's fix.

use serde::Serialize;
use tandem_core::record_check::{self, Answer, Facts, FoundRecord, Lookup};
use tandem_core::{ConnectionId, ContactId, EmailAddress};

use crate::crm::{CheckedRecord, Crm};
use crate::store::contacts;
use crate::sync::connections::{self, admin as connection_admin};
use crate::sync::inbound::poller;
use crate::sync::{links, Engine, SyncError};

/// The answer, as the admin API and the console show it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordCheck {
    /// A stable code: `linked`, `dead_lettered`, `no_email`, `email_differs`, `not_visible`,
    /// `outside_initial_sync_window`, `filtered`, `pending`, `linked_to_another_contact`.
    pub code: &'static str,
    /// What tandem found, in a sentence.
    pub answer: String,
    /// The troubleshooting guide's fix.
    pub fix: String,
    pub email: String,
    pub connection_id: ConnectionId,
    /// The CRM's name (`Pipedrive`, `Salesforce`).
    pub crm: &'static str,
    /// The app contact with this e-mail, if any.
    pub contact_id: Option<ContactId>,
    /// Whether that contact is in the CRM list.
    pub in_crm_list: Option<bool>,
    /// The CRM record the answer is about (Salesforce's 18-character id, Pipedrive's id).
    pub crm_record: Option<String>,
    /// `Lead`, `Contact` or `person`.
    pub crm_object: Option<&'static str>,
    /// The record's e-mail exactly as the CRM holds it.
    pub crm_email: Option<String>,
    /// The dead letter's error, verbatim.
    pub error: Option<String>,
    /// CRM calls the check made (0 or 1 lookup).
    pub crm_lookups: u32,
}

fn found(record: &CheckedRecord, linked_to_another: bool) -> FoundRecord {
    FoundRecord {
        email: record.email.clone(),
        modified_ms: record.modified.map(|t| t.0),
        linked_to_another,
    }
}

/// Answers "why isn't the record with this e-mail syncing?" on a connection.
pub async fn check(
    engine: &Engine,
    connection_id: ConnectionId,
    email: &str,
) -> Result<RecordCheck, SyncError> {
    let typed = email.trim();
    if typed.is_empty() {
        return Err(SyncError::Invalid("give the record's e-mail".into()));
    }
    let conn = connections::load(engine, connection_id).await?;
    let db = &engine.store;
    let normal = EmailAddress::parse(typed)
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|_| record_check::normalised(typed));
    let contact_id = contacts::ids_by_email(db, &conn.tenant, &normal)
        .await?
        .into_iter()
        .next();
    let in_list = match contact_id {
        Some(id) => Some(contacts::in_list(db, id, contacts::PIPEDRIVE_LIST).await?),
        None => None,
    };
    let link = match contact_id {
        Some(id) => links::by_contact(db, conn.id, id).await?,
        None => None,
    };
    let dead = match contact_id {
        Some(id) => connection_admin::dead_letters(engine, conn.id)
            .await?
            .into_iter()
            .find(|d| d.contact_id == Some(id)),
        None => None,
    };
    let (initial_sync_done, reach) = poller::change_capture_reach(engine, &conn).await?;

    let mut record: Option<CheckedRecord> = None;
    // The app contact the first record found is linked to, when it is another one.
    let mut other_contact = None;
    let mut crm_lookups = 0;
    let lookup = if dead.is_some() {
        // The dead letter answers; no CRM call.
        Lookup::ByEmail(Vec::new())
    } else if let Some(link) = &link {
        crm_lookups = 1;
        record = conn.crm.check_record(&conn.session, link.person_id).await?;
        Lookup::Linked(record.as_ref().map(|r| found(r, false)))
    } else {
        crm_lookups = 1;
        let records = conn.crm.records_with_email(&conn.session, typed).await?;
        // The first record is the one diagnosed: only its link is looked up.
        let mut first_linked = false;
        if let Some(first) = records.first() {
            if let Some(link) = links::by_person(db, conn.id, first.id).await? {
                first_linked = true;
                other_contact = contacts::load(db, link.contact_id).await?;
            }
        }
        let all = records
            .iter()
            .enumerate()
            .map(|(i, r)| found(r, i == 0 && first_linked))
            .collect();
        record = records.into_iter().next();
        Lookup::ByEmail(all)
    };
    let learned = conn.crm.take_new_record_keys(conn.id);
    if !learned.is_empty() {
        crate::store::record_keys::remember(db, conn.id, &learned, engine.now()).await?;
    }
    let facts = Facts {
        email: typed.to_owned(),
        contact_in_crm_list: in_list,
        dead_lettered: dead.is_some(),
        lookup,
        initial_sync_done,
        change_capture_from_ms: Some(reach.timestamp_millis()),
    };
    let verdict = record_check::diagnose(&facts);
    let error = dead.as_ref().map(|d| {
        d.remote_error
            .clone()
            .or_else(|| d.last_error.clone())
            .unwrap_or_else(|| "the write was refused".into())
    });
    // A linked record the connecting user cannot read is still named by its key.
    let linked_key = match (&facts.lookup, &link) {
        (Lookup::Linked(None), Some(link)) => conn.crm.record_key(&conn.session, link.person_id),
        _ => None,
    };
    let (answer, fix) = words(
        verdict,
        &conn.crm,
        record.as_ref(),
        Unlinked {
            unreadable_link: linked_key.as_deref(),
            other_contact: other_contact.as_ref(),
        },
        typed,
        dead.as_ref().and_then(|d| d.hint.clone()),
    );
    Ok(RecordCheck {
        code: verdict.code(),
        answer,
        fix,
        email: typed.to_owned(),
        connection_id: conn.id,
        crm: conn.crm.display_name(),
        contact_id,
        in_crm_list: in_list,
        crm_record: record.as_ref().map(|r| r.key.clone()).or(linked_key),
        crm_object: record.as_ref().map(|r| r.object),
        crm_email: record.as_ref().and_then(|r| r.email.clone()),
        error,
        crm_lookups,
    })
}

/// What the answer names beside the record: the key of a linked record the connecting user
/// cannot read, or the other app contact a found record is linked to.
struct Unlinked<'a> {
    unreadable_link: Option<&'a str>,
    other_contact: Option<&'a contacts::LocalContact>,
}

/// The answer's sentence and the guide's fix, in the CRM's words.
fn words(
    verdict: Answer,
    crm: &Crm,
    record: Option<&CheckedRecord>,
    unlinked: Unlinked<'_>,
    typed: &str,
    dead_letter_hint: Option<String>,
) -> (String, String) {
    let Unlinked {
        unreadable_link,
        other_contact,
    } = unlinked;
    let salesforce = crm.salesforce_client().is_some();
    let name = crm.display_name();
    let what = record.map_or_else(
        || "the record".to_owned(),
        |r| format!("{} {}", r.object, r.key),
    );
    match verdict {
        Answer::Linked => (
            format!("The contact is linked to {name} {what}, which the connecting user reads: it syncs."),
            "Nothing to fix. If a field does not arrive, check the Field Mapping tab and the sync log.".into(),
        ),
        Answer::DeadLettered => (
            "A write for this contact was refused for good (a dead letter); the error below is the CRM's, verbatim.".into(),
            dead_letter_hint.unwrap_or_else(|| {
                "Fix what the error names, then retry the dead letter from the Dead letters page.".into()
            }),
        ),
        Answer::NoEmail => (
            format!("The linked {name} {what} has no e-mail."),
            format!("tandem matches by e-mail: give the record in {name} the e-mail the app has ({typed})."),
        ),
        Answer::EmailDiffers => (
            format!(
                "{name} {what} holds the e-mail as {:?}: it matches {typed:?} only up to case or surrounding spaces.",
                record.and_then(|r| r.email.as_deref()).unwrap_or_default()
            ),
            format!("Confirm the record's e-mail matches what the app captured: correct it in {name} (no spaces, the same address)."),
        ),
        Answer::NotVisible => match unreadable_link {
            Some(key) if salesforce => (
                format!("The contact is linked to Salesforce record {key}, which the connecting user cannot read now: sharing hides it (records other users own are invisible under a private org-wide default), or it was deleted or merged and tandem has not seen that yet."),
                "Give the connecting user Read access to the record (view it as that user; change the org-wide default, the role hierarchy or sharing rules), or connect with a System Administrator user. If it was deleted or merged, the next change capture follows that.".into(),
            ),
            Some(key) => (
                format!("The contact is linked to Pipedrive person {key}, which the connecting user cannot read now: its visibility (visible_to: owner only, or a visibility group the user is not in) hides it, so Pipedrive sends tandem neither its changes nor its webhooks; or it was deleted or merged and tandem has not seen that yet."),
                "In Pipedrive, set the person's visibility back to the entire company (or the connecting user's visibility group), move the connecting user into the owner's visibility group, or connect with an admin user, who sees every person. If it was deleted or merged, the next change capture follows that.".into(),
            ),
            None if salesforce => (
                "The connecting Salesforce user cannot read a Lead or Contact with this e-mail: sharing hides it (records other users own are invisible under a private org-wide default), or none exists.".into(),
                "The connecting user must have Read access to the record: view the record as that user; if they cannot see it, neither can tandem. Change the org-wide default or grant the user broader sharing (role hierarchy, sharing rules); the fastest fix is connecting with a System Administrator user.".into(),
            ),
            None => (
                "The connecting Pipedrive user cannot read a person with this e-mail: its visibility (visible_to: owner only, or a visibility group the user is not in) hides it, or none exists.".into(),
                "In Pipedrive, set the person's visibility to the entire company (or the connecting user's visibility group), move the connecting user into the owner's visibility group, or connect with an admin user, who sees every person.".into(),
            ),
        },
        Answer::OutsideInitialSyncWindow => (
            format!("{name} {what} exists and the connecting user reads it, but neither the initial sync nor the change capture reached it (the initial sync has not run to the end, or the record was last changed before the change capture's reach)."),
            "Run Initial sync from the connection card (or POST /admin/api/connections/{id}/initial-sync) to pull every record.".into(),
        ),
        Answer::Filtered => (
            format!("The app contact is not in the {name} contacts list, so tandem does not send it to {name}, and {name} has no record with this e-mail that the connecting user reads."),
            format!("Add the contact to the CRM list (POST /api/v1/lists/pipedrive_contacts/members), or run a creating journey action; records created in {name} are linked by e-mail."),
        ),
        Answer::LinkedToAnother => {
            let other = other_contact.map_or_else(
                || "another app contact".to_owned(),
                |c| match &c.email {
                    Some(email) => format!("the app contact {} ({email})", c.id),
                    None => format!("the app contact {}", c.id),
                },
            );
            (
                format!("{name} {what} has this e-mail, but tandem linked it to {other}: a record is linked to one app contact, matched by its primary e-mail."),
                format!("If both are the same person, give the record in {name} the e-mail the app has as its primary ({typed}), or change the app contact's e-mail to the record's primary; if they are different people, give each its own e-mail in {name}."),
            )
        }
        Answer::Pending => (
            format!("{name} {} and tandem will link it with the next change-capture pass or the push queued for the contact.",
                record.map_or_else(|| "has no record yet".to_owned(), |r| format!("has {} {}", r.object, r.key))),
            "Wait for the next poll, or click Resync now on the connection card.".into(),
        ),
    }
}
