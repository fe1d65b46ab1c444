//! Outgoing webhooks: v2.0 payloads, HTTP Basic auth, a 10 s timeout, retries after
//! 3/30/150 s (scaled by `time_scale`), the ban after 10 failed first attempts, and the
//! delivery faults (drop, duplicate, reorder).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;

use crate::shared::{Job, Shared};
use crate::state::{Delivery, Event};

/// Retry delays after a failed attempt (api-notes §4.2).
const RETRY_DELAYS_SECS: [u64; 3] = [3, 30, 150];
/// First-attempt failures that ban a webhook.
const BAN_THRESHOLD: u32 = 10;
/// How long a ban lasts.
const BAN_SECS: u64 = 30 * 60;
/// A ban's length on the simulator's clock: `BAN_SECS` scaled, at least a second (so
/// `advance_clock` ends it, as time passing ends Pipedrive's).
fn ban_secs(shared: &Shared) -> i64 {
    let scaled = shared
        .scaled(Duration::from_secs(BAN_SECS))
        .as_secs_f64()
        .ceil();
    (scaled as i64).max(1)
}

/// The longest a reordered delivery waits for the next one.
const REORDER_HOLD: Duration = Duration::from_millis(200);

fn record(
    job: &Job,
    attempt: u32,
    status: Option<u16>,
    error: Option<String>,
    delivered: bool,
) -> Delivery {
    let meta = &job.body["meta"];
    Delivery {
        webhook_id: job.webhook_id,
        event_id: meta["id"].as_str().unwrap_or_default().to_owned(),
        entity: meta["entity"].as_str().unwrap_or_default().to_owned(),
        action: meta["action"].as_str().unwrap_or_default().to_owned(),
        entity_id: meta["entity_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_default(),
        attempt,
        status,
        error,
        delivered,
        body: job.body.clone(),
    }
}

/// Turns changes into deliveries for every matching subscription.
pub(crate) fn emit(shared: &Shared, events: Vec<Event>) {
    let correlation_id = uuid::Uuid::new_v4().to_string();
    let timestamp = shared.now_iso_millis();
    let mut jobs = Vec::new();
    {
        let mut st = shared.state.lock();
        let host = url::Url::parse(&st.api_domain)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "sim.pipedrive.com".into());
        let now = shared.now();
        let mut skipped = Vec::new();
        for ev in &events {
            let Some(c) = st.companies.get_mut(&ev.company_id) else {
                continue;
            };
            // A person is delivered only to webhooks whose user may see it (Pipedrive's
            // visibility groups, on the person as it is now); other objects to every webhook.
            let person = match ev.entity {
                "person" => ev
                    .entity_id
                    .parse::<i64>()
                    .ok()
                    .and_then(|id| c.persons.get(&id).cloned()),
                _ => None,
            };
            let sees = |user: i64| person.as_ref().is_none_or(|p| c.person_visible_to(p, user));
            let permitted: Vec<String> = c
                .users
                .iter()
                .filter(|u| sees(u.id))
                .map(|u| u.id.to_string())
                .collect();
            let hidden_from: Vec<i64> = c
                .webhooks
                .values()
                .filter(|w| !sees(w.user_id))
                .map(|w| w.id)
                .collect();
            for w in c
                .webhooks
                .values_mut()
                .filter(|w| w.matches(ev.entity, ev.action))
            {
                let mut meta = json!({
                    "action": ev.action,
                    "entity": ev.entity,
                    "company_id": ev.company_id.to_string(),
                    "correlation_id": correlation_id,
                    "entity_id": ev.entity_id.to_string(),
                    "id": uuid::Uuid::new_v4().to_string(),
                    "is_bulk_edit": false,
                    "timestamp": timestamp,
                    "type": w.kind,
                    "user_id": ev.user_id.to_string(),
                    "version": "2.0",
                    "webhook_id": w.id.to_string(),
                    "webhook_owner_id": w.owner_id.to_string(),
                    "change_source": ev.change_source,
                    "attempt": 1,
                    "host": host,
                    "permitted_user_ids": permitted,
                });
                for (k, v) in &ev.extra_meta {
                    meta[*k] = v.clone();
                }
                let body = json!({"meta": meta, "data": ev.data, "previous": ev.previous});
                let job = Job {
                    webhook_id: w.id,
                    company_id: w.company_id,
                    url: w.subscription_url.clone(),
                    auth: w
                        .http_auth_user
                        .clone()
                        .map(|u| (u, w.http_auth_password.clone().unwrap_or_default())),
                    body,
                };
                if hidden_from.contains(&w.id) {
                    let why = "not visible to the webhook's user".to_owned();
                    skipped.push(record(&job, 0, None, Some(why), false));
                    continue;
                }
                match w.banned_until {
                    Some(until) if until > now => {
                        skipped.push(record(&job, 0, None, Some("webhook banned".into()), false));
                        continue;
                    }
                    Some(_) => w.banned_until = None,
                    None => {}
                }
                jobs.push(job);
            }
        }
        st.deliveries.extend(skipped);
    }
    for job in jobs {
        // The dispatcher lives as long as the simulator; a send error means it stopped.
        shared.deliveries_tx.send(job).ok();
    }
}

