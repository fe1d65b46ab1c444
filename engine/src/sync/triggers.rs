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
use tandem_core::triggers::{self, ActivityState, Change, DealState, PersonState, Trigger};
use tandem_core::ContactId;

use crate::store::{crm_events, Conn};
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

/// The persons a record concerns: its person, and an activity's participants.
fn persons_of(record: &Value) -> Vec<i64> {
    let mut persons: Vec<i64> = int(record, "person_id").into_iter().collect();
    if let Some(participants) = record.get("participants").and_then(Value::as_array) {
        persons.extend(participants.iter().filter_map(|p| int(p, "person_id")));
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
        _ => json!({}),
    }
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
    _engine: &Engine,
    conn: &ConnectionCtx,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<usize, SyncError> {
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
    if by_tandem {
        return Ok(0);
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    let previous = body.get("previous").cloned().unwrap_or(Value::Null);
    // A deleted record's last state is in `previous`.
    let record = if data.is_object() { &data } else { &previous };
    let fired = match entity.as_str() {
        "deal" => change(&action, &data, &previous, deal_state)
            .map(|c| triggers::deal_triggers(&c))
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
        data_out.insert("object".into(), json!(entity));
        data_out.insert("id".into(), json!(object_id));
        data_out.insert(entity.clone(), record.clone());
        data_out.insert("previous".into(), previous.clone());
        data_out.insert("change".into(), details(trigger));
        data_out.insert("contact_ids".into(), json!(contacts));
        data_out.insert("occurred_at".into(), json!(occurred_at));
        data_out.insert("late".into(), json!(late));
        let event = json!({
            "type": trigger.kind(),
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": Value::Object(data_out),
        });
        queued += app::crm_event(
            txn,
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
