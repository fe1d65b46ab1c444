//! Organizations in the two-way sync (issue 20): the contact's company (`org_name`) is the
//! Pipedrive person's organization, found by name (trimmed, case-insensitive) before one is
//! created, never twice; renames and moves in Pipedrive reach the contacts. On Salesforce a
//! Lead's company is its `Company` text and a Contact's is its Account, found or created the
//! same way (more in `salesforce.rs`).

use std::time::Duration;

use serde_json::{json, Value};
use tandem_core::{FieldKey, FieldValue};
use tandem_engine::store::field_mappings::{self, FieldMappingRow};
use tandem_engine::sync::app::local;
use tandem_engine::sync::inbound::poller;
use tandem_engine::sync::worker;
use tandem_engine::sync::worker::ExecutionOutcome;
use tandem_tests::fields::{company, email, fields, name, text, text_of};
use tandem_tests::{spawn_app, TestApp};

/// The simulator's organizations whose name is `name` once trimmed and lower-cased.
fn orgs_named(app: &TestApp, name: &str) -> Vec<Value> {
    let wanted = name.trim().to_lowercase();
    app.sim
        .handle()
        .organizations()
        .into_iter()
        .filter(|o| o["name"].as_str().unwrap_or_default().trim().to_lowercase() == wanted)
        .collect()
}

fn person_of(app: &TestApp, address: &str) -> Value {
    let found = app.sim.handle().persons_by_email(address);
    assert_eq!(found.len(), 1, "one person with {address}");
    found.into_iter().next().unwrap()
}

async fn contact_with_company(app: &TestApp, label: &str, address: &str, org: &str) -> uuid::Uuid {
    local::create_contact(
        &app.engine,
        fields([name(label), email(address), company(org)]),
        true,
    )
    .await
    .unwrap()
    .contact_id
    .uuid()
}

/// Waits (bounded) until the simulator delivered a webhook of `entity` to tandem, then drives.
async fn await_webhook(app: &TestApp, entity: &str, action: &str) {
    app.sim
        .handle()
        .wait_for_deliveries(Duration::from_secs(20), |deliveries| {
            deliveries
                .iter()
                .any(|d| d.delivered && d.entity == entity && d.action == action)
        })
        .await;
    app.drive().await;
}

#[tokio::test]
async fn a_company_set_in_the_app_creates_an_organization_and_links_the_person_to_it() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let contact = contact_with_company(&app, "Ada", "ada@example.com", "Analytical Engines").await;
    app.drive().await;

    let orgs = orgs_named(&app, "Analytical Engines");
    assert_eq!(orgs.len(), 1, "one organization created");
    let person = person_of(&app, "ada@example.com");
    assert_eq!(person["org_id"], orgs[0]["id"]);
    assert_eq!(
        text_of(&app.contact(contact).await, "org_name").as_deref(),
        Some("Analytical Engines")
    );

    // A new company moves the person to (a new) organization; clearing it unlinks the person.
    local::update_contact(
        &app.engine,
        contact.into(),
        fields([company("Difference Ltd")]),
    )
    .await
    .unwrap();
    app.drive().await;
    let difference = orgs_named(&app, "Difference Ltd");
    assert_eq!(difference.len(), 1);
    assert_eq!(
        person_of(&app, "ada@example.com")["org_id"],
        difference[0]["id"]
    );
    let cleared = (FieldKey::new("org_name").unwrap(), FieldValue::Cleared);
    local::update_contact(&app.engine, contact.into(), fields([cleared]))
        .await
        .unwrap();
    app.drive().await;
    assert!(person_of(&app, "ada@example.com")["org_id"].is_null());
}

#[tokio::test]
async fn an_existing_organization_with_different_case_and_spaces_is_reused_not_duplicated() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let existing = app
        .sim
        .handle()
        .create_org_as_user(json!({ "name": "ACME Corp" }))
        .unwrap();
    contact_with_company(&app, "Wile", "wile@example.com", "  acme   corp ").await;
    app.drive().await;

    assert_eq!(
        orgs_named(&app, "acme corp").len(),
        1,
        "no second organization"
    );
    assert_eq!(
        person_of(&app, "wile@example.com")["org_id"],
        existing["id"]
    );
}

