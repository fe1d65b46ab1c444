//! The streams a live mirror extracts: paging, `updated_since`, filters, seeded links, and
//! webhooks for every object and action. Each test talks HTTP to a simulator on 127.0.0.1.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use pipedrive_sim::{SeedCounts, SimConfig, Simulator};
use serde_json::{json, Value};
use tokio::sync::Mutex;

const TOKEN: &str = "sim-api-token";

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn seeded() -> Simulator {
    pipedrive_sim::start(SimConfig {
        persons: 300,
        objects: SeedCounts {
            organizations: 120,
            deals: 400,
            activities: 700,
            notes: 300,
            leads: 150,
            products: 30,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut r = client().request(method, url).header("x-api-token", TOKEN);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn get(url: &str) -> Value {
    let (s, v) = call(reqwest::Method::GET, url, None).await;
    assert_eq!(s, StatusCode::OK, "{url}: {v}");
    v
}

/// Walks a v2 list with cursors; returns the ids in order.
async fn walk_v2(base: &str, path: &str, query: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/api/v2/{path}?limit=37&{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let v = get(&url).await;
        ids.extend(
            v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["id"].as_i64().unwrap()),
        );
        match v["additional_data"]["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn cursor_paging_walks_every_record_of_each_v2_stream_exactly_once_in_every_order() {
    let sim = seeded().await;
    let base = sim.base_url().to_owned();
    let counts = sim.handle().counts();
    for (path, stream) in [
        ("organizations", "organizations"),
        ("deals", "deals"),
        ("activities", "activities"),
        ("products", "products"),
        ("persons", "persons"),
    ] {
        for order in [
            "sort_by=id",
            "sort_by=update_time",
            "sort_by=update_time&sort_direction=desc",
            "sort_by=add_time",
        ] {
            let ids = walk_v2(&base, path, order).await;
            let unique: BTreeSet<i64> = ids.iter().copied().collect();
            assert_eq!(unique.len(), ids.len(), "{path} {order}: duplicates");
            assert_eq!(ids.len(), counts[stream], "{path} {order}");
        }
    }
}

#[tokio::test]
async fn updated_since_and_until_select_by_update_time_inclusive_then_exclusive() {
    let sim = seeded().await;
    let base = sim.base_url().to_owned();
    let all = get(&format!(
        "{base}/api/v2/organizations?limit=500&sort_by=update_time"
    ))
    .await;
    let times: Vec<String> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["update_time"].as_str().unwrap().to_owned())
        .collect();
    let pivot = times[times.len() / 2].clone();
    let since = get(&format!(
        "{base}/api/v2/organizations?limit=500&updated_since={pivot}"
    ))
    .await;
    let expected = times.iter().filter(|t| **t >= pivot).count();
    assert_eq!(since["data"].as_array().unwrap().len(), expected);
    let until = get(&format!(
        "{base}/api/v2/organizations?limit=500&updated_until={pivot}"
    ))
    .await;
    assert_eq!(
        until["data"].as_array().unwrap().len(),
        times.len() - expected
    );
    // Leads and notes (API v1) take `updated_since` too.
    let leads = get(&format!("{base}/v1/leads?limit=500&sort=update_time%20ASC")).await;
    let lt: Vec<&str> = leads["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["update_time"].as_str().unwrap())
        .collect();
    assert!(lt.windows(2).all(|w| w[0] <= w[1]));
    let pivot = lt[lt.len() / 2];
    let v = get(&format!("{base}/v1/leads?limit=500&updated_since={pivot}")).await;
    assert_eq!(
        v["data"].as_array().unwrap().len(),
        lt.iter().filter(|t| **t >= pivot).count()
    );
}

#[tokio::test]
async fn seeded_objects_have_the_requested_counts_and_valid_links() {
    let sim = seeded().await;
    let h = sim.handle();
    let base = sim.base_url().to_owned();
    let counts = h.counts();
    assert_eq!(counts["organizations"], 120);
    assert_eq!(counts["deals"], 400);
    assert_eq!(counts["activities"], 700);
    assert_eq!(counts["products"], 30);
    assert!(counts["notes"] > 250 && counts["files"] > 40, "{counts:?}");
    let orgs: BTreeSet<i64> = h
        .organizations()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect();
    let persons: BTreeSet<i64> = h
        .persons()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    let with_org = h
        .persons()
        .iter()
        .filter(|p| p.get("org_id").is_some())
        .count();
    assert!(with_org > 150, "persons with an organization: {with_org}");
    for p in h.persons() {
        if let Some(o) = p.get("org_id") {
            assert!(orgs.contains(&o.as_i64().unwrap()));
        }
    }
    let deals: BTreeSet<i64> = h
        .deals()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    for d in h.deals() {
        if let Some(p) = d.get("person_id") {
            assert!(persons.contains(&p.as_i64().unwrap()));
        }
        if let Some(o) = d.get("org_id") {
            assert!(orgs.contains(&o.as_i64().unwrap()));
        }
    }
    for a in h.activities() {
        if let Some(d) = a.get("deal_id") {
            assert!(deals.contains(&d.as_i64().unwrap()));
        }
    }
    // Custom fields of every type on deals and organizations, with values of their shape.
    let fields = get(&format!("{base}/api/v2/dealFields?limit=500")).await;
    let types: BTreeSet<String> = fields["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["is_custom_field"] == true)
        .map(|f| f["field_type"].as_str().unwrap().to_owned())
        .collect();
    for t in [
        "varchar",
        "text",
        "double",
        "monetary",
        "date",
        "daterange",
        "time",
        "enum",
        "set",
        "phone",
        "address",
        "user",
        "org",
        "people",
    ] {
        assert!(types.contains(t), "deal field type {t} missing");
    }
    let org = &h.organizations()[0];
    assert_eq!(org["custom_fields"].as_object().unwrap().len(), 14);
    // Notes name what they are attached to; leads link persons or organizations.
    let notes = get(&format!("{base}/v1/notes?limit=500")).await;
    for n in notes["data"].as_array().unwrap() {
        assert!(
            ["deal_id", "person_id", "org_id", "lead_id"]
                .iter()
                .any(|k| n.get(*k).is_some()),
            "{n}"
        );
    }
    let leads = get(&format!("{base}/v1/leads?limit=500")).await;
    for l in leads["data"].as_array().unwrap() {
        assert!(!l["person_id"].is_null() || !l["organization_id"].is_null());
        assert_eq!(l["is_archived"], false);
    }
}

#[tokio::test]
async fn list_filters_select_by_owner_links_and_status() {
    let sim = seeded().await;
    let base = sim.base_url().to_owned();
    let deal = get(&format!("{base}/api/v2/deals?limit=1")).await["data"][0].clone();
    let org = deal["org_id"].as_i64().unwrap_or(1);
    let acts = get(&format!("{base}/api/v2/activities?limit=500")).await;
    let with_deal = acts["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a.get("deal_id").is_some() && a.get("org_id").is_some())
        .unwrap()
        .clone();
    let (act_org, deal_id) = (with_deal["org_id"].clone(), with_deal["deal_id"].clone());
    for (path, check) in [
        (
            "deals?owner_id=2&limit=500".to_owned(),
            ("owner_id", json!(2)),
        ),
        (
            format!("deals?org_id={org}&limit=500"),
            ("org_id", json!(org)),
        ),
        (
            "deals?status=won&limit=500".to_owned(),
            ("status", json!("won")),
        ),
        (
            "deals?stage_id=3&limit=500".to_owned(),
            ("stage_id", json!(3)),
        ),
        (
            format!("activities?org_id={act_org}&limit=500"),
            ("org_id", json!(act_org)),
        ),
        (
            format!("activities?deal_id={deal_id}&limit=500"),
            ("deal_id", json!(deal_id)),
        ),
        (
            "organizations?owner_id=1&limit=500".to_owned(),
            ("owner_id", json!(1)),
        ),
        (
            "products?owner_id=2&limit=500".to_owned(),
            ("owner_id", json!(2)),
        ),
    ] {
        let v = get(&format!("{base}/api/v2/{path}")).await;
        let items = v["data"].as_array().unwrap();
        assert!(!items.is_empty(), "{path}");
        assert!(items.iter().all(|x| x[check.0] == check.1), "{path}");
    }
    let v = get(&format!("{base}/api/v2/organizations?ids=1,2,3")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 3);
    let v = get(&format!("{base}/v1/notes?org_id={org}&limit=500")).await;
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["org_id"] == json!(org)));
    let v = get(&format!("{base}/v1/leads?organization_id={org}&limit=500")).await;
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["organization_id"] == json!(org)));
}

/// The v2 document's `getDeals` `status`: "Multiple statuses can be included as a comma separated
/// array" (the Singer tap asks for `status=open,won,lost,deleted`).
#[tokio::test]
async fn deals_status_takes_a_comma_separated_list_and_deleted_adds_the_deleted_deals() {
    let sim = seeded().await;
    let base = sim.base_url().to_owned();
    let deleted = get(&format!("{base}/api/v2/deals?limit=1")).await["data"][0]["id"]
        .as_i64()
        .unwrap();
    let (s, _) = call(
        reqwest::Method::DELETE,
        &format!("{base}/api/v2/deals/{deleted}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let not_deleted: BTreeSet<i64> = walk_v2(&base, "deals", "").await.into_iter().collect();
    assert!(!not_deleted.contains(&deleted));
    let every: BTreeSet<i64> = walk_v2(&base, "deals", "status=open,won,lost,deleted")
        .await
        .into_iter()
        .collect();
    let mut expected = not_deleted.clone();
    expected.insert(deleted);
    assert_eq!(every, expected);
    let closed = get(&format!("{base}/api/v2/deals?status=won,lost&limit=500")).await;
    let closed = closed["data"].as_array().unwrap();
    assert!(!closed.is_empty());
    assert!(closed
        .iter()
        .all(|d| d["status"] == json!("won") || d["status"] == json!("lost")));
    let won = get(&format!("{base}/api/v2/deals?status=won&limit=500")).await["data"]
        .as_array()
        .unwrap()
        .len();
    let lost = get(&format!("{base}/api/v2/deals?status=lost&limit=500")).await["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(closed.len(), won + lost);
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{base}/api/v2/deals?status=open,closed"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

/// `v1.getLeads`: the document's flat `additional_data.{start, limit, more_items_in_collection}`,
/// and the `additional_data.pagination` object of every paged v1 list (with `next_start` while
/// more remain), which the Airbyte source and dlt page leads by.
#[tokio::test]
async fn leads_pages_carry_the_flat_keys_and_a_pagination_object_whose_next_start_reads_every_lead_once(
) {
    let sim = seeded().await;
    let base = sim.base_url().to_owned();
    // Every lead not archived, on one page.
    let total = get(&format!("{base}/v1/leads?limit=500")).await["data"]
        .as_array()
        .unwrap()
        .len();
    let mut ids = BTreeSet::new();
    let mut start = 0;
    loop {
        let v = get(&format!("{base}/v1/leads?start={start}&limit=50")).await;
        let extra = &v["additional_data"];
        let pagination = &extra["pagination"];
        for key in ["start", "limit", "more_items_in_collection"] {
            assert_eq!(extra[key], pagination[key], "{key}: {extra}");
        }
        assert_eq!(pagination["start"], json!(start));
        assert_eq!(pagination["limit"], json!(50));
        for x in v["data"].as_array().unwrap() {
            assert!(ids.insert(x["id"].to_string()), "{x} twice");
        }
        if pagination["more_items_in_collection"] == json!(false) {
            assert!(pagination.get("next_start").is_none(), "{pagination}");
            break;
        }
        start = pagination["next_start"].as_u64().unwrap() as usize;
        assert_eq!(start, ids.len());
    }
    assert_eq!(ids.len(), total);
    assert!(total > 50);
}

#[tokio::test]
async fn v1_streams_page_with_start_and_limit_and_report_more_items() {
    let sim = seeded().await;
    let base = sim.base_url().to_owned();
    for (path, max) in [("notes", 500), ("leads", 500), ("files", 100)] {
        let mut start = 0;
        let mut ids = BTreeSet::new();
        let mut pages = 0;
        loop {
            let v = get(&format!("{base}/v1/{path}?start={start}&limit=23")).await;
            pages += 1;
            for x in v["data"].as_array().unwrap() {
                assert!(ids.insert(x["id"].to_string()), "{path}: {x} twice");
            }
            let more = if path == "leads" {
                v["additional_data"]["more_items_in_collection"]
                    .as_bool()
                    .unwrap()
            } else {
                v["additional_data"]["pagination"]["more_items_in_collection"]
                    .as_bool()
                    .unwrap()
            };
            if !more {
                break;
            }
            start += 23;
        }
        assert!(pages > 1, "{path}");
        let (s, _) = call(
            reqwest::Method::GET,
            &format!("{base}/v1/{path}?limit={}", max + 1),
            None,
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} limit above {max}");
    }
}

#[tokio::test]
async fn recents_lists_the_reference_data_once_for_a_time_before_the_company_existed_and_not_after()
{
    let sim = seeded().await;
    let base = sim.base_url();
    let recents = |since: &str| {
        let url = format!(
            "{base}/v1/recents?since_timestamp={since}&items=activityType,filter,pipeline,stage,user&limit=500"
        );
        async move { get(&url).await }
    };
    let all = recents("2000-01-01+00:00:00").await;
    let listed = |kind: &str| -> Vec<i64> {
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["item"] == kind)
            .map(|i| {
                assert_eq!(i["id"], i["data"]["id"], "{i}");
                i["id"].as_i64().unwrap()
            })
            .collect()
    };
    let ids = |v: Value| -> Vec<i64> {
        let mut ids: Vec<i64> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_i64().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    };
    let sorted = |mut v: Vec<i64>| {
        v.sort_unstable();
        v
    };
    for (kind, list) in [
        ("activityType", "/v1/activityTypes"),
        ("filter", "/v1/filters"),
        ("pipeline", "/api/v2/pipelines"),
        ("stage", "/api/v2/stages"),
        ("user", "/v1/users"),
    ] {
        let expected = ids(get(&format!("{base}{list}")).await);
        assert!(!expected.is_empty(), "{list} lists nothing");
        assert_eq!(sorted(listed(kind)), expected, "{kind}");
    }
    let stage = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["item"] == "stage")
        .unwrap();
    assert_eq!(stage["data"]["pipeline_name"], "Sales pipeline");
    let now = chrono::Utc::now().format("%Y-%m-%d+%H:%M:%S").to_string();
    assert_eq!(recents(&now).await["data"], json!([]));
}

#[tokio::test]
async fn organizations_are_found_by_name_ignoring_case_and_spaces_and_deletes_hide_them() {
    let sim = pipedrive_sim::start(SimConfig::default()).await.unwrap();
    let base = sim.base_url().to_owned();
    let (s, o) = call(
        reqwest::Method::POST,
        &format!("{base}/api/v2/organizations"),
        Some(json!({"name": "Globex Corporation"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{o}");
    let id = o["data"]["id"].as_i64().unwrap();
    let v = get(&format!(
        "{base}/api/v2/organizations/search?term=%20globex%20CORPORATION%20&exact_match=true&fields=name"
    ))
    .await;
    assert_eq!(v["data"]["items"][0]["item"]["id"], id);
    let v = get(&format!(
        "{base}/api/v2/organizations/search?term=globex%20corp&exact_match=true"
    ))
    .await;
    assert!(v["data"]["items"].as_array().unwrap().is_empty());
    // A person linked through org_id; deleting the organization hides it everywhere.
    let (s, p) = call(
        reqwest::Method::POST,
        &format!("{base}/api/v2/persons"),
        Some(json!({"name": "Hank Scorpio", "org_id": id})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v = get(&format!("{base}/api/v2/persons?org_id={id}")).await;
    assert_eq!(v["data"][0]["id"], p["data"]["id"]);
    let (s, _) = call(
        reqwest::Method::DELETE,
        &format!("{base}/api/v2/organizations/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = call(
        reqwest::Method::GET,
        &format!("{base}/api/v2/organizations/{id}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let v = get(&format!("{base}/api/v2/organizations")).await;
    assert!(v["data"].as_array().unwrap().is_empty());
    let v = get(&format!("{base}/api/v2/organizations/search?term=globex")).await;
    assert!(v["data"]["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn deleted_notes_leave_the_list_and_deleted_files_stay_readable_as_inactive() {
    let sim = seeded().await;
    let base = sim.base_url().to_owned();
    let (s, v) = call(reqwest::Method::DELETE, &format!("{base}/v1/notes/1"), None).await;
    assert_eq!((s, v["data"].clone()), (StatusCode::OK, json!(true)));
    let (s, _) = call(reqwest::Method::GET, &format!("{base}/v1/notes/1"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let v = get(&format!("{base}/v1/notes?limit=500")).await;
    assert!(v["data"].as_array().unwrap().iter().all(|n| n["id"] != 1));
    let (s, _) = call(reqwest::Method::DELETE, &format!("{base}/v1/files/1"), None).await;
    assert_eq!(s, StatusCode::OK);
    let v = get(&format!("{base}/v1/files/1")).await;
    assert_eq!(v["data"]["active_flag"], false);
    let v = get(&format!("{base}/v1/files?limit=100")).await;
    assert!(v["data"].as_array().unwrap().iter().all(|f| f["id"] != 1));
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Value>>>);

async fn receive(State(r): State<Receiver>, Json(body): Json<Value>) -> StatusCode {
    r.0.lock().await.push(body);
    StatusCode::OK
}

#[tokio::test]
async fn webhooks_fire_for_every_object_and_action_with_wildcard_and_specific_subscriptions() {
    let sim = pipedrive_sim::start(SimConfig {
        time_scale: 0.001,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let h = sim.handle();
    let base = sim.base_url().to_owned();
    let got = Receiver::default();
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    for (object, action, name) in [("*", "*", "all"), ("note", "delete", "note deletes")] {
        let (s, v) = call(
            reqwest::Method::POST,
            &format!("{base}/v1/webhooks"),
            Some(json!({"subscription_url": url, "event_object": object, "event_action": action, "name": name})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    use reqwest::Method as M;
    let person = call(
        M::POST,
        &format!("{base}/api/v2/persons"),
        Some(json!({"name": "Ada"})),
    )
    .await
    .1;
    let pid = person["data"]["id"].as_i64().unwrap();
    let org = call(
        M::POST,
        &format!("{base}/api/v2/organizations"),
        Some(json!({"name": "Org"})),
    )
    .await
    .1;
    let oid = org["data"]["id"].as_i64().unwrap();
    let deal = call(
        M::POST,
        &format!("{base}/api/v2/deals"),
        Some(json!({"title": "D", "person_id": pid, "org_id": oid})),
    )
    .await
    .1;
    let did = deal["data"]["id"].as_i64().unwrap();
    let act = call(M::POST, &format!("{base}/api/v2/activities"), Some(json!({"subject": "Call", "deal_id": did, "participants": [{"person_id": pid, "primary": true}]}))).await.1;
    let aid = act["data"]["id"].as_i64().unwrap();
    let prod = call(
        M::POST,
        &format!("{base}/api/v2/products"),
        Some(json!({"name": "P"})),
    )
    .await
    .1;
    let prid = prod["data"]["id"].as_i64().unwrap();
    let lead = call(
        M::POST,
        &format!("{base}/v1/leads"),
        Some(json!({"title": "L", "person_id": pid, "organization_id": oid})),
    )
    .await
    .1;
    let lid = lead["data"]["id"].as_str().unwrap().to_owned();
    let note = call(
        M::POST,
        &format!("{base}/v1/notes"),
        Some(json!({"content": "N", "deal_id": did, "lead_id": lid})),
    )
    .await
    .1;
    let nid = note["data"]["id"].as_i64().unwrap();
    let objects: Vec<(&str, String, &str)> = vec![
        ("person", format!("/api/v2/persons/{pid}"), "PATCH"),
        (
            "organization",
            format!("/api/v2/organizations/{oid}"),
            "PATCH",
        ),
        ("deal", format!("/api/v2/deals/{did}"), "PATCH"),
        ("activity", format!("/api/v2/activities/{aid}"), "PATCH"),
        ("product", format!("/api/v2/products/{prid}"), "PATCH"),
        ("lead", format!("/v1/leads/{lid}"), "PATCH"),
        ("note", format!("/v1/notes/{nid}"), "PUT"),
    ];
    for (entity, path, method) in &objects {
        let body = match *entity {
            "person" | "organization" | "product" => json!({"name": "Renamed"}),
            "deal" | "lead" => json!({"title": "Renamed"}),
            "activity" => json!({"subject": "Renamed"}),
            _ => json!({"content": "Renamed"}),
        };
        let (s, v) = call(
            method.parse().unwrap(),
            &format!("{base}{path}"),
            Some(body),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{entity}: {v}");
    }
    for (entity, path, _) in objects.iter().rev() {
        let (s, v) = call(M::DELETE, &format!("{base}{path}"), None).await;
        assert_eq!(s, StatusCode::OK, "{entity}: {v}");
    }
    // 7 objects × 3 actions to the wildcard subscription, plus the note delete to the other.
    let log = h
        .wait_for_deliveries(Duration::from_secs(10), |d| {
            d.iter().filter(|x| x.delivered).count() >= 22
        })
        .await;
    let seen: BTreeSet<(String, String, String)> = log
        .iter()
        .filter(|d| d.delivered)
        .map(|d| (d.entity.clone(), d.action.clone(), d.webhook_id.to_string()))
        .collect();
    for (entity, _, _) in &objects {
        for action in ["create", "change", "delete"] {
            assert!(
                seen.contains(&(entity.to_string(), action.to_owned(), "1".to_owned())),
                "{entity} {action} missing from the wildcard subscription"
            );
        }
    }
    let second: Vec<_> = seen.iter().filter(|s| s.2 == "2").collect();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(
        (second[0].0.as_str(), second[0].1.as_str()),
        ("note", "delete")
    );
    let bodies = got.0.lock().await;
    let lead_change = bodies
        .iter()
        .find(|b| b["meta"]["entity"] == "lead" && b["meta"]["action"] == "change")
        .unwrap();
    assert_eq!(lead_change["meta"]["entity_id"], json!(lid));
    assert_eq!(lead_change["previous"], json!({"title": "L"}));
    let org_delete = bodies
        .iter()
        .find(|b| b["meta"]["entity"] == "organization" && b["meta"]["action"] == "delete")
        .unwrap();
    assert!(org_delete["data"].is_null());
    assert_eq!(org_delete["previous"]["name"], "Renamed");
}
