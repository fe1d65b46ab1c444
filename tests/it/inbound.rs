use pipedrive_sim::{FaultSpec, SimConfig};
use serde_json::json;
use tandem_engine::store::stats;
use tandem_engine::sync::{app::contacts, app::local, inbound::poller, links};
use tandem_tests::fields::{email, fields, name, text_of};
use tandem_tests::{pid, spawn_app, spawn_app_with};

fn seeded(persons: usize) -> SimConfig {
    SimConfig {
        time_scale: 0.001,
        persons,
        ..SimConfig::default()
    }
}

async fn contact_for(
    app: &tandem_tests::TestApp,
    connection: uuid::Uuid,
    person: i64,
) -> contacts::LocalContact {
    let link = links::by_person(app.store.db(), connection.into(), pid(person))
        .await
        .unwrap()
        .expect("the person is linked");
    app.contact(link.contact_id.uuid()).await
}

#[tokio::test]
async fn an_edit_in_pipedrive_reaches_the_local_contact_through_the_webhook() {
    let app = spawn_app_with(seeded(5), |_| {}).await;
    let connection = app.connect_and_sync().await;
    let person = app.sim.handle().persons()[0]["id"].as_i64().unwrap();
    app.sim
        .handle()
        .update_person_as_user(person, json!({ "name": "Changed In Pipedrive" }))
        .unwrap();
    app.await_person_webhooks(1).await;
    let contact = contact_for(&app, connection, person).await;
    assert_eq!(
        text_of(&contact, "name").as_deref(),
        Some("Changed In Pipedrive")
    );
}

#[tokio::test]
async fn with_webhooks_dropped_an_edit_arrives_through_the_poller() {
    let app = spawn_app_with(seeded(5), |_| {}).await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    sim.set_faults(FaultSpec::parse("webhooks:drop=1").unwrap());
    let person = sim.persons()[1]["id"].as_i64().unwrap();
    sim.update_person_as_user(person, json!({ "name": "Only The Poller Knows" }))
        .unwrap();
    app.drive().await;
    assert_ne!(
        text_of(&contact_for(&app, connection, person).await, "name").as_deref(),
        Some("Only The Poller Knows")
    );

    let conn = tandem_engine::sync::connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let changed = poller::poll_once(&app.engine, &conn).await.unwrap();
    assert!(changed >= 1);
    assert_eq!(
        text_of(&contact_for(&app, connection, person).await, "name").as_deref(),
        Some("Only The Poller Knows")
    );
    // Polling again (the overlap window re-reads the same person) changes nothing.
    assert_eq!(poller::poll_once(&app.engine, &conn).await.unwrap(), 0);
}

