//! The records journey actions, conditions and triggers need besides Leads and Contacts
//! (issue 19): Salesforce Accounts, Opportunities, their contact roles and Tasks, read by the
//! initial sync and kept current by the change capture.

use std::time::Duration;

use salesforce_sim::{FaultSpec, OrgKind, SfSimConfig};
use serde_json::json;
use tandem_engine::crm::salesforce::ids::{person_surrogate, surrogate};
use tandem_engine::crm::{CrmRelated, RelatedKind};
use tandem_engine::store::crm_related;

use tandem_engine::sync::inbound::poller;
use tandem_engine::sync::{connections, related};
use tandem_tests::receiver::TestReceiver;
use tandem_tests::salesforce::{spawn_sf_app, SfApp};

const P: OrgKind = OrgKind::Production;

fn opportunity(sf: &SfApp, name: &str, account: &str, contact: Option<&str>) -> String {
    let h = sf.sf.handle();
    let id = h
        .insert_record(
            P,
            "Opportunity",
            json!({ "Name": name, "StageName": "Prospecting", "CloseDate": "2027-01-31", "AccountId": account }),
        )
        .unwrap();
    if let Some(contact) = contact {
        h.insert_record(
            P,
            "OpportunityContactRole",
            json!({ "OpportunityId": id, "ContactId": contact, "IsPrimary": true }),
        )
        .unwrap();
    }
    id
}

/// A tandem reading the related records at every poll, and a Salesforce org (its clock
/// three minutes behind: Salesforce's deleted resource covers whole minutes up to tandem's
/// clock, so a delete made before the clock is moved on lies in a covered minute) with an
/// Account and a Contact of it; returns them.
async fn org_with_a_contact() -> (SfApp, String, String) {
    let sf = spawn_sf_app(SfSimConfig::default(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
    })
    .await;
    let h = sf.sf.handle();
    h.rewind_clock(Duration::from_secs(180));
    let account = h
        .insert_record(P, "Account", json!({ "Name": "Globex" }))
        .unwrap();
    let contact = h
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": "Con", "LastName": "Tact", "Email": "con@example.com", "AccountId": account }),
        )
        .unwrap();
    (sf, account, contact)
}

/// An app webhook subscription to `types`, and the receiver it delivers to.
async fn subscribe(sf: &SfApp, types: &[&str]) -> TestReceiver {
    tandem_tests::receiver::subscribed(&sf.app.engine, types, Vec::new()).await
}

/// A poll of the connection (the related records are due at every one), then the workers.
async fn poll(sf: &SfApp, connection: uuid::Uuid) {
    poller::poll_connection(&sf.app.engine, connection.into())
        .await
        .unwrap();
    sf.app.drive().await;
}

/// The next `n` events the receiver gets, sorted by type (a read announces in no set order).
async fn next_by_type(receiver: &mut TestReceiver, n: usize) -> Vec<serde_json::Value> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(receiver.next().await.json());
    }
    events.sort_by_key(|e| e["type"].as_str().unwrap_or_default().to_owned());
    events
}

/// Every event is told to app contact `contact`, and to it only.
fn told_to(events: &[serde_json::Value], contact: uuid::Uuid) {
    for event in events {
        assert_eq!(event["data"]["contact_ids"], json!([contact]), "{event}");
    }
}

async fn kept(sf: &SfApp, connection: uuid::Uuid, kind: RelatedKind) -> Vec<CrmRelated> {
    crm_related::all(sf.app.store.db(), connection.into(), kind)
        .await
        .unwrap()
}

fn named<'a>(records: &'a [CrmRelated], name: &str) -> &'a CrmRelated {
    records
        .iter()
        .find(|r| r.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{name} is kept"))
}

