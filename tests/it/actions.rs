use pipedrive_sim::FaultSpec;
use serde_json::json;
use tandem_engine::sync::outbound::actions::{self, ActionError, ContactRef, Submit};
use tandem_engine::sync::{app::local, links};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::spawn_app;

fn submit(action: &str, contact_id: uuid::Uuid, params: serde_json::Value, key: &str) -> Submit {
    Submit {
        action: actions::parse_action(action).unwrap(),
        contact: ContactRef::Id {
            contact_id: contact_id.into(),
        },
        params,
        idempotency_key: key.to_owned(),
        connection_id: None,
    }
}

#[tokio::test]
async fn add_deal_on_a_contact_without_a_person_creates_one_person_owned_by_the_connecting_user_and_one_deal(
) {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let contact = local::create_contact(
        &app.engine,
        fields([name("Deal Maker"), email("deal@example.com")]),
        false,
    )
    .await
    .unwrap()
    .contact_id;
    let submitted = actions::submit(
        &app.engine,
        submit(
            "add_deal",
            contact.uuid(),
            json!({ "title": "Big deal", "value": 1200, "currency": "EUR" }),
            "journey-1-step-3",
        ),
    )
    .await
    .unwrap();
    assert_eq!(submitted.record.state, "queued");
    app.drive().await;

    let sim = app.sim.handle();
    let persons = sim.persons_by_email("deal@example.com");
    assert_eq!(persons.len(), 1);
    assert_eq!(persons[0]["owner_id"], sim.config().user_id);
    let deals = sim.deals();
    assert_eq!(deals.len(), 1);
    assert_eq!(deals[0]["person_id"], persons[0]["id"]);
    assert_eq!(deals[0]["title"], "Big deal");
    let record = actions::get(&app.engine, submitted.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, "done");
    assert_eq!(record.result.unwrap()["deal_id"], deals[0]["id"]);
    assert!(
        links::by_contact(app.store.db(), connection.into(), contact)
            .await
            .unwrap()
            .is_some(),
        "the contact is now linked"
    );

    // The journey retries the same request: nothing new.
    let replay = actions::submit(
        &app.engine,
        submit(
            "add_deal",
            contact.uuid(),
            json!({ "title": "Big deal", "value": 1200, "currency": "EUR" }),
            "journey-1-step-3",
        ),
    )
    .await
    .unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.record.id, submitted.record.id);
    app.drive().await;
    assert_eq!(sim.deals().len(), 1);
    assert_eq!(sim.persons_by_email("deal@example.com").len(), 1);
    // The same key for a different request is refused.
    let reused = actions::submit(
        &app.engine,
        submit(
            "add_deal",
            contact.uuid(),
            json!({ "title": "Other" }),
            "journey-1-step-3",
        ),
    )
    .await;
    assert!(matches!(reused, Err(ActionError::KeyReused)));
}

#[tokio::test]
async fn update_deal_stage_on_an_unlinked_contact_fails_without_creating_anything() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let conn_id = tandem_engine::sync::connections::active_id(
        app.store.db(),
        &tandem_core::TenantId::default(),
    )
    .await
    .unwrap()
    .unwrap();
    let conn = tandem_engine::sync::connections::load(&app.engine, conn_id)
        .await
        .unwrap();
    let stage = app.engine.crm.stages(&conn.session).await.unwrap()[0].id;
    let contact = local::create_contact(
        &app.engine,
        fields([name("Nobody"), email("nobody@example.com")]),
        false,
    )
    .await
    .unwrap()
    .contact_id;
    let sim = app.sim.handle();
    sim.reset_counts();
    let result = actions::submit(
        &app.engine,
        submit(
            "update_deal_stage",
            contact.uuid(),
            json!({ "stage_id": stage }),
            "k-stage",
        ),
    )
    .await;
    assert!(
        matches!(
            result,
            Err(ActionError::NoPipedrivePerson("update_deal_stage"))
        ),
        "{result:?}"
    );
    app.drive().await;
    assert!(sim.persons_by_email("nobody@example.com").is_empty());
    assert!(sim.deals().is_empty());
    assert_eq!(sim.calls("v2.addPerson") + sim.calls("v2.searchPersons"), 0);
}

