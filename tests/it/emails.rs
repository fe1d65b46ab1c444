//! E-mail logging (issue 23): e-mails the app sent are logged in Pipedrive as done e-mail
//! activities, linked the way Pipedrive itself links e-mails, once per `message_id`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_tests::TestApp;
use uuid::Uuid;

/// A synced app with one linked person whose mirror is on; returns it, the person and its
/// e-mail address.
async fn app_with_person() -> (TestApp, i64, String) {
    let (app, mut persons) = app_with_persons(1).await;
    let (person, address) = persons.remove(0);
    (app, person, address)
}

/// A synced app with `n` linked persons whose mirror is on; returns it and the persons with
/// their e-mail addresses.
async fn app_with_persons(n: usize) -> (TestApp, Vec<(i64, String)>) {
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
    // The mirror's own webhooks too (leads).
    tandem_engine::sync::mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    let persons = app
        .sim
        .handle()
        .persons()
        .iter()
        .map(|p| {
            (
                p["id"].as_i64().unwrap(),
                p["emails"][0]["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (app, persons)
}

/// Creates `n` open deals of `person` as a Pipedrive user and lets the mirror take them in.
async fn open_deals(app: &TestApp, person: i64, n: usize) -> Vec<i64> {
    let sim = app.sim.handle();
    let before = sim
        .delivered_webhooks()
        .iter()
        .filter(|d| d.entity == "deal")
        .count();
    let ids: Vec<i64> = (0..n)
        .map(|i| {
            sim.create_deal_as_user(json!({ "title": format!("Deal {i}"), "person_id": person }))
                .unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    sim.wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
        d.iter()
            .filter(|d| d.delivered && d.entity == "deal")
            .count()
            >= before + n
    })
    .await;
    app.drive().await;
    ids
}

fn email(message_id: &str, to: &str, sent_at: &str) -> Value {
    json!({
        "message_id": message_id,
        "direction": "sent",
        "from": "news@our-app.example",
        "to": [to],
        "subject": "Your trial ends soon",
        "sent_at": sent_at,
        "snippet": "Three days left",
        "campaign": "Trial ending",
    })
}

/// `POST /api/v1/emails`; (status, body).
pub(crate) async fn post(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    let response = app
        .api(Method::POST, "/api/v1/emails")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn outcome(app: &TestApp, message_id: &str) -> Value {
    app.api(Method::GET, &format!("/api/v1/emails/{message_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const LATER: &str = "2099-01-01T10:00:00Z";

#[tokio::test]
async fn an_email_to_a_contact_with_one_open_deal_is_logged_on_that_deal_once_however_often_it_is_sent(
) {
    let (app, person, address) = app_with_person().await;
    let deals = open_deals(&app, person, 1).await;
    let body = email("<m1@our-app>", &address, LATER);
    let (status, first) = post(&app, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["item"], format!("deal:{}", deals[0]));
    app.drive().await;

    let logged = outcome(&app, "<m1@our-app>").await;
    assert_eq!(logged["state"], "logged", "{logged}");
    assert_eq!(logged["persons"], json!([person]));
    let activities = app.sim.handle().activities();
    let activity = activities
        .iter()
        .find(|a| a["id"] == logged["activity_id"])
        .unwrap_or_else(|| panic!("{activities:?}"));
    assert_eq!(activity["type"], "email");
    assert_eq!(activity["done"], true);
    assert_eq!(activity["deal_id"], deals[0]);
    assert_eq!(activity["subject"], "Your trial ends soon");

    let (again, replay) = post(&app, &body).await;
    assert_eq!(again, StatusCode::OK);
    assert_eq!(replay["activity_id"], logged["activity_id"]);
    app.drive().await;
    assert_eq!(
        app.sim.handle().activities().len(),
        activities.len(),
        "no second record"
    );

    let mut changed = body.clone();
    changed["subject"] = json!("Something else");
    let (conflict, _) = post(&app, &changed).await;
    assert_eq!(conflict, StatusCode::CONFLICT);
}

#[tokio::test]
async fn with_two_open_deals_the_email_goes_to_the_person_only_and_waits_for_a_manual_link() {
    let (app, person, address) = app_with_person().await;
    let deals = open_deals(&app, person, 2).await;
    let (_, first) = post(&app, &email("<m2@our-app>", &address, LATER)).await;
    assert_eq!(first["item"], Value::Null);
    assert_eq!(first["waiting_for_manual_link"], true);
    let mut candidates: Vec<String> = deals.iter().map(|d| format!("deal:{d}")).collect();
    candidates.sort();
    assert_eq!(first["candidates"], json!(candidates));
    app.drive().await;
    let logged = outcome(&app, "<m2@our-app>").await;
    assert_eq!(logged["state"], "logged");
    let activity = app
        .sim
        .handle()
        .activities()
        .into_iter()
        .find(|a| a["id"] == logged["activity_id"])
        .unwrap();
    assert_eq!(
        activity["deal_id"],
        Value::Null,
        "on the person's timeline only"
    );
}

#[tokio::test]
async fn a_deal_created_after_the_email_was_sent_is_not_linked_retroactively() {
    let (app, person, address) = app_with_person().await;
    open_deals(&app, person, 1).await;
    let (_, first) = post(
        &app,
        &email("<m3@our-app>", &address, "2001-01-01T10:00:00Z"),
    )
    .await;
    assert_eq!(first["item"], Value::Null);
    assert_eq!(first["waiting_for_manual_link"], false);
}

#[tokio::test]
async fn a_reply_stays_on_the_deal_its_thread_was_linked_to() {
    let (app, person, address) = app_with_person().await;
    let first_deal = open_deals(&app, person, 1).await[0];
    post(&app, &email("<t1@our-app>", &address, LATER)).await;
    // A second open deal appears: on its own the reply would be ambiguous.
    open_deals(&app, person, 1).await;
    let mut reply = email("<t2@our-app>", &address, "2099-01-02T10:00:00Z");
    reply["in_reply_to"] = json!("<t1@our-app>");
    let (_, linked) = post(&app, &reply).await;
    assert_eq!(linked["item"], format!("deal:{first_deal}"));
}

#[tokio::test]
async fn an_email_to_an_address_with_no_pipedrive_person_logs_nothing_and_says_why() {
    let (app, _person, _address) = app_with_person().await;
    let id = format!("<{}@our-app>", Uuid::new_v4());
    let (status, first) = post(&app, &email(&id, "stranger@example.com", LATER)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(first["state"], "no_person");
    assert!(first["why"].as_str().unwrap().contains("no participant"));
    let (bad, body) = post(&app, &json!({ "message_id": "x", "direction": "sideways" })).await;
    assert_eq!(bad, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Waits until the simulator delivered `n` more webhooks of `entity` than `before`, then
/// drives the workers.
async fn await_webhooks(app: &TestApp, entity: &str, before: usize, n: usize) {
    app.sim
        .handle()
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter()
                .filter(|d| d.delivered && d.entity == entity)
                .count()
                >= before + n
        })
        .await;
    app.drive().await;
}

fn delivered(app: &TestApp, entity: &str) -> usize {
    app.sim
        .handle()
        .delivered_webhooks()
        .iter()
        .filter(|d| d.entity == entity)
        .count()
}

fn activity(app: &TestApp, id: &Value) -> Value {
    app.sim
        .handle()
        .activities()
        .into_iter()
        .find(|a| &a["id"] == id)
        .unwrap_or_else(|| panic!("no activity {id}"))
}

async fn post_event(app: &TestApp, message_id: &str, event: &Value) -> (StatusCode, Value) {
    let response = app
        .api(Method::POST, &format!("/api/v1/emails/{message_id}/events"))
        .json(event)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

async fn email_settings(app: &TestApp, settings: Value) {
    let connection = app.connection_id().await;
    let response = app
        .admin(
            Method::PUT,
            &format!("/admin/api/connections/{connection}/email-settings"),
        )
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_batch_logs_each_email_once_answers_per_item_and_refuses_more_than_the_cap() {
    let (app, person, address) = app_with_person().await;
    let deal = open_deals(&app, person, 1).await[0];
    let batch = json!({ "emails": [
        email("<b1@our-app>", &address, LATER),
        email("<b2@our-app>", &address, LATER),
        { "message_id": "<b3@our-app>", "direction": "sideways" },
    ]});
    let post_batch = |body: Value| {
        let app = &app;
        async move {
            let response = app
                .api(Method::POST, "/api/v1/emails/batch")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, first) = post_batch(batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let results = first["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["status"], 202);
    assert_eq!(results[0]["email"]["item"], format!("deal:{deal}"));
    assert_eq!(results[1]["message_id"], "<b2@our-app>");
    assert_eq!(results[2]["status"], 422);
    assert_eq!(results[2]["error"]["code"], "validation_failed");
    app.drive().await;
    let logged = app.sim.handle().activities().len();

    // The same batch again (an array body this time): replays, no second record.
    let (_, again) = post_batch(batch["emails"].clone()).await;
    assert_eq!(again["results"][0]["status"], 200);
    assert_eq!(again["results"][1]["status"], 200);
    app.drive().await;
    assert_eq!(app.sim.handle().activities().len(), logged);

    let too_many: Vec<Value> = (0..501)
        .map(|i| email(&format!("<over{i}@our-app>"), &address, LATER))
        .collect();
    let (status, body) = post_batch(Value::Array(too_many)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("at most 500"));
    assert_eq!(outcome(&app, "<over0@our-app>").await["code"], "not_found");
}

#[tokio::test]
async fn opens_and_clicks_update_the_logged_activity_in_one_write_and_show_in_the_status() {
    let (app, _person, address) = app_with_person().await;
    post(&app, &email("<e1@our-app>", &address, LATER)).await;
    app.drive().await;
    let logged = outcome(&app, "<e1@our-app>").await;
    assert_eq!(logged["state"], "logged");
    let activities = app.sim.handle().activities().len();
    let patches = app.sim.handle().calls("v2.updateActivity");

    for (i, kind) in ["opened", "opened", "opened", "clicked"].iter().enumerate() {
        let (status, _) = post_event(
            &app,
            "<e1@our-app>",
            &json!({ "type": kind, "at": format!("2099-01-01T11:0{i}:00Z"), "url": "https://our-app.example/offer", "event_id": format!("ev{i}") }),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    // A repeated event id is counted once.
    let (repeat, _) = post_event(
        &app,
        "<e1@our-app>",
        &json!({ "type": "opened", "at": "2099-01-01T11:00:00Z", "event_id": "ev0" }),
    )
    .await;
    assert_eq!(repeat, StatusCode::OK);
    app.drive().await;

    assert_eq!(
        app.sim.handle().calls("v2.updateActivity"),
        patches + 1,
        "four events, one write"
    );
    assert_eq!(
        app.sim.handle().activities().len(),
        activities,
        "no new record"
    );
    let note = activity(&app, &logged["activity_id"])["note"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(note.contains("opened 3x"), "{note}");
    assert!(note.contains("clicked 1x"), "{note}");
    let status = outcome(&app, "<e1@our-app>").await;
    assert_eq!(status["events"]["opened"]["count"], 3);
    assert_eq!(
        status["events"]["opened"]["last_at"],
        "2099-01-01T11:02:00.000Z"
    );
    assert_eq!(
        status["events"]["clicked"]["urls"],
        json!(["https://our-app.example/offer"])
    );
    let (missing, _) = post_event(
        &app,
        "<nope@our-app>",
        &json!({ "type": "opened", "at": LATER }),
    )
    .await;
    assert_eq!(missing, StatusCode::NOT_FOUND);
    let (bad, _) = post_event(
        &app,
        "<e1@our-app>",
        &json!({ "type": "liked", "at": LATER }),
    )
    .await;
    assert_eq!(bad, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_email_waiting_for_a_manual_link_is_listed_with_its_candidates_and_linking_it_updates_the_activity(
) {
    let (app, person, address) = app_with_person().await;
    let deals = open_deals(&app, person, 2).await;
    let mut body = email("<w1@our-app>", &address, LATER);
    body["subject"] = json!("<script>alert(1)</script> & 'offer'");
    post(&app, &body).await;
    app.drive().await;

    let listed: Value = app
        .admin(Method::GET, "/admin/api/emails/manual")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emails = listed["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 1, "{listed}");
    assert_eq!(emails[0]["message_id"], "<w1@our-app>");
    let candidates: Vec<&str> = emails[0]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item"].as_str().unwrap())
        .collect();
    assert!(candidates.contains(&format!("deal:{}", deals[1]).as_str()));
    assert_eq!(emails[0]["candidates"][0]["title"], "Deal 0");

    // The console lists it, escaped, with a form per e-mail.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = client
        .post(format!("{}/admin/login", app.base_url))
        .form(&[("token", "test-admin-token")])
        .send()
        .await
        .unwrap();
    let session = login.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client
        .get(format!("{}/admin/emails", app.base_url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(
        page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "{page}"
    );
    assert!(
        page.contains("data-message-id=\"&#60;w1@our-app&#62;\""),
        "{page}"
    );
    let csrf = page
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // Linking it from the console: the activity moves to the deal, the list empties.
    let linked = client
        .post(format!("{}/admin/emails/link", app.base_url))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("message_id", "<w1@our-app>"),
            ("item", &format!("deal:{}", deals[1])),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(linked.status(), StatusCode::SEE_OTHER);
    app.drive().await;
    let status = outcome(&app, "<w1@our-app>").await;
    assert_eq!(status["item"], format!("deal:{}", deals[1]));
    assert_eq!(status["waiting_for_manual_link"], false);
    assert_eq!(activity(&app, &status["activity_id"])["deal_id"], deals[1]);
    let listed: Value = app
        .admin(Method::GET, "/admin/api/emails/manual")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["emails"], json!([]));

    // The admin API links the same way; a malformed item is refused.
    let refused = app
        .admin(Method::POST, "/admin/api/emails/<w1@our-app>/link")
        .json(&json!({ "item": "opportunity:1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let relinked: Value = app
        .admin(Method::POST, "/admin/api/emails/<w1@our-app>/link")
        .json(&json!({ "item": format!("deal:{}", deals[0]) }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(relinked["item"], format!("deal:{}", deals[0]));
    app.drive().await;
    assert_eq!(activity(&app, &status["activity_id"])["deal_id"], deals[0]);
}

#[tokio::test]
async fn a_deal_changed_by_hand_on_the_activity_in_pipedrive_becomes_the_link_and_later_replies_follow_it(
) {
    let (app, person, address) = app_with_person().await;
    let deals = open_deals(&app, person, 1).await;
    post(&app, &email("<h1@our-app>", &address, LATER)).await;
    app.drive().await;
    let logged = outcome(&app, "<h1@our-app>").await;
    assert_eq!(logged["item"], format!("deal:{}", deals[0]));
    let other = open_deals(&app, person, 1).await[0];

    let before = delivered(&app, "activity");
    app.sim
        .handle()
        .update_activity_as_user(
            logged["activity_id"].as_i64().unwrap(),
            json!({ "deal_id": other }),
        )
        .unwrap();
    await_webhooks(&app, "activity", before, 1).await;
    assert_eq!(
        outcome(&app, "<h1@our-app>").await["item"],
        format!("deal:{other}")
    );

    let mut reply = email("<h2@our-app>", &address, "2099-01-02T10:00:00Z");
    reply["direction"] = json!("received");
    reply["from"] = json!(address);
    reply["to"] = json!(["sales@our-app.example"]);
    reply["in_reply_to"] = json!("<h1@our-app>");
    let (_, answered) = post(&app, &reply).await;
    assert_eq!(answered["item"], format!("deal:{other}"));
}

#[tokio::test]
async fn won_and_lost_deals_do_not_count_and_a_single_open_lead_takes_the_email() {
    let (app, person, address) = app_with_person().await;
    let deals = open_deals(&app, person, 2).await;
    let sim = app.sim.handle();
    let before = delivered(&app, "deal");
    sim.update_deal_as_user(deals[0], json!({ "status": "won" }))
        .unwrap();
    sim.update_deal_as_user(deals[1], json!({ "status": "lost" }))
        .unwrap();
    await_webhooks(&app, "deal", before, 2).await;
    let (_, none) = post(&app, &email("<l0@our-app>", &address, LATER)).await;
    assert_eq!(none["item"], Value::Null);
    assert_eq!(none["waiting_for_manual_link"], false);

    let before = delivered(&app, "lead");
    let lead = sim
        .create_lead_as_user(json!({ "title": "Inbound", "person_id": person }))
        .unwrap();
    await_webhooks(&app, "lead", before, 1).await;
    let (_, on_lead) = post(&app, &email("<l1@our-app>", &address, LATER)).await;
    assert_eq!(
        on_lead["item"],
        format!("lead:{}", lead["id"].as_str().unwrap())
    );
    app.drive().await;
    let logged = outcome(&app, "<l1@our-app>").await;
    assert_eq!(
        activity(&app, &logged["activity_id"])["lead_id"],
        lead["id"]
    );
}

#[tokio::test]
async fn with_several_recipients_only_a_deal_shared_by_all_is_linked() {
    let (app, persons) = app_with_persons(2).await;
    let ((first, first_address), (second, second_address)) =
        (persons[0].clone(), persons[1].clone());
    let sim = app.sim.handle();
    let before = delivered(&app, "deal");
    let shared = sim
        .create_deal_as_user(json!({ "title": "Shared", "person_id": first }))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    await_webhooks(&app, "deal", before, 1).await;
    let mut both = email("<r1@our-app>", &first_address, LATER);
    both["cc"] = json!([second_address]);
    let (_, one_deal) = post(&app, &both).await;
    assert_eq!(one_deal["item"], format!("deal:{shared}"));
    assert_eq!(one_deal["persons"], json!([first, second]));

    open_deals(&app, second, 1).await;
    both["message_id"] = json!("<r2@our-app>");
    let (_, two_deals) = post(&app, &both).await;
    assert_eq!(two_deals["item"], Value::Null);
    assert_eq!(two_deals["waiting_for_manual_link"], true);
    assert_eq!(two_deals["candidates"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn addresses_without_a_person_become_persons_only_once_the_admin_turns_it_on() {
    let (app, _person, _address) = app_with_person().await;
    let (_, off) = post(&app, &email("<p1@our-app>", "first.new@example.com", LATER)).await;
    assert_eq!(off["state"], "no_person");
    app.drive().await;
    assert!(app
        .sim
        .handle()
        .persons_by_email("first.new@example.com")
        .is_empty());

    email_settings(&app, json!({ "create_persons": true })).await;
    let (status, on) = post(
        &app,
        &email("<p2@our-app>", "second.new@example.com", LATER),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(on["state"], "queued");
    assert_eq!(on["waiting_for_persons"], json!(["second.new@example.com"]));
    app.drive().await;
    let created = app.sim.handle().persons_by_email("second.new@example.com");
    assert_eq!(created.len(), 1, "the usual create path made one person");
    let logged = outcome(&app, "<p2@our-app>").await;
    assert_eq!(logged["state"], "logged", "{logged}");
    assert_eq!(logged["persons"], json!([created[0]["id"]]));
    let participants = activity(&app, &logged["activity_id"])["participants"].clone();
    assert_eq!(participants[0]["person_id"], created[0]["id"]);
}

#[tokio::test]
async fn with_notes_preferred_the_email_becomes_a_note_on_the_person_and_deal_and_events_update_it()
{
    let (app, person, address) = app_with_person().await;
    let deal = open_deals(&app, person, 1).await[0];
    email_settings(&app, json!({ "record_as": "note" })).await;
    let activities = app.sim.handle().activities().len();
    let mut body = email("<n1@our-app>", &address, LATER);
    body["subject"] = json!("Offer <b>now</b>");
    post(&app, &body).await;
    app.drive().await;
    let logged = outcome(&app, "<n1@our-app>").await;
    assert_eq!(logged["state"], "logged");
    assert_eq!(logged["record"], "note");
    assert_eq!(app.sim.handle().activities().len(), activities);
    let note = app
        .sim
        .handle()
        .notes()
        .into_iter()
        .find(|n| n["id"] == logged["activity_id"])
        .unwrap();
    assert_eq!(note["person_id"], person);
    assert_eq!(note["deal_id"], deal);
    let content = note["content"].as_str().unwrap().to_owned();
    assert!(
        content.contains("Offer &lt;b&gt;now&lt;/b&gt;"),
        "{content}"
    );

    post_event(
        &app,
        "<n1@our-app>",
        &json!({ "type": "bounced", "at": LATER }),
    )
    .await;
    app.drive().await;
    let note = app
        .sim
        .handle()
        .notes()
        .into_iter()
        .find(|n| n["id"] == logged["activity_id"])
        .unwrap();
    assert!(note["content"].as_str().unwrap().contains("bounced 1x"));

    let bad = app
        .admin(
            Method::PUT,
            &format!(
                "/admin/api/connections/{}/email-settings",
                app.connection_id().await
            ),
        )
        .json(&json!({ "record_as": "fax" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_email_whose_write_may_have_happened_before_a_crash_is_found_again_not_logged_twice() {
    let (app, _person, address) = app_with_person().await;
    post(&app, &email("<c1@our-app>", &address, LATER)).await;
    app.drive().await;
    let logged = outcome(&app, "<c1@our-app>").await;
    let activities = app.sim.handle().activities().len();

    let lists = app.sim.handle().calls("v2.getActivities");
    write_again_as_after_a_crash(&app, "<c1@our-app>", &logged).await;

    let again = outcome(&app, "<c1@our-app>").await;
    assert_eq!(again["state"], "logged");
    assert_eq!(again["activity_id"], logged["activity_id"]);
    assert_eq!(
        app.sim.handle().activities().len(),
        activities,
        "no duplicate"
    );
    assert_eq!(app.sim.handle().calls("v2.getActivities"), lists + 1);
}

#[tokio::test]
async fn an_email_logged_as_a_note_whose_write_may_have_happened_before_a_crash_is_found_again() {
    let (app, _person, address) = app_with_person().await;
    email_settings(&app, json!({ "record_as": "note" })).await;
    let mut body = email("<n2@our-app>", &address, LATER);
    body["subject"] = json!("Offer <b>now</b> & \"more\"");
    post(&app, &body).await;
    app.drive().await;
    let logged = outcome(&app, "<n2@our-app>").await;
    assert_eq!(logged["record"], "note");
    let notes = app.sim.handle().notes().len();

    let lists = app.sim.handle().calls("v1.getNotes");
    write_again_as_after_a_crash(&app, "<n2@our-app>", &logged).await;

    let again = outcome(&app, "<n2@our-app>").await;
    assert_eq!(again["state"], "logged");
    assert_eq!(again["activity_id"], logged["activity_id"]);
    assert_eq!(app.sim.handle().notes().len(), notes, "no duplicate note");
    assert_eq!(app.sim.handle().calls("v1.getNotes"), lists + 1);
}

/// As if tandem died after the CRM created the record and before it stored the answer: the
/// write-ahead state is `writing` again and the e-mail's job runs once more.
async fn write_again_as_after_a_crash(app: &TestApp, message_id: &str, logged: &Value) {
    use tandem_engine::queue::{self, JobPayload, Priority};
    use tandem_engine::store::emails as stored;
    let row = stored::by_message_id(&app.store, &tandem_core::TenantId::default(), message_id)
        .await
        .unwrap()
        .unwrap();
    stored::finish(
        &app.store,
        row.id,
        "writing",
        None,
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let contact = tandem_engine::sync::links::by_person(
        &app.store,
        app.connection_id().await.into(),
        tandem_tests::pid(logged["persons"][0].as_i64().unwrap()),
    )
    .await
    .unwrap()
    .unwrap()
    .contact_id;
    let connection = app.connection_id().await;
    let txn = app.store.begin().await.unwrap();
    queue::enqueue(
        &txn,
        connection.into(),
        &format!("email:{}", row.id),
        Priority::Background,
        &JobPayload::LogEmail {
            email_id: row.id,
            contact_id: contact,
        },
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    app.drive().await;
}

// ------------------------------------------------------------------ Salesforce (a completed Task)

/// A Salesforce org with Contacts (some with Opportunities through contact roles) and a Lead,
/// connected and synced; returns the app with the records' ids.
struct SfEmails {
    sf: tandem_tests::salesforce::SfApp,
    /// One open and one won Opportunity.
    contact: String,
    open: String,
    /// Two open Opportunities.
    busy: String,
    busy_opportunities: Vec<String>,
    lead: String,
}

async fn salesforce_with_opportunities() -> SfEmails {
    use salesforce_sim::{OrgKind, SfSimConfig};
    let sf = tandem_tests::salesforce::spawn_sf_app(SfSimConfig::default(), |_| {}).await;
    let h = sf.sf.handle();
    let insert = |object: &str, fields: Value| {
        h.insert_record(OrgKind::Production, object, fields)
            .unwrap()
    };
    let contact_with = |n: usize, stages: &[&str]| {
        let contact = insert(
            "Contact",
            json!({ "LastName": format!("Contact{n}"), "Email": format!("contact{n}@example.com") }),
        );
        let opportunities = stages
            .iter()
            .map(|stage| {
                let id = insert(
                    "Opportunity",
                    json!({ "Name": format!("{stage} {n}"), "StageName": stage, "CloseDate": "2030-01-01" }),
                );
                insert(
                    "OpportunityContactRole",
                    json!({ "OpportunityId": id, "ContactId": contact }),
                );
                id
            })
            .collect::<Vec<_>>();
        (contact, opportunities)
    };
    let (contact, opportunities) = contact_with(0, &["Prospecting", "Closed Won"]);
    let (busy, busy_opportunities) = contact_with(1, &["Prospecting", "Qualification"]);
    let lead = insert(
        "Lead",
        json!({ "LastName": "Lead0", "Company": "Acme", "Email": "lead0@example.com" }),
    );
    sf.connect_and_sync(false).await;
    SfEmails {
        sf,
        contact,
        open: opportunities[0].clone(),
        busy,
        busy_opportunities,
        lead,
    }
}

/// The simulator's Task that an e-mail's status names.
fn task_of(sf: &tandem_tests::salesforce::SfApp, status: &Value) -> Value {
    use salesforce_sim::OrgKind;
    use tandem_engine::crm::salesforce::ids::surrogate;
    let h = sf.sf.handle();
    let id = h
        .ids(OrgKind::Production, "Task")
        .into_iter()
        .find(|t| Some(surrogate(t)) == status["activity_id"].as_i64())
        .unwrap_or_else(|| panic!("no Task for {status}"));
    h.record(OrgKind::Production, "Task", &id).unwrap()
}

#[tokio::test]
async fn on_salesforce_an_email_becomes_one_completed_task_on_the_contact_and_its_single_open_opportunity(
) {
    use salesforce_sim::OrgKind;
    use tandem_engine::crm::salesforce::ids::surrogate;
    let s = salesforce_with_opportunities().await;
    let app = &s.sf.app;
    let body = email("<sf1@our-app>", "contact0@example.com", LATER);
    let (status, first) = post(app, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    app.drive().await;
    let logged = outcome(app, "<sf1@our-app>").await;
    assert_eq!(logged["state"], "logged", "{logged}");
    // The won Opportunity does not count: the single open one takes the e-mail.
    assert_eq!(logged["item"], format!("deal:{}", surrogate(&s.open)));
    assert_eq!(logged["persons"], json!([surrogate(&s.contact)]));
    let task = task_of(&s.sf, &logged);
    assert_eq!(task["Status"], "Completed");
    assert_eq!(task["TaskSubtype"], "Email");
    assert_eq!(task["Subject"], "Your trial ends soon");
    assert_eq!(task["WhoId"], Value::from(s.contact.clone()));
    assert_eq!(task["WhatId"], Value::from(s.open.clone()));
    assert!(task["Description"]
        .as_str()
        .unwrap()
        .contains("Three days left"));

    // The same e-mail again: the first record, no second Task.
    let (again, replay) = post(app, &body).await;
    assert_eq!(again, StatusCode::OK, "{replay}");
    app.drive().await;
    assert_eq!(s.sf.sf.handle().count(OrgKind::Production, "Task"), 1);

    // An Opportunity created after the e-mail was sent is not linked retroactively.
    let old = email(
        "<sf2@our-app>",
        "contact0@example.com",
        "2001-01-01T10:00:00Z",
    );
    post(app, &old).await;
    app.drive().await;
    let past = outcome(app, "<sf2@our-app>").await;
    assert_eq!(past["state"], "logged", "{past}");
    assert_eq!(past["item"], Value::Null);
    assert_eq!(task_of(&s.sf, &past)["WhatId"], Value::Null);

    // A Lead gets the Task as WhoId, with no Opportunity.
    post(app, &email("<sf3@our-app>", "lead0@example.com", LATER)).await;
    app.drive().await;
    let on_lead = outcome(app, "<sf3@our-app>").await;
    assert_eq!(on_lead["state"], "logged", "{on_lead}");
    let task = task_of(&s.sf, &on_lead);
    assert_eq!(task["WhoId"], Value::from(s.lead.clone()));
    assert_eq!(task["WhatId"], Value::Null);
}

#[tokio::test]
async fn on_salesforce_several_open_opportunities_wait_for_a_manual_link_which_sets_the_tasks_what_id(
) {
    use tandem_engine::crm::salesforce::ids::surrogate;
    let s = salesforce_with_opportunities().await;
    let app = &s.sf.app;
    post(app, &email("<sfm@our-app>", "contact1@example.com", LATER)).await;
    app.drive().await;
    let waiting = outcome(app, "<sfm@our-app>").await;
    assert_eq!(waiting["state"], "logged", "{waiting}");
    assert_eq!(waiting["item"], Value::Null);
    assert_eq!(waiting["waiting_for_manual_link"], true);
    let mut candidates: Vec<String> = waiting["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    candidates.sort();
    let mut expected: Vec<String> = s
        .busy_opportunities
        .iter()
        .map(|o| format!("deal:{}", surrogate(o)))
        .collect();
    expected.sort();
    assert_eq!(candidates, expected);
    let task = task_of(&s.sf, &waiting);
    assert_eq!(task["WhoId"], Value::from(s.busy.clone()));
    assert_eq!(task["WhatId"], Value::Null);

    let chosen = &s.busy_opportunities[1];
    let linked = app
        .admin(Method::POST, "/admin/api/emails/<sfm@our-app>/link")
        .json(&json!({ "item": format!("deal:{}", surrogate(chosen)) }))
        .send()
        .await
        .unwrap();
    assert!(linked.status().is_success(), "{}", linked.status());
    app.drive().await;
    let status = outcome(app, "<sfm@our-app>").await;
    assert_eq!(status["waiting_for_manual_link"], false);
    assert_eq!(
        task_of(&s.sf, &status)["WhatId"],
        Value::from(chosen.clone())
    );

    // A reply in the thread stays on the chosen Opportunity.
    let mut reply = email(
        "<sfm2@our-app>",
        "sales@our-app.example",
        "2099-01-02T10:00:00Z",
    );
    reply["direction"] = json!("received");
    reply["from"] = json!("contact1@example.com");
    reply["in_reply_to"] = json!("<sfm@our-app>");
    post(app, &reply).await;
    app.drive().await;
    let replied = outcome(app, "<sfm2@our-app>").await;
    assert_eq!(replied["item"], format!("deal:{}", surrogate(chosen)));
    assert_eq!(
        task_of(&s.sf, &replied)["WhatId"],
        Value::from(chosen.clone())
    );
}
