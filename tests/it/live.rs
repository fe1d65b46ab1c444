//! tandem as `serve` runs it: workers on, nobody driving them by hand.

use std::time::Duration;

use serde_json::json;
use tandem_engine::sync::{app::local, links};
use tandem_tests::fields::{email, fields, name, text_of};
use tandem_tests::{pid, spawn_app_with, TestApp};

/// Waits (bounded) for a condition the background workers make true.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_workers_running_the_initial_sync_starts_itself_and_edits_flow_both_ways() {
    let sim_config = pipedrive_sim::SimConfig {
        time_scale: 0.001,
        persons: 50,
        ..Default::default()
    };
    let app = spawn_app_with(sim_config, |settings| {
        settings.workers.enabled = true;
        settings.workers.poll_interval_secs = 1;
        settings.workers.idle_poll_ms = 10;
    })
    .await;
    let connection = app.connect_pipedrive().await;
    let sim = app.sim.handle();
    let person = sim.persons()[3]["id"].as_i64().unwrap();
    let db = app.store.db().clone();
    eventually("the initial sync links every person", || {
        let db = db.clone();
        async move {
            tandem_engine::store::stats::count_links(&db, connection.into())
                .await
                .unwrap()
                == 50
        }
    })
    .await;

    sim.update_person_as_user(person, json!({ "name": "Edited Live" }))
        .unwrap();
    let contact_id = links::by_person(&db, connection.into(), pid(person))
        .await
        .unwrap()
        .unwrap()
        .contact_id;
    eventually("the Pipedrive edit reaches the contact", || {
        let db = db.clone();
        async move {
            let contact = tandem_engine::sync::app::contacts::load(&db, contact_id)
                .await
                .unwrap()
                .unwrap();
            text_of(&contact, "name").as_deref() == Some("Edited Live")
        }
    })
    .await;

    let created = local::create_contact(
        &app.engine,
        fields([name("Born Local"), email("born@example.com")]),
        true,
    )
    .await
    .unwrap();
    eventually("the new contact reaches Pipedrive", || {
        let sim = sim.clone();
        async move { sim.persons_by_email("born@example.com").len() == 1 }
    })
    .await;
    eventually("the contact is linked to it", || {
        let db = db.clone();
        async move {
            links::by_contact(&db, connection.into(), created.contact_id)
                .await
                .unwrap()
                .is_some()
        }
    })
    .await;
}

/// tandem with its workers running (change capture hourly) and a Pipedrive of one person,
/// linked by the initial sync; `tweak` sets the rest. Returns the app, the person's id and its
/// contact.
async fn one_linked_person(
    tweak: impl FnOnce(&mut tandem_engine::config::Settings),
) -> (TestApp, i64, tandem_core::ContactId) {
    let app = spawn_app_with(
        pipedrive_sim::SimConfig {
            time_scale: 0.001,
            persons: 1,
            ..Default::default()
        },
        |settings| {
            settings.workers.enabled = true;
            settings.workers.poll_interval_secs = 3600;
            tweak(settings);
        },
    )
    .await;
    let connection = app.connect_and_sync().await;
    app.drive().await;
    let person = app.sim.handle().persons()[0]["id"].as_i64().unwrap();
    let contact_id = links::by_person(app.store.db(), connection.into(), pid(person))
        .await
        .unwrap()
        .unwrap()
        .contact_id;
    (app, person, contact_id)
}

#[tokio::test]
async fn an_accepted_webhook_wakes_the_queue_loop_at_once_even_with_the_mirror_loop_running() {
    // The idle poll is longer than the wait below: only the wake can make the edit arrive.
    let (app, person, contact_id) =
        one_linked_person(|settings| settings.workers.idle_poll_ms = 600_000).await;
    let sim = app.sim.handle();
    let db = app.store.db().clone();
    // The loops found nothing to do after the sync and wait; a webhook is accepted.
    sim.update_person_as_user(person, json!({ "name": "Woken" }))
        .unwrap();
    eventually(
        "the Pipedrive edit reaches the contact without the idle poll",
        || {
            let db = db.clone();
            async move {
                let contact = tandem_engine::sync::app::contacts::load(&db, contact_id)
                    .await
                    .unwrap()
                    .unwrap();
                text_of(&contact, "name").as_deref() == Some("Woken")
            }
        },
    )
    .await;
}

