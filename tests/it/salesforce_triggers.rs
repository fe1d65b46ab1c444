//! Person and lead journey triggers of a Salesforce connection (issue 19): its Leads and
//! Contacts, read by the change poll, become `person.owner_changed`, `person.deleted`,
//! `person.merged`, `lead.created` and `lead.converted`, and its Accounts, read with the
//! Opportunities and Tasks, `organization.changed`; each announced once.

use std::time::Duration;

use salesforce_sim::{OrgKind, SfSimConfig};
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use tandem_engine::crm::salesforce::ids::{person_surrogate, surrogate};
use tandem_engine::sync::app::local;
use tandem_engine::sync::inbound::poller;
use tandem_engine::sync::{connections, links, related};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::receiver::TestReceiver;
use tandem_tests::salesforce::{spawn_sf_app, SfApp};

const P: OrgKind = OrgKind::Production;

/// A tandem and a Salesforce org whose clock is three minutes behind (Salesforce's deleted
/// resource covers whole minutes up to tandem's clock: a delete made before the clock is
/// moved on lies in a covered minute); the poll reaches ten minutes back, so it reads what
/// the org changes after the initial sync.
async fn org() -> SfApp {
    let sf = spawn_sf_app(SfSimConfig::default(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
        settings.salesforce.poll_overlap_secs = 600;
    })
    .await;
    sf.sf.handle().rewind_clock(Duration::from_secs(180));
    sf
}

fn contact(sf: &SfApp, first: &str, address: &str) -> String {
    sf.sf
        .handle()
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": first, "LastName": "Person", "Email": address }),
        )
        .unwrap()
}

fn lead(sf: &SfApp, first: &str, address: &str) -> String {
    sf.sf
        .handle()
        .insert_record(
            P,
            "Lead",
            json!({ "FirstName": first, "LastName": "Person", "Email": address, "Company": "Initech" }),
        )
        .unwrap()
}

/// An app webhook subscription to `types`, and the receiver it delivers to.
async fn subscribe(sf: &SfApp, types: &[&str]) -> TestReceiver {
    tandem_tests::receiver::subscribed(&sf.app.engine, types, Vec::new()).await
}

/// A poll of the connection's Leads and Contacts, then the workers.
async fn poll(sf: &SfApp, connection: uuid::Uuid) {
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
}

/// The app contact linked to Salesforce record `record`.
async fn app_contact_of(sf: &SfApp, connection: uuid::Uuid, record: &str) -> uuid::Uuid {
    links::by_person(
        sf.app.store.db(),
        connection.into(),
        person_surrogate(record),
    )
    .await
    .unwrap()
    .expect("linked")
    .contact_id
    .uuid()
}

/// The org's admin (the user who connects) and another user, as Salesforce ids.
fn admin_and_another(sf: &SfApp) -> (String, String) {
    let h = sf.sf.handle();
    let admin = h.user_id(P, &h.admin_user(P)).unwrap();
    let other = h
        .users(P)
        .into_iter()
        .map(|(id, _)| id)
        .find(|id| *id != admin)
        .expect("a second user");
    (admin, other)
}

fn id_of(record: &str) -> Value {
    json!(surrogate(record).to_string())
}

