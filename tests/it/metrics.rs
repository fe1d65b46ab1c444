//! What operators look at: `/metrics` (names, types, labels, values that move, its
//! protection), the minute series behind the console's charts (written, pruned), and the
//! console's overview, chart and contact pages.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tandem_engine::meter::writer;
use tandem_engine::store::metrics::read_series;
use tandem_engine::sync::app::local;
use tandem_tests::fields::{email, fields, name};
use tandem_tests::{spawn_app_with, test_settings, TestApp, TestDatabase};

const TOKEN: &str = "metrics-token-0123456789";

/// `<script>` as askama escapes it: shown as text, never run.
const ESCAPED: &str = "&#60;script&#62;";

async fn app_with_metrics() -> TestApp {
    spawn_app_with(
        pipedrive_sim::SimConfig {
            time_scale: 0.001,
            persons: 3,
            ..pipedrive_sim::SimConfig::default()
        },
        |s| s.metrics.token = tandem_engine::config::Redacted::new(TOKEN.to_owned()),
    )
    .await
}

async fn scrape(app: &TestApp) -> String {
    let response = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn without_a_token_or_an_address_there_is_no_metrics_endpoint() {
    let app = spawn_app_with(pipedrive_sim::SimConfig::default(), |_| {}).await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_metrics_endpoint_on_the_main_port_wants_the_bearer_token() {
    let app = app_with_metrics().await;
    let url = format!("{}/metrics", app.base_url);
    let none = app.http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let wrong = app
        .http
        .get(&url)
        .bearer_auth("metrics-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let text = scrape(&app).await;
    assert!(text.contains("# TYPE tandem_up gauge"), "{text}");
}

#[tokio::test]
async fn wrong_metrics_tokens_lock_that_address_out_but_not_the_real_scraper() {
    let app = app_with_metrics().await;
    let url = format!("{}/metrics", app.base_url);
    let guesser = super::security::client_from([127, 0, 0, 5]);
    let scraper = super::security::client_from([127, 0, 0, 6]);
    let mut statuses = Vec::new();
    for i in 0..12 {
        let status = guesser
            .get(&url)
            .bearer_auth(format!("metrics-guess-{i:02}-0000000"))
            .send()
            .await
            .unwrap()
            .status();
        statuses.push(status);
    }
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[5..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let locked = guesser.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(!app.log_entries("auth_throttled").await.is_empty());
    let own = scraper.get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_separate_listener_serves_metrics_and_the_main_port_does_not() {
    let database = TestDatabase::create().await.unwrap();
    let mut settings = test_settings(&database);
    settings.metrics.addr = "127.0.0.1:0".to_owned();
    let app = tandem_engine::app::Application::build(settings)
        .await
        .unwrap();
    let (main, metrics) = (app.port(), app.metrics_port().expect("a metrics listener"));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(app.run_until_stopped(shutdown));
    let http = tandem_engine::crm::http::client(std::time::Duration::from_secs(10));
    let own = http
        .get(format!("http://127.0.0.1:{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    assert!(own.text().await.unwrap().contains("tandem_up 1"));
    let other = http
        .get(format!("http://127.0.0.1:{main}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_have_names_types_and_bounded_labels_and_move_when_work_happens() {
    let app = app_with_metrics().await;
    let connection = app.connect_and_sync().await;
    let conn = format!("connection_id=\"{connection}\"");
    let before = scrape(&app).await;

    // A contact pushed to Pipedrive: a create, measured end to end.
    let created = local::create_contact(
        &app.engine,
        fields([name("Grace Hopper"), email("grace@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    // An edit in Pipedrive, received by webhook.
    let person = app.sim.handle().persons()[0]["id"].as_i64().unwrap();
    app.sim
        .handle()
        .update_person_as_user(person, json!({ "name": "Changed In Pipedrive" }))
        .unwrap();
    // Two person webhooks: the echo of the create, then the edit.
    app.await_person_webhooks(2).await;
    let after = scrape(&app).await;

    for (name, kind) in [
        ("tandem_crm_requests_total", "counter"),
        ("tandem_webhook_events_total", "counter"),
        ("tandem_propagation_latency_seconds", "histogram"),
        ("tandem_crm_request_duration_seconds", "histogram"),
        ("tandem_crm_rate_limit_wait_seconds", "histogram"),
        ("tandem_outbox_jobs", "gauge"),
        ("tandem_inbox_events", "gauge"),
        ("tandem_dead_letters", "gauge"),
        ("tandem_crm_daily_budget_remaining_tokens", "gauge"),
    ] {
        assert!(
            after.contains(&format!("# TYPE {name} {kind}")),
            "{name} {kind}:\n{after}"
        );
    }
    let creates = [
        conn.as_str(),
        "crm=\"pipedrive\"",
        "operation=\"CreatePerson\"",
        "outcome=\"2xx\"",
    ];
    assert_eq!(
        sample(&after, "tandem_crm_requests_total", &creates)
            - sample(&before, "tandem_crm_requests_total", &creates),
        1.0
    );
    let accepted = [
        conn.as_str(),
        "source=\"pipedrive\"",
        "outcome=\"accepted\"",
    ];
    assert!(
        sample(&after, "tandem_webhook_events_total", &accepted)
            > sample(&before, "tandem_webhook_events_total", &accepted)
    );
    for direction in ["app_to_crm", "crm_to_app"] {
        let labels = [conn.as_str(), &format!("direction=\"{direction}\"")];
        assert!(
            sample(&after, "tandem_propagation_latency_seconds_count", &labels) >= 1.0,
            "{direction}:\n{after}"
        );
    }
    assert_eq!(sample(&after, "tandem_outbox_jobs", &[conn.as_str()]), 0.0);
    // Bounded labels: no contact or person id anywhere.
    assert!(!after.contains(&created.contact_id.to_string()));
    assert!(!after.contains("person_id=") && !after.contains("contact_id="));
}

#[tokio::test]
async fn the_minute_series_are_written_from_memory_and_pruned_after_the_retention() {
    let app = app_with_metrics().await;
    let connection = app.connect_and_sync().await;
    local::create_contact(
        &app.engine,
        fields([name("Ada Lovelace"), email("ada@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let now = Utc::now();
    let flushed = writer::flush(&app.engine, now + Duration::minutes(1), false)
        .await
        .unwrap();
    assert!(flushed.written > 0);
    let db = app.store.db();
    let points = read_series(db, connection.into(), now - Duration::hours(1))
        .await
        .unwrap();
    let of = |series: &str| {
        points
            .iter()
            .filter(|p| p.series == series)
            .collect::<Vec<_>>()
    };
    assert!(
        of("writes_2xx").iter().map(|p| p.count).sum::<i64>() >= 1,
        "{points:?}"
    );
    assert!(of("latency_app_to_crm")
        .iter()
        .any(|p| p.p50.is_some() && p.p95.is_some()));
    assert_eq!(of("outbox_depth").len(), 1);

    // A second flush in the same minute adds to the rows instead of failing.
    writer::flush(&app.engine, now + Duration::minutes(1), false)
        .await
        .unwrap();
    let again = read_series(db, connection.into(), now - Duration::hours(1))
        .await
        .unwrap();
    let depth = again.iter().find(|p| p.series == "outbox_depth").unwrap();
    assert_eq!(depth.count, 2);

    let retention = i64::from(app.settings.metrics.retention_days);
    let later = now + Duration::days(retention) + Duration::hours(1);
    let flushed = writer::flush(&app.engine, later, false).await.unwrap();
    assert!(flushed.pruned >= points.len() as u64, "{flushed:?}");
    assert!(read_series(db, connection.into(), now - Duration::hours(1))
        .await
        .unwrap()
        .iter()
        .all(|p| p.minute > now + Duration::days(1)));
}

#[tokio::test]
async fn the_overview_charts_and_contact_pages_render_and_escape_what_came_from_outside() {
    let app = app_with_metrics().await;
    let connection = app.connect_and_sync().await;
    let created = local::create_contact(
        &app.engine,
        fields([name("<script>alert(1)</script>"), email("xss@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    writer::flush(&app.engine, Utc::now() + Duration::minutes(1), false)
        .await
        .unwrap();
    let page = |path: String| {
        let request = app.admin(Method::GET, &path);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers().clone();
            assert!(headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"));
            assert_eq!(headers["x-content-type-options"], "nosniff");
            response.text().await.unwrap()
        }
    };
    let overview = page("/admin/overview?sort=pending&dir=desc".into()).await;
    assert!(overview.contains(&connection.to_string()), "{overview}");
    assert!(overview.contains("1 connection(s)"));
    let filtered = page("/admin/overview?q=nothing-like-this".into()).await;
    assert!(filtered.contains("No connection matches."));

    let charts = page(format!("/admin/connections/{connection}/charts")).await;
    assert!(
        charts.contains("<svg") && charts.contains("<polyline"),
        "{charts}"
    );
    assert!(charts.contains("CRM writes per minute"));
    let day = page(format!("/admin/connections/{connection}/charts?range=day")).await;
    assert!(day.contains("10-minute steps"));

    for query in ["script", "xss@example", &created.contact_id.to_string()] {
        let found = page(format!("/admin/contacts?q={query}")).await;
        assert!(
            found.contains(&created.contact_id.to_string()),
            "{query}: {found}"
        );
        assert!(found.contains(ESCAPED), "{found}");
        assert!(!found.contains("<script>"));
    }
    let contact = page(format!("/admin/contacts/{}", created.contact_id)).await;
    assert!(contact.contains(ESCAPED) && !contact.contains("<script>"));
    assert!(contact.contains("Resync this contact"));
    assert!(contact.contains("xss@example.com"));
    let person = app.sim.handle().persons_by_email("xss@example.com")[0]["id"]
        .as_i64()
        .unwrap();
    let by_person = page(format!("/admin/contacts?q={person}")).await;
    assert!(by_person.contains(&created.contact_id.to_string()));
}

/// A stand-in OpenTelemetry collector: keeps the bodies POSTed to `/v1/traces`.
async fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::post;
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = std::sync::Arc::clone(&bodies);
    let router = axum::Router::new().route(
        "/v1/traces",
        post(move |body: String| {
            let kept = std::sync::Arc::clone(&kept);
            async move {
                kept.lock().unwrap().push(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, bodies)
}

#[tokio::test]
async fn traces_reach_an_otlp_collector_with_a_span_per_applied_event_and_no_personal_data() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let (url, bodies) = collector().await;
    let provider = tandem_engine::telemetry::otlp_provider(&url, "tandem-test").unwrap();
    // The same filter as `tandem serve` (sea-orm's statement spans, which hold values, off).
    let subscriber = tracing_subscriber::registry().with(
        tandem_engine::telemetry::otlp_layer(&provider)
            .with_filter(tandem_engine::telemetry::env_filter("debug")),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app_with(
        pipedrive_sim::SimConfig {
            persons: 1,
            ..pipedrive_sim::SimConfig::default()
        },
        |_| {},
    )
    .await;
    app.connect_and_sync().await;
    app.drive().await;
    let sim = app.sim.handle();
    let person = sim.persons()[0].clone();
    sim.update_person_as_user(
        person["id"].as_i64().unwrap(),
        json!({ "name": "Traced Person" }),
    )
    .unwrap();
    app.await_person_webhooks(1).await;

    let flushed = tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .unwrap();
    assert!(flushed.is_ok(), "{flushed:?}");
    let all = bodies.lock().unwrap().join("\n");
    assert!(
        all.contains("\"tandem-test\""),
        "the service name: {all:.300}"
    );
    assert!(all.contains("apply_event"), "one span per applied event");
    assert!(all.contains("event_id"), "spans carry ids");
    let address = person["emails"][0]["value"].as_str().unwrap();
    assert!(!all.contains(address), "no e-mail address in any span");
    assert!(!all.contains("Traced Person"), "no name in any span");
}

#[tokio::test]
async fn the_mirror_progress_is_a_gauge_per_stream_that_reaches_every_row() {
    use tandem_engine::sync::mirror as live_mirror;
    let app = app_with_metrics().await;
    app.sim
        .handle()
        .seed_objects(tandem_tests::mirror::small_company());
    let connection = app.connect_pipedrive().await;
    let conn = format!("connection_id=\"{connection}\"");
    let off = scrape(&app).await;
    assert!(
        !off.contains("tandem_mirror_rows{"),
        "no mirror, no gauge:\n{off}"
    );

    live_mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    let started = scrape(&app).await;
    assert_eq!(
        sample(&started, "tandem_mirror_enabled", &[conn.as_str()]),
        1.0
    );
    assert_eq!(
        sample(&started, "tandem_mirror_streams_done", &[conn.as_str()]),
        0.0
    );
    live_mirror::drive_mirror_until_idle(&app.engine)
        .await
        .unwrap();
    let done = scrape(&app).await;

    assert!(done.contains("# TYPE tandem_mirror_rows gauge"), "{done}");
    let total = sample(&done, "tandem_mirror_streams", &[conn.as_str()]);
    assert!(total > 10.0, "{done}");
    assert_eq!(
        sample(&done, "tandem_mirror_streams_done", &[conn.as_str()]),
        total
    );
    let deals = [conn.as_str(), "crm=\"pipedrive\"", "stream=\"deals\""];
    assert_eq!(sample(&done, "tandem_mirror_rows", &deals), 1_200.0);
}
