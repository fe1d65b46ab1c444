//! Journey triggers (issue 22): what happens to deals, activities and persons in Pipedrive
//! reaches the app's subscriptions that ask for it, once per real change, with the contacts
//! it concerns.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use tandem_engine::sync::links;
use tandem_tests::receiver::TestReceiver;
use tandem_tests::{pid, TestApp};
use uuid::Uuid;

/// A synced app with one linked person; returns it, the connection, the person and its contact.
async fn app_with_person() -> (TestApp, Uuid, i64, Uuid) {
    let app = tandem_tests::spawn_app_with(
        pipedrive_sim::SimConfig {
            persons: 1,
            ..pipedrive_sim::SimConfig::default()
        },
        |_| {},
    )
    .await;
    let connection = app.connect_and_sync().await;
    app.drive().await;
    let person = app.sim.handle().persons()[0]["id"].as_i64().unwrap();
    let contact = links::by_person(&app.store, connection.into(), pid(person))
        .await
        .unwrap()
        .expect("linked")
        .contact_id;
    (app, connection, person, contact.uuid())
}

async fn subscribe(app: &TestApp, types: &[&str], stage_ids: Vec<i64>) -> TestReceiver {
    tandem_tests::receiver::subscribed(&app.engine, types, stage_ids).await
}

/// Waits until Pipedrive delivered `count` webhooks of `entity`, then drives the workers.
async fn delivered(app: &TestApp, entity: &str, count: usize) {
    app.sim
        .handle()
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter()
                .filter(|d| d.delivered && d.entity == entity)
                .count()
                >= count
        })
        .await;
    app.drive().await;
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_deal_created_moved_won_and_handed_over_in_pipedrive_reaches_the_app_once_per_change() {
    let (app, _connection, person, contact) = app_with_person().await;
    let mut receiver = subscribe(&app, &["*"], Vec::new()).await;
    let sim = app.sim.handle();

    let deal = sim
        .create_deal_as_user(json!({ "title": "Big one", "person_id": person, "stage_id": 1 }))
        .unwrap();
    let deal_id = deal["id"].as_i64().unwrap();
    delivered(&app, "deal", 1).await;
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(deal_id, json!({ "stage_id": 3 }))
        .unwrap();
    delivered(&app, "deal", 2).await;
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(deal_id, json!({ "status": "won" }))
        .unwrap();
    delivered(&app, "deal", 3).await;

    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(receiver.next().await.json());
    }
    assert_eq!(
        types(&events),
        ["deal.created", "deal.stage_changed", "deal.won"]
    );
    for event in &events {
        assert_eq!(event["data"]["contact_ids"], json!([contact]), "{event}");
        assert_eq!(event["data"]["deal"]["id"], deal_id);
        assert_eq!(event["data"]["late"], false);
    }
    assert_eq!(
        events[1]["data"]["change"]["stage_id"],
        json!({ "from": 1, "to": 3 })
    );

    // The same webhooks delivered again, and a poll: nothing more.
    let bodies: Vec<Value> = sim
        .delivered_webhooks()
        .iter()
        .filter(|d| d.entity == "deal")
        .map(|d| d.body.clone())
        .collect();
    for body in &bodies {
        let answer = app.post_pipedrive_webhook(_connection, body).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    app.drive().await;
    tandem_engine::sync::inbound::poller::poll_all(&app.engine)
        .await
        .unwrap();
    app.drive().await;
    assert!(
        receiver.drain().is_empty(),
        "a duplicate delivery fires nothing"
    );
}

#[tokio::test]
async fn subscriptions_hear_only_the_event_types_and_stages_they_ask_for() {
    let (app, _connection, person, _contact) = app_with_person().await;
    let mut contacts_only = subscribe(&app, &["contact.updated"], Vec::new()).await;
    let mut stage_four = subscribe(&app, &["deal.stage_changed"], vec![4]).await;
    let sim = app.sim.handle();
    let deal = sim
        .create_deal_as_user(json!({ "title": "Filtered", "person_id": person, "stage_id": 1 }))
        .unwrap();
    let deal_id = deal["id"].as_i64().unwrap();
    delivered(&app, "deal", 1).await;
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(deal_id, json!({ "stage_id": 2 }))
        .unwrap();
    delivered(&app, "deal", 2).await;
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(deal_id, json!({ "stage_id": 4 }))
        .unwrap();
    delivered(&app, "deal", 3).await;

    let moved = stage_four.next().await.json();
    assert_eq!(moved["type"], "deal.stage_changed");
    assert_eq!(
        moved["data"]["change"]["stage_id"],
        json!({ "from": 2, "to": 4 })
    );
    assert!(stage_four.drain().is_empty(), "1 → 2 touches no stage 4");
    assert!(contacts_only.drain().is_empty());
}

