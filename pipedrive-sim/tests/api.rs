//! Behaviour tests: each talks HTTP to a simulator on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use pipedrive_sim::{FaultSpec, RateLimits, SimConfig, Simulator};
use serde_json::{json, Value};
use tokio::sync::Mutex;

const TOKEN: &str = "sim-api-token";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sim() -> Simulator {
    pipedrive_sim::start(SimConfig::default()).await.unwrap()
}

async fn get(url: &str) -> (StatusCode, HeaderMap, Value) {
    let r = client()
        .get(url)
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

async fn send(method: reqwest::Method, url: &str, body: Value) -> (StatusCode, Value) {
    let r = client()
        .request(method, url)
        .header("x-api-token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// One received delivery: its `Authorization` header and body.
type Got = (Option<String>, Value);

/// A webhook receiver on 127.0.0.1 that records deliveries and answers scripted statuses.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    r.got.lock().await.push((auth, body));
    let status = r.script.lock().await.pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

async fn subscribe(base: &str, url: &str, object: &str, auth: Option<(&str, &str)>) -> Value {
    let mut body = json!({"subscription_url": url, "event_action": "*", "event_object": object, "name": "tandem"});
    if let Some((u, p)) = auth {
        body["http_auth_user"] = json!(u);
        body["http_auth_password"] = json!(p);
    }
    let (status, v) = send(reqwest::Method::POST, &format!("{base}/v1/webhooks"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    v
}

#[tokio::test]
async fn the_oauth_dance_gives_tokens_that_work_expire_and_refresh() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let c = client();
    let redirect = "http://127.0.0.1:9/callback";
    let r = c
        .get(format!("{base}/oauth/authorize"))
        .query(&[
            ("client_id", "sim-client"),
            ("redirect_uri", redirect),
            ("state", "xyz"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let q: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz");
    let code = q["code"].clone();

    let token = |form: Vec<(&'static str, String)>| {
        c.post(format!("{base}/oauth/token"))
            .basic_auth("sim-client", Some("sim-secret"))
            .form(&form)
            .send()
    };
    let r = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code.clone()),
        ("redirect_uri", redirect.into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 3599);
    assert_eq!(t["api_domain"], base.as_str());
    assert!(t["scope"]
        .as_str()
        .unwrap()
        .split(',')
        .any(|s| s == "contacts:full"));
    let access = t["access_token"].as_str().unwrap().to_owned();
    let refresh = t["refresh_token"].as_str().unwrap().to_owned();

    // A code is single use.
    let again = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", redirect.into()),
    ])
    .await
    .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );

    let me = |tok: String| {
        c.get(format!("{base}/api/v1/users/me"))
            .bearer_auth(tok)
            .send()
    };
    let r = me(access.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["data"]["company_id"], 1);
    assert_eq!(user["data"]["is_admin"], 1);
    assert!(!r_has_daily_requests_left_for_oauth(&c, &base, &access).await);

    sim.handle().expire_access_tokens();
    let r = me(access.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], 401);

    let r = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.clone()),
    ])
    .await
    .unwrap();
    let t2: Value = r.json().await.unwrap();
    assert_eq!(
        t2["refresh_token"],
        refresh.as_str(),
        "refresh tokens do not rotate"
    );
    assert_ne!(t2["access_token"], access.as_str());
    assert_eq!(
        me(t2["access_token"].as_str().unwrap().to_owned())
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    // Revoking the refresh token uninstalls: both stop working.
    let r = c
        .post(format!("{base}/oauth/revoke"))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh),
    ])
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!(
        me(t2["access_token"].as_str().unwrap().to_owned())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Wrong client credentials.
    let r = c
        .post(format!("{base}/oauth/token"))
        .basic_auth("sim-client", Some("nope"))
        .form(&[("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
}

async fn r_has_daily_requests_left_for_oauth(
    c: &reqwest::Client,
    base: &str,
    access: &str,
) -> bool {
    let r = c
        .get(format!("{base}/api/v2/persons?limit=1"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert!(r.headers().contains_key("x-ratelimit-remaining"));
    r.headers().contains_key("x-daily-requests-left")
}

#[tokio::test]
async fn a_denied_consent_and_a_data_centre_move_are_visible_to_the_client() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    h.set_consent(false);
    let r = client().get(format!("{base}/oauth/authorize?client_id=sim-client&redirect_uri=http://127.0.0.1:9/cb&state=s")).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.contains("error=user_denied") && loc.contains("state=s") && !loc.contains("code="));

    h.set_consent(true);
    let code = h.authorization_code("http://127.0.0.1:9/cb");
    h.set_api_domain("http://localhost:1234");
    h.switch_company(77);
    let r = client()
        .post(format!("{base}/oauth/token"))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
        ])
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["api_domain"], "http://localhost:1234");
    let me: Value = client()
        .get(format!("{base}/v1/users/me"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["data"]["company_id"], 1,
        "the code was issued before the switch"
    );
    let (_, _, me2) = get(&format!("{base}/v1/users/me")).await;
    assert_eq!(me2["data"]["company_id"], 77);
}

#[tokio::test]
async fn paging_1200_persons_with_cursors_returns_each_person_exactly_once() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    sim.handle().seed_persons(1200);
    let mut seen = BTreeSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = format!("{base}/api/v2/persons?limit=500");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, _, v) = get(&url).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        for p in v["data"].as_array().unwrap() {
            assert!(
                seen.insert(p["id"].as_i64().unwrap()),
                "duplicate {}",
                p["id"]
            );
        }
        match v["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => {
                assert!(v["additional_data"]["next_cursor"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 1200);
    assert_eq!(sim.handle().calls("v2.getPersons"), 3);
    assert_eq!(sim.handle().tokens_spent_by(TOKEN), 30);

    // Descending by update_time pages as well.
    let (_, _, v) = get(&format!(
        "{base}/api/v2/persons?limit=2&sort_by=update_time&sort_direction=desc"
    ))
    .await;
    let a = v["data"][0]["update_time"].as_str().unwrap().to_owned();
    let b = v["data"][1]["update_time"].as_str().unwrap().to_owned();
    assert!(a >= b);
    let c = v["additional_data"]["next_cursor"].as_str().unwrap();
    let (_, _, v2) = get(&format!(
        "{base}/api/v2/persons?limit=2&sort_by=update_time&sort_direction=desc&cursor={c}"
    ))
    .await;
    assert!(v2["data"][0]["update_time"].as_str().unwrap() <= b.as_str());

    let (status, _, _) = get(&format!("{base}/api/v2/persons?limit=501")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = get(&format!("{base}/api/v2/persons?cursor=garbage")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn updated_since_returns_only_persons_changed_from_then_on() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let ids = h.seed_persons(50);
    h.advance_clock(Duration::from_secs(3600));
    let since = chrono::DateTime::from_timestamp(h.now(), 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for id in &ids[..3] {
        h.update_person_as_user(*id, json!({"job_title": "CTO"}))
            .unwrap();
    }
    let (_, _, v) = get(&format!("{base}/api/v2/persons?updated_since={since}")).await;
    let got: Vec<i64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[..3].to_vec());
    let (_, _, v) = get(&format!(
        "{base}/api/v2/persons?updated_until={since}&limit=500"
    ))
    .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 47);
    let (status, _, _) = get(&format!("{base}/api/v2/persons?updated_since=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_by_email_finds_every_person_with_that_email() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    h.seed_persons(20);
    let a = h
        .insert_person(json!({"name": "Ann Lee", "emails": [{"value": "Ann@Example.com"}]}))
        .unwrap();
    let b = h
        .insert_person(
            json!({"name": "Ann L.", "emails": [{"value": "ann@example.com", "label": "home"}]}),
        )
        .unwrap();
    let (status, _, v) = get(&format!(
        "{base}/api/v2/persons/search?term=ann%40example.com&fields=email&exact_match=true"
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = v["data"]["items"].as_array().unwrap();
    let ids: Vec<i64> = items
        .iter()
        .map(|i| i["item"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![a, b]);
    assert_eq!(items[0]["item"]["type"], "person");
    assert_eq!(items[0]["item"]["emails"][0], "Ann@Example.com");
    let (_, _, v) = get(&format!("{base}/api/v2/persons/search?term=Ann%20L")).await;
    assert!(v["data"]["items"].as_array().unwrap().len() >= 2);
    let (status, _, _) = get(&format!("{base}/api/v2/persons/search?term=a")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_burst_limit_answers_429_with_the_documented_headers() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    sim.handle().set_rate_limits(RateLimits {
        api_token_burst: 5,
        ..RateLimits::generous()
    });
    let url = format!("{base}/api/v2/persons");
    for i in 0..5 {
        let (status, h, _) = get(&url).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h["x-ratelimit-limit"], "5");
        assert_eq!(
            h["x-ratelimit-remaining"].to_str().unwrap(),
            (4 - i).to_string()
        );
        assert!(h.contains_key("x-daily-requests-left"));
        assert!(h.contains_key("x-daily-ratelimit-token-remaining"));
    }
    let (status, h, body) = get(&url).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["x-ratelimit-remaining"], "0");
    let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&reset));
    assert_eq!(
        body,
        json!({"success": false, "error": "Request over limit", "errorCode": 429, "error_info": "Please check developers.pipedrive.com"})
    );
    assert_eq!(sim.handle().rate_limited(), 1);
}

#[tokio::test]
async fn the_daily_budget_is_charged_by_token_cost_and_then_refuses() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    sim.handle().set_rate_limits(RateLimits {
        daily_budget: 25,
        ..RateLimits::generous()
    });
    let (s1, h1, _) = get(&format!("{base}/api/v2/persons")).await; // 10
    assert_eq!(s1, StatusCode::OK);
    assert_eq!(h1["x-daily-ratelimit-token-remaining"], "15");
    let (s2, _, _) = get(&format!("{base}/api/v2/persons")).await; // 20
    assert_eq!(s2, StatusCode::OK);
    let (s3, h3, _) = get(&format!("{base}/api/v2/persons")).await;
    assert_eq!(s3, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h3["x-daily-ratelimit-token-remaining"], "5");
    let (s4, _, _) = get(&format!("{base}/v1/users/me")).await; // costs 2
    assert_eq!(s4, StatusCode::OK);
    assert_eq!(sim.handle().tokens_spent(), 22);
}

#[tokio::test]
async fn a_webhook_arrives_with_basic_auth_and_the_v2_payload() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let id = h
        .insert_person(json!({"name": "Ada Lovelace", "emails": [{"value": "ada@example.com"}]}))
        .unwrap();
    let (recv, url) = receiver().await;
    let created = subscribe(&base, &url, "person", Some(("tandem", "s3cret"))).await;
    assert_eq!(created["data"]["version"], "2.0");
    assert_eq!(created["data"]["http_auth_user"], "tandem");

    let (status, _) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/persons/{id}"),
        json!({"name": "Ada King"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let log = h
        .wait_for_deliveries(Duration::from_secs(10), |d| d.iter().any(|x| x.delivered))
        .await;
    assert_eq!(log.len(), 1);
    let got = recv.got.lock().await.clone();
    let (auth, body) = &got[0];
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("tandem:s3cret")
    );
    assert_eq!(auth.as_deref(), Some(expected.as_str()));
    assert_eq!(body["meta"]["action"], "change");
    assert_eq!(body["meta"]["entity"], "person");
    assert_eq!(body["meta"]["entity_id"], id.to_string());
    assert_eq!(body["meta"]["change_source"], "api");
    assert_eq!(body["meta"]["version"], "2.0");
    assert_eq!(body["meta"]["attempt"], 1);
    assert_eq!(body["data"]["name"], "Ada King");
    assert_eq!(
        body["previous"],
        json!({"name": "Ada Lovelace", "last_name": "Lovelace"})
    );

    // A UI edit says so.
    h.update_person_as_user(id, json!({"emails": [{"value": "ada@king.test"}]}))
        .unwrap();
    h.wait_for_deliveries(Duration::from_secs(10), |d| d.len() == 2)
        .await;
    let got = recv.got.lock().await.clone();
    assert_eq!(got[1].1["meta"]["change_source"], "app");
    assert_eq!(
        got[1].1["previous"]["emails"][0]["value"],
        "ada@example.com"
    );
}

#[tokio::test]
async fn a_person_change_reaches_only_webhooks_whose_user_may_see_the_person() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let me = h.config().user_id;
    let grace = me + 1;
    // The webhook's user (the caller) is a regular user in group 1; Grace is in group 2.
    h.set_user_admin(me, false);
    h.set_visibility_group(grace, 2, None);
    let hidden = h
        .insert_person(json!({"name": "Hidden Person", "owner_id": grace, "visible_to": 3}))
        .unwrap();
    let shared = h
        .insert_person(json!({"name": "Shared Person", "owner_id": grace, "visible_to": 7}))
        .unwrap();
    let (recv, url) = receiver().await;
    subscribe(&base, &url, "person", None).await;

    h.update_person_as_user(hidden, json!({"name": "Hidden Renamed"}))
        .unwrap();
    h.update_person_as_user(shared, json!({"name": "Shared Renamed"}))
        .unwrap();
    let log = h
        .wait_for_deliveries(Duration::from_secs(10), |d| {
            d.len() == 2 && d.iter().any(|x| x.delivered)
        })
        .await;
    let skipped: Vec<_> = log.iter().filter(|d| d.entity_id == hidden).collect();
    assert_eq!(skipped.len(), 1, "{log:?}");
    assert_eq!(skipped[0].attempt, 0);
    assert!(!skipped[0].delivered);
    assert_eq!(
        skipped[0].error.as_deref(),
        Some("not visible to the webhook's user")
    );
    let got = recv.got.lock().await.clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1["meta"]["entity_id"], shared.to_string());
    let permitted = &got[0].1["meta"]["permitted_user_ids"];
    assert_eq!(permitted, &json!([me.to_string(), grace.to_string()]));

    // Made visible to the entire company, the hidden person's next change is sent, and an
    // admin's webhook gets every person.
    h.update_person_as_user(hidden, json!({"visible_to": 7}))
        .unwrap();
    h.wait_for_deliveries(Duration::from_secs(10), |d| {
        d.iter().filter(|x| x.delivered).count() == 2
    })
    .await;
    h.update_person_as_user(hidden, json!({"visible_to": 1}))
        .unwrap();
    h.set_user_admin(me, true);
    h.update_person_as_user(hidden, json!({"name": "Seen By Admins"}))
        .unwrap();
    let log = h
        .wait_for_deliveries(Duration::from_secs(10), |d| {
            d.iter().filter(|x| x.delivered).count() == 3
        })
        .await;
    let got = recv.got.lock().await.clone();
    assert_eq!(got.len(), 3, "{log:?}");
    assert_eq!(got[1].1["data"]["visible_to"], 7);
    assert_eq!(got[2].1["data"]["name"], "Seen By Admins");
    // Visible to its owner only, the change that hid it was not sent to the regular user.
    assert_eq!(
        log.iter()
            .filter(|d| d.error.as_deref() == Some("not visible to the webhook's user"))
            .count(),
        2,
        "{log:?}"
    );
    assert_eq!(
        got[2].1["meta"]["permitted_user_ids"],
        json!([me.to_string(), grace.to_string()])
    );
}

#[tokio::test]
async fn a_delivery_is_retried_after_a_5xx_from_the_receiver() {
    let sim = pipedrive_sim::start(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url().to_owned();
    let (recv, url) = receiver().await;
    recv.script.lock().await.extend([500, 503]);
    subscribe(&base, &url, "*", None).await;
    let (status, created) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/persons"),
        json!({"name": "Retry Me"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let log = sim
        .handle()
        .wait_for_deliveries(Duration::from_secs(10), |d| d.iter().any(|x| x.delivered))
        .await;
    let attempts: Vec<(u32, Option<u16>, bool)> = log
        .iter()
        .map(|d| (d.attempt, d.status, d.delivered))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (1, Some(500), false),
            (2, Some(503), false),
            (3, Some(200), true)
        ]
    );
    let got = recv.got.lock().await.clone();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter()
            .all(|(_, b)| b["meta"]["id"] == got[0].1["meta"]["id"]),
        "same event id on every attempt"
    );
    assert_eq!(got[2].1["meta"]["attempt"], 3);
    assert_eq!(got[2].1["meta"]["action"], "create");
    assert_eq!(got[2].1["data"]["id"], created["data"]["id"]);
    assert!(got[2].1["previous"].is_null());
    let hooks = sim.handle().webhooks();
    assert_eq!(hooks[0]["last_http_status"], 200);
}

#[tokio::test]
async fn ten_failed_first_attempts_ban_the_webhook_and_events_are_lost() {
    // Retries after 3/30/150 ms, a ban of 1.8 s.
    let sim = pipedrive_sim::start(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let id = h.insert_person(json!({"name": "Flaky"})).unwrap();
    let (recv, url) = receiver().await;
    recv.script
        .lock()
        .await
        .extend(std::iter::repeat_n(500, 40));
    subscribe(&base, &url, "person", None).await;
    for i in 0..10 {
        h.update_person_as_user(id, json!({"job_title": format!("t{i}")}))
            .unwrap();
        h.wait_for_deliveries(Duration::from_secs(10), |d| {
            d.iter().filter(|x| x.attempt == 4).count() == i + 1
        })
        .await;
    }
    h.update_person_as_user(id, json!({"job_title": "lost"}))
        .unwrap();
    let log = h
        .wait_for_deliveries(Duration::from_secs(10), |d| {
            d.iter().any(|x| x.attempt == 0)
        })
        .await;
    let banned = log.iter().find(|x| x.attempt == 0).unwrap();
    assert_eq!(banned.error.as_deref(), Some("webhook banned"));
    assert_eq!(h.webhooks()[0]["is_active"], 0);
}

#[tokio::test]
async fn the_41st_webhook_of_a_user_is_refused_with_422() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    for _ in 0..40 {
        subscribe(&base, "http://127.0.0.1:9/hook", "person", None).await;
    }
    let (status, v) = send(reqwest::Method::POST, &format!("{base}/v1/webhooks"), json!({"subscription_url": "http://127.0.0.1:9/h", "event_action": "*", "event_object": "*", "name": "x"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["success"], false);
    let (_, _, list) = get(&format!("{base}/v1/webhooks")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 40);
    let id = list["data"][0]["id"].as_i64().unwrap();
    let (status, _) = send(
        reqwest::Method::DELETE,
        &format!("{base}/v1/webhooks/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v) = send(
        reqwest::Method::DELETE,
        &format!("{base}/v1/webhooks/{id}"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["errors"]["id"][0], "not found");
    let (status, v) = send(reqwest::Method::POST, &format!("{base}/v1/webhooks"), json!({"subscription_url": "not a url", "event_action": "*", "event_object": "*", "name": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["errors"]["subscription_url"][0],
        "invalid or non-reachable URL"
    );
}

#[tokio::test]
async fn bad_requests_get_the_documented_envelopes_and_never_a_panic() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let c = client();
    let r = c
        .post(format!("{base}/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["success"].clone(), v["error_info"].is_string()),
        (json!(false), true)
    );
    let (status, v) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/persons"),
        json!({"emails": [{"value": "x@y.z"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "name is required: {v}");
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/persons"),
        json!({"name": "A", "owner_id": "1"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "v2 does not coerce strings"
    );
    let (status, _) = send(reqwest::Method::POST, &format!("{base}/api/v2/persons"), json!({"name": "A", "emails": [{"value": "a@b", "primary": true}, {"value": "c@d", "primary": true}]})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "one primary e-mail at most"
    );
    let (status, _, v) = get(&format!("{base}/api/v2/persons/12345")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error_info"], "Object was not found.");
    let (status, _, _) = get(&format!("{base}/api/v2/persons/abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, v) = get(&format!("{base}/v1/persons")).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(v["success"], false);
    let r = c
        .get(format!("{base}/api/v2/persons"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(format!("{base}/api/v2/persons"))
        .header("authorization", "Token x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .put(format!("{base}/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = c
        .get(format!("{base}/api/v2/nothing"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_token_without_the_scope_gets_403_scope_and_url_mismatch() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    h.set_scopes(&["base", "contacts:read"]);
    let code = h.authorization_code("http://127.0.0.1:9/cb");
    let t: Value = client()
        .post(format!("{base}/oauth/token"))
        .basic_auth("sim-client", Some("sim-secret"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tok = t["access_token"].as_str().unwrap();
    let r = client()
        .get(format!("{base}/api/v2/persons"))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .post(format!("{base}/api/v2/persons"))
        .bearer_auth(tok)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "Scope and URL mismatch"
    );
}

#[tokio::test]
async fn v1_paths_answer_under_both_prefixes_with_start_limit_pagination() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    for prefix in ["/v1", "/api/v1"] {
        let (status, _, v) = get(&format!("{base}{prefix}/personFields?limit=5")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["data"].as_array().unwrap().len(), 5);
        assert_eq!(
            v["additional_data"]["pagination"]["more_items_in_collection"],
            true
        );
        assert_eq!(v["additional_data"]["pagination"]["next_start"], 5);
        assert!(v["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["key"].is_string()));
    }
    for entity in [
        "dealFields",
        "organizationFields",
        "activityFields",
        "productFields",
    ] {
        let (status, _, v) = get(&format!("{base}/v1/{entity}")).await;
        assert_eq!(status, StatusCode::OK, "{entity}");
        assert_eq!(
            v["additional_data"]["pagination"]["more_items_in_collection"],
            false
        );
    }
    let (_, _, users) = get(&format!("{base}/v1/users")).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn recents_reports_changes_since_a_timestamp_with_plus_for_space() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    h.seed_persons(10);
    h.advance_clock(Duration::from_secs(86_400));
    let since = chrono::DateTime::from_timestamp(h.now(), 0)
        .unwrap()
        .format("%Y-%m-%d+%H:%M:%S")
        .to_string();
    h.update_person_as_user(4, json!({"name": "Changed Person"}))
        .unwrap();
    h.delete_person(5).unwrap();
    let (status, _, v) = get(&format!(
        "{base}/v1/recents?since_timestamp={since}&items=person"
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let ids: BTreeSet<i64> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([4, 5]));
    let deleted = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == 5)
        .unwrap();
    assert_eq!(deleted["data"]["active_flag"], false);
}

#[tokio::test]
async fn custom_person_fields_have_hash_keys_and_typed_values() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let (status, f) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/personFields"),
        json!({"field_name": "apId", "field_type": "varchar"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let key = f["data"]["field_code"].as_str().unwrap().to_owned();
    assert!(key.len() == 40 && key.chars().all(|c| c.is_ascii_hexdigit()));
    let (status, f2) = send(reqwest::Method::POST, &format!("{base}/api/v2/personFields"), json!({"field_name": "Plan", "field_type": "enum", "options": [{"label": "Free"}, {"label": "Pro"}]})).await;
    assert_eq!(status, StatusCode::OK);
    let plan = f2["data"]["field_code"].as_str().unwrap().to_owned();
    let pro = f2["data"]["options"][1]["id"].as_i64().unwrap();
    let (status, p) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/persons"),
        json!({"name": "Cf Person", "custom_fields": {key.clone(): "ap-1", plan.clone(): pro}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["data"]["custom_fields"][&key], "ap-1");
    assert_eq!(p["data"]["custom_fields"][&plan], pro);
    let id = p["data"]["id"].as_i64().unwrap();
    let (status, _) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/persons/{id}"),
        json!({"custom_fields": {plan.clone(): "Pro"}}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "enum values are option ids"
    );
    let (status, p) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/persons/{id}"),
        json!({"custom_fields": {key.clone(): null}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(p["data"]["custom_fields"][&key].is_null());
    let (_, _, list) = get(&format!("{base}/api/v2/personFields?limit=500")).await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["field_code"] == key.as_str() && f["is_custom_field"] == true));
    let (_, _, one) = get(&format!("{base}/api/v2/persons/{id}?custom_fields={plan}")).await;
    assert_eq!(one["data"]["custom_fields"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn deleted_persons_disappear_from_lists_and_merges_report_both_sides() {
    let sim = pipedrive_sim::start(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let a = h.insert_person(json!({"name": "Dup One", "emails": [{"value": "dup@example.com"}], "phones": [{"value": "+1 555"}]})).unwrap();
    let b = h.insert_person(json!({"name": "Dup Two", "emails": [{"value": "dup@example.com"}, {"value": "other@example.com"}]})).unwrap();
    let c = h.insert_person(json!({"name": "Goner"})).unwrap();
    let (recv, url) = receiver().await;
    subscribe(&base, &url, "person", None).await;

    let (status, v) = send(
        reqwest::Method::DELETE,
        &format!("{base}/api/v2/persons/{c}"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, v["data"]["id"].as_i64()),
        (StatusCode::OK, Some(c))
    );
    let (_, _, list) = get(&format!("{base}/api/v2/persons")).await;
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["id"] != c));
    assert_eq!(h.person(c).unwrap()["is_deleted"], true);

    let (status, v) = send(
        reqwest::Method::PUT,
        &format!("{base}/v1/persons/{a}/merge"),
        json!({"merge_with_id": b}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["data"]["id"], b);
    assert_eq!(v["data"]["merge_what_id"], a);
    let survivor = h.person(b).unwrap();
    assert_eq!(survivor["name"], "Dup Two");
    assert_eq!(survivor["emails"].as_array().unwrap().len(), 2);
    assert_eq!(survivor["phones"][0]["value"], "+1 555");
    assert!(h.person(a).unwrap()["is_deleted"].as_bool().unwrap());

    h.wait_for_deliveries(Duration::from_secs(10), |d| {
        d.iter().filter(|x| x.delivered).count() == 3
    })
    .await;
    let got = recv.got.lock().await.clone();
    let a_str = a.to_string();
    let merged_delete = got
        .iter()
        .find(|(_, b)| b["meta"]["action"] == "delete" && b["meta"]["entity_id"] == a_str.as_str())
        .unwrap();
    assert_eq!(merged_delete.1["meta"]["merged_to_id"], b.to_string());
    assert!(merged_delete.1["data"].is_null());
    assert_eq!(merged_delete.1["previous"]["name"], "Dup One");
    let change = got
        .iter()
        .find(|(_, x)| x["meta"]["action"] == "change")
        .unwrap();
    assert_eq!(change.1["meta"]["merged_from_id"], a.to_string());
}

#[tokio::test]
async fn deals_move_between_stages_and_activities_link_to_persons() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let p = sim
        .handle()
        .insert_person(json!({"name": "Deal Person"}))
        .unwrap();
    let (status, d) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/deals"),
        json!({"title": "Big deal", "person_id": p, "value": 1000}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let id = d["data"]["id"].as_i64().unwrap();
    assert_eq!(d["data"]["stage_id"], 1);
    let (status, d) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/deals/{id}"),
        json!({"stage_id": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d["data"]["stage_id"], 3);
    assert!(d["data"]["stage_change_time"].is_string());
    let (status, _) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/deals/{id}"),
        json!({"stage_id": 99}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/deals"),
        json!({"value": 5}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "title is required");
    let (_, _, stages) = get(&format!("{base}/api/v2/stages?pipeline_id=1")).await;
    assert_eq!(stages["data"].as_array().unwrap().len(), 5);

    let (status, a) = send(reqwest::Method::POST, &format!("{base}/api/v2/activities"), json!({"subject": "Call", "type": "call", "deal_id": id, "participants": [{"person_id": p, "primary": true}]})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["data"]["person_id"], p);
    let aid = a["data"]["id"].as_i64().unwrap();
    let (_, a) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/activities/{aid}"),
        json!({"done": true}),
    )
    .await;
    assert_eq!(a["data"]["done"], true);
    let (_, _, list) = get(&format!("{base}/api/v2/activities?person_id={p}")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(sim.handle().deals().len(), 1);
    assert_eq!(sim.handle().activities().len(), 1);
}

#[tokio::test]
async fn injected_faults_hit_only_their_route_and_are_counted() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let id = h.insert_person(json!({"name": "Faulty"})).unwrap();
    h.set_faults(FaultSpec::parse("persons.patch:503=1;v2.getPerson:429=1").unwrap());
    let (status, v) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/persons/{id}"),
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["success"], false);
    let (status, headers, _) = get(&format!("{base}/api/v2/persons/{id}")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    let (status, _, _) = get(&format!("{base}/api/v2/persons")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.person(id).unwrap()["name"], "Faulty");

    h.set_faults(FaultSpec::parse("persons.get:reset=1").unwrap());
    let err = client()
        .get(format!("{base}/api/v2/persons"))
        .header("x-api-token", TOKEN)
        .send()
        .await;
    assert!(err.is_err(), "the connection is closed without an answer");

    h.set_faults(FaultSpec::parse("users:hang=1").unwrap());
    let c = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = c
        .get(format!("{base}/v1/users/me"))
        .header("x-api-token", TOKEN)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());

    h.set_faults(FaultSpec::none());
    assert_eq!(get(&format!("{base}/v1/users/me")).await.0, StatusCode::OK);
    assert_eq!(h.calls("v2.updatePerson"), 1);
    assert_eq!(h.calls("v2.getPerson"), 1);
    assert_eq!(h.calls("v1.getCurrentUser"), 2);
    assert_eq!(h.calls_by_token(TOKEN), h.total_calls());
    h.reset_counts();
    assert_eq!(h.total_calls(), 0);
}

#[tokio::test]
async fn webhook_faults_drop_and_duplicate_deliveries() {
    let sim = pipedrive_sim::start(SimConfig {
        faults: FaultSpec::parse("webhooks:duplicate=1").unwrap(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let (recv, url) = receiver().await;
    subscribe(&base, &url, "person", None).await;
    h.create_person_as_user(json!({"name": "Twice"})).unwrap();
    h.wait_for_deliveries(Duration::from_secs(10), |d| {
        d.iter().filter(|x| x.delivered).count() == 2
    })
    .await;
    let got = recv.got.lock().await.clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].1["meta"]["id"], got[1].1["meta"]["id"]);

    h.set_faults(FaultSpec::parse("webhooks:drop=1").unwrap());
    h.create_person_as_user(json!({"name": "Never"})).unwrap();
    let log = h
        .wait_for_deliveries(Duration::from_secs(10), |d| {
            d.iter()
                .any(|x| x.error.as_deref() == Some("dropped by fault injection"))
        })
        .await;
    assert_eq!(log.len(), 3);
    assert_eq!(recv.got.lock().await.len(), 2);

    h.set_faults(FaultSpec::parse("webhooks:reorder=1").unwrap());
    h.create_person_as_user(json!({"name": "First"})).unwrap();
    h.create_person_as_user(json!({"name": "Second"})).unwrap();
    h.wait_for_deliveries(Duration::from_secs(10), |d| {
        d.iter().filter(|x| x.delivered).count() == 4
    })
    .await;
    assert_eq!(recv.got.lock().await.len(), 4);
}

#[tokio::test]
async fn the_binary_prints_its_address_first_and_serves_seeded_persons() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pipedrive-sim"))
        .args([
            "--port",
            "0",
            "--persons",
            "25",
            "--seed",
            "7",
            "--faults",
            "*:latency_ms=1",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = first.strip_prefix("listening on ").unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"));
    let (status, _, v) = get(&format!("{base}/api/v2/persons?limit=500")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["data"].as_array().unwrap().len(), 25);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn built_in_person_fields_carry_pipedrives_codes_email_and_phone() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let (status, _, list) = get(&format!("{base}/api/v2/personFields?limit=500")).await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["is_custom_field"] == false)
        .map(|f| f["field_code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"email") && codes.contains(&"phone"),
        "{codes:?}"
    );
    assert!(
        !codes.contains(&"emails") && !codes.contains(&"phones"),
        "{codes:?}"
    );
    let (status, _, phone) = get(&format!("{base}/api/v2/personFields/phone")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(phone["data"]["field_type"], "phone");
}

#[tokio::test]
async fn deleting_a_custom_person_field_removes_it_and_built_in_or_unknown_codes_are_refused() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let (_, f) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/personFields"),
        json!({"field_name": "Campaign", "field_type": "varchar"}),
    )
    .await;
    let key = f["data"]["field_code"].as_str().unwrap().to_owned();
    let (_, p) = send(
        reqwest::Method::POST,
        &format!("{base}/api/v2/persons"),
        json!({"name": "Del Field", "custom_fields": {key.clone(): "spring"}}),
    )
    .await;
    let id = p["data"]["id"].as_i64().unwrap();

    let (status, deleted) = send(
        reqwest::Method::DELETE,
        &format!("{base}/api/v2/personFields/{key}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["data"]["field_code"], key.as_str());

    let (status, _, _) = get(&format!("{base}/api/v2/personFields/{key}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, person) = get(&format!("{base}/api/v2/persons/{id}")).await;
    assert!(
        person["data"]["custom_fields"].get(&key).is_none(),
        "{person}"
    );
    let (status, _) = send(
        reqwest::Method::PATCH,
        &format!("{base}/api/v2/persons/{id}"),
        json!({"custom_fields": {key.clone(): "again"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = send(
        reqwest::Method::DELETE,
        &format!("{base}/api/v2/personFields/{key}"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        reqwest::Method::DELETE,
        &format!("{base}/api/v2/personFields/email"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn each_custom_field_type_takes_its_documented_api_v2_shape_and_refuses_others() {
    let sim = sim().await;
    let base = sim.base_url().to_owned();
    let h = sim.handle();
    let opts = ["A", "B"];
    // (type, accepted values, refused values)
    let cases: Vec<(&str, Vec<Value>, Vec<Value>)> = vec![
        (
            "varchar",
            vec![json!("x")],
            vec![json!(1), json!({"value": "x"})],
        ),
        ("varchar_auto", vec![json!("x")], vec![json!(true)]),
        ("text", vec![json!("long\ntext")], vec![json!(["x"])]),
        ("phone", vec![json!("+1 555 0100")], vec![json!(5550100)]),
        ("double", vec![json!(1.5), json!(-3)], vec![json!("1.5")]),
        (
            "monetary",
            vec![
                json!({"value": 1234.5, "currency": "EUR"}),
                json!({"value": 3}),
            ],
            vec![
                json!(1234.5),
                json!({"value": "1", "currency": "EUR"}),
                json!({"value": 1, "currency": "euro"}),
                json!({"value": 1, "cur": "EUR"}),
            ],
        ),
        (
            "date",
            vec![json!("2024-02-29")],
            vec![json!("2023-02-29"), json!("01/02/2024")],
        ),
        (
            "daterange",
            vec![json!({"value": "2024-01-01", "until": "2024-01-31"})],
            vec![
                json!("2024-01-01"),
                json!({"value": "2024-01-01"}),
                json!({"value": "2024-02-01", "until": "2024-01-01"}),
            ],
        ),
        (
            "time",
            vec![
                json!({"value": "09:30:00", "timezone_id": 318, "timezone_name": "Europe/London"}),
                json!({"value": "09:30"}),
            ],
            vec![
                json!("09:30:00"),
                json!({"value": "25:00:00"}),
                json!({"value": "09:30", "timezone_id": "318"}),
            ],
        ),
        (
            "timerange",
            vec![json!({"value": "09:00:00", "until": "17:00:00", "timezone_id": 318})],
            vec![json!({"value": "09:00:00"}), json!("09:00-17:00")],
        ),
        ("enum", vec![], vec![json!("A"), json!(999_999)]),
        ("set", vec![], vec![json!([]), json!(["A"])]),
        (
            "address",
            vec![
                json!({"value": "1 Main St"}),
                json!({"value": "1 Main St, London", "route": "Main St", "country": "UK"}),
            ],
            vec![
                json!("1 Main St"),
                json!({"route": "Main St"}),
                json!({"value": "x", "planet": "Mars"}),
            ],
        ),
        ("user", vec![json!(1)], vec![json!("1"), json!(1.5)]),
        ("org", vec![json!(7)], vec![json!({"value": 7})]),
        ("people", vec![json!(14)], vec![json!([14])]),
    ];
    for (field_type, accepted, refused) in cases {
        let options: &[&str] = if matches!(field_type, "enum" | "set") {
            &opts
        } else {
            &[]
        };
        let key = h.add_person_field(field_type, field_type, options).unwrap();
        let mut accepted = accepted;
        if matches!(field_type, "enum" | "set") {
            let field = h
                .person_fields()
                .into_iter()
                .find(|f| f["field_code"] == key.as_str())
                .unwrap();
            let id = field["options"][0]["id"].clone();
            accepted.push(if field_type == "enum" {
                id
            } else {
                json!([id])
            });
        }
        for value in accepted {
            let (status, body) = send(
                reqwest::Method::POST,
                &format!("{base}/api/v2/persons"),
                json!({"name": "Typed", "custom_fields": {key.clone(): value.clone()}}),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{field_type} takes {value}: {body}");
            assert_eq!(
                body["data"]["custom_fields"][&key], value,
                "{field_type} reads back"
            );
        }
        for value in refused {
            let (status, body) = send(
                reqwest::Method::POST,
                &format!("{base}/api/v2/persons"),
                json!({"name": "Typed", "custom_fields": {key.clone(): value.clone()}}),
            )
            .await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{field_type} refuses {value}"
            );
            assert!(body["error"].as_str().unwrap().contains(&key), "{body}");
        }
    }
}
