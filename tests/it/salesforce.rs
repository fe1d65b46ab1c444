//! Salesforce end to end (issue 19) against the Salesforce simulator on 127.0.0.1: connect over
//! OAuth with PKCE (production and sandbox), the initial sync, edits both ways, reconnects,
//! token expiry and restarts.

use salesforce_sim::{OrgKind, Permissions, SfSimConfig};
use serde_json::json;
use tandem_engine::crm::salesforce::ids::{person_surrogate, surrogate};
use tandem_engine::store::{connections as stored, record_keys};
use tandem_engine::sync::app::local;
use tandem_engine::sync::connections::{self, state};
use tandem_engine::sync::inbound::poller;
use tandem_engine::sync::links;
use tandem_tests::fields::{cleared, company, email, fields, name, text, text_of};
use tandem_tests::salesforce::{spawn_sf_app, SfApp};

fn sim() -> SfSimConfig {
    SfSimConfig::default()
}

/// The simulator's records of an object as (id, e-mail), production org.
fn records(sf: &SfApp, object: &str, emails: &[&str]) -> Vec<String> {
    emails
        .iter()
        .flat_map(|e| sf.sf.handle().ids_by_email(OrgKind::Production, object, e))
        .collect()
}

/// Inserts Leads and Contacts as a Salesforce user would (production org); returns their ids.
fn insert(sf: &SfApp, leads: usize, contacts: usize) -> (Vec<String>, Vec<String>) {
    let h = sf.sf.handle();
    let leads = (0..leads)
        .map(|i| {
            h.insert_record(
                OrgKind::Production,
                "Lead",
                json!({ "FirstName": "Lea", "LastName": format!("Lead{i}"), "Company": "Acme", "Email": format!("lead{i}@example.com") }),
            )
            .unwrap()
        })
        .collect();
    let contacts = (0..contacts)
        .map(|i| {
            h.insert_record(
                OrgKind::Production,
                "Contact",
                json!({ "FirstName": "Con", "LastName": format!("Contact{i}"), "Email": format!("contact{i}@example.com") }),
            )
            .unwrap()
        })
        .collect();
    (leads, contacts)
}

