//! Writes queued for a connection that the admin disconnects before the worker runs them:
//! nothing reaches the disconnected CRM, the jobs wait (visible, never retried in a loop), and
//! reconnecting the same company pushes them.

use reqwest::Method;
use serde_json::Value;
use tandem_engine::sync::app::local;
use tandem_tests::fields::{email, fields, name};
use tandem_tests::{spawn_app, TestApp};

/// The outbox's jobs as (state, attempts).
async fn jobs(app: &TestApp) -> Vec<(String, i32)> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.store.db();
    db.query_all(Statement::from_string(
        db.get_database_backend(),
        "SELECT state, attempts FROM outbox_job",
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.try_get::<String>("", "state").unwrap(),
            row.try_get::<i32>("", "attempts").unwrap(),
        )
    })
    .collect()
}

async fn disconnect(app: &TestApp, id: uuid::Uuid) {
    let answer = app
        .admin(Method::DELETE, &format!("/admin/api/connections/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
}

/// The admin API's view of the connection (`state`, `pending`, `dead`).
async fn connection_view(app: &TestApp, id: uuid::Uuid) -> Value {
    let list: Value = app
        .admin(Method::GET, "/admin/api/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id.to_string())
        .cloned()
        .expect("the connection is listed")
}

#[tokio::test]
async fn an_edit_queued_before_a_disconnect_sends_nothing_waits_visibly_and_is_pushed_on_reconnect()
{
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let id = app.connection_id().await;
    let created = local::create_contact(
        &app.engine,
        fields([name("Ada Lovelace"), email("ada@example.com")]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let sim = app.sim.handle();
    let person = sim.persons_by_email("ada@example.com");
    assert_eq!(person.len(), 1, "the contact reached Pipedrive");
    let person_id = person[0]["id"].as_i64().unwrap();

    local::update_contact(&app.engine, created.contact_id, fields([name("Ada King")]))
        .await
        .unwrap();
    assert_eq!(jobs(&app).await, vec![("pending".to_owned(), 0)]);
    disconnect(&app, id).await;

    sim.reset_counts();
    app.drive().await;
    app.drive().await;
    assert_eq!(
        sim.total_calls(),
        0,
        "nothing is sent to the disconnected CRM"
    );
    assert_eq!(sim.person(person_id).unwrap()["name"], "Ada Lovelace");
    assert_eq!(
        jobs(&app).await,
        vec![("pending".to_owned(), 0)],
        "the push waits, neither attempted nor dropped"
    );
    let view = connection_view(&app, id).await;
    assert_eq!(view["state"], "disconnected");
    assert_eq!(view["pending"], 1, "the admin sees the write waiting");
    assert_eq!(view["dead"], 0);
    let logged = app.log_entries("disconnected").await;
    assert_eq!(logged.len(), 1, "the sync log says it was disconnected");
    assert!(app.log_entries("write_retried").await.is_empty());
    assert!(app.log_entries("dead_letter").await.is_empty());

    app.oauth_connect(false).await;
    assert_eq!(
        app.connection_id().await,
        id,
        "the same connection comes back"
    );
    app.drive().await;
    assert_eq!(sim.person(person_id).unwrap()["name"], "Ada King");
    assert_eq!(sim.calls("v2.updatePerson"), 1);
    assert_eq!(sim.calls("v2.addPerson"), 0);
    assert!(jobs(&app).await.is_empty());
}

#[tokio::test]
async fn a_create_queued_before_a_disconnect_is_created_once_on_reconnect_and_never_before() {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let id = app.connection_id().await;
    local::create_contact(
        &app.engine,
        fields([name("Grace Hopper"), email("grace@example.com")]),
        true,
    )
    .await
    .unwrap();
    disconnect(&app, id).await;

    let sim = app.sim.handle();
    sim.reset_counts();
    app.drive().await;
    assert_eq!(
        sim.total_calls(),
        0,
        "nothing is sent to the disconnected CRM"
    );
    assert!(sim.persons_by_email("grace@example.com").is_empty());
    assert_eq!(jobs(&app).await, vec![("pending".to_owned(), 0)]);
    assert_eq!(connection_view(&app, id).await["pending"], 1);

    app.oauth_connect(false).await;
    app.drive().await;
    assert_eq!(
        sim.persons_by_email("grace@example.com").len(),
        1,
        "created once: the reconnect did not queue a second create"
    );
    assert_eq!(sim.calls("v2.addPerson"), 1);
    assert!(jobs(&app).await.is_empty());
}

#[tokio::test]
async fn a_push_or_poll_in_flight_during_a_disconnect_cannot_turn_the_connection_back_into_another_state(
) {
    use tandem_engine::sync::connections::state;
    let app = spawn_app().await;
    let id = app.connect_and_sync().await;
    disconnect(&app, id).await;
    // What a push whose token was revoked under it settles with (401, the refresh refused),
    // and what an initial sync that was running ends with.
    for late in [
        state::TOKEN_EXPIRED,
        state::NOT_AUTHORISED,
        state::CONNECTED,
    ] {
        tandem_engine::store::connections::set_state(
            app.store.db(),
            id.into(),
            late,
            Some("refused"),
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(
            connection_view(&app, id).await["state"],
            "disconnected",
            "after {late}"
        );
    }
    assert_eq!(
        tandem_engine::sync::connections::active_id(
            app.store.db(),
            &tandem_core::TenantId::default()
        )
        .await
        .unwrap(),
        None,
        "a disconnected connection is not active"
    );
}
