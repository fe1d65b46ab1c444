use std::collections::HashSet;

use chrono::Utc;
use pipedrive_sim::SimConfig;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use serde_json::json;
use tandem_engine::queue::{self, JobPayload, Priority};
use tandem_engine::sync::{app, app::local, links, ownership, worker, Engine};
use tandem_tests::fields::{fields, name, text_of};
use tandem_tests::receiver::TestReceiver;
use tandem_tests::{pid, spawn_app, spawn_app_on, spawn_app_with, TestApp};

#[tokio::test]
async fn concurrent_claims_never_share_a_job_and_never_run_two_jobs_of_one_contact() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let db = app.store.db();
    let now = Utc::now() - chrono::Duration::seconds(1);
    let keys: Vec<uuid::Uuid> = (0..10).map(|_| uuid::Uuid::now_v7()).collect();
    let txn = db.begin().await.unwrap();
    for round in 0..5 {
        for key in &keys {
            // Actions do not coalesce: five jobs per contact stay five jobs, in order.
            let payload = JobPayload::Action {
                action_id: uuid::Uuid::now_v7(),
                contact_id: (*key).into(),
            };
            assert!(queue::enqueue(
                &txn,
                connection.into(),
                &key.to_string(),
                Priority::Action,
                &payload,
                now + chrono::Duration::milliseconds(round)
            )
            .await
            .unwrap());
        }
    }
    txn.commit().await.unwrap();
    ownership::round(&app.engine).await.unwrap();
    let replica = app.engine.replica.id.as_str();

    let mut seen = HashSet::new();
    for _round in 0..5 {
        let lease = chrono::Duration::seconds(60);
        let (a, b, c) = tokio::join!(
            queue::claim(db, replica, Utc::now(), lease, 8),
            queue::claim(db, replica, Utc::now(), lease, 8),
            queue::claim(db, replica, Utc::now(), lease, 8)
        );
        let claimed: Vec<_> = [a.unwrap(), b.unwrap(), c.unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(claimed.len(), 10, "one job per contact per round");
        let keys_this_round: HashSet<_> = claimed.iter().map(|j| j.ordering_key.clone()).collect();
        assert_eq!(
            keys_this_round.len(),
            10,
            "never two jobs of one contact at once"
        );
        for job in &claimed {
            assert!(seen.insert(job.id), "job {} claimed twice", job.id);
        }
        assert!(
            queue::claim(db, replica, Utc::now(), lease, 8)
                .await
                .unwrap()
                .is_empty(),
            "nothing else is claimable while they run"
        );
        for job in claimed {
            queue::complete(db, job.id).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 50);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_claimed_again_after_its_lease() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let db = app.store.db();
    let contact = uuid::Uuid::now_v7();
    let txn = db.begin().await.unwrap();
    queue::enqueue(
        &txn,
        connection.into(),
        &contact.to_string(),
        Priority::Edit,
        &JobPayload::PushContact {
            contact_id: contact.into(),
        },
        Utc::now(),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    // The same replica, by a clock that moves: its connection lease is renewed at each time.
    let clock = tandem_engine::clock::TestClock::new();
    let engine = app
        .engine
        .clone()
        .with_clock(std::sync::Arc::new(clock.clone()));
    let replica = engine.replica.id.clone();
    ownership::round(&engine).await.unwrap();
    let first = queue::claim(db, &replica, engine.now(), chrono::Duration::seconds(30), 5)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // The worker dies; before the lease ends nobody else takes the job...
    clock.advance(chrono::Duration::seconds(29));
    ownership::round(&engine).await.unwrap();
    assert!(
        queue::claim(db, &replica, engine.now(), chrono::Duration::seconds(30), 5)
            .await
            .unwrap()
            .is_empty()
    );
    // ...after it, the job comes back.
    clock.advance(chrono::Duration::seconds(2));
    ownership::round(&engine).await.unwrap();
    let again = queue::claim(db, &replica, engine.now(), chrono::Duration::seconds(30), 5)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
}

/// A second worker on the same database: on Postgres a second tandem (its own pool, workers
/// and HTTP server, the same encryption key); on SQLite, which has one writer per deployment
/// (ADR 1), a second worker on the same tandem.
async fn second_engine(first: &TestApp) -> (Option<TestApp>, Engine) {
    if !first.database.is_postgres() {
        return (None, first.engine.clone());
    }
    let keys = first.settings.security.encryption_keys.clone();
    let second = spawn_app_on(first.database.clone(), SimConfig::default(), |settings| {
        settings.security.encryption_keys = keys;
    })
    .await;
    let engine = second.engine.clone();
    (Some(second), engine)
}

/// Both workers run every queue until nothing is left, concurrently.
async fn race(a: &Engine, b: &Engine) {
    let (first, second) = tokio::join!(worker::drive_until_idle(a), worker::drive_until_idle(b));
    first.unwrap();
    second.unwrap();
}

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let db = app.store.db();
    db.query_one(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
}

async fn person_webhooks_delivered(app: &TestApp, count: usize) {
    app.sim
        .handle()
        .wait_for_deliveries(std::time::Duration::from_secs(20), |d| {
            d.iter()
                .filter(|d| d.delivered && d.entity == "person")
                .count()
                >= count
        })
        .await;
}

#[tokio::test]
async fn two_engines_on_one_database_apply_each_event_once_and_run_each_job_once() {
    const PERSONS: usize = 12;
    let a = spawn_app_with(
        SimConfig {
            time_scale: 0.001,
            persons: PERSONS,
            ..SimConfig::default()
        },
        |_| {},
    )
    .await;
    let connection = a.connect_and_sync().await;
    a.drive().await;
    let (_b_app, b) = second_engine(&a).await;
    let sim = a.sim.handle();
    let persons: Vec<i64> = sim
        .persons()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(persons.len(), PERSONS);
    let mut contacts = Vec::new();
    for person in &persons {
        let link = links::by_person(a.store.db(), connection.into(), pid(*person))
            .await
            .unwrap()
            .expect("the person is linked");
        contacts.push(link.contact_id);
    }

    // Outbox: one edit per contact is one job each; both workers race for them.
    let patches_before = sim.calls("v2.updatePerson");
    let webhooks_before = sim
        .delivered_webhooks()
        .iter()
        .filter(|d| d.delivered && d.entity == "person")
        .count();
    for (i, contact) in contacts.iter().enumerate() {
        local::update_contact(&a.engine, *contact, fields([name(&format!("Local {i}"))]))
            .await
            .unwrap();
    }
    race(&a.engine, &b).await;
    assert_eq!(
        sim.calls("v2.updatePerson") - patches_before,
        PERSONS as u64,
        "each job ran exactly once"
    );
    for (i, person) in persons.iter().enumerate() {
        let stored = sim
            .persons()
            .into_iter()
            .find(|p| p["id"].as_i64() == Some(*person))
            .unwrap();
        assert_eq!(stored["name"], format!("Local {i}"));
    }
    // Their echoes come back as webhooks; both workers take them (no write follows).
    person_webhooks_delivered(&a, webhooks_before + PERSONS).await;
    race(&a.engine, &b).await;
    assert_eq!(
        sim.calls("v2.updatePerson") - patches_before,
        PERSONS as u64,
        "no ping-pong"
    );

    // Inbox: two edits per person in Pipedrive, each announced to the app once it is merged.
    let mut receiver = TestReceiver::start().await;
    app::create_subscription(&a.engine, &receiver.url, app::generate_secret())
        .await
        .unwrap();
    let webhooks_before = webhooks_before + PERSONS;
    for round in 0..2 {
        sim.advance_clock(std::time::Duration::from_secs(5));
        for (i, person) in persons.iter().enumerate() {
            sim.update_person_as_user(*person, json!({ "name": format!("Remote {round} {i}") }))
                .unwrap();
        }
    }
    person_webhooks_delivered(&a, webhooks_before + 2 * PERSONS).await;
    let stored_events = scalar(&a, "SELECT COUNT(*) FROM inbox_event").await;
    race(&a.engine, &b).await;

    assert_eq!(
        scalar(
            &a,
            "SELECT COUNT(*) FROM inbox_event WHERE state <> 'applied'"
        )
        .await,
        0,
        "every event applied"
    );
    assert_eq!(
        scalar(&a, "SELECT COUNT(*) FROM inbox_event WHERE attempts <> 1").await,
        0,
        "every event applied in one attempt"
    );
    assert_eq!(
        scalar(&a, "SELECT COUNT(*) FROM inbox_event").await,
        stored_events
    );
    for (i, contact) in contacts.iter().enumerate() {
        assert_eq!(
            text_of(&a.contact((*contact).uuid()).await, "name").as_deref(),
            Some(format!("Remote 1 {i}").as_str()),
            "a person's events are applied in order"
        );
    }
    // Each merged event wrote one delivery in its transaction, and each was sent once.
    assert_eq!(
        scalar(
            &a,
            "SELECT COUNT(*) FROM outbound_delivery WHERE event_type = 'contact.updated'"
        )
        .await,
        2 * PERSONS as i64,
        "each event applied exactly once"
    );
    let received = receiver.drain();
    let ids: HashSet<String> = received
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    assert_eq!(received.len(), 2 * PERSONS, "each delivery sent once");
    assert_eq!(ids.len(), received.len(), "no delivery sent twice");
    assert_eq!(
        sim.calls("v2.updatePerson") - patches_before,
        PERSONS as u64,
        "remote edits cause no writes"
    );
}

#[tokio::test]
async fn an_inbox_event_is_claimed_once_retried_at_its_time_and_a_malformed_one_stays_failed() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let db = app.store.db();
    let now = Utc::now();
    // A malformed event, and an event of a connection whose credentials cannot be read yet
    // (stands for the database or the CRM failing while the connection loads).
    for (delivery, person, payload) in [("bad", "1", "{not json"), ("later", "2", r#"{"meta":{}}"#)]
    {
        db.execute(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO inbox_event (id, connection_id, source, delivery_id, object, action, \
             object_id, payload, state, attempts, received_at) \
             VALUES ($1, $2, 'pipedrive', $3, 'person', 'change', $6, $4, 'pending', 0, $5)",
            [
                uuid::Uuid::now_v7().into(),
                connection.into(),
                delivery.into(),
                payload.into(),
                now.into(),
                person.into(),
            ],
        ))
        .await
        .unwrap();
    }
    let claimed = queue::inbox::claim(db, Utc::now(), chrono::Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(
        queue::inbox::claim(db, Utc::now(), chrono::Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty(),
        "a claimed event is nobody else's"
    );
    let later = claimed.iter().find(|e| e.payload.contains("meta")).unwrap();
    let retry_at = Utc::now() + chrono::Duration::seconds(60);
    assert!(
        queue::inbox::retry(db, later, retry_at, "database is locked")
            .await
            .unwrap()
    );
    let bad = claimed
        .iter()
        .find(|e| !e.payload.contains("meta"))
        .unwrap();
    // Its lease runs out and another worker claims it: the first claim can no longer end it.
    let stolen = queue::inbox::claim(
        db,
        Utc::now() + chrono::Duration::seconds(31),
        chrono::Duration::seconds(30),
        10,
    )
    .await
    .unwrap();
    assert_eq!(stolen.len(), 1);
    assert_eq!(stolen[0].id, bad.id);
    assert!(!queue::inbox::complete(db, bad, Utc::now()).await.unwrap());
    // The retried event is not due before its time, and is after.
    assert!(
        queue::inbox::claim(db, Utc::now(), chrono::Duration::seconds(30), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = queue::inbox::claim(
        db,
        retry_at + chrono::Duration::seconds(100),
        chrono::Duration::seconds(30),
        10,
    )
    .await
    .unwrap();
    assert!(again.iter().any(|e| e.id == later.id && e.attempts == 1));
    // Driven for real: the malformed one fails for good, the other applies (no person in it).
    db.execute_unprepared(
        "UPDATE inbox_event SET state = 'pending', run_at = NULL, locked_until = NULL",
    )
    .await
    .unwrap();
    app.drive().await;
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM inbox_event WHERE state = 'failed'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM inbox_event WHERE state = 'applied'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_batch_longer_than_one_statement_stores_each_delivery_once_and_says_which_were_new() {
    use tandem_engine::store::queue::{insert_inbox_events, NewInboxEvent};
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let event = |delivery: usize| NewInboxEvent {
        connection_id: Some(connection),
        source: "pipedrive".into(),
        delivery_id: format!("d-{delivery}"),
        object: "person".into(),
        action: "change".into(),
        object_id: Some(delivery.to_string()),
        payload: format!(r#"{{"meta":{{"id":"d-{delivery}"}}}}"#),
    };
    // Ten deliveries stored before.
    let mut earlier: Vec<NewInboxEvent> = (0..10).map(event).collect();
    let stored = insert_inbox_events(&app.store, earlier.iter_mut(), "pending", Utc::now())
        .await
        .unwrap();
    assert_eq!(stored, vec![true; 10]);
    // 600 more (three statements' worth): the ten again, 580 new ones, and ten of those
    // repeated later in the same batch, in a later statement.
    let mut batch: Vec<NewInboxEvent> = (0..590).map(event).collect();
    batch.extend((100..110).map(event));
    let new = insert_inbox_events(&app.store, batch.iter_mut(), "pending", Utc::now())
        .await
        .unwrap();
    assert_eq!(new.len(), 600);
    let expected: Vec<bool> = (0..600).map(|i| (10..590).contains(&i)).collect();
    assert_eq!(
        new, expected,
        "new exactly for the first sight of each delivery"
    );
    let db = app.store.db();
    let rows = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS n FROM inbox_event WHERE source = 'pipedrive' AND delivery_id LIKE 'd-%'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(rows, 590, "each delivery stored once");
}
