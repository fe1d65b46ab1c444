//! Journey triggers (issue 22): a CRM change becomes the events the app's journeys start and
//! branch on (`deal.stage_changed`, `deal.won`, `activity.completed`, …), delivered on the
//! app's webhook subscriptions that ask for them.
//!
//! Called for every CRM webhook in the transaction that applies it and completes its inbox
//! event, so an event is announced exactly once however often the webhook is delivered (the
//! inbox keeps one row per delivery id) and never for a change that was rolled back. The
//! webhook carries the record and the previous values of the fields that changed; the core
//! (`tandem_core::triggers`) decides what they mean. A change older than one already seen for
//! the record (webhooks are not delivered in order) is still announced, marked `late: true`
//! with the time it happened, so the app can order it; nothing is invented from the gap.
//! tandem's own writes (a journey action moving a deal) come back as webhooks too: those are
//! not announced again (the app heard `action.done`).

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use tandem_core::triggers::{
    self, ActivityDue, ActivityState, Change, DealState, LeadState, OrganizationState, PersonState,
    Trigger,
};
use tandem_core::{ContactId, PersonId};

use std::collections::HashMap;

use crate::crm::{CrmRelated, RelatedKind};
use crate::store::{crm_events, crm_related, Conn};
use crate::sync::connections::ConnectionCtx;
use crate::sync::{app, links, Engine, SyncError};

fn int(record: &Value, key: &str) -> Option<i64> {
    record.get(key).and_then(Value::as_i64)
}

