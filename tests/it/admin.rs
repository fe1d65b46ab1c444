//! The admin API and console: authentication, CSRF, field mapping with type checks, creating
//! fields, dead letters, sync-log filters, actions.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_engine::sync::{app::local, connections, connections::admin, synclog};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::{pid, spawn_app, TestApp};

fn text(key: &str, value: &str) -> (tandem_core::FieldKey, tandem_core::FieldValue) {
    (
        tandem_core::FieldKey::new(key).unwrap(),
        tandem_core::FieldValue::text(value),
    )
}

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

#[tokio::test]
async fn the_admin_api_refuses_requests_without_the_admin_token_with_a_precise_error() {
    let app = spawn_app().await;
    let none = app.get("/admin/api/connections").await;
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
    assert!(body["detail"].as_str().unwrap().contains("Bearer"));

    let wrong = app
        .http
        .get(format!("{}/admin/api/connections", app.base_url))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let page = app.get("/admin").await;
    assert!(
        page.url().path().ends_with("/admin/login"),
        "the console asks to log in"
    );
}

/// A client that shows redirects instead of following them (the console answers 303s).
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in to the console with the admin token.
async fn log_in(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    client
        .post(format!("{}/admin/login", app.base_url))
        .form(&[("token", "test-admin-token")])
        .send()
        .await
        .unwrap()
}

