//! "Why isn't this record syncing?" (issue 19) through the admin API
//! (`GET /admin/api/connections/{id}/record-check?email=`), every answer on Salesforce and on
//! Pipedrive, against the simulators (Salesforce sharing, Pipedrive visibility groups).

use reqwest::Method;
use salesforce_sim::{OrgKind, Permissions, SfSimConfig};
use serde_json::{json, Value};
use tandem_engine::sync::app::local;
use tandem_tests::fields::{email, fields, name};
use tandem_tests::salesforce::{spawn_sf_app, SfApp};
use tandem_tests::{spawn_app, TestApp};
use uuid::Uuid;

const P: OrgKind = OrgKind::Production;

async fn check(app: &TestApp, connection: Uuid, email: &str) -> Value {
    let answer = app
        .admin(
            Method::GET,
            &format!("/admin/api/connections/{connection}/record-check"),
        )
        .query(&[("email", email)])
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let body: Value = answer.json().await.unwrap();
    assert!(
        !body["fix"].as_str().unwrap_or_default().is_empty(),
        "every answer has a fix: {body}"
    );
    body
}

// ------------------------------------------------------------------ Salesforce

async fn sf() -> SfApp {
    spawn_sf_app(SfSimConfig::default(), |_| {}).await
}

fn sf_lead(sf: &SfApp, email: &str, owner: Option<&str>) -> String {
    let mut body = json!({ "LastName": "Lead", "Company": "Acme", "Email": email });
    if let Some(owner) = owner {
        body["OwnerId"] = json!(owner);
    }
    sf.sf.handle().insert_record(P, "Lead", body).unwrap()
}

#[tokio::test]
async fn on_salesforce_a_linked_record_is_answered_linked_after_one_lookup() {
    let sf = sf().await;
    let lead = sf_lead(&sf, "linked@example.com", None);
    let connection = sf.connect_and_sync(false).await;
    let answer = check(&sf.app, connection, "linked@example.com").await;
    assert_eq!(answer["code"], "linked", "{answer}");
    assert_eq!(answer["crm_record"], lead);
    assert_eq!(answer["crm_object"], "Lead");
    assert_eq!(answer["crm_lookups"], 1);
}

#[tokio::test]
async fn on_salesforce_a_refused_create_is_answered_dead_lettered_with_salesforces_error_and_no_lookup(
) {
    let sf = sf().await;
    let connection = sf.connect_and_sync(false).await;
    sf.sf
        .handle()
        .set_validation_rule(
            P,
            "Lead",
            "needs_source",
            "LeadSource = null",
            "Lead Source is required for every new lead.",
            Some("LeadSource"),
        )
        .unwrap();
    local::create_contact(
        &sf.app.engine,
        fields([name("Val Idation"), email("val@example.com")]),
        true,
    )
    .await
    .unwrap();
    sf.app.drive().await;
    let answer = check(&sf.app, connection, "val@example.com").await;
    assert_eq!(answer["code"], "dead_lettered", "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("Lead Source is required"), "{error}");
    assert!(answer["fix"].as_str().unwrap().contains("validation rule"));
    assert_eq!(answer["crm_lookups"], 0);
}

#[tokio::test]
async fn on_salesforce_a_linked_record_whose_email_was_removed_is_answered_no_email() {
    let sf = sf().await;
    let lead = sf_lead(&sf, "gone.mail@example.com", None);
    let connection = sf.connect_and_sync(false).await;
    sf.sf
        .handle()
        .update_record_as_user(P, "Lead", &lead, json!({ "Email": null }))
        .unwrap();
    let answer = check(&sf.app, connection, "gone.mail@example.com").await;
    assert_eq!(answer["code"], "no_email", "{answer}");
}

#[tokio::test]
async fn on_salesforce_a_record_whose_email_differs_in_case_is_answered_email_differs() {
    let sf = sf().await;
    let connection = sf.connect_and_sync(false).await;
    let lead = sf_lead(&sf, "Mixed.Case@Example.com", None);
    let answer = check(&sf.app, connection, "mixed.case@example.com").await;
    assert_eq!(answer["code"], "email_differs", "{answer}");
    assert_eq!(answer["crm_record"], lead);
    assert_eq!(answer["crm_email"], "Mixed.Case@Example.com");
}

#[tokio::test]
async fn on_salesforce_a_record_sharing_hides_from_the_connecting_user_is_answered_not_visible() {
    let sf = sf().await;
    let h = sf.sf.handle();
    let sam = h.users(P)[1].0.clone();
    let lead = sf_lead(&sf, "hidden@example.com", Some(&sam));
    let connection = sf.connect_and_sync(false).await;
    // A Salesforce admin takes View All Data and Modify All Data from the connecting user:
    // under the private default, Sam's Lead is invisible to it now.
    let admin = h.admin_user(P);
    h.set_user_permissions(
        P,
        &admin,
        Permissions {
            api_enabled: true,
            modify_all_data: false,
            view_all_data: false,
            customize_application: true,
        },
    )
    .unwrap();
    let answer = check(&sf.app, connection, "hidden@example.com").await;
    assert_eq!(answer["code"], "not_visible", "{answer}");
    assert!(answer["fix"].as_str().unwrap().contains("sharing"));
    // Linked before, it is still named.
    assert_eq!(answer["crm_record"], lead, "{answer}");
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .contains(&format!("linked to Salesforce record {lead}")),
        "{answer}"
    );
    // Unlinked, never seen: the same answer from the e-mail lookup.
    sf_lead(&sf, "never.seen@example.com", Some(&sam));
    let answer = check(&sf.app, connection, "never.seen@example.com").await;
    assert_eq!(answer["code"], "not_visible", "{answer}");
}

