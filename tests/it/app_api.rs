//! The app side: the REST API, Standard Webhooks both ways, outbound deliveries.

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use tandem_engine::sync::app::local;
use tandem_engine::sync::app::{self, ContactEvent};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::receiver::TestReceiver;
use tandem_tests::{spawn_app, spawn_app_with, TestApp, TEST_APP_SECRET};
use tandem_webhooks::standard::{self, Secret};

async fn create_contact(app: &TestApp, body: Value) -> Value {
    let response = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn add_to_list(app: &TestApp, contact_id: &str) -> reqwest::Response {
    app.api(Method::POST, "/api/v1/lists/pipedrive_contacts/members")
        .json(&json!({ "contact_id": contact_id }))
        .send()
        .await
        .unwrap()
}

async fn subscribe(app: &TestApp, url: &str) -> (String, Secret) {
    let response = app
        .api(Method::POST, "/api/v1/webhook-subscriptions")
        .json(&json!({ "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let secret = body["secret"].as_str().expect("the secret is shown once");
    (
        body["id"].as_str().unwrap().to_owned(),
        Secret::parse(secret).unwrap(),
    )
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn rows(app: &TestApp, sql: &str) -> Vec<sea_orm::QueryResult> {
    let db = app.store.db();
    db.query_all(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
}

async fn sync_log_kinds(app: &TestApp) -> Vec<String> {
    rows(app, "SELECT kind FROM sync_log")
        .await
        .iter()
        .map(|r| r.try_get::<String>("", "kind").unwrap())
        .collect()
}

#[tokio::test]
async fn a_contact_created_through_the_api_and_added_to_the_list_reaches_pipedrive_with_its_ap_id_and_an_edit_is_one_patch(
) {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let created = create_contact(
        &app,
        json!({ "fields": { "name": "Ada Lovelace", "email": [{"value": "ada@example.com", "label": "work"}] } }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["in_pipedrive_list"], false);
    assert_eq!(created["email"], "ada@example.com");
    assert_eq!(add_to_list(&app, &id).await.status(), StatusCode::CREATED);
    app.drive().await;

    let sim = app.sim.handle();
    let persons = sim.persons_by_email("ada@example.com");
    assert_eq!(persons.len(), 1, "{persons:?}");
    let apid_key = sim.person_field_key("apId").unwrap();
    assert_eq!(persons[0]["custom_fields"][&apid_key], id.as_str());
    let person_id = persons[0]["id"].as_i64().unwrap();
    let fetched: Value = app
        .api(Method::GET, &format!("/api/v1/contacts/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fetched["pipedrive_person_id"], person_id);
    assert_eq!(fetched["in_pipedrive_list"], true);

    sim.reset_counts();
    let patched = app
        .api(Method::PATCH, &format!("/api/v1/contacts/{id}"))
        .json(&json!({ "fields": { "name": "Ada King" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["fields"]["name"], "Ada King");
    app.drive().await;
    assert_eq!(sim.calls("v2.updatePerson"), 1);
    assert_eq!(sim.person(person_id).unwrap()["name"], "Ada King");
}

#[tokio::test]
async fn a_contact_created_through_the_api_outside_the_list_never_reaches_pipedrive() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let sim = app.sim.handle();
    sim.reset_counts();
    let created = create_contact(
        &app,
        json!({ "email": "local@example.com", "fields": { "name": "Local" } }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let patched = app
        .api(Method::PATCH, &format!("/api/v1/contacts/{id}"))
        .json(&json!({ "fields": { "name": "Still local" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK);
    app.drive().await;
    assert!(sim.persons_by_email("local@example.com").is_empty());
    assert_eq!(
        sim.calls("v2.addPerson") + sim.calls("v2.updatePerson") + sim.calls("v2.searchPersons"),
        0
    );
}

#[tokio::test]
async fn a_second_contact_with_the_same_email_is_merged_into_the_first_and_listing_filters_by_email_and_pages(
) {
    let app = spawn_app().await;
    let first = create_contact(
        &app,
        json!({ "email": "Dup@Example.com", "fields": { "name": "One" } }),
    )
    .await;
    let again = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&json!({ "email": "dup@example.com", "fields": { "phone": "+49 30 123456" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK, "deduplicated, not created");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["fields"]["name"], "One");
    assert_eq!(again["fields"]["phone"][0]["value"], "+49 30 123456");
    for i in 0..4 {
        create_contact(&app, json!({ "email": format!("p{i}@example.com") })).await;
    }

    let by_email: Value = app
        .api(Method::GET, "/api/v1/contacts?email=DUP@example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_email["data"].as_array().unwrap().len(), 1);

    let mut seen = Vec::new();
    let mut path = "/api/v1/contacts?limit=2".to_owned();
    loop {
        let page: Value = app
            .api(Method::GET, &path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in page["data"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/contacts?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");

    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let none: Value = app
        .api(Method::GET, "/api/v1/contacts")
        .query(&[("updated_since", future)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["data"], json!([]));
}

#[tokio::test]
async fn bad_input_gets_field_level_422s_unknown_fields_are_refused_and_a_missing_key_is_401() {
    let app = spawn_app().await;
    let response = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&json!({ "fields": { "email": [{"value": "not-an-address"}], "nickname": "x" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "unknown_field");
    let named: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["fields.email[0].value", "fields.nickname"]);

    let response = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&json!({ "email": "a@example.com", "colour": "red" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["fields"][0]["field"], "colour");

    let response = app
        .api(Method::POST, "/api/v1/contacts")
        .header("content-type", "application/json")
        .body("{broken")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );

    let response = app
        .http
        .get(format!("{}/api/v1/contacts", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "unauthorized"
    );
    let response = app
        .http
        .get(format!("{}/api/v1/contacts", app.base_url))
        .bearer_auth("wrong-key-wrong-key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let huge = "x".repeat(app.engine.settings.http.body_limit_bytes + 10);
    let response = app
        .api(
            Method::PATCH,
            &format!("/api/v1/contacts/{}", uuid::Uuid::nil()),
        )
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_result_and_another_body_under_it_is_refused()
{
    let app = spawn_app().await;
    let post = |body: Value| {
        app.api(Method::POST, "/api/v1/contacts")
            .header("Idempotency-Key", "key-1")
            .json(&body)
            .send()
    };
    let first = post(json!({ "email": "once@example.com" })).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let second = post(json!({ "email": "once@example.com" })).await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    let other = post(json!({ "email": "other@example.com" })).await.unwrap();
    assert_eq!(other.status(), StatusCode::CONFLICT);
    assert_eq!(
        other.json::<Value>().await.unwrap()["code"],
        "idempotency_key_reused"
    );
    assert_eq!(rows(&app, "SELECT id FROM contact").await.len(), 1);
}

#[tokio::test]
async fn removing_a_contact_from_the_list_never_deletes_in_pipedrive_and_archiving_neither() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let pending = create_contact(
        &app,
        json!({ "email": "maybe@example.com", "in_pipedrive_list": true }),
    )
    .await;
    let pending_id = pending["id"].as_str().unwrap();
    let removed = app
        .api(
            Method::DELETE,
            &format!("/api/v1/lists/pipedrive_contacts/members/{pending_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    let linked = create_contact(
        &app,
        json!({ "email": "kept@example.com", "in_pipedrive_list": true }),
    )
    .await;
    let linked_id = linked["id"].as_str().unwrap();
    app.drive().await;
    let sim = app.sim.handle();
    assert!(
        sim.persons_by_email("maybe@example.com").is_empty(),
        "removed before its push"
    );
    assert_eq!(sim.persons_by_email("kept@example.com").len(), 1);

    let refused = app
        .api(
            Method::DELETE,
            &format!("/api/v1/lists/pipedrive_contacts/members/{linked_id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let archived: Value = app
        .api(
            Method::POST,
            &format!("/api/v1/contacts/{linked_id}/archive"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(archived["archived"], true);
    app.drive().await;
    assert_eq!(
        sim.persons_by_email("kept@example.com").len(),
        1,
        "still in Pipedrive"
    );
    assert_eq!(sim.calls("v2.deletePerson"), 0);
}

#[tokio::test]
async fn an_edit_in_pipedrive_is_delivered_to_the_subscribed_app_signed_with_standard_webhooks() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let mut receiver = TestReceiver::start().await;
    let (_subscription, secret) = subscribe(&app, &receiver.url).await;
    let created = create_contact(
        &app,
        json!({ "email": "grace@example.com", "fields": { "name": "Grace" }, "in_pipedrive_list": true }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    app.drive().await;
    let linked = receiver.next().await.json();
    assert_eq!(linked["type"], "contact.linked");
    let person_id = linked["data"]["contact"]["pipedrive_person_id"]
        .as_i64()
        .unwrap();

    let sim = app.sim.handle();
    sim.update_person_as_user(person_id, json!({ "name": "Grace Hopper" }))
        .unwrap();
    sim.wait_for_deliveries(std::time::Duration::from_secs(20), |deliveries| {
        deliveries.iter().any(|d| {
            d.delivered && d.entity == "person" && d.action == "change" && d.entity_id == person_id
        })
    })
    .await;
    app.drive().await;

    let received = loop {
        let received = receiver.next().await;
        // The person tandem created comes back with Pipedrive's owner first (an update too).
        let event = received.json();
        if event["type"] == "contact.updated"
            && event["data"]["contact"]["fields"]["name"] == "Grace Hopper"
        {
            break received;
        }
    };
    let event = received.json();
    assert_eq!(event["data"]["contact"]["id"], id.as_str());
    assert_eq!(event["data"]["contact"]["fields"]["name"], "Grace Hopper");
    assert!(received.header("webhook-id").starts_with("msg_"));
    let verified = standard::verify(
        &[secret],
        |name| received.headers.get(name).and_then(|v| v.to_str().ok()),
        &received.body,
        unix_now(),
    );
    assert_eq!(verified.as_deref(), Ok(received.header("webhook-id")));
    let wrong = Secret::parse(TEST_APP_SECRET).unwrap();
    assert!(standard::verify(
        &[wrong],
        |name| received.headers.get(name).and_then(|v| v.to_str().ok()),
        &received.body,
        unix_now(),
    )
    .is_err());
}

#[tokio::test]
async fn app_events_need_a_valid_recent_signature_are_deduplicated_and_applied() {
    let app = spawn_app().await;
    let body = r#"{"type":"contact.created","data":{"email":"event@example.com","fields":{"name":"From the app"}}}"#;
    let now = unix_now();

    let bad = app
        .post_app_event(
            "whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA==",
            "msg_1",
            now,
            body,
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["code"],
        "invalid_signature"
    );

    let replayed = app
        .post_app_event(TEST_APP_SECRET, "msg_1", now - 600, body)
        .await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        replayed.json::<Value>().await.unwrap()["code"],
        "timestamp_out_of_tolerance"
    );

    let malformed = app
        .post_app_event(TEST_APP_SECRET, "msg_2", now, "{not json")
        .await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        malformed.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );

    let first = app
        .post_app_event(TEST_APP_SECRET, "msg_3", now, body)
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(first.json::<Value>().await.unwrap()["status"], "accepted");
    let again = app
        .post_app_event(TEST_APP_SECRET, "msg_3", now, body)
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");

    let unknown = r#"{"type":"contact.updated","data":{"email":"event@example.com","fields":{"shoe_size":44}}}"#;
    assert_eq!(
        app.post_app_event(TEST_APP_SECRET, "msg_4", now, unknown)
            .await
            .status(),
        StatusCode::OK
    );
    app.drive().await;

    let page: Value = app
        .api(Method::GET, "/api/v1/contacts?email=event@example.com")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "applied once");
    assert_eq!(page["data"][0]["fields"]["name"], "From the app");
    let failed = rows(
        &app,
        "SELECT state, last_error FROM inbox_event WHERE delivery_id = 'msg_4'",
    )
    .await;
    assert_eq!(failed[0].try_get::<String>("", "state").unwrap(), "failed");
    let reason: String = failed[0].try_get("", "last_error").unwrap();
    assert!(reason.contains("shoe_size"), "{reason}");
    let kinds = sync_log_kinds(&app).await;
    assert!(kinds.contains(&"event_failed".to_owned()), "{kinds:?}");
    assert!(
        kinds.contains(&"app_event_rejected".to_owned()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_in_order_per_contact_and_logged() {
    let app = spawn_app().await;
    let mut receiver = TestReceiver::start_with(2, false).await;
    let (subscription, _) = subscribe(&app, &receiver.url).await;
    let contact = local::create_contact(
        &app.engine,
        fields([name("v1"), email("o@example.com")]),
        false,
    )
    .await
    .unwrap()
    .contact_id;
    for version in ["v1", "v2", "v3"] {
        local::update_contact(&app.engine, contact, fields([name(version)]))
            .await
            .unwrap();
        app::contact_event(
            app.store.db(),
            contact,
            ContactEvent::Updated,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    }
    app.drive().await;

    let received = receiver.drain();
    let answered_ok: Vec<String> = received
        .iter()
        .filter(|r| r.answered == StatusCode::OK)
        .map(|r| {
            r.json()["data"]["contact"]["fields"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(answered_ok, ["v1", "v2", "v3"]);
    let first_ids: Vec<&str> = received
        .iter()
        .take(3)
        .map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(
        first_ids[0], first_ids[1],
        "a retry keeps its webhook-id; nothing overtakes it"
    );
    assert_eq!(first_ids[1], first_ids[2]);

    let log: Value = app
        .api(
            Method::GET,
            &format!("/api/v1/webhook-subscriptions/{subscription}/deliveries"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<(&str, i64)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["state"].as_str().unwrap(),
                d["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [("delivered", 1), ("delivered", 1), ("delivered", 3)]
    );
}

#[tokio::test]
async fn a_subscription_that_keeps_failing_is_disabled_with_a_sync_log_entry_and_can_be_re_enabled()
{
    let app = spawn_app_with(pipedrive_sim::SimConfig::default(), |settings| {
        settings.app_webhooks.max_attempts = 2;
        settings.app_webhooks.disable_after_failures = 3;
    })
    .await;
    let mut receiver = TestReceiver::start_with(0, true).await;
    let (subscription, _) = subscribe(&app, &receiver.url).await;
    for i in 0..3 {
        let id = local::create_contact(
            &app.engine,
            fields([email(&format!("f{i}@example.com"))]),
            false,
        )
        .await
        .unwrap()
        .contact_id;
        app::contact_event(
            app.store.db(),
            id,
            ContactEvent::Updated,
            None,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    }
    app.drive().await;
    assert_eq!(
        receiver.drain().len(),
        3,
        "disabled after the third failure in a row"
    );
    let shown: Value = app
        .api(
            Method::GET,
            &format!("/api/v1/webhook-subscriptions/{subscription}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["enabled"], false);
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown only at creation"
    );
    let kinds = sync_log_kinds(&app).await;
    assert!(
        kinds.contains(&"webhook_subscription_disabled".to_owned()),
        "{kinds:?}"
    );

    let enabled = app
        .api(
            Method::POST,
            &format!("/api/v1/webhook-subscriptions/{subscription}/enable"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.json::<Value>().await.unwrap()["enabled"], true);
    assert!(
        app::run_deliveries_once(&app.engine).await.unwrap(),
        "pending deliveries resume"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_and_every_route_it_lists_exists() {
    let app = spawn_app().await;
    let document: Value = app
        .http
        .get(format!("{}/api/v1/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    // The router and the document are built from one route list; the served document is the
    // one derived, and each operation it lists is routed, and no other method on its paths.
    let operations = tandem_engine::http::api::openapi::operations();
    assert!(operations.len() >= 18, "{operations:?}");
    let paths = document["paths"].as_object().unwrap();
    let served: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    assert_eq!(served.len(), operations.len(), "{served:?}");
    for (method, path) in &operations {
        let concrete = path
            .replace("{id}", &uuid::Uuid::nil().to_string())
            .replace("{contact_id}", &uuid::Uuid::nil().to_string())
            .replace("{key}", "pipedrive_contacts");
        for other in ["get", "post", "patch", "put", "delete"] {
            if operations.contains(&(other.to_owned(), path.clone())) {
                continue;
            }
            let response = app
                .api(other.to_uppercase().parse().unwrap(), &concrete)
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{other} {path} is routed but not documented"
            );
        }
        let concrete = path
            .replace("{id}", &uuid::Uuid::nil().to_string())
            .replace("{contact_id}", &uuid::Uuid::nil().to_string())
            .replace("{key}", "pipedrive_contacts");
        let response = app
            .api(method.to_uppercase().parse().unwrap(), &concrete)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            status != StatusCode::NOT_FOUND || body.contains("\"code\""),
            "{method} {path} is not routed"
        );
    }
}

#[tokio::test]
async fn idempotency_keys_webhook_events_and_sync_log_entries_are_pruned_after_their_retention_and_pending_work_never(
) {
    use tandem_engine::sync::housekeeping;
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let created = app
        .api(Method::POST, "/api/v1/contacts")
        .header("Idempotency-Key", "key-1")
        .json(&json!({ "email": "kept@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    app.sim
        .handle()
        .create_person_as_user(json!({ "name": "From Pipedrive" }))
        .unwrap();
    app.await_person_webhooks(1).await;
    // One more event, received but not applied yet (the workers are not driven).
    app.sim
        .handle()
        .create_person_as_user(json!({ "name": "Still Pending" }))
        .unwrap();
    app.sim
        .handle()
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter().filter(|d| d.delivered).count() >= 2
        })
        .await;
    let app = &app;
    let count = |sql: &'static str| async move { rows(app, sql).await.len() };
    assert_eq!(count("SELECT scope FROM idempotency_key").await, 1);
    assert_eq!(count("SELECT id FROM inbox_event").await, 2);

    let settings = &app.settings.admin;
    let now = chrono::Utc::now();
    let within = housekeeping::prune(app.store.db(), settings, now + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        within,
        housekeeping::Pruned::default(),
        "nothing is old yet"
    );

    let next_day = housekeeping::prune(app.store.db(), settings, now + chrono::Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(next_day.idempotency_keys, 1);
    assert_eq!(next_day.inbox_events, 0);
    assert_eq!(count("SELECT scope FROM idempotency_key").await, 0);

    let later = housekeeping::prune(app.store.db(), settings, now + chrono::Duration::days(31))
        .await
        .unwrap();
    assert_eq!(later.inbox_events, 1, "the applied event");
    assert!(later.sync_log > 0);
    assert_eq!(
        count("SELECT id FROM inbox_event WHERE state = 'pending'").await,
        1,
        "the pending event is kept"
    );
    // The kept event is still applied afterwards.
    app.drive().await;
    assert_eq!(
        count("SELECT id FROM contact").await,
        3,
        "the app's contact and both Pipedrive persons"
    );
}

#[tokio::test]
async fn an_archived_contact_is_read_only_through_the_api_and_through_app_events_for_the_same_reason(
) {
    let app = spawn_app().await;
    let contact = create_contact(
        &app,
        json!({ "email": "archived@example.com", "fields": { "name": "Before" } }),
    )
    .await;
    let id = contact["id"].as_str().unwrap().to_owned();
    let archived = app
        .api(Method::POST, &format!("/api/v1/contacts/{id}/archive"))
        .send()
        .await
        .unwrap();
    assert_eq!(archived.status(), StatusCode::OK);

    let patched = app
        .api(Method::PATCH, &format!("/api/v1/contacts/{id}"))
        .json(&json!({ "fields": { "name": "Through the API" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::CONFLICT);
    let body: Value = patched.json().await.unwrap();
    assert_eq!(body["code"], "conflict");
    let reason = body["detail"].as_str().unwrap().to_owned();
    assert!(
        reason.contains("archived contacts are read-only"),
        "{reason}"
    );
    let listed = add_to_list(&app, &id).await;
    assert_eq!(listed.status(), StatusCode::CONFLICT);
    assert_eq!(listed.json::<Value>().await.unwrap()["detail"], reason);

    let event = json!({ "type": "contact.updated", "data": { "id": id, "fields": { "name": "Through an event" } } });
    let accepted = app
        .post_app_event(
            TEST_APP_SECRET,
            "msg_archived",
            unix_now(),
            &event.to_string(),
        )
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    app.drive().await;

    let current: Value = app
        .api(Method::GET, &format!("/api/v1/contacts/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        current["fields"]["name"], "Before",
        "the event changed nothing"
    );
    let failed = rows(
        &app,
        "SELECT state, last_error FROM inbox_event WHERE delivery_id = 'msg_archived'",
    )
    .await;
    assert_eq!(failed[0].try_get::<String>("", "state").unwrap(), "failed");
    assert_eq!(
        failed[0].try_get::<String>("", "last_error").unwrap(),
        reason,
        "the same reason as the API's"
    );
    let logged = app.log_entries("event_failed").await;
    assert!(
        logged
            .iter()
            .any(|e| e.remote_error.as_deref() == Some(reason.as_str())),
        "{logged:?}"
    );
}

#[tokio::test]
async fn retention_follows_the_engine_clock_so_a_test_can_move_time() {
    use std::sync::Arc;
    use tandem_engine::clock::TestClock;
    use tandem_engine::sync::housekeeping;
    let app = spawn_app().await;
    let created = app
        .api(Method::POST, "/api/v1/contacts")
        .header("Idempotency-Key", "key-clock")
        .json(&json!({ "email": "clock@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let clock = TestClock::new();
    let engine = app.engine.clone().with_clock(Arc::new(clock.clone()));

    let now = housekeeping::prune_due(&engine).await.unwrap();
    assert_eq!(
        now.idempotency_keys, 0,
        "the key is fresh by the engine's clock"
    );

    clock.advance(chrono::Duration::hours(25));
    let next_day = housekeeping::prune_due(&engine).await.unwrap();
    assert_eq!(
        next_day.idempotency_keys, 1,
        "a day later by the engine's clock"
    );
}
