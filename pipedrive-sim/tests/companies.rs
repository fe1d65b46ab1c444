//! Many companies in one simulator (issue 24): each with its own API token, data, burst
//! window and webhooks, and the hooks a scale-out benchmark reads (traffic per company, writes
//! per person).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pipedrive_sim::{RateLimits, SimConfig, Simulator};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn sim() -> Simulator {
    pipedrive_sim::start(SimConfig::default()).await.unwrap()
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client().request(method, url).header("x-api-token", token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_added_company_has_its_own_token_and_its_own_persons() {
    let sim = sim().await;
    let handle = sim.handle();
    let a = handle.add_company(3);
    let b = handle.add_company(2);
    assert_ne!(a.company_id, b.company_id);
    assert_ne!(a.api_token, b.api_token);
    assert_eq!(a.person_ids.len(), 3);

    let (status, me) = call(
        reqwest::Method::GET,
        format!("{}/api/v1/users/me", sim.base_url()),
        &b.api_token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me["data"]["company_id"], b.company_id);
    let (status, listed) = call(
        reqwest::Method::GET,
        format!("{}/api/v2/persons", sim.base_url()),
        &a.api_token,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let emails: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["emails"][0]["value"].as_str().unwrap())
        .collect();
    assert_eq!(emails.len(), 3, "only company A's persons: {emails:?}");
    assert!(emails
        .iter()
        .all(|e| e.ends_with(&format!("@company{}.example", a.company_id))));
    assert_eq!(handle.persons_of(b.company_id).len(), 2);
    assert!(
        handle.persons().is_empty(),
        "the current company is untouched"
    );

    let (status, _) = call(
        reqwest::Method::GET,
        format!("{}/api/v2/persons", sim.base_url()),
        "no-such-token",
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn burst_windows_are_per_company_and_their_traffic_is_counted_apart() {
    let sim = sim().await;
    let handle = sim.handle();
    let a = handle.add_company(1);
    let b = handle.add_company(1);
    handle.set_rate_limits(RateLimits {
        api_token_burst: 3,
        window: Duration::from_secs(60),
        ..RateLimits::generous()
    });
    let url = format!("{}/api/v2/persons", sim.base_url());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            call(reqwest::Method::GET, url.clone(), &a.api_token, None)
                .await
                .0,
        );
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(
        call(reqwest::Method::GET, url.clone(), &b.api_token, None)
            .await
            .0,
        200,
        "company B has its own window"
    );
    let traffic = handle.company_traffic(a.company_id);
    assert_eq!(traffic.requests, 5);
    assert_eq!(traffic.rate_limited, 2);
    assert_eq!(traffic.max_in_window, 3);
    let traffic = handle.company_traffic(b.company_id);
    assert_eq!((traffic.requests, traffic.rate_limited), (1, 0));
    handle.reset_counts();
    assert_eq!(handle.company_traffic(a.company_id).requests, 0);
}

#[tokio::test]
async fn api_writes_of_a_name_are_recorded_per_person_so_a_repeated_value_shows_a_double_send() {
    let sim = sim().await;
    let handle = sim.handle();
    let a = handle.add_company(1);
    let person = a.person_ids[0];
    let url = format!("{}/api/v2/persons/{person}", sim.base_url());
    for name in ["First", "Second", "Second"] {
        let (status, _) = call(
            reqwest::Method::PATCH,
            url.clone(),
            &a.api_token,
            Some(json!({ "name": name })),
        )
        .await;
        assert_eq!(status, 200);
    }
    // A user's edit in the UI is not an API write.
    handle
        .update_person_as_user_in(a.company_id, person, json!({ "name": "Typed by a user" }))
        .unwrap();
    let writes = handle.person_writes(a.company_id);
    assert_eq!(writes[&person], ["First", "Second", "Second"]);
    assert_eq!(
        handle.persons_of(a.company_id)[0]["name"],
        "Typed by a user"
    );
}

#[tokio::test]
async fn a_users_edit_in_one_company_fires_only_that_companys_webhooks() {
    let sim = sim().await;
    let handle = sim.handle();
    let a = handle.add_company(1);
    let b = handle.add_company(1);
    for (company, token) in [(&a, "a"), (&b, "b")] {
        let (status, _) = call(
            reqwest::Method::POST,
            format!("{}/api/v1/webhooks", sim.base_url()),
            &company.api_token,
            Some(json!({
                "subscription_url": format!("http://127.0.0.1:9/{token}"),
                "event_action": "*",
                "event_object": "person",
                "name": format!("hook of {token}"),
            })),
        )
        .await;
        assert_eq!(status, 201);
    }
    handle
        .update_person_as_user_in(b.company_id, b.person_ids[0], json!({ "name": "Only B" }))
        .unwrap();
    let deliveries = handle
        .wait_for_deliveries(Duration::from_secs(10), |d| !d.is_empty())
        .await;
    assert!(!deliveries.is_empty());
    let b_id = json!(b.company_id.to_string());
    assert!(deliveries
        .iter()
        .all(|d| d.body["meta"]["company_id"] == b_id));
}