#[tokio::test]
async fn the_initial_sync_keeps_every_account_opportunity_and_contact_role_and_the_poll_follows_their_edits_and_deletes(
) {
    let (sf, account, contact) = org_with_a_contact().await;
    let h = sf.sf.handle();
    let alpha = opportunity(&sf, "Alpha", &account, Some(&contact));
    let beta = opportunity(&sf, "Beta", &account, None);
    let connection = sf.connect_and_sync(false).await;

    let accounts = kept(&sf, connection, RelatedKind::Company).await;
    assert_eq!(accounts.len(), h.count(P, "Account"), "every Account");
    assert_eq!(named(&accounts, "Globex").id, surrogate(&account));
    let deals = kept(&sf, connection, RelatedKind::Deal).await;
    assert_eq!(deals.len(), 2);
    let kept_alpha = named(&deals, "Alpha");
    assert_eq!(kept_alpha.id, surrogate(&alpha));
    assert_eq!(kept_alpha.company_id, Some(surrogate(&account)));
    assert_eq!(
        (kept_alpha.stage.as_deref(), kept_alpha.status.as_deref()),
        (Some("Prospecting"), Some("open"))
    );
    assert_eq!(
        kept_alpha.raw["Name"], "Alpha",
        "the record as Salesforce answered it"
    );
    let roles = kept(&sf, connection, RelatedKind::DealRole).await;
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].deal_id, Some(surrogate(&alpha)));
    assert_eq!(roles[0].person_id, Some(person_surrogate(&contact)));

    // In Salesforce: Alpha is won, Beta deleted, Gamma added with the contact's role.
    h.update_record_as_user(
        P,
        "Opportunity",
        &alpha,
        json!({ "StageName": "Closed Won" }),
    )
    .unwrap();
    h.delete_record(P, "Opportunity", &beta).unwrap();
    let gamma = opportunity(&sf, "Gamma", &account, Some(&contact));
    h.advance_clock(Duration::from_secs(180));
    poller::poll_connection(&sf.app.engine, connection.into())
        .await
        .unwrap();

    let deals = kept(&sf, connection, RelatedKind::Deal).await;
    let kept_alpha = named(&deals, "Alpha");
    assert_eq!(
        (kept_alpha.stage.as_deref(), kept_alpha.status.as_deref()),
        (Some("Closed Won"), Some("won"))
    );
    assert!(named(&deals, "Beta").deleted, "marked, not dropped");
    assert!(!named(&deals, "Gamma").deleted);
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    let of_contact: Vec<i64> =
        related::person_deals(&sf.app.engine, &conn, person_surrogate(&contact))
            .await
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
    assert_eq!(
        of_contact,
        [surrogate(&alpha), surrogate(&gamma)],
        "the contact's live deals, oldest first"
    );
}

#[tokio::test]
async fn a_listing_cut_off_after_its_first_page_resumes_at_the_next_page_and_run_initial_sync_lists_again(
) {
    let sf = spawn_sf_app(SfSimConfig::default(), |_| {}).await;
    let h = sf.sf.handle();
    let account = h
        .insert_record(P, "Account", json!({ "Name": "Initech" }))
        .unwrap();
    for i in 0..2_500 {
        opportunity(&sf, &format!("Deal {i}"), &account, None);
    }
    let connection = sf.connect(false).await;
    // Every further page of a query fails: the Opportunities' listing stops after its first
    // page of 2,000.
    h.set_faults(FaultSpec::parse("query.more:500=1").unwrap());
    poller::initial_sync(&sf.app.engine, connection.into(), |_| {})
        .await
        .expect_err("the listing's second page fails");
    assert_eq!(kept(&sf, connection, RelatedKind::Deal).await.len(), 2_000);

    h.set_faults(FaultSpec::default());
    let (queries, more) = (h.calls("query"), h.calls("query.more"));
    let conn = connections::load(&sf.app.engine, connection.into())
        .await
        .unwrap();
    related::catch_up(&sf.app.engine, &conn).await.unwrap();
    assert_eq!(kept(&sf, connection, RelatedKind::Deal).await.len(), 2_500);
    assert_eq!(
        (h.calls("query") - queries, h.calls("query.more") - more),
        (3, 1),
        "the Accounts' and roles' changes and the Tasks' listing are queried; the Opportunities resume at their next page"
    );

    // "Run initial sync" lists every stream again.
    opportunity(&sf, "Deal late", &account, None);
    poller::reset_initial_sync(&sf.app.engine, connection.into())
        .await
        .unwrap();
    let more = h.calls("query.more");
    poller::initial_sync(&sf.app.engine, connection.into(), |_| {})
        .await
        .unwrap();
    assert_eq!(kept(&sf, connection, RelatedKind::Deal).await.len(), 2_501);
    assert_eq!(
        h.calls("query.more") - more,
        1,
        "the Opportunities listed from the first page"
    );
}