#[tokio::test]
async fn invalid_parameters_are_refused_with_a_precise_reason() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let contact = local::create_contact(
        &app.engine,
        fields([name("V"), email("v@example.com")]),
        false,
    )
    .await
    .unwrap()
    .contact_id;
    let cases = [
        ("add_deal", json!({ "value": 5 }), "`title` is required"),
        (
            "add_deal",
            json!({ "title": "x", "stage_id": 999_999 }),
            "unknown stage 999999",
        ),
        (
            "add_deal",
            json!({ "title": "x", "currency": "euro" }),
            "3-letter ISO code",
        ),
        (
            "schedule_activity",
            json!({ "subject": "Call", "due_date": "tomorrow" }),
            "YYYY-MM-DD",
        ),
        (
            "update_person_field",
            json!({ "field": "shoe_size", "value": 42 }),
            "unknown field",
        ),
        (
            "assign_person_owner",
            json!({ "owner_id": 1, "colour": "red" }),
            "unknown parameter `colour`",
        ),
    ];
    for (i, (action, params, expected)) in cases.into_iter().enumerate() {
        let error = actions::submit(
            &app.engine,
            submit(action, contact.uuid(), params, &format!("bad-{i}")),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(error, ActionError::Invalid(_)),
            "{action}: {error:?}"
        );
        assert!(error.to_string().contains(expected), "{action}: {error}");
    }
    assert!(matches!(
        actions::parse_action("delete_person"),
        Err(ActionError::UnknownAction(_))
    ));
}