/// Receives jobs, applies delivery faults and spawns the deliveries.
pub(crate) async fn dispatcher(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut held: Option<(Job, bool)> = None;
    loop {
        let next = if held.is_some() {
            tokio::select! {
                r = tokio::time::timeout(REORDER_HOLD, rx.recv()) => match r {
                    Ok(j) => j,
                    Err(_) => {
                        if let Some((job, dup)) = held.take() {
                            spawn_delivery(&shared, job, dup);
                        }
                        continue;
                    }
                },
                _ = shared.wait_shutdown() => return,
            }
        } else {
            tokio::select! {
                r = rx.recv() => r,
                _ = shared.wait_shutdown() => return,
            }
        };
        let Some(job) = next else { return };
        let faults = {
            let st = shared.state.lock();
            let spec = st.faults.clone();
            drop(st);
            let mut rng = shared.rng.lock();
            spec.decide_delivery(&mut *rng)
        };
        if faults.drop {
            shared.state.lock().deliveries.push(record(
                &job,
                0,
                None,
                Some("dropped by fault injection".into()),
                false,
            ));
            shared.delivery_notify.notify_waiters();
        } else if faults.reorder && held.is_none() {
            held = Some((job, faults.duplicate));
            continue;
        } else {
            spawn_delivery(&shared, job, faults.duplicate);
        }
        if let Some((h, dup)) = held.take() {
            spawn_delivery(&shared, h, dup);
        }
    }
}

fn spawn_delivery(shared: &Arc<Shared>, job: Job, duplicate: bool) {
    if duplicate {
        tokio::spawn(deliver(shared.clone(), job.clone()));
    }
    tokio::spawn(deliver(shared.clone(), job));
}

async fn deliver(shared: Arc<Shared>, job: Job) {
    for attempt in 1..=4u32 {
        let mut body = job.body.clone();
        body["meta"]["attempt"] = json!(attempt);
        let mut req = shared
            .http
            .post(&job.url)
            .json(&body)
            .timeout(shared.config.webhook_timeout);
        if let Some((u, p)) = &job.auth {
            req = req.basic_auth(u, Some(p));
        }
        let result = tokio::select! {
            r = async {
                let resp = req.send().await?;
                let status = resp.status().as_u16();
                // Drain the body so the connection can be reused.
                resp.bytes().await.ok();
                Ok::<u16, reqwest::Error>(status)
            } => r,
            _ = shared.wait_shutdown() => return,
        };
        let (status, error) = match result {
            Ok(s) => (Some(s), None),
            Err(e) if e.is_timeout() => (None, Some("timeout".to_owned())),
            Err(e) if e.is_connect() => (None, Some("connection refused".to_owned())),
            Err(_) => (None, Some("transport error".to_owned())),
        };
        let ok = status.is_some_and(|s| (200..300).contains(&s));
        {
            let mut rec_job = job.clone();
            rec_job.body = body;
            let mut st = shared.state.lock();
            let now_secs = shared.now();
            if let Some(w) = st
                .companies
                .get_mut(&job.company_id)
                .and_then(|c| c.webhooks.get_mut(&job.webhook_id))
            {
                w.last_delivery_time = Some(now_secs);
                w.last_http_status = status;
                if !ok && attempt == 1 {
                    w.ban_counter += 1;
                    if w.ban_counter >= BAN_THRESHOLD {
                        w.ban_counter = 0;
                        w.banned_until = Some(now_secs + ban_secs(&shared));
                    }
                }
            }
            st.deliveries
                .push(record(&rec_job, attempt, status, error, ok));
        }
        shared.delivery_notify.notify_waiters();
        if ok || attempt == 4 {
            return;
        }
        let delay = shared.scaled(Duration::from_secs(RETRY_DELAYS_SECS[attempt as usize - 1]));
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.wait_shutdown() => return,
        }
    }
}