#[tokio::test]
async fn an_owner_given_in_salesforce_is_announced_once_and_one_tandem_gave_is_not() {
    let sf = org().await;
    let h = sf.sf.handle();
    let con = contact(&sf, "Con", "con@example.com");
    let lea = lead(&sf, "Lea", "lea@example.com");
    let connection = sf.connect_and_sync(false).await;
    let app_contact = app_contact_of(&sf, connection, &con).await;
    let mut receiver = subscribe(&sf, &["person.owner_changed"]).await;
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "the initial sync is not news");

    let (admin, sam) = admin_and_another(&sf);
    h.update_record_as_user(P, "Contact", &con, json!({ "OwnerId": sam }))
        .unwrap();
    poll(&sf, connection).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "person.owner_changed");
    assert_eq!(event["data"]["object"], "person");
    assert_eq!(event["data"]["id"], id_of(&con));
    assert_eq!(event["data"]["person"]["Id"], con.as_str());
    assert_eq!(
        event["data"]["change"],
        json!({ "owner_id": { "from": surrogate(&admin), "to": surrogate(&sam) } })
    );
    assert_eq!(event["data"]["contact_ids"], json!([app_contact]));
    assert_eq!(event["data"]["catch_up"], true, "found by reading");
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "announced once");

    // A journey action gives the Lead to Sam: the app heard `action.done`, not this.
    let (status, _) = sf
        .app
        .post_action(
            "assign_person_owner",
            "sf-owner-1",
            &json!({ "email": "lea@example.com", "params": { "owner_id": sam } }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    sf.app.drive().await;
    assert_eq!(h.record(P, "Lead", &lea).unwrap()["OwnerId"], sam.as_str());
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "tandem's own write");
}

#[tokio::test]
async fn an_owner_given_in_salesforce_is_announced_even_when_an_app_edit_of_the_person_is_pushed_before_the_poll(
) {
    let sf = org().await;
    let h = sf.sf.handle();
    let con = contact(&sf, "Con", "con@example.com");
    let connection = sf.connect_and_sync(false).await;
    let app_contact = app_contact_of(&sf, connection, &con).await;
    let mut receiver = subscribe(&sf, &["person.owner_changed"]).await;
    let (_, sam) = admin_and_another(&sf);
    h.update_record_as_user(P, "Contact", &con, json!({ "OwnerId": sam }))
        .unwrap();
    // tandem's write of the name reads the new owner back before the poll does.
    local::update_contact(
        &sf.app.engine,
        app_contact.into(),
        fields([name("Con Renamed")]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    assert_eq!(h.record(P, "Contact", &con).unwrap()["LastName"], "Renamed");
    poll(&sf, connection).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "person.owner_changed");
    assert_eq!(
        event["data"]["change"]["owner_id"]["to"],
        json!(surrogate(&sam))
    );
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn a_person_linked_before_tandem_kept_its_owner_announces_its_first_owner_change_from_the_owner_its_link_merged(
) {
    // A connection whose initial sync ran before tandem kept the state the app heard of persons.
    let sf = org().await;
    let h = sf.sf.handle();
    let con = contact(&sf, "Con", "con@example.com");
    let connection = sf.connect_and_sync(false).await;
    sf.app
        .store
        .db()
        .execute_unprepared("DELETE FROM crm_trigger_state")
        .await
        .unwrap();
    let mut receiver = subscribe(&sf, &["person.owner_changed"]).await;
    let (admin, sam) = admin_and_another(&sf);
    h.update_record_as_user(P, "Contact", &con, json!({ "OwnerId": sam }))
        .unwrap();
    poll(&sf, connection).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "person.owner_changed");
    assert_eq!(
        event["data"]["change"],
        json!({ "owner_id": { "from": surrogate(&admin), "to": surrogate(&sam) } })
    );
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "announced once");
}

#[tokio::test]
async fn a_lead_created_in_salesforce_is_announced_once_whether_it_made_or_found_its_app_contact_and_one_tandem_created_is_not(
) {
    let sf = org().await;
    let connection = sf.connect_and_sync(false).await;
    let mut receiver = subscribe(&sf, &["lead.created", "person.owner_changed"]).await;
    let new = lead(&sf, "New", "new@example.com");
    poll(&sf, connection).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "lead.created");
    assert_eq!(event["data"]["object"], "lead");
    assert_eq!(event["data"]["id"], id_of(&new));
    assert_eq!(event["data"]["lead"]["Id"], new.as_str());
    assert_eq!(
        event["data"]["contact_ids"],
        json!([app_contact_of(&sf, connection, &new).await])
    );
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "announced once");

    // A Lead made in Salesforce for someone the app knows (not in the CRM list) links to
    // that contact by e-mail: news too.
    let known = local::create_contact(
        &sf.app.engine,
        fields([name("Known One"), email("known@example.com")]),
        false,
    )
    .await
    .unwrap()
    .contact_id;
    sf.app.drive().await;
    let matched = lead(&sf, "Known", "known@example.com");
    poll(&sf, connection).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "lead.created");
    assert_eq!(event["data"]["id"], id_of(&matched));
    assert_eq!(event["data"]["contact_ids"], json!([known]));
    assert!(receiver.drain().is_empty());

    // An app contact in the CRM list becomes a Lead tandem creates: not news to the app.
    local::create_contact(
        &sf.app.engine,
        fields([name("Made Here"), email("made@example.com")]),
        true,
    )
    .await
    .unwrap();
    sf.app.drive().await;
    assert_eq!(
        sf.sf
            .handle()
            .ids_by_email(P, "Lead", "made@example.com")
            .len(),
        1
    );
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "tandem's own Lead");
}