#[tokio::test]
async fn a_hundred_concurrent_actions_for_ten_contacts_under_injected_429s_create_no_duplicate_persons_or_deals(
) {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let mut contacts = Vec::new();
    for i in 0..10 {
        contacts.push(
            local::create_contact(
                &app.engine,
                fields([name(&format!("C{i}")), email(&format!("c{i}@example.com"))]),
                false,
            )
            .await
            .unwrap()
            .contact_id,
        );
    }
    let sim = app.sim.handle();
    sim.set_faults(FaultSpec::parse("persons:429=0.2;deals:429=0.2;activities:429=0.2").unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..100 {
        let engine = app.engine.clone();
        let contact = contacts[n % 10];
        let (action, params) = match n % 3 {
            0 => ("add_deal", json!({ "title": format!("Deal {n}") })),
            1 => (
                "schedule_activity",
                json!({ "subject": format!("Call {n}"), "due_date": "2026-12-01" }),
            ),
            _ => ("assign_person_owner", json!({ "owner_id": 1 })),
        };
        tasks.spawn(async move {
            actions::submit(
                &engine,
                submit(action, contact.uuid(), params, &format!("concurrent-{n}")),
            )
            .await
            .map(|s| s.record.id)
        });
    }
    let mut ids = Vec::new();
    while let Some(result) = tasks.join_next().await {
        ids.push(result.unwrap().unwrap());
    }
    app.drive().await;
    sim.set_faults(FaultSpec::default());
    app.drive().await;
    for i in 0..10 {
        assert_eq!(
            sim.persons_by_email(&format!("c{i}@example.com")).len(),
            1,
            "one person for contact {i}"
        );
    }
    let deals = sim.deals();
    assert_eq!(deals.len(), 34, "one deal per add_deal request");
    let mut titles: Vec<_> = deals
        .iter()
        .map(|d| d["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), 34, "no duplicate deals");
    let mut subjects: Vec<_> = sim
        .activities()
        .iter()
        .map(|a| a["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        subjects.len(),
        33,
        "one activity per schedule_activity request"
    );
    subjects.sort();
    subjects.dedup();
    assert_eq!(subjects.len(), 33, "no duplicate activities");
    for id in ids {
        assert_eq!(
            actions::get(&app.engine, id).await.unwrap().unwrap().state,
            "done"
        );
    }
}

#[tokio::test]
async fn the_actions_endpoint_queues_replays_refuses_and_reports_completion_to_the_app() {
    use reqwest::{Method, StatusCode};
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let mut receiver = tandem_tests::receiver::TestReceiver::start().await;
    let subscribed = app
        .api(Method::POST, "/api/v1/webhook-subscriptions")
        .json(&json!({ "url": receiver.url }))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), StatusCode::CREATED);
    local::create_contact(
        &app.engine,
        fields([name("Api Deal"), email("apideal@example.com")]),
        false,
    )
    .await
    .unwrap();

    let request = json!({ "email": "apideal@example.com", "params": { "title": "From a journey", "value": 99 } });
    let missing_key = app
        .api(Method::POST, "/api/v1/actions/add_deal")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(missing_key.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = missing_key.json().await.unwrap();
    assert_eq!(body["code"], "idempotency_key_required");

    let queued = app
        .api(Method::POST, "/api/v1/actions/add_deal")
        .header("Idempotency-Key", "j-7")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), StatusCode::ACCEPTED);
    let queued: serde_json::Value = queued.json().await.unwrap();
    assert_eq!(queued["state"], "queued");
    let replay = app
        .api(Method::POST, "/api/v1/actions/add_deal")
        .header("Idempotency-Key", "j-7")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert!(replay.status().is_success());
    let replay: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], queued["id"]);

    app.drive().await;
    let id = queued["id"].as_str().unwrap();
    let done: serde_json::Value = app
        .api(Method::GET, &format!("/api/v1/actions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["state"], "done");
    assert_eq!(app.sim.handle().deals().len(), 1);
    // The app is told: first the contact got linked, then the action finished.
    let mut types = Vec::new();
    while !types.contains(&"action.done".to_owned()) {
        types.push(
            receiver.next().await.json()["type"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let linked = types
        .iter()
        .position(|t| t == "contact.linked")
        .expect("the app hears the contact was linked");
    assert!(
        linked < types.len() - 1,
        "linked before the action is reported done: {types:?}"
    );

    let unknown_stage = app
        .api(Method::POST, "/api/v1/actions/add_deal")
        .header("Idempotency-Key", "j-8")
        .json(&json!({ "email": "apideal@example.com", "params": { "title": "x", "stage_id": 424_242 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_stage.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = unknown_stage.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown stage 424242"),
        "{body}"
    );

    local::create_contact(
        &app.engine,
        fields([name("No Person"), email("noperson@example.com")]),
        false,
    )
    .await
    .unwrap();
    let no_person = app
        .api(Method::POST, "/api/v1/actions/update_deal_stage")
        .header("Idempotency-Key", "j-9")
        .json(&json!({ "email": "noperson@example.com", "params": { "stage_id": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(no_person.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = no_person.json().await.unwrap();
    assert_eq!(body["code"], "no_pipedrive_person");
    assert!(app
        .sim
        .handle()
        .persons_by_email("noperson@example.com")
        .is_empty());

    let unknown_action = app
        .api(Method::POST, "/api/v1/actions/delete_person")
        .header("Idempotency-Key", "j-10")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_action.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_pipedrive_failure_during_an_action_is_a_precise_upstream_error_with_pipedrives_text_not_a_500(
) {
    use reqwest::{Method, StatusCode};
    let app = spawn_app().await;
    app.connect_and_sync().await;
    local::create_contact(
        &app.engine,
        fields([name("Upstream"), email("upstream@example.com")]),
        false,
    )
    .await
    .unwrap();
    // Checking the stage reads Pipedrive's stages, which fail.
    app.sim
        .handle()
        .set_faults(FaultSpec::parse("stages:500=1").unwrap());
    let response = app
        .api(Method::POST, "/api/v1/actions/add_deal")
        .header("Idempotency-Key", "upstream-1")
        .json(
            &json!({ "email": "upstream@example.com", "params": { "title": "x", "stage_id": 1 } }),
        )
        .send()
        .await
        .unwrap();
    app.sim.handle().set_faults(FaultSpec::default());
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "pipedrive_rejected", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Pipedrive answered 500"),
        "{body}"
    );
}