#[tokio::test]
async fn on_salesforce_a_record_the_initial_sync_has_not_reached_is_answered_outside_the_window() {
    let sf = sf().await;
    sf_lead(&sf, "early@example.com", None);
    let connection = sf.connect(false).await;
    let answer = check(&sf.app, connection, "early@example.com").await;
    assert_eq!(answer["code"], "outside_initial_sync_window", "{answer}");
    assert!(answer["fix"].as_str().unwrap().contains("Initial sync"));
}

#[tokio::test]
async fn on_salesforce_a_record_last_modified_before_the_pre_connection_window_is_answered_outside_the_window(
) {
    let sf = spawn_sf_app(SfSimConfig::default(), |s| {
        s.salesforce.initial_sync_window_days = 30
    })
    .await;
    let sixty_days = std::time::Duration::from_secs(60 * 24 * 3600);
    sf.sf.handle().rewind_clock(sixty_days);
    sf_lead(&sf, "untouched@example.com", None);
    sf.sf.handle().advance_clock(sixty_days);
    let connection = sf.connect_and_sync(false).await;
    let answer = check(&sf.app, connection, "untouched@example.com").await;
    assert_eq!(answer["code"], "outside_initial_sync_window", "{answer}");
    assert!(answer["fix"].as_str().unwrap().contains("Initial sync"));
}

#[tokio::test]
async fn on_salesforce_an_app_contact_outside_the_crm_list_is_answered_filtered() {
    let sf = sf().await;
    let connection = sf.connect_and_sync(false).await;
    local::create_contact(
        &sf.app.engine,
        fields([name("Only Local"), email("local@example.com")]),
        false,
    )
    .await
    .unwrap();
    let answer = check(&sf.app, connection, "local@example.com").await;
    assert_eq!(answer["code"], "filtered", "{answer}");
    assert_eq!(answer["in_crm_list"], false);
}

#[tokio::test]
async fn on_salesforce_a_record_created_after_the_last_poll_is_answered_pending() {
    let sf = sf().await;
    let connection = sf.connect_and_sync(false).await;
    sf_lead(&sf, "fresh@example.com", None);
    let answer = check(&sf.app, connection, "fresh@example.com").await;
    assert_eq!(answer["code"], "pending", "{answer}");
}

// ------------------------------------------------------------------ Pipedrive

fn pd_person(app: &TestApp, email: &str, extra: Value) -> i64 {
    let mut body = json!({ "name": "Pip Person", "emails": [{ "value": email, "primary": true }] });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    app.sim.handle().insert_person(body).unwrap()
}