fn text(record: &Value, key: &str) -> Option<String> {
    record.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn deal_state(record: &Value) -> DealState {
    DealState {
        stage_id: int(record, "stage_id"),
        pipeline_id: int(record, "pipeline_id"),
        status: text(record, "status"),
        owner_id: int(record, "owner_id").or_else(|| int(record, "user_id")),
        lost_reason: text(record, "lost_reason"),
        lead_id: text(record, "lead_id").filter(|l| !l.is_empty()),
    }
}

fn lead_state(record: &Value) -> LeadState {
    LeadState {
        person_id: int(record, "person_id"),
    }
}

/// An organization's fields, custom fields flattened to `custom_fields.<key>`.
fn organization_fields(record: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in record.as_object().into_iter().flatten() {
        match (key.as_str(), value) {
            ("custom_fields", Value::Object(custom)) => {
                for (custom_key, custom_value) in custom {
                    out.insert(format!("custom_fields.{custom_key}"), custom_value.clone());
                }
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out
}

fn organization_state(record: &Value) -> OrganizationState {
    OrganizationState {
        fields: organization_fields(record)
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect(),
    }
}

fn activity_state(record: &Value) -> ActivityState {
    ActivityState {
        done: record
            .get("done")
            .is_some_and(|d| d.as_bool() == Some(true) || d.as_i64() == Some(1)),
    }
}

fn person_state(record: &Value) -> PersonState {
    PersonState {
        owner_id: int(record, "owner_id"),
    }
}

/// The record before a change: the current one with the previous values of the fields that
/// changed laid over it.
fn before(data: &Value, previous: &Value) -> Value {
    let mut record = data.as_object().cloned().unwrap_or_default();
    if let Some(changed) = previous.as_object() {
        for (key, value) in changed {
            // Custom fields' previous values are those of the custom fields that changed.
            if let (Some(Value::Object(current)), Value::Object(changed_custom)) = (
                record.get_mut(key).filter(|_| key == "custom_fields"),
                value,
            ) {
                for (custom_key, custom_value) in changed_custom {
                    current.insert(custom_key.clone(), custom_value.clone());
                }
                continue;
            }
            record.insert(key.clone(), value.clone());
        }
    }
    Value::Object(record)
}

fn change<T>(
    action: &str,
    data: &Value,
    previous: &Value,
    state: fn(&Value) -> T,
) -> Option<Change<T>> {
    match action {
        "create" | "added" => Some(Change::Created(state(data))),
        "change" | "updated" => Some(Change::Changed {
            before: state(&before(data, previous)),
            after: state(data),
        }),
        "delete" | "deleted" => Some(Change::Deleted),
        _ => None,
    }
}

/// The person id a record's `key` holds, if it holds one.
fn person(record: &Value, key: &str) -> Option<PersonId> {
    int(record, key).and_then(|id| PersonId::new(id).ok())
}

/// The persons a record concerns: its person, and an activity's participants.
fn persons_of(record: &Value) -> Vec<PersonId> {
    let mut persons: Vec<PersonId> = person(record, "person_id").into_iter().collect();
    if let Some(participants) = record.get("participants").and_then(Value::as_array) {
        persons.extend(participants.iter().filter_map(|p| person(p, "person_id")));
    }
    persons.sort_unstable();
    persons.dedup();
    persons
}

/// The change's details for the app, per trigger.
fn details(trigger: &Trigger) -> Value {
    match trigger {
        Trigger::DealStageChanged {
            from_stage,
            to_stage,
            from_pipeline,
            to_pipeline,
        } => json!({
            "stage_id": { "from": from_stage, "to": to_stage },
            "pipeline_id": { "from": from_pipeline, "to": to_pipeline },
        }),
        Trigger::DealLost { reason } => json!({ "lost_reason": reason }),
        Trigger::DealOwnerChanged { from, to } | Trigger::PersonOwnerChanged { from, to } => {
            json!({ "owner_id": { "from": from, "to": to } })
        }
        Trigger::PersonMerged { into } => json!({ "merged_into": into }),
        Trigger::LeadConverted {
            lead_id,
            deal_id,
            person_id,
            organization_id,
        } => {
            let mut change = json!({ "lead_id": lead_id, "deal_id": deal_id });
            // What a conversion into a person made (Salesforce: the Contact, and the Account
            // when it made one).
            if let Some(person) = person_id {
                change["person_id"] = json!(person);
            }
            if let Some(organization) = organization_id {
                change["organization_id"] = json!(organization);
            }
            change
        }
        Trigger::ActivityOverdue { due_at } => json!({
            "due_at": DateTime::from_timestamp(*due_at, 0).map(|t| t.to_rfc3339()),
        }),
        _ => json!({}),
    }
}

/// An organization's changed fields, each `{from, to}`, and its name.
fn organization_details(
    fields: &[String],
    name: Option<&Value>,
    record: &Value,
    previous: &Value,
) -> Value {
    let after = organization_fields(record);
    let before = organization_fields(&before(record, previous));
    let changes: Map<String, Value> = fields
        .iter()
        .map(|field| {
            (
                field.clone(),
                json!({
                    "from": before.get(field).cloned().unwrap_or(Value::Null),
                    "to": after.get(field).cloned().unwrap_or(Value::Null),
                }),
            )
        })
        .collect();
    json!({ "name": name, "fields": changes })
}

/// What [`observe`] needs that is read outside its transaction (the mirror's tables and the
/// CRM; on SQLite the store has one connection, which the transaction holds).
#[derive(Debug, Clone, Default)]
pub struct Prefetched {
    /// The persons of the organization an organization webhook names.
    pub organization_persons: Vec<PersonId>,
}

/// Reads what [`observe`] will need for this webhook body: for an organization's change, its
/// persons (from the mirror when the connection keeps one; else the persons the rename
/// re-read, else one CRM read, only when a subscription asks for `organization.changed`).
pub async fn prefetch(
    engine: &Engine,
    conn: &ConnectionCtx,
    payload: &str,
    renamed_people: &[crate::crm::CrmPerson],
) -> Result<Prefetched, SyncError> {
    let Ok(body) = serde_json::from_str::<Value>(payload) else {
        return Ok(Prefetched::default());
    };
    let meta = &body["meta"];
    let entity = meta["entity"].as_str().or_else(|| meta["object"].as_str());
    let action = meta["action"].as_str();
    if entity != Some("organization") || !matches!(action, Some("change" | "updated")) {
        return Ok(Prefetched::default());
    }
    // Only a change that matters is announced: no read for one of counters only.
    let (data, previous) = (&body["data"], &body["previous"]);
    let matters = change(
        action.unwrap_or_default(),
        data,
        previous,
        organization_state,
    )
    .is_some_and(|c| !triggers::organization_triggers(&c).is_empty());
    if !matters {
        return Ok(Prefetched::default());
    }
    let Some(org_id) = meta["entity_id"]
        .as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .or_else(|| meta["entity_id"].as_i64())
        .or_else(|| body["data"]["id"].as_i64())
    else {
        return Ok(Prefetched::default());
    };
    let mut persons: Vec<PersonId> =
        if crate::store::mirror::mirror_enabled(&engine.store, conn.id).await? {
            let db = crate::store::mirror::MirrorDb::in_store(&engine.store);
            db.live_rows_where(&db.table("persons"), "org_id", org_id)
                .await?
                .iter()
                .filter_map(|(raw, _)| person(raw, "id"))
                .collect()
        } else if !renamed_people.is_empty() {
            renamed_people.iter().map(|p| p.id).collect()
        } else if app::wanted(&engine.store, "organization.changed").await? {
            conn.crm
                .organization_people(&conn.session, &conn.map, org_id)
                .await?
                .iter()
                .map(|p| p.id)
                .collect()
        } else {
            Vec::new()
        };
    persons.sort_unstable();
    persons.dedup();
    Ok(Prefetched {
        organization_persons: persons,
    })
}

/// The (pipeline, stage) places a deal event touches, for subscriptions' filters.
fn places(trigger: &Trigger, record: &Value) -> Vec<(Option<i64>, Option<i64>)> {
    let mut out = vec![(int(record, "pipeline_id"), int(record, "stage_id"))];
    if let Trigger::DealStageChanged {
        from_stage,
        from_pipeline,
        ..
    } = trigger
    {
        out.push((*from_pipeline, *from_stage));
    }
    out
}

/// Announces the triggers of one CRM webhook body (`payload`) in `txn`; returns how many
/// deliveries were queued. A body this does not understand announces nothing.
pub async fn observe(
    txn: &impl Conn,
    engine: &Engine,
    conn: &ConnectionCtx,
    payload: &str,
    prefetched: &Prefetched,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    let mut now = now;
    let Ok(body) = serde_json::from_str::<Value>(payload) else {
        return Ok(0);
    };
    let meta = body.get("meta").cloned().unwrap_or_default();
    let meta_text = |key: &str| -> Option<String> {
        match meta.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    let (Some(entity), Some(action), Some(object_id)) = (
        meta_text("entity").or_else(|| meta_text("object")),
        meta_text("action"),
        meta_text("entity_id").or_else(|| meta_text("id")),
    ) else {
        return Ok(0);
    };
    // tandem's own write, coming back: its journey action already told the app.
    let by_tandem = meta_text("change_source").as_deref() == Some("api")
        && meta_text("user_id")
            .is_some_and(|u| Some(u) == conn.default_owner.map(|o| o.to_string()));
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let previous = body.get("previous").cloned().unwrap_or(Value::Null);
    // A deleted record's last state is in `previous`.
    let record = if data.is_object() { &data } else { &previous };
    // The state the app now knows (for catch-up triggers); a change a catch-up event already
    // covered (the backstop found it before its webhook arrived) is not announced again.
    if let Some(object) = tracked(&entity) {
        let deleted = matches!(action.as_str(), "delete" | "deleted");
        let version = if deleted {
            meta.get("timestamp")
                .and_then(crate::mirror::pipedrive_time)
        } else {
            record_version(record)
        };
        if let (Some(version), Some(state)) = (version, state_of(object, record, deleted)) {
            // A catch-up moving this record's state meanwhile commits first (and this change
            // is then covered), or waits for this transaction.
            crm_events::lock_trigger_state(txn, conn.id, object, &object_id).await?;
            // The events are queued now, and a contact's deliveries go out in the order of
            // their time: the time the event was taken up (before the mirror's write, which may
            // wait) would put it before a catch-up that this one waited for.
            now = now.max(engine.now());
            let stored = crm_events::trigger_state(txn, conn.id, object, &object_id).await?;
            let covered = stored
                .as_ref()
                .and_then(|s| s.covered.as_deref())
                .is_some_and(|c| version.as_str() <= c);
            // A change of a record the app knows at an older state that differs from the one
            // this change started from: the changes between were never heard (their webhooks
            // were lost, or are late). One catch-up event tells them now, and covers them up to
            // this version so their webhooks, should they come, add nothing.
            // A change or a delete of a record the app never heard of, once the mirror's
            // initial extraction recorded every record (a catch-up completed): its creation
            // was never heard (the create webhook was lost). It is told, from the state the
            // change started from (a deleted record's last state), before the change itself,
            // so the app never hears of a deal deleted that it was never told was created.
            let unheard_creation = stored.is_none()
                && matches!(action.as_str(), "change" | "updated" | "delete" | "deleted")
                && record.is_object()
                && crm_events::catch_up_since(txn, conn.id).await?.is_some();
            let gap = match (&stored, action.as_str()) {
                (None, _) if unheard_creation => state_of(object, &before(&data, &previous), false)
                    .map(|from| (Value::Null, from)),
                (Some(stored), "change" | "updated" | "delete" | "deleted")
                    if !covered && stored.version.as_str() < version.as_str() =>
                {
                    let known: Option<Value> = serde_json::from_str(&stored.state).ok();
                    let started_from = if deleted {
                        state_of(object, record, false)
                    } else {
                        state_of(object, &before(&data, &previous), false)
                    };
                    match (known, started_from) {
                        (Some(known), Some(from))
                            if known["deleted"] != json!(true) && known != from =>
                        {
                            Some((known, from))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            crm_events::put_trigger_state(
                txn,
                conn.id,
                object,
                &object_id,
                &state.to_string(),
                &version,
                gap.as_ref().map(|_| version.as_str()),
            )
            .await?;
            if let Some((known, from)) = gap {
                let heard = (!known.is_null()).then_some(&known);
                let fired = state_triggers(object, heard, &from, &object_id);
                let persons = if object == "person" {
                    object_id.parse().into_iter().collect()
                } else {
                    persons_of(record)
                };
                let mut contacts: Vec<ContactId> = Vec::new();
                for person in persons {
                    if let Some(link) = links::by_person(txn, conn.id, person).await? {
                        contacts.push(link.contact_id);
                    }
                }
                let at_gap = before(&data, &previous);
                let found = if deleted { record } else { &at_gap };
                let queued = announce_catch_up(
                    txn, conn.id, object, &object_id, &fired, &known, found, &contacts, &version,
                    now,
                )
                .await?;
                tracing::info!(connection_id = %conn.id, object, queued, "A change started from a state the app never heard; the changes between are announced as catch-up.");
            }
            if covered {
                tracing::debug!(connection_id = %conn.id, object, "A change a catch-up event already announced arrived; not announced again.");
                return Ok(0);
            }
        }
    }
    if by_tandem {
        return Ok(0);
    }
    let fired = match entity.as_str() {
        "deal" => change(&action, &data, &previous, deal_state)
            .map(|c| triggers::deal_triggers(&c, object_id.parse().ok()))
            .unwrap_or_default(),
        "lead" => change(&action, &data, &previous, lead_state)
            .map(|c| triggers::lead_triggers(&c))
            .unwrap_or_default(),
        "organization" => change(&action, &data, &previous, organization_state)
            .map(|c| triggers::organization_triggers(&c))
            .unwrap_or_default(),
        "activity" => change(&action, &data, &previous, activity_state)
            .map(|c| triggers::activity_triggers(&c))
            .unwrap_or_default(),
        "person" => {
            let merged_into = meta_text("merged_to_id").and_then(|m| m.parse().ok());
            change(&action, &data, &previous, person_state)
                .map(|c| triggers::person_triggers(&c, merged_into))
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    if fired.is_empty() {
        return Ok(0);
    }
    let occurred_at = meta_text("timestamp").unwrap_or_else(|| now.to_rfc3339());
    let late = !crm_events::advance(txn, conn.id, &entity, &object_id, &occurred_at).await?;
    let persons = if entity == "person" {
        object_id.parse().into_iter().collect()
    } else if entity == "organization" {
        prefetched.organization_persons.clone()
    } else {
        persons_of(record)
    };
    let mut contacts: Vec<ContactId> = Vec::new();
    for person in persons {
        if let Some(link) = links::by_person(txn, conn.id, person).await? {
            contacts.push(link.contact_id);
        }
    }
    let mut queued = 0;
    for trigger in &fired {
        let mut data_out = Map::new();
        // A converted lead is announced about the lead, with the deal it became.
        let (object, id) = match trigger {
            Trigger::LeadConverted { lead_id, .. } => ("lead".to_owned(), lead_id.clone()),
            _ => (entity.clone(), object_id.clone()),
        };
        data_out.insert("object".into(), json!(object));
        data_out.insert("id".into(), json!(id));
        data_out.insert(entity.clone(), record.clone());
        data_out.insert("previous".into(), previous.clone());
        let change = match trigger {
            Trigger::OrganizationChanged { fields } => {
                organization_details(fields, record.get("name"), record, &previous)
            }
            _ => details(trigger),
        };
        data_out.insert("change".into(), change);
        data_out.insert("contact_ids".into(), json!(contacts));
        data_out.insert("occurred_at".into(), json!(occurred_at));
        data_out.insert("late".into(), json!(late));
        data_out.insert("catch_up".into(), json!(false));
        let event = json!({
            "type": trigger.kind(),
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": Value::Object(data_out),
        });
        queued += app::crm_event(
            txn,
            conn.id,
            trigger.kind(),
            &contacts,
            &places(trigger, record),
            &event,
            now,
        )
        .await?;
    }
    if late {
        tracing::info!(connection_id = %conn.id, object = %entity, "A CRM change arrived after a newer one; its triggers are marked late.");
    }
    Ok(queued)
}

/// When an activity is due, as Unix seconds: its `due_date` at its `due_time` (UTC, as
/// Pipedrive keeps it), or the end of its day when it has no time.
fn due_at(activity: &Value) -> Option<i64> {
    due_at_of(
        activity.get("due_date")?.as_str()?,
        activity.get("due_time").and_then(Value::as_str),
    )
}

/// [`due_at`] of a due date (`YYYY-MM-DD`) and time (`HH:MM[:SS]`, UTC).
fn due_at_of(date: &str, time: Option<&str>) -> Option<i64> {
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    let time = time.filter(|t| !t.is_empty()).and_then(|t| {
        chrono::NaiveTime::parse_from_str(t, "%H:%M")
            .or_else(|_| chrono::NaiveTime::parse_from_str(t, "%H:%M:%S"))
            .ok()
    });
    let at = match time {
        Some(time) => date.and_time(time),
        None => date.succ_opt()?.and_hms_opt(0, 0, 0)?,
    };
    Some(at.and_utc().timestamp())
}

/// The CRM trigger types among `types` that cannot fire with today's connections, each with
/// why ([`tandem_core::triggers::unavailable_reason`]): shown on the subscription so the app
/// knows, rather than waiting for events that cannot come.
pub async fn unavailable(
    store: &crate::store::Store,
    types: &[String],
) -> Result<Vec<(String, &'static str)>, SyncError> {
    use crate::sync::connections::context::{kind, state};
    if !types.iter().any(|t| Trigger::KINDS.contains(&t.as_str())) {
        return Ok(Vec::new());
    }
    let mut sources = tandem_core::triggers::TriggerSources {
        connections: 0,
        pipedrive: 0,
        mirrored: false,
    };
    for connection in crate::store::connections::list(store).await? {
        if connection.state == state::DISCONNECTED {
            continue;
        }
        sources.connections += 1;
        if connection.crm == kind::PIPEDRIVE {
            sources.pipedrive += 1;
            sources.mirrored = sources.mirrored
                || crate::store::mirror::mirror_enabled(store, connection.id).await?;
        }
    }
    Ok(types
        .iter()
        .filter_map(|t| {
            tandem_core::triggers::unavailable_reason(t, sources).map(|why| (t.clone(), why))
        })
        .collect())
}

/// The date trigger: announces `activity.overdue` for every open activity of the mirror whose
/// due time passed (by the engine's clock), once per due time (`crm_trigger_announced`; a new
/// due time is eligible again). Only connections that keep a live mirror are scanned: without
/// the mirror tandem does not hold activities. Returns how many deliveries were queued.
pub async fn scan_overdue(engine: &Engine) -> Result<usize, SyncError> {
    const KIND: &str = "activity.overdue";
    if !app::wanted(&engine.store, KIND).await? {
        return Ok(0);
    }
    let now = engine.now();
    let db = crate::store::mirror::MirrorDb::in_store(&engine.store);
    let today = now.date_naive().format("%Y-%m-%d").to_string();
    let mut queued = 0;
    for mirror in crate::store::mirror::enabled_mirrors(&engine.store).await? {
        let connection = tandem_core::ConnectionId::from(mirror.connection_id);
        let due = db
            .live_rows_upto(&db.table("activities"), "due_date", &today)
            .await?;
        if due.is_empty() {
            continue;
        }
        let announced = crm_events::announced(&engine.store, connection, KIND).await?;
        for (activity, _) in due {
            let Some(id) = activity.get("id").map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }) else {
                continue;
            };
            let state = ActivityDue {
                done: activity_state(&activity).done,
                deleted: activity.get("is_deleted").and_then(Value::as_bool) == Some(true),
                due_at: due_at(&activity),
            };
            let before = announced.get(&id).and_then(|a| a.parse().ok());
            let Some(trigger) = triggers::activity_overdue(&state, before, now.timestamp()) else {
                continue;
            };
            let Trigger::ActivityOverdue { due_at } = trigger else {
                continue;
            };
            queued += announce_overdue(
                engine,
                connection,
                &id,
                &activity,
                &persons_of(&activity),
                due_at,
            )
            .await?;
        }
    }
    // Connections without a live mirror keep their activities themselves (Salesforce's Tasks,
    // `sync::related`): open ones due by today.
    let mut announced = HashMap::new();
    for (connection, activity) in crm_related::open_activities_due(&engine.store, &today).await? {
        if let std::collections::hash_map::Entry::Vacant(slot) = announced.entry(connection) {
            slot.insert(crm_events::announced(&engine.store, connection, KIND).await?);
        }
        let id = activity.id.to_string();
        let state = ActivityDue {
            done: false,
            deleted: false,
            due_at: activity
                .due_on
                .as_deref()
                .and_then(|day| due_at_of(day, None)),
        };
        let before = announced
            .get(&connection)
            .and_then(|a| a.get(&id))
            .and_then(|a| a.parse().ok());
        let Some(Trigger::ActivityOverdue { due_at }) =
            triggers::activity_overdue(&state, before, now.timestamp())
        else {
            continue;
        };
        let persons: Vec<PersonId> = activity.person_id.into_iter().collect();
        queued += announce_overdue(
            engine,
            connection,
            &id,
            &activity.to_json(),
            &persons,
            due_at,
        )
        .await?;
    }
    Ok(queued)
}

/// Announces `activity.overdue` for activity `id` (the record, `activity`; the persons it
/// concerns) due at `due_at`, once per due time: another scan (a replica, a restart) may have
/// announced it meanwhile. Returns how many deliveries were queued.
async fn announce_overdue(
    engine: &Engine,
    connection: tandem_core::ConnectionId,
    id: &str,
    activity: &Value,
    persons: &[PersonId],
    due_at: i64,
) -> Result<usize, SyncError> {
    const KIND: &str = "activity.overdue";
    let now = engine.now();
    let txn = engine.store.begin().await?;
    if !crm_events::announce_once(&txn, connection, KIND, id, &due_at.to_string(), now).await? {
        txn.rollback().await?;
        return Ok(0);
    }
    let mut contacts: Vec<ContactId> = Vec::new();
    for person in persons {
        if let Some(link) = links::by_person(&txn, connection, *person).await? {
            contacts.push(link.contact_id);
        }
    }
    let occurred_at = DateTime::from_timestamp(due_at, 0).unwrap_or(now);
    let event = json!({
        "type": KIND,
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "object": "activity",
            "id": id,
            "activity": activity,
            "previous": Value::Null,
            "change": details(&Trigger::ActivityOverdue { due_at }),
            "contact_ids": contacts,
            "occurred_at": occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "late": false,
            "catch_up": false,
        },
    });
    let queued = app::crm_event(&txn, connection, KIND, &contacts, &[], &event, now).await?;
    txn.commit().await?;
    Ok(queued)
}

/// The object name catch-up triggers track for a webhook entity (deals, activities, persons).
fn tracked(entity: &str) -> Option<&'static str> {
    match entity {
        "deal" => Some("deal"),
        "activity" => Some("activity"),
        "person" => Some("person"),
        _ => None,
    }
}

/// The mirror's stream of a tracked object.
fn stream_of(object: &str) -> &'static str {
    match object {
        "deal" => "deals",
        "activity" => "activities",
        _ => "persons",
    }
}

/// A record's version: its `update_time` in the mirror's time format.
fn record_version(record: &Value) -> Option<String> {
    record
        .get("update_time")
        .and_then(crate::mirror::pipedrive_time)
}

/// The fields of a record that triggers read, as stored in `crm_trigger_state` (and read
/// back by the same state functions as a webhook's record).
fn state_of(object: &str, record: &Value, deleted: bool) -> Option<Value> {
    let mut state = match object {
        "deal" => {
            let d = deal_state(record);
            json!({
                "stage_id": d.stage_id, "pipeline_id": d.pipeline_id, "status": d.status,
                "owner_id": d.owner_id, "lost_reason": d.lost_reason, "lead_id": d.lead_id,
            })
        }
        "activity" => json!({ "done": activity_state(record).done }),
        "person" => json!({ "owner_id": person_state(record).owner_id }),
        _ => return None,
    };
    state["deleted"] = json!(deleted);
    Some(state)
}

/// The triggers of a change from the state the app knew (`before`) to the one the mirror
/// holds (`after`; `None` for a record it never knew).
fn state_triggers(object: &str, before: Option<&Value>, after: &Value, id: &str) -> Vec<Trigger> {
    let after_deleted = after["deleted"] == json!(true);
    let before_deleted = before.is_some_and(|b| b["deleted"] == json!(true));
    if before_deleted {
        return Vec::new();
    }
    fn change<T>(
        before: Option<&Value>,
        after: &Value,
        deleted: bool,
        state: fn(&Value) -> T,
    ) -> Change<T> {
        match before {
            _ if deleted => Change::Deleted,
            None => Change::Created(state(after)),
            Some(before) => Change::Changed {
                before: state(before),
                after: state(after),
            },
        }
    }
    match object {
        "deal" => triggers::deal_triggers(
            &change(before, after, after_deleted, deal_state),
            id.parse().ok(),
        ),
        "activity" => {
            triggers::activity_triggers(&change(before, after, after_deleted, activity_state))
        }
        "person" => {
            triggers::person_triggers(&change(before, after, after_deleted, person_state), None)
        }
        _ => Vec::new(),
    }
}

/// Catch-up triggers, after a pass of connection `connection`'s live mirror completed (it
/// started at `started`): every deal, activity and person the pass found in a state the app
/// has not heard of (its webhook never arrived, or has not yet) is announced, marked
/// `"catch_up": true`, from the state the app last heard (`previous`) to the one found
/// (`change`), once: the state moves in the same transaction, only if no webhook moved it
/// meanwhile, and a webhook arriving later for a change it covered is not announced again.
/// The initial extraction announces nothing: it records what exists. Returns how many
/// deliveries were queued.
pub async fn catch_up(
    engine: &Engine,
    connection: tandem_core::ConnectionId,
    started: Option<&str>,
    initial: bool,
) -> Result<usize, SyncError> {
    let store = &engine.store;
    let db = crate::store::mirror::MirrorDb::in_store(store);
    let now = engine.now();
    let initial_done_at = crate::store::mirror::mirror_connection(store, connection)
        .await?
        .and_then(|m| m.initial_done_at);
    // From the start of the last pass whose catch-up completed (a catch-up cut off by a
    // restart is redone), else from this pass' start.
    let watermark = crm_events::catch_up_since(store, connection).await?;
    let since: Option<String> = match (watermark, started) {
        (Some(w), Some(s)) => Some(w.min(s.to_owned())),
        (w, s) => w.or_else(|| s.map(str::to_owned)),
    };
    let mut queued = 0;
    for object in ["deal", "activity", "person"] {
        let since = if initial { None } else { since.as_deref() };
        let rows =
            crate::store::crm_conditions::rows_changed_since(&db, stream_of(object), since).await?;
        let observed: Vec<(String, Value, Value, String)> = rows
            .into_iter()
            .filter_map(|row| {
                let deleted = row.deleted_at.is_some();
                let raw = row.raw.unwrap_or(Value::Null);
                let version = match &row.deleted_at {
                    Some(at) => Some(at.clone()),
                    None => record_version(&raw),
                }?;
                let state = state_of(object, &raw, deleted)?;
                Some((row.id, raw, state, version))
            })
            .collect();
        if initial {
            let seeds: Vec<(String, String, String)> = observed
                .into_iter()
                .map(|(id, _, state, version)| (id, state.to_string(), version))
                .collect();
            crm_events::seed_trigger_states(store, connection, object, &seeds).await?;
            continue;
        }
        let stored = crm_events::trigger_states(store, connection, object).await?;
        for (id, raw, state, version) in observed {
            let known = stored.get(&id);
            if known.is_some_and(|k| version.as_str() <= k.version.as_str()) {
                continue;
            }
            let before: Option<Value> = known.and_then(|k| serde_json::from_str(&k.state).ok());
            let new_here = known.is_none()
                && record_version_of_add(&raw)
                    .zip(initial_done_at.as_deref())
                    // `add_time` has whole seconds: a record added in the second the
                    // initial pass ended, and not seeded by it, is news too.
                    .is_some_and(|(added, done)| added.as_str() >= done.get(..19).unwrap_or(done));
            let fired = if known.is_some() || new_here {
                state_triggers(object, before.as_ref(), &state, &id)
            } else {
                // Older than the mirror and never heard of: not news.
                Vec::new()
            };
            let txn = store.begin().await?;
            // A webhook's triggers for this record take turns with this transaction (the
            // state moves only if they did not move it meanwhile); its events are queued at
            // the time of that turn, not the pass's.
            crm_events::lock_trigger_state(&txn, connection, object, &id).await?;
            let now = now.max(engine.now());
            let moved = crm_events::catch_up_state(
                &txn,
                connection,
                object,
                &id,
                known.map(|k| k.version.as_str()),
                &state.to_string(),
                &version,
            )
            .await?;
            if !moved || fired.is_empty() {
                txn.commit().await?;
                continue;
            }
            let mut contacts: Vec<ContactId> = Vec::new();
            let persons = if object == "person" {
                id.parse().into_iter().collect()
            } else {
                persons_of(&raw)
            };
            for person in persons {
                if let Some(link) = links::by_person(&txn, connection, person).await? {
                    contacts.push(link.contact_id);
                }
            }
            queued += announce_catch_up(
                &txn,
                connection,
                object,
                &id,
                &fired,
                before.as_ref().unwrap_or(&Value::Null),
                &raw,
                &contacts,
                &version,
                now,
            )
            .await?;
            txn.commit().await?;
            tracing::info!(connection_id = %connection, object, "A change no webhook announced was found by the mirror; announced as catch-up.");
        }
    }
    // The initial extraction's rows are seeded; what later passes read was written after
    // their start.
    let done_up_to = if initial {
        Some(crate::mirror::now_text())
    } else {
        started.map(str::to_owned)
    };
    if let Some(at) = done_up_to {
        crm_events::set_catch_up_since(store, connection, &at).await?;
    }
    Ok(queued)
}

/// Deal, activity and organization triggers of a CRM without webhooks (Salesforce's
/// Opportunities, Tasks and Accounts, read by `sync::related`): each deal, activity or
/// organization of a read's page against the state kept for it, announced in `txn`, the
/// transaction that stores the page, so each change is announced once (an organization's
/// persons are read before it: [`prefetch_related`]). Called for change reads only: the first
/// listing announces nothing, it records what exists. The event's `deal` (`activity`,
/// `organization`) is the record as the CRM answered it plus `status` and, for a deal,
/// `stage_id` (the boundary's id of its stage, the one journey actions take). Returns how many
/// deliveries were queued.
pub async fn related_changes(
    txn: &impl Conn,
    connection: tandem_core::ConnectionId,
    items: &[CrmRelated],
    prefetched: &RelatedPrefetched,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    let mut queued = 0;
    for (kind, object) in [
        (RelatedKind::Company, "organization"),
        (RelatedKind::Deal, "deal"),
        (RelatedKind::Activity, "activity"),
    ] {
        let changed: Vec<&CrmRelated> = items.iter().filter(|i| i.kind == kind).collect();
        if changed.is_empty() {
            continue;
        }
        let ids: Vec<i64> = changed.iter().map(|d| d.id).collect();
        let kept: HashMap<i64, CrmRelated> = crm_related::by_ids(txn, connection, kind, &ids)
            .await?
            .into_iter()
            .map(|d| (d.id, d))
            .collect();
        for record in changed {
            let before = kept.get(&record.id);
            queued += if kind == RelatedKind::Company {
                related_organization_change(txn, connection, before, record, prefetched, now)
                    .await?
            } else {
                related_change(txn, connection, object, before, record, now).await?
            };
        }
    }
    Ok(queued)
}

async fn related_change(
    txn: &impl Conn,
    connection: tandem_core::ConnectionId,
    object: &str,
    before: Option<&CrmRelated>,
    record: &CrmRelated,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    fn change<T>(
        before: Option<&CrmRelated>,
        record: &CrmRelated,
        state: fn(&CrmRelated, Option<&CrmRelated>) -> T,
    ) -> Option<Change<T>> {
        Some(match (before, record.deleted) {
            (Some(before), _) if before.deleted => return None,
            (None, true) => return None,
            (Some(_), true) => Change::Deleted,
            (None, false) => Change::Created(state(record, None)),
            (Some(before), false) => Change::Changed {
                before: state(before, Some(record)),
                after: state(record, None),
            },
        })
    }
    let fired = match object {
        "deal" => change(before, record, related_deal_state)
            .map(|c| triggers::deal_triggers(&c, Some(record.id))),
        _ => {
            change(before, record, related_activity_state).map(|c| triggers::activity_triggers(&c))
        }
    }
    .unwrap_or_default();
    if fired.is_empty() {
        return Ok(0);
    }
    // A deleted record is told as it was kept; tandem's own note of the person it created
    // the record for stays.
    let mut subject = match (before, record.deleted) {
        (Some(before), true) => before.clone(),
        _ => record.clone(),
    };
    subject.deleted = record.deleted;
    subject.person_id = subject.person_id.or(before.and_then(|b| b.person_id));
    let persons = match object {
        "deal" => crm_related::persons_of_deal(txn, connection, &subject).await?,
        _ => subject.person_id.into_iter().collect(),
    };
    let mut contacts: Vec<ContactId> = Vec::new();
    for person in persons {
        if let Some(link) = links::by_person(txn, connection, person).await? {
            contacts.push(link.contact_id);
        }
    }
    let previous = match (object, before) {
        (_, None) => Value::Null,
        ("deal", Some(b)) => {
            let state = related_deal_state(b, Some(record));
            json!({
                "stage_id": state.stage_id, "pipeline_id": state.pipeline_id,
                "status": state.status, "owner_id": state.owner_id,
            })
        }
        (_, Some(b)) => json!({ "done": related_activity_state(b, Some(record)).done }),
    };
    let version = record.modified.clone().unwrap_or_else(|| now.to_rfc3339());
    // Two reads of the same change at once (the poll loop beside an initial sync's end, or
    // another replica) both find it new: the first to record it announces it.
    let kind = format!("related.{object}");
    let id = record.id.to_string();
    if !crm_events::announce_once(txn, connection, &kind, &id, &version, now).await? {
        return Ok(0);
    }
    announce_catch_up(
        txn,
        connection,
        object,
        &id,
        &fired,
        &previous,
        &subject.to_json(),
        &contacts,
        &version,
        now,
    )
    .await
}

/// What [`related_changes`] needs that is read outside its transaction: the persons of each
/// organization of the page whose fields changed.
#[derive(Debug, Clone, Default)]
pub struct RelatedPrefetched {
    organization_persons: HashMap<i64, Vec<PersonId>>,
}

/// A kept organization's fields for the triggers: the record as the CRM answered it
/// (bookkeeping is left out by `organization_triggers`). Only the fields the kept one has
/// (`known`) count: a field tandem did not read before is no change.
fn related_organization_state(
    organization: &CrmRelated,
    known: Option<&CrmRelated>,
) -> OrganizationState {
    let mut state = organization_state(&organization.raw);
    if let Some(known) = known.and_then(|k| k.raw.as_object()) {
        state.fields.retain(|field, _| known.contains_key(field));
    }
    state
}

/// The change of a kept organization `before` to `record`, as triggers see it.
fn organization_change(
    before: Option<&CrmRelated>,
    record: &CrmRelated,
) -> Option<Change<OrganizationState>> {
    let before = before.filter(|b| !b.deleted && !record.deleted)?;
    Some(Change::Changed {
        before: related_organization_state(before, None),
        after: related_organization_state(record, Some(before)),
    })
}

/// Reads what [`related_changes`] will need for a page of related records: the persons of
/// the organizations whose fields changed (Salesforce: the Contacts of those Accounts, one
/// query per 200), only when a subscription asks for `organization.changed`.
pub async fn prefetch_related(
    engine: &Engine,
    conn: &ConnectionCtx,
    items: &[CrmRelated],
) -> Result<RelatedPrefetched, SyncError> {
    let mut out = RelatedPrefetched::default();
    let organizations: Vec<&CrmRelated> = items
        .iter()
        .filter(|i| i.kind == RelatedKind::Company && !i.deleted)
        .collect();
    if organizations.is_empty() || !app::wanted(&engine.store, "organization.changed").await? {
        return Ok(out);
    }
    let ids: Vec<i64> = organizations.iter().map(|o| o.id).collect();
    let kept: HashMap<i64, CrmRelated> =
        crm_related::by_ids(&engine.store, conn.id, RelatedKind::Company, &ids)
            .await?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
    let changed: Vec<i64> = organizations
        .iter()
        .filter(|o| {
            organization_change(kept.get(&o.id), o)
                .is_some_and(|c| !triggers::organization_triggers(&c).is_empty())
        })
        .map(|o| o.id)
        .collect();
    if changed.is_empty() {
        return Ok(out);
    }
    let mut members = conn
        .crm
        .organization_members(&conn.session, &conn.map, &changed)
        .await?;
    for id in changed {
        let mut persons = members.remove(&id).unwrap_or_default();
        persons.sort_unstable();
        persons.dedup();
        out.organization_persons.insert(id, persons);
    }
    Ok(out)
}

/// Announces `organization.changed` for a kept organization whose fields changed (see
/// [`related_changes`]), to the linked contacts of its persons, once.
async fn related_organization_change(
    txn: &impl Conn,
    connection: tandem_core::ConnectionId,
    before: Option<&CrmRelated>,
    record: &CrmRelated,
    prefetched: &RelatedPrefetched,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    let Some(change) = organization_change(before, record) else {
        return Ok(0);
    };
    let fired = triggers::organization_triggers(&change);
    let (Some(before), [Trigger::OrganizationChanged { fields }]) = (before, fired.as_slice())
    else {
        return Ok(0);
    };
    // Nobody asked for it when its persons were read (or it changed between the two reads).
    let Some(persons) = prefetched.organization_persons.get(&record.id) else {
        return Ok(0);
    };
    let version = record.modified.clone().unwrap_or_else(|| now.to_rfc3339());
    let id = record.id.to_string();
    if !crm_events::announce_once(txn, connection, "related.organization", &id, &version, now)
        .await?
    {
        return Ok(0);
    }
    let mut contacts: Vec<ContactId> = Vec::new();
    for person in persons {
        if let Some(link) = links::by_person(txn, connection, *person).await? {
            contacts.push(link.contact_id);
        }
    }
    // The changed fields' values before, as a webhook's `previous` carries them.
    let previous: Map<String, Value> = fields
        .iter()
        .map(|f| (f.clone(), before.raw.get(f).cloned().unwrap_or(Value::Null)))
        .collect();
    let previous = Value::Object(previous);
    let name = record.name.clone().map(Value::String);
    let event = json!({
        "type": fired[0].kind(),
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {
            "object": "organization",
            "id": id,
            "organization": record.to_json(),
            "previous": previous,
            "change": organization_details(fields, name.as_ref(), &record.raw, &previous),
            "contact_ids": contacts,
            "occurred_at": version,
            "late": false,
            "catch_up": true,
        },
    });
    app::crm_event(
        txn,
        connection,
        fired[0].kind(),
        &contacts,
        &[],
        &event,
        now,
    )
    .await
}

/// A kept deal's state for the triggers. What tandem does not know of the stored deal (one a
/// journey action created, before a read filled it in) is taken from the newer one: not
/// knowing is no change.
fn related_deal_state(deal: &CrmRelated, newer: Option<&CrmRelated>) -> DealState {
    DealState {
        stage_id: deal.stage_id.or(newer.and_then(|n| n.stage_id)),
        pipeline_id: None,
        status: deal
            .status
            .clone()
            .or_else(|| newer.and_then(|n| n.status.clone())),
        owner_id: deal.owner_id.or(newer.and_then(|n| n.owner_id)),
        lost_reason: None,
        lead_id: None,
    }
}

fn related_activity_state(activity: &CrmRelated, newer: Option<&CrmRelated>) -> ActivityState {
    let status = activity
        .status
        .as_deref()
        .or(newer.and_then(|n| n.status.as_deref()));
    ActivityState {
        done: status == Some("done"),
    }
}

/// Queues the catch-up events `fired` of record `object` `id`: from the state the app knew
/// (`known`, stored state fields; `null` for a record new to it) to `found` (the record),
/// found by `version`. Returns how many deliveries were queued.
#[allow(clippy::too_many_arguments)]
async fn announce_catch_up(
    txn: &impl Conn,
    connection: tandem_core::ConnectionId,
    object: &str,
    id: &str,
    fired: &[Trigger],
    known: &Value,
    found: &Value,
    contacts: &[ContactId],
    version: &str,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    let mut queued = 0;
    for trigger in fired {
        let (kind_object, kind_id) = match trigger {
            Trigger::LeadConverted { lead_id, .. } => ("lead".to_owned(), lead_id.clone()),
            _ => (object.to_owned(), id.to_owned()),
        };
        let mut event = json!({
            "type": trigger.kind(),
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": {
                "object": kind_object,
                "id": kind_id,
                "previous": known,
                "change": details(trigger),
                "contact_ids": contacts,
                "occurred_at": version,
                "late": false,
                "catch_up": true,
            },
        });
        event["data"][object] = found.clone();
        queued += app::crm_event(
            txn,
            connection,
            trigger.kind(),
            contacts,
            &places(trigger, found),
            &event,
            now,
        )
        .await?;
    }
    Ok(queued)
}

/// When a record was added, in the mirror's time format.
fn record_version_of_add(record: &Value) -> Option<String> {
    record
        .get("add_time")
        .and_then(crate::mirror::pipedrive_time)
}

/// A person's link before a read of it is applied, for [`person_read`].
#[derive(Debug, Clone, Copy)]
pub struct PersonBefore {
    /// The contact linked to it (the link moves or goes when the person left).
    contact_id: ContactId,
    /// Its owner as the link last merged it (when the owner is mapped).
    owner_id: Option<i64>,
}

/// The person and lead triggers of a CRM whose persons are read rather than pushed
/// (Salesforce's Leads and Contacts, read by the change poll): `person`'s link before the
/// read is applied, for [`person_read`]. `None` for a CRM whose webhooks announce these.
pub async fn person_before(
    txn: &impl Conn,
    conn: &ConnectionCtx,
    person: &crate::crm::CrmPerson,
) -> Result<Option<PersonBefore>, SyncError> {
    if conn.crm.pushes_changes() {
        return Ok(None);
    }
    let Some(link) = links::by_person(txn, conn.id, person.id).await? else {
        return Ok(None);
    };
    let owner_id = conn
        .map
        .fields
        .iter()
        .find(|f| f.remote == crate::crm::RemoteField::OwnerId)
        .and_then(|f| link.state.base.fields.get(&f.local))
        .and_then(|value| match value {
            tandem_core::FieldValue::Number(n) => Some(n.get() as i64),
            _ => None,
        });
    Ok(Some(PersonBefore {
        contact_id: link.contact_id,
        owner_id,
    }))
}

/// The state of a person read, as kept in `crm_trigger_state` (the fields [`state_of`] keeps
/// for a Pipedrive person); a person read gone keeps the owner it was heard with.
fn read_person_state(person: &crate::crm::CrmPerson, heard: Option<&Value>) -> Value {
    let owner = person
        .owner_id
        .or_else(|| heard.and_then(|h| int(h, "owner_id")));
    json!({ "owner_id": owner, "deleted": person.deleted })
}

/// A person as the app is told of it: tandem's id of it, the CRM's own id (`Id`), its owner,
/// whether it is a lead.
fn read_person_json(person: &crate::crm::CrmPerson, state: &Value) -> Value {
    json!({
        "id": person.id.get(),
        "Id": person.key,
        "owner_id": state["owner_id"],
        "lead": person.lead,
        "deleted": person.deleted,
    })
}

/// Announces the person and lead triggers of a person read by the change poll of a CRM without
/// person webhooks (Salesforce), in `txn`, the transaction that applies it (`applied`; the
/// person's link before, from [`person_before`]): its owner changed
/// (`person.owner_changed`), it was deleted, merged or, a lead, converted (`person.deleted`,
/// `person.merged`, `lead.converted`), or it is a lead created since the read reached back
/// (`since`) by someone other than tandem and now linked (`lead.created`). The state the app
/// heard is kept per person (`crm_trigger_state`, seeded by the initial sync:
/// [`seed_people`]); tandem's own writes are noted there ([`note_person`]), so they are not
/// announced back. Two reads of the same change at once announce it once: the announcement
/// is recorded with the person's version in the same transaction. Returns how many
/// deliveries were queued.
///
/// `txn` must hold the person's trigger-state lock, taken with the rest of its page by
/// [`lock_people`] before any of them is applied: the note of an owner a journey action gave
/// ([`note_person_owner`]) moves the state in its own transaction, and a read of the state
/// while that note was not committed told tandem's own write back to the app.
#[allow(clippy::too_many_arguments)]
pub async fn person_read(
    txn: &impl Conn,
    engine: &Engine,
    conn: &ConnectionCtx,
    person: &crate::crm::CrmPerson,
    before: Option<PersonBefore>,
    applied: &crate::sync::inbound::Applied,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
    use crate::sync::inbound::Applied;
    use tandem_core::triggers::PersonGone;
    if conn.crm.pushes_changes() {
        return Ok(0);
    }
    let id = person.id.to_string();
    // A contact's deliveries go out in the order of their time: the events are queued at the
    // time this read has the person, after any wait for a transaction that had it (its
    // trigger state, or its link), not at the time the page was taken up.
    let now = now.max(engine.now());
    let stored = crm_events::trigger_state(txn, conn.id, "person", &id).await?;
    // The state the app heard: kept (seeded by the initial sync, moved by every read), else,
    // for a person linked before tandem kept it (a connection older than this), the owner its
    // link last merged.
    let heard: Option<Value> = stored
        .as_ref()
        .and_then(|s| serde_json::from_str(&s.state).ok())
        .or_else(|| {
            before
                .and_then(|b| b.owner_id)
                .map(|owner| json!({ "owner_id": owner, "deleted": false }))
        });
    let state = read_person_state(person, heard.as_ref());
    let version = person
        .updated
        .as_ref()
        .map_or_else(|| now.to_rfc3339(), |t| t.as_str().to_owned());
    if !crm_events::put_trigger_state(
        txn,
        conn.id,
        "person",
        &id,
        &state.to_string(),
        &version,
        None,
    )
    .await?
    {
        // Older than the state the app heard: a late read of a change already told.
        return Ok(0);
    }
    let gone = match (person.deleted, person.merged_into, person.conversion) {
        (false, ..) => None,
        (true, Some(into), Some(conversion)) if person.lead => Some(PersonGone::Converted {
            lead_id: id.clone(),
            into: into.get(),
            organization_id: conversion.organization_id,
            deal_id: conversion.deal_id,
        }),
        (true, Some(into), _) => Some(PersonGone::Merged { into: into.get() }),
        (true, None, _) => Some(PersonGone::Deleted),
    };
    // A lead seen for the first time, created since the read reached back, that the read
    // linked to an app contact; one carrying tandem's external id for that contact is one
    // tandem created (its create's answer not recorded yet).
    let created_contact = match applied {
        Applied::Created { contact_id, .. } | Applied::Linked { contact_id } => Some(*contact_id),
        _ => None,
    };
    let new_lead = person.lead
        && created_contact.is_some()
        && person
            .added
            .as_ref()
            .and_then(crate::crm::CrmTime::at)
            .is_some_and(|added| added.0 >= since.timestamp_millis())
        && person
            .ap_id
            .as_ref()
            .and_then(tandem_core::ApId::contact_id)
            != created_contact;
    let fired = triggers::read_person_triggers(
        heard.as_ref().map(person_state).as_ref(),
        heard.as_ref().is_some_and(|h| h["deleted"] == json!(true)),
        &person_state(&state),
        gone.as_ref(),
        new_lead,
    );
    let contacts: Vec<ContactId> = before
        .map(|b| b.contact_id)
        .or(created_contact)
        .into_iter()
        .collect();
    if fired.is_empty() || contacts.is_empty() {
        return Ok(0);
    }
    if !crm_events::announce_once(txn, conn.id, "read.person", &id, &version, now).await? {
        return Ok(0);
    }
    let object = if matches!(
        fired.first(),
        Some(Trigger::LeadCreated | Trigger::LeadConverted { .. })
    ) {
        "lead"
    } else {
        "person"
    };
    announce_catch_up(
        txn,
        conn.id,
        object,
        &id,
        &fired,
        heard.as_ref().unwrap_or(&Value::Null),
        &read_person_json(person, &state),
        &contacts,
        &version,
        now,
    )
    .await
}

/// Locks the trigger states of a page of persons the change poll read (a CRM without person
/// webhooks) for the page's transaction, before it applies any of them ([`person_read`] relies
/// on it). Together, in one order: taken one by one in each page's order, two pages (two
/// replicas' polls) holding one person each and waiting for the other's would deadlock.
pub async fn lock_people(
    txn: &impl Conn,
    conn: &ConnectionCtx,
    persons: &[crate::crm::CrmPerson],
) -> Result<(), SyncError> {
    if conn.crm.pushes_changes() {
        return Ok(());
    }
    let ids: Vec<String> = persons.iter().map(|p| p.id.to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    Ok(crm_events::lock_trigger_states(txn, conn.id, "person", &ids).await?)
}

/// Records the state of persons the initial sync read (a CRM without person webhooks): what
/// exists is not news; a later read compares with it.
pub async fn seed_people(
    txn: &impl Conn,
    conn: &ConnectionCtx,
    persons: &[crate::crm::CrmPerson],
) -> Result<(), SyncError> {
    if conn.crm.pushes_changes() {
        return Ok(());
    }
    let seeds: Vec<(String, String, String)> = persons
        .iter()
        .filter_map(|p| {
            let version = p.updated.as_ref()?.as_str().to_owned();
            Some((
                p.id.to_string(),
                read_person_state(p, None).to_string(),
                version,
            ))
        })
        .collect();
    Ok(crm_events::seed_trigger_states(txn, conn.id, "person", &seeds).await?)
}

/// Notes the state of a person as tandem's own write left it (the read-back of a create, or
/// of a push that wrote the owner; a CRM without person webhooks), so the change poll does
/// not announce it back.
pub async fn note_person(
    txn: &impl Conn,
    conn: &ConnectionCtx,
    person: &crate::crm::CrmPerson,
) -> Result<(), SyncError> {
    note_persons(txn, conn, &[person]).await
}

/// [`note_person`] of many persons, in multi-row statements.
pub async fn note_persons(
    txn: &impl Conn,
    conn: &ConnectionCtx,
    persons: &[&crate::crm::CrmPerson],
) -> Result<(), SyncError> {
    if conn.crm.pushes_changes() {
        return Ok(());
    }
    let noted: Vec<(String, String, String)> = persons
        .iter()
        .filter(|person| !person.deleted)
        .filter_map(|person| {
            let version = person.updated.as_ref()?.as_str().to_owned();
            let state = read_person_state(person, None);
            Some((person.id.to_string(), state.to_string(), version))
        })
        .collect();
    let rows: Vec<crm_events::TriggerStateRow<'_>> = noted
        .iter()
        .map(|(id, state, version)| crm_events::TriggerStateRow {
            object_id: id,
            state,
            version,
            covered: None,
        })
        .collect();
    if !rows.is_empty() {
        crm_events::put_trigger_states(txn, conn.id, "person", &rows).await?;
    }
    Ok(())
}

/// Notes the owner a journey action gave a person (a CRM without person webhooks): the
/// change poll then finds the state the app already has (it heard `action.done`). The state's
/// version stays, so the read of the change still replaces it.
pub async fn note_person_owner(
    engine: &Engine,
    conn: &ConnectionCtx,
    person: PersonId,
    owner: i64,
) -> Result<(), SyncError> {
    if conn.crm.pushes_changes() {
        return Ok(());
    }
    let id = person.to_string();
    let txn = engine.store.begin().await?;
    // A change poll reading the person meanwhile waits for this note, and finds the owner the
    // app heard of in `action.done`: reading the state while the note was not committed, it
    // told the action's write back as `person.owner_changed`. Nor can a read move the state
    // between this read and the write below, which would refuse the note as older.
    crm_events::lock_trigger_state(&txn, conn.id, "person", &id).await?;
    let stored = crm_events::trigger_state(&txn, conn.id, "person", &id).await?;
    let version = stored.as_ref().map_or("", |s| s.version.as_str());
    let state = json!({ "owner_id": owner, "deleted": false });
    crm_events::put_trigger_state(
        &txn,
        conn.id,
        "person",
        &id,
        &state.to_string(),
        version,
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
