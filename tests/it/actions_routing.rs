//! Journey actions with several connections side by side (issue 24): an action goes to the
//! connection the request names, else to the one that links the contact, else to the oldest
//! active one; a contact linked in several needs a `connection_id`, and a named connection
//! that does not exist or is disconnected is refused with its own code.

use pipedrive_sim::{CompanyAccess, FaultSpec};
use reqwest::StatusCode;
use serde_json::json;
use tandem_engine::sync::connections::route::RouteError;
use tandem_engine::sync::outbound::actions::{self, ActionError, ContactRef, Submit};
use tandem_engine::sync::{connections, links, worker};
use tandem_tests::{pid, spawn_app, TestApp};
use uuid::Uuid;

/// Two companies side by side: the first (the oldest connection, the simulator's default
/// company) and a second one with one person, linked to its own contact.
pub(crate) struct SideBySide {
    pub(crate) app: TestApp,
    pub(crate) first: Uuid,
    pub(crate) first_company: i64,
    pub(crate) second: Uuid,
    pub(crate) second_company: CompanyAccess,
    /// The contact linked to the second company's person, and to nothing in the first.
    pub(crate) contact: Uuid,
}

pub(crate) async fn side_by_side() -> SideBySide {
    let app = spawn_app().await;
    let first = app.connect_and_sync().await;
    let first_company = app.sim.handle().company_id();
    let (second, second_company) = app.connect_another_company(1).await;
    app.drive().await;
    let contact = links::by_person(&app.store, second.into(), pid(second_company.person_ids[0]))
        .await
        .unwrap()
        .expect("the second company's person is linked")
        .contact_id;
    assert!(
        links::by_contact(app.store.db(), first.into(), contact)
            .await
            .unwrap()
            .is_none(),
        "the contact is linked in the second company only"
    );
    SideBySide {
        app,
        first,
        first_company,
        second,
        second_company,
        contact: contact.uuid(),
    }
}

pub(crate) fn add_deal(contact: Uuid, title: &str, key: &str, connection: Option<Uuid>) -> Submit {
    Submit {
        action: actions::parse_action("add_deal").unwrap(),
        contact: ContactRef::Id {
            contact_id: contact.into(),
        },
        params: json!({ "title": title }),
        idempotency_key: key.to_owned(),
        connection_id: connection.map(Into::into),
    }
}