#[tokio::test]
async fn a_lead_converted_in_salesforce_is_announced_once_with_the_contact_and_account_it_became() {
    let sf = org().await;
    let lea = lead(&sf, "Lea", "lea@example.com");
    let connection = sf.connect_and_sync(false).await;
    let app_contact = app_contact_of(&sf, connection, &lea).await;
    let mut receiver = subscribe(
        &sf,
        &[
            "lead.converted",
            "person.deleted",
            "person.merged",
            "lead.created",
        ],
    )
    .await;
    let (account, became) = sf.sf.handle().convert_lead(P, &lea, None, None).unwrap();
    poll(&sf, connection).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "lead.converted");
    assert_eq!(event["data"]["object"], "lead");
    assert_eq!(event["data"]["id"], id_of(&lea));
    assert_eq!(event["data"]["lead"]["Id"], lea.as_str());
    assert_eq!(
        event["data"]["change"],
        json!({
            "lead_id": surrogate(&lea).to_string(),
            "deal_id": null,
            "person_id": surrogate(&became),
            "organization_id": surrogate(&account),
        })
    );
    assert_eq!(event["data"]["contact_ids"], json!([app_contact]));
    assert_eq!(
        app_contact_of(&sf, connection, &became).await,
        app_contact,
        "the link moved to the Contact"
    );
    poll(&sf, connection).await;
    assert!(
        receiver.drain().is_empty(),
        "announced once, and as nothing else"
    );
}

#[tokio::test]
async fn a_contact_deleted_or_merged_in_salesforce_is_announced_once_as_deleted_or_merged() {
    let sf = org().await;
    let h = sf.sf.handle();
    let gone = contact(&sf, "Gone", "gone@example.com");
    let survivor = contact(&sf, "Sur", "survivor@example.com");
    let merged = contact(&sf, "Mer", "merged@example.com");
    let connection = sf.connect_and_sync(false).await;
    let gone_contact = app_contact_of(&sf, connection, &gone).await;
    let merged_contact = app_contact_of(&sf, connection, &merged).await;
    let mut receiver = subscribe(&sf, &["person.deleted", "person.merged"]).await;
    h.delete_record(P, "Contact", &gone).unwrap();
    h.merge(P, "Contact", &survivor, &[merged.as_str()])
        .unwrap();
    h.advance_clock(Duration::from_secs(180));
    poll(&sf, connection).await;
    let mut events = [receiver.next().await.json(), receiver.next().await.json()];
    events.sort_by_key(|e| e["type"].as_str().unwrap_or_default().to_owned());
    assert_eq!(events[0]["type"], "person.deleted");
    assert_eq!(events[0]["data"]["id"], id_of(&gone));
    assert_eq!(events[0]["data"]["contact_ids"], json!([gone_contact]));
    assert_eq!(events[1]["type"], "person.merged");
    assert_eq!(events[1]["data"]["id"], id_of(&merged));
    assert_eq!(
        events[1]["data"]["change"],
        json!({ "merged_into": surrogate(&survivor) })
    );
    assert_eq!(events[1]["data"]["contact_ids"], json!([merged_contact]));
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "announced once");
}

