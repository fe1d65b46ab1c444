//! The Pipedrive mirror (issue 20): extraction of every stream into tables, custom-field
//! columns, resumed and incremental runs, live webhooks, `--verify`, and a Postgres target.

use std::time::Duration;

use serde_json::json;
use tandem_engine::mirror::{self, live, ExtractOptions, Replication};
use tandem_engine::store::mirror::{set_mirror_enabled, MirrorDb};
use tandem_tests::mirror::{
    extract_all, live_rows, number, report, small_company, source, table, texts,
};
use tandem_tests::{spawn_app, spawn_app_with, TestApp};
use uuid::Uuid;

async fn seeded() -> (TestApp, Uuid) {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    sim.seed_persons(700);
    sim.seed_objects(small_company());
    let connection = app.connect_pipedrive().await;
    (app, connection)
}

async fn patch(app: &TestApp, path: &str, body: serde_json::Value) {
    let response = app
        .http
        .patch(format!("{}{path}", app.sim.base_url()))
        .header("x-api-token", app.sim.handle().config().api_token.clone())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

#[tokio::test]
async fn a_full_extraction_fills_every_stream_with_the_simulators_rows_and_associations() {
    let (app, connection) = seeded().await;
    let source = source(&app, connection).await;
    let db = MirrorDb::in_store(&app.store);

    let reports = extract_all(&source, &db, ExtractOptions::default()).await;

    assert!(reports.iter().all(|r| r.complete));
    for (stream, count) in app.sim.handle().counts() {
        let rows = live_rows(&db, stream).await;
        if stream == "leads" {
            // Archived leads are not listed by Pipedrive.
            assert!(rows > 0 && rows <= count as i64, "rows of leads: {rows}");
        } else {
            assert_eq!(rows, count as i64, "rows of {stream}");
        }
    }
    // 1,200 deals are three pages of 500.
    assert_eq!(report(&reports, "deals").pages, 3);
    for stream in [
        "pipelines",
        "stages",
        "users",
        "activity_types",
        "lead_labels",
        "currencies",
        "filters",
        "deal_fields",
        "person_fields",
        "organization_fields",
    ] {
        assert!(live_rows(&db, stream).await > 0, "{stream} is empty");
    }
    // Associations join: deals to persons and organizations, activities to deals, notes to
    // their objects, stages to pipelines.
    let deals = table(&db, "deals");
    let persons = table(&db, "persons");
    let orgs = table(&db, "organizations");
    let linked = number(
        &db,
        &format!("SELECT COUNT(*) FROM {deals} d JOIN {persons} p ON p.id = d.person_id"),
    )
    .await;
    assert!(linked > 0);
    let with_person = number(
        &db,
        &format!("SELECT COUNT(*) FROM {deals} WHERE person_id IS NOT NULL"),
    )
    .await;
    assert_eq!(linked, with_person, "every deal's person is mirrored");
    let with_org = number(
        &db,
        &format!("SELECT COUNT(*) FROM {deals} d JOIN {orgs} o ON o.id = d.org_id"),
    )
    .await;
    assert!(with_org > 0);
    let activities_on_deals = number(
        &db,
        &format!(
            "SELECT COUNT(*) FROM {} a JOIN {deals} d ON d.id = a.deal_id",
            table(&db, "activities")
        ),
    )
    .await;
    assert!(activities_on_deals > 0);
    let stages_in_pipelines = number(
        &db,
        &format!(
            "SELECT COUNT(*) FROM {} s JOIN {} p ON p.id = s.pipeline_id",
            table(&db, "stages"),
            table(&db, "pipelines")
        ),
    )
    .await;
    assert_eq!(stages_in_pipelines, live_rows(&db, "stages").await);
    // The raw JSON of every record is kept.
    let raw = texts(&db, &format!("SELECT _raw FROM {deals} LIMIT 1")).await;
    let raw: serde_json::Value = serde_json::from_str(raw[0].as_deref().unwrap()).unwrap();
    assert!(raw.get("custom_fields").is_some());
}

#[tokio::test]
async fn custom_fields_become_columns_named_after_the_field_with_the_key_in_the_field_map() {
    let (app, connection) = seeded().await;
    let key = app.sim.handle().person_field_key("Lead source").unwrap();
    let source = source(&app, connection).await;
    let db = MirrorDb::in_store(&app.store);

    extract_all(&source, &db, ExtractOptions::default()).await;

    let columns = db.columns(&db.table("persons")).await.unwrap();
    assert!(columns.contains_key("lead_source"), "{columns:?}");
    assert!(
        !columns.keys().any(|c| c.len() == 40),
        "no hash-named column"
    );
    let mapped = texts(
        &db,
        &format!(
            "SELECT column_name FROM pipedrive__field_map WHERE stream = 'persons' \
             AND field_key = '{key}'"
        ),
    )
    .await;
    assert_eq!(mapped, vec![Some("lead_source".to_owned())]);
    // Deals have custom fields of every type, each in its column.
    let deal_columns = db.columns(&db.table("deals")).await.unwrap();
    let custom = number(
        &db,
        "SELECT COUNT(*) FROM pipedrive__field_map WHERE stream = 'deals'",
    )
    .await;
    assert!(custom >= 10, "{custom} deal custom fields");
    for column in texts(
        &db,
        "SELECT column_name FROM pipedrive__field_map WHERE stream = 'deals'",
    )
    .await
    {
        assert!(deal_columns.contains_key(column.as_deref().unwrap()));
    }
}

#[tokio::test]
async fn an_interrupted_extraction_resumes_without_duplicates_and_ends_with_the_same_tables() {
    let (app, connection) = seeded().await;
    let source = source(&app, connection).await;
    let db = MirrorDb::in_store(&app.store);

    let first = extract_all(
        &source,
        &db,
        ExtractOptions {
            stop_after_pages: Some(1),
            delete_pass: false,
        },
    )
    .await;
    assert!(!report(&first, "deals").complete);
    assert_eq!(live_rows(&db, "deals").await, 500);

    let second = extract_all(&source, &db, ExtractOptions::default()).await;

    // The deals resume at their second page.
    assert_eq!(report(&second, "deals").pages, 2);
    assert_eq!(live_rows(&db, "deals").await, 1_200);
    let plan = Replication::all(None).streams;
    let checks = mirror::verify(&source, &db, &plan).await.unwrap();
    for check in checks {
        assert!(check.matches(), "{check:?}");
        assert_eq!(check.remote_checksum, check.local_checksum);
    }
}

#[tokio::test]
async fn an_incremental_run_reads_only_what_changed_since_the_last_one() {
    let (app, connection) = seeded().await;
    let source = source(&app, connection).await;
    let db = MirrorDb::in_store(&app.store);
    extract_all(&source, &db, ExtractOptions::default()).await;
    let deal = app.sim.handle().deals()[3]["id"].as_i64().unwrap();
    app.sim.handle().advance_clock(Duration::from_secs(120));
    patch(
        &app,
        &format!("/api/v2/deals/{deal}"),
        json!({"title": "Renewal, second year"}),
    )
    .await;

    let reports = extract_all(&source, &db, ExtractOptions::default()).await;

    let deals = report(&reports, "deals");
    // `updated_since` is inclusive: the last run's newest deals are read again with it.
    assert!(
        (1..10).contains(&deals.records),
        "only the changed deal (and the boundary) is read again: {}",
        deals.records
    );
    let title = texts(
        &db,
        &format!(
            "SELECT title FROM {} WHERE id = {deal}",
            table(&db, "deals")
        ),
    )
    .await;
    assert_eq!(title, vec![Some("Renewal, second year".to_owned())]);
    assert!(report(&reports, "persons").records < 10);
}

#[tokio::test]
async fn a_webhook_change_is_applied_an_older_version_ignored_and_a_delete_marks_the_row() {
    let (app, connection) = seeded().await;
    let source = source(&app, connection).await;
    let db = MirrorDb::in_store(&app.store);
    extract_all(&source, &db, ExtractOptions::default()).await;
    set_mirror_enabled(&app.store, connection.into(), true)
        .await
        .unwrap();
    let deals = table(&db, "deals");
    let raw = texts(
        &db,
        &format!("SELECT _raw FROM {deals} ORDER BY id LIMIT 1"),
    )
    .await;
    let mut deal: serde_json::Value = serde_json::from_str(raw[0].as_deref().unwrap()).unwrap();
    let id = deal["id"].as_i64().unwrap();
    let event = |n: u32, action: &str, data: serde_json::Value| {
        json!({
            "meta": {"id": format!("mirror-{n}"), "entity": "deal", "action": action,
                     "entity_id": id.to_string(), "version": "2.0"},
            "data": data,
        })
    };

    deal["title"] = json!("Bigger deal");
    deal["update_time"] = json!("2099-01-01T10:00:00Z");
    let response = app
        .post_pipedrive_webhook(connection, &event(1, "change", deal.clone()))
        .await;
    assert!(response.status().is_success());
    deal["title"] = json!("An outdated title");
    deal["update_time"] = json!("2099-01-01T09:00:00Z");
    app.post_pipedrive_webhook(connection, &event(2, "change", deal.clone()))
        .await;
    app.drive().await;

    let title = format!("SELECT title FROM {deals} WHERE id = {id}");
    assert_eq!(
        texts(&db, &title).await,
        vec![Some("Bigger deal".to_owned())]
    );

    app.post_pipedrive_webhook(connection, &event(3, "delete", serde_json::Value::Null))
        .await;
    app.drive().await;

    let deleted = texts(
        &db,
        &format!("SELECT deleted_at FROM {deals} WHERE id = {id}"),
    )
    .await;
    assert!(deleted[0].is_some(), "the row is kept, marked deleted");

    // An organization's webhook reaches its table too.
    let org = app.sim.handle().organizations()[0].clone();
    let org_id = org["id"].as_i64().unwrap();
    let mut renamed = org.clone();
    renamed["name"] = json!("Renamed Ltd");
    renamed["update_time"] = json!("2099-01-01T10:00:00Z");
    let body = json!({
        "meta": {"id": "mirror-org", "entity": "organization", "action": "change",
                 "entity_id": org_id.to_string(), "version": "2.0"},
        "data": renamed,
    });
    assert!(app
        .post_pipedrive_webhook(connection, &body)
        .await
        .status()
        .is_success());
    app.drive().await;
    assert_eq!(
        texts(
            &db,
            &format!(
                "SELECT name FROM {} WHERE id = {org_id}",
                table(&db, "organizations")
            )
        )
        .await,
        vec![Some("Renamed Ltd".to_owned())]
    );
}

/// A deal of an extracted mirror (the live mirror on), updated by a change webhook to
/// `2099-01-01T10:00:00Z` when `edit`, then deleted by a delete webhook sent at
/// `2099-01-01T11:00:00.000Z`; returns the deal's last data.
async fn deleted_by_webhook(
    app: &TestApp,
    connection: Uuid,
    db: &MirrorDb,
    edit: bool,
) -> serde_json::Value {
    let source = source(app, connection).await;
    extract_all(&source, db, ExtractOptions::default()).await;
    set_mirror_enabled(&app.store, connection.into(), true)
        .await
        .unwrap();
    let raw = texts(
        db,
        &format!(
            "SELECT _raw FROM {} ORDER BY id LIMIT 1",
            table(db, "deals")
        ),
    )
    .await;
    let mut deal: serde_json::Value = serde_json::from_str(raw[0].as_deref().unwrap()).unwrap();
    if edit {
        deal["title"] = json!("Edited before the delete");
        deal["update_time"] = json!("2099-01-01T10:00:00Z");
        send_deal_change(app, connection, "before-delete", &deal).await;
    }
    let id = deal["id"].as_i64().unwrap();
    let delete = json!({
        "meta": {"id": "the-delete", "entity": "deal", "action": "delete",
                 "entity_id": id.to_string(), "version": "2.0",
                 "timestamp": "2099-01-01T11:00:00.000Z"},
        "data": null,
        "previous": deal,
    });
    assert!(app
        .post_pipedrive_webhook(connection, &delete)
        .await
        .status()
        .is_success());
    app.drive().await;
    assert_eq!(deal_state(db, id).await, None, "the delete marked the row");
    deal
}

async fn send_deal_change(app: &TestApp, connection: Uuid, event: &str, deal: &serde_json::Value) {
    let body = json!({
        "meta": {"id": event, "entity": "deal", "action": "change",
                 "entity_id": deal["id"].as_i64().unwrap().to_string(), "version": "2.0",
                 "timestamp": "2099-01-01T12:00:00.000Z"},
        "data": deal,
    });
    assert!(app
        .post_pipedrive_webhook(connection, &body)
        .await
        .status()
        .is_success());
    app.drive().await;
}

/// The deal's title if its row is live, none if it is marked deleted.
async fn deal_state(db: &MirrorDb, id: i64) -> Option<String> {
    let rows = texts(
        db,
        &format!(
            "SELECT title FROM {} WHERE id = {id} AND deleted_at IS NULL",
            table(db, "deals")
        ),
    )
    .await;
    rows.into_iter().next().flatten()
}

#[tokio::test]
async fn a_duplicated_change_webhook_with_the_same_update_time_after_a_delete_leaves_the_row_deleted(
) {
    let (app, connection) = seeded().await;
    let db = MirrorDb::in_store(&app.store);
    let deal = deleted_by_webhook(&app, connection, &db, true).await;

    // The change's webhook delivered again (a retry) after the delete.
    send_deal_change(&app, connection, "before-delete-again", &deal).await;

    assert_eq!(deal_state(&db, deal["id"].as_i64().unwrap()).await, None);
    let deleted_at = texts(
        &db,
        &format!(
            "SELECT deleted_at FROM {} WHERE id = {}",
            table(&db, "deals"),
            deal["id"]
        ),
    )
    .await;
    let at = chrono::DateTime::parse_from_rfc3339(deleted_at[0].as_deref().unwrap()).unwrap();
    assert_eq!(
        at,
        chrono::DateTime::parse_from_rfc3339("2099-01-01T11:00:00Z").unwrap(),
        "deleted_at is when Pipedrive deleted it (the webhook's meta.timestamp)"
    );
}

#[tokio::test]
async fn a_late_change_webhook_for_an_edit_made_before_the_delete_leaves_the_row_deleted() {
    let (app, connection) = seeded().await;
    let db = MirrorDb::in_store(&app.store);
    let mut deal = deleted_by_webhook(&app, connection, &db, true).await;

    // An edit at 10:30, before the delete at 11:00, whose webhook arrives after the delete's.
    deal["title"] = json!("A later edit, still before the delete");
    deal["update_time"] = json!("2099-01-01T10:30:00Z");
    send_deal_change(&app, connection, "late-edit", &deal).await;

    assert_eq!(deal_state(&db, deal["id"].as_i64().unwrap()).await, None);
}

#[tokio::test]
async fn a_change_webhook_newer_than_the_delete_brings_the_row_back() {
    let (app, connection) = seeded().await;
    let db = MirrorDb::in_store(&app.store);
    let mut deal = deleted_by_webhook(&app, connection, &db, true).await;

    // Restored and edited in Pipedrive after the delete.
    deal["title"] = json!("Restored after the delete");
    deal["update_time"] = json!("2099-01-01T11:00:01Z");
    send_deal_change(&app, connection, "after-delete", &deal).await;

    assert_eq!(
        deal_state(&db, deal["id"].as_i64().unwrap()).await,
        Some("Restored after the delete".to_owned())
    );
}

#[tokio::test]
async fn a_listing_pass_that_lists_a_record_deleted_by_webhook_brings_it_back() {
    let (app, connection) = seeded().await;
    let db = MirrorDb::in_store(&app.store);
    let deal = deleted_by_webhook(&app, connection, &db, false).await;
    let id = deal["id"].as_i64().unwrap();
    let listed = app
        .sim
        .handle()
        .deals()
        .into_iter()
        .find(|d| d["id"] == deal["id"])
        .unwrap();

    // Pipedrive still lists the deal (a restore): a full listing is its current state.
    let source = source(&app, connection).await;
    extract_all(
        &source,
        &db,
        ExtractOptions {
            delete_pass: true,
            ..ExtractOptions::default()
        },
    )
    .await;

    assert_eq!(
        deal_state(&db, id).await,
        listed["title"].as_str().map(str::to_owned)
    );
}

#[tokio::test]
async fn a_create_webhook_delivered_after_the_delete_of_its_record_leaves_no_live_row() {
    let (app, connection) = seeded().await;
    let db = MirrorDb::in_store(&app.store);
    let source = source(&app, connection).await;
    extract_all(&source, &db, ExtractOptions::default()).await;
    set_mirror_enabled(&app.store, connection.into(), true)
        .await
        .unwrap();
    let id = 987_654;
    let delete = json!({
        "meta": {"id": "early-delete", "entity": "deal", "action": "delete",
                 "entity_id": id.to_string(), "version": "2.0",
                 "timestamp": "2099-01-01T11:00:00.000Z"},
        "data": null,
    });
    app.post_pipedrive_webhook(connection, &delete).await;
    app.drive().await;

    let deal = json!({"id": id, "title": "Created, then deleted",
                      "update_time": "2099-01-01T10:59:00Z"});
    send_deal_change(&app, connection, "late-create", &deal).await;

    assert_eq!(deal_state(&db, id).await, None);
    assert_eq!(
        number(
            &db,
            &format!(
                "SELECT COUNT(*) FROM {} WHERE id = {id}",
                table(&db, "deals")
            )
        )
        .await,
        1,
        "a row marked deleted stands for it"
    );
}

#[tokio::test]
async fn webhooks_leave_the_tables_alone_when_the_connection_keeps_no_mirror() {
    let (app, connection) = seeded().await;
    let db = MirrorDb::in_store(&app.store);
    let body = json!({
        "meta": {"id": "no-mirror", "entity": "deal", "action": "change", "entity_id": "1"},
        "data": {"id": 1, "title": "x", "update_time": "2099-01-01T10:00:00Z"},
    });

    app.post_pipedrive_webhook(connection, &body).await;
    app.drive().await;

    let applied = live::apply_for_connection(&app.store, connection.into(), &body.to_string())
        .await
        .unwrap();
    assert_eq!(applied, None);
    let _ = db;
}

#[tokio::test]
async fn verify_lists_the_differences_after_pipedrive_changes() {
    let (app, connection) = seeded().await;
    let source = source(&app, connection).await;
    let db = MirrorDb::in_store(&app.store);
    extract_all(&source, &db, ExtractOptions::default()).await;
    let plan = Replication::all(None).streams;
    assert!(mirror::verify(&source, &db, &plan)
        .await
        .unwrap()
        .iter()
        .all(|c| c.matches()));
    let deal = app.sim.handle().deals()[0]["id"].as_i64().unwrap();
    app.sim.handle().advance_clock(Duration::from_secs(5));
    patch(
        &app,
        &format!("/api/v2/deals/{deal}"),
        json!({"title": "Changed behind the mirror"}),
    )
    .await;
    let person = app.sim.handle().persons()[0]["id"].as_i64().unwrap();
    app.sim.handle().delete_person(person).unwrap();

    let checks = mirror::verify(&source, &db, &plan).await.unwrap();

    let deals = checks.iter().find(|c| c.stream == "deals").unwrap();
    assert_eq!(deals.stale, vec![deal.to_string()]);
    assert_ne!(deals.remote_checksum, deals.local_checksum);
    let persons = checks.iter().find(|c| c.stream == "persons").unwrap();
    assert_eq!(persons.extra, vec![person.to_string()]);
    assert_eq!(persons.remote_rows + 1, persons.local_rows);

    // A delete pass marks the person deleted; the next incremental run takes the deal.
    mirror::extract(
        &source,
        &db,
        &plan,
        ExtractOptions {
            stop_after_pages: None,
            delete_pass: true,
        },
        &|_, _, _| {},
    )
    .await
    .unwrap();
    assert!(mirror::verify(&source, &db, &plan)
        .await
        .unwrap()
        .iter()
        .all(|c| c.matches()));
}

#[tokio::test]
async fn a_postgres_target_gets_the_tables_in_the_pipedrive_schema() {
    let Some(server) = tandem_tests::postgres_server_url() else {
        eprintln!("TANDEM_TEST_DATABASE_URL is not set: the Postgres target is not tested.");
        return;
    };
    let (app, connection) = seeded().await;
    let target = tandem_tests::TestDatabase::create_on(Some(&server))
        .await
        .unwrap();
    let source = source(&app, connection).await;
    let db = MirrorDb::connect_target(&target.url).await.unwrap();

    extract_all(&source, &db, ExtractOptions::default()).await;
    extract_all(&source, &db, ExtractOptions::default()).await;

    assert_eq!(table(&db, "deals"), "\"pipedrive\".\"deals\"");
    for stream in ["deals", "persons", "organizations", "activities", "notes"] {
        let count = app.sim.handle().counts()[stream];
        assert_eq!(live_rows(&db, stream).await, count as i64, "{stream}");
    }
    let columns = db.columns(&db.table("persons")).await.unwrap();
    assert!(columns.contains_key("lead_source"));
    let plan = Replication::all(None).streams;
    assert!(mirror::verify(&source, &db, &plan)
        .await
        .unwrap()
        .iter()
        .all(|c| c.matches()));
}

// The live mirror in the background (switch, worker passes, progress).

use std::collections::BTreeSet;
use std::sync::Arc;

use tandem_engine::clock::TestClock;
use tandem_engine::mirror::background::MirrorStatus;
use tandem_engine::sync::mirror as live_mirror;
use tandem_engine::sync::Engine;

/// The objects of the simulator's webhooks that deliver to `connection`.
fn webhook_objects(app: &TestApp, connection: Uuid) -> BTreeSet<String> {
    app.sim
        .handle()
        .webhooks()
        .iter()
        .filter(|w| {
            w["subscription_url"]
                .as_str()
                .is_some_and(|u| u.ends_with(&connection.to_string()))
        })
        .map(|w| w["event_object"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The app's engine on a clock the test moves.
fn clocked(app: &TestApp) -> (Engine, TestClock) {
    let clock = TestClock::new();
    let engine = app.engine.clone().with_clock(Arc::new(clock.clone()));
    (engine, clock)
}

async fn mirror_status(engine: &Engine, connection: Uuid) -> MirrorStatus {
    live_mirror::status(engine, connection.into())
        .await
        .unwrap()
        .expect("the mirror was switched on")
}

/// Every stream's table holds the simulator's records.
async fn assert_mirrored(app: &TestApp, db: &MirrorDb) {
    for (stream, count) in app.sim.handle().counts() {
        let rows = live_rows(db, stream).await;
        if stream == "leads" {
            assert!(rows > 0 && rows <= count as i64, "rows of leads: {rows}");
        } else {
            assert_eq!(rows, count as i64, "rows of {stream}");
        }
    }
}

#[tokio::test]
async fn the_console_toggle_registers_webhooks_for_every_mirrored_object_and_off_removes_the_extra_ones(
) {
    let (app, connection) = seeded().await;
    let sync_hooks = set(&["activity", "deal", "organization", "person"]);
    assert_eq!(webhook_objects(&app, connection), sync_hooks);
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
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    let home = |client: reqwest::Client, session: String| {
        let url = format!("{}/admin", app.base_url);
        async move {
            client
                .get(url)
                .header("cookie", session)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let page = home(client.clone(), session.clone()).await;
    assert!(page.contains("/mirror-on"), "the card offers the mirror");
    let csrf = page
        .split("name=csrf value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let on = format!("{}/admin/connections/{connection}/mirror-on", app.base_url);

    // Without the session's CSRF token nothing happens.
    let forged = client
        .post(&on)
        .header("cookie", &session)
        .form(&[("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(
        !tandem_engine::store::mirror::mirror_enabled(&app.store, connection.into())
            .await
            .unwrap()
    );

    let switched = client
        .post(&on)
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), reqwest::StatusCode::SEE_OTHER);
    assert!(
        tandem_engine::store::mirror::mirror_enabled(&app.store, connection.into())
            .await
            .unwrap()
    );
    assert_eq!(
        webhook_objects(&app, connection),
        set(&[
            "activity",
            "deal",
            "lead",
            "note",
            "organization",
            "person",
            "product"
        ])
    );
    let page = home(client.clone(), session.clone()).await;
    assert!(
        page.contains("/mirror-off"),
        "the toggle now switches it off"
    );
    assert!(
        page.contains("id=mirror-pass data-pass=\"initial\"")
            || page.contains("id=mirror data-enabled=true")
    );

    // Switching on again registers nothing twice.
    let again = app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/api/connections/{connection}/mirror"),
        )
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), reqwest::StatusCode::OK);
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again["webhooks_created"], 0);
    assert_eq!(webhook_objects(&app, connection).len(), 7);

    // Off through the admin API: the sync's webhooks stay, the mirror's go.
    let off = app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/api/connections/{connection}/mirror"),
        )
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), reqwest::StatusCode::OK);
    let off: serde_json::Value = off.json().await.unwrap();
    assert_eq!(off["webhooks_removed"], 3);
    assert_eq!(webhook_objects(&app, connection), sync_hooks);
    let status: serde_json::Value = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/api/connections/{connection}/mirror"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["enabled"], false);
    // Without the admin's token the API refuses.
    let anonymous = app
        .http
        .post(format!(
            "{}/admin/api/connections/{connection}/mirror",
            app.base_url
        ))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);

    // The tables hold one company: while another connection keeps the mirror, it is refused.
    set_mirror_enabled(&app.store, Uuid::new_v4().into(), true)
        .await
        .unwrap();
    let refused = app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/api/connections/{connection}/mirror"),
        )
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(webhook_objects(&app, connection), sync_hooks);
}

