//! E-mail logging (issue 23): e-mails the app sent are logged in Pipedrive as done e-mail
//! activities, linked the way Pipedrive itself links e-mails, once per `message_id`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_engine::store::mirror::set_mirror_enabled;
use tandem_tests::TestApp;
use uuid::Uuid;

/// A synced app with one linked person whose mirror is on; returns it, the person and its
/// e-mail address.
async fn app_with_person() -> (TestApp, i64, String) {
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
    set_mirror_enabled(&app.store, connection.into(), true)
        .await
        .unwrap();
    let person = app.sim.handle().persons()[0].clone();
    let address = person["emails"][0]["value"].as_str().unwrap().to_owned();
    (app, person["id"].as_i64().unwrap(), address)
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

async fn post(app: &TestApp, body: &Value) -> (StatusCode, Value) {
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