#[tokio::test]
async fn two_polls_of_the_same_owner_change_at_once_announce_it_once() {
    // The poll loop beside another replica's, or a poll beside an initial sync's end: both
    // read the change as new.
    let sf = org().await;
    let h = sf.sf.handle();
    let con = contact(&sf, "Con", "con@example.com");
    let connection = sf.connect_and_sync(false).await;
    let mut receiver = subscribe(&sf, &["person.owner_changed"]).await;
    let (_, sam) = admin_and_another(&sf);
    h.update_record_as_user(P, "Contact", &con, json!({ "OwnerId": sam }))
        .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        poller::poll_stream(&sf.app.engine, &conn, "Contact"),
        poller::poll_stream(&sf.app.engine, &conn, "Contact"),
    );
    first.unwrap();
    second.unwrap();
    sf.app.drive().await;
    assert_eq!(receiver.next().await.json()["type"], "person.owner_changed");
    assert!(receiver.drain().is_empty(), "announced once");
}

/// Reads the connection's related records (Accounts first) as its poll does, then the workers.
async fn read_related(sf: &SfApp, connection: uuid::Uuid) {
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    related::catch_up(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
}

#[tokio::test]
async fn an_account_changed_in_salesforce_is_announced_once_to_the_contacts_of_its_contacts_with_the_fields_that_changed(
) {
    let sf = org().await;
    let h = sf.sf.handle();
    let account = h
        .insert_record(
            P,
            "Account",
            json!({ "Name": "Globex", "Industry": "Energy" }),
        )
        .unwrap();
    let member = h
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": "Mem", "LastName": "Ber", "Email": "member@example.com", "AccountId": account }),
        )
        .unwrap();
    contact(&sf, "Other", "other@example.com");
    let connection = sf.connect_and_sync(false).await;
    let member_contact = app_contact_of(&sf, connection, &member).await;
    let mut receiver = subscribe(&sf, &["organization.changed"]).await;
    read_related(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "the initial sync is not news");

    h.update_record_as_user(
        P,
        "Account",
        &account,
        json!({ "Name": "Globex Corp", "Phone": "+1 555 0100" }),
    )
    .unwrap();
    read_related(&sf, connection).await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "organization.changed");
    assert_eq!(event["data"]["object"], "organization");
    assert_eq!(event["data"]["id"], id_of(&account));
    assert_eq!(event["data"]["organization"]["Id"], account.as_str());
    assert_eq!(
        event["data"]["change"],
        json!({
            "name": "Globex Corp",
            "fields": {
                "Name": { "from": "Globex", "to": "Globex Corp" },
                "Phone": { "from": null, "to": "+1 555 0100" },
            },
        })
    );
    assert_eq!(event["data"]["contact_ids"], json!([member_contact]));
    read_related(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "announced once");
}

#[tokio::test]
async fn two_reads_of_the_same_account_change_at_once_announce_it_once() {
    let sf = org().await;
    let h = sf.sf.handle();
    let account = h
        .insert_record(P, "Account", json!({ "Name": "Globex" }))
        .unwrap();
    h.insert_record(
        P,
        "Contact",
        json!({ "FirstName": "Mem", "LastName": "Ber", "Email": "member@example.com", "AccountId": account }),
    )
    .unwrap();
    let connection = sf.connect_and_sync(false).await;
    let mut receiver = subscribe(&sf, &["organization.changed"]).await;
    h.update_record_as_user(
        P,
        "Account",
        &account,
        json!({ "Website": "globex.example" }),
    )
    .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    let (first, second) = tokio::join!(
        related::catch_up(&sf.app.engine, &conn),
        related::catch_up(&sf.app.engine, &conn),
    );
    first.unwrap();
    second.unwrap();
    sf.app.drive().await;
    let event = receiver.next().await.json();
    assert_eq!(event["type"], "organization.changed");
    assert_eq!(
        event["data"]["change"]["fields"],
        json!({ "Website": { "from": null, "to": "globex.example" } })
    );
    assert!(receiver.drain().is_empty(), "announced once");
}
