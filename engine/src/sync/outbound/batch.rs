//! Contact pushes sent together, for a connector that writes many persons per call (Salesforce:
//! sObject Collections, `max` = [`crate::crm::Crm::write_batch_limit`]). Each push goes through
//! the same steps as one sent alone (`push_contact`): the patches' writes are recorded on their
//! links before anything leaves, the creates' searches and creates are made once for the batch,
//! and every record's own answer (or error) ends its own contact's push. The jobs are of
//! different contacts (the queue never claims two of one contact), so a batch keeps each
//! contact's order.

use tandem_core::{ContactId, CrmError, FieldValue, OutboundCreatePlan};

use super::{
    finish_creates, finish_patch, link_if_found, plan_creates, prepare_create, prepare_patch,
    read_contact_and_link, search_results, CreateWrite, CrmFailure, PatchWrite, Pushed, Step,
};
use crate::queue::{Job, JobPayload};
use crate::sync::app::contacts::{self, LocalContact};
use crate::sync::connections::ConnectionCtx;
use crate::sync::links;
use crate::sync::Engine;

/// Pushes the contacts of `jobs` (all `PushContact` of `conn`) together; one result per job,
/// in order.
pub async fn push_contacts(
    engine: &Engine,
    conn: &ConnectionCtx,
    jobs: &[Job],
) -> Vec<Result<Pushed, CrmFailure>> {
    let mut results: Vec<Option<Result<Pushed, CrmFailure>>> = Vec::new();
    results.resize_with(jobs.len(), || None);
    let mut patches: Vec<(usize, LocalContact, PatchWrite)> = Vec::new();
    let mut searches: Vec<(usize, LocalContact, OutboundCreatePlan)> = Vec::new();
    let mut creates: Vec<(usize, LocalContact)> = Vec::new();
    // Read once for the batch, not per contact. Unread, the creates search first (the safe
    // plan when tandem's knowledge is not known to be complete).
    let knowledge_is_fresh = match crate::sync::inbound::poller::knows_every_person(
        &engine.store,
        conn.id,
    )
    .await
    {
        Ok(fresh) => fresh,
        Err(error) => {
            tracing::warn!(connection_id = %conn.id, error = %error, "Reading whether tandem knows every person failed; this batch's creates search first.");
            false
        }
    };
    // The batch's contacts and their links, read together from one snapshot (a poll committed
    // between the two reads would pair a contact from before it with a base from after it, and
    // the poll's values, older in the contact, would be written back as edits); should that
    // fail, each job reads its own (and fails on its own).
    let ids: Vec<ContactId> = jobs
        .iter()
        .filter_map(|job| match job.payload {
            JobPayload::PushContact { contact_id } => Some(contact_id),
            _ => None,
        })
        .collect();
    let read = async {
        let snapshot = engine.store.begin_snapshot().await?;
        let loaded = contacts::load_many(&snapshot, &ids).await?;
        let linked = links::by_contacts(&snapshot, conn.id, &ids).await?;
        snapshot.commit().await?;
        Ok::<_, crate::store::StoreError>((loaded, linked))
    }
    .await;
    let read = match read {
        Ok(read) => Some(read),
        Err(error) => {
            tracing::warn!(connection_id = %conn.id, error = %error, "Reading a batch's contacts together failed; each is read on its own.");
            None
        }
    };
    let mut to_plan: Vec<(usize, LocalContact)> = Vec::new();
    let mut linked: Vec<(usize, LocalContact, links::Link)> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let JobPayload::PushContact { contact_id } = job.payload else {
            results[i] = Some(Ok(Pushed::Nothing));
            continue;
        };
        let (contact, link) = match &read {
            Some((loaded, linked)) => (
                loaded.get(&contact_id).cloned(),
                linked.get(&contact_id).cloned(),
            ),
            None => match read_contact_and_link(&engine.store, conn, contact_id).await {
                Ok(read) => read,
                Err(error) => {
                    results[i] = Some(Err(error.into()));
                    continue;
                }
            },
        };
        match (contact, link) {
            (Some(contact), _) if contact.archived => results[i] = Some(Ok(Pushed::Nothing)),
            (None, _) => results[i] = Some(Ok(Pushed::Nothing)),
            (Some(contact), Some(link)) => linked.push((i, contact, link)),
            (Some(contact), None) => to_plan.push((i, contact)),
        }
    }

    // The companies the patches write to organizations, resolved together first.
    let companies: Vec<String> = linked
        .iter()
        .filter_map(|(_, contact, link)| {
            let lead = conn.crm.person_is_lead(conn.id, link.person_id);
            let field = conn.crm.company_organization(&conn.map, lead)?;
            match super::pending_writes(conn, contact, link).remove(&field.local)? {
                FieldValue::Text(company) => Some(company),
                _ => None,
            }
        })
        .collect();
    resolve_companies(engine, conn, &companies).await;
    for (i, contact, link) in linked {
        match prepare_patch(engine, conn, &contact, link).await {
            Err(failure) => results[i] = Some(Err(failure)),
            Ok(Step::Done(pushed)) => results[i] = Some(Ok(pushed)),
            Ok(Step::Go(write)) => patches.push((i, contact, write)),
        }
    }

    // Contacts without a person: whether (and how) each reaches the CRM, planned together.
    let wanted: Vec<(&Job, &LocalContact)> = to_plan
        .iter()
        .map(|(i, contact)| (&jobs[*i], contact))
        .collect();
    let planned = plan_creates(engine, conn, &wanted, knowledge_is_fresh).await;
    for ((i, contact), plan) in to_plan.into_iter().zip(planned) {
        match plan {
            Err(failure) => results[i] = Some(Err(failure)),
            Ok(Step::Done(pushed)) => results[i] = Some(Ok(pushed)),
            Ok(Step::Go(plan @ OutboundCreatePlan::SearchFirst { .. })) => {
                searches.push((i, contact, plan));
            }
            Ok(Step::Go(OutboundCreatePlan::CreateDirectly)) => creates.push((i, contact)),
        }
    }

    // Searches before creating (tandem's knowledge is not complete, or an earlier attempt's
    // outcome is unknown): one batched search for every contact of the batch.
    if !searches.is_empty() {
        let mut ap_ids = Vec::new();
        let mut emails = Vec::new();
        for (_, _, plan) in &searches {
            if let OutboundCreatePlan::SearchFirst { ap_id, email } = plan {
                if conn.map.apid_key.is_some() {
                    ap_ids.push(ap_id.clone());
                }
                emails.extend(email.clone());
            }
        }
        match conn
            .crm
            .search_people_batch(&conn.session, &ap_ids, &emails)
            .await
        {
            Err(error) => {
                for (i, ..) in searches {
                    results[i] = Some(Err(CrmFailure::Crm(error.clone(), None)));
                }
            }
            Ok(found) => {
                for (i, contact, plan) in searches {
                    let OutboundCreatePlan::SearchFirst { ap_id, email } = plan else {
                        continue;
                    };
                    let by_ap_id = found
                        .by_ap_id
                        .get(ap_id.as_str())
                        .cloned()
                        .unwrap_or_default();
                    let by_email = email
                        .and_then(|e| found.by_email.get(e.as_str()).cloned())
                        .unwrap_or_default();
                    let linked = async {
                        let results =
                            search_results(&engine.store, conn, by_ap_id, by_email).await?;
                        link_if_found(engine, conn, &contact, &results).await
                    }
                    .await;
                    match linked {
                        Ok(Some(pushed)) => results[i] = Some(Ok(pushed)),
                        Ok(None) => creates.push((i, contact)),
                        Err(failure) => results[i] = Some(Err(failure)),
                    }
                }
            }
        }
    }

    // Creates: one call per batch, each record carrying its contact's external id, their
    // companies' organizations resolved together first.
    let written = conn
        .crm
        .company_organization(&conn.map, conn.crm.creates_leads())
        .filter(|field| {
            let rule = conn.map.policy().rule_for(&field.local);
            rule.direction.flows_from(tandem_core::Side::Local)
        });
    if let Some(field) = written {
        let companies: Vec<String> = creates
            .iter()
            .filter_map(|(_, contact)| match contact.fields.get(&field.local)? {
                FieldValue::Text(company) => Some(company.clone()),
                _ => None,
            })
            .collect();
        resolve_companies(engine, conn, &companies).await;
    }
    let mut prepared: Vec<(usize, LocalContact, CreateWrite)> = Vec::new();
    for (i, contact) in creates {
        match prepare_create(engine, conn, &contact).await {
            Ok(write) => prepared.push((i, contact, write)),
            Err(failure) => results[i] = Some(Err(failure)),
        }
    }
    if !prepared.is_empty() {
        let people: Vec<crate::crm::NewPerson> =
            prepared.iter().map(|(_, _, w)| w.person.clone()).collect();
        match conn
            .crm
            .create_people_batch(&conn.session, &conn.map, &people)
            .await
        {
            // The whole call failed: every record's outcome is unknown, so each job's retry
            // looks its external id up before creating again.
            Err(error) => {
                for (i, ..) in prepared {
                    results[i] = Some(Err(CrmFailure::Crm(error.clone(), None)));
                }
            }
            Ok(created) => {
                let mut linking = Vec::new();
                let mut at = Vec::new();
                for ((i, contact, write), outcome) in prepared.into_iter().zip(created) {
                    match outcome {
                        Ok(created) => {
                            at.push(i);
                            linking.push((contact, write.fields, created));
                        }
                        Err(error) => results[i] = Some(Err(CrmFailure::Crm(error, None))),
                    }
                }
                for (i, finished) in at
                    .into_iter()
                    .zip(finish_creates(engine, conn, linking).await)
                {
                    results[i] = Some(finished);
                }
            }
        }
    }

    // Patches: one call per batch; a person whose only changes are organization fields is
    // read, as alone.
    let (reads, writes): (Vec<_>, Vec<_>) = patches
        .into_iter()
        .partition(|(_, _, w)| w.crm_writes.is_empty());
    for (i, contact, write) in reads {
        let person = conn
            .crm
            .get_person(&conn.session, &conn.map, write.person_id)
            .await;
        results[i] = Some(finish_patch(engine, conn, &contact, write, person).await);
    }
    if !writes.is_empty() {
        let updates: Vec<_> = writes
            .iter()
            .map(|(_, _, w)| (w.person_id, w.crm_writes.clone()))
            .collect();
        let answered: Vec<Result<crate::crm::CrmPerson, CrmError>> = match conn
            .crm
            .update_people_batch(&conn.session, &conn.map, &updates)
            .await
        {
            Ok(answered) => answered,
            Err(error) => updates.iter().map(|_| Err(error.clone())).collect(),
        };
        for ((i, contact, write), written) in writes.into_iter().zip(answered) {
            results[i] = Some(finish_patch(engine, conn, &contact, write, written).await);
        }
    }

    results
        .into_iter()
        .map(|r| r.unwrap_or(Ok(Pushed::Nothing)))
        .collect()
}

/// Resolves the companies a batch writes as organizations together (one search, one create
/// call; see `organizations::resolve_many`). A failure is logged and left to each write, which
/// resolves its own company again and fails, or succeeds, with its own contact.
async fn resolve_companies(engine: &Engine, conn: &ConnectionCtx, companies: &[String]) {
    if companies.is_empty() {
        return;
    }
    if let Err(error) = crate::sync::organizations::resolve_many(engine, conn, companies).await {
        tracing::warn!(connection_id = %conn.id, error = %error, "Resolving a batch's companies together failed; each write resolves its own.");
    }
}
