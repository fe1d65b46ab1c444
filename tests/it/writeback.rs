use pipedrive_sim::FaultSpec;
use tandem_engine::sync::app::local;
use tandem_tests::fields::{email, fields, name};
use tandem_tests::{pid, spawn_app, spawn_app_with, TestApp};

fn person_name(person: &serde_json::Value) -> &str {
    person["name"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_contact_added_to_the_pipedrive_list_is_created_in_pipedrive_with_its_ap_id_and_default_owner(
) {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let created = local::create_contact(
        &app.engine,
        fields([name("Grace Hopper"), email("grace@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;

    let sim = app.sim.handle();
    let persons = sim.persons_by_email("grace@example.com");
    assert_eq!(persons.len(), 1, "exactly one person: {persons:?}");
    let person = &persons[0];
    assert_eq!(person_name(person), "Grace Hopper");
    let apid_key = sim
        .person_field_key("apId")
        .expect("the apId field was created on connect");
    assert_eq!(
        person["custom_fields"][&apid_key],
        created.contact_id.to_string()
    );
    assert_eq!(
        person["owner_id"],
        sim.config().user_id,
        "the connecting user owns created persons"
    );
    let link = tandem_engine::sync::links::by_contact(
        app.store.db(),
        connection.into(),
        created.contact_id,
    )
    .await
    .unwrap();
    assert_eq!(link.map(|l| l.person_id), person["id"].as_i64().map(pid));
}

#[tokio::test]
async fn a_contact_neither_linked_nor_in_the_list_never_reaches_pipedrive() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let sim = app.sim.handle();
    sim.reset_counts();
    let created = local::create_contact(
        &app.engine,
        fields([name("Local Only"), email("local@example.com")]),
        false,
    )
    .await
    .unwrap();
    local::update_contact(
        &app.engine,
        created.contact_id,
        fields([name("Still Local")]),
    )
    .await
    .unwrap();
    app.drive().await;
    assert!(sim.persons_by_email("local@example.com").is_empty());
    assert_eq!(
        sim.calls("v2.addPerson") + sim.calls("v2.updatePerson") + sim.calls("v2.searchPersons"),
        0
    );
}

#[tokio::test]
async fn an_edit_to_a_linked_contact_is_sent_as_one_patch_of_the_changed_field() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let created = local::create_contact(
        &app.engine,
        fields([name("Alan Turing"), email("alan@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let sim = app.sim.handle();
    sim.reset_counts();

    local::update_contact(
        &app.engine,
        created.contact_id,
        fields([name("Alan M. Turing")]),
    )
    .await
    .unwrap();
    app.drive().await;

    assert_eq!(sim.calls("v2.updatePerson"), 1);
    let person = &sim.persons_by_email("alan@example.com")[0];
    assert_eq!(person_name(person), "Alan M. Turing");
}

#[tokio::test]
async fn fifty_rapid_edits_to_one_person_collapse_into_at_most_two_patches_with_the_latest_value() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let created = local::create_contact(
        &app.engine,
        fields([name("Edit 0"), email("rapid@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let sim = app.sim.handle();
    sim.reset_counts();
    for i in 1..=50 {
        local::update_contact(
            &app.engine,
            created.contact_id,
            fields([name(&format!("Edit {i}"))]),
        )
        .await
        .unwrap();
    }
    app.drive().await;
    assert!(
        sim.calls("v2.updatePerson") <= 2,
        "{} PATCHes",
        sim.calls("v2.updatePerson")
    );
    assert_eq!(
        person_name(&sim.persons_by_email("rapid@example.com")[0]),
        "Edit 50"
    );
}

#[tokio::test]
async fn a_thousand_edits_to_a_hundred_persons_under_5xx_and_429_faults_converge_without_duplicates(
) {
    let app = spawn_app_with(
        pipedrive_sim::SimConfig {
            time_scale: 0.001,
            seed: 7,
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let connection = app.connect_and_sync().await;
    let mut ids = Vec::new();
    for i in 0..100 {
        let created = local::create_contact(
            &app.engine,
            fields([
                name(&format!("Person {i}")),
                email(&format!("p{i}@example.com")),
            ]),
            true,
        )
        .await
        .unwrap();
        ids.push(created.contact_id);
    }
    app.drive().await;
    let sim = app.sim.handle();
    sim.set_faults(FaultSpec::parse("persons:5xx=0.2,429=0.1").unwrap());
    for round in 0..10 {
        for (i, id) in ids.iter().enumerate() {
            local::update_contact(
                &app.engine,
                *id,
                fields([name(&format!("Person {i} v{round}"))]),
            )
            .await
            .unwrap();
        }
        app.drive().await;
    }
    sim.set_faults(FaultSpec::default());
    app.drive().await;
    assert_eq!(sim.persons().len(), 100, "no duplicates were created");
    for (i, _) in ids.iter().enumerate() {
        let persons = sim.persons_by_email(&format!("p{i}@example.com"));
        assert_eq!(persons.len(), 1);
        assert_eq!(person_name(&persons[0]), format!("Person {i} v9"));
    }
    let dead = tandem_engine::queue::counts(app.store.db(), connection.into())
        .await
        .unwrap();
    assert_eq!(dead.dead, 0);
    assert_eq!(dead.pending, 0);
}

#[tokio::test]
async fn a_write_pipedrive_rejects_becomes_a_dead_letter_with_pipedrives_error_verbatim_in_the_sync_log(
) {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let created = local::create_contact(
        &app.engine,
        fields([name("Soon Nameless"), email("nameless@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let cleared = (
        tandem_core::FieldKey::new("name").unwrap(),
        tandem_core::FieldValue::Cleared,
    );
    local::update_contact(&app.engine, created.contact_id, fields([cleared]))
        .await
        .unwrap();
    app.drive().await;

    let counts = tandem_engine::queue::counts(app.store.db(), connection.into())
        .await
        .unwrap();
    assert_eq!(counts.dead, 1, "not retried forever");
    assert_eq!(counts.pending, 0);
    let filter = tandem_engine::sync::synclog::Filter {
        contact_id: Some(created.contact_id),
        kind: Some("dead_letter".into()),
        ..Default::default()
    };
    let entries = tandem_engine::sync::synclog::list(app.store.db(), &filter)
        .await
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, Some(400));
    let remote_error = entries[0].remote_error.as_deref().unwrap();
    assert!(
        remote_error.contains("Validation failed: name: Parameter 'name' must not be empty"),
        "{remote_error}"
    );
    assert!(entries[0].hint.is_some(), "the admin is told what to do");
}

/// A contact "As Sent" queued for creation, and the person tandem's create left in Pipedrive
/// (its apId names the contact) stamped 5 s later by Pipedrive's clock, before tandem recorded
/// it. Returns the contact and the person's id.
async fn contact_and_its_unrecorded_person(app: &TestApp, address: &str) -> (uuid::Uuid, i64) {
    let created =
        local::create_contact(&app.engine, fields([name("As Sent"), email(address)]), true)
            .await
            .unwrap();
    let sim = app.sim.handle();
    sim.advance_clock(std::time::Duration::from_secs(5));
    let apid_key = sim.person_field_key("apId").unwrap();
    let person = sim
        .create_person_as_user(serde_json::json!({
            "name": "As Sent",
            "emails": [{ "value": address, "primary": true }],
            "custom_fields": { apid_key: created.contact_id.to_string() },
        }))
        .unwrap();
    (created.contact_id.uuid(), person["id"].as_i64().unwrap())
}

async fn poll(app: &TestApp, connection: uuid::Uuid) {
    let conn = tandem_engine::sync::connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    tandem_engine::sync::inbound::poller::poll_once(&app.engine, &conn)
        .await
        .unwrap();
}

async fn contact_name(app: &TestApp, contact: uuid::Uuid) -> Option<String> {
    tandem_tests::fields::text_of(&app.contact(contact).await, "name")
}

/// A create that reached Pipedrive but whose answer was lost (tandem killed), while the app
/// edited the contact; Pipedrive's whole-second clock stamps the person later than that edit.
/// Linking it by apId must keep the edit (and push it), not bring the created value back.
#[tokio::test]
async fn a_person_created_by_tandem_and_found_later_by_its_ap_id_does_not_undo_an_edit_made_meanwhile(
) {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let (contact, person_id) = contact_and_its_unrecorded_person(&app, "race@example.com").await;
    // The app's edit happened before Pipedrive's (later) stamp on the create.
    local::update_contact(
        &app.engine,
        contact.into(),
        fields([name("Edited Meanwhile")]),
    )
    .await
    .unwrap();

    // The poller meets the person first and links it by apId.
    poll(&app, connection).await;
    let link =
        tandem_engine::sync::links::by_contact(app.store.db(), connection.into(), contact.into())
            .await
            .unwrap()
            .expect("linked by apId");
    assert_eq!(link.person_id, pid(person_id));
    assert_eq!(
        contact_name(&app, contact).await.as_deref(),
        Some("Edited Meanwhile"),
        "the later edit is kept"
    );
    app.drive().await;

    let persons = app.sim.handle().persons_by_email("race@example.com");
    assert_eq!(persons.len(), 1, "no second person: {persons:?}");
    assert_eq!(person_name(&persons[0]), "Edited Meanwhile");
    assert_eq!(
        contact_name(&app, contact).await.as_deref(),
        Some("Edited Meanwhile")
    );
}

/// The exception above is narrow: a person edited in Pipedrive since its creation is merged by
/// time as any first meeting is (the newer side wins).
#[tokio::test]
async fn a_person_found_by_its_ap_id_and_edited_in_pipedrive_since_its_creation_is_merged_by_time()
{
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let (contact, person_id) = contact_and_its_unrecorded_person(&app, "edited@example.com").await;
    let sim = app.sim.handle();
    sim.advance_clock(std::time::Duration::from_secs(5));
    sim.update_person_as_user(
        person_id,
        serde_json::json!({ "name": "Renamed In Pipedrive" }),
    )
    .unwrap();

    poll(&app, connection).await;
    app.drive().await;
    assert_eq!(
        contact_name(&app, contact).await.as_deref(),
        Some("Renamed In Pipedrive")
    );
    let persons = sim.persons_by_email("edited@example.com");
    assert_eq!(persons.len(), 1);
    assert_eq!(person_name(&persons[0]), "Renamed In Pipedrive");
}

/// A PATCH whose outcome tandem could not know (here a 5xx; a timeout is the same) may have
/// landed. When Pipedrive shows its value — here set as the write would have — and later a
/// Pipedrive user edits another field, the value is tandem's own echo, not a newer Pipedrive
/// value that takes over the edit the app made since.
#[tokio::test]
async fn a_write_with_an_unknown_outcome_that_landed_is_recognised_as_an_echo_and_does_not_undo_a_later_app_edit(
) {
    let app = spawn_app_with(
        pipedrive_sim::SimConfig {
            persons: 1,
            time_scale: 0.001,
            ..pipedrive_sim::SimConfig::default()
        },
        |_| {},
    )
    .await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let person_id = sim.persons()[0]["id"].as_i64().unwrap();
    let contact =
        tandem_engine::sync::links::by_person(app.store.db(), connection.into(), pid(person_id))
            .await
            .unwrap()
            .unwrap()
            .contact_id;

    sim.set_faults(FaultSpec::parse("v2.updatePerson:5xx=1").unwrap());
    local::update_contact(&app.engine, contact, fields([name("Sent Once")]))
        .await
        .unwrap();
    tandem_engine::sync::worker::run_outbox_once(&app.engine)
        .await
        .unwrap();
    sim.set_faults(FaultSpec::default());
    // What Pipedrive would hold had the write landed.
    sim.update_person_as_user(person_id, serde_json::json!({ "name": "Sent Once" }))
        .unwrap();

    // The app edits again; then a Pipedrive user edits the phone, later by Pipedrive's clock.
    local::update_contact(&app.engine, contact, fields([name("Edited After")]))
        .await
        .unwrap();
    sim.advance_clock(std::time::Duration::from_secs(5));
    sim.update_person_as_user(
        person_id,
        serde_json::json!({ "phones": [{ "value": "+15550001", "primary": true }] }),
    )
    .unwrap();
    app.await_person_webhooks(2).await;
    app.drive().await;

    assert_eq!(
        contact_name(&app, contact.uuid()).await.as_deref(),
        Some("Edited After")
    );
    assert_eq!(person_name(&sim.person(person_id).unwrap()), "Edited After");
    let phone = app
        .contact(contact.uuid())
        .await
        .fields
        .get("phone")
        .cloned();
    assert!(
        format!("{phone:?}").contains("+15550001"),
        "the Pipedrive edit arrived: {phone:?}"
    );
}