#[tokio::test]
async fn on_pipedrive_a_linked_person_is_answered_linked() {
    let app = spawn_app().await;
    let person = pd_person(&app, "pd.linked@example.com", json!({}));
    let connection = app.connect_and_sync().await;
    let answer = check(&app, connection, "pd.linked@example.com").await;
    assert_eq!(answer["code"], "linked", "{answer}");
    assert_eq!(answer["crm_record"], person.to_string());
    assert_eq!(answer["crm_lookups"], 1);
}

#[tokio::test]
async fn on_pipedrive_a_refused_write_is_answered_dead_lettered_with_pipedrives_error() {
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
    let answer = check(&app, connection, "nameless@example.com").await;
    assert_eq!(answer["code"], "dead_lettered", "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap()
        .contains("Parameter 'name' must not be empty"));
}

#[tokio::test]
async fn on_pipedrive_a_linked_person_whose_email_was_removed_is_answered_no_email() {
    let app = spawn_app().await;
    let person = pd_person(&app, "pd.nomail@example.com", json!({}));
    let connection = app.connect_and_sync().await;
    app.sim
        .handle()
        .update_person_as_user(person, json!({ "emails": [] }))
        .unwrap();
    let answer = check(&app, connection, "pd.nomail@example.com").await;
    assert_eq!(answer["code"], "no_email", "{answer}");
}

#[tokio::test]
async fn on_pipedrive_a_person_whose_email_differs_in_case_and_spaces_is_answered_email_differs() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let person = pd_person(&app, " PD.Differs@Example.com ", json!({}));
    let answer = check(&app, connection, "pd.differs@example.com").await;
    assert_eq!(answer["code"], "email_differs", "{answer}");
    assert_eq!(answer["crm_record"], person.to_string());
}

#[tokio::test]
async fn on_pipedrive_a_person_hidden_by_visibility_groups_is_answered_not_visible() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let sim = app.sim.handle();
    let me = sim.config().user_id;
    let grace = me + 1;
    // The connecting user is a regular user in group 1; Grace is in group 2.
    sim.set_user_admin(me, false);
    sim.set_visibility_group(grace, 2, None);
    pd_person(
        &app,
        "pd.hidden@example.com",
        json!({ "owner_id": grace, "visible_to": 3 }),
    );
    let answer = check(&app, connection, "pd.hidden@example.com").await;
    assert_eq!(answer["code"], "not_visible", "{answer}");
    assert!(answer["fix"].as_str().unwrap().contains("visibility"));
    // The same person, visible to the entire company, is found.
    let shared = pd_person(
        &app,
        "pd.shared@example.com",
        json!({ "owner_id": grace, "visible_to": 7 }),
    );
    let answer = check(&app, connection, "pd.shared@example.com").await;
    assert_eq!(answer["crm_record"], shared.to_string(), "{answer}");
}

#[tokio::test]
async fn on_pipedrive_a_linked_person_hidden_from_the_connecting_user_sends_no_webhook_and_is_answered_not_visible(
) {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    let me = sim.config().user_id;
    let grace = me + 1;
    let person = pd_person(
        &app,
        "pd.gone.hidden@example.com",
        json!({ "name": "Seen Once", "owner_id": grace, "visible_to": 7 }),
    );
    let connection = app.connect_and_sync().await;
    // The connecting user becomes a regular user in group 1; Grace, in group 2, hides her
    // person from everyone but her group and renames it.
    sim.set_user_admin(me, false);
    sim.set_visibility_group(grace, 2, None);
    sim.update_person_as_user(person, json!({ "visible_to": 3, "name": "Renamed Hidden" }))
        .unwrap();
    let log = sim
        .wait_for_deliveries(std::time::Duration::from_secs(10), |d| {
            d.iter()
                .any(|x| x.entity_id == person && x.action == "change")
        })
        .await;
    let change: Vec<_> = log
        .iter()
        .filter(|d| d.entity_id == person && d.action == "change")
        .collect();
    assert_eq!(change.len(), 1, "{log:?}");
    assert!(!change[0].delivered, "{log:?}");
    assert_eq!(
        change[0].error.as_deref(),
        Some("not visible to the webhook's user")
    );
    app.drive().await;
    let contact = tandem_engine::sync::app::contacts::ids_by_email(
        app.store.db(),
        &tandem_core::TenantId::default(),
        "pd.gone.hidden@example.com",
    )
    .await
    .unwrap()[0];
    let contact = app.contact(contact.uuid()).await;
    assert_eq!(
        tandem_tests::fields::text_of(&contact, "name").as_deref(),
        Some("Seen Once")
    );
    let answer = check(&app, connection, "pd.gone.hidden@example.com").await;
    assert_eq!(answer["code"], "not_visible", "{answer}");
    assert_eq!(answer["crm_record"], person.to_string(), "{answer}");
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .contains(&format!("linked to Pipedrive person {person}")),
        "{answer}"
    );
}

