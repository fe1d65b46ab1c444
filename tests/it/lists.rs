//! The "Pipedrive contacts" list pushes its members whenever they were added: before the first
//! connection, while paused, while disconnected, before a company reset.

use serde_json::json;
use tandem_engine::sync::{app::contacts, app::local, connections, connections::admin};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::{spawn_app, TestApp};

fn new_connection(app: &TestApp) -> connections::NewConnection {
    connections::NewConnection {
        api_domain: app.sim.base_url().to_owned(),
        auth_kind: "api_token",
        access_token: app.sim.handle().config().api_token.clone(),
        refresh_token: None,
        token_expires_at: None,
    }
}

async fn list_member(app: &TestApp, who: &str, mail: &str) -> uuid::Uuid {
    local::create_contact(&app.engine, fields([name(who), email(mail)]), true)
        .await
        .unwrap()
        .contact_id
        .uuid()
}

#[tokio::test]
async fn contacts_put_in_the_list_before_the_first_connection_are_pushed_when_it_connects() {
    let app = spawn_app().await;
    list_member(&app, "Early Bird", "early@example.com").await;
    list_member(&app, "Second Bird", "second@example.com").await;
    let outside = local::create_contact(
        &app.engine,
        fields([name("Not Listed"), email("outside@example.com")]),
        false,
    )
    .await
    .unwrap();
    assert!(
        contacts::in_list(app.store.db(), outside.contact_id, contacts::PIPEDRIVE_LIST)
            .await
            .map(|member| !member)
            .unwrap()
    );

    app.connect_and_sync().await;
    app.drive().await;

    let sim = app.sim.handle();
    assert_eq!(sim.persons_by_email("early@example.com").len(), 1);
    assert_eq!(sim.persons_by_email("second@example.com").len(), 1);
    assert!(sim.persons_by_email("outside@example.com").is_empty());
}

#[tokio::test]
async fn a_list_member_whose_email_pipedrive_already_has_is_linked_to_that_person_not_duplicated() {
    let app = spawn_app().await;
    let existing = app
        .sim
        .handle()
        .insert_person(
            json!({"name": "Known In Pipedrive", "emails": [{"value": "known@example.com"}]}),
        )
        .unwrap();
    let contact = list_member(&app, "Known Locally", "known@example.com").await;

    let id = app.connect_and_sync().await;
    app.drive().await;

    let persons = app.sim.handle().persons_by_email("known@example.com");
    assert_eq!(persons.len(), 1, "{persons:?}");
    assert_eq!(persons[0]["id"], existing);
    let link = tandem_engine::sync::links::by_contact(app.store.db(), id.into(), contact.into())
        .await
        .unwrap();
    assert!(link.is_some());
}

#[tokio::test]
async fn contacts_put_in_the_list_while_paused_are_pushed_on_resume() {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    let contact = local::create_contact(
        &app.engine,
        fields([name("Paused Add"), email("paused@example.com")]),
        false,
    )
    .await
    .unwrap()
    .contact_id;
    admin::set_paused(&app.engine, id.into(), true)
        .await
        .unwrap();
    local::add_to_pipedrive_list(&app.engine, contact)
        .await
        .unwrap();
    app.drive().await;
    assert!(app
        .sim
        .handle()
        .persons_by_email("paused@example.com")
        .is_empty());

    admin::set_paused(&app.engine, id.into(), false)
        .await
        .unwrap();
    app.drive().await;
    assert_eq!(
        app.sim
            .handle()
            .persons_by_email("paused@example.com")
            .len(),
        1
    );
}

#[tokio::test]
async fn contacts_put_in_the_list_while_disconnected_are_pushed_on_reconnect() {
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    connections::disconnect(&app.engine, id.into())
        .await
        .unwrap();
    list_member(&app, "Offline Add", "offline@example.com").await;
    app.drive().await;
    assert!(app
        .sim
        .handle()
        .persons_by_email("offline@example.com")
        .is_empty());

    let again = app.connect_pipedrive().await;
    assert_eq!(again, id, "the same connection comes back");
    app.drive().await;
    assert_eq!(
        app.sim
            .handle()
            .persons_by_email("offline@example.com")
            .len(),
        1
    );
}

#[tokio::test]
async fn list_members_are_pushed_to_the_new_company_after_a_reset() {
    let app = spawn_app().await;
    app.connect_and_sync().await;
    list_member(&app, "Moves Along", "moves@example.com").await;
    app.drive().await;
    let sim = app.sim.handle();
    assert_eq!(sim.persons_by_email("moves@example.com").len(), 1);

    let old_company = sim.company_id();
    sim.switch_company(old_company + 1);
    let refused = connections::connect(&app.engine, new_connection(&app)).await;
    assert!(
        refused.is_err(),
        "a different company needs a confirmed reset"
    );
    list_member(&app, "Added Meanwhile", "meanwhile@example.com").await;
    connections::connect_with(&app.engine, new_connection(&app), true)
        .await
        .unwrap();
    app.drive().await;

    assert_eq!(sim.persons_by_email("moves@example.com").len(), 1);
    assert_eq!(sim.persons_by_email("meanwhile@example.com").len(), 1);
    sim.switch_company(old_company);
    assert_eq!(
        sim.persons_by_email("moves@example.com").len(),
        1,
        "nothing new in the old company"
    );
    assert!(sim.persons_by_email("meanwhile@example.com").is_empty());
}