#[tokio::test]
async fn after_tandem_was_stopped_longer_than_salesforce_keeps_its_deletes_the_records_are_listed_again_and_the_ones_gone_are_deleted_and_announced(
) {
    let (sf, account, contact) = org_with_a_contact().await;
    let h = sf.sf.handle();
    // The Opportunities are 16 days old when tandem reads them first and is then "stopped".
    let sixteen_days = Duration::from_secs(16 * 24 * 3600);
    h.rewind_clock(sixteen_days);
    // Its session outlives the stop (a refresh after it is another test's matter).
    h.set_session_lifetime(sixteen_days * 2);
    let alpha = opportunity(&sf, "Alpha", &account, Some(&contact));
    let beta = opportunity(&sf, "Beta", &account, Some(&contact));
    opportunity(&sf, "Gamma", &account, Some(&contact));
    let connection = sf.connect_and_sync(false).await;
    let app_contact = sf.contact_of(connection, &contact).await.uuid();
    let mut receiver =
        subscribe(&sf, &["deal.created", "deal.stage_changed", "deal.deleted"]).await;

    // While tandem is stopped: Beta is deleted, Alpha moved, Delta created; then 16 days pass
    // (Beta's delete is older than the 15 days the `deleted` resource covers).
    h.delete_record(P, "Opportunity", &beta).unwrap();
    h.update_record_as_user(
        P,
        "Opportunity",
        &alpha,
        json!({ "StageName": "Negotiation/Review" }),
    )
    .unwrap();
    opportunity(&sf, "Delta", &account, Some(&contact));
    h.advance_clock(sixteen_days);
    let now = sf.app.engine.now();
    tandem_engine::store::cursors::set(
        sf.app.store.db(),
        connection.into(),
        related::READ_AT,
        &(now - chrono::Duration::days(16)).to_rfc3339(),
        now,
    )
    .await
    .unwrap();

    poll(&sf, connection).await;
    let deals = kept(&sf, connection, RelatedKind::Deal).await;
    assert!(
        named(&deals, "Beta").deleted,
        "the Opportunity gone is deleted"
    );
    assert!(!named(&deals, "Gamma").deleted);
    assert_eq!(
        named(&deals, "Alpha").stage.as_deref(),
        Some("Negotiation/Review")
    );
    assert!(!named(&deals, "Delta").deleted);
    let roles = kept(&sf, connection, RelatedKind::DealRole).await;
    assert_eq!(
        roles.iter().filter(|r| !r.deleted).count(),
        3,
        "Beta's role went with it: {roles:?}"
    );
    let events = next_by_type(&mut receiver, 3).await;
    assert_eq!(
        events.iter().map(|e| e["type"].clone()).collect::<Vec<_>>(),
        [
            json!("deal.created"),
            json!("deal.deleted"),
            json!("deal.stage_changed")
        ]
    );
    assert_eq!(events[0]["data"]["deal"]["Name"], "Delta");
    assert_eq!(events[1]["data"]["deal"]["Name"], "Beta");
    assert_eq!(events[2]["data"]["deal"]["Id"], alpha.as_str());
    told_to(&events, app_contact);

    // Read again within reach: changes since the cursor only, nothing announced twice.
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty());
    assert!(named(&kept(&sf, connection, RelatedKind::Deal).await, "Beta").deleted);
}