#[tokio::test]
async fn the_worker_extracts_every_stream_once_the_mirror_is_on_and_resumes_after_a_restart() {
    let sim = pipedrive_sim::SimConfig {
        time_scale: 0.001,
        ..pipedrive_sim::SimConfig::default()
    };
    let mut app = spawn_app_with(sim, |s| s.mirror.pages_per_round = 1).await;
    app.sim.handle().seed_persons(700);
    app.sim.handle().seed_objects(small_company());
    let connection = app.connect_pipedrive().await;
    live_mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    let status = mirror_status(&app.engine, connection).await;
    assert_eq!(status.streams_done, 0);

    // One page per round: run until the deals (3 pages) are half read.
    let mut rounds = 0;
    loop {
        live_mirror::run_mirror_once(&app.engine).await.unwrap();
        rounds += 1;
        assert!(rounds < 200, "the deals never started");
        let status = mirror_status(&app.engine, connection).await;
        let deals = status.streams.iter().find(|s| s.stream == "deals").unwrap();
        if deals.state == "running" {
            assert_eq!(deals.pages, 1);
            assert_eq!(deals.rows, 500);
            assert!(status.streams_done > 0 && status.streams_done < status.streams_total);
            break;
        }
    }
    let deal_pages_before = app.sim.handle().calls("v2.getDeals");

    // A crash: a new tandem on the same database goes on where the last one stopped (once the
    // dead replica's lease on the connection has run out).
    app.restart().await;
    let (engine, clock) = clocked(&app);
    assert_eq!(live_mirror::run_mirror_once(&engine).await.unwrap(), 0);
    clock.advance(engine.lease_period() + chrono::Duration::seconds(1));
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();

    let db = MirrorDb::in_store(&app.store);
    assert_mirrored(&app, &db).await;
    assert_eq!(
        app.sim.handle().calls("v2.getDeals") - deal_pages_before,
        2,
        "the two pages left, none read again"
    );
    let status = mirror_status(&engine, connection).await;
    assert!(status.initial_done_at.is_some());
    assert_eq!(status.pass, None);
    assert_eq!(status.streams_done, status.streams_total);
    assert!(status.streams.iter().all(|s| s.last_error.is_none()));
    let deals = status.streams.iter().find(|s| s.stream == "deals").unwrap();
    assert_eq!((deals.rows, deals.pages), (1_200, 3));
    // The admin API and the card show it.
    let api: serde_json::Value = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/api/connections/{connection}"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["mirror"]["enabled"], true);
    assert_eq!(
        api["mirror"]["streams_done"],
        api["mirror"]["streams_total"]
    );
    // Nothing more is due until the backstop's interval has passed.
    assert_eq!(live_mirror::run_mirror_once(&engine).await.unwrap(), 0);
}

