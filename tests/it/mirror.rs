//! The Pipedrive mirror (issue 20): extraction of every stream into tables, custom-field
//! columns, resumed and incremental runs, live webhooks, `--verify`, and a Postgres target.

use std::time::Duration;

use serde_json::json;
use tandem_engine::mirror::{self, live, ExtractOptions, Replication};
use tandem_engine::store::mirror::{set_mirror_enabled, MirrorDb};
use tandem_tests::mirror::{
    extract_all, live_rows, number, report, small_company, source, table, texts,
};
use tandem_tests::{spawn_app, TestApp};
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
    set_mirror_enabled(&app.store, connection, true)
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

    let applied = live::apply_for_connection(&app.store, connection, &body.to_string())
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