#[tokio::test]
async fn on_pipedrive_a_person_before_the_initial_sync_is_answered_outside_the_window() {
    let app = spawn_app().await;
    pd_person(&app, "pd.early@example.com", json!({}));
    let connection = app.connect_pipedrive().await;
    let answer = check(&app, connection, "pd.early@example.com").await;
    assert_eq!(answer["code"], "outside_initial_sync_window", "{answer}");
}

#[tokio::test]
async fn on_pipedrive_an_app_contact_outside_the_crm_list_is_answered_filtered() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    local::create_contact(
        &app.engine,
        fields([name("Only Local"), email("pd.local@example.com")]),
        false,
    )
    .await
    .unwrap();
    let answer = check(&app, connection, "pd.local@example.com").await;
    assert_eq!(answer["code"], "filtered", "{answer}");
}

#[tokio::test]
async fn on_pipedrive_a_person_not_linked_yet_is_answered_pending() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    pd_person(&app, "pd.fresh@example.com", json!({}));
    let answer = check(&app, connection, "pd.fresh@example.com").await;
    assert_eq!(answer["code"], "pending", "{answer}");
}

#[tokio::test]
async fn the_pipedrive_simulator_hides_a_person_from_a_regular_user_outside_its_visibility_group() {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    let me = sim.config().user_id;
    let grace = me + 1;
    let owner_only = pd_person(
        &app,
        "vis1@example.com",
        json!({ "owner_id": grace, "visible_to": 1 }),
    );
    // Admins see everything.
    let http = reqwest::Client::builder().build().unwrap();
    let get = |id: i64| {
        http.get(format!("{}/api/v2/persons/{id}", sim.base_url()))
            .header("x-api-token", sim.config().api_token.clone())
            .send()
    };
    assert_eq!(get(owner_only).await.unwrap().status(), 200);
    sim.set_user_admin(me, false);
    assert_eq!(get(owner_only).await.unwrap().status(), 403);
    // Group 2 under group 1: "owner's group and sub-groups" reaches down, not up.
    sim.set_visibility_group(grace, 2, Some(1));
    let group_and_below = pd_person(
        &app,
        "vis5@example.com",
        json!({ "owner_id": grace, "visible_to": 5 }),
    );
    assert_eq!(get(group_and_below).await.unwrap().status(), 403);
    sim.set_visibility_group(me, 3, Some(2));
    assert_eq!(get(group_and_below).await.unwrap().status(), 200);
}

#[tokio::test]
async fn on_pipedrive_a_person_holding_the_email_as_a_second_address_and_linked_by_its_primary_is_answered_linked_to_another_contact(
) {
    let app = spawn_app().await;
    let person = app
        .sim
        .handle()
        .insert_person(json!({
            "name": "Two Mails",
            "emails": [
                { "value": "work@two.example", "primary": true, "label": "work" },
                { "value": "home@two.example", "primary": false, "label": "home" }
            ]
        }))
        .unwrap();
    // The initial sync links the person to an app contact by its primary e-mail.
    let connection = app.connect_and_sync().await;
    let answer = check(&app, connection, "home@two.example").await;
    assert_eq!(answer["code"], "linked_to_another_contact", "{answer}");
    assert_eq!(answer["crm_record"], person.to_string(), "{answer}");
    let said = answer["answer"].as_str().unwrap();
    assert!(
        said.contains("(work@two.example)") && said.contains("primary e-mail"),
        "{answer}"
    );
    // Its primary e-mail is answered linked.
    let answer = check(&app, connection, "work@two.example").await;
    assert_eq!(answer["code"], "linked", "{answer}");
}