fn deal_change(id: i64, person: i64, stage: i64, from: i64, at: &str, event: &str) -> Value {
    json!({
        "meta": {
            "action": "change", "entity": "deal", "entity_id": id.to_string(),
            "id": event, "timestamp": at, "version": "2.0", "change_source": "app",
            "user_id": "1"
        },
        "data": { "id": id, "person_id": person, "stage_id": stage, "pipeline_id": 1, "status": "open" },
        "previous": { "stage_id": from }
    })
}

#[tokio::test]
async fn a_stage_move_that_arrives_after_a_newer_one_is_announced_marked_late_with_its_time() {
    let (app, connection, person, _contact) = app_with_person().await;
    let mut receiver = subscribe(&app, &["deal.stage_changed"], Vec::new()).await;
    // Pipedrive moved the deal 1 → 2 at :01 and 2 → 1 at :02; the second arrives first.
    let newer = deal_change(
        77,
        person,
        1,
        2,
        "2026-12-04T10:00:02.000Z",
        &Uuid::new_v4().to_string(),
    );
    let older = deal_change(
        77,
        person,
        2,
        1,
        "2026-12-04T10:00:01.000Z",
        &Uuid::new_v4().to_string(),
    );
    for body in [&newer, &older] {
        assert_eq!(
            app.post_pipedrive_webhook(connection, body).await.status(),
            StatusCode::OK
        );
    }
    app.drive().await;
    let first = receiver.next().await.json();
    let second = receiver.next().await.json();
    assert_eq!(first["data"]["late"], false);
    assert_eq!(first["data"]["occurred_at"], "2026-12-04T10:00:02.000Z");
    assert_eq!(second["data"]["late"], true, "{second}");
    assert_eq!(second["data"]["occurred_at"], "2026-12-04T10:00:01.000Z");
    assert_eq!(
        second["data"]["change"]["stage_id"],
        json!({ "from": 1, "to": 2 })
    );
}