#[tokio::test]
async fn after_a_restart_the_related_records_wait_for_their_interval_and_are_read_once_it_passed() {
    let sf = spawn_sf_app(SfSimConfig::default(), |_| {}).await;
    let h = sf.sf.handle();
    let connection = sf.connect_and_sync(false).await;
    // A restarted process remembers nothing of its own: only what is stored.
    let engine = &sf.app.engine;
    engine.last_polls.clear();
    engine.last_related_reads.clear();
    let queries = h.calls("query");
    poller::poll_connection(engine, connection.into())
        .await
        .unwrap();
    assert_eq!(
        h.calls("query") - queries,
        2,
        "the Leads and Contacts are polled; the related streams were read a moment ago"
    );

    // The interval has passed (60 s by default).
    engine.last_polls.clear();
    engine.last_related_reads.clear();
    let conn = connections::load(engine, connection.into()).await.unwrap();
    tandem_engine::store::cursors::set(
        &sf.app.store,
        conn.id,
        "related:read_at",
        &(chrono::Utc::now() - chrono::Duration::seconds(61)).to_rfc3339(),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let queries = h.calls("query");
    poller::poll_connection(engine, connection.into())
        .await
        .unwrap();
    assert_eq!(
        h.calls("query") - queries,
        2 + 4,
        "and the four related streams"
    );
}

#[tokio::test]
async fn opportunities_created_moved_won_and_deleted_in_salesforce_reach_the_app_as_deal_triggers_once_with_their_contacts(
) {
    let (sf, account, contact) = org_with_a_contact().await;
    let h = sf.sf.handle();
    let alpha = opportunity(&sf, "Alpha", &account, Some(&contact));
    let connection = sf.connect_and_sync(false).await;
    let app_contact = sf.contact_of(connection, &contact).await.uuid();
    let mut receiver = subscribe(
        &sf,
        &[
            "deal.created",
            "deal.stage_changed",
            "deal.won",
            "deal.deleted",
        ],
    )
    .await;

    // Nothing changed since the initial sync, which announces nothing.
    poll(&sf, connection).await;
    let beta = opportunity(&sf, "Beta", &account, Some(&contact));
    h.update_record_as_user(
        P,
        "Opportunity",
        &alpha,
        json!({ "StageName": "Negotiation/Review" }),
    )
    .unwrap();
    poll(&sf, connection).await;
    let events = next_by_type(&mut receiver, 2).await;
    assert_eq!(events[0]["type"], "deal.created");
    assert_eq!(events[0]["data"]["deal"]["Name"], "Beta");
    assert_eq!(events[1]["type"], "deal.stage_changed");
    assert_eq!(events[1]["data"]["deal"]["Id"], alpha.as_str());
    assert_eq!(
        events[1]["data"]["change"]["stage_id"]["to"],
        json!(surrogate("Negotiation/Review")),
        "the stage's id is the one journey actions take"
    );
    told_to(&events, app_contact);

    // The overlap reads them again: nothing more. Then Alpha is won and Beta deleted.
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "a change is announced once");
    h.update_record_as_user(
        P,
        "Opportunity",
        &alpha,
        json!({ "StageName": "Closed Won" }),
    )
    .unwrap();
    h.delete_record(P, "Opportunity", &beta).unwrap();
    h.advance_clock(Duration::from_secs(180));
    poll(&sf, connection).await;
    let events = next_by_type(&mut receiver, 3).await;
    assert_eq!(
        events.iter().map(|e| e["type"].clone()).collect::<Vec<_>>(),
        [
            json!("deal.deleted"),
            json!("deal.stage_changed"),
            json!("deal.won")
        ]
    );
    assert_eq!(events[0]["data"]["contact_ids"], json!([app_contact]));
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty());
}

#[tokio::test]
async fn a_deal_a_journey_action_made_or_moved_is_not_announced_back_to_the_app() {
    let sf = spawn_sf_app(SfSimConfig::default(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
    })
    .await;
    let h = sf.sf.handle();
    h.insert_record(
        P,
        "Contact",
        json!({ "FirstName": "Con", "LastName": "Tact", "Email": "con@example.com" }),
    )
    .unwrap();
    let connection = sf.connect_and_sync(false).await;
    let mut receiver = subscribe(&sf, &["deal.created", "deal.stage_changed"]).await;
    for (action, params, key) in [
        ("add_deal", json!({ "title": "Upsell" }), "own-1"),
        (
            "update_deal_stage",
            json!({ "stage_id": "Qualification" }),
            "own-2",
        ),
    ] {
        let (status, _) = sf
            .app
            .post_action(
                action,
                key,
                &json!({ "email": "con@example.com", "params": params }),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED);
        sf.app.drive().await;
    }
    let id = h.ids(P, "Opportunity").remove(0);
    assert_eq!(
        h.record(P, "Opportunity", &id).unwrap()["StageName"],
        "Qualification"
    );
    poll(&sf, connection).await;
    assert!(receiver.drain().is_empty(), "tandem's own writes");
    assert_eq!(
        kept(&sf, connection, RelatedKind::Deal).await[0].stage,
        Some("Qualification".to_owned()),
        "the read kept the deal"
    );
}