#[tokio::test]
async fn an_action_for_a_contact_linked_in_the_second_connection_acts_on_the_second_crm_and_makes_no_request_to_the_first(
) {
    let s = side_by_side().await;
    let sim = s.app.sim.handle();
    let persons_in_first = sim.persons_of(s.first_company).len();
    sim.reset_counts();

    let (status, queued) = s
        .app
        .post_action(
            "add_deal",
            "route-1",
            &json!({ "contact_id": s.contact, "params": { "title": "Deal in B" } }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["connection_id"], s.second.to_string());
    let (status, scheduled) = s
        .app
        .post_action(
            "schedule_activity",
            "route-2",
            &json!({ "contact_id": s.contact, "params": { "subject": "Call in B" } }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{scheduled}");
    s.app.drive().await;

    let person = s.second_company.person_ids[0];
    let deals = sim.deals_of(s.second_company.company_id);
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(deals[0]["person_id"], person);
    assert_eq!(deals[0]["title"], "Deal in B");
    let activities = sim.activities_of(s.second_company.company_id);
    assert_eq!(activities.len(), 1, "{activities:?}");
    assert_eq!(activities[0]["subject"], "Call in B");
    assert!(sim.deals_of(s.first_company).is_empty());
    assert!(sim.activities_of(s.first_company).is_empty());
    assert_eq!(
        sim.persons_of(s.first_company).len(),
        persons_in_first,
        "no person created in the first company"
    );
    assert_eq!(
        sim.company_traffic(s.first_company).requests,
        0,
        "not one request to the first company"
    );
    let id = Uuid::parse_str(queued["id"].as_str().unwrap()).unwrap();
    let record = actions::get(&s.app.engine, id).await.unwrap().unwrap();
    assert_eq!(record.state, "done", "{:?}", record.error);
    assert_eq!(record.result.unwrap()["person_id"], person);
}

#[tokio::test]
async fn an_explicit_connection_id_wins_over_the_connection_that_links_the_contact() {
    let s = side_by_side().await;
    let submitted = actions::submit(
        &s.app.engine,
        add_deal(s.contact, "Deal in A", "explicit-1", Some(s.first)),
    )
    .await
    .unwrap();
    assert_eq!(submitted.record.connection_id.uuid(), s.first);
    s.app.drive().await;

    let sim = s.app.sim.handle();
    let deals = sim.deals_of(s.first_company);
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(deals[0]["title"], "Deal in A");
    assert!(sim.deals_of(s.second_company.company_id).is_empty());
    let link = links::by_contact(s.app.store.db(), s.first.into(), s.contact.into())
        .await
        .unwrap()
        .expect("the contact now has a person in the first company too");
    assert_eq!(deals[0]["person_id"], link.person_id.get());
    let record = actions::get(&s.app.engine, submitted.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, "done", "{:?}", record.error);

    // The same key with another connection is another request.
    let reused = actions::submit(
        &s.app.engine,
        add_deal(s.contact, "Deal in A", "explicit-1", Some(s.second)),
    )
    .await;
    assert!(matches!(reused, Err(ActionError::KeyReused)), "{reused:?}");
}

#[tokio::test]
async fn a_contact_linked_in_both_connections_without_connection_id_is_refused_and_nothing_is_queued(
) {
    let s = side_by_side().await;
    // A creating action on the first company gives the contact a person there too.
    actions::submit(
        &s.app.engine,
        add_deal(s.contact, "First", "both-1", Some(s.first)),
    )
    .await
    .unwrap();
    s.app.drive().await;
    let sim = s.app.sim.handle();
    sim.reset_counts();

    let (status, body) = s
        .app
        .post_action(
            "assign_person_owner",
            "both-2",
            &json!({ "contact_id": s.contact, "params": { "owner_id": 1 } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "connection_required");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&s.first.to_string()) && detail.contains(&s.second.to_string()),
        "{detail}"
    );
    assert!(detail.contains("connection_id"), "{detail}");
    assert_eq!(body["fields"][0]["field"], "connection_id");

    // Named, it goes through, to the one named only.
    let (status, body) = s.app.post_action("schedule_activity", "both-3", &json!({ "contact_id": s.contact, "connection_id": s.second, "params": { "subject": "Named" } }))
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    s.app.drive().await;
    assert_eq!(sim.activities_of(s.second_company.company_id).len(), 1);
    assert!(sim.activities_of(s.first_company).is_empty());
    assert_eq!(sim.company_traffic(s.first_company).requests, 0);
}

#[tokio::test]
async fn an_unknown_connection_id_is_a_422_unknown_connection_and_a_disconnected_one_a_409() {
    let s = side_by_side().await;
    let unknown = Uuid::now_v7();
    let (status, body) = s.app.post_action("add_deal", "unknown-1", &json!({ "contact_id": s.contact, "connection_id": unknown, "params": { "title": "X" } }))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "unknown_connection");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&unknown.to_string()),
        "{body}"
    );
    assert_eq!(body["fields"][0]["field"], "connection_id");

    let (status, body) = s.app.post_action("add_deal", "unknown-2", &json!({ "contact_id": s.contact, "connection_id": "company-b", "params": { "title": "X" } }))
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "validation_failed");
    assert_eq!(body["fields"][0]["field"], "connection_id");

    connections::disconnect(&s.app.engine, s.second.into())
        .await
        .unwrap();
    let (status, body) = s.app.post_action("add_deal", "unknown-3", &json!({ "contact_id": s.contact, "connection_id": s.second, "params": { "title": "X" } }))
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "connection_disconnected");
    assert!(
        body["detail"].as_str().unwrap().contains("disconnected"),
        "{body}"
    );
    s.app.drive().await;
    let sim = s.app.sim.handle();
    assert!(sim.deals_of(s.first_company).is_empty());
    assert!(sim.deals_of(s.second_company.company_id).is_empty());

    // Through the use-case the same refusals are typed.
    let refused = actions::submit(
        &s.app.engine,
        add_deal(s.contact, "X", "unknown-4", Some(unknown)),
    )
    .await;
    assert!(
        matches!(refused, Err(ActionError::Route(RouteError::Unknown(id))) if id.uuid() == unknown),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_retried_action_goes_again_to_the_connection_it_was_routed_to() {
    let s = side_by_side().await;
    let sim = s.app.sim.handle();
    let submitted = actions::submit(
        &s.app.engine,
        add_deal(s.contact, "Retried in B", "retry-1", None),
    )
    .await
    .unwrap();
    assert_eq!(submitted.record.connection_id.uuid(), s.second);
    // The first attempt fails upstream; the job waits for its retry in the queue (a restart
    // reads the same row, connection included).
    sim.set_faults(FaultSpec::parse("deals.post:503=1").unwrap());
    worker::run_outbox_once(&s.app.engine).await.unwrap();
    sim.set_faults(FaultSpec::none());
    let pending = actions::get(&s.app.engine, submitted.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pending.state, "queued");
    sim.reset_counts();
    s.app.drive().await;

    let deals = sim.deals_of(s.second_company.company_id);
    assert_eq!(deals.len(), 1, "{deals:?}");
    assert_eq!(deals[0]["title"], "Retried in B");
    assert!(sim.deals_of(s.first_company).is_empty());
    assert_eq!(sim.company_traffic(s.first_company).requests, 0);
    let record = actions::get(&s.app.engine, submitted.record.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.state, "done", "{:?}", record.error);
    assert_eq!(record.connection_id.uuid(), s.second);
}