#[tokio::test]
async fn the_same_delivery_three_times_and_deliveries_in_reverse_order_end_in_the_newest_state() {
    let app = spawn_app_with(seeded(3), |_| {}).await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    sim.set_faults(FaultSpec::parse("webhooks:drop=1").unwrap());
    let person = sim.persons()[0]["id"].as_i64().unwrap();
    sim.update_person_as_user(person, json!({ "name": "First Edit" }))
        .unwrap();
    sim.advance_clock(std::time::Duration::from_secs(5));
    sim.update_person_as_user(person, json!({ "name": "Second Edit" }))
        .unwrap();
    let bodies: Vec<serde_json::Value> = sim
        .wait_for_deliveries(std::time::Duration::from_secs(10), |d| {
            d.iter().filter(|d| d.entity_id == person).count() >= 2
        })
        .await
        .into_iter()
        .filter(|d| d.entity == "person" && d.entity_id == person)
        .map(|d| d.body)
        .collect();
    let (first, second) = (
        bodies.first().unwrap().clone(),
        bodies.last().unwrap().clone(),
    );
    assert_ne!(first["meta"]["id"], second["meta"]["id"]);

    for (body, status) in [
        (&second, "accepted"),
        (&second, "duplicate"),
        (&second, "duplicate"),
        (&first, "accepted"),
    ] {
        let response = app.post_pipedrive_webhook(connection, body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert_eq!(answer, json!({ "status": status }));
    }
    app.drive().await;
    assert_eq!(
        text_of(&contact_for(&app, connection, person).await, "name").as_deref(),
        Some("Second Edit")
    );

    // Duplicates were acknowledged but stored once.
    let stored = stats::count_inbox_events(app.store.db(), None)
        .await
        .unwrap();
    assert_eq!(stored, 2, "two distinct deliveries stored");
}

#[tokio::test]
async fn a_crash_between_receiving_and_applying_loses_nothing() {
    let mut app = spawn_app_with(seeded(2), |_| {}).await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    sim.set_faults(FaultSpec::parse("webhooks:drop=1").unwrap());
    let person = sim.persons()[0]["id"].as_i64().unwrap();
    sim.update_person_as_user(person, json!({ "name": "Survives The Crash" }))
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
    assert_eq!(
        app.post_pipedrive_webhook(connection, &body).await.status(),
        200
    );
    // Acknowledged, not yet applied: now the process dies and comes back.
    app.restart().await;
    app.drive().await;
    assert_eq!(
        text_of(&contact_for(&app, connection, person).await, "name").as_deref(),
        Some("Survives The Crash")
    );
}

#[tokio::test]
async fn a_person_deleted_in_pipedrive_unlinks_and_archives_its_contact() {
    let app = spawn_app_with(seeded(2), |_| {}).await;
    let connection = app.connect_and_sync().await;
    let person = app.sim.handle().persons()[0]["id"].as_i64().unwrap();
    let contact_id = contact_for(&app, connection, person).await.id;
    app.sim.handle().delete_person(person).unwrap();
    app.await_person_webhooks(1).await;
    assert!(
        links::by_person(app.store.db(), connection.into(), pid(person))
            .await
            .unwrap()
            .is_none()
    );
    let contact = app.contact(contact_id.uuid()).await;
    assert!(
        contact.archived,
        "archived by the default setting, kept with its data"
    );
    assert!(text_of(&contact, "name").is_some());
}

#[tokio::test]
async fn tandems_own_write_echoed_back_by_a_webhook_produces_no_further_write() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let created = local::create_contact(
        &app.engine,
        fields([name("Echo Test"), email("echo@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let sim = app.sim.handle();
    local::update_contact(
        &app.engine,
        created.contact_id,
        fields([name("Echo Test 2")]),
    )
    .await
    .unwrap();
    app.drive().await;
    // The create and the PATCH each come back as a webhook; neither may cause a write.
    app.await_person_webhooks(2).await;
    assert_eq!(sim.calls("v2.updatePerson"), 1, "one PATCH, no ping-pong");
    assert_eq!(sim.calls("v2.addPerson"), 1);
    assert_eq!(
        text_of(&app.contact(created.contact_id.uuid()).await, "name").as_deref(),
        Some("Echo Test 2")
    );
}

#[tokio::test]
async fn a_malformed_webhook_is_rejected_with_its_reason_and_kept_for_inspection() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let response = app
        .post_pipedrive_webhook(connection, &json!({ "no": "meta" }))
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    let wrong = app
        .http
        .post(format!("{}/webhooks/pipedrive/{connection}", app.base_url))
        .basic_auth("tandem", Some("wrong"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert_eq!(body["code"], "unauthorized");
}

#[tokio::test]
async fn initial_sync_of_twenty_thousand_persons_resumes_after_a_kill_and_links_by_email() {
    let app = spawn_app_with(seeded(20_000), |_| {}).await;
    let sim = app.sim.handle();
    // A local contact that already exists with the e-mail of a Pipedrive person is linked, not duplicated.
    let target = sim
        .persons()
        .into_iter()
        .find(|p| p["emails"][0]["value"].is_string())
        .unwrap();
    let target_email = target["emails"][0]["value"].as_str().unwrap().to_owned();
    let existing = local::create_contact(
        &app.engine,
        fields([name("Local First"), email(&target_email)]),
        false,
    )
    .await
    .unwrap();
    let connection = app.connect_pipedrive().await;

    // Kill the sync after a few pages: the task is aborted between two page transactions.
    let (pages_tx, mut pages_rx) = tokio::sync::mpsc::unbounded_channel();
    let engine = app.engine.clone();
    let task = tokio::spawn(async move {
        poller::initial_sync(&engine, connection.into(), move |progress| {
            // The receiver stops listening once it has seen enough pages.
            pages_tx.send(progress.pages).ok();
        })
        .await
    });
    while let Some(pages) = pages_rx.recv().await {
        if pages >= 5 {
            break;
        }
    }
    task.abort();
    drop(task.await);
    let list_calls_before = sim.calls("v2.getPersons");

    let progress = poller::initial_sync(&app.engine, connection.into(), |_| {})
        .await
        .unwrap();
    assert!(progress.finished);
    assert_eq!(
        progress.done, 20_000,
        "every person counted once across the resume"
    );
    assert!(
        sim.calls("v2.getPersons") - list_calls_before <= 36,
        "resumed near where it stopped"
    );

    let linked = links::by_contact(app.store.db(), connection.into(), existing.contact_id)
        .await
        .unwrap();
    let same_email: Vec<_> = sim.persons_by_email(&target_email);
    if same_email.len() == 1 {
        assert_eq!(
            linked.map(|l| l.person_id),
            target["id"].as_i64().map(pid),
            "linked by e-mail"
        );
    } else {
        assert!(linked.is_some(), "linked to one of the same-email persons");
    }
    assert_eq!(
        stats::count_links(app.store.db(), connection.into())
            .await
            .unwrap(),
        20_000,
        "every person is linked exactly once"
    );
    // Same-email persons stay separate contacts: one contact per person, plus none extra.
    assert_eq!(stats::count_contacts(app.store.db()).await.unwrap(), 20_000);
}

#[tokio::test]
async fn two_initial_syncs_of_one_connection_at_once_both_finish_and_link_every_person_once() {
    // The console's "Run initial sync" while the worker runs it, or two replicas: the runs
    // apply the same pages at the same time, and the one that loses the race to link a person
    // applies its page again instead of failing.
    let app = spawn_app_with(seeded(3_000), |_| {}).await;
    let connection = app.connect_pipedrive().await;
    let (first, second) = tokio::join!(
        poller::initial_sync(&app.engine, connection.into(), |_| {}),
        poller::initial_sync(&app.engine, connection.into(), |_| {}),
    );
    assert!(first.expect("the first run finishes").finished);
    assert!(second.expect("the second run finishes").finished);
    assert_eq!(
        stats::count_links(app.store.db(), connection.into())
            .await
            .unwrap(),
        3_000,
        "every person is linked exactly once"
    );
    assert_eq!(stats::count_contacts(app.store.db()).await.unwrap(), 3_000);
}

#[tokio::test]
async fn reconciliation_unlinks_persons_deleted_unseen_repairs_drift_and_restores_vanished_webhooks(
) {
    let app = spawn_app_with(seeded(30), |_| {}).await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    sim.set_faults(FaultSpec::parse("webhooks:drop=1").unwrap());
    let persons = sim.persons();
    let (gone, drifted) = (
        persons[0]["id"].as_i64().unwrap(),
        persons[1]["id"].as_i64().unwrap(),
    );
    let gone_contact = contact_for(&app, connection, gone).await.id;
    sim.delete_person(gone).unwrap();
    sim.update_person_as_user(drifted, json!({ "name": "Drifted Away" }))
        .unwrap();
    // Pipedrive deletes a webhook after days of failures.
    let conn = tandem_engine::sync::connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let hook = app
        .engine
        .crm
        .pipedrive()
        .list_webhooks(&conn.session)
        .await
        .unwrap()
        .into_iter()
        .find(|w| w.event_object.as_deref() == Some("person"))
        .unwrap();
    app.engine
        .crm
        .pipedrive()
        .delete_webhook(&conn.session, hook.id)
        .await
        .unwrap();

    let report = poller::reconcile(&app.engine, &conn).await.unwrap();
    assert_eq!(report.unlinked, 1);
    assert_eq!(report.repaired, 1);
    assert_eq!(report.webhooks_repaired, 1);
    assert!(app.contact(gone_contact.uuid()).await.archived);
    assert_eq!(
        text_of(&contact_for(&app, connection, drifted).await, "name").as_deref(),
        Some("Drifted Away")
    );
    // A second pass finds nothing to do.
    let again = poller::reconcile(&app.engine, &conn).await.unwrap();
    assert_eq!(
        (again.unlinked, again.repaired, again.webhooks_repaired),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn a_webhook_pipedrive_bans_after_failed_deliveries_is_said_once_on_the_card_and_in_the_sync_log_and_again_when_it_resumes(
) {
    use tandem_engine::sync::connections::{self, admin, webhooks};
    // Webhook delays as Pipedrive's: the ban lasts 30 minutes of the simulator's clock.
    let app = spawn_app_with(
        SimConfig {
            time_scale: 1.0,
            persons: 3,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let conn = connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    webhooks::check(&app.engine, &conn).await.unwrap();
    assert!(app.log_entries("webhooks_paused").await.is_empty());

    // Someone replaces tandem's person webhook with one sending another password: tandem
    // answers every delivery 401, and after 10 Pipedrive bans the webhook.
    app.replace_person_webhook("stale-password").await;
    let person = sim.persons()[0]["id"].as_i64().unwrap();
    for i in 0..10 {
        sim.update_person_as_user(person, json!({ "name": format!("Edit {i}") }))
            .unwrap();
    }
    let refused = |d: &[pipedrive_sim::Delivery]| {
        d.iter()
            .filter(|d| d.entity == "person" && d.attempt == 1 && d.status == Some(401))
            .count()
    };
    let deliveries = sim
        .wait_for_deliveries(std::time::Duration::from_secs(30), |d| refused(d) >= 10)
        .await;
    assert!(refused(&deliveries) >= 10, "{}", refused(&deliveries));

    webhooks::check(&app.engine, &conn).await.unwrap();
    let paused = app.log_entries("webhooks_paused").await;
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].level, "warn");
    assert!(
        paused[0]
            .message
            .contains("stopped sending tandem its person webhooks"),
        "{}",
        paused[0].message
    );
    assert!(
        paused[0].message.contains("HTTP 401"),
        "{}",
        paused[0].message
    );
    assert!(paused[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("/webhooks/pipedrive/"));
    let status = admin::connection_status(&app.engine, connection.into())
        .await
        .unwrap();
    assert_eq!(status.webhooks_paused, vec!["person".to_owned()]);
    let card = app.admin_page("/admin").await;
    assert!(card.contains("id=webhooks-paused"), "{card}");
    // Checked again during the ban: said once.
    webhooks::check(&app.engine, &conn).await.unwrap();
    assert_eq!(app.log_entries("webhooks_paused").await.len(), 1);
    // A change made meanwhile reaches tandem through the poll.
    sim.update_person_as_user(person, json!({ "name": "During The Ban" }))
        .unwrap();
    poller::poll_once(&app.engine, &conn).await.unwrap();
    assert_eq!(
        text_of(&contact_for(&app, connection, person).await, "name").as_deref(),
        Some("During The Ban")
    );

    // Thirty minutes later Pipedrive delivers again.
    sim.advance_clock(std::time::Duration::from_secs(31 * 60));
    webhooks::check(&app.engine, &conn).await.unwrap();
    let resumed = app.log_entries("webhooks_resumed").await;
    assert_eq!(resumed.len(), 1);
    assert!(
        resumed[0].message.contains("person"),
        "{}",
        resumed[0].message
    );
    let status = admin::connection_status(&app.engine, connection.into())
        .await
        .unwrap();
    assert!(status.webhooks_paused.is_empty());
    assert_eq!(app.log_entries("webhooks_paused").await.len(), 1);
}

#[tokio::test]
async fn the_webhook_check_registers_again_a_webhook_pipedrive_deleted_and_runs_once_per_interval()
{
    use tandem_engine::sync::connections::{self, webhooks};
    let app = spawn_app_with(seeded(2), |settings| {
        settings.pipedrive.webhook_check_interval_secs = 3600;
    })
    .await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let conn = connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let hook = sim
        .webhooks()
        .into_iter()
        .find(|w| w["event_object"] == "deal")
        .unwrap();
    app.engine
        .crm
        .pipedrive()
        .delete_webhook(&conn.session, hook["id"].as_i64().unwrap())
        .await
        .unwrap();
    let listed = sim.calls("v1.getWebhooks");
    webhooks::check_if_due(&app.engine, &conn).await.unwrap();
    assert!(sim.webhooks().iter().any(|w| w["event_object"] == "deal"));
    let recreated = app.log_entries("webhooks_recreated").await;
    assert_eq!(recreated.len(), 1);
    assert!(
        recreated[0].message.contains("deal"),
        "{}",
        recreated[0].message
    );
    let after_first = sim.calls("v1.getWebhooks");
    assert!(after_first > listed);
    // Within the interval: no call.
    webhooks::check_if_due(&app.engine, &conn).await.unwrap();
    assert_eq!(sim.calls("v1.getWebhooks"), after_first);
}

/// Every contact's id, archived ones included.
async fn all_contact_ids<C: sea_orm::ConnectionTrait>(db: &C) -> Vec<uuid::Uuid> {
    let query = contacts::PageQuery {
        include_archived: true,
        limit: 10_000,
        ..Default::default()
    };
    contacts::page(db, &query).await.unwrap().0
}

/// What applying a page left in the store, as comparable text: contacts the page created get
/// random ids, so every id that was not in `before` is replaced by its person's id.
async fn page_outcome<C: sea_orm::ConnectionTrait>(
    txn: &C,
    connection: uuid::Uuid,
    before: &std::collections::HashSet<uuid::Uuid>,
) -> String {
    use sea_orm::{FromQueryResult, Statement};
    let mut labels = Vec::new();
    let mut state = serde_json::Map::new();
    let mut persons = links::person_ids(txn, connection.into()).await.unwrap();
    persons.sort_unstable();
    let mut link_rows = Vec::new();
    for person in persons {
        let link = links::by_person(txn, connection.into(), person)
            .await
            .unwrap()
            .unwrap();
        if !before.contains(&link.contact_id.uuid()) {
            labels.push((link.contact_id, format!("<contact of person {person}>")));
        }
        link_rows.push(json!({
            "person": person, "contact": link.contact_id, "state": link.state,
        }));
    }
    state.insert("links".into(), link_rows.into());
    let ids = all_contact_ids(txn).await;
    let mut contact_rows = Vec::new();
    for id in ids {
        let c = contacts::load(txn, id.into()).await.unwrap().unwrap();
        contact_rows.push(json!({
            "id": c.id, "email": c.email, "version": c.version.0, "archived": c.archived,
            "created_at": c.created_at, "updated_at": c.updated_at, "fields": c.fields,
        }));
    }
    state.insert("contacts".into(), contact_rows.into());
    let (members, _) = contacts::list_members(
        txn,
        &tandem_core::TenantId::default(),
        contacts::PIPEDRIVE_LIST,
        None,
        10_000,
    )
    .await
    .unwrap();
    state.insert("list".into(), json!(members));
    for (table, columns) in [
        ("outbound_delivery", "event_type, payload, state, attempts"),
        ("outbox_job", "kind, ordering_key, priority, payload, state"),
        ("duplicate_group", "kind, group_key, state, members"),
        (
            "sync_log",
            "level, direction, kind, person_id, message, detail",
        ),
    ] {
        let rows = serde_json::Value::find_by_statement(Statement::from_string(
            txn.get_database_backend(),
            format!("SELECT {columns} FROM {table}"),
        ))
        .all(txn)
        .await
        .unwrap();
        state.insert(table.into(), rows.into());
    }
    let mut text = serde_json::to_string(&state).unwrap();
    for (id, label) in labels {
        text = text.replace(&id.to_string(), &label);
    }
    // Rows whose order the store does not define are compared as sorted lines.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut lines: Vec<String> = value
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(table, rows)| {
            rows.as_array()
                .unwrap()
                .iter()
                .map(move |row| format!("{table}: {row}"))
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

#[tokio::test]
async fn a_mixed_page_applied_in_batches_leaves_the_same_rows_as_applying_its_persons_one_by_one() {
    use sea_orm::TransactionTrait;
    use tandem_engine::sync::{app as app_side, connections, inbound};
    let app = spawn_app().await;
    let sim = app.sim.handle();
    let person = |name: &str, address: Option<&str>| {
        let mut body = json!({ "name": name });
        if let Some(address) = address {
            body["emails"] = json!([{ "value": address, "primary": true }]);
        }
        sim.insert_person(body).unwrap()
    };
    // Linked by a first sync: one is then renamed in Pipedrive, one is named by a copy's apId.
    let old_a = person("Old A", Some("old-a@example.com"));
    let old_b = person("Old B", Some("old-b@example.com"));
    let connection = app.connect_and_sync().await;
    let db = app.store.db();
    let old_a_contact = links::by_person(db, connection.into(), pid(old_a))
        .await
        .unwrap()
        .unwrap()
        .contact_id;
    // Renamed a second later (a same-second change on a page is re-read, not merged).
    sim.advance_clock(std::time::Duration::from_secs(1));
    sim.update_person_as_user(old_b, json!({ "name": "Old B Renamed" }))
        .unwrap();
    // The app is told about every contact change.
    app_side::create_subscription(
        &app.engine,
        "http://127.0.0.1:9/hook",
        app_side::generate_secret(),
    )
    .await
    .unwrap();
    // Local contacts, not linked: matched by e-mail, by apId, ambiguous, archived.
    let now = app.engine.now();
    let local = |label: &str, address: &str| {
        let fields = fields([name(label), email(address)]);
        async move {
            contacts::create(
                db,
                &tandem_core::TenantId::default(),
                &fields,
                contacts::Origin::Local,
                now,
            )
            .await
            .unwrap()
        }
    };
    local("Local By Email", "local@example.com").await;
    local("Local Shared", "shared@example.com").await;
    local("Local Two A", "two@example.com").await;
    local("Local Two B", "two@example.com").await;
    let by_apid = local("Local By ApId", "apid-local@example.com").await;
    let archived = local("Local Archived", "archived@example.com").await;
    contacts::set_archived(db, archived, true, now)
        .await
        .unwrap();
    let apid_key = sim.person_field_key("apId").unwrap();
    for i in 0..3 {
        person(&format!("New {i}"), Some(&format!("new{i}@example.com")));
    }
    person("Twin 1", Some("twin@example.com"));
    person("Twin 2", Some("twin@example.com"));
    let by_email = person("By Email", Some("local@example.com"));
    let shared_1 = person("Shared 1", Some("shared@example.com"));
    let shared_2 = person("Shared 2", Some("shared@example.com"));
    person("Two", Some("two@example.com"));
    person("Archived Match", Some("archived@example.com"));
    person("Old A Twin", Some("old-a@example.com"));
    person("No Email", None);
    let apid_person = sim
        .insert_person(json!({ "name": "ApId Person", "emails": [{ "value": "apid-person@example.com" }], "custom_fields": { &apid_key: by_apid.to_string() } }))
        .unwrap();
    let conflict = sim
        .insert_person(json!({ "name": "Copy Of Old A", "emails": [{ "value": "copy@example.com" }], "custom_fields": { &apid_key: old_a_contact.to_string() } }))
        .unwrap();

    let conn = connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let page = app
        .engine
        .crm
        .list_people(&conn.session, &conn.map, None, None)
        .await
        .unwrap();
    assert!(page.next_cursor.is_none(), "one page");
    let before = all_contact_ids(db).await.into_iter().collect();
    let now = app.engine.now();

    let txn = db.begin().await.unwrap();
    let applied = inbound::apply_page_in(&txn, &app.engine, &conn, &page.items, now)
        .await
        .unwrap();
    let batched = page_outcome(&txn, connection, &before).await;
    txn.rollback().await.unwrap();

    let txn = db.begin().await.unwrap();
    for person in &page.items {
        let outcome = inbound::apply_person_in(&txn, &app.engine, &conn, person, now)
            .await
            .unwrap();
        if let Some((contact_id, event)) = outcome.app_event() {
            app_side::contact_event(&txn, contact_id, event, None, now)
                .await
                .unwrap();
        }
    }
    let one_by_one = page_outcome(&txn, connection, &before).await;
    txn.commit().await.unwrap();

    assert_eq!(batched, one_by_one);
    // The page took every path.
    let outcome_of = |id: i64| {
        let at = page.items.iter().position(|p| p.id == pid(id)).unwrap();
        applied[at].clone()
    };
    assert!(matches!(
        outcome_of(old_b),
        inbound::Applied::Merged { changed: 1, .. }
    ));
    // Listed again unchanged, with the version already merged: a copy, nothing to merge.
    assert_eq!(outcome_of(old_a), inbound::Applied::Stale);
    assert!(matches!(
        outcome_of(by_email),
        inbound::Applied::Linked { .. }
    ));
    assert!(matches!(
        outcome_of(shared_1),
        inbound::Applied::Linked { .. }
    ));
    assert!(matches!(
        outcome_of(shared_2),
        inbound::Applied::Created {
            same_email_persons: 1,
            ..
        }
    ));
    assert_eq!(
        outcome_of(apid_person),
        inbound::Applied::Linked {
            contact_id: by_apid
        }
    );
    assert!(matches!(
        outcome_of(conflict),
        inbound::Applied::Created { .. }
    ));
    let created = applied
        .iter()
        .filter(|a| matches!(a, inbound::Applied::Created { .. }))
        .count();
    assert_eq!(created, 3 + 2 + 1 + 1 + 1 + 1 + 1 + 1, "{applied:?}");
    assert!(batched.contains("apid_conflict"), "the copy is reported");
    let told = batched
        .lines()
        .filter(|l| {
            l.starts_with("outbound_delivery") && l.contains(r#""event_type":"contact.created""#)
        })
        .count();
    assert_eq!(told, created, "the app is told about each new contact");
}

#[tokio::test]
async fn the_same_delivery_sent_many_times_at_once_is_accepted_once_and_stored_once() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let body = |id: &str| {
        json!({
            "meta": { "id": id, "entity": "person", "action": "change", "entity_id": "1" },
            "data": { "id": 1, "name": "Once" }
        })
    };
    // Concurrent posts share group commits: some copies land in the same batch as the first.
    let mut posts = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (http, url, (user, password)) = (
            app.http.clone(),
            format!("{}/webhooks/pipedrive/{connection}", app.base_url),
            tandem_engine::sync::connections::webhook_credentials(
                &app.engine,
                app.store.db(),
                connection.into(),
            )
            .await
            .unwrap()
            .unwrap(),
        );
        let body = body(if i % 2 == 0 { "same-a" } else { "same-b" });
        posts.spawn(async move {
            let response = http
                .post(url)
                .basic_auth(user, Some(password))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            response.json::<serde_json::Value>().await.unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = posts.join_next().await {
        answers.push(answer.unwrap());
    }
    assert_eq!(answers.iter().filter(|a| *a == "accepted").count(), 2);
    assert_eq!(answers.iter().filter(|a| *a == "duplicate").count(), 38);
    let stored = stats::count_inbox_events(app.store.db(), None)
        .await
        .unwrap();
    assert_eq!(stored, 2, "each delivery stored once");
}