#[tokio::test]
async fn a_task_created_and_completed_in_salesforce_reaches_the_app_once_each_and_a_scheduled_activity_is_not_announced_back(
) {
    let sf = spawn_sf_app(SfSimConfig::default(), |settings| {
        settings.salesforce.related_poll_interval_secs = 0;
    })
    .await;
    let h = sf.sf.handle();
    let contact = h
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": "Con", "LastName": "Tact", "Email": "con@example.com" }),
        )
        .unwrap();
    let connection = sf.connect_and_sync(false).await;
    let mut receiver = subscribe(&sf, &["activity.created", "activity.completed"]).await;
    let (status, _) = sf
        .app
        .post_action(
            "schedule_activity",
            "own-task",
            &json!({ "email": "con@example.com", "params": { "subject": "Journey call" } }),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::ACCEPTED);
    sf.app.drive().await;
    let task = h
        .insert_record(
            P,
            "Task",
            json!({ "Subject": "Call back", "Status": "Not Started", "WhoId": contact }),
        )
        .unwrap();
    poll(&sf, connection).await;
    let created = receiver.next().await.json();
    assert_eq!(created["type"], "activity.created");
    assert_eq!(created["data"]["activity"]["Subject"], "Call back");
    assert_eq!(created["data"]["activity"]["status"], "open");
    h.update_record_as_user(P, "Task", &task, json!({ "Status": "Completed" }))
        .unwrap();
    poll(&sf, connection).await;
    let completed = receiver.next().await.json();
    assert_eq!(completed["type"], "activity.completed");
    assert_eq!(completed["data"]["activity"]["Id"], task.as_str());
    poll(&sf, connection).await;
    assert!(
        receiver.drain().is_empty(),
        "each change once, and the journey's own Task never"
    );
}

#[tokio::test]
async fn an_open_task_past_its_due_date_is_announced_overdue_once() {
    let sf = spawn_sf_app(SfSimConfig::default(), |_| {}).await;
    let h = sf.sf.handle();
    let contact = h
        .insert_record(
            P,
            "Contact",
            json!({ "FirstName": "Con", "LastName": "Tact", "Email": "con@example.com" }),
        )
        .unwrap();
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let late = h
        .insert_record(
            P,
            "Task",
            json!({ "Subject": "Late call", "WhoId": contact, "ActivityDate": yesterday }),
        )
        .unwrap();
    for (subject, status, due) in [
        ("Later call", "Not Started", &tomorrow),
        ("Done call", "Completed", &yesterday),
    ] {
        h.insert_record(
            P,
            "Task",
            json!({ "Subject": subject, "Status": status, "WhoId": contact, "ActivityDate": due }),
        )
        .unwrap();
    }
    let connection = sf.connect_and_sync(false).await;
    let app_contact = sf.contact_of(connection, &contact).await.uuid();
    let mut receiver = subscribe(&sf, &["activity.overdue"]).await;
    for _ in 0..2 {
        tandem_engine::sync::triggers::scan_overdue(&sf.app.engine)
            .await
            .unwrap();
        sf.app.drive().await;
    }
    let overdue = receiver.next().await.json();
    assert_eq!(overdue["type"], "activity.overdue");
    assert_eq!(overdue["data"]["activity"]["Id"], late.as_str());
    assert_eq!(overdue["data"]["contact_ids"], json!([app_contact]));
    assert!(
        receiver.drain().is_empty(),
        "once, and only the open one due"
    );
}

#[tokio::test]
async fn two_reads_of_the_same_change_at_once_announce_it_once() {
    // The poll loop beside an initial sync's end, or another replica: both find the change new.
    let (sf, account, contact) = org_with_a_contact().await;
    let h = sf.sf.handle();
    let alpha = opportunity(&sf, "Alpha", &account, Some(&contact));
    let connection = sf.connect_and_sync(false).await;
    let mut receiver = subscribe(&sf, &["deal.stage_changed"]).await;
    h.update_record_as_user(
        P,
        "Opportunity",
        &alpha,
        json!({ "StageName": "Qualification" }),
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
    assert_eq!(receiver.next().await.json()["type"], "deal.stage_changed");
    assert!(receiver.drain().is_empty(), "announced once");
}