#[tokio::test]
async fn tandems_own_deal_move_coming_back_is_not_announced_again() {
    let (app, connection, person, _contact) = app_with_person().await;
    let mut receiver = subscribe(&app, &["deal.stage_changed"], Vec::new()).await;
    let owner = app.sim.handle().config().user_id;
    let mut body = deal_change(
        78,
        person,
        3,
        1,
        "2026-12-04T10:00:02.000Z",
        &Uuid::new_v4().to_string(),
    );
    body["meta"]["change_source"] = json!("api");
    body["meta"]["user_id"] = json!(owner.to_string());
    app.post_pipedrive_webhook(connection, &body).await;
    // The same move by someone in Pipedrive's UI is announced.
    let mut by_user = deal_change(
        79,
        person,
        3,
        1,
        "2026-12-04T10:00:03.000Z",
        &Uuid::new_v4().to_string(),
    );
    by_user["meta"]["change_source"] = json!("app");
    app.post_pipedrive_webhook(connection, &by_user).await;
    app.drive().await;
    let only = receiver.next().await.json();
    assert_eq!(only["data"]["id"], "79");
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn a_subscription_naming_an_unknown_event_type_is_refused_with_the_known_ones() {
    let (app, _connection, _person, _contact) = app_with_person().await;
    let refused = app
        .api(Method::POST, "/api/v1/webhook-subscriptions")
        .json(&json!({ "url": "https://hooks.example.com/x", "event_types": ["deal.teleported"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.unwrap();
    let text = body.to_string();
    assert!(
        text.contains("event_types") && text.contains("deal.stage_changed"),
        "{text}"
    );
}

#[tokio::test]
async fn a_subscription_is_told_which_of_its_event_types_need_the_mirror_until_it_is_switched_on() {
    let (app, connection, _person, _contact) = app_with_person().await;
    let created = app
        .api(Method::POST, "/api/v1/webhook-subscriptions")
        .json(&json!({
            "url": "http://127.0.0.1:9/hooks",
            "event_types": ["deal.won", "activity.overdue", "lead.created", "contact.updated"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let body: Value = created.json().await.unwrap();
    let unavailable = |body: &Value| -> Vec<String> {
        body["unavailable_event_types"]
            .as_array()
            .expect("unavailable_event_types is a list")
            .iter()
            .map(|u| {
                assert!(
                    u["reason"].as_str().is_some_and(|r| r.contains("mirror")),
                    "{u}"
                );
                u["type"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    assert_eq!(unavailable(&body), ["activity.overdue", "lead.created"]);
    let id = body["id"].as_str().unwrap().to_owned();

    tandem_engine::sync::mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    let now = app
        .api(Method::GET, &format!("/api/v1/webhook-subscriptions/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(now.status(), StatusCode::OK);
    assert!(unavailable(&now.json().await.unwrap()).is_empty());
}

#[tokio::test]
async fn the_app_asks_about_a_contacts_deals_and_activities_and_the_mirror_answers_without_pipedrive(
) {
    let (app, connection, person, contact) = app_with_person().await;
    let path = format!("/api/v1/contacts/{contact}/crm");
    let off = app.api(Method::GET, &path).send().await.unwrap();
    assert_eq!(off.status(), StatusCode::CONFLICT, "the mirror is off");

    tandem_engine::store::mirror::set_mirror_enabled(&app.store, connection.into(), true)
        .await
        .unwrap();
    let sim = app.sim.handle();
    sim.update_person_as_user(person, json!({ "name": "Mirrored Person" }))
        .unwrap();
    let deal = sim
        .create_deal_as_user(json!({ "title": "Asked about", "person_id": person, "stage_id": 2 }))
        .unwrap();
    let activity = sim
        .create_activity_as_user(
            json!({ "subject": "Call back", "type": "call", "person_id": person }),
        )
        .unwrap();
    delivered(&app, "activity", 1).await;
    delivered(&app, "deal", 1).await;

    let calls_before = sim.total_calls();
    let answer: Value = app
        .api(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sim.total_calls(), calls_before, "no Pipedrive call");
    assert_eq!(answer["linked_person_id"], person);
    assert_eq!(answer["person"]["name"], "Mirrored Person", "{answer}");
    assert_eq!(answer["deals"][0]["id"], deal["id"]);
    assert_eq!(answer["deals"][0]["stage_id"], 2);
    assert_eq!(answer["open_activities"][0]["id"], activity["id"]);
    assert_eq!(answer["done_activities"], json!([]));
    assert!(answer["freshest_at"].is_string(), "{answer}");

    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_activity_as_user(activity["id"].as_i64().unwrap(), json!({ "done": true }))
        .unwrap();
    delivered(&app, "activity", 2).await;
    let after: Value = app
        .api(Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["open_activities"], json!([]));
    assert_eq!(after["done_activities"][0]["id"], activity["id"]);
}

/// The bodies of the webhooks Pipedrive delivered for `entity`, to post again.
fn bodies(app: &TestApp, entity: &str) -> Vec<Value> {
    app.sim
        .handle()
        .delivered_webhooks()
        .iter()
        .filter(|d| d.entity == entity)
        .map(|d| d.body.clone())
        .collect()
}

async fn post_again(app: &TestApp, connection: Uuid, bodies: &[Value]) {
    for body in bodies {
        let answer = app.post_pipedrive_webhook(connection, body).await;
        assert_eq!(answer.status(), StatusCode::OK);
    }
    app.drive().await;
}

#[tokio::test]
async fn an_organization_changed_in_pipedrive_reaches_the_contacts_of_its_persons_once() {
    let (app, connection, person, contact) = app_with_person().await;
    let sim = app.sim.handle();
    let org = sim.create_org_as_user(json!({ "name": "Acme" })).unwrap();
    let org_id = org["id"].as_i64().unwrap();
    sim.update_person_as_user(person, json!({ "org_id": org_id }))
        .unwrap();
    delivered(&app, "organization", 1).await;
    let mut receiver = subscribe(&app, &["organization.changed"], Vec::new()).await;
    let mut others = subscribe(&app, &["deal.won", "lead.created"], Vec::new()).await;

    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_org_as_user(org_id, json!({ "name": "Acme Two" }))
        .unwrap();
    delivered(&app, "organization", 2).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "organization.changed");
    assert_eq!(event["data"]["id"], org_id.to_string());
    assert_eq!(event["data"]["contact_ids"], json!([contact]), "{event}");
    assert_eq!(event["data"]["change"]["name"], "Acme Two");
    assert_eq!(
        event["data"]["change"]["fields"]["name"],
        json!({ "from": "Acme", "to": "Acme Two" }),
        "{event}"
    );

    // Pipedrive delivering it again fires nothing; nor does tandem's own write coming back.
    post_again(&app, connection, &bodies(&app, "organization")).await;
    let mut own = bodies(&app, "organization").pop().unwrap();
    own["meta"]["id"] = json!(Uuid::new_v4().to_string());
    own["meta"]["change_source"] = json!("api");
    own["meta"]["user_id"] = json!(sim.config().user_id.to_string());
    own["previous"] = json!({ "name": "Acme Three" });
    post_again(&app, connection, &[own]).await;
    // A change of Pipedrive's bookkeeping only is no change.
    let mut counters = bodies(&app, "organization").pop().unwrap();
    counters["meta"]["id"] = json!(Uuid::new_v4().to_string());
    counters["previous"] = json!({ "people_count": 0, "update_time": "2026-01-01T00:00:00Z" });
    post_again(&app, connection, &[counters]).await;
    assert!(receiver.drain().is_empty(), "once per real change");
    assert!(
        others.drain().is_empty(),
        "not for subscriptions to other types"
    );
}

#[tokio::test]
async fn a_lead_created_and_converted_to_a_deal_in_pipedrive_reaches_the_app_once_each() {
    let (app, connection, person, contact) = app_with_person().await;
    tandem_engine::sync::mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    let mut receiver = subscribe(&app, &["lead.created", "lead.converted"], Vec::new()).await;
    let mut others = subscribe(&app, &["deal.won"], Vec::new()).await;
    let sim = app.sim.handle();
    let lead = sim
        .create_lead_as_user(json!({ "title": "Interested", "person_id": person }))
        .unwrap();
    let lead_id = lead["id"].as_str().unwrap().to_owned();
    delivered(&app, "lead", 1).await;
    sim.advance_clock(std::time::Duration::from_secs(2));
    let deal = sim.convert_lead_as_user(&lead_id).unwrap();
    delivered(&app, "deal", 1).await;
    delivered(&app, "lead", 2).await;

    let created = receiver.next().await.json();
    let converted = receiver.next().await.json();
    assert_eq!(created["type"], "lead.created");
    assert_eq!(created["data"]["id"], lead_id);
    assert_eq!(created["data"]["contact_ids"], json!([contact]));
    assert_eq!(converted["type"], "lead.converted");
    assert_eq!(converted["data"]["id"], lead_id, "{converted}");
    assert_eq!(converted["data"]["change"]["deal_id"], deal["id"]);
    assert_eq!(converted["data"]["contact_ids"], json!([contact]));

    post_again(&app, connection, &bodies(&app, "lead")).await;
    post_again(&app, connection, &bodies(&app, "deal")).await;
    assert!(
        receiver.drain().is_empty(),
        "a duplicate delivery fires nothing"
    );
    assert!(others.drain().is_empty());
}

#[tokio::test]
async fn tandems_own_lead_coming_back_is_not_announced() {
    let (app, connection, person, _contact) = app_with_person().await;
    let mut receiver = subscribe(&app, &["lead.created"], Vec::new()).await;
    let owner = app.sim.handle().config().user_id;
    let body = |source: &str, id: &str| {
        json!({
            "meta": {
                "action": "create", "entity": "lead", "entity_id": id,
                "id": Uuid::new_v4().to_string(), "timestamp": "2026-12-04T10:00:02.000Z",
                "version": "2.0", "change_source": source, "user_id": owner.to_string()
            },
            "data": { "id": id, "title": "Lead", "person_id": person },
            "previous": null
        })
    };
    post_again(&app, connection, &[body("api", "own-lead")]).await;
    post_again(&app, connection, &[body("app", "their-lead")]).await;
    let only = receiver.next().await.json();
    assert_eq!(only["data"]["id"], "their-lead");
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn an_activity_is_announced_overdue_once_after_its_due_time_and_never_when_done() {
    use std::sync::Arc;
    use tandem_engine::clock::TestClock;

    let (app, connection, person, contact) = app_with_person().await;
    tandem_engine::sync::mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    let mut receiver = subscribe(&app, &["activity.overdue"], Vec::new()).await;
    let mut others = subscribe(&app, &["activity.completed"], Vec::new()).await;
    let clock = TestClock::new();
    let engine = app.engine.clone().with_clock(Arc::new(clock.clone()));
    let due = (chrono::Utc::now() + chrono::Duration::days(2))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc();
    let sim = app.sim.handle();
    let activity = |subject: &str| {
        sim.create_activity_as_user(json!({
            "subject": subject, "type": "call", "person_id": person,
            "due_date": due.format("%Y-%m-%d").to_string(), "due_time": "10:00"
        }))
        .unwrap()
    };
    let open = activity("Call back");
    let done = activity("Already called");
    delivered(&app, "activity", 2).await;
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_activity_as_user(done["id"].as_i64().unwrap(), json!({ "done": true }))
        .unwrap();
    delivered(&app, "activity", 3).await;
    let _ = others.drain();

    let scan = || async {
        let queued = tandem_engine::sync::triggers::scan_overdue(&engine)
            .await
            .unwrap();
        // Driven by the moved clock: the deliveries are due at its time.
        tandem_engine::sync::worker::drive_until_idle(&engine)
            .await
            .unwrap();
        queued
    };
    clock.freeze(due - chrono::Duration::minutes(1));
    assert_eq!(scan().await, 0, "not before it is due");
    clock.advance(chrono::Duration::minutes(2));
    assert_eq!(scan().await, 1, "the open one, once");
    assert_eq!(scan().await, 0, "a second scan fires nothing");
    let overdue = receiver.next().await.json();
    assert_eq!(overdue["type"], "activity.overdue");
    assert_eq!(overdue["data"]["id"], open["id"].to_string());
    assert_eq!(overdue["data"]["contact_ids"], json!([contact]));
    assert!(receiver.drain().is_empty(), "never for the done activity");

    // Rescheduled to the next day: overdue again once that passes, once.
    let next_day = due + chrono::Duration::days(1);
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_activity_as_user(
        open["id"].as_i64().unwrap(),
        json!({ "due_date": next_day.format("%Y-%m-%d").to_string() }),
    )
    .unwrap();
    delivered(&app, "activity", 4).await;
    assert_eq!(scan().await, 0, "the new due time has not passed");
    clock.freeze(next_day + chrono::Duration::minutes(1));
    assert_eq!(scan().await, 1);
    assert_eq!(scan().await, 0);
    let again = receiver.next().await.json();
    assert_eq!(again["data"]["id"], open["id"].to_string());
    assert_eq!(
        again["data"]["change"]["due_at"],
        next_day.to_rfc3339(),
        "{again}"
    );
    assert!(others.drain().is_empty());
}

/// A synced app with `n` linked persons and the live mirror on; returns it, the connection,
/// and each person with its contact.
async fn app_with_persons(n: usize) -> (TestApp, Uuid, Vec<(i64, Uuid)>) {
    let app = tandem_tests::spawn_app_with(
        pipedrive_sim::SimConfig {
            persons: n,
            ..pipedrive_sim::SimConfig::default()
        },
        |_| {},
    )
    .await;
    let connection = app.connect_and_sync().await;
    app.drive().await;
    let mut persons: Vec<i64> = app
        .sim
        .handle()
        .persons()
        .iter()
        .filter_map(|p| p["id"].as_i64())
        .collect();
    persons.sort_unstable();
    let mut out = Vec::new();
    for person in persons {
        let contact = links::by_person(&app.store, connection.into(), pid(person))
            .await
            .unwrap()
            .expect("linked")
            .contact_id;
        out.push((person, contact.uuid()));
    }
    (app, connection, out)
}

/// The contact ids of every page of `GET /api/v1/contacts?{query}`, following `next_cursor`.
async fn listed(app: &TestApp, query: &str) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/contacts?{query}&cursor={c}"),
            None => format!("/api/v1/contacts?{query}"),
        };
        let answer = app.api(Method::GET, &path).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let page: Value = answer.json().await.unwrap();
        for contact in page["data"].as_array().unwrap() {
            out.push(contact["id"].as_str().unwrap().parse().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    out.sort();
    out
}

fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids
}

#[tokio::test]
async fn the_contacts_list_filters_by_deal_stage_status_owner_open_activity_and_lead_from_the_mirror(
) {
    let (app, connection, people) = app_with_persons(3).await;
    let (p0, c0) = people[0];
    let (p1, c1) = people[1];
    let (p2, c2) = people[2];
    let off = app
        .api(Method::GET, "/api/v1/contacts?crm.deal.stage_id=2")
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), StatusCode::CONFLICT, "the mirror is off");

    // The person's owner changes before the mirror's initial extraction copies it.
    let sim = app.sim.handle();
    let other_user = sim.config().user_id + 1;
    sim.update_person_as_user(p0, json!({ "owner_id": other_user }))
        .unwrap();
    for person in [p1, p2] {
        sim.update_person_as_user(person, json!({ "owner_id": other_user - 1 }))
            .unwrap();
    }
    tandem_engine::sync::mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    tandem_engine::sync::mirror::drive_mirror_until_idle(&app.engine)
        .await
        .unwrap();
    sim.create_deal_as_user(json!({ "title": "Open in 2", "person_id": p0, "stage_id": 2 }))
        .unwrap();
    let won = sim
        .create_deal_as_user(json!({ "title": "Won in 2", "person_id": p1, "stage_id": 2 }))
        .unwrap();
    sim.create_deal_as_user(json!({ "title": "Open in 3", "person_id": p2, "stage_id": 3 }))
        .unwrap();
    sim.create_activity_as_user(json!({ "subject": "Call", "type": "call", "person_id": p0 }))
        .unwrap();
    let called = sim
        .create_activity_as_user(json!({ "subject": "Called", "type": "call", "person_id": p1 }))
        .unwrap();
    sim.create_activity_as_user(json!({ "subject": "Meet", "type": "meeting", "person_id": p2 }))
        .unwrap();
    sim.create_lead_as_user(json!({ "title": "Interested", "person_id": p1 }))
        .unwrap();
    delivered(&app, "deal", 3).await;
    delivered(&app, "activity", 3).await;
    delivered(&app, "lead", 1).await;
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(won["id"].as_i64().unwrap(), json!({ "status": "won" }))
        .unwrap();
    sim.update_activity_as_user(called["id"].as_i64().unwrap(), json!({ "done": true }))
        .unwrap();
    delivered(&app, "deal", 4).await;
    delivered(&app, "activity", 4).await;

    let calls_before = sim.total_calls();
    assert_eq!(
        listed(&app, "crm.deal.stage_id=2&crm.deal.status=open").await,
        [c0]
    );
    assert_eq!(
        listed(&app, "crm.deal.stage_id=2").await,
        sorted(vec![c0, c1])
    );
    assert_eq!(
        listed(&app, "crm.deal.status=won&crm.deal.pipeline_id=1").await,
        [c1]
    );
    assert_eq!(
        listed(&app, &format!("crm.owner_id={other_user}")).await,
        [c0]
    );
    assert_eq!(listed(&app, "crm.activity.open_type=call").await, [c0]);
    assert_eq!(listed(&app, "crm.activity.open_type=meeting").await, [c2]);
    assert_eq!(listed(&app, "crm.lead.open=true").await, [c1]);
    assert_eq!(
        listed(&app, "crm.lead.open=false&crm.deal.status=open").await,
        sorted(vec![c0, c2])
    );
    // Cursor paging over the filtered contacts: one a page.
    assert_eq!(
        listed(&app, "crm.deal.status=open&limit=1").await,
        sorted(vec![c0, c2])
    );
    assert_eq!(
        listed(&app, "crm.deal.stage_id=999").await,
        Vec::<Uuid>::new()
    );
    assert_eq!(sim.total_calls(), calls_before, "no Pipedrive call");
}

#[tokio::test]
async fn an_unknown_crm_filter_or_a_bad_value_is_refused_with_a_stable_code_naming_it() {
    let (app, connection, _people) = app_with_persons(1).await;
    tandem_engine::store::mirror::set_mirror_enabled(&app.store, connection.into(), true)
        .await
        .unwrap();
    for (query, code, field) in [
        ("crm.deal.colour=red", "unknown_field", "crm.deal.colour"),
        (
            "crm.deal.stage_id=abc",
            "validation_failed",
            "crm.deal.stage_id",
        ),
        (
            "crm.deal.status=pending",
            "validation_failed",
            "crm.deal.status",
        ),
        ("crm.lead.open=maybe", "validation_failed", "crm.lead.open"),
        ("crm.owner_id=0", "validation_failed", "crm.owner_id"),
    ] {
        let answer = app
            .api(Method::GET, &format!("/api/v1/contacts?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], code, "{query}: {body}");
        assert_eq!(body["fields"][0]["field"], field, "{query}: {body}");
    }
    let body: Value = app
        .api(Method::GET, "/api/v1/contacts?crm.deal.colour=red")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body.to_string().contains("crm.activity.open_type"),
        "the known filters are listed: {body}"
    );
    // The filters are in the OpenAPI document.
    let document: Value = app
        .api(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = document["paths"]["/api/v1/contacts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in [
        "crm.deal.stage_id",
        "crm.deal.status",
        "crm.owner_id",
        "crm.activity.open_type",
        "crm.lead.open",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

#[tokio::test]
async fn a_deal_move_whose_webhook_was_dropped_reaches_the_app_once_as_catch_up_and_its_late_webhook_adds_nothing(
) {
    use std::sync::Arc;
    use tandem_engine::clock::TestClock;
    use tandem_engine::sync::mirror as live_mirror;

    let (app, connection, people) = app_with_persons(1).await;
    let (person, contact) = people[0];
    let clock = TestClock::new();
    let engine = app.engine.clone().with_clock(Arc::new(clock.clone()));
    live_mirror::set_enabled(&engine, connection.into(), true)
        .await
        .unwrap();
    let sim = app.sim.handle();
    let deal = sim
        .create_deal_as_user(json!({ "title": "Watched", "person_id": person, "stage_id": 1 }))
        .unwrap();
    let deal_id = deal["id"].as_i64().unwrap();
    delivered(&app, "deal", 1).await;
    // The initial extraction records what exists: no event for it.
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();
    let mut receiver = subscribe(&app, &["*"], Vec::new()).await;

    // Pipedrive moves the deal, and its webhook is lost.
    sim.set_faults(pipedrive_sim::FaultSpec::parse("webhooks:drop=1").unwrap());
    sim.advance_clock(std::time::Duration::from_secs(120));
    sim.update_deal_as_user(deal_id, json!({ "stage_id": 3 }))
        .unwrap();
    let deliveries = sim
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter()
                .any(|d| d.entity == "deal" && d.action == "change" && !d.delivered)
        })
        .await;
    sim.set_faults(pipedrive_sim::FaultSpec::none());
    let lost = deliveries
        .iter()
        .find(|d| d.entity == "deal" && d.action == "change")
        .unwrap()
        .body
        .clone();
    app.drive().await;
    assert!(receiver.drain().is_empty(), "nothing was heard yet");

    // The backstop pass finds it: one catch-up event, from the stage the app knew.
    clock.advance(chrono::Duration::seconds(
        i64::try_from(app.settings.mirror.poll_interval_secs).unwrap() + 1,
    ));
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();
    tandem_engine::sync::worker::drive_until_idle(&engine)
        .await
        .unwrap();
    let caught = receiver.next().await.json();
    assert_eq!(caught["type"], "deal.stage_changed", "{caught}");
    assert_eq!(caught["data"]["catch_up"], true);
    assert_eq!(caught["data"]["id"], deal_id.to_string());
    assert_eq!(
        caught["data"]["change"]["stage_id"],
        json!({ "from": 1, "to": 3 })
    );
    assert_eq!(caught["data"]["previous"]["stage_id"], 1);
    assert_eq!(caught["data"]["deal"]["stage_id"], 3);
    assert_eq!(caught["data"]["contact_ids"], json!([contact]));
    assert!(receiver.drain().is_empty(), "one event");

    // The lost webhook arrives after all, and another pass runs: nothing more.
    assert_eq!(
        app.post_pipedrive_webhook(connection, &lost).await.status(),
        StatusCode::OK
    );
    tandem_engine::sync::worker::drive_until_idle(&engine)
        .await
        .unwrap();
    clock.advance(chrono::Duration::seconds(
        i64::try_from(app.settings.mirror.poll_interval_secs).unwrap() + 1,
    ));
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();
    tandem_engine::sync::worker::drive_until_idle(&engine)
        .await
        .unwrap();
    assert!(receiver.drain().is_empty(), "never twice");

    // The next move's webhook arrives: an ordinary event again.
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(deal_id, json!({ "status": "won" }))
        .unwrap();
    app.sim
        .handle()
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter()
                .filter(|d| d.entity == "deal" && d.delivered)
                .count()
                >= 2
        })
        .await;
    tandem_engine::sync::worker::drive_until_idle(&engine)
        .await
        .unwrap();
    let won = receiver.next().await.json();
    assert_eq!(won["type"], "deal.won");
    assert_eq!(won["data"]["catch_up"], false);
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn a_deal_move_whose_webhook_was_lost_is_told_as_catch_up_before_the_next_move_and_the_lost_webhook_adds_nothing(
) {
    let (app, connection, people) = app_with_persons(1).await;
    let (person, contact) = people[0];
    let sim = app.sim.handle();
    let mut receiver = subscribe(&app, &["*"], Vec::new()).await;
    let deal = sim
        .create_deal_as_user(json!({ "title": "Watched", "person_id": person, "stage_id": 1 }))
        .unwrap();
    let deal_id = deal["id"].as_i64().unwrap();
    delivered(&app, "deal", 1).await;
    assert_eq!(receiver.next().await.json()["type"], "deal.created");

    // Stage 1 → 3: every attempt of its webhook is lost (no mirror here).
    sim.set_faults(pipedrive_sim::FaultSpec::parse("webhooks:drop=1").unwrap());
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(deal_id, json!({ "stage_id": 3 }))
        .unwrap();
    let deliveries = sim
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter()
                .any(|d| d.entity == "deal" && d.action == "change" && !d.delivered)
        })
        .await;
    sim.set_faults(pipedrive_sim::FaultSpec::none());
    let lost = deliveries
        .iter()
        .find(|d| d.entity == "deal" && d.action == "change")
        .unwrap()
        .body
        .clone();

    // Stage 3 → 4 arrives: first the catch-up 1 → 3, then the move itself.
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.update_deal_as_user(deal_id, json!({ "stage_id": 4 }))
        .unwrap();
    app.sim
        .handle()
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter()
                .filter(|d| d.entity == "deal" && d.delivered)
                .count()
                >= 2
        })
        .await;
    app.drive().await;
    let caught = receiver.next().await.json();
    assert_eq!(caught["type"], "deal.stage_changed", "{caught}");
    assert_eq!(caught["data"]["catch_up"], true);
    assert_eq!(
        caught["data"]["change"]["stage_id"],
        json!({ "from": 1, "to": 3 })
    );
    assert_eq!(caught["data"]["previous"]["stage_id"], 1);
    assert_eq!(caught["data"]["deal"]["stage_id"], 3);
    assert_eq!(caught["data"]["contact_ids"], json!([contact]));
    let moved = receiver.next().await.json();
    assert_eq!(moved["type"], "deal.stage_changed");
    assert_eq!(moved["data"]["catch_up"], false);
    assert_eq!(
        moved["data"]["change"]["stage_id"],
        json!({ "from": 3, "to": 4 })
    );
    assert!(receiver.drain().is_empty(), "two events");

    // The lost webhook is delivered after all: nothing more.
    assert_eq!(
        app.post_pipedrive_webhook(connection, &lost).await.status(),
        StatusCode::OK
    );
    app.drive().await;
    assert!(receiver.drain().is_empty(), "never twice");
}

/// Found by the trigger chaos run on Postgres ("deal 41: untold changes [deal.created]"): a
/// deal made after the mirror's initial extraction, whose create webhook was lost, deleted
/// before any backstop pass read it. The delete's webhook was the first the app heard of it, and
/// it was told `deal.deleted` of a deal it was never told was created.
#[tokio::test]
async fn a_deal_whose_create_webhook_was_lost_and_that_is_then_deleted_is_told_created_as_catch_up_before_deleted(
) {
    use tandem_engine::sync::mirror as live_mirror;

    let (app, connection, people) = app_with_persons(1).await;
    let (person, contact) = people[0];
    live_mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    live_mirror::drive_mirror_until_idle(&app.engine)
        .await
        .unwrap();
    let mut receiver = subscribe(&app, &["*"], Vec::new()).await;

    // Made in Pipedrive; every attempt of its create webhook is lost.
    let sim = app.sim.handle();
    sim.set_faults(pipedrive_sim::FaultSpec::parse("webhooks:drop=1").unwrap());
    let deal = sim
        .create_deal_as_user(json!({ "title": "Short-lived", "person_id": person, "stage_id": 2 }))
        .unwrap();
    let deal_id = deal["id"].as_i64().unwrap();
    sim.wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
        d.iter()
            .any(|d| d.entity == "deal" && d.action == "create" && !d.delivered)
    })
    .await;
    sim.set_faults(pipedrive_sim::FaultSpec::none());

    // Deleted a moment later; this webhook arrives.
    sim.advance_clock(std::time::Duration::from_secs(2));
    sim.delete_deal_as_user(deal_id).unwrap();
    delivered(&app, "deal", 1).await;

    let created = receiver.next().await.json();
    assert_eq!(created["type"], "deal.created", "{created}");
    assert_eq!(created["data"]["catch_up"], true);
    assert_eq!(created["data"]["id"], deal_id.to_string());
    assert_eq!(created["data"]["previous"], Value::Null);
    assert_eq!(created["data"]["deal"]["stage_id"], 2);
    assert_eq!(created["data"]["contact_ids"], json!([contact]));
    let deleted = receiver.next().await.json();
    assert_eq!(deleted["type"], "deal.deleted", "{deleted}");
    assert_eq!(deleted["data"]["catch_up"], false);
    assert_eq!(deleted["data"]["contact_ids"], json!([contact]));
    assert!(receiver.drain().is_empty(), "two events");
}
