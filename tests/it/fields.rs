//! Field values both ways: what Pipedrive would refuse is refused at the app's API (422 naming
//! the field), and every API v2 custom-field type round-trips through the simulator.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_engine::sync::{app::local, connections::admin};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::{spawn_app, spawn_app_with, TestApp, TEST_APP_SECRET};

async fn put_mapping(app: &TestApp, id: uuid::Uuid, body: Value) -> reqwest::Response {
    app.admin(
        Method::PUT,
        &format!("/admin/api/connections/{id}/mappings"),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

async fn contact_json(app: &TestApp, id: &str) -> Value {
    app.api(Method::GET, &format!("/api/v1/contacts/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A contact created through the API, in the list, pushed.
async fn pushed_contact(app: &TestApp, mail: &str, extra: Value) -> (String, i64) {
    let mut body = json!({ "email": mail, "fields": { "name": "Ada Lovelace" } });
    if let (Some(f), Some(extra)) = (body["fields"].as_object_mut(), extra.as_object()) {
        f.extend(extra.clone());
    }
    let created = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let added = app
        .api(Method::POST, "/api/v1/lists/pipedrive_contacts/members")
        .json(&json!({ "contact_id": id }))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    app.drive().await;
    let persons = app.sim.handle().persons_by_email(mail);
    assert_eq!(persons.len(), 1, "pushed once");
    (id, persons[0]["id"].as_i64().unwrap())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_patch_that_would_leave_the_person_without_a_name_is_a_422_naming_the_field_and_both_sides_keep_it(
) {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let (id, person) = pushed_contact(&app, "ada@example.com", json!({})).await;

    for empty in [json!(""), json!(null), json!("   ")] {
        let answer = app
            .api(Method::PATCH, &format!("/api/v1/contacts/{id}"))
            .json(&json!({ "fields": { "name": empty } }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY, "{empty}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["fields"][0]["field"], "fields.name", "{body}");
    }
    app.drive().await;

    assert_eq!(
        contact_json(&app, &id).await["fields"]["name"],
        "Ada Lovelace"
    );
    assert_eq!(
        app.sim.handle().person(person).unwrap()["name"],
        "Ada Lovelace"
    );
    let status = admin::connection_status(&app.engine, connection.into())
        .await
        .unwrap();
    assert_eq!(status.dead, 0, "nothing was refused by Pipedrive");
}

#[tokio::test]
async fn an_app_event_that_would_empty_the_name_fails_with_the_same_reason_and_changes_nothing() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let (id, person) = pushed_contact(&app, "ada@example.com", json!({})).await;
    let event = json!({"type": "contact.updated", "data": {"id": id, "fields": {"name": "  "}}});
    let answer = app
        .post_app_event(
            TEST_APP_SECRET,
            "msg_empty_name",
            unix_now(),
            &event.to_string(),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK, "stored, then applied");
    app.drive().await;

    let failed = app.log_entries("event_failed").await;
    assert_eq!(failed.len(), 1);
    let text = format!("{failed:?}");
    assert!(
        text.contains("data.fields.name") && text.contains("must not be empty"),
        "{text}"
    );
    assert_eq!(
        contact_json(&app, &id).await["fields"]["name"],
        "Ada Lovelace"
    );
    assert_eq!(
        app.sim.handle().person(person).unwrap()["name"],
        "Ada Lovelace"
    );
}

#[tokio::test]
async fn a_local_number_field_on_a_monetary_field_needs_a_currency_and_is_then_written_as_an_amount_with_it(
) {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let deal_size = tandem_core::FieldKey::new("deal_size").unwrap();
    let contact = local::create_contact(
        &app.engine,
        fields([
            name("Ada"),
            email("ada@example.com"),
            (deal_size, tandem_core::FieldValue::number(1234.5).unwrap()),
        ]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    app.drive().await;
    let budget = sim.add_person_field("Budget", "monetary", &[]).unwrap();
    let label = sim.add_person_field("Label", "varchar", &[]).unwrap();

    let refused = put_mapping(
        &app,
        id,
        json!({ "local_field": "deal_size", "remote_field": budget }),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["fields"][0]["field"], "currency", "{body}");
    let wrong_place = put_mapping(
        &app,
        id,
        json!({ "local_field": "deal_size", "remote_field": label, "currency": "EUR" }),
    )
    .await;
    assert_eq!(wrong_place.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let saved = put_mapping(
        &app,
        id,
        json!({ "local_field": "deal_size", "remote_field": budget, "currency": "eur" }),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    assert_eq!(saved.json::<Value>().await.unwrap()["currency"], "EUR");
    app.admin(Method::POST, &format!("/admin/api/connections/{id}/resync"))
        .json(&json!({ "contact_id": contact }))
        .send()
        .await
        .unwrap();
    app.drive().await;
    let person = &sim.persons_by_email("ada@example.com")[0];
    assert_eq!(
        person["custom_fields"][&budget],
        json!({"value": 1234.5, "currency": "EUR"})
    );
    let status = admin::connection_status(&app.engine, id.into())
        .await
        .unwrap();
    assert_eq!(status.dead, 0);

    // The app writes bare numbers to it; a bare amount read back is the same number.
    let answer = app
        .api(Method::PATCH, &format!("/api/v1/contacts/{contact}"))
        .json(&json!({ "fields": { "deal_size": 99 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    app.drive().await;
    let person = &sim.persons_by_email("ada@example.com")[0];
    assert_eq!(
        person["custom_fields"][&budget],
        json!({"value": 99, "currency": "EUR"})
    );
}

#[tokio::test]
async fn a_local_text_field_cannot_be_mapped_onto_a_monetary_or_an_unconvertible_field() {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    local::create_contact(
        &app.engine,
        fields([
            name("Ada"),
            email("ada@example.com"),
            (
                tandem_core::FieldKey::new("utm_source").unwrap(),
                tandem_core::FieldValue::text("newsletter"),
            ),
        ]),
        false,
    )
    .await
    .unwrap();
    let budget = app
        .sim
        .handle()
        .add_person_field("Budget", "monetary", &[])
        .unwrap();
    let refused = put_mapping(
        &app,
        id,
        json!({ "local_field": "utm_source", "remote_field": budget, "currency": "EUR" }),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["fields"][0]["field"], "remote_field");
    let message = body["fields"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("monetary") && message.contains("Budget"),
        "{message}"
    );
}

/// One custom field per API v2 type: (type, a value the app writes, the JSON Pipedrive then
/// holds, a value a Pipedrive user writes, the JSON the app then reads).
fn every_type(
    enum_opts: &[i64],
    set_opts: &[i64],
) -> Vec<(&'static str, Value, Value, Value, Value)> {
    let same = |v: Value| (v.clone(), v);
    let mut out = Vec::new();
    let mut push = |t: &'static str, app: (Value, Value), pd: (Value, Value)| {
        out.push((t, app.0, app.1, pd.0, pd.1));
    };
    push("varchar", same(json!("Ada")), same(json!("Countess")));
    push(
        "varchar_auto",
        same(json!("Babbage")),
        same(json!("Somerville")),
    );
    push(
        "text",
        same(json!("Wrote\nthe first program")),
        same(json!("Notes\non the engine")),
    );
    push(
        "phone",
        same(json!("+44 20 7946 0000")),
        same(json!("+44 20 7946 0999")),
    );
    push("double", same(json!(42.5)), same(json!(-7.25)));
    push(
        "monetary",
        same(json!({"value": 1234.5, "currency": "EUR"})),
        same(json!({"value": 99, "currency": "GBP"})),
    );
    push("date", same(json!("1815-12-10")), same(json!("1852-11-27")));
    push(
        "daterange",
        same(json!({"value": "2024-01-01", "until": "2024-01-31"})),
        same(json!({"value": "2025-03-01", "until": "2025-03-02"})),
    );
    push(
        "time",
        (json!("09:30"), json!({"value": "09:30:00"})),
        same(json!({"value": "14:00:00", "timezone_id": 318, "timezone_name": "Europe/London"})),
    );
    push(
        "timerange",
        same(json!({"value": "09:00:00", "until": "17:00:00"})),
        same(
            json!({"value": "08:00:00", "until": "12:00:00", "timezone_id": 318, "timezone_name": "Europe/London"}),
        ),
    );
    push("enum", same(json!(enum_opts[0])), same(json!(enum_opts[1])));
    push(
        "set",
        (
            json!([set_opts[1], set_opts[0]]),
            json!([set_opts[0], set_opts[1]]),
        ),
        same(json!([set_opts[1]])),
    );
    push(
        "address",
        (
            json!("1 Main St, London"),
            json!({"value": "1 Main St, London"}),
        ),
        (
            json!({"value": "12 St James's Square", "route": "St James's Square", "country": "UK"}),
            json!({"value": "12 St James's Square", "route": "St James's Square", "country": "UK"}),
        ),
    );
    push("user", same(json!(1)), same(json!(2)));
    push("org", same(json!(7)), same(json!(8)));
    push("people", same(json!(14)), same(json!(15)));
    out
}

/// Numbers compare by value (the app renders 1 as 1.0).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

#[tokio::test]
async fn every_api_v2_custom_field_type_round_trips_between_the_app_and_pipedrive() {
    let app = spawn_app_with(
        pipedrive_sim::SimConfig {
            time_scale: 0.001,
            faults: pipedrive_sim::FaultSpec::parse("webhooks:drop=1").unwrap(),
            ..pipedrive_sim::SimConfig::default()
        },
        |_| {},
    )
    .await;
    let id = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let mut keys = Vec::new();
    let mut enum_opts = Vec::new();
    let mut set_opts = Vec::new();
    for (field_type, _, _, _, _) in every_type(&[0, 0], &[0, 0]) {
        let options: &[&str] = if matches!(field_type, "enum" | "set") {
            &["One", "Two"]
        } else {
            &[]
        };
        let key = sim
            .add_person_field(&format!("Custom {field_type}"), field_type, options)
            .unwrap();
        if !options.is_empty() {
            let field = sim
                .person_fields()
                .into_iter()
                .find(|f| f["field_code"] == key.as_str())
                .unwrap();
            let ids: Vec<i64> = field["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_i64().unwrap())
                .collect();
            if field_type == "enum" {
                enum_opts = ids;
            } else {
                set_opts = ids;
            }
        }
        let saved = put_mapping(
            &app,
            id,
            json!({ "local_field": format!("cf_{field_type}"), "remote_field": key }),
        )
        .await;
        assert_eq!(saved.status(), StatusCode::OK, "{field_type}");
        keys.push(key);
    }
    let cases = every_type(&enum_opts, &set_opts);

    // App → Pipedrive: every value reaches its field in the documented API v2 shape.
    let written: serde_json::Map<String, Value> = cases
        .iter()
        .map(|(t, app_in, _, _, _)| (format!("cf_{t}"), app_in.clone()))
        .collect();
    let (contact, person) = pushed_contact(&app, "types@example.com", Value::Object(written)).await;
    let status = admin::connection_status(&app.engine, id.into())
        .await
        .unwrap();
    assert_eq!(status.dead, 0, "Pipedrive accepted every value");
    let held = sim.person(person).unwrap();
    for ((t, _, in_pipedrive, _, _), key) in cases.iter().zip(&keys) {
        assert!(
            same_json(&held["custom_fields"][key], in_pipedrive),
            "{t}: Pipedrive holds {} instead of {in_pipedrive}",
            held["custom_fields"][key]
        );
    }

    // Pipedrive → app: a user's edit of every field reaches the contact.
    sim.advance_clock(std::time::Duration::from_secs(5));
    let edit: serde_json::Map<String, Value> = cases
        .iter()
        .zip(&keys)
        .map(|((_, _, _, pd_in, _), key)| (key.clone(), pd_in.clone()))
        .collect();
    sim.update_person_as_user(person, json!({ "custom_fields": edit }))
        .unwrap();
    let conn = tandem_engine::sync::connections::load(&app.engine, id.into())
        .await
        .unwrap();
    tandem_engine::sync::inbound::poller::poll_once(&app.engine, &conn)
        .await
        .unwrap();
    app.drive().await;
    let seen = contact_json(&app, &contact).await;
    for (t, _, _, _, app_out) in &cases {
        assert!(
            same_json(&seen["fields"][format!("cf_{t}")], app_out),
            "{t}: the app reads {} instead of {app_out}",
            seen["fields"][format!("cf_{t}")]
        );
    }
    assert_eq!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .dead,
        0
    );
}

#[tokio::test]
async fn a_contact_created_without_a_name_is_created_in_pipedrive_under_its_email() {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    let created = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&json!({ "email": "noname@example.com", "fields": { "name": "  " } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let contact: Value = created.json().await.unwrap();
    app.api(Method::POST, "/api/v1/lists/pipedrive_contacts/members")
        .json(&json!({ "contact_id": contact["id"] }))
        .send()
        .await
        .unwrap();
    app.drive().await;

    let persons = app.sim.handle().persons_by_email("noname@example.com");
    assert_eq!(persons.len(), 1);
    assert_eq!(persons[0]["name"], "noname@example.com");
    assert_eq!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .dead,
        0
    );
}
