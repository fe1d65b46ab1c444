//! E-mail logging with several connections side by side (issue 24): an e-mail is logged in
//! the connection it names, else in the one that links its participants, else in the oldest
//! active one; the same refusals as journey actions when that is not one connection.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_engine::sync::outbound::actions;
use uuid::Uuid;

use crate::actions_routing::{add_deal, side_by_side};
use crate::emails::post;

fn email(message_id: &str, to: &str) -> Value {
    json!({
        "message_id": message_id,
        "direction": "sent",
        "from": "news@our-app.example",
        "to": [to],
        "subject": "Your trial ends soon",
        "sent_at": "2099-01-01T10:00:00Z",
    })
}

#[tokio::test]
async fn an_email_to_a_contact_linked_in_the_second_connection_is_logged_there_and_makes_no_request_to_the_first(
) {
    let s = side_by_side().await;
    let sim = s.app.sim.handle();
    let address = sim.persons_of(s.second_company.company_id)[0]["emails"][0]["value"]
        .as_str()
        .unwrap()
        .to_owned();
    sim.reset_counts();
    let (status, body) = post(&s.app, &email("<route-1@our-app>", &address)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["connection_id"], s.second.to_string());
    s.app.drive().await;

    let logged: Value = s
        .app
        .api(Method::GET, "/api/v1/emails/<route-1@our-app>")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logged["state"], "logged", "{logged}");
    assert_eq!(logged["persons"], json!([s.second_company.person_ids[0]]));
    let activities = sim.activities_of(s.second_company.company_id);
    assert_eq!(activities.len(), 1, "{activities:?}");
    assert_eq!(activities[0]["type"], "email");
    assert!(sim.activities_of(s.first_company).is_empty());
    assert_eq!(sim.company_traffic(s.first_company).requests, 0);
}

#[tokio::test]
async fn an_email_names_its_connection_or_is_refused_when_unknown_or_its_participants_are_linked_in_two(
) {
    let s = side_by_side().await;
    let address = s.app.sim.handle().persons_of(s.second_company.company_id)[0]["emails"][0]
        ["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut named = email("<unknown@our-app>", &address);
    let unknown = Uuid::now_v7();
    named["connection_id"] = json!(unknown);
    let (status, body) = post(&s.app, &named).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "unknown_connection");

    // The contact gets a person in the first company too.
    actions::submit(
        &s.app.engine,
        add_deal(s.contact, "First", "email-both-1", Some(s.first)),
    )
    .await
    .unwrap();
    s.app.drive().await;
    let (status, body) = post(&s.app, &email("<both@our-app>", &address)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "connection_required");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&s.first.to_string()) && detail.contains(&s.second.to_string()),
        "{detail}"
    );

    let mut named = email("<both@our-app>", &address);
    named["connection_id"] = json!(s.second);
    let (status, body) = post(&s.app, &named).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["connection_id"], s.second.to_string());
    s.app.drive().await;
    let sim = s.app.sim.handle();
    assert_eq!(sim.activities_of(s.second_company.company_id).len(), 1);
    assert!(sim.activities_of(s.first_company).is_empty());
}
