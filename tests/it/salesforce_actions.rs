//! Journey actions on a Salesforce connection (issue 19), end to end through the app API
//! (`POST /api/v1/actions/{action}`, `GET /api/v1/actions/{id}`) against the Salesforce
//! simulator: OwnerId, Tasks, fields, Opportunities with their contact role, StageName and
//! CampaignMembers, with the same create / never-create rules as on Pipedrive.

use reqwest::{Method, StatusCode};
use salesforce_sim::{OrgKind, SfSimConfig};
use serde_json::{json, Value};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::salesforce::{spawn_sf_app, SfApp};
use tandem_tests::TestApp;

const P: OrgKind = OrgKind::Production;

/// Submits an action, runs the workers and returns the action as `GET` shows it.
async fn run(app: &TestApp, action: &str, body: Value, key: &str) -> Value {
    let (status, queued) = app.post_action(action, key, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    app.drive().await;
    let id = queued["id"].as_str().unwrap();
    app.api(Method::GET, &format!("/api/v1/actions/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A Lead and a Contact in Salesforce, and a connected, synced tandem.
async fn connected() -> (SfApp, String, String) {
    let sf = spawn_sf_app(SfSimConfig::default(), |_| {}).await;
    let h = sf.sf.handle();
    let lead = h
        .insert_record(
            P,
            "Lead",
            json!({ "FirstName": "Lea", "LastName": "Lead", "Company": "Acme", "Email": "lea@example.com" }),
        )
        .unwrap();
    let contact = h
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": "Con", "LastName": "Tact", "Email": "con@example.com" }),
        )
        .unwrap();
    sf.connect_and_sync(false).await;
    (sf, lead, contact)
}

/// An app contact with `full_name` and `address`, outside the CRM list.
async fn app_contact(app: &TestApp, full_name: &str, address: &str) {
    tandem_engine::sync::app::local::create_contact(
        &app.engine,
        fields([name(full_name), email(address)]),
        false,
    )
    .await
    .unwrap();
}

fn record(sf: &SfApp, object: &str, id: &str) -> Value {
    sf.sf.handle().record(P, object, id).unwrap()
}

/// Live records of `object` whose `field` is `value`.
fn where_(sf: &SfApp, object: &str, field: &str, value: &str) -> Vec<Value> {
    let h = sf.sf.handle();
    h.ids(P, object)
        .into_iter()
        .filter_map(|id| h.record(P, object, &id))
        .filter(|r| r[field].as_str().map(|v| &v[..15]) == Some(&value[..15]))
        .collect()
}

#[tokio::test]
async fn assign_person_owner_gives_the_salesforce_record_to_the_user_the_journey_names() {
    let (sf, lead, _) = connected().await;
    let sam = sf.sf.handle().users(P)[1].0.clone();
    let done = run(
        &sf.app,
        "assign_person_owner",
        json!({ "email": "lea@example.com", "params": { "owner_id": sam } }),
        "sf-owner-1",
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(record(&sf, "Lead", &lead)["OwnerId"], sam);
}

#[tokio::test]
async fn schedule_activity_for_a_contact_without_a_record_creates_a_lead_owned_by_the_connecting_user_and_a_task_on_it(
) {
    let (sf, _, _) = connected().await;
    app_contact(&sf.app, "New Comer", "newcomer@example.com").await;
    let done = run(
        &sf.app,
        "schedule_activity",
        json!({ "email": "newcomer@example.com", "params": { "subject": "Welcome call", "due_date": "2026-12-24" } }),
        "sf-task-1",
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    let h = sf.sf.handle();
    let leads = h.ids_by_email(P, "Lead", "newcomer@example.com");
    assert_eq!(leads.len(), 1, "one Lead created");
    let admin = h.user_id(P, &h.admin_user(P)).unwrap();
    assert_eq!(record(&sf, "Lead", &leads[0])["OwnerId"], admin);
    let tasks = where_(&sf, "Task", "WhoId", &leads[0]);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0]["Subject"], "Welcome call");
    assert_eq!(tasks[0]["ActivityDate"], "2026-12-24");
}

#[tokio::test]
async fn update_person_field_writes_the_linked_record_and_never_creates_one_for_an_unlinked_contact(
) {
    let (sf, lead, _) = connected().await;
    let done = run(
        &sf.app,
        "update_person_field",
        json!({ "email": "lea@example.com", "params": { "field": "phone", "value": "+1 555 0199" } }),
        "sf-field-1",
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(record(&sf, "Lead", &lead)["Phone"], "+1 555 0199");

    app_contact(&sf.app, "Not There", "notthere@example.com").await;
    let leads_before = sf.sf.handle().count(P, "Lead");
    let (status, body) = sf.app.post_action("update_person_field", "sf-field-2", &json!({ "email": "notthere@example.com", "params": { "field": "phone", "value": "1" } }))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "no_pipedrive_person");
    sf.app.drive().await;
    assert_eq!(sf.sf.handle().count(P, "Lead"), leads_before);
}

#[tokio::test]
async fn add_deal_on_a_contact_creates_an_opportunity_with_the_contact_as_its_primary_contact_role()
{
    let (sf, _, contact) = connected().await;
    let done = run(
        &sf.app,
        "add_deal",
        json!({ "email": "con@example.com", "params": { "title": "Renewal", "value": 1500 } }),
        "sf-deal-1",
    )
    .await;
    assert_eq!(done["state"], "done", "{done}");
    let h = sf.sf.handle();
    assert_eq!(h.count(P, "Opportunity"), 1);
    let opportunity = h.ids(P, "Opportunity").remove(0);
    let stored = record(&sf, "Opportunity", &opportunity);
    assert_eq!(stored["Name"], "Renewal");
    assert_eq!(stored["Amount"], 1500.0);
    let roles = where_(&sf, "OpportunityContactRole", "OpportunityId", &opportunity);
    assert_eq!(roles.len(), 1);
    assert_eq!(
        roles[0]["ContactId"].as_str().map(|c| &c[..15]),
        Some(&contact[..15])
    );
    assert_eq!(roles[0]["IsPrimary"], true);
}

#[tokio::test]
async fn add_deal_on_a_lead_is_refused_with_422_lead_not_converted_and_creates_nothing() {
    let (sf, _, _) = connected().await;
    let (status, body) = sf
        .app
        .post_action(
            "add_deal",
            "sf-deal-lead",
            &json!({ "email": "lea@example.com", "params": { "title": "Too early" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "lead_not_converted");
    assert!(body["detail"].as_str().unwrap().contains("converted"));
    sf.app.drive().await;
    assert_eq!(sf.sf.handle().count(P, "Opportunity"), 0);
    let log = sf.app.log_entries("lead_not_converted").await;
    assert_eq!(log.len(), 1);
    assert!(log[0]
        .hint
        .as_deref()
        .unwrap_or_default()
        .contains("Convert the Lead"));
}

#[tokio::test]
async fn update_deal_stage_moves_the_contacts_opportunity_to_the_named_stage() {
    let (sf, _, _) = connected().await;
    let added = run(
        &sf.app,
        "add_deal",
        json!({ "email": "con@example.com", "params": { "title": "Upsell" } }),
        "sf-stage-1",
    )
    .await;
    assert_eq!(added["state"], "done", "{added}");
    let moved = run(
        &sf.app,
        "update_deal_stage",
        json!({ "email": "con@example.com", "params": { "stage_id": "Closed Won" } }),
        "sf-stage-2",
    )
    .await;
    assert_eq!(moved["state"], "done", "{moved}");
    let opportunity = sf.sf.handle().ids(P, "Opportunity").remove(0);
    assert_eq!(
        record(&sf, "Opportunity", &opportunity)["StageName"],
        "Closed Won"
    );

    let (status, body) = sf
        .app
        .post_action(
            "update_deal_stage",
            "sf-stage-3",
            &json!({ "email": "con@example.com", "params": { "stage_id": "Almost Won" } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "validation_failed");
}

#[tokio::test]
async fn add_to_campaign_makes_a_lead_and_a_contact_campaign_members_once_each() {
    let (sf, lead, contact) = connected().await;
    let campaign = sf
        .sf
        .handle()
        .insert_record(
            P,
            "Campaign",
            json!({ "Name": "Winter webinar", "IsActive": true }),
        )
        .unwrap();
    for (who, key) in [
        ("lea@example.com", "sf-camp-1"),
        ("con@example.com", "sf-camp-2"),
    ] {
        let done = run(
            &sf.app,
            "add_to_campaign",
            json!({ "email": who, "params": { "campaign_id": campaign, "status": "Responded" } }),
            key,
        )
        .await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["result"]["already_member"], false);
    }
    let members = where_(&sf, "CampaignMember", "CampaignId", &campaign);
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .any(|m| m["LeadId"].as_str().map(|l| &l[..15]) == Some(&lead[..15])));
    assert!(members
        .iter()
        .any(|m| m["ContactId"].as_str().map(|c| &c[..15]) == Some(&contact[..15])));
    assert!(members.iter().all(|m| m["Status"] == "Responded"));

    // Another journey adds the Lead again: Salesforce refuses a second member, the action is
    // done with the existing one.
    let again = run(
        &sf.app,
        "add_to_campaign",
        json!({ "email": "lea@example.com", "params": { "campaign_id": campaign } }),
        "sf-camp-3",
    )
    .await;
    assert_eq!(again["state"], "done", "{again}");
    assert_eq!(again["result"]["already_member"], true);
    assert_eq!(
        where_(&sf, "CampaignMember", "CampaignId", &campaign).len(),
        2
    );
}

#[tokio::test]
async fn add_to_campaign_with_an_unknown_campaign_is_refused_with_422() {
    let (sf, _, _) = connected().await;
    let (status, body) = sf.app.post_action("add_to_campaign", "sf-camp-unknown", &json!({ "email": "lea@example.com", "params": { "campaign_id": "701000000000001AAA" } }))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "validation_failed");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("unknown campaign"));
}

#[tokio::test]
async fn add_to_campaign_on_a_pipedrive_connection_answers_422_action_not_supported() {
    let app = tandem_tests::spawn_app().await;
    app.connect_and_sync().await;
    app_contact(&app, "Pipe Person", "pipe@example.com").await;
    let (status, body) = app.post_action("add_to_campaign", "pd-camp-1", &json!({ "email": "pipe@example.com", "params": { "campaign_id": "701000000000001AAA" } }))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "action_not_supported");
    assert!(body["detail"].as_str().unwrap().contains("Pipedrive"));
    app.drive().await;
    assert!(app
        .sim
        .handle()
        .persons_by_email("pipe@example.com")
        .is_empty());
}

#[tokio::test]
async fn the_simulator_refuses_a_second_campaign_member_with_salesforces_duplicate_value_error() {
    let sf = spawn_sf_app(SfSimConfig::default(), |_| {}).await;
    let h = sf.sf.handle();
    let campaign = h
        .insert_record(P, "Campaign", json!({ "Name": "Spring" }))
        .unwrap();
    let lead = h
        .insert_record(
            P,
            "Lead",
            json!({ "LastName": "Dup", "Company": "Acme", "Email": "dup@example.com" }),
        )
        .unwrap();
    let tokens = h.issue_tokens(P, None).unwrap();
    let url = format!(
        "{}/services/data/v62.0/sobjects/CampaignMember",
        tokens.instance_url
    );
    let http = reqwest::Client::builder().build().unwrap();
    let body = json!({ "CampaignId": campaign, "LeadId": lead });
    let first = http
        .post(&url)
        .bearer_auth(&tokens.access_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = http
        .post(&url)
        .bearer_auth(&tokens.access_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::BAD_REQUEST);
    let errors: Value = second.json().await.unwrap();
    assert_eq!(
        errors,
        json!([{ "message": "Already a campaign member.", "errorCode": "DUPLICATE_VALUE", "fields": [] }])
    );
}

#[tokio::test]
async fn the_openapi_document_lists_add_to_campaign_and_the_salesforce_refusals() {
    let app = tandem_tests::spawn_app().await;
    let document: Value = app
        .http
        .get(format!("{}/api/v1/openapi.json", app.base_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let submit = &document["paths"]["/api/v1/actions/{action}"]["post"];
    let text = submit.to_string();
    for needle in [
        "add_to_campaign",
        "lead_not_converted",
        "action_not_supported",
    ] {
        assert!(
            text.contains(needle),
            "the action's operation mentions {needle}"
        );
    }
    let codes = document["components"]["schemas"]["ErrorCode"].to_string();
    assert!(codes.contains("lead_not_converted") && codes.contains("action_not_supported"));
    let request = document["components"]["schemas"]["ActionRequest"].to_string();
    assert!(request.contains("campaign_id"));
}

#[tokio::test]
async fn add_deal_for_a_contact_without_a_record_creates_the_lead_and_fails_saying_it_must_be_converted(
) {
    let (sf, _, _) = connected().await;
    app_contact(&sf.app, "Brand New", "brandnew@example.com").await;
    let failed = run(
        &sf.app,
        "add_deal",
        json!({ "email": "brandnew@example.com", "params": { "title": "Too soon" } }),
        "sf-deal-new-lead",
    )
    .await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(failed["error"].as_str().unwrap().contains("converted"));
    let h = sf.sf.handle();
    assert_eq!(h.ids_by_email(P, "Lead", "brandnew@example.com").len(), 1);
    assert_eq!(h.count(P, "Opportunity"), 0);
}

#[tokio::test]
async fn update_deal_stage_without_a_deal_moves_the_contacts_newest_opportunity() {
    let (sf, _, contact) = connected().await;
    let h = sf.sf.handle();
    let opportunity = |name: &str| {
        let id = h
            .insert_record(
                P,
                "Opportunity",
                json!({ "Name": name, "StageName": "Prospecting", "CloseDate": "2027-01-31" }),
            )
            .unwrap();
        h.insert_record(
            P,
            "OpportunityContactRole",
            json!({ "OpportunityId": id, "ContactId": contact, "IsPrimary": true }),
        )
        .unwrap();
        id
    };
    let older = opportunity("Older");
    // tandem's numbers for Salesforce ids are not in creation order: the newer one here has
    // the smaller number, so "the largest id" would pick the older.
    let surrogate = tandem_engine::crm::salesforce::ids::surrogate;
    let newer = loop {
        h.advance_clock(std::time::Duration::from_secs(1));
        let candidate = opportunity("Newer");
        if surrogate(&candidate) < surrogate(&older) {
            break candidate;
        }
        h.delete_record(P, "Opportunity", &candidate).unwrap();
    };
    let moved = run(
        &sf.app,
        "update_deal_stage",
        json!({ "email": "con@example.com", "params": { "stage_id": "Qualification" } }),
        "sf-newest-1",
    )
    .await;
    assert_eq!(moved["state"], "done", "{moved}");
    assert_eq!(
        record(&sf, "Opportunity", &newer)["StageName"],
        "Qualification"
    );
    assert_eq!(
        record(&sf, "Opportunity", &older)["StageName"],
        "Prospecting"
    );
}