#[tokio::test]
async fn twenty_contacts_with_the_same_new_company_synced_concurrently_create_exactly_one_organization(
) {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let mut addresses = Vec::new();
    for i in 0..20 {
        let address = format!("initech{i}@example.com");
        // The same company, spelled as twenty people would.
        let spelled = if i % 2 == 0 { "Initech" } else { " INITECH " };
        contact_with_company(&app, &format!("Peter {i}"), &address, spelled).await;
        addresses.push(address);
    }
    // Five workers at once, each claiming and pushing jobs until none is left.
    let workers: Vec<_> = (0..5)
        .map(|_| {
            let engine = app.engine.clone();
            tokio::spawn(async move {
                loop {
                    match worker::run_outbox_once(&engine).await.unwrap() {
                        ExecutionOutcome::QueueEmpty => break,
                        _ => continue,
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    app.drive().await;

    let orgs = orgs_named(&app, "initech");
    assert_eq!(orgs.len(), 1, "exactly one organization: {orgs:?}");
    for address in &addresses {
        assert_eq!(
            person_of(&app, address)["org_id"],
            orgs[0]["id"],
            "{address}"
        );
    }
}

#[tokio::test]
async fn an_organization_renamed_in_pipedrive_changes_the_company_of_every_linked_contact() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let first = contact_with_company(&app, "Hank", "hank@example.com", "Globex").await;
    let second = contact_with_company(&app, "Mindy", "mindy@example.com", "globex").await;
    let other = contact_with_company(&app, "Homer", "homer@example.com", "Springfield Power").await;
    app.drive().await;
    let globex = orgs_named(&app, "Globex");
    assert_eq!(globex.len(), 1);
    let sim = app.sim.handle();
    sim.wait_for_deliveries(Duration::from_secs(20), |d| {
        d.iter()
            .filter(|d| d.delivered && d.entity == "person")
            .count()
            >= 3
    })
    .await;
    app.drive().await;
    sim.clear_deliveries();

    sim.update_org_as_user(
        globex[0]["id"].as_i64().unwrap(),
        json!({ "name": "Globex Corporation" }),
    )
    .unwrap();
    await_webhook(&app, "organization", "change").await;

    for contact in [first, second] {
        assert_eq!(
            text_of(&app.contact(contact).await, "org_name").as_deref(),
            Some("Globex Corporation")
        );
    }
    assert_eq!(
        text_of(&app.contact(other).await, "org_name").as_deref(),
        Some("Springfield Power")
    );
    // The contacts' new company is Pipedrive's own: nothing is written back.
    app.drive().await;
    assert_eq!(orgs_named(&app, "Globex Corporation").len(), 1);
    assert!(orgs_named(&app, "Globex").is_empty());
}

#[tokio::test]
async fn a_person_moved_to_another_organization_in_pipedrive_changes_the_contacts_company() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    let contact = contact_with_company(&app, "Richard", "richard@example.com", "Hooli").await;
    app.drive().await;
    app.await_person_webhooks(1).await;
    let sim = app.sim.handle();
    let piper = sim
        .create_org_as_user(json!({ "name": "Pied Piper" }))
        .unwrap();
    sim.clear_deliveries();
    let person = person_of(&app, "richard@example.com");
    sim.update_person_as_user(
        person["id"].as_i64().unwrap(),
        json!({ "org_id": piper["id"] }),
    )
    .unwrap();
    app.await_person_webhooks(1).await;

    assert_eq!(
        text_of(&app.contact(contact).await, "org_name").as_deref(),
        Some("Pied Piper")
    );
    // The move is not undone by a write back.
    app.drive().await;
    assert_eq!(
        person_of(&app, "richard@example.com")["org_id"],
        piper["id"]
    );
}

#[tokio::test]
async fn a_company_mapped_crm_to_app_only_is_not_written_back_to_pipedrive() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let now = app.engine.now();
    field_mappings::save(
        app.store.db(),
        FieldMappingRow {
            id: uuid::Uuid::new_v4(),
            connection_id: connection,
            local_field: "org_name".to_owned(),
            remote_field: "org_id".to_owned(),
            remote_type: "org".to_owned(),
            direction: "inbound".to_owned(),
            owner: None,
            currency: None,
            entity: "person".to_owned(),
            created_at: now,
            updated_at: now,
        },
        false,
    )
    .await
    .unwrap();
    contact_with_company(&app, "Ann", "ann@example.com", "Vandelay Industries").await;
    app.drive().await;

    assert!(orgs_named(&app, "Vandelay Industries").is_empty());
    assert!(person_of(&app, "ann@example.com")["org_id"].is_null());
}

#[tokio::test]
async fn a_salesforce_leads_company_is_its_company_text_and_creates_no_account() {
    use tandem_engine::sync::connections;
    let sf = tandem_tests::salesforce::spawn_sf_app(salesforce_sim::SfSimConfig::default(), |_| {})
        .await;
    let connection = sf.connect_and_sync(false).await;
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    assert!(conn.map.organization_field().is_none());
    assert!(!conn.crm.has_organizations());
    let contact = local::create_contact(
        &sf.app.engine,
        fields([
            name("Sally Force"),
            email("sally@example.com"),
            company("Cloud Co"),
        ]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    sf.app.drive().await;
    assert_eq!(
        text_of(&sf.app.contact(contact.uuid()).await, "org_name").as_deref(),
        Some("Cloud Co")
    );
    let h = sf.sf.handle();
    let p = salesforce_sim::OrgKind::Production;
    let lead = h
        .ids_by_email(p, "Lead", "sally@example.com")
        .pop()
        .unwrap();
    assert_eq!(h.record(p, "Lead", &lead).unwrap()["Company"], "Cloud Co");
    assert_eq!(h.count(p, "Account"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_and_single_writes_resolving_the_same_new_companies_at_once_create_one_salesforce_account_per_name(
) {
    use salesforce_sim::OrgKind;
    use tandem_engine::sync::{connections, organizations};
    let sf = tandem_tests::salesforce::spawn_sf_app(salesforce_sim::SfSimConfig::default(), |_| {})
        .await;
    let h = sf.sf.handle();
    let p = OrgKind::Production;
    let connection = sf.connect_and_sync(false).await;
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    // Four batches (each resolving its names together) and four single writes, at once, over
    // three new names spelled differently.
    let spellings = [
        vec!["Initech", "Globex", "Hooli"],
        vec![" INITECH ", "hooli"],
        vec!["globex", "Hooli", "initech"],
        vec!["HOOLI", "Globex "],
    ];
    let mut tasks = Vec::new();
    for (i, names) in spellings.iter().enumerate() {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let (engine, batch) = (sf.app.engine.clone(), conn.clone());
        tasks.push(tokio::spawn(async move {
            organizations::resolve_many(&engine, &batch, &names)
                .await
                .unwrap();
        }));
        let (engine, single) = (sf.app.engine.clone(), conn.clone());
        let name = spellings[i][0];
        tasks.push(tokio::spawn(async move {
            organizations::find_or_create(&engine, &single, name)
                .await
                .unwrap()
                .expect("an Account");
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut names: Vec<String> = h
        .ids(p, "Account")
        .iter()
        .map(|id| {
            let record = h.record(p, "Account", id).unwrap();
            record["Name"].as_str().unwrap().trim().to_lowercase()
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["globex", "hooli", "initech"],
        "one Account per name"
    );
    for name in ["Initech", "globex", "HOOLI"] {
        let first = organizations::find_or_create(&sf.app.engine, &conn, name)
            .await
            .unwrap();
        assert!(first.is_some());
    }
    assert_eq!(h.count(p, "Account"), 3, "found again, not created");

    // End to end: Contacts given one of them through the app join that Account.
    let ids: Vec<String> = (0..10)
        .map(|i| {
            h.insert_record(
                p,
                "Contact",
                json!({ "LastName": format!("Gibbons{i}"), "Email": format!("peter{i}@initech.example") }),
            )
            .unwrap()
        })
        .collect();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    for id in &ids {
        let contact = sf.contact_of(connection, id).await;
        local::update_contact(&sf.app.engine, contact, fields([company(" initech")]))
            .await
            .unwrap();
    }
    sf.app.drive().await;
    assert_eq!(h.count(p, "Account"), 3);
    let initech = h
        .ids(p, "Account")
        .into_iter()
        .find(|id| {
            h.record(p, "Account", id).unwrap()["Name"]
                .as_str()
                .is_some_and(|n| n.trim().eq_ignore_ascii_case("initech"))
        })
        .unwrap();
    for id in &ids {
        assert_eq!(
            h.record(p, "Contact", id).unwrap()["AccountId"],
            json!(initech),
            "{id}"
        );
    }
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
}

// Organization fields in the field mapping (entity `organization`).

async fn put_mapping(app: &TestApp, connection: uuid::Uuid, body: Value) -> reqwest::Response {
    app.admin(
        reqwest::Method::PUT,
        &format!("/admin/api/connections/{connection}/mappings"),
    )
    .json(&body)
    .send()
    .await
    .unwrap()
}

/// Maps the local field `local` to the organization field `key` with `direction`.
async fn map_organization_field(
    app: &TestApp,
    connection: uuid::Uuid,
    local: &str,
    key: &str,
    direction: &str,
) {
    let saved = put_mapping(
        app,
        connection,
        json!({ "local_field": local, "remote_field": key, "entity": "organization", "direction": direction }),
    )
    .await;
    assert_eq!(saved.status(), reqwest::StatusCode::OK);
    let saved: Value = saved.json().await.unwrap();
    assert_eq!(saved["entity"], "organization");
}

fn org_by_id(app: &TestApp, id: &Value) -> Value {
    app.sim
        .handle()
        .organizations()
        .into_iter()
        .find(|o| &o["id"] == id)
        .unwrap()
}

#[tokio::test]
async fn an_organization_field_mapped_crm_to_app_reaches_the_contact_when_changed_in_pipedrive_and_is_never_written_back(
) {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let segment = sim
        .add_organization_field("Segment", "varchar", &[])
        .unwrap();
    map_organization_field(&app, connection, "segment", &segment, "inbound").await;
    let contact = contact_with_company(&app, "Hank", "hank@example.com", "Globex").await;
    app.drive().await;
    app.await_person_webhooks(1).await;
    let globex = orgs_named(&app, "Globex");
    assert_eq!(globex.len(), 1);
    sim.clear_deliveries();

    sim.update_org_as_user(
        globex[0]["id"].as_i64().unwrap(),
        json!({ "custom_fields": { &segment: "Energy" } }),
    )
    .unwrap();
    await_webhook(&app, "organization", "change").await;
    assert_eq!(
        text_of(&app.contact(contact).await, "segment").as_deref(),
        Some("Energy")
    );

    // Inbound only: the app's own change stays in the app.
    local::update_contact(
        &app.engine,
        contact.into(),
        fields([text("segment", "Retail")]),
    )
    .await
    .unwrap();
    app.drive().await;
    let org = org_by_id(&app, &globex[0]["id"]);
    assert_eq!(org["custom_fields"][&segment], "Energy");
    assert!(person_of(&app, "hank@example.com")["custom_fields"]
        .get(&segment)
        .is_none());
}

#[tokio::test]
async fn an_organization_field_mapped_app_to_crm_is_written_to_the_organization_and_not_the_person()
{
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let segment = sim
        .add_organization_field("Segment", "varchar", &[])
        .unwrap();
    map_organization_field(&app, connection, "segment", &segment, "outbound").await;
    let contact = local::create_contact(
        &app.engine,
        fields([
            name("Peter"),
            email("peter@example.com"),
            company("Initech"),
            text("segment", "Enterprise"),
        ]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    app.drive().await;
    let initech = orgs_named(&app, "Initech");
    assert_eq!(initech.len(), 1);
    assert_eq!(initech[0]["custom_fields"][&segment], "Enterprise");
    let person = person_of(&app, "peter@example.com");
    assert_eq!(person["org_id"], initech[0]["id"]);
    assert!(person["custom_fields"].get(&segment).is_none());

    // A change in the app reaches the organization; its webhook coming back changes nothing.
    app.await_person_webhooks(1).await;
    sim.clear_deliveries();
    local::update_contact(&app.engine, contact, fields([text("segment", "SMB")]))
        .await
        .unwrap();
    app.drive().await;
    assert_eq!(
        org_by_id(&app, &initech[0]["id"])["custom_fields"][&segment],
        "SMB"
    );
    await_webhook(&app, "organization", "change").await;
    assert_eq!(
        text_of(&app.contact(contact.uuid()).await, "segment").as_deref(),
        Some("SMB")
    );
    assert_eq!(orgs_named(&app, "Initech").len(), 1);

    // A person without an organization: nothing to write, and nothing fails.
    local::create_contact(
        &app.engine,
        fields([
            name("Milton"),
            email("milton@example.com"),
            text("segment", "Basement"),
        ]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    assert!(person_of(&app, "milton@example.com")["org_id"].is_null());
    let status =
        tandem_engine::sync::connections::admin::connection_status(&app.engine, connection.into())
            .await
            .unwrap();
    assert_eq!(status.dead, 0);
}

#[tokio::test]
async fn the_admin_api_refuses_an_unknown_entity_and_an_unknown_organization_field_precisely() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let person_only = sim.add_person_field("Hobby", "varchar", &[]).unwrap();

    let refused = put_mapping(
        &app,
        connection,
        json!({ "local_field": "segment", "remote_field": "address", "entity": "deal" }),
    )
    .await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "validation_failed", "{body}");
    assert_eq!(body["fields"][0]["field"], "entity", "{body}");
    assert!(body["fields"][0]["message"]
        .as_str()
        .unwrap()
        .contains("`deal` is not an entity"));

    // A person field's key is not an organization field (and the reverse).
    for (key, entity) in [
        (person_only.as_str(), "organization"),
        ("no_such_field", "organization"),
        ("address", "person"),
    ] {
        let refused = put_mapping(
            &app,
            connection,
            json!({ "local_field": "segment", "remote_field": key, "entity": entity }),
        )
        .await;
        assert_eq!(
            refused.status(),
            reqwest::StatusCode::UNPROCESSABLE_ENTITY,
            "{key}"
        );
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "validation_failed", "{body}");
        assert_eq!(body["fields"][0]["field"], "remote_field", "{body}");
        let message = body["fields"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("no {entity} field with key `{key}`")),
            "{message}"
        );
    }

    // The organization's address maps; the listing says whose field each is.
    map_organization_field(
        &app,
        connection,
        "company_address",
        "address",
        "bidirectional",
    )
    .await;
    let lists: Value = app
        .admin(
            reqwest::Method::GET,
            &format!("/admin/api/connections/{connection}/fields"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let remote = lists["remote"].as_array().unwrap();
    assert!(remote
        .iter()
        .any(|f| f["entity"] == "organization" && f["key"] == "address" && f["mappable"] == true));
    assert!(remote
        .iter()
        .any(|f| f["entity"] == "person" && f["key"] == person_only.as_str()));
    assert_eq!(lists["mappings"][0]["entity"], "organization");
}

#[tokio::test]
async fn creating_a_field_for_an_organization_mapping_creates_an_organization_field_in_pipedrive() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let created = app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/api/connections/{connection}/remote-fields"),
        )
        .json(&json!({ "name": "Tier", "field_type": "varchar", "entity": "organization" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["entity"], "organization");
    let sim = app.sim.handle();
    let org_fields = sim.organization_fields();
    assert!(
        org_fields
            .iter()
            .any(|f| f["field_code"] == created["key"] && f["field_name"] == "Tier"),
        "{org_fields:?}"
    );
    assert!(sim
        .person_fields()
        .iter()
        .all(|f| f["field_name"] != "Tier"));
    // And it can be mapped at once.
    map_organization_field(
        &app,
        connection,
        "tier",
        created["key"].as_str().unwrap(),
        "bidirectional",
    )
    .await;
}