/// The CSRF token a console page's forms carry.
fn csrf_in(html: &str) -> String {
    html.split("name=csrf value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_console_login_sets_a_strict_http_only_cookie_and_a_form_without_its_csrf_token_is_refused(
) {
    let app = spawn_app().await;
    let id = app.connect_pipedrive().await;
    let client = no_redirects();
    let login = log_in(&app, &client).await;
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    let home = client
        .get(format!("{}/admin", app.base_url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("data-state=\"connected\">Connected<"),
        "{home}"
    );
    let csrf = csrf_in(&home);

    let forged = client
        .post(format!("{}/admin/connections/{id}/pause", app.base_url))
        .header("cookie", &session)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.text().await.unwrap().contains("csrf_failed"));
    assert!(
        !admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .paused
    );

    let paused = client
        .post(format!("{}/admin/connections/{id}/pause", app.base_url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), StatusCode::SEE_OTHER);
    assert!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .paused
    );

    let bad_login = client
        .post(format!("{}/admin/login", app.base_url))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_login.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn after_logging_out_a_replayed_session_cookie_is_refused() {
    let app = spawn_app().await;
    let client = no_redirects();
    let login = log_in(&app, &client).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    let home = |session: String| {
        let client = client.clone();
        let url = format!("{}/admin", app.base_url);
        async move {
            client
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .unwrap()
        }
    };
    let page = home(session.clone()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_in(&page.text().await.unwrap());

    let logout = client
        .post(format!("{}/admin/logout", app.base_url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert!(logout.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));

    // The browser dropped the cookie; a copy of it is refused too.
    let replayed = home(session.clone()).await;
    assert_eq!(replayed.status(), StatusCode::SEE_OTHER);
    assert_eq!(replayed.headers()["location"], "/admin/login");
    let api = client
        .get(format!("{}/admin/api/connections", app.base_url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_mapping_to_a_field_of_an_incompatible_type_is_refused_and_a_compatible_one_is_used() {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    let id = app.connect_and_sync().await;
    local::create_contact(
        &app.engine,
        fields([
            name("Ada"),
            email("ada@example.com"),
            text("utm_source", "newsletter"),
        ]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let lead_source = sim
        .add_person_field("Lead source", "enum", &["Web", "Event"])
        .unwrap();
    let campaign = sim.add_person_field("Campaign", "varchar", &[]).unwrap();

    let refused = put_mapping(
        &app,
        id,
        json!({ "local_field": "utm_source", "remote_field": lead_source, "direction": "outbound" }),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["fields"][0]["field"], "remote_field");
    let message = body["fields"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("text") && message.contains("enum") && message.contains("Lead source"),
        "{message}"
    );

    let bad_direction = put_mapping(
        &app,
        id,
        json!({ "local_field": "utm_source", "remote_field": campaign, "direction": "sideways" }),
    )
    .await;
    assert_eq!(bad_direction.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let saved = put_mapping(
        &app,
        id,
        json!({ "local_field": "utm_source", "remote_field": campaign, "direction": "outbound", "owner": "local" }),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::OK);
    let lists: Value = app
        .admin(Method::GET, &format!("/admin/api/connections/{id}/fields"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lists["mappings"][0]["local_field"], "utm_source");
    assert!(lists["remote"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == campaign.as_str()));
    assert!(lists["local"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["key"] == "utm_source" && f["kind"] == "text"));

    // The mapping is used: a resync of the contact writes the field.
    let contact = tandem_engine::sync::app::contacts::ids_by_email(
        app.store.db(),
        &tandem_core::TenantId::default(),
        "ada@example.com",
    )
    .await
    .unwrap()[0];
    let resync = app
        .admin(Method::POST, &format!("/admin/api/connections/{id}/resync"))
        .json(&json!({ "contact_id": contact }))
        .send()
        .await
        .unwrap();
    assert_eq!(resync.status(), StatusCode::OK);
    app.drive().await;
    let person = &sim.persons_by_email("ada@example.com")[0];
    assert_eq!(person["custom_fields"][&campaign], "newsletter");
}

#[tokio::test]
async fn creating_a_field_in_pipedrive_without_admin_rights_says_an_admin_is_needed() {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let id = app.connection_id().await;
    let created = app
        .admin(
            Method::POST,
            &format!("/admin/api/connections/{id}/remote-fields"),
        )
        .json(&json!({ "name": "UTM source", "field_type": "varchar" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert!(app.sim.handle().person_field_key("UTM source").is_some());

    app.sim
        .handle()
        .set_scopes(&["base", "contacts:full", "search:read", "users:read"]);
    let refused = app
        .admin(
            Method::POST,
            &format!("/admin/api/connections/{id}/remote-fields"),
        )
        .json(&json!({ "name": "UTM medium" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "pipedrive_admin_required");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("admin") && detail.contains("Scope and URL mismatch"),
        "{detail}"
    );
    assert_eq!(
        app.log_entries("field_create_refused").await[0].status,
        Some(403)
    );
}

#[tokio::test]
async fn dead_letters_are_listed_retried_and_discarded_with_a_reason_in_the_sync_log() {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    let id = app.connect_and_sync().await;
    let score = sim.add_person_field("Score", "double", &[]).unwrap();
    // No contact has a `score` yet, so the type cannot be checked: the write is rejected later.
    assert_eq!(
        put_mapping(
            &app,
            id,
            json!({ "local_field": "score", "remote_field": score })
        )
        .await
        .status(),
        StatusCode::OK
    );
    let created = local::create_contact(
        &app.engine,
        fields([
            name("Bad Score"),
            email("bad@example.com"),
            text("score", "not a number"),
        ]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;

    let letters: Value = app
        .admin(
            Method::GET,
            &format!("/admin/api/connections/{id}/dead-letters"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["contact_id"], created.contact_id.to_string());
    assert_eq!(letters[0]["last_status"], 400);
    assert!(letters[0]["remote_error"]
        .as_str()
        .unwrap()
        .contains("Validation failed"));
    let job = letters[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .dead,
        1
    );

    let retried = app
        .admin(
            Method::POST,
            &format!("/admin/api/connections/{id}/dead-letters/{job}/retry"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(retried.json::<Value>().await.unwrap()["retried"], 1);
    app.drive().await;
    assert_eq!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .dead,
        1,
        "still rejected"
    );

    let no_reason = app
        .admin(
            Method::POST,
            &format!("/admin/api/connections/{id}/dead-letters/{job}/discard"),
        )
        .json(&json!({ "reason": " " }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_reason.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let discarded = app
        .admin(
            Method::POST,
            &format!("/admin/api/connections/{id}/dead-letters/{job}/discard"),
        )
        .json(&json!({ "reason": "test data, not a real lead" }))
        .send()
        .await
        .unwrap();
    assert_eq!(discarded.status(), StatusCode::OK);
    assert_eq!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .dead,
        0
    );
    let entry = &app.log_entries("dead_letter_discarded").await[0];
    assert!(entry.message.contains("test data, not a real lead"));
    assert_eq!(entry.contact_id, Some(created.contact_id));

    let unknown = app
        .admin(
            Method::POST,
            &format!("/admin/api/connections/{id}/dead-letters/{job}/retry"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sync_log_filters_by_contact_person_and_kind_and_refuses_a_bad_filter() {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    let now = chrono::Utc::now();
    let contact = uuid::Uuid::now_v7();
    for (kind, person) in [("dead_letter", 7), ("write_retried", 7), ("dead_letter", 8)] {
        synclog::record(
            app.store.db(),
            synclog::Entry::new(
                synclog::Level::Error,
                synclog::Direction::Outbound,
                kind,
                "x",
            )
            .connection(id.into())
            .contact(contact.into())
            .person(pid(person))
            .status(Some(400)),
            now,
        )
        .await
        .unwrap();
    }
    let get = |query: String| {
        let app = &app;
        async move {
            app.admin(Method::GET, &format!("/admin/api/sync-log?{query}"))
                .send()
                .await
                .unwrap()
        }
    };
    let by_kind: Value = get("kind=dead_letter".into()).await.json().await.unwrap();
    assert_eq!(by_kind.as_array().unwrap().len(), 2);
    let by_person: Value = get("person_id=7".into()).await.json().await.unwrap();
    assert_eq!(by_person.as_array().unwrap().len(), 2);
    let both: Value = get(format!("contact_id={contact}&person_id=8&kind=dead_letter"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(both.as_array().unwrap().len(), 1);
    assert_eq!(both[0]["status"], 400);
    let bad = get("contact_id=nope".into()).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["fields"][0]["field"],
        "contact_id"
    );
}

#[tokio::test]
async fn sync_log_entries_older_than_the_retention_are_pruned() {
    let app = spawn_app().await;
    let now = chrono::Utc::now();
    for age in [40, 1] {
        synclog::record(
            app.store.db(),
            synclog::Entry::new(
                synclog::Level::Info,
                synclog::Direction::Connection,
                "resync",
                "x",
            ),
            now - chrono::Duration::days(age),
        )
        .await
        .unwrap();
    }
    let pruned = synclog::prune(app.store.db(), 30, now).await.unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(app.log_entries("resync").await.len(), 1);
}

#[tokio::test]
async fn pause_stops_writes_and_resume_sends_them() {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    let pause = app
        .admin(Method::POST, &format!("/admin/api/connections/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(pause.status(), StatusCode::OK);
    local::create_contact(
        &app.engine,
        fields([name("Paused"), email("p@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    assert!(app
        .sim
        .handle()
        .persons_by_email("p@example.com")
        .is_empty());
    assert_eq!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .pending,
        1
    );

    app.admin(Method::POST, &format!("/admin/api/connections/{id}/resume"))
        .send()
        .await
        .unwrap();
    app.drive().await;
    assert_eq!(app.sim.handle().persons_by_email("p@example.com").len(), 1);
}

#[tokio::test]
async fn run_initial_sync_pulls_persons_created_before_the_connection() {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    app.sim.handle().seed_persons(5);
    let answer = app
        .admin(
            Method::POST,
            &format!("/admin/api/connections/{id}/initial-sync"),
        )
        .json(&json!({ "wait": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["progress"]["done"], 5);
    assert_eq!(
        connections::load(&app.engine, id.into())
            .await
            .unwrap()
            .state,
        connections::state::CONNECTED
    );
    assert_eq!(
        admin::connection_status(&app.engine, id.into())
            .await
            .unwrap()
            .linked_persons,
        5
    );
}

#[tokio::test]
async fn the_console_offers_pipedrives_email_and_phone_fields_for_mapping_and_maps_them() {
    let app = spawn_app().await;
    let id = app.connect_pipedrive().await;
    let lists: Value = app
        .admin(Method::GET, &format!("/admin/api/connections/{id}/fields"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for code in ["email", "phone"] {
        let field = lists["remote"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["key"] == code)
            .unwrap_or_else(|| panic!("Pipedrive lists `{code}`: {lists}"));
        assert_eq!(field["mappable"], true, "{field}");
    }

    let client = no_redirects();
    let login = log_in(&app, &client).await;
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = client
        .get(format!("{}/admin/fields?connection={id}", app.base_url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let select = page
        .split("<select name=remote_field")
        .nth(1)
        .and_then(|s| s.split("</select>").next())
        .unwrap();
    assert!(select.contains("<option value=\"email\">"), "{select}");
    assert!(select.contains("<option value=\"phone\">"), "{select}");

    for (local, remote) in [("email", "email"), ("phone", "phone")] {
        let saved = put_mapping(
            &app,
            id,
            json!({ "local_field": local, "remote_field": remote, "direction": "outbound" }),
        )
        .await;
        assert_eq!(saved.status(), StatusCode::OK, "{local} → {remote}");
    }
    let conn = connections::load(&app.engine, id.into()).await.unwrap();
    let email = conn
        .map
        .get(&tandem_core::FieldKey::new("email").unwrap())
        .unwrap();
    assert_eq!(email.remote, tandem_engine::crm::RemoteField::Emails);
    assert_eq!(email.rule.direction, tandem_core::Direction::Outbound);
}