#[tokio::test]
async fn a_change_whose_webhook_was_dropped_is_caught_by_the_backstop_pass() {
    let (app, connection) = seeded().await;
    let (engine, clock) = clocked(&app);
    live_mirror::set_enabled(&engine, connection.into(), true)
        .await
        .unwrap();
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();
    let db = MirrorDb::in_store(&app.store);
    let deal = app.sim.handle().deals()[5]["id"].as_i64().unwrap();
    app.sim
        .handle()
        .set_faults(pipedrive_sim::FaultSpec::parse("webhooks:drop=1").unwrap());
    app.sim.handle().advance_clock(Duration::from_secs(120));
    patch(
        &app,
        &format!("/api/v2/deals/{deal}"),
        json!({"title": "Changed while the webhook was lost"}),
    )
    .await;
    app.drive().await;
    let title = format!(
        "SELECT title FROM {} WHERE id = {deal}",
        table(&db, "deals")
    );
    let before = texts(&db, &title).await;
    assert_ne!(
        before,
        vec![Some("Changed while the webhook was lost".to_owned())]
    );
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();
    assert_eq!(texts(&db, &title).await, before, "no pass is due yet");
    // The console's (and the API's) verification sees the difference.
    let verify = || async {
        let response = app
            .admin(
                reqwest::Method::POST,
                &format!("/admin/api/connections/{connection}/mirror/verify"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json::<serde_json::Value>().await.unwrap()
    };
    let checked = verify().await;
    assert_eq!(checked["matches"], false);
    let deals = checked["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["stream"] == "deals")
        .unwrap()
        .clone();
    assert_eq!(deals["stale"], json!([deal.to_string()]));

    clock.advance(chrono::Duration::seconds(
        i64::try_from(app.settings.mirror.poll_interval_secs).unwrap() + 1,
    ));
    let calls = app.sim.handle().calls("v2.getPersons");
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();

    assert_eq!(
        texts(&db, &title).await,
        vec![Some("Changed while the webhook was lost".to_owned())]
    );
    assert_eq!(
        app.sim.handle().calls("v2.getPersons") - calls,
        1,
        "the backstop reads from the last update_time: one page of persons"
    );
    let status = mirror_status(&engine, connection).await;
    assert_eq!(status.pass, None);
    assert!(status.last_poll_at.unwrap() > status.initial_done_at.unwrap());
    assert_eq!(verify().await["matches"], true);
    assert_eq!(app.log_entries("mirror_verified").await.len(), 2);
}

#[tokio::test]
async fn a_record_deleted_in_pipedrive_is_marked_by_the_delete_pass_and_purged_days_later() {
    let sim = pipedrive_sim::SimConfig {
        time_scale: 0.001,
        ..pipedrive_sim::SimConfig::default()
    };
    let app = spawn_app_with(sim, |s| s.mirror.purge_deleted_after_days = 1).await;
    app.sim.handle().seed_persons(700);
    app.sim.handle().seed_objects(small_company());
    let connection = app.connect_pipedrive().await;
    let (engine, clock) = clocked(&app);
    live_mirror::set_enabled(&engine, connection.into(), true)
        .await
        .unwrap();
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();
    let db = MirrorDb::in_store(&app.store);
    let persons = table(&db, "persons");
    let person = app.sim.handle().persons()[3]["id"].as_i64().unwrap();
    app.sim
        .handle()
        .set_faults(pipedrive_sim::FaultSpec::parse("webhooks:drop=1").unwrap());
    app.sim.handle().delete_person(person).unwrap();
    app.drive().await;
    let deleted_at = format!("SELECT deleted_at FROM {persons} WHERE id = {person}");
    assert_eq!(
        texts(&db, &deleted_at).await,
        vec![None],
        "the webhook was lost"
    );

    // The next delete pass (a day later by default) finds it gone.
    clock.advance(chrono::Duration::seconds(
        i64::try_from(app.settings.mirror.delete_pass_interval_secs).unwrap() + 1,
    ));
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();

    let marked = texts(&db, &deleted_at).await;
    assert!(marked[0].is_some(), "kept, marked deleted: {marked:?}");
    assert_eq!(
        live_rows(&db, "persons").await,
        app.sim.handle().counts()["persons"] as i64
    );
    let status = mirror_status(&engine, connection).await;
    assert!(status.last_delete_pass_at.unwrap() > status.initial_done_at.unwrap());

    // A day after it was marked, the purge takes it out.
    clock.advance(chrono::Duration::days(2));
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();
    assert!(texts(&db, &deleted_at).await.is_empty(), "purged");
    assert!(mirror_status(&engine, connection)
        .await
        .last_purge_at
        .is_some());
}

#[tokio::test]
async fn a_reconnect_registers_the_mirrors_webhooks_again_at_once_and_changes_reach_the_tables() {
    let (app, connection) = seeded().await;
    live_mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    live_mirror::drive_mirror_until_idle(&app.engine)
        .await
        .unwrap();
    let every = set(&[
        "activity",
        "deal",
        "lead",
        "note",
        "organization",
        "person",
        "product",
    ]);
    assert_eq!(webhook_objects(&app, connection), every);

    // Disconnect removes every webhook at Pipedrive; the mirror's switch stays on.
    let answer = app
        .admin(
            reqwest::Method::DELETE,
            &format!("/admin/api/connections/{connection}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    assert!(webhook_objects(&app, connection).is_empty());
    assert!(
        tandem_engine::store::mirror::mirror_enabled(&app.store, connection.into())
            .await
            .unwrap()
    );

    // The reconnect (same company, so the same connection) registers all seven right away,
    // without waiting for the reconciliation.
    let reconnected = app.connect_pipedrive().await;
    assert_eq!(reconnected, connection);
    assert_eq!(webhook_objects(&app, connection), every);
    let connected = app.log_entries("connected").await;
    assert_eq!(connected[0].detail.as_ref().unwrap()["webhooks"], 7);

    // Pipedrive's webhooks for a deal and an organization (the mirror's own webhook) reach
    // the tables.
    let db = MirrorDb::in_store(&app.store);
    let deal = app.sim.handle().deals()[7]["id"].as_i64().unwrap();
    let org = app.sim.handle().organizations()[2]["id"].as_i64().unwrap();
    app.sim.handle().clear_deliveries();
    app.sim.handle().advance_clock(Duration::from_secs(60));
    patch(
        &app,
        &format!("/api/v2/deals/{deal}"),
        json!({"title": "Changed after the reconnect"}),
    )
    .await;
    patch(
        &app,
        &format!("/api/v2/organizations/{org}"),
        json!({"name": "Reconnected Ltd"}),
    )
    .await;
    app.sim
        .handle()
        .wait_for_deliveries(Duration::from_secs(20), |deliveries| {
            ["deal", "organization"]
                .iter()
                .all(|e| deliveries.iter().any(|d| d.delivered && d.entity == *e))
        })
        .await;
    app.drive().await;
    assert_eq!(
        texts(
            &db,
            &format!(
                "SELECT title FROM {} WHERE id = {deal}",
                table(&db, "deals")
            )
        )
        .await,
        vec![Some("Changed after the reconnect".to_owned())]
    );
    assert_eq!(
        texts(
            &db,
            &format!(
                "SELECT name FROM {} WHERE id = {org}",
                table(&db, "organizations")
            )
        )
        .await,
        vec![Some("Reconnected Ltd".to_owned())]
    );
}

#[tokio::test]
async fn a_tiny_mirror_chaos_run_with_webhook_faults_and_a_crash_ends_with_no_difference() {
    let sim = pipedrive_sim::SimConfig {
        time_scale: 0.001,
        seed: 11,
        ..pipedrive_sim::SimConfig::default()
    };
    let mut app = spawn_app_with(sim, |_| {}).await;
    app.sim.handle().seed_persons(30);
    app.sim.handle().seed_objects(pipedrive_sim::SeedCounts {
        organizations: 6,
        deals: 30,
        activities: 12,
        notes: 8,
        leads: 6,
        products: 4,
    });
    let connection = app.connect_pipedrive().await;
    live_mirror::set_enabled(&app.engine, connection.into(), true)
        .await
        .unwrap();
    live_mirror::drive_mirror_until_idle(&app.engine)
        .await
        .unwrap();
    let db = MirrorDb::in_store(&app.store);
    let mut operator = tandem_tests::mirror_chaos::Operator::new(&app.sim.handle(), &db, 5)
        .await
        .unwrap();
    app.sim.handle().set_faults(
        pipedrive_sim::FaultSpec::parse("webhooks:drop=0.2,duplicate=0.2,reorder=0.2").unwrap(),
    );

    // Random creates, edits and deletes of every object; the workers apply what arrived now
    // and then, and tandem crashes half-way (a new one on the same database, on a new port:
    // Pipedrive's later deliveries to the old one fail).
    for i in 0..120 {
        operator.step(i).await;
        if i % 15 == 14 {
            app.drive().await;
        }
        if i == 60 {
            app.restart().await;
        }
    }
    app.sim
        .handle()
        .set_faults(pipedrive_sim::FaultSpec::default());
    for object in tandem_tests::mirror_chaos::OBJECTS {
        let made = operator.made.get(object).copied().unwrap_or_default();
        assert!(
            made.created + made.edited + made.deleted > 0,
            "{object}: {made:?}"
        );
    }
    let made = operator.made.values().fold(0, |n, m| n + m.deleted);
    assert!(made > 0, "some records were deleted");
    let deliveries = app.sim.handle().delivered_webhooks();
    assert!(deliveries.iter().any(|d| !d.delivered), "some were lost");

    // A day later (the dead replica's lease has long run out): the webhooks that arrived are
    // applied, then the delete pass reads every stream in full.
    let (engine, clock) = clocked(&app);
    clock.advance(chrono::Duration::seconds(
        i64::try_from(app.settings.mirror.delete_pass_interval_secs).unwrap() + 1,
    ));
    tandem_engine::sync::worker::drive_until_idle(&engine)
        .await
        .unwrap();
    live_mirror::drive_mirror_until_idle(&engine).await.unwrap();

    let checks = live_mirror::verify(&engine, connection.into())
        .await
        .unwrap();
    let differing: Vec<_> = checks.iter().filter(|c| !c.matches()).collect();
    assert!(differing.is_empty(), "{differing:#?}");
    let status = mirror_status(&engine, connection).await;
    assert!(status.last_delete_pass_at.unwrap() > status.initial_done_at.unwrap());
}