/// A new app contact in the CRM list, pushed by the workers: its link (it must have one).
async fn new_app_contact_linked(
    sf: &SfApp,
    connection: uuid::Uuid,
    full_name: &str,
    address: &str,
) -> links::Link {
    let contact = local::create_contact(
        &sf.app.engine,
        fields([name(full_name), email(address)]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    sf.app.drive().await;
    links::by_contact(sf.app.store.db(), connection.into(), contact)
        .await
        .unwrap()
        .expect("the contact is linked")
}

/// `PUT /admin/api/connections/{id}/mappings` of a person field.
async fn put_mapping(
    sf: &SfApp,
    connection: uuid::Uuid,
    local: &str,
    remote: &str,
    direction: &str,
) -> reqwest::Response {
    sf.app
        .admin(
            reqwest::Method::PUT,
            &format!("/admin/api/connections/{connection}/mappings"),
        )
        .json(&json!({ "local_field": local, "remote_field": remote, "direction": direction }))
        .send()
        .await
        .unwrap()
}

async fn link_count(sf: &SfApp, connection: uuid::Uuid) -> usize {
    links::person_ids(sf.app.store.db(), connection.into())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn connecting_production_and_sandbox_makes_two_connections_each_calling_its_own_instance_url()
{
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let production = sf.connect(false).await;
    let sandbox = sf.connect(true).await;
    assert_ne!(production, sandbox);
    let rows = stored::list(sf.app.store.db()).await.unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row.state, state::CONNECTED);
        assert_eq!(row.auth_kind, "oauth");
        assert_eq!(row.api_domain, sf.sf.instance_url());
        // Tokens are sealed at rest, and the refresh is due before the session's two hours.
        let sealed = row.access_token_enc.as_ref().expect("a sealed token");
        assert!(!String::from_utf8_lossy(sealed).contains("00D"));
        assert!(row.refresh_token_enc.is_some());
        assert!(row.token_expires_at.is_some());
        assert_eq!(row.apid_field_key.as_deref(), Some("tandem_id__c"));
    }
    // The org ids differ: production and sandbox are separate orgs.
    assert_ne!(rows[0].company_id, rows[1].company_id);
    let log = sf.app.log_entries("connected").await;
    assert_eq!(log.len(), 2);
}

#[tokio::test]
async fn the_initial_sync_links_every_lead_and_contact_and_a_salesforce_edit_reaches_the_app_through_the_poll(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (leads, _) = insert(&sf, 3, 2);
    let connection = sf.connect_and_sync(false).await;
    assert_eq!(link_count(&sf, connection).await, 5);

    let lead = leads[0].clone();
    sf.sf
        .handle()
        .update_record_as_user(
            OrgKind::Production,
            "Lead",
            &lead,
            json!({ "FirstName": "Grace", "LastName": "Hopper" }),
        )
        .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    let changed = poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    assert_eq!(changed, 1);
    let link = sf.link_of(connection, &lead).await;
    let contact = sf.app.contact(link.contact_id.uuid()).await;
    assert_eq!(text_of(&contact, "name").as_deref(), Some("Grace Hopper"));
}

#[tokio::test]
async fn leads_and_contacts_keep_change_cursors_of_their_own_so_a_poll_cut_off_after_the_leads_misses_no_older_contact_change(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (leads, contacts) = insert(&sf, 1, 1);
    let connection = sf.connect_and_sync(false).await;
    let h = sf.sf.handle();
    h.update_record_as_user(
        OrgKind::Production,
        "Contact",
        &contacts[0],
        json!({ "LastName": "Earlier" }),
    )
    .unwrap();
    // The Lead changes well after the Contact: more than the poll's overlap later.
    h.advance_clock(std::time::Duration::from_secs(600));
    h.update_record_as_user(
        OrgKind::Production,
        "Lead",
        &leads[0],
        json!({ "LastName": "Later" }),
    )
    .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    // A poll cut off after its Lead stream: the Lead's cursor moved ten minutes on.
    assert_eq!(conn.crm.change_streams(), ["Lead", "Contact"]);
    assert_eq!(
        poller::poll_stream(&sf.app.engine, &conn, "Lead")
            .await
            .unwrap(),
        1
    );
    // The next poll still reads the Contact's change, from the Contact's own cursor.
    assert_eq!(poller::poll_once(&sf.app.engine, &conn).await.unwrap(), 1);
    for (record, last_name) in [(&contacts[0], "Earlier"), (&leads[0], "Later")] {
        let link = sf.link_of(connection, record).await;
        let contact = sf.app.contact(link.contact_id.uuid()).await;
        let name = text_of(&contact, "name").unwrap_or_default();
        assert!(name.ends_with(last_name), "{name}");
    }
}

#[tokio::test]
async fn an_app_edit_of_a_linked_contact_reaches_its_salesforce_record() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, contacts) = insert(&sf, 0, 2);
    let connection = sf.connect_and_sync(false).await;
    let record = contacts[0].clone();
    let link = sf.link_of(connection, &record).await;
    local::update_contact(
        &sf.app.engine,
        link.contact_id,
        fields([name("Ada Lovelace")]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    let stored = sf
        .sf
        .handle()
        .record(OrgKind::Production, "Contact", &record)
        .unwrap();
    assert_eq!(stored["FirstName"], "Ada");
    assert_eq!(stored["LastName"], "Lovelace");
}

#[tokio::test]
async fn a_new_app_contact_becomes_a_lead_with_the_external_id_and_logged_placeholders() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    sf.connect_and_sync(false).await;
    let contact = local::create_contact(
        &sf.app.engine,
        fields([name("Plato"), email("plato@example.com")]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    sf.app.drive().await;
    let leads = records(&sf, "Lead", &["plato@example.com"]);
    assert_eq!(leads.len(), 1, "one Lead, no Contact");
    assert!(records(&sf, "Contact", &["plato@example.com"]).is_empty());
    let lead = sf
        .sf
        .handle()
        .record(OrgKind::Production, "Lead", &leads[0])
        .unwrap();
    assert_eq!(lead["tandem_id__c"], contact.to_string());
    assert_eq!(lead["LastName"], "Plato");
    assert_eq!(lead["Company"], "[not provided]");
    // Owned by the connecting user.
    let admin = sf.sf.handle().admin_user(OrgKind::Production);
    let admin_id = sf.sf.handle().user_id(OrgKind::Production, &admin).unwrap();
    assert_eq!(lead["OwnerId"], admin_id);
    let placeholders = sf.app.log_entries("placeholder_filled").await;
    assert_eq!(placeholders.len(), 1);
    assert!(placeholders[0].message.contains("Company"));
}

#[tokio::test]
async fn the_app_company_is_a_leads_company_both_ways_a_contacts_is_its_account_and_a_standard_field_maps_like_a_custom_one(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, salesforce_contacts) = insert(&sf, 0, 1);
    let connection = sf.connect_and_sync(false).await;
    // An app contact holds a text value in the local field before it is mapped.
    local::create_contact(
        &sf.app.engine,
        fields([
            email("early@example.com"),
            (
                tandem_core::FieldKey::new("job_title").unwrap(),
                tandem_core::FieldValue::text("Early"),
            ),
            (
                tandem_core::FieldKey::new("member_since").unwrap(),
                tandem_core::FieldValue::date("2024-01-01").unwrap(),
            ),
        ]),
        false,
    )
    .await
    .unwrap();
    // Dates do not go into a checkbox: refused in Salesforce's words.
    let refused = put_mapping(
        &sf,
        connection,
        "member_since",
        "HasOptedOutOfEmail",
        "bidirectional",
    )
    .await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Salesforce field \"Email Opt Out\" (HasOptedOutOfEmail) is of type `boolean`; map it to a Salesforce field of type date, string, textarea"),
        "{body}"
    );
    // Title is a standard field on both objects: it maps through the admin API.
    let mapped = put_mapping(&sf, connection, "job_title", "Title", "bidirectional").await;
    assert_eq!(
        mapped.status(),
        reqwest::StatusCode::OK,
        "{}",
        mapped.text().await.unwrap()
    );
    let title = |value: &str| text("job_title", value);
    let created = local::create_contact(
        &sf.app.engine,
        fields([
            name("Hank Scorpio"),
            email("hank@globex.example"),
            company("Globex"),
            title("CEO"),
        ]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    sf.app.drive().await;
    let h = sf.sf.handle();
    let leads = records(&sf, "Lead", &["hank@globex.example"]);
    assert_eq!(leads.len(), 1);
    let lead = h.record(OrgKind::Production, "Lead", &leads[0]).unwrap();
    assert_eq!(lead["Company"], "Globex", "no placeholder: {lead}");
    assert_eq!(lead["Title"], "CEO");
    assert!(sf.app.log_entries("placeholder_filled").await.is_empty());
    // Edited in Salesforce, the Lead's company and title reach the app.
    h.update_record_as_user(
        OrgKind::Production,
        "Lead",
        &leads[0],
        json!({ "Company": "Globex Corporation", "Title": "Chief Executive" }),
    )
    .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    let contact = sf.app.contact(created.uuid()).await;
    assert_eq!(
        text_of(&contact, tandem_core::keys::ORG_NAME).as_deref(),
        Some("Globex Corporation")
    );
    assert_eq!(
        text_of(&contact, "job_title").as_deref(),
        Some("Chief Executive")
    );
    // Cleared in the app, the Lead's required company is the placeholder, not a refusal.
    local::update_contact(
        &sf.app.engine,
        created,
        fields([cleared(tandem_core::keys::ORG_NAME)]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    let lead = h.record(OrgKind::Production, "Lead", &leads[0]).unwrap();
    assert_eq!(lead["Company"], "[not provided]");
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
    let contact = sf.app.contact(created.uuid()).await;
    assert!(
        matches!(
            contact.fields.get(tandem_core::keys::ORG_NAME),
            None | Some(tandem_core::FieldValue::Cleared)
        ),
        "the placeholder reads back as no company"
    );

    // A Salesforce Contact has no Company field: the app's company is its Account (created,
    // as none is named so), sent with the title in one write, with no INVALID_FIELD and
    // nothing left to send.
    let other = sf.contact_of(connection, &salesforce_contacts[0]).await;
    local::update_contact(
        &sf.app.engine,
        other,
        fields([company("Initech"), title("Manager")]),
    )
    .await
    .unwrap();
    let calls = h.calls("composite.composite");
    sf.app.drive().await;
    assert_eq!(h.calls("composite.composite") - calls, 1);
    let record = h
        .record(OrgKind::Production, "Contact", &salesforce_contacts[0])
        .unwrap();
    assert_eq!(record["Title"], "Manager");
    assert!(record.get("Company").is_none(), "{record}");
    let account = record["AccountId"].as_str().expect("an Account").to_owned();
    assert_eq!(
        h.record(OrgKind::Production, "Account", &account).unwrap()["Name"],
        "Initech"
    );
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
    sf.app.drive().await;
    assert_eq!(
        h.calls("composite.composite") - calls,
        1,
        "nothing sent again"
    );
    let counts = tandem_engine::queue::counts(sf.app.store.db(), connection.into())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
    let contact = sf.app.contact(other.uuid()).await;
    assert_eq!(
        text_of(&contact, tandem_core::keys::ORG_NAME).as_deref(),
        Some("Initech"),
        "the app keeps its company"
    );
}

/// The app contact's company (`None` when it has none, or it is cleared).
async fn company_of(sf: &SfApp, contact: tandem_core::ContactId) -> Option<String> {
    match sf
        .app
        .contact(contact.uuid())
        .await
        .fields
        .get(tandem_core::keys::ORG_NAME)
    {
        Some(tandem_core::FieldValue::Text(t)) => Some(t.clone()),
        _ => None,
    }
}

/// The Account a Contact belongs to, as the simulator holds it.
fn account_of(sf: &SfApp, contact: &str) -> Option<String> {
    sf.sf
        .handle()
        .record(OrgKind::Production, "Contact", contact)
        .unwrap()["AccountId"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test]
async fn a_contacts_company_is_its_account_found_or_created_once_by_name_and_followed_when_moved_or_renamed_in_salesforce(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let h = sf.sf.handle();
    let p = OrgKind::Production;
    let initech = h
        .insert_record(p, "Account", json!({ "Name": "Initech" }))
        .unwrap();
    let peter = h
        .insert_record(
            p,
            "Contact",
            json!({ "FirstName": "Peter", "LastName": "Gibbons", "Email": "peter@initech.example", "AccountId": initech }),
        )
        .unwrap();
    let (_, plain) = insert(&sf, 0, 2);
    let connection = sf.connect_and_sync(false).await;
    let peter_contact = sf.contact_of(connection, &peter).await;
    let (milton, samir) = (
        sf.contact_of(connection, &plain[0]).await,
        sf.contact_of(connection, &plain[1]).await,
    );
    // Read: a Contact's company is its Account's name; none without an Account.
    assert_eq!(
        company_of(&sf, peter_contact).await.as_deref(),
        Some("Initech")
    );
    assert_eq!(company_of(&sf, milton).await, None);

    // An Account with the name already exists: it is the one linked (found, not created).
    local::update_contact(&sf.app.engine, milton, fields([company("Initech")]))
        .await
        .unwrap();
    sf.app.drive().await;
    assert_eq!(
        account_of(&sf, &plain[0]).as_deref(),
        Some(initech.as_str())
    );
    assert_eq!(h.count(p, "Account"), 1);

    // A new name, given to two contacts at once: one Account is created for both.
    for contact in [milton, samir] {
        local::update_contact(&sf.app.engine, contact, fields([company("Chotchkie's")]))
            .await
            .unwrap();
    }
    sf.app.drive().await;
    assert_eq!(h.count(p, "Account"), 2, "one Account created for the name");
    let chotchkies = account_of(&sf, &plain[0]).expect("an Account");
    assert_ne!(chotchkies, initech);
    assert_eq!(
        account_of(&sf, &plain[1]).as_deref(),
        Some(chotchkies.as_str())
    );
    assert_eq!(
        h.record(p, "Account", &chotchkies).unwrap()["Name"],
        "Chotchkie's"
    );

    // Cleared in the app: the Contact leaves its Account (which stays).
    local::update_contact(
        &sf.app.engine,
        samir,
        fields([cleared(tandem_core::keys::ORG_NAME)]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    assert_eq!(account_of(&sf, &plain[1]), None);
    assert_eq!(h.count(p, "Account"), 2);

    // In Salesforce, Peter moves to Milton's Account: his company follows on the next poll.
    h.update_record_as_user(p, "Contact", &peter, json!({ "AccountId": chotchkies }))
        .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
    assert_eq!(
        company_of(&sf, peter_contact).await.as_deref(),
        Some("Chotchkie's")
    );

    // The Account is renamed in Salesforce (its Contacts' SystemModstamp does not move): the
    // Accounts' change read carries the new name to both linked contacts, and nothing is
    // written back.
    h.update_record_as_user(
        p,
        "Account",
        &chotchkies,
        json!({ "Name": "Chotchkie's Inc." }),
    )
    .unwrap();
    let writes = h.calls("composite.composite");
    tandem_engine::sync::related::catch_up(&sf.app.engine, &conn)
        .await
        .unwrap();
    sf.app.drive().await;
    for contact in [peter_contact, milton] {
        assert_eq!(
            company_of(&sf, contact).await.as_deref(),
            Some("Chotchkie's Inc.")
        );
    }
    assert_eq!(h.calls("composite.composite"), writes, "no write back");
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
    let counts = tandem_engine::queue::counts(sf.app.store.db(), connection.into())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
}

#[tokio::test]
async fn account_fields_map_as_organization_fields_created_on_account_written_to_the_contacts_account_and_followed_when_changed_in_salesforce(
) {
    let sf = spawn_sf_app(sim(), |s| s.salesforce.create_as = "Contact".to_owned()).await;
    let h = sf.sf.handle();
    let p = OrgKind::Production;
    let connection = sf.connect_and_sync(false).await;
    // "Create the field in Salesforce" for an Account mapping creates it on Account.
    let created = sf
        .app
        .admin(
            reqwest::Method::POST,
            &format!("/admin/api/connections/{connection}/remote-fields"),
        )
        .json(&json!({ "name": "Tier", "field_type": "string", "entity": "organization" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(created["entity"], "organization");
    let tier = created["key"].as_str().unwrap().to_owned();
    assert_eq!(tier, "Tier__c");
    let map = |local: &str, remote: &str, direction: &str| {
        let body = json!({ "local_field": local, "remote_field": remote, "entity": "organization", "direction": direction });
        let request = sf
            .app
            .admin(
                reqwest::Method::PUT,
                &format!("/admin/api/connections/{connection}/mappings"),
            )
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    assert_eq!(map("tier", &tier, "bidirectional").await.status(), 200);
    assert_eq!(map("website", "Website", "inbound").await.status(), 200);
    // The Account's name is the company itself: not an Account field to map.
    let refused = map("account_name", "Name", "inbound").await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);

    // App → Salesforce: the tier goes to the new Contact's Account, not to the Contact.
    let contact = local::create_contact(
        &sf.app.engine,
        fields([
            name("Peter Gibbons"),
            email("peter@initech.example"),
            company("Initech"),
            text("tier", "Gold"),
        ]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    sf.app.drive().await;
    let record = records(&sf, "Contact", &["peter@initech.example"])
        .pop()
        .expect("a Contact");
    let account = account_of(&sf, &record).expect("an Account");
    assert_eq!(h.record(p, "Account", &account).unwrap()["Tier__c"], "Gold");
    assert!(h
        .record(p, "Contact", &record)
        .unwrap()
        .get("Tier__c")
        .is_none());

    // Salesforce → app: a user edits the Account; the Accounts' change read carries it to the
    // contact, and nothing is written back.
    h.update_record_as_user(
        p,
        "Account",
        &account,
        json!({ "Website": "https://initech.example", "Tier__c": "Platinum" }),
    )
    .unwrap();
    let writes = h.calls("composite.composite") + h.calls("sobject.update");
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    tandem_engine::sync::related::catch_up(&sf.app.engine, &conn)
        .await
        .unwrap();
    sf.app.drive().await;
    let local = sf.app.contact(contact.uuid()).await;
    assert_eq!(text_of(&local, "tier").as_deref(), Some("Platinum"));
    assert_eq!(
        text_of(&local, "website").as_deref(),
        Some("https://initech.example")
    );
    assert_eq!(
        h.calls("composite.composite") + h.calls("sobject.update"),
        writes,
        "nothing written back"
    );

    // The app changes the tier: written to the Account.
    local::update_contact(&sf.app.engine, contact, fields([text("tier", "Silver")]))
        .await
        .unwrap();
    sf.app.drive().await;
    assert_eq!(
        h.record(p, "Account", &account).unwrap()["Tier__c"],
        "Silver"
    );
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
}

#[tokio::test]
async fn a_new_salesforce_connection_is_taken_by_the_running_replica_at_once_so_its_first_outbox_round_pushes_the_crm_list(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let contact = local::create_contact(
        &sf.app.engine,
        fields([name("Zeno Elea"), email("zeno@example.com")]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    // The running replica has had its ownership round before the connect: nothing to own.
    assert!(tandem_engine::sync::ownership::owned(&sf.app.engine)
        .await
        .unwrap()
        .is_empty());
    let connection = sf.connect_and_sync(false).await;
    // Its queued push goes out in the next outbox round, not after the next ownership round
    // (up to a third of the lease later).
    tandem_engine::sync::worker::run_outbox_once(&sf.app.engine)
        .await
        .unwrap();
    assert_eq!(records(&sf, "Lead", &["zeno@example.com"]).len(), 1);
    let link = links::by_contact(sf.app.store.db(), connection.into(), contact)
        .await
        .unwrap();
    assert!(link.is_some(), "the contact is linked to its new Lead");
}

#[tokio::test]
async fn reconnecting_the_same_org_reuses_the_connection_and_duplicates_nothing() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    insert(&sf, 2, 2);
    let first = sf.connect_and_sync(false).await;
    let second = sf.connect(false).await;
    assert_eq!(first, second);
    assert_eq!(stored::list(sf.app.store.db()).await.unwrap().len(), 1);
    poller::reset_initial_sync(&sf.app.engine, first.into())
        .await
        .unwrap();
    poller::initial_sync(&sf.app.engine, first.into(), |_| {})
        .await
        .unwrap();
    assert_eq!(link_count(&sf, first).await, 4);
    assert_eq!(sf.sf.handle().count(OrgKind::Production, "Lead"), 2);
    assert_eq!(sf.sf.handle().count(OrgKind::Production, "Contact"), 2);
}

#[tokio::test]
async fn a_revoked_refresh_token_turns_the_card_to_token_expired() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    insert(&sf, 1, 0);
    let connection = sf.connect_and_sync(false).await;
    sf.sf.handle().revoke_tokens(OrgKind::Production, None);
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    assert!(poller::poll_checked(&sf.app.engine, conn).await.is_err());
    let row = stored::get(sf.app.store.db(), connection.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, state::TOKEN_EXPIRED);
    let page = sf.app.admin_page("/admin").await;
    assert!(page.contains("Token expired"), "{page}");
    // The quota Salesforce reported (Sforce-Limit-Info) is on the card.
    assert!(page.contains("Daily API quota"), "{page}");
    assert!(page.contains("of 100000 calls left"), "{page}");
    assert!(page.contains("/connections/salesforce/connect"));
    assert!(!sf.app.log_entries("token_refresh_failed").await.is_empty());
    // Reconnecting by the same user resumes the same connection.
    assert_eq!(sf.connect(false).await, connection);
    let row = stored::get(sf.app.store.db(), connection.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, state::CONNECTED);
}

#[tokio::test]
async fn a_user_without_api_access_is_told_user_not_authorised() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let admin = sf.sf.handle().admin_user(OrgKind::Production);
    sf.sf
        .handle()
        .set_user_permissions(
            OrgKind::Production,
            &admin,
            Permissions {
                api_enabled: false,
                modify_all_data: true,
                view_all_data: true,
                customize_application: true,
            },
        )
        .unwrap();
    let answer = sf.oauth_connect(false).await;
    assert!(!answer.status().is_success());
    let body = answer.text().await.unwrap();
    assert!(body.contains("User not authorised"), "{body}");
    assert!(body.contains("API Enabled"), "{body}");
    assert!(stored::list(sf.app.store.db()).await.unwrap().is_empty());
}

#[tokio::test]
async fn disconnecting_revokes_the_token_at_salesforce_and_stops_syncing() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    insert(&sf, 1, 0);
    let connection = sf.connect_and_sync(false).await;
    let before = sf.sf.handle().calls("oauth.revoke");
    let done = connections::disconnect(&sf.app.engine, connection.into())
        .await
        .unwrap();
    assert!(done.token_revoked, "{:?}", done.warnings);
    assert_eq!(sf.sf.handle().calls("oauth.revoke"), before + 1);
    let row = stored::get(sf.app.store.db(), connection.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, state::DISCONNECTED);
    assert!(row.access_token_enc.is_none());
    assert_eq!(poller::poll_all(&sf.app.engine).await.unwrap(), 0);
}

#[tokio::test]
async fn after_a_restart_a_linked_record_is_still_reached_by_its_id() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, contacts) = insert(&sf, 0, 1);
    let connection = sf.connect_and_sync(false).await;
    let record = contacts[0].clone();
    let keys = record_keys::of_connection(sf.app.store.db(), connection.into())
        .await
        .unwrap();
    assert!(keys.contains(&(surrogate(&record), record.clone())));
    let SfApp { mut app, sf: sim } = sf;
    app.restart().await;
    let sf = SfApp { app, sf: sim };
    let link = sf.link_of(connection, &record).await;
    local::update_contact(
        &sf.app.engine,
        link.contact_id,
        fields([name("After Restart")]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    let stored = sf
        .sf
        .handle()
        .record(OrgKind::Production, "Contact", &record)
        .unwrap();
    assert_eq!(stored["LastName"], "Restart");
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
}

#[tokio::test]
async fn a_validation_rule_refusal_is_in_the_sync_log_verbatim_with_the_guides_fix() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    sf.connect_and_sync(false).await;
    sf.sf
        .handle()
        .set_validation_rule(
            OrgKind::Production,
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
    let dead = sf.app.log_entries("dead_letter").await;
    assert_eq!(dead.len(), 1);
    let remote = dead[0].remote_error.clone().unwrap_or_default();
    assert!(
        remote.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION")
            && remote.contains("Lead Source is required for every new lead."),
        "{remote}"
    );
    assert!(dead[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("validation rule")));
    assert!(records(&sf, "Lead", &["val@example.com"]).is_empty());
}

#[tokio::test]
async fn a_new_app_contact_matching_a_salesforce_contact_by_email_links_to_it_instead_of_creating_a_lead(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let connection = sf.connect_and_sync(false).await;
    // Created in Salesforce after the initial sync, with the e-mail in another case.
    let existing = sf
        .sf
        .handle()
        .insert_record(
            OrgKind::Production,
            "Contact",
            json!({ "LastName": "Known", "Email": "Known.Person@Example.com" }),
        )
        .unwrap();
    let link =
        new_app_contact_linked(&sf, connection, "Known Person", "known.person@example.com").await;
    assert_eq!(link.person_id, person_surrogate(&existing));
    assert!(records(&sf, "Lead", &["known.person@example.com"]).is_empty());
    assert_eq!(
        records(&sf, "Contact", &["known.person@example.com"]).len(),
        1
    );
}

#[tokio::test]
async fn an_email_with_a_quote_and_a_plus_matches_its_salesforce_contact_and_odd_names_round_trip_unchanged(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let connection = sf.connect_and_sync(false).await;
    let h = sf.sf.handle();
    // Created in Salesforce after the initial sync: the match goes through a SOQL query whose
    // string literal must escape the quote.
    let existing = h
        .insert_record(
            OrgKind::Production,
            "Contact",
            json!({ "FirstName": "Dan", "LastName": "O'Brien", "Email": "Dan.O'Brien+news@Example.com" }),
        )
        .unwrap();
    let link = new_app_contact_linked(
        &sf,
        connection,
        "Dan O'Brien",
        "dan.o'brien+news@example.com",
    )
    .await;
    assert_eq!(link.person_id, person_surrogate(&existing));
    assert!(records(&sf, "Lead", &["dan.o'brien+news@example.com"]).is_empty());

    // A name with quotes, a backslash, accents and an emoji reaches Salesforce as written.
    let odd = "Ünal \\ \"Danny\" O'Brien-Łukasz 🚀";
    local::update_contact(
        &sf.app.engine,
        link.contact_id,
        fields([name(&format!("Dan {odd}"))]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    let record = h.record(OrgKind::Production, "Contact", &existing).unwrap();
    assert_eq!(record["Name"], format!("Dan {odd}"), "{record}");
    // And back: an edit in Salesforce with the same characters reaches the app unchanged.
    h.update_record_as_user(
        OrgKind::Production,
        "Contact",
        &existing,
        json!({ "FirstName": "Zoë", "LastName": "D'Arcy \\ 🚀" }),
    )
    .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    assert_eq!(poller::poll_once(&sf.app.engine, &conn).await.unwrap(), 1);
    let contact = sf.app.contact(link.contact_id.uuid()).await;
    assert_eq!(
        text_of(&contact, "name").as_deref(),
        Some("Zoë D'Arcy \\ 🚀")
    );
}

/// A Lead last modified 60 days before now (the simulator's clock moved back for its insert).
fn insert_old_lead(sf: &SfApp, email: &str) -> String {
    let h = sf.sf.handle();
    let sixty_days = std::time::Duration::from_secs(60 * 24 * 3600);
    h.rewind_clock(sixty_days);
    let id = h
        .insert_record(
            OrgKind::Production,
            "Lead",
            json!({ "LastName": "Old", "Company": "Acme", "Email": email }),
        )
        .unwrap();
    h.advance_clock(sixty_days);
    id
}

#[tokio::test]
async fn with_a_pre_connection_window_the_first_initial_sync_reads_only_recent_records_and_a_new_app_contact_still_finds_an_older_one(
) {
    let sf = spawn_sf_app(sim(), |s| s.salesforce.initial_sync_window_days = 30).await;
    let old = insert_old_lead(&sf, "old@example.com");
    let (recent, _) = insert(&sf, 1, 0);
    let connection = sf.connect_and_sync(false).await;
    assert_eq!(link_count(&sf, connection).await, 1);
    sf.link_of(connection, &recent[0]).await;
    let started = sf.app.log_entries("initial_sync_started").await;
    assert!(
        started[0].message.contains("modified since"),
        "{}",
        started[0].message
    );
    // The older Lead is not known to tandem: a new app contact with its e-mail is searched for
    // and links to it, instead of creating a second Lead.
    let link = new_app_contact_linked(&sf, connection, "Old Timer", "old@example.com").await;
    assert_eq!(link.person_id, person_surrogate(&old));
    assert_eq!(records(&sf, "Lead", &["old@example.com"]), vec![old]);
}

#[tokio::test]
async fn run_initial_sync_reads_every_record_whatever_the_pre_connection_window() {
    let sf = spawn_sf_app(sim(), |s| s.salesforce.initial_sync_window_days = 30).await;
    let old = insert_old_lead(&sf, "older@example.com");
    insert(&sf, 1, 1);
    let connection = sf.connect_and_sync(false).await;
    assert_eq!(link_count(&sf, connection).await, 2);
    poller::reset_initial_sync(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::initial_sync(&sf.app.engine, connection.into(), |_| {})
        .await
        .unwrap();
    assert_eq!(link_count(&sf, connection).await, 3);
    sf.link_of(connection, &old).await;
    let started = sf.app.log_entries("initial_sync_started").await;
    assert_eq!(started.len(), 2);
    assert!(started.iter().any(|e| e.message == "Initial sync started."));
    assert!(
        poller::knows_every_person(sf.app.store.db(), connection.into())
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn with_create_as_contact_a_new_app_contact_becomes_a_salesforce_contact() {
    let sf = spawn_sf_app(sim(), |s| s.salesforce.create_as = "Contact".to_owned()).await;
    sf.connect_and_sync(false).await;
    local::create_contact(
        &sf.app.engine,
        fields([name("Conny Tact"), email("conny@example.com")]),
        true,
    )
    .await
    .unwrap();
    sf.app.drive().await;
    assert_eq!(records(&sf, "Contact", &["conny@example.com"]).len(), 1);
    assert!(records(&sf, "Lead", &["conny@example.com"]).is_empty());
}

#[tokio::test]
async fn created_as_contacts_a_batchs_companies_are_resolved_to_accounts_together_one_search_and_one_create_call(
) {
    let sf = spawn_sf_app(sim(), |s| s.salesforce.create_as = "Contact".to_owned()).await;
    let h = sf.sf.handle();
    let p = OrgKind::Production;
    let initech = h
        .insert_record(p, "Account", json!({ "Name": "Initech" }))
        .unwrap();
    sf.connect_and_sync(false).await;
    // Two spellings of an existing Account, a new name twice, another new name, and none.
    let people = [
        ("peter@example.com", Some("Initech")),
        ("michael@example.com", Some("  initech ")),
        ("joanna@example.com", Some("Chotchkie's")),
        ("brian@example.com", Some("chotchkie's")),
        ("bob@example.com", Some("Bobs Consulting")),
        ("milton@example.com", None),
    ];
    for (address, firm) in people {
        let mut values = vec![email(address)];
        values.extend(firm.map(company));
        local::create_contact(&sf.app.engine, fields(values), true)
            .await
            .unwrap();
    }
    let (queries, creates, composites) = (
        h.calls("query"),
        h.calls("composite.create"),
        h.calls("composite.composite"),
    );
    sf.app.drive().await;
    assert_eq!(
        (
            h.calls("query") - queries,
            h.calls("composite.create") - creates,
            h.calls("composite.composite") - composites
        ),
        (2 + 1, 1, 1),
        "the batch's search for its people (as without companies), one search for its company names, one call creating the missing Accounts, one writing the Contacts"
    );
    assert_eq!(
        h.count(p, "Account"),
        3,
        "Initech, Chotchkie's, Bobs Consulting"
    );
    let account = |address: &str| {
        let id = records(&sf, "Contact", &[address])
            .pop()
            .expect("a Contact");
        account_of(&sf, &id)
    };
    assert_eq!(
        account("peter@example.com").as_deref(),
        Some(initech.as_str())
    );
    assert_eq!(
        account("michael@example.com").as_deref(),
        Some(initech.as_str())
    );
    let chotchkies = account("joanna@example.com").expect("an Account");
    assert_eq!(
        account("brian@example.com").as_deref(),
        Some(chotchkies.as_str())
    );
    let named = h.record(p, "Account", &chotchkies).unwrap()["Name"].clone();
    assert!(
        ["Chotchkie's", "chotchkie's"].contains(&named.as_str().unwrap()),
        "named as one of its contacts spelled it: {named}"
    );
    assert!(account("bob@example.com").is_some());
    assert_eq!(account("milton@example.com"), None);
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
}

#[tokio::test]
async fn a_token_close_to_expiry_is_refreshed_before_the_next_call() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let connection = sf.connect_and_sync(false).await;
    let before = stored::get(sf.app.store.db(), connection.into())
        .await
        .unwrap()
        .unwrap();
    // The session is a minute from its (assumed two-hour) end.
    let refreshes = sf.sf.handle().calls("oauth.token");
    tandem_engine::store::connections::store_tokens(
        sf.app.store.db(),
        connection.into(),
        tandem_engine::store::connections::RefreshedTokens {
            access_token_enc: before.access_token_enc.clone().unwrap(),
            refresh_token_enc: None,
            token_expires_at: Some(sf.app.engine.now() + chrono::Duration::seconds(60)),
            api_domain: None,
        },
        sf.app.engine.now(),
    )
    .await
    .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    assert_eq!(sf.sf.handle().calls("oauth.token"), refreshes + 1);
    let after = stored::get(sf.app.store.db(), connection.into())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(after.access_token_enc, before.access_token_enc);
    assert!(after.token_expires_at.unwrap() > sf.app.engine.now() + chrono::Duration::hours(1));
    assert_eq!(after.api_domain, sf.sf.instance_url());
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
}

#[tokio::test]
async fn a_lead_converted_in_salesforce_moves_its_link_to_the_contact_without_a_duplicate() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (leads, _) = insert(&sf, 1, 0);
    let connection = sf.connect_and_sync(false).await;
    let lead_link = sf.link_of(connection, &leads[0]).await;
    let (_, contact) = sf
        .sf
        .handle()
        .convert_lead(OrgKind::Production, &leads[0], None, None)
        .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
    let moved = sf.link_of(connection, &contact).await;
    assert_eq!(moved.contact_id, lead_link.contact_id);
    assert!(links::by_person(
        sf.app.store.db(),
        connection.into(),
        person_surrogate(&leads[0])
    )
    .await
    .unwrap()
    .is_none());
    assert_eq!(link_count(&sf, connection).await, 1);
    let local = sf.app.contact(lead_link.contact_id.uuid()).await;
    assert!(!local.archived);
    // The Lead's company became the Contact's Account, of the same name: unchanged in the app.
    assert_eq!(
        company_of(&sf, lead_link.contact_id).await.as_deref(),
        Some("Acme")
    );
}

#[tokio::test]
async fn a_lead_with_the_placeholder_company_converted_to_a_contact_has_no_company_until_the_app_gives_one(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let connection = sf.connect_and_sync(false).await;
    let link = new_app_contact_linked(&sf, connection, "Ada Lovelace", "ada@example.com").await;
    let h = sf.sf.handle();
    let lead = records(&sf, "Lead", &["ada@example.com"]).pop().unwrap();
    assert_eq!(
        h.record(OrgKind::Production, "Lead", &lead).unwrap()["Company"],
        "[not provided]"
    );
    let (placeholder_account, contact) = h
        .convert_lead(OrgKind::Production, &lead, None, None)
        .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
    assert_eq!(
        sf.link_of(connection, &contact).await.contact_id,
        link.contact_id
    );
    // The Account the conversion named after the placeholder is no company.
    assert_eq!(company_of(&sf, link.contact_id).await, None);
    assert_eq!(
        account_of(&sf, &contact).as_deref(),
        Some(placeholder_account.as_str())
    );

    // The app gives one: the Contact moves to an Account of that name.
    local::update_contact(
        &sf.app.engine,
        link.contact_id,
        fields([company("Analytical Engines")]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    let account = account_of(&sf, &contact).expect("an Account");
    assert_ne!(account, placeholder_account);
    assert_eq!(
        h.record(OrgKind::Production, "Account", &account).unwrap()["Name"],
        "Analytical Engines"
    );
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
}

#[tokio::test]
async fn an_app_edit_pushed_to_a_lead_converted_meanwhile_reaches_the_contact_it_became() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (leads, _) = insert(&sf, 1, 0);
    let connection = sf.connect_and_sync(false).await;
    let link = sf.link_of(connection, &leads[0]).await;
    // The Lead is converted in Salesforce; tandem has not polled yet when the app edits.
    let (_, contact) = sf
        .sf
        .handle()
        .convert_lead(OrgKind::Production, &leads[0], None, None)
        .unwrap();
    local::update_contact(
        &sf.app.engine,
        link.contact_id,
        fields([name("Ada Converted")]),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
    assert_eq!(last_name(&sf, "Contact", &contact), "Converted");
    let moved = sf.link_of(connection, &contact).await;
    assert_eq!(moved.contact_id, link.contact_id);
    assert!(
        sf.app.log_entries("dead_letter").await.is_empty(),
        "nothing given up"
    );
}

#[tokio::test]
async fn a_lead_converted_between_the_polls_lead_and_contact_streams_keeps_its_app_contact() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (leads, _) = insert(&sf, 1, 0);
    let connection = sf.connect_and_sync(false).await;
    let lead_link = sf.link_of(connection, &leads[0]).await;
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    let contacts_before =
        tandem_tests::chaos::count(&sf.app.engine, "SELECT count(*) FROM contact")
            .await
            .unwrap();
    // The poll reads the Leads; a Salesforce user converts the Lead; the poll reads the
    // Contacts and meets the new Contact.
    poller::poll_stream(&sf.app.engine, &conn, "Lead")
        .await
        .unwrap();
    let (_, contact) = sf
        .sf
        .handle()
        .convert_lead(OrgKind::Production, &leads[0], None, None)
        .unwrap();
    poller::poll_stream(&sf.app.engine, &conn, "Contact")
        .await
        .unwrap();
    // The next poll reads the conversion again.
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
    let moved = sf.link_of(connection, &contact).await;
    assert_eq!(
        moved.contact_id, lead_link.contact_id,
        "the app's contact keeps the link"
    );
    assert!(!sf.app.contact(lead_link.contact_id.uuid()).await.archived);
    assert_eq!(
        tandem_tests::chaos::count(&sf.app.engine, "SELECT count(*) FROM contact")
            .await
            .unwrap(),
        contacts_before,
        "no second contact for the converted Lead's Contact"
    );
    assert_eq!(link_count(&sf, connection).await, 1);
}

#[tokio::test]
async fn a_poll_refused_for_the_daily_limit_is_in_the_sync_log_once_with_the_guides_fix() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let connection = sf.connect_and_sync(false).await;
    sf.sf
        .handle()
        .set_faults(salesforce_sim::FaultSpec::parse("query:limit=1").unwrap());
    // Two rounds of the poll loop, each once the connection's poll interval has passed.
    let clock = tandem_engine::clock::TestClock::new();
    let engine = sf
        .app
        .engine
        .clone()
        .with_clock(std::sync::Arc::new(clock.clone()));
    for _ in 0..2 {
        clock.advance(chrono::Duration::seconds(10));
        assert!(poller::poll_all(&engine).await.is_err());
    }
    let entries = sf.app.log_entries("poll_failed").await;
    assert_eq!(entries.len(), 1, "one entry for a repeated error");
    let remote = entries[0].remote_error.clone().unwrap_or_default();
    assert!(remote.contains("REQUEST_LIMIT_EXCEEDED"), "{remote}");
    assert!(entries[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("System Overview")));
    let row = stored::get(sf.app.store.db(), connection.into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.state, state::CONNECTED);
    assert!(row
        .last_error
        .is_some_and(|e| e.contains("REQUEST_LIMIT_EXCEEDED")));
}

#[tokio::test]
async fn pipedrive_and_salesforce_connections_sync_side_by_side() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    insert(&sf, 1, 1);
    for i in 0..3 {
        sf.app
            .sim
            .handle()
            .insert_person(json!({ "name": format!("Pipe Person{i}"), "emails": [{ "value": format!("pipe{i}@example.com"), "primary": true }] }))
            .unwrap();
    }
    let pipedrive = sf.app.connect_pipedrive().await;
    let salesforce = sf.connect(false).await;
    // One round of the poll loop runs both initial syncs.
    poller::poll_all(&sf.app.engine).await.unwrap();
    poller::poll_all(&sf.app.engine).await.unwrap();
    assert_eq!(link_count(&sf, salesforce).await, 2);
    assert_eq!(link_count(&sf, pipedrive).await, 3);
    let rows = stored::list(sf.app.store.db()).await.unwrap();
    assert!(rows.iter().all(|r| r.state == state::CONNECTED));
}

#[tokio::test]
async fn with_pipedrive_and_salesforce_connected_a_new_app_contact_in_the_crm_list_is_created_in_both(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let pipedrive = sf.app.connect_and_sync().await;
    let salesforce = sf.connect_and_sync(false).await;
    let contact = local::create_contact(
        &sf.app.engine,
        fields([name("Both Ways"), email("both@example.com")]),
        true,
    )
    .await
    .unwrap()
    .contact_id;
    sf.app.drive().await;
    for connection in [pipedrive, salesforce] {
        assert!(
            links::by_contact(sf.app.store.db(), connection.into(), contact)
                .await
                .unwrap()
                .is_some(),
            "linked in {connection}"
        );
    }
    assert_eq!(records(&sf, "Lead", &["both@example.com"]).len(), 1);
    let in_pipedrive = sf
        .app
        .sim
        .handle()
        .persons()
        .into_iter()
        .filter(|p| p["emails"][0]["value"] == "both@example.com")
        .count();
    assert_eq!(in_pipedrive, 1);
    // Outside the list, a new contact is created nowhere.
    local::create_contact(
        &sf.app.engine,
        fields([name("Local Only"), email("local.only@example.com")]),
        false,
    )
    .await
    .unwrap();
    sf.app.drive().await;
    assert!(records(&sf, "Lead", &["local.only@example.com"]).is_empty());
    let cards = sf.app.admin_page("/admin").await;
    assert_eq!(
        cards
            .matches("<td class=receives-list>created here</td>")
            .count(),
        2,
        "{cards}"
    );
}

#[tokio::test]
async fn the_field_mapping_lists_salesforce_fields_with_what_field_level_security_lets_the_connecting_user_write(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let connection = sf.connect(false).await;
    let h = sf.sf.handle();
    for object in ["Lead", "Contact"] {
        // Added by a Salesforce admin, without Edit for the connecting user's profile.
        h.add_custom_field(
            OrgKind::Production,
            object,
            "Secret__c",
            json!({"type": "Text", "length": 255, "label": "Secret"}),
        )
        .unwrap();
    }
    let page = sf
        .app
        .admin_page(&format!("/admin/fields?connection={connection}"))
        .await;
    assert!(page.contains("Salesforce field"), "{page}");
    assert!(!page.contains("Pipedrive"), "{page}");
    let row = |key: &str| {
        let start = page
            .find(&format!("<tr data-key=\"{key}\">"))
            .unwrap_or_else(|| panic!("{key} is listed: {page}"));
        page[start..start + page[start..].find("</tr>").unwrap()].to_owned()
    };
    assert!(row("Secret__c").contains("no: grant Edit in Field-Level Security"));
    assert!(row("Email").contains("<td class=writable>yes</td>"));
    assert!(page.contains("Secret (string, custom, read-only: inbound only)"));
    assert!(
        page.contains(
            "<code>tandem_id__c</code> (Text(255), External ID, Unique, on Lead and Contact)"
        ) && page.contains("present and writable by the connecting user"),
        "{page}"
    );
    let put = |direction| put_mapping(&sf, connection, "secret", "Secret__c", direction);
    let refused = put("bidirectional").await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["fields"][0]["field"], "direction", "{body}");
    assert!(body["fields"][0]["message"]
        .as_str()
        .unwrap()
        .contains("Field-Level Security"));
    assert_eq!(put("inbound").await.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn next_to_each_other_pipedrive_and_salesforce_connections_are_each_polled_at_their_own_interval(
) {
    let sf = spawn_sf_app(sim(), |s| {
        s.workers.poll_interval_secs = 30;
        s.salesforce.poll_interval_secs = 10;
    })
    .await;
    sf.app.connect_and_sync().await;
    sf.connect_and_sync(false).await;
    let clock = tandem_engine::clock::TestClock::new();
    let engine = sf
        .app
        .engine
        .clone()
        .with_clock(std::sync::Arc::new(clock.clone()));
    let (pipedrive, salesforce) = (sf.app.sim.handle(), sf.sf.handle());
    let polls = || (pipedrive.calls("v2.getPersons"), salesforce.calls("query"));
    poller::poll_all(&engine).await.unwrap();
    let first = polls();
    // Ten seconds on: Salesforce's interval has passed, Pipedrive's has not.
    clock.advance(chrono::Duration::seconds(10));
    poller::poll_all(&engine).await.unwrap();
    let second = polls();
    assert_eq!(second.0, first.0, "Pipedrive is not polled every 10 s");
    assert!(second.1 > first.1, "Salesforce is");
    // Thirty seconds on: both.
    clock.advance(chrono::Duration::seconds(20));
    poller::poll_all(&engine).await.unwrap();
    let third = polls();
    assert!(third.0 > second.0 && third.1 > second.1);
}

#[tokio::test]
async fn sandbox_and_production_data_never_cross() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    insert(&sf, 2, 0);
    sf.sf
        .handle()
        .insert_record(
            OrgKind::Sandbox,
            "Contact",
            json!({ "LastName": "Sandy", "Email": "sandy@example.com" }),
        )
        .unwrap();
    let production = sf.connect_and_sync(false).await;
    let sandbox = sf.connect_and_sync(true).await;
    assert_eq!(link_count(&sf, production).await, 2);
    assert_eq!(link_count(&sf, sandbox).await, 1);
    // An app edit of the sandbox's contact goes to the sandbox org only.
    let record = sf
        .sf
        .handle()
        .ids_by_email(OrgKind::Sandbox, "Contact", "sandy@example.com")
        .remove(0);
    let link = links::by_person(sf.app.store.db(), sandbox.into(), person_surrogate(&record))
        .await
        .unwrap()
        .expect("linked in the sandbox connection");
    assert!(
        links::by_contact(sf.app.store.db(), production.into(), link.contact_id)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn journey_actions_schedule_a_task_and_update_a_field_on_the_salesforce_record() {
    use tandem_engine::sync::outbound::actions::{self, ContactRef, Submit};
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, contacts) = insert(&sf, 0, 1);
    let connection = sf.connect_and_sync(false).await;
    let link = sf.link_of(connection, &contacts[0]).await;
    let submit = |action: &str, params: serde_json::Value, key: &str| Submit {
        action: actions::parse_action(action).unwrap(),
        contact: ContactRef::Id {
            contact_id: link.contact_id,
        },
        params,
        idempotency_key: key.to_owned(),
        connection_id: None,
    };
    let task = actions::submit(
        &sf.app.engine,
        submit(
            "schedule_activity",
            json!({ "subject": "Call back", "due_date": "2026-12-24" }),
            "journey-sf-1",
        ),
    )
    .await
    .unwrap();
    let field = actions::submit(
        &sf.app.engine,
        submit(
            "update_person_field",
            json!({ "field": "phone", "value": "+1 555 0100" }),
            "journey-sf-2",
        ),
    )
    .await
    .unwrap();
    sf.app.drive().await;
    for id in [task.record.id, field.record.id] {
        let record = actions::get(&sf.app.engine, id).await.unwrap().unwrap();
        assert_eq!(record.state, "done", "{:?}", record.result);
    }
    assert_eq!(sf.sf.handle().count(OrgKind::Production, "Task"), 1);
    let stored = sf
        .sf
        .handle()
        .record(OrgKind::Production, "Contact", &contacts[0])
        .unwrap();
    assert_eq!(stored["Phone"], "+1 555 0100");
}

#[tokio::test]
async fn a_refused_authorisation_code_says_session_expired_or_invalid_and_a_replayed_state_is_refused(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = no_redirects
        .get(format!(
            "{}/connections/salesforce/connect?sandbox=1",
            sf.app.base_url
        ))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    // The sandbox login host, with a PKCE challenge.
    assert!(location.starts_with(sf.sf.login_url(true)), "{location}");
    assert!(location.contains("code_challenge_method=S256"));
    let url = reqwest::Url::parse(&location).unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let callback = |state: String| {
        let http = no_redirects.clone();
        let base = sf.app.base_url.clone();
        async move {
            http.get(format!("{base}/connections/salesforce/callback"))
                .query(&[("code", "not-a-code"), ("state", state.as_str())])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let body = callback(state.clone()).await;
    assert!(body.contains("Session expired or invalid"), "{body}");
    let replay = callback(state).await;
    assert!(replay.contains("already used"), "{replay}");
    assert!(stored::list(sf.app.store.db()).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_without_modify_all_data_is_told_insufficient_access_or_readonly() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let admin = sf.sf.handle().admin_user(OrgKind::Production);
    sf.sf
        .handle()
        .set_user_permissions(
            OrgKind::Production,
            &admin,
            Permissions {
                api_enabled: true,
                modify_all_data: false,
                view_all_data: true,
                customize_application: true,
            },
        )
        .unwrap();
    let answer = sf.oauth_connect(false).await;
    assert!(!answer.status().is_success());
    let body = answer.text().await.unwrap();
    assert!(body.contains("insufficient_access_or_readonly"), "{body}");
    assert!(body.contains("Modify All Data"), "{body}");
    assert!(stored::list(sf.app.store.db()).await.unwrap().is_empty());
}

#[tokio::test]
async fn without_customize_application_the_card_and_the_field_mapping_name_the_external_id_field_to_create_by_hand(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let admin = sf.sf.handle().admin_user(OrgKind::Production);
    sf.sf
        .handle()
        .set_user_permissions(
            OrgKind::Production,
            &admin,
            Permissions {
                api_enabled: true,
                modify_all_data: true,
                view_all_data: true,
                customize_application: false,
            },
        )
        .unwrap();
    let connection = sf.connect(false).await;
    assert_eq!(
        sf.app.log_entries("external_id_field_missing").await.len(),
        1
    );
    let card = sf.app.admin_page("/admin").await;
    assert!(
        card.contains(
            "<strong>missing</strong>: tandem could not create <code>tandem_id__c</code>"
        ),
        "{card}"
    );
    let fields = sf
        .app
        .admin_page(&format!("/admin/fields?connection={connection}"))
        .await;
    assert!(
        fields.contains("<strong class=missing>missing</strong>")
            && fields.contains("API name <code>tandem_id__c</code>"),
        "{fields}"
    );
}

#[tokio::test]
async fn salesforce_calls_are_counted_in_the_metrics_by_operation_without_record_ids() {
    const TOKEN: &str = "metrics-token-0123456789";
    let sf = spawn_sf_app(sim(), |s| {
        s.metrics.token = tandem_engine::config::Redacted::new(TOKEN.to_owned());
    })
    .await;
    insert(&sf, 2, 1);
    let connection = sf.connect_and_sync(false).await;
    let text = sf
        .app
        .http
        .get(format!("{}/metrics", sf.app.base_url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("tandem_crm_requests_total{")
                && l.contains("crm=\"salesforce\"")
                && l.contains(&connection.to_string())
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("operation=\"GET query\"") && l.contains("outcome=\"2xx\"")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("/00Q") && !l.contains("/003")),
        "no record id in a label: {lines:?}"
    );
    // The connection's queue gauges carry its own CRM, not the engine's default one.
    let conn = format!("connection_id=\"{connection}\"");
    for gauge in ["tandem_outbox_jobs{", "tandem_dead_letters{"] {
        let labels: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(gauge) && l.contains(&conn))
            .collect();
        assert_eq!(labels.len(), 1, "{gauge}: {text}");
        assert!(labels[0].contains("crm=\"salesforce\""), "{labels:?}");
    }
}

// ---------------------------------------------------------------- batched writes (issue 19)

fn last_name(sf: &SfApp, object: &str, record: &str) -> String {
    sf.sf
        .handle()
        .record(OrgKind::Production, object, record)
        .unwrap()["LastName"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbox_round_that_refills_a_freed_slot_runs_no_more_salesforce_batches_at_once_than_workers_concurrency(
) {
    let sf = spawn_sf_app(sim(), |s| s.workers.concurrency = 2).await;
    let connection = sf.connect_and_sync(false).await;
    let db = sf.app.store.db();
    // Queued while paused, so one round finds them all: 200 archived contacts first (their
    // batch ends at once, with no call), then 800 to create, whose calls each take 300 ms.
    connections::set_paused(db, connection.into(), true, chrono::Utc::now())
        .await
        .unwrap();
    for i in 0..1000 {
        let contact = local::create_contact(
            &sf.app.engine,
            fields([
                name(&format!("Queued Contact{i}")),
                email(&format!("queued{i}@slots.example")),
            ]),
            true,
        )
        .await
        .unwrap()
        .contact_id;
        if i < 200 {
            local::archive_contact(&sf.app.engine, &Default::default(), contact)
                .await
                .unwrap();
        }
    }
    let h = sf.sf.handle();
    h.set_faults(salesforce_sim::FaultSpec::parse("composite:latency_ms=300").unwrap());
    connections::set_paused(db, connection.into(), false, chrono::Utc::now())
        .await
        .unwrap();
    sf.app.drive().await;
    assert_eq!(link_count(&sf, connection).await, 800);
    assert_eq!(h.count(OrgKind::Production, "Lead"), 800);
    // The archived batch's slot, freed while the first creates wait, takes one batch, not two.
    assert!(
        h.max_writes_in_flight() <= 2,
        "{} write calls at once with workers.concurrency = 2",
        h.max_writes_in_flight()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_to_production_and_sandbox_at_once_share_the_workers_concurrency_between_them() {
    let sf = spawn_sf_app(sim(), |s| s.workers.concurrency = 2).await;
    let production = sf.connect_and_sync(false).await;
    let sandbox = sf.connect_and_sync(true).await;
    let db = sf.app.store.db();
    for connection in [production, sandbox] {
        connections::set_paused(db, connection.into(), true, chrono::Utc::now())
            .await
            .unwrap();
    }
    // Each new contact in the CRM list goes to both orgs: 600 pushes queued for each.
    for i in 0..600 {
        local::create_contact(
            &sf.app.engine,
            fields([
                name(&format!("Shared Contact{i}")),
                email(&format!("shared{i}@slots.example")),
            ]),
            true,
        )
        .await
        .unwrap();
    }
    let h = sf.sf.handle();
    h.set_faults(salesforce_sim::FaultSpec::parse("composite:latency_ms=300").unwrap());
    for connection in [production, sandbox] {
        connections::set_paused(db, connection.into(), false, chrono::Utc::now())
            .await
            .unwrap();
    }
    sf.app.drive().await;
    assert_eq!(h.count(OrgKind::Production, "Lead"), 600);
    assert_eq!(h.count(OrgKind::Sandbox, "Lead"), 600);
    // Two connections with pushes due, two slots: one batch each at a time.
    assert!(
        h.max_writes_in_flight() <= 2,
        "{} write calls at once with workers.concurrency = 2",
        h.max_writes_in_flight()
    );
}

#[tokio::test]
async fn four_hundred_fifty_pending_edits_go_out_to_salesforce_in_three_composite_calls() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (leads, contacts) = insert(&sf, 250, 200);
    let connection = sf.connect_and_sync(false).await;
    let records: Vec<(&str, &String)> = leads
        .iter()
        .map(|l| ("Lead", l))
        .chain(contacts.iter().map(|c| ("Contact", c)))
        .collect();
    for (i, (_, record)) in records.iter().enumerate() {
        let contact = sf.contact_of(connection, record).await;
        local::update_contact(
            &sf.app.engine,
            contact,
            fields([name(&format!("Edited Batch{i}"))]),
        )
        .await
        .unwrap();
    }
    let h = sf.sf.handle();
    let (updates, singles) = (h.calls("composite.composite"), h.calls("sobject.update"));
    let (writes, reads) = (
        h.subrequests("composite.update"),
        h.calls("composite.retrieve"),
    );
    sf.app.drive().await;
    // Each batch's write and its read-back travel in one Composite call (one API call).
    assert_eq!(
        h.calls("composite.composite") - updates,
        3,
        "200 + 200 + 50"
    );
    assert_eq!(h.subrequests("composite.update") - writes, 3);
    assert_eq!(
        h.calls("composite.retrieve") - reads,
        0,
        "no read-back call"
    );
    assert_eq!(h.calls("sobject.update") - singles, 0, "no record alone");
    for (i, (object, record)) in records.iter().enumerate() {
        assert_eq!(last_name(&sf, object, record), format!("Batch{i}"));
    }
    assert_eq!(
        h.writes_without_call_options(),
        0,
        "every write names tandem"
    );
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
    let counts = tandem_engine::queue::counts(sf.app.store.db(), connection.into())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 0));
}

#[tokio::test]
async fn one_record_failing_validation_dead_letters_only_its_contact_with_the_code_in_the_sync_log()
{
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, records) = insert(&sf, 0, 3);
    let connection = sf.connect_and_sync(false).await;
    sf.sf
        .handle()
        .set_validation_rule(
            OrgKind::Production,
            "Contact",
            "no_refused",
            "LastName = 'Refused'",
            "Refused is not a last name.",
            Some("LastName"),
        )
        .unwrap();
    let mut contacts = Vec::new();
    for (record, new_name) in records.iter().zip(["Ada Refused", "Bob Fine", "Cy Fine"]) {
        let contact = sf.contact_of(connection, record).await;
        local::update_contact(&sf.app.engine, contact, fields([name(new_name)]))
            .await
            .unwrap();
        contacts.push(contact);
    }
    let h = sf.sf.handle();
    let updates = h.calls("composite.composite");
    sf.app.drive().await;
    assert_eq!(
        h.calls("composite.composite") - updates,
        1,
        "one call for the three"
    );
    assert_eq!(
        last_name(&sf, "Contact", &records[0]),
        "Contact0",
        "refused"
    );
    assert_eq!(last_name(&sf, "Contact", &records[1]), "Fine");
    assert_eq!(last_name(&sf, "Contact", &records[2]), "Fine");
    let dead = sf.app.log_entries("dead_letter").await;
    assert_eq!(dead.len(), 1, "only the refused contact");
    assert_eq!(dead[0].contact_id, Some(contacts[0]));
    let remote = dead[0].remote_error.clone().unwrap_or_default();
    assert!(
        remote.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION")
            && remote.contains("Refused is not a last name."),
        "{remote}"
    );
    assert!(dead[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("validation rule")));
    let counts = tandem_engine::queue::counts(sf.app.store.db(), connection.into())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 1));
}

#[tokio::test]
async fn an_app_value_a_salesforce_checkbox_cannot_take_dead_letters_only_its_contact_and_is_never_sent_as_false(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let h = sf.sf.handle();
    h.add_custom_field(
        OrgKind::Production,
        "Contact",
        "Opted_In__c",
        json!({"type": "Checkbox", "label": "Opted in"}),
    )
    .unwrap();
    let admin = h.admin_user(OrgKind::Production);
    h.grant_field_access(
        OrgKind::Production,
        &admin,
        "Contact.Opted_In__c",
        true,
        true,
    )
    .unwrap();
    let (_, records) = insert(&sf, 0, 3);
    h.update_record_as_user(
        OrgKind::Production,
        "Contact",
        &records[0],
        json!({ "Opted_In__c": true }),
    )
    .unwrap();
    let connection = sf.connect_and_sync(false).await;
    let mapped = put_mapping(&sf, connection, "opted_in", "Opted_In__c", "bidirectional").await;
    assert_eq!(
        mapped.status(),
        reqwest::StatusCode::OK,
        "{}",
        mapped.text().await.unwrap()
    );
    sf.app.drive().await;
    let opted_in = |value: &str| {
        (
            tandem_core::FieldKey::new("opted_in").unwrap(),
            tandem_core::FieldValue::text(value),
        )
    };
    let mut contacts = Vec::new();
    for (record, value) in records.iter().zip(["perhaps", "Yes", "0"]) {
        let contact = sf.contact_of(connection, record).await;
        local::update_contact(&sf.app.engine, contact, fields([opted_in(value)]))
            .await
            .unwrap();
        contacts.push(contact);
    }
    let calls = h.calls("composite.composite");
    sf.app.drive().await;
    assert_eq!(
        h.calls("composite.composite") - calls,
        1,
        "one call for the two good values"
    );
    let checkbox = |record: &str| {
        h.record(OrgKind::Production, "Contact", record).unwrap()["Opted_In__c"].clone()
    };
    // The refused value was not sent: Salesforce keeps what it had (not `false`).
    assert_eq!(checkbox(&records[0]), json!(true));
    assert_eq!(checkbox(&records[1]), json!(true));
    assert_eq!(checkbox(&records[2]), json!(false));
    let dead = sf.app.log_entries("dead_letter").await;
    assert_eq!(dead.len(), 1, "only the refused contact");
    assert_eq!(dead[0].contact_id, Some(contacts[0]));
    let remote = dead[0].remote_error.clone().unwrap_or_default();
    assert!(
        remote.contains("VALUE_NOT_OF_FIELD_TYPE")
            && remote.contains("Opted_In__c: \"perhaps\" is not a checkbox value"),
        "{remote}"
    );
    assert!(dead[0]
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("Field Mapping")));
}

#[tokio::test]
async fn a_batch_create_with_one_record_refused_links_the_others_with_their_log_entries_and_events_and_dead_letters_only_the_refused_one(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let connection = sf.connect_and_sync(false).await;
    sf.sf
        .handle()
        .set_validation_rule(
            OrgKind::Production,
            "Lead",
            "no_refused",
            "LastName = 'Refused'",
            "Refused is not a last name.",
            Some("LastName"),
        )
        .unwrap();
    let mut receiver =
        tandem_tests::receiver::subscribed(&sf.app.engine, &["contact.linked"], Vec::new()).await;
    let emails = ["ada@batch.example", "bob@batch.example", "cy@batch.example"];
    let mut contacts = Vec::new();
    for (full_name, address) in ["Ada Refused", "Bob Fine", "Cy Fine"].iter().zip(emails) {
        let created = local::create_contact(
            &sf.app.engine,
            fields([name(full_name), email(address)]),
            true,
        )
        .await
        .unwrap();
        contacts.push(created.contact_id);
    }
    let h = sf.sf.handle();
    let (calls, creates) = (
        h.calls("composite.composite"),
        h.subrequests("composite.create"),
    );
    sf.app.drive().await;
    assert_eq!(
        h.calls("composite.composite") - calls,
        1,
        "one call for the three"
    );
    assert_eq!(h.subrequests("composite.create") - creates, 1);
    assert!(records(&sf, "Lead", &[emails[0]]).is_empty(), "refused");
    let db = sf.app.store.db();
    assert!(links::by_contact(db, connection.into(), contacts[0])
        .await
        .unwrap()
        .is_none());
    for (contact, address) in contacts.iter().zip(emails).skip(1) {
        let leads = records(&sf, "Lead", &[address]);
        assert_eq!(leads.len(), 1, "{address}");
        let link = links::by_contact(db, connection.into(), *contact)
            .await
            .unwrap()
            .expect("linked to its Lead");
        assert_eq!(link.person_id, person_surrogate(&leads[0]));
    }
    let dead = sf.app.log_entries("dead_letter").await;
    assert_eq!(dead.len(), 1, "only the refused contact");
    assert_eq!(dead[0].contact_id, Some(contacts[0]));
    assert!(dead[0]
        .remote_error
        .as_deref()
        .is_some_and(|e| e.contains("Refused is not a last name.")));
    let mut created: Vec<_> = sf
        .app
        .log_entries("person_created")
        .await
        .into_iter()
        .filter_map(|e| e.contact_id)
        .collect();
    created.sort();
    let mut fine = contacts[1..].to_vec();
    fine.sort();
    assert_eq!(created, fine, "one entry per created contact");
    let placeholders = sf.app.log_entries("placeholder_filled").await;
    assert_eq!(placeholders.len(), 2, "Company, for each created Lead");
    // The app hears each created contact was linked, once.
    let mut heard = Vec::new();
    for _ in 0..2 {
        let event = receiver.next().await.json();
        assert_eq!(event["type"], "contact.linked");
        heard.push(event["data"]["contact"]["id"].as_str().unwrap().to_owned());
    }
    heard.sort();
    let fine: Vec<String> = fine.iter().map(ToString::to_string).collect();
    assert_eq!(heard, fine);
    let counts = tandem_engine::queue::counts(db, connection.into())
        .await
        .unwrap();
    assert_eq!((counts.pending, counts.dead), (0, 1));
}

#[tokio::test]
async fn an_unknown_outcome_of_a_batch_create_is_resolved_without_a_duplicate() {
    let sf = spawn_sf_app(sim(), |s| s.salesforce.request_timeout_secs = 1).await;
    let connection = sf.connect_and_sync(false).await;
    // The creates land, and their answer never comes back: tandem times out, not knowing.
    sf.sf
        .handle()
        .set_faults(salesforce_sim::FaultSpec::parse("composite.composite:lost_answer=1").unwrap());
    let emails: Vec<String> = (0..5).map(|i| format!("lost{i}@example.com")).collect();
    let mut contacts = Vec::new();
    for (i, address) in emails.iter().enumerate() {
        let created = local::create_contact(
            &sf.app.engine,
            fields([name(&format!("Lost Answer{i}")), email(address)]),
            true,
        )
        .await
        .unwrap();
        contacts.push(created.contact_id);
    }
    let h = sf.sf.handle();
    let creates = h.subrequests("composite.create");
    // The batch's Composite call (create and read-back) is carried out and its answer lost;
    // then Salesforce answers again, and the retry must find what the lost call created.
    tandem_engine::sync::worker::run_outbox_once(&sf.app.engine)
        .await
        .unwrap();
    assert_eq!(
        h.subrequests("composite.create") - creates,
        1,
        "the lost call"
    );
    h.set_faults(salesforce_sim::FaultSpec::parse("").unwrap());
    sf.app.drive().await;
    assert_eq!(
        h.subrequests("composite.create") - creates,
        1,
        "never created twice"
    );
    let emails: Vec<&str> = emails.iter().map(String::as_str).collect();
    let leads = records(&sf, "Lead", &emails);
    assert_eq!(leads.len(), 5, "one Lead per contact");
    for (contact, address) in contacts.iter().zip(&emails) {
        let link = links::by_contact(sf.app.store.db(), connection.into(), *contact)
            .await
            .unwrap()
            .expect("the contact is linked to the Lead its lost create made");
        let lead = &records(&sf, "Lead", &[address])[0];
        assert_eq!(link.person_id, person_surrogate(lead));
        let stored = sf
            .sf
            .handle()
            .record(OrgKind::Production, "Lead", lead)
            .unwrap();
        assert_eq!(stored["tandem_id__c"], contact.to_string());
    }
    assert!(sf.app.log_entries("dead_letter").await.is_empty());
}

#[tokio::test]
async fn pushes_to_salesforce_respect_per_contact_ordering() {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, records) = insert(&sf, 0, 3);
    let connection = sf.connect_and_sync(false).await;
    let engine = &sf.app.engine;
    let db = sf.app.store.db();
    let a = sf.contact_of(connection, &records[0]).await;
    local::update_contact(engine, a, fields([name("Ann First")]))
        .await
        .unwrap();
    // A worker holds A's first push (claimed, its lease running) ...
    tandem_engine::sync::ownership::owned(engine).await.unwrap();
    let held = tandem_engine::queue::claim(
        db,
        &engine.replica.id,
        engine.now(),
        chrono::Duration::minutes(5),
        10,
    )
    .await
    .unwrap();
    assert_eq!(held.len(), 1);
    // ... while A is edited again and B and C are edited.
    local::update_contact(engine, a, fields([name("Ann Second")]))
        .await
        .unwrap();
    for (record, new_name) in records[1..].iter().zip(["Ben Later", "Cat Later"]) {
        let contact = sf.contact_of(connection, record).await;
        local::update_contact(engine, contact, fields([name(new_name)]))
            .await
            .unwrap();
    }
    let h = sf.sf.handle();
    let updates = h.subrequests("composite.update");
    tandem_engine::sync::worker::run_outbox_once(engine)
        .await
        .unwrap();
    // B and C went together; A's later push waits behind its first, never overtaking it.
    assert_eq!(h.subrequests("composite.update") - updates, 1);
    assert_eq!(last_name(&sf, "Contact", &records[1]), "Later");
    assert_eq!(last_name(&sf, "Contact", &records[2]), "Later");
    assert_eq!(last_name(&sf, "Contact", &records[0]), "Contact0");
    // The first push ends; then A's next push goes, with A's latest values.
    tandem_engine::queue::complete(db, held[0].id)
        .await
        .unwrap();
    sf.app.drive().await;
    assert_eq!(last_name(&sf, "Contact", &records[0]), "Second");
}

#[tokio::test]
async fn matching_a_batch_of_new_contacts_by_email_takes_one_query_per_object_contact_first_then_lead(
) {
    let sf = spawn_sf_app(sim(), |_| {}).await;
    // Connected, but tandem's knowledge is not complete (no initial sync): every create
    // searches first.
    let connection = sf.connect(false).await;
    let h = sf.sf.handle();
    let contact_record = h
        .insert_record(
            OrgKind::Production,
            "Contact",
            json!({ "LastName": "Known", "Email": "Both.Kinds@Example.com" }),
        )
        .unwrap();
    // A Lead with the same e-mail as the Contact: the Contact wins.
    h.insert_record(
        OrgKind::Production,
        "Lead",
        json!({ "LastName": "Shadow", "Company": "Acme", "Email": "both.kinds@example.com" }),
    )
    .unwrap();
    let lead_record = h
        .insert_record(
            OrgKind::Production,
            "Lead",
            json!({ "LastName": "Leady", "Company": "Acme", "Email": "only.lead@example.com" }),
        )
        .unwrap();
    let mut contacts = Vec::new();
    for (n, address) in [
        ("Both Kinds", "both.kinds@example.com"),
        ("Only Lead", "only.lead@example.com"),
        ("Brand New", "brand.new@example.com"),
    ] {
        let created =
            local::create_contact(&sf.app.engine, fields([name(n), email(address)]), true)
                .await
                .unwrap();
        contacts.push(created.contact_id);
    }
    let (queries, creates) = (h.calls("query"), h.subrequests("composite.create"));
    sf.app.drive().await;
    // External ids (Contact, Lead) and e-mails (Contact, then Lead for the rest): four
    // queries for the three contacts, whatever their number.
    assert_eq!(h.calls("query") - queries, 4);
    assert_eq!(h.subrequests("composite.create") - creates, 1);
    let mut linked = Vec::new();
    for contact in &contacts {
        let link = links::by_contact(sf.app.store.db(), connection.into(), *contact)
            .await
            .unwrap()
            .expect("linked");
        linked.push(link.person_id);
    }
    assert_eq!(linked[0], person_surrogate(&contact_record));
    assert_eq!(linked[1], person_surrogate(&lead_record));
    let new = records(&sf, "Lead", &["brand.new@example.com"]);
    assert_eq!(new.len(), 1);
    assert_eq!(linked[2], person_surrogate(&new[0]));
}

/// The contacts list with `query`: its status and body.
async fn listed(
    app: &tandem_tests::TestApp,
    query: &str,
) -> (reqwest::StatusCode, serde_json::Value) {
    let answer = app
        .api(reqwest::Method::GET, &format!("/api/v1/contacts?{query}"))
        .send()
        .await
        .unwrap();
    (answer.status(), answer.json().await.unwrap())
}

#[tokio::test]
async fn a_salesforce_contacts_journey_conditions_come_from_the_kept_opportunities_and_tasks_and_what_it_cannot_answer_is_said(
) {
    use reqwest::{Method, StatusCode};
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, contacts) = insert(&sf, 0, 1);
    let h = sf.sf.handle();
    let deal = h
        .insert_record(
            OrgKind::Production,
            "Opportunity",
            json!({ "Name": "Renewal", "StageName": "Prospecting", "CloseDate": "2027-01-31" }),
        )
        .unwrap();
    h.insert_record(
        OrgKind::Production,
        "OpportunityContactRole",
        json!({ "OpportunityId": deal, "ContactId": contacts[0] }),
    )
    .unwrap();
    for (subject, status) in [("Call back", "Not Started"), ("Intro call", "Completed")] {
        h.insert_record(
            OrgKind::Production,
            "Task",
            json!({ "Subject": subject, "Status": status, "WhoId": contacts[0] }),
        )
        .unwrap();
    }
    let connection = sf.connect_and_sync(false).await;
    let link = sf.link_of(connection, &contacts[0]).await;
    let calls = h.calls("query");
    let conditions = sf
        .app
        .api(
            Method::GET,
            &format!("/api/v1/contacts/{}/crm", link.contact_id.uuid()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(conditions.status(), StatusCode::OK);
    let body: serde_json::Value = conditions.json().await.unwrap();
    assert_eq!(h.calls("query"), calls, "no Salesforce call");
    assert_eq!(body["linked_person_id"], json!(link.person_id));
    assert_eq!(body["deals"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["deals"][0]["Name"], "Renewal");
    assert_eq!(body["deals"][0]["status"], "open");
    assert_eq!(body["open_activities"][0]["Subject"], "Call back");
    assert_eq!(body["done_activities"][0]["Subject"], "Intro call");
    assert!(body["freshest_at"].is_string());

    // The deal filters of the contacts list, over the same records; the others are refused.
    let stage = tandem_engine::crm::salesforce::ids::surrogate("Prospecting");
    for query in [
        "crm.deal.status=open".to_owned(),
        format!("crm.deal.stage_id={stage}&crm.deal.status=open"),
    ] {
        let (status, body) = listed(&sf.app, &query).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["data"].as_array().map(|d| d.len()),
            Some(1),
            "{query}: {body}"
        );
        assert_eq!(body["data"][0]["id"], json!(link.contact_id));
    }
    let (status, body) = listed(&sf.app, "crm.deal.status=won").await;
    assert_eq!(
        (status, body["data"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0))
    );
    let (status, body) = listed(&sf.app, "crm.deal.pipeline_id=1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "validation_failed");
    assert!(body.to_string().contains("Salesforce"), "{body}");

    let subscription = sf
        .app
        .api(Method::POST, "/api/v1/webhook-subscriptions")
        .json(&json!({
            "url": "http://127.0.0.1:9/hooks",
            "event_types": ["deal.won", "person.owner_changed", "organization.changed", "contact.updated"]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(subscription.status(), StatusCode::CREATED);
    let body: serde_json::Value = subscription.json().await.unwrap();
    // Deal and activity triggers come from the Opportunities and Tasks
    // (tests/it/salesforce_related.rs), person and lead triggers from the Leads and Contacts,
    // organization.changed from the Accounts (tests/it/salesforce_triggers.rs).
    assert_eq!(body["unavailable_event_types"], json!([]), "{body}");
}

/// The ids of the contacts the list gives for `query` (it must answer 200), sorted.
async fn listed_ids(app: &tandem_tests::TestApp, query: &str) -> Vec<String> {
    let (status, body) = listed(app, query).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{query}: {body}");
    let mut ids: Vec<String> = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {body}"))
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// What `GET /api/v1/contacts/{id}/crm` shows of the contact's person.
async fn shown_person(app: &tandem_tests::TestApp, contact: uuid::Uuid) -> serde_json::Value {
    let answer = app
        .api(
            reqwest::Method::GET,
            &format!("/api/v1/contacts/{contact}/crm"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = answer.json().await.unwrap();
    body["person"].clone()
}

#[tokio::test]
async fn a_salesforce_contacts_owner_account_and_open_lead_filters_answer_from_the_kept_leads_and_contacts_follow_salesforce_after_the_next_poll_and_a_conversion_and_hold_together_with_the_deal_filters(
) {
    use std::time::Duration;
    const P: OrgKind = OrgKind::Production;
    // The poll reaches ten minutes back and the org's clock is behind tandem's, so the poll
    // reads what the org changes after the initial sync.
    let sf = spawn_sf_app(sim(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
        settings.salesforce.poll_overlap_secs = 600;
    })
    .await;
    let h = sf.sf.handle();
    h.rewind_clock(Duration::from_secs(180));
    let admin = h.user_id(P, &h.admin_user(P)).unwrap();
    let sam = h
        .users(P)
        .into_iter()
        .map(|(id, _)| id)
        .find(|id| *id != admin)
        .expect("a second user");
    let account = |name: &str| {
        h.insert_record(P, "Account", json!({ "Name": name }))
            .unwrap()
    };
    let (globex, initech) = (account("Globex"), account("Initech"));
    let ann = h
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": "Ann", "LastName": "Globex", "Email": "ann@example.com", "AccountId": globex }),
        )
        .unwrap();
    let bob = h
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": "Bob", "LastName": "Initech", "Email": "bob@example.com", "AccountId": initech, "OwnerId": sam }),
        )
        .unwrap();
    // A Lead names its company as text: it has no Account.
    let lea = h
        .insert_record(
            P,
            "Lead",
            json!({ "FirstName": "Lea", "LastName": "Lead", "Company": "Globex", "Email": "lea@example.com", "OwnerId": sam }),
        )
        .unwrap();
    let deal = h
        .insert_record(
            P,
            "Opportunity",
            json!({ "Name": "Renewal", "StageName": "Prospecting", "CloseDate": "2027-01-31" }),
        )
        .unwrap();
    h.insert_record(
        P,
        "OpportunityContactRole",
        json!({ "OpportunityId": deal, "ContactId": ann }),
    )
    .unwrap();
    let connection = sf.connect_and_sync(false).await;
    let contact_of = |link: links::Link| link.contact_id.uuid();
    let ann_contact = contact_of(sf.link_of(connection, &ann).await);
    let bob_contact = contact_of(sf.link_of(connection, &bob).await);
    let lea_contact = contact_of(sf.link_of(connection, &lea).await);

    // The ids tandem shows for the person's owner and Account (the numbers of its trigger
    // events and journey actions) are the ones the filters take.
    let shown = shown_person(&sf.app, ann_contact).await;
    assert_eq!(shown["lead"], json!(false), "{shown}");
    assert_eq!(shown["owner_id"], json!(surrogate(&admin)), "{shown}");
    assert_eq!(shown["org_id"], json!(surrogate(&globex)), "{shown}");
    let shown_lead = shown_person(&sf.app, lea_contact).await;
    assert_eq!(shown_lead["lead"], json!(true), "{shown_lead}");
    assert_eq!(
        shown_lead["owner_id"],
        json!(surrogate(&sam)),
        "{shown_lead}"
    );
    assert_eq!(shown_lead["org_id"], json!(null), "a Lead has no Account");
    let admin_id = shown["owner_id"].as_i64().unwrap();
    let globex_id = shown["org_id"].as_i64().unwrap();
    let sam_id = surrogate(&sam);
    let initech_id = surrogate(&initech);

    let sorted = |mut ids: Vec<uuid::Uuid>| {
        ids.sort();
        ids.into_iter().map(|id| id.to_string()).collect::<Vec<_>>()
    };
    let calls = h.calls("query");
    let stage = surrogate("Prospecting");
    for (query, expected) in [
        (format!("crm.owner_id={admin_id}"), vec![ann_contact]),
        (
            format!("crm.owner_id={sam_id}"),
            vec![bob_contact, lea_contact],
        ),
        (format!("crm.org_id={globex_id}"), vec![ann_contact]),
        (format!("crm.org_id={initech_id}"), vec![bob_contact]),
        (
            format!("crm.owner_id={sam_id}&crm.org_id={initech_id}"),
            vec![bob_contact],
        ),
        (
            format!("crm.owner_id={admin_id}&crm.org_id={initech_id}"),
            vec![],
        ),
        (
            format!("crm.owner_id={admin_id}&crm.deal.status=open"),
            vec![ann_contact],
        ),
        (
            format!("crm.owner_id={sam_id}&crm.deal.status=open"),
            vec![],
        ),
        (
            format!("crm.org_id={globex_id}&crm.deal.stage_id={stage}"),
            vec![ann_contact],
        ),
        (
            format!("crm.org_id={globex_id}&crm.deal.status=won"),
            vec![],
        ),
        // A Lead is itself the open lead; a Contact has none.
        ("crm.lead.open=true".to_owned(), vec![lea_contact]),
        (
            "crm.lead.open=false".to_owned(),
            vec![ann_contact, bob_contact],
        ),
        (
            format!("crm.owner_id={sam_id}&crm.lead.open=false"),
            vec![bob_contact],
        ),
        (
            format!("crm.owner_id={sam_id}&crm.lead.open=true"),
            vec![lea_contact],
        ),
        (
            "crm.deal.status=open&crm.lead.open=false".to_owned(),
            vec![ann_contact],
        ),
        ("crm.deal.status=open&crm.lead.open=true".to_owned(), vec![]),
    ] {
        assert_eq!(
            listed_ids(&sf.app, &query).await,
            sorted(expected),
            "{query}"
        );
    }
    assert_eq!(h.calls("query"), calls, "no Salesforce call");

    // Ann is given to Sam and moved to Initech in Salesforce: the list follows after the
    // next poll of the Leads and Contacts.
    h.update_record_as_user(
        P,
        "Contact",
        &ann,
        json!({ "OwnerId": sam, "AccountId": initech }),
    )
    .unwrap();
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
    for (query, expected) in [
        (
            format!("crm.owner_id={sam_id}"),
            vec![ann_contact, bob_contact, lea_contact],
        ),
        (format!("crm.owner_id={admin_id}"), vec![]),
        (
            format!("crm.org_id={initech_id}"),
            vec![ann_contact, bob_contact],
        ),
        (format!("crm.org_id={globex_id}"), vec![]),
        (
            format!("crm.owner_id={sam_id}&crm.deal.status=open"),
            vec![ann_contact],
        ),
    ] {
        assert_eq!(
            listed_ids(&sf.app, &query).await,
            sorted(expected),
            "{query}"
        );
    }
    let shown = shown_person(&sf.app, ann_contact).await;
    assert_eq!(
        (&shown["owner_id"], &shown["org_id"]),
        (&json!(sam_id), &json!(initech_id))
    );

    // Lea's Lead is converted: after the next poll her contact is linked to the Contact she
    // became, and no contact is an open lead any more.
    h.convert_lead(P, &lea, None, None).unwrap();
    poller::poll_once(&sf.app.engine, &conn).await.unwrap();
    sf.app.drive().await;
    assert_eq!(
        listed_ids(&sf.app, "crm.lead.open=true").await,
        sorted(vec![])
    );
    assert_eq!(
        listed_ids(&sf.app, "crm.lead.open=false").await,
        sorted(vec![ann_contact, bob_contact, lea_contact])
    );

    // What the kept records cannot answer is refused, naming the filter; the Tasks' types
    // answer (nobody here has a Task).
    let name = "crm.deal.pipeline_id";
    let (status, body) = listed(&sf.app, &format!("crm.owner_id={sam_id}&{name}=1")).await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["fields"][0]["field"], name, "{body}");
    assert!(body.to_string().contains("Salesforce"), "{body}");
    assert_eq!(
        listed_ids(
            &sf.app,
            &format!("crm.owner_id={sam_id}&crm.activity.open_type=call")
        )
        .await,
        sorted(vec![])
    );
}

#[tokio::test]
async fn a_salesforce_connection_whose_initial_sync_ran_before_tandem_kept_owners_and_accounts_answers_409_for_them_until_run_initial_sync_read_them(
) {
    use sea_orm::ConnectionTrait;
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let (_, contacts) = insert(&sf, 0, 1);
    let connection = sf.connect_and_sync(false).await;
    let link = sf.link_of(connection, &contacts[0]).await;
    // As a connection synced before: no kept persons, no note that an initial sync kept them.
    for sql in [
        "DELETE FROM crm_person",
        "DELETE FROM sync_cursor WHERE name = 'related:persons_kept'",
    ] {
        sf.app.store.db().execute_unprepared(sql).await.unwrap();
    }
    let h = sf.sf.handle();
    let owner = surrogate(
        &h.user_id(OrgKind::Production, &h.admin_user(OrgKind::Production))
            .unwrap(),
    );
    let (status, body) = listed(&sf.app, &format!("crm.owner_id={owner}")).await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "conflict");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Run initial sync"),
        "{body}"
    );
    let (status, _) = listed(&sf.app, "crm.deal.status=open").await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "the deal filters still answer"
    );

    poller::reset_initial_sync(&sf.app.engine, connection.into())
        .await
        .unwrap();
    let (status, _) = listed(&sf.app, &format!("crm.org_id={owner}")).await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "while it runs");
    poller::initial_sync(&sf.app.engine, connection.into(), |_| {})
        .await
        .unwrap();
    assert_eq!(
        listed_ids(&sf.app, &format!("crm.owner_id={owner}")).await,
        vec![link.contact_id.uuid().to_string()]
    );
}

#[tokio::test]
async fn an_initial_sync_page_of_hundreds_of_salesforce_contacts_keeps_the_account_of_each_one() {
    const P: OrgKind = OrgKind::Production;
    let sf = spawn_sf_app(sim(), |_| {}).await;
    let h = sf.sf.handle();
    let accounts: Vec<String> = ["Globex", "Initech"]
        .iter()
        .map(|name| {
            h.insert_record(P, "Account", json!({ "Name": name }))
                .unwrap()
        })
        .collect();
    // 300 Contacts read in one page: more than one statement's rows.
    for i in 0..300 {
        h.insert_record(
            P,
            "Contact",
            json!({ "LastName": format!("Member{i}"), "Email": format!("member{i}@example.com"), "AccountId": accounts[i % 2] }),
        )
        .unwrap();
    }
    sf.connect_and_sync(false).await;
    for account in &accounts {
        let ids = listed_ids(
            &sf.app,
            &format!("crm.org_id={}&limit=200", surrogate(account)),
        )
        .await;
        assert_eq!(ids.len(), 150, "{account}");
    }
}

/// A Task on `who` as a Salesforce user makes it, with `fields` besides (`Type`, `Status`, …).
fn task(sf: &SfApp, who: &str, subject: &str, fields: serde_json::Value) -> String {
    let mut body = json!({ "Subject": subject, "WhoId": who });
    body.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    sf.sf
        .handle()
        .insert_record(OrgKind::Production, "Task", body)
        .unwrap()
}

/// A journey's `schedule_activity` of a call (`subject`) for the app contact of Salesforce
/// Contact `contact`, run to its end.
async fn journey_call(sf: &SfApp, contact: &str, key: &str, subject: &str) {
    let address = sf
        .sf
        .handle()
        .record(OrgKind::Production, "Contact", contact)
        .unwrap()["Email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, queued) = sf
        .app
        .post_action(
            "schedule_activity",
            key,
            &json!({ "email": address, "params": { "subject": subject, "type": "call" } }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{queued}");
    sf.app.drive().await;
}

#[tokio::test]
async fn a_salesforce_contacts_open_activity_type_filter_lists_the_persons_with_an_open_task_of_that_type_holds_together_with_the_other_filters_and_drops_a_task_completed_in_salesforce_after_the_next_poll(
) {
    const P: OrgKind = OrgKind::Production;
    let sf = spawn_sf_app(sim(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
    })
    .await;
    let h = sf.sf.handle();
    let admin = h.user_id(P, &h.admin_user(P)).unwrap();
    let sam = h
        .users(P)
        .into_iter()
        .map(|(id, _)| id)
        .find(|id| *id != admin)
        .expect("a second user");
    let lea = h
        .insert_record(
            P,
            "Lead",
            json!({ "FirstName": "Lea", "LastName": "Lead", "Company": "Globex", "Email": "lea@example.com", "OwnerId": sam }),
        )
        .unwrap();
    let contact = |first: &str| {
        h.insert_record(
            P,
            "Contact",
            json!({ "FirstName": first, "LastName": "Contact", "Email": format!("{first}@example.com") }),
        )
        .unwrap()
    };
    let (bob, cal, dan) = (contact("bob"), contact("cal"), contact("dan"));
    // Lea has an open call, Bob a call he made, Cal an open meeting; Dan's open Task has no
    // type.
    let lea_call = task(&sf, &lea, "Call back", json!({ "Type": "Call" }));
    task(
        &sf,
        &bob,
        "Intro call",
        json!({ "Type": "Call", "Status": "Completed" }),
    );
    task(&sf, &cal, "Demo", json!({ "Type": "Meeting" }));
    task(&sf, &dan, "Follow up", json!({}));
    let connection = sf.connect_and_sync(false).await;
    let contact_of = |link: links::Link| link.contact_id.uuid();
    let lea_contact = contact_of(sf.link_of(connection, &lea).await);
    let cal_contact = contact_of(sf.link_of(connection, &cal).await);
    let sorted = |mut ids: Vec<uuid::Uuid>| {
        ids.sort();
        ids.into_iter().map(|id| id.to_string()).collect::<Vec<_>>()
    };

    let sam_id = surrogate(&sam);
    let calls = h.calls("query");
    for (query, expected) in [
        ("crm.activity.open_type=call".to_owned(), vec![lea_contact]),
        // The journey names types as Pipedrive keys them; Salesforce spells them its way.
        ("crm.activity.open_type=CALL".to_owned(), vec![lea_contact]),
        (
            "crm.activity.open_type=meeting".to_owned(),
            vec![cal_contact],
        ),
        ("crm.activity.open_type=email".to_owned(), vec![]),
        (
            format!("crm.owner_id={sam_id}&crm.activity.open_type=call"),
            vec![lea_contact],
        ),
        (
            format!("crm.owner_id={sam_id}&crm.activity.open_type=meeting"),
            vec![],
        ),
        (
            "crm.activity.open_type=call&crm.lead.open=true".to_owned(),
            vec![lea_contact],
        ),
        (
            "crm.activity.open_type=call&crm.lead.open=false".to_owned(),
            vec![],
        ),
        (
            "crm.activity.open_type=meeting&crm.lead.open=false".to_owned(),
            vec![cal_contact],
        ),
        (
            format!("crm.owner_id={sam_id}&crm.activity.open_type=call&crm.lead.open=true"),
            vec![lea_contact],
        ),
        (
            "crm.deal.status=open&crm.activity.open_type=call".to_owned(),
            vec![],
        ),
    ] {
        assert_eq!(
            listed_ids(&sf.app, &query).await,
            sorted(expected),
            "{query}"
        );
    }
    assert_eq!(h.calls("query"), calls, "no Salesforce call");

    // Lea's call is made in Salesforce; a call logged on Dan is left open (no `Type`, its
    // `TaskSubtype` says what it is). After the next poll the list follows.
    h.update_record_as_user(P, "Task", &lea_call, json!({ "Status": "Completed" }))
        .unwrap();
    task(&sf, &dan, "Logged call", json!({ "TaskSubtype": "Call" }));
    poller::poll_connection(&sf.app.engine, connection.into())
        .await
        .unwrap();
    sf.app.drive().await;
    let dan_contact = contact_of(sf.link_of(connection, &dan).await);
    assert_eq!(
        listed_ids(&sf.app, "crm.activity.open_type=call").await,
        sorted(vec![dan_contact])
    );
    assert_eq!(
        listed_ids(
            &sf.app,
            &format!("crm.owner_id={sam_id}&crm.activity.open_type=call")
        )
        .await,
        sorted(vec![])
    );
}

#[tokio::test]
async fn after_the_upgrade_that_keeps_task_types_the_next_related_read_lists_every_task_again_and_the_tasks_kept_without_a_type_get_theirs(
) {
    use sea_orm::ConnectionTrait;
    let sf = spawn_sf_app(sim(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
    })
    .await;
    let (_, contacts) = insert(&sf, 0, 2);
    // The first Task made ten minutes before the second, so the stream's cursor (the second's
    // time) is past the first one's overlap window.
    let h = sf.sf.handle();
    let ten_minutes = std::time::Duration::from_secs(600);
    h.rewind_clock(ten_minutes);
    task(&sf, &contacts[0], "Call back", json!({ "Type": "Call" }));
    h.advance_clock(ten_minutes);
    task(&sf, &contacts[1], "Demo", json!({ "Type": "Meeting" }));
    let connection = sf.connect_and_sync(false).await;
    let contact = sf.contact_of(connection, &contacts[0]).await.to_string();
    assert_eq!(
        listed_ids(&sf.app, "crm.activity.open_type=call").await,
        vec![contact.clone()]
    );
    // As before the upgrade: the first Task kept without its type, its stream read.
    let db = sf.app.store.db();
    db.execute_unprepared(
        "UPDATE crm_related_record SET activity_type = NULL WHERE activity_type = 'call'",
    )
    .await
    .unwrap();
    assert!(listed_ids(&sf.app, "crm.activity.open_type=call")
        .await
        .is_empty());
    poller::poll_connection(&sf.app.engine, connection.into())
        .await
        .unwrap();
    assert!(
        listed_ids(&sf.app, "crm.activity.open_type=call")
            .await
            .is_empty(),
        "a read from the cursor does not see the unchanged Task"
    );

    // The upgrade: the migration after the column's runs.
    sf.app.store.migrate_down(Some(1)).await.unwrap();
    sf.app.store.migrate_up().await.unwrap();
    let queries = h.calls("query");
    poller::poll_connection(&sf.app.engine, connection.into())
        .await
        .unwrap();
    assert!(h.calls("query") > queries);
    assert_eq!(
        listed_ids(&sf.app, "crm.activity.open_type=call").await,
        vec![contact]
    );
}

#[tokio::test]
async fn a_call_a_journey_schedules_on_salesforce_is_a_task_of_type_call_and_its_contact_is_listed_by_the_open_activity_type_filter_after_the_next_poll(
) {
    const P: OrgKind = OrgKind::Production;
    let sf = spawn_sf_app(sim(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
    })
    .await;
    let (_, contacts) = insert(&sf, 0, 2);
    let connection = sf.connect_and_sync(false).await;
    let contact = sf.contact_of(connection, &contacts[0]).await;
    let h = sf.sf.handle();
    journey_call(&sf, &contacts[0], "journey-call", "Welcome call").await;
    let tasks: Vec<serde_json::Value> = h
        .ids(P, "Task")
        .into_iter()
        .filter_map(|id| h.record(P, "Task", &id))
        .collect();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["Type"], "Call", "the picklist's own spelling");
    assert_eq!(tasks[0]["Subject"], "Welcome call");

    poller::poll_connection(&sf.app.engine, connection.into())
        .await
        .unwrap();
    sf.app.drive().await;
    assert_eq!(
        listed_ids(&sf.app, "crm.activity.open_type=call").await,
        vec![contact.uuid().to_string()]
    );
}

#[tokio::test]
async fn a_task_type_field_level_security_hides_from_the_connecting_user_leaves_the_task_stream_reading_and_the_open_activity_type_filter_matches_nobody(
) {
    const P: OrgKind = OrgKind::Production;
    let sf = spawn_sf_app(sim(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
    })
    .await;
    let h = sf.sf.handle();
    h.grant_field_access(P, &h.admin_user(P), "Task.Type", false, false)
        .unwrap();
    let (_, contacts) = insert(&sf, 0, 1);
    // A Salesforce user who may see the field gives the Task its type.
    task(&sf, &contacts[0], "Call back", json!({ "Type": "Call" }));
    let connection = sf.connect_and_sync(false).await;

    let kept = tandem_engine::store::crm_related::all(
        sf.app.store.db(),
        connection.into(),
        tandem_engine::crm::RelatedKind::Activity,
    )
    .await
    .unwrap();
    assert_eq!(kept.len(), 1, "the Task is read");
    assert_eq!(kept[0].status.as_deref(), Some("open"));
    assert_eq!(
        kept[0].activity_type, None,
        "without the type it may not see"
    );
    assert!(kept[0].raw.get("Type").is_none(), "{}", kept[0].raw);
    assert_eq!(
        listed_ids(&sf.app, "crm.activity.open_type=call").await,
        Vec::<String>::new()
    );

    // The polls keep reading; a journey's call is made without the type it cannot write.
    task(&sf, &contacts[0], "Second call", json!({ "Type": "Call" }));
    journey_call(&sf, &contacts[0], "hidden-type", "Journey call").await;
    poller::poll_connection(&sf.app.engine, connection.into())
        .await
        .unwrap();
    sf.app.drive().await;
    let kept = tandem_engine::store::crm_related::all(
        sf.app.store.db(),
        connection.into(),
        tandem_engine::crm::RelatedKind::Activity,
    )
    .await
    .unwrap();
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|t| t.activity_type.is_none()), "{kept:?}");
    let journey = h
        .ids(P, "Task")
        .into_iter()
        .filter_map(|id| h.record(P, "Task", &id))
        .find(|t| t["Subject"] == "Journey call")
        .expect("the journey's Task");
    assert_eq!(journey["Type"], serde_json::Value::Null);
    assert_eq!(
        listed_ids(&sf.app, "crm.activity.open_type=call").await,
        Vec::<String>::new()
    );
}