#[tokio::test]
async fn on_salesforce_edits_put_back_to_share_a_call_leave_when_their_wait_ends_without_any_other_wake(
) {
    // The idle poll is an hour and nothing else happens after the edits: only the end of
    // their wait can wake the loop that sends them.
    let sf = tandem_tests::salesforce::spawn_sf_app(
        salesforce_sim::SfSimConfig::default(),
        |settings| {
            settings.workers.enabled = true;
            settings.workers.poll_interval_secs = 1;
            settings.workers.idle_poll_ms = 3_600_000;
            settings.salesforce.write_batch_window_ms = 4_000;
            settings.salesforce.poll_interval_secs = 3600;
            settings.salesforce.related_poll_interval_secs = 3600;
        },
    )
    .await;
    let h = sf.sf.handle();
    let org = salesforce_sim::OrgKind::Production;
    let ids: Vec<String> = (0..3)
        .map(|i| {
            h.insert_record(
                org,
                "Contact",
                json!({ "FirstName": "Con", "LastName": format!("Tact{i}"), "Email": format!("con{i}@example.com") }),
            )
            .unwrap()
        })
        .collect();
    let connection = sf.connect(false).await;
    let db = sf.app.store.db().clone();
    eventually("the initial sync links the three Contacts", || {
        let db = db.clone();
        async move {
            tandem_engine::store::stats::count_links(&db, connection.into())
                .await
                .unwrap()
                == 3
        }
    })
    .await;
    let mut contacts = Vec::new();
    for id in &ids {
        contacts.push(sf.contact_of(connection, id).await);
    }
    let holds = |id: &str, last: &str| {
        h.record(org, "Contact", id)
            .is_some_and(|record| record["LastName"] == last)
    };
    local::update_contact(&sf.app.engine, contacts[0], fields([name("Edited Alone")]))
        .await
        .unwrap();
    eventually("the first edit reaches Salesforce at once", || async {
        holds(&ids[0], "Alone")
    })
    .await;
    let before = h.calls("composite.composite");
    // Within the window of the first call: these two wait for company.
    for (contact, last) in [
        (contacts[1], "Edited Second"),
        (contacts[2], "Edited Third"),
    ] {
        local::update_contact(&sf.app.engine, contact, fields([name(last)]))
            .await
            .unwrap();
    }
    eventually(
        "both edits reach Salesforce without the idle poll",
        || async { holds(&ids[1], "Second") && holds(&ids[2], "Third") },
    )
    .await;
    assert_eq!(
        h.calls("composite.composite") - before,
        1,
        "the two edits shared one call"
    );
}

#[tokio::test]
async fn a_second_edit_paced_behind_the_first_write_leaves_when_its_wait_ends_without_any_other_wake(
) {
    // The idle poll is an hour and nothing else happens after the second edit: only the end
    // of its pacing can wake the loop that sends it.
    let (app, person, contact_id) = one_linked_person(|settings| {
        settings.workers.idle_poll_ms = 3_600_000;
        settings.workers.min_write_interval_ms = 3_000;
    })
    .await;
    let sim = app.sim.handle();
    let named = |wanted: &str| {
        sim.persons()
            .iter()
            .any(|p| p["id"].as_i64() == Some(person) && p["name"] == wanted)
    };
    local::update_contact(&app.engine, contact_id, fields([name("Paced First")]))
        .await
        .unwrap();
    eventually("the first edit reaches Pipedrive at once", || async {
        named("Paced First")
    })
    .await;
    // Less than the pacing interval after that write: this one is put back until it ends.
    local::update_contact(&app.engine, contact_id, fields([name("Paced Second")]))
        .await
        .unwrap();
    eventually(
        "the second edit reaches Pipedrive without the idle poll",
        || async { named("Paced Second") },
    )
    .await;
}
