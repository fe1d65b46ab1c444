//! Conformance: every operation the simulator serves is called, and each response is
//! validated against the schema Pipedrive's OpenAPI documents give for that operation and
//! status (`shared/pipedrive/v2.yaml`, `v1.yaml`). The documents' `x-token-cost` and OAuth
//! scopes must also match the simulator's table. Drift from the documents fails the build.
//!
//! The validator covers the OpenAPI 3.0 subset the documents use: `$ref`, `type`,
//! `nullable`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `allOf`,
//! `oneOf`, `anyOf`, `minLength`/`maxLength`, `minimum`/`maximum` and the formats
//! `date-time`, `date` and `uuid`. One documented exception: `additional_data.next_cursor`
//! is `null` on the last page, as the documents' descriptions say, although its schema is a
//! non-nullable string.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use pipedrive_sim::{Op, SimConfig};
use serde_json::{json, Map, Value};

fn spec_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        manifest.join("../../shared/pipedrive"),
        manifest.join("../shared/pipedrive"),
        PathBuf::from("/work/shared/pipedrive"),
    ];
    candidates
        .iter()
        .find(|p| p.join("v2.yaml").is_file())
        .cloned()
        .unwrap_or_else(|| panic!("Pipedrive's OpenAPI documents not found in {candidates:?}"))
}

fn yaml_to_json(y: serde_yaml::Value) -> Value {
    match y {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64().unwrap_or_default())
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => {
            Value::Array(seq.into_iter().map(yaml_to_json).collect())
        }
        serde_yaml::Value::Mapping(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        serde_yaml::Value::String(s) => s,
                        other => serde_yaml::to_string(&other).unwrap().trim().to_owned(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect::<Map<_, _>>(),
        ),
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value),
    }
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(spec_dir().join(name)).unwrap();
    yaml_to_json(serde_yaml::from_str(&text).unwrap())
}

/// An OpenAPI 3.0 schema validator over one document.
struct Validator<'a> {
    doc: &'a Value,
}

impl<'a> Validator<'a> {
    fn resolve(&self, mut s: &'a Value) -> &'a Value {
        while let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external $ref {r}"));
            s = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        s
    }

    fn accepts(&self, schema: &Value, v: &Value, path: &str) -> bool {
        let mut errs = Vec::new();
        self.check(schema, v, path, &mut errs);
        errs.is_empty()
    }

    fn check(&self, schema: &'a Value, v: &Value, path: &str, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        let Some(obj) = s.as_object() else { return };
        if v.is_null() {
            let documented_null = path.ends_with("additional_data.next_cursor");
            let unconstrained = ![
                "type",
                "allOf",
                "oneOf",
                "anyOf",
                "properties",
                "enum",
                "items",
            ]
            .iter()
            .any(|k| obj.contains_key(*k));
            if obj.get("nullable") == Some(&Value::Bool(true)) || documented_null || unconstrained {
                return;
            }
            errs.push(format!("{path}: null but the schema is not nullable"));
            return;
        }
        if let Some(t) = obj.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                other => panic!("unknown type {other} at {path}"),
            };
            if !ok {
                errs.push(format!("{path}: expected {t}, got {v}"));
                return;
            }
        }
        if let Some(e) = obj.get("enum").and_then(Value::as_array) {
            let same =
                |a: &Value, b: &Value| a == b || (a.as_f64().is_some() && a.as_f64() == b.as_f64());
            if !e.iter().any(|x| same(x, v)) {
                errs.push(format!(
                    "{path}: {v} is not one of {}",
                    Value::Array(e.clone())
                ));
            }
        }
        if let Some(s) = v.as_str() {
            let len = s.chars().count() as u64;
            if obj
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
            {
                errs.push(format!("{path}: shorter than minLength"));
            }
            if obj
                .get("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len > m)
            {
                errs.push(format!("{path}: longer than maxLength"));
            }
            let format_ok = match obj.get("format").and_then(Value::as_str) {
                Some("date-time") => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
                Some("uuid") => uuid::Uuid::parse_str(s).is_ok(),
                _ => true,
            };
            if !format_ok {
                errs.push(format!("{path}: {s:?} is not a valid {}", obj["format"]));
            }
        }
        if let Some(n) = v.as_f64() {
            if obj
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
            {
                errs.push(format!("{path}: below minimum"));
            }
            if obj
                .get("maximum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n > m)
            {
                errs.push(format!("{path}: above maximum"));
            }
        }
        if let Some(o) = v.as_object() {
            let props = obj.get("properties").and_then(Value::as_object);
            if let Some(props) = props {
                for (k, sub) in props {
                    if let Some(x) = o.get(k) {
                        self.check(sub, x, &format!("{path}.{k}"), errs);
                    }
                }
            }
            if let Some(req) = obj.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !o.contains_key(r) {
                        errs.push(format!("{path}: required property {r:?} is missing"));
                    }
                }
            }
            match obj.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    for k in o.keys() {
                        if !props.is_some_and(|p| p.contains_key(k)) {
                            errs.push(format!("{path}: additional property {k:?} is not allowed"));
                        }
                    }
                }
                Some(extra @ Value::Object(_)) => {
                    for (k, x) in o {
                        if !props.is_some_and(|p| p.contains_key(k)) {
                            self.check(extra, x, &format!("{path}.{k}"), errs);
                        }
                    }
                }
                _ => {}
            }
        }
        if let (Some(a), Some(items)) = (v.as_array(), obj.get("items")) {
            for (i, x) in a.iter().enumerate() {
                self.check(items, x, &format!("{path}[{i}]"), errs);
            }
        }
        if let Some(all) = obj.get("allOf").and_then(Value::as_array) {
            for sub in all {
                self.check(sub, v, path, errs);
            }
        }
        if let Some(any) = obj.get("anyOf").and_then(Value::as_array) {
            if !any.iter().any(|sub| self.accepts(sub, v, path)) {
                errs.push(format!("{path}: matches none of anyOf"));
            }
        }
        if let Some(one) = obj.get("oneOf").and_then(Value::as_array) {
            let n = one.iter().filter(|sub| self.accepts(sub, v, path)).count();
            if n != 1 {
                errs.push(format!("{path}: matches {n} of oneOf (exactly 1 required)"));
            }
        }
    }
}

struct Docs {
    v1: Value,
    v2: Value,
    /// The January 2026 v1 document (the legacy v1 reads), when a test needs it.
    legacy: Value,
}

const LEGACY: &str = "v1-2026-01-14/v1.yaml";

impl Docs {
    fn doc(&self, file: &str) -> &Value {
        if file == "v1.yaml" {
            &self.v1
        } else if file == LEGACY {
            &self.legacy
        } else {
            &self.v2
        }
    }

    fn operation(&self, op: Op) -> &Value {
        let (file, path, method) = op.spec().unwrap();
        let doc = self.doc(file);
        doc["paths"]
            .get(path)
            .and_then(|p| p.get(method))
            .unwrap_or_else(|| panic!("{} ({method} {path}) is not in {file}", op.name()))
    }
}

/// Validates responses and remembers which operations were covered.
struct Checker<'a> {
    docs: &'a Docs,
    covered: BTreeSet<Op>,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn check(&mut self, op: Op, status: u16, body: &Value) {
        let (file, path, method) = op.spec().unwrap();
        let doc = self.docs.doc(file);
        let responses = &self.docs.operation(op)["responses"];
        let Some(response) = responses.get(status.to_string()) else {
            self.errors.push(format!(
                "{} answered {status}, which {file} does not document for {method} {path}",
                op.name()
            ));
            return;
        };
        let Some(schema) = response.pointer("/content/application~1json/schema") else {
            self.errors
                .push(format!("{}: no JSON schema for {status}", op.name()));
            return;
        };
        let v = Validator { doc };
        let mut errs = Vec::new();
        v.check(schema, body, "$", &mut errs);
        for e in errs {
            self.errors.push(format!("{} {status}: {e}", op.name()));
        }
        self.covered.insert(op);
    }
}

#[test]
fn the_token_costs_and_scopes_match_the_documents() {
    let docs = Docs {
        v1: load("v1.yaml"),
        v2: load("v2.yaml"),
        legacy: load(LEGACY),
    };
    let mut errors = Vec::new();
    for op in Op::ALL.iter().copied().filter(|op| op.spec().is_some()) {
        let o = docs.operation(op);
        let cost = o["x-token-cost"].as_u64();
        if cost != Some(op.token_cost()) {
            errors.push(format!(
                "{}: x-token-cost {cost:?} in the document, {} in the simulator",
                op.name(),
                op.token_cost()
            ));
        }
        let mut scopes: Vec<String> = o["security"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get("oauth2"))
                    .flat_map(|s| s.as_array().cloned().unwrap_or_default())
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut ours: Vec<String> = op.scopes().iter().map(|s| (*s).to_owned()).collect();
        scopes.sort();
        ours.sort();
        if scopes != ours {
            errors.push(format!(
                "{}: scopes {scopes:?} in the document, {ours:?} in the simulator",
                op.name()
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-api-token", "sim-api-token");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn every_served_operation_answers_as_the_documents_describe() {
    use reqwest::Method;
    let docs = Docs {
        v1: load("v1.yaml"),
        v2: load("v2.yaml"),
        legacy: Value::Null,
    };
    let mut ck = Checker {
        docs: &docs,
        covered: BTreeSet::new(),
        errors: Vec::new(),
    };
    let sim = pipedrive_sim::start(SimConfig {
        persons: 30,
        objects: pipedrive_sim::SeedCounts {
            organizations: 10,
            deals: 20,
            activities: 20,
            notes: 20,
            leads: 5,
            products: 3,
        },
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let h = sim.handle();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let c = Client {
        http: http.clone(),
        base: sim.base_url().to_owned(),
    };
    let base = sim.base_url().to_owned();

    // OAuth.
    let r = http.get(format!("{base}/oauth/authorize?client_id=sim-client&redirect_uri=http://127.0.0.1:9/cb&state=s")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    ck.covered.insert(Op::OauthAuthorize);
    let loc = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let token = |form: Vec<(&'static str, String)>| {
        http.post(format!("{base}/oauth/token"))
            .basic_auth("sim-client", Some("sim-secret"))
            .form(&form)
            .send()
    };
    let r = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", "http://127.0.0.1:9/cb".into()),
    ])
    .await
    .unwrap();
    let status = r.status().as_u16();
    let t: Value = r.json().await.unwrap();
    ck.check(Op::OauthToken, status, &t);
    let r = token(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", t["refresh_token"].as_str().unwrap().into()),
    ])
    .await
    .unwrap();
    let status = r.status().as_u16();
    ck.check(Op::OauthToken, status, &r.json().await.unwrap());

    // v1 users and webhooks, including the documented error answers.
    let (s, v) = c.call(Method::GET, "/v1/users/me", None).await;
    ck.check(Op::GetCurrentUser, s, &v);
    let r = http
        .get(format!("{base}/v1/users/me"))
        .send()
        .await
        .unwrap();
    ck.check(
        Op::GetCurrentUser,
        r.status().as_u16(),
        &r.json().await.unwrap(),
    );
    let (s, v) = c.call(Method::GET, "/v1/users", None).await;
    ck.check(Op::GetUsers, s, &v);
    let hook = json!({"subscription_url": "http://127.0.0.1:9/hook", "event_action": "*", "event_object": "person", "name": "conformance", "http_auth_user": "u", "http_auth_password": "p"});
    let (s, created) = c.call(Method::POST, "/v1/webhooks", Some(hook)).await;
    ck.check(Op::AddWebhook, s, &created);
    let (s, v) = c.call(Method::POST, "/v1/webhooks", Some(json!({"subscription_url": "nope", "event_action": "*", "event_object": "*", "name": "x"}))).await;
    ck.check(Op::AddWebhook, s, &v);
    let (s, v) = c.call(Method::GET, "/v1/webhooks", None).await;
    ck.check(Op::GetWebhooks, s, &v);
    let r = http
        .get(format!("{base}/v1/webhooks"))
        .send()
        .await
        .unwrap();
    ck.check(
        Op::GetWebhooks,
        r.status().as_u16(),
        &r.json().await.unwrap(),
    );
    let id = created["data"]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    ck.check(Op::DeleteWebhook, s, &v);
    let (s, v) = c
        .call(Method::DELETE, &format!("/v1/webhooks/{id}"), None)
        .await;
    ck.check(Op::DeleteWebhook, s, &v);

    // Person fields (v2 and v1) first, so that persons carry every kind of custom value.
    let (s, v) = c.call(Method::POST, "/api/v2/personFields", Some(json!({"field_name": "Segment", "field_type": "set", "options": [{"label": "A"}, {"label": "B"}]}))).await;
    ck.check(Op::AddPersonField, s, &v);
    let set_key = v["data"]["field_code"].as_str().unwrap().to_owned();
    let set_opt = v["data"]["options"][0]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Method::POST,
            "/v1/personFields",
            Some(json!({"name": "apId", "field_type": "varchar"})),
        )
        .await;
    ck.check(Op::AddPersonFieldV1, s, &v);
    let ap_key = v["data"]["key"].as_str().unwrap().to_owned();
    let (s, v) = c
        .call(Method::GET, "/api/v2/personFields?limit=5", None)
        .await;
    ck.check(Op::GetPersonFields, s, &v);
    assert!(v["additional_data"]["next_cursor"].is_string());
    let (s, v) = c
        .call(Method::GET, "/api/v2/personFields?limit=500", None)
        .await;
    ck.check(Op::GetPersonFields, s, &v);
    let (s, v) = c
        .call(
            Method::GET,
            &format!("/api/v2/personFields/{set_key}"),
            None,
        )
        .await;
    ck.check(Op::GetPersonField, s, &v);
    let (s, v) = c
        .call(
            Method::POST,
            "/api/v2/personFields",
            Some(json!({"field_name": "Short-lived", "field_type": "varchar"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let doomed = v["data"]["field_code"].as_str().unwrap().to_owned();
    let (s, v) = c
        .call(
            Method::DELETE,
            &format!("/api/v2/personFields/{doomed}"),
            None,
        )
        .await;
    ck.check(Op::DeletePersonField, s, &v);
    for (op, path) in [
        (Op::GetPersonFieldsV1, "/v1/personFields"),
        (Op::GetDealFieldsV1, "/api/v1/dealFields"),
        (Op::GetOrganizationFieldsV1, "/v1/organizationFields"),
        (Op::GetActivityFieldsV1, "/v1/activityFields"),
        (Op::GetProductFieldsV1, "/v1/productFields"),
    ] {
        let (s, v) = c.call(Method::GET, path, None).await;
        ck.check(op, s, &v);
    }

    // Persons.
    let tier = h.person_field_key("Customer tier").unwrap();
    let value = h.person_field_key("Lifetime value").unwrap();
    let full = json!({
        "name": "Conformance Person", "owner_id": 2, "org_id": 7, "visible_to": 7, "label_ids": [1, 2],
        "emails": [{"value": "c@example.com", "primary": true, "label": "work"}, {"value": "c@home.test", "label": "home"}],
        "phones": [{"value": "+44 20 7946 0000"}], "im": [{"value": "conf", "label": "skype"}],
        "postal_address": {"value": "1 Main St", "country": "UK", "postal_code": "N1"},
        "notes": "hello", "birthday": "1990-01-01", "job_title": "Tester", "marketing_status": "subscribed",
        "custom_fields": {tier.clone(): "Gold", value.clone(): {"value": 10, "currency": "EUR"}, set_key.clone(): [set_opt], ap_key.clone(): "ap-1"},
    });
    let (s, p) = c.call(Method::POST, "/api/v2/persons", Some(full)).await;
    ck.check(Op::AddPerson, s, &p);
    let pid = p["data"]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(Method::GET, &format!("/api/v2/persons/{pid}"), None)
        .await;
    ck.check(Op::GetPerson, s, &v);
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/api/v2/persons/{pid}"),
            Some(json!({"name": "Renamed Person", "custom_fields": {tier: null}})),
        )
        .await;
    ck.check(Op::UpdatePerson, s, &v);
    for q in [
        "",
        "?limit=7",
        "?sort_by=update_time&sort_direction=desc&limit=3",
        "?sort_by=add_time",
        "?updated_since=2000-01-01T00:00:00Z&owner_id=2",
        &format!("?custom_fields={ap_key}"),
        "?ids=1,2,3",
    ] {
        let (s, v) = c
            .call(Method::GET, &format!("/api/v2/persons{q}"), None)
            .await;
        ck.check(Op::GetPersons, s, &v);
    }
    for q in [
        "term=c%40example.com&fields=email&exact_match=true",
        "term=Renamed",
        "term=7946&fields=phone",
        "term=Gold&fields=custom_fields&limit=1",
    ] {
        let (s, v) = c
            .call(Method::GET, &format!("/api/v2/persons/search?{q}"), None)
            .await;
        ck.check(Op::SearchPersons, s, &v);
    }
    let (s, v) = c
        .call(
            Method::PUT,
            &format!("/v1/persons/{pid}/merge"),
            Some(json!({"merge_with_id": 1})),
        )
        .await;
    ck.check(Op::MergePersons, s, &v);
    let (s, v) = c.call(Method::DELETE, "/api/v2/persons/2", None).await;
    ck.check(Op::DeletePerson, s, &v);

    // Deals, stages, pipelines.
    let (s, d) = c.call(Method::POST, "/api/v2/deals", Some(json!({"title": "Deal", "person_id": 1, "value": 100.5, "currency": "USD", "expected_close_date": "2027-01-31", "probability": 50, "label_ids": [1]}))).await;
    ck.check(Op::AddDeal, s, &d);
    let did = d["data"]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/api/v2/deals/{did}"),
            Some(json!({"stage_id": 2, "status": "won"})),
        )
        .await;
    ck.check(Op::UpdateDeal, s, &v);
    let (s, v) = c
        .call(Method::GET, &format!("/api/v2/deals/{did}"), None)
        .await;
    ck.check(Op::GetDeal, s, &v);
    for q in ["", "?status=won", "?sort_by=update_time&limit=1"] {
        let (s, v) = c
            .call(Method::GET, &format!("/api/v2/deals{q}"), None)
            .await;
        ck.check(Op::GetDeals, s, &v);
    }
    let (_, d2) = c
        .call(
            Method::POST,
            "/api/v2/deals",
            Some(json!({"title": "Doomed"})),
        )
        .await;
    let (s, v) = c
        .call(
            Method::DELETE,
            &format!("/api/v2/deals/{}", d2["data"]["id"]),
            None,
        )
        .await;
    ck.check(Op::DeleteDeal, s, &v);
    let (s, v) = c.call(Method::GET, "/api/v2/stages", None).await;
    ck.check(Op::GetStages, s, &v);
    let (s, v) = c.call(Method::GET, "/api/v2/stages/3", None).await;
    ck.check(Op::GetStage, s, &v);
    let (s, v) = c.call(Method::GET, "/api/v2/pipelines", None).await;
    ck.check(Op::GetPipelines, s, &v);
    let (s, v) = c.call(Method::GET, "/api/v2/pipelines/1", None).await;
    ck.check(Op::GetPipeline, s, &v);

    // Activities.
    let (s, a) = c.call(Method::POST, "/api/v2/activities", Some(json!({
        "subject": "Call", "type": "call", "deal_id": did, "due_date": "2027-01-02", "due_time": "10:00", "duration": "00:30",
        "busy": true, "location": {"value": "Office"}, "participants": [{"person_id": 1, "primary": true}],
        "attendees": [{"email": "x@example.com", "name": "X"}], "public_description": "d", "priority": 1, "note": "n"
    }))).await;
    ck.check(Op::AddActivity, s, &a);
    let aid = a["data"]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/api/v2/activities/{aid}"),
            Some(json!({"done": true})),
        )
        .await;
    ck.check(Op::UpdateActivity, s, &v);
    let (s, v) = c
        .call(Method::GET, &format!("/api/v2/activities/{aid}"), None)
        .await;
    ck.check(Op::GetActivity, s, &v);
    for q in ["", "?person_id=1&done=true", "?sort_by=due_date"] {
        let (s, v) = c
            .call(Method::GET, &format!("/api/v2/activities{q}"), None)
            .await;
        ck.check(Op::GetActivities, s, &v);
    }
    let (_, a2) = c
        .call(
            Method::POST,
            "/api/v2/activities",
            Some(json!({"subject": "Doomed"})),
        )
        .await;
    let (s, v) = c
        .call(
            Method::DELETE,
            &format!("/api/v2/activities/{}", a2["data"]["id"]),
            None,
        )
        .await;
    ck.check(Op::DeleteActivity, s, &v);

    // Organizations, products, leads, notes, files and reference data.
    let (s, o) = c.call(Method::POST, "/api/v2/organizations", Some(json!({
        "name": "Conformance Org", "owner_id": 2, "visible_to": 3, "label_ids": [1],
        "address": {"value": "1 Main St, Tallinn", "locality": "Tallinn", "country": "Estonia"},
        "website": "https://example.com", "employee_count": 10,
    }))).await;
    ck.check(Op::AddOrganization, s, &o);
    let oid = o["data"]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/api/v2/organizations/{oid}"),
            Some(json!({"name": "Renamed Org"})),
        )
        .await;
    ck.check(Op::UpdateOrganization, s, &v);
    let (s, v) = c
        .call(Method::GET, &format!("/api/v2/organizations/{oid}"), None)
        .await;
    ck.check(Op::GetOrganization, s, &v);
    for q in [
        "",
        "?limit=1",
        "?sort_by=update_time&updated_since=2000-01-01T00:00:00Z",
        "?owner_id=2&ids=1,2",
    ] {
        let (s, v) = c
            .call(Method::GET, &format!("/api/v2/organizations{q}"), None)
            .await;
        ck.check(Op::GetOrganizations, s, &v);
    }
    let (s, v) = c
        .call(
            Method::GET,
            "/api/v2/organizations/search?term=renamed%20org&exact_match=true&fields=name",
            None,
        )
        .await;
    ck.check(Op::SearchOrganization, s, &v);
    assert_eq!(v["data"]["items"][0]["item"]["id"], oid, "{v}");
    let (s, v) = c
        .call(
            Method::GET,
            "/api/v2/organizations/search?term=Tallinn",
            None,
        )
        .await;
    ck.check(Op::SearchOrganization, s, &v);
    let (s, pr) = c.call(Method::POST, "/api/v2/products", Some(json!({
        "name": "Widget", "code": "W-1", "unit": "piece", "tax": 20, "prices": [{"price": 10, "currency": "EUR", "cost": 2, "notes": "list"}],
    }))).await;
    ck.check(Op::AddProduct, s, &pr);
    let prid = pr["data"]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/api/v2/products/{prid}"),
            Some(json!({"billing_frequency": "monthly", "billing_frequency_cycles": 12})),
        )
        .await;
    ck.check(Op::UpdateProduct, s, &v);
    let (s, v) = c
        .call(Method::GET, &format!("/api/v2/products/{prid}"), None)
        .await;
    ck.check(Op::GetProduct, s, &v);
    let (s, v) = c
        .call(Method::GET, "/api/v2/products?sort_by=update_time", None)
        .await;
    ck.check(Op::GetProducts, s, &v);
    let (s, v) = c.call(Method::GET, "/v1/leadLabels", None).await;
    ck.check(Op::GetLeadLabels, s, &v);
    let label = v["data"][0]["id"].as_str().unwrap().to_owned();
    let (s, l) = c
        .call(
            Method::POST,
            "/v1/leads",
            Some(json!({
                "title": "Lead", "person_id": 1, "organization_id": oid, "label_ids": [label],
                "value": {"amount": 100, "currency": "EUR"}, "expected_close_date": "2027-01-01",
            })),
        )
        .await;
    ck.check(Op::AddLead, s, &l);
    let lid = l["data"]["id"].as_str().unwrap().to_owned();
    let (s, v) = c
        .call(
            Method::PATCH,
            &format!("/v1/leads/{lid}"),
            Some(json!({"title": "Lead 2", "was_seen": true})),
        )
        .await;
    ck.check(Op::UpdateLead, s, &v);
    let (s, v) = c.call(Method::GET, &format!("/v1/leads/{lid}"), None).await;
    ck.check(Op::GetLead, s, &v);
    for q in [
        "",
        "?limit=1&start=0",
        "?sort=update_time%20DESC&person_id=1",
    ] {
        let (s, v) = c.call(Method::GET, &format!("/v1/leads{q}"), None).await;
        ck.check(Op::GetLeads, s, &v);
    }
    let (s, n) = c.call(Method::POST, "/v1/notes", Some(json!({"content": "Hello", "deal_id": did, "person_id": 1, "org_id": oid, "lead_id": lid, "pinned_to_deal_flag": 1}))).await;
    ck.check(Op::AddNote, s, &n);
    let nid = n["data"]["id"].as_i64().unwrap();
    let (s, v) = c
        .call(
            Method::PUT,
            &format!("/v1/notes/{nid}"),
            Some(json!({"content": "Hello again"})),
        )
        .await;
    ck.check(Op::UpdateNote, s, &v);
    let (s, v) = c.call(Method::GET, &format!("/v1/notes/{nid}"), None).await;
    ck.check(Op::GetNote, s, &v);
    for q in [
        "",
        "?limit=1",
        "?sort=update_time%20DESC&updated_since=2000-01-01T00:00:00Z&deal_id=1",
    ] {
        let (s, v) = c.call(Method::GET, &format!("/v1/notes{q}"), None).await;
        ck.check(Op::GetNotes, s, &v);
    }
    let fid = h.add_file("proposal.pdf", Some(did), Some(1), Some(oid));
    h.add_file("other.pdf", None, Some(1), None);
    for q in ["", "?limit=1", "?sort=update_time%20DESC"] {
        let (s, v) = c.call(Method::GET, &format!("/v1/files{q}"), None).await;
        ck.check(Op::GetFiles, s, &v);
    }
    let (s, v) = c.call(Method::GET, &format!("/v1/files/{fid}"), None).await;
    ck.check(Op::GetFile, s, &v);
    let (s, v) = c
        .call(Method::DELETE, &format!("/v1/files/{fid}"), None)
        .await;
    ck.check(Op::DeleteFile, s, &v);
    for (op, path) in [
        (Op::GetActivityTypes, "/v1/activityTypes"),
        (Op::GetCurrencies, "/v1/currencies"),
        (Op::GetCurrencies, "/v1/currencies?term=eu"),
        (Op::GetFilters, "/v1/filters"),
        (Op::GetFilters, "/v1/filters?type=deals"),
        (Op::GetNoteFieldsV1, "/v1/noteFields"),
        (Op::GetDealFields, "/api/v2/dealFields"),
        (
            Op::GetOrganizationFields,
            "/api/v2/organizationFields?limit=3",
        ),
        (Op::GetProductFields, "/api/v2/productFields"),
        (Op::GetActivityFields, "/api/v2/activityFields"),
    ] {
        let (s, v) = c.call(Method::GET, path, None).await;
        ck.check(op, s, &v);
    }
    let (_, v) = c
        .call(Method::GET, "/api/v2/dealFields?limit=500", None)
        .await;
    let code = v["data"].as_array().unwrap().last().unwrap()["field_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = c
        .call(Method::GET, &format!("/api/v2/dealFields/{code}"), None)
        .await;
    ck.check(Op::GetDealField, s, &v);
    let (s, v) = c
        .call(
            Method::POST,
            "/api/v2/organizationFields",
            Some(json!({"field_name": "Tier", "field_type": "varchar"})),
        )
        .await;
    ck.check(Op::AddOrganizationField, s, &v);
    let (_, v) = c
        .call(Method::GET, "/api/v2/organizationFields?limit=500", None)
        .await;
    let code = v["data"].as_array().unwrap().last().unwrap()["field_code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, v) = c
        .call(
            Method::GET,
            &format!("/api/v2/organizationFields/{code}"),
            None,
        )
        .await;
    ck.check(Op::GetOrganizationField, s, &v);
    let (s, v) = c
        .call(Method::GET, "/api/v2/productFields/name", None)
        .await;
    ck.check(Op::GetProductField, s, &v);
    let (s, v) = c
        .call(Method::DELETE, &format!("/v1/notes/{nid}"), None)
        .await;
    ck.check(Op::DeleteNote, s, &v);
    let (s, v) = c
        .call(Method::DELETE, &format!("/v1/leads/{lid}"), None)
        .await;
    ck.check(Op::DeleteLead, s, &v);
    let (s, v) = c.call(Method::GET, &format!("/v1/leads/{lid}"), None).await;
    ck.check(Op::GetLead, s, &v);
    let (s, v) = c
        .call(Method::DELETE, &format!("/api/v2/products/{prid}"), None)
        .await;
    ck.check(Op::DeleteProduct, s, &v);
    let (s, v) = c
        .call(
            Method::DELETE,
            &format!("/api/v2/organizations/{oid}"),
            None,
        )
        .await;
    ck.check(Op::DeleteOrganization, s, &v);

    // Recents, after all of the above.
    let (s, v) = c.call(Method::GET, "/v1/recents?since_timestamp=2000-01-01%2000:00:00&items=person,deal,activity&limit=500", None).await;
    ck.check(Op::GetRecents, s, &v);
    let (s, v) = c
        .call(
            Method::GET,
            "/v1/recents?since_timestamp=2000-01-01+00:00:00&limit=2",
            None,
        )
        .await;
    ck.check(Op::GetRecents, s, &v);
    let (s, v) = c
        .call(
            Method::GET,
            "/v1/recents?since_timestamp=2000-01-01+00:00:00&items=activityType,filter,pipeline,stage,user",
            None,
        )
        .await;
    ck.check(Op::GetRecents, s, &v);

    assert!(
        ck.errors.is_empty(),
        "responses that do not match the documents:\n{}",
        ck.errors.join("\n")
    );
    let missing: Vec<&str> = Op::ALL
        .iter()
        .filter(|op| op.spec().is_some() && !op.is_legacy() && !ck.covered.contains(op))
        .map(|op| op.name())
        .collect();
    assert!(missing.is_empty(), "operations not exercised: {missing:?}");
}

#[test]
fn the_validator_rejects_what_the_documents_forbid() {
    let doc = json!({"components": {"schemas": {"P": {"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer"}, "n": {"type": "string", "nullable": true}, "k": {"type": "string", "enum": ["a", "b"]},
        "o": {"oneOf": [{"type": "integer"}, {"type": "string"}]}, "t": {"type": "string", "format": "date-time"}}}}}});
    let v = Validator { doc: &doc };
    let s = json!({"$ref": "#/components/schemas/P"});
    let ok = |x: Value| v.accepts(&s, &x, "$");
    assert!(ok(
        json!({"id": 1, "n": null, "k": "a", "o": 1, "t": "2026-01-01T00:00:00Z", "extra": true})
    ));
    assert!(!ok(json!({"n": "x"})), "required");
    assert!(!ok(json!({"id": "1"})), "type");
    assert!(!ok(json!({"id": 1, "k": "c"})), "enum");
    assert!(!ok(json!({"id": null})), "nullable");
    assert!(!ok(json!({"id": 1, "o": true})), "oneOf");
    assert!(!ok(json!({"id": 1, "t": "2026-01-01 00:00:00"})), "format");
}

/// The legacy v1 reads (`--legacy-v1`) answer as the January 2026 v1 document describes them:
/// every one of them validated against its schema, `start`/`limit` pages that add up to every
/// record, custom fields as top-level hash keys, v1 times, `related_objects`.
#[tokio::test]
async fn legacy_v1_reads_answer_as_the_january_2026_document_describes() {
    use reqwest::Method;
    let docs = Docs {
        v1: Value::Null,
        v2: Value::Null,
        legacy: load(LEGACY),
    };
    let mut ck = Checker {
        docs: &docs,
        covered: BTreeSet::new(),
        errors: Vec::new(),
    };
    let sim = pipedrive_sim::start(SimConfig {
        persons: 30,
        objects: pipedrive_sim::SeedCounts {
            organizations: 12,
            deals: 25,
            activities: 40,
            notes: 10,
            leads: 2,
            products: 7,
        },
        legacy_v1: true,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: sim.base_url().to_owned(),
    };
    let lists = [
        (Op::GetDealsLegacy, "/v1/deals", 25usize),
        (Op::GetPersonsLegacy, "/api/v1/persons", 30),
        (Op::GetOrganizationsLegacy, "/v1/organizations", 12),
        (Op::GetActivitiesLegacy, "/v1/activities?user_id=0", 40),
        (Op::GetProductsLegacy, "/v1/products", 7),
    ];
    for (op, path, total) in lists {
        // Pages of 10 with `start`, then one page of up to 500: the same records.
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut ids = Vec::new();
        let mut start = 0;
        loop {
            let (s, v) = c
                .call(
                    Method::GET,
                    &format!("{path}{sep}start={start}&limit=10"),
                    None,
                )
                .await;
            assert_eq!(s, 200, "{path}: {v}");
            ck.check(op, s, &v);
            for item in v["data"].as_array().unwrap() {
                ids.push(item["id"].as_i64().unwrap());
                let t = item["update_time"].as_str().unwrap();
                assert!(
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").is_ok(),
                    "{path}: v1 time, not {t}"
                );
            }
            let p = &v["additional_data"]["pagination"];
            assert_eq!(p["start"], json!(start));
            assert_eq!(p["limit"], json!(10));
            if p["more_items_in_collection"] == json!(true) {
                start = p["next_start"].as_u64().unwrap() as usize;
            } else {
                assert!(
                    p.get("next_start").is_none(),
                    "{path}: no next_start on the last page"
                );
                break;
            }
        }
        assert_eq!(ids.len(), total, "{path}: every record once");
        let (s, v) = c
            .call(Method::GET, &format!("{path}{sep}limit=500"), None)
            .await;
        assert_eq!(s, 200);
        let all: Vec<i64> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect();
        assert_eq!(all, ids, "{path}: the same records in one page of 500");
        let (s, _) = c
            .call(Method::GET, &format!("{path}{sep}limit=501"), None)
            .await;
        assert_eq!(s, 400, "{path}: at most 500 per page");
    }

    // Deals: owner, person and organization as objects, custom fields at the top level,
    // the page's related objects.
    let (_, v) = c.call(Method::GET, "/v1/deals?limit=500", None).await;
    let deal = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["person_id"].is_object() && d["org_id"].is_object())
        .expect("a deal with a person and an organization")
        .clone();
    assert_eq!(deal["user_id"]["value"], deal["user_id"]["id"]);
    let person = deal["person_id"]["value"].to_string();
    let org = deal["org_id"]["value"].to_string();
    assert!(v["related_objects"]["person"][&person].is_object());
    assert!(v["related_objects"]["organization"][&org].is_object());
    assert!(v["related_objects"]["user"].is_object());
    let hash_keys = |o: &Value| {
        o.as_object()
            .unwrap()
            .keys()
            .filter(|k| k.len() == 40 && k.bytes().all(|b| b.is_ascii_hexdigit()))
            .count()
    };
    assert!(
        hash_keys(&deal) > 0,
        "custom fields as top-level hash keys: {deal}"
    );
    assert!(deal.get("custom_fields").is_none());
    let (_, v) = c.call(Method::GET, "/v1/persons?limit=1", None).await;
    assert!(hash_keys(&v["data"][0]) > 0);
    let (_, v) = c.call(Method::GET, "/v1/organizations?limit=1", None).await;
    assert!(hash_keys(&v["data"][0]) > 0);

    // Single reads, a deal's products and updates.
    let id = deal["id"].as_i64().unwrap();
    let singles = [
        (Op::GetDealLegacy, format!("/v1/deals/{id}")),
        (
            Op::GetDealProductsLegacy,
            format!("/v1/deals/{id}/products"),
        ),
        (Op::GetDealUpdatesLegacy, format!("/v1/deals/{id}/flow")),
        (Op::GetPersonLegacy, format!("/v1/persons/{person}")),
        (
            Op::GetOrganizationLegacy,
            format!("/v1/organizations/{org}"),
        ),
    ];
    for (op, path) in singles {
        let (s, v) = c.call(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        ck.check(op, s, &v);
    }
    let (_, acts) = c
        .call(Method::GET, "/v1/activities?user_id=0&limit=1", None)
        .await;
    let (_, prods) = c.call(Method::GET, "/v1/products?limit=1", None).await;
    for (op, path) in [
        (
            Op::GetActivityLegacy,
            format!("/v1/activities/{}", acts["data"][0]["id"]),
        ),
        (
            Op::GetProductLegacy,
            format!("/v1/products/{}", prods["data"][0]["id"]),
        ),
    ] {
        let (s, v) = c.call(Method::GET, &path, None).await;
        assert_eq!(s, 200, "{path}: {v}");
        ck.check(op, s, &v);
    }
    let (s, _) = c.call(Method::GET, "/v1/deals/999999", None).await;
    assert_eq!(s, 404);
    // What v2 replaced and the legacy flag does not bring back is still gone.
    let (s, _) = c
        .call(Method::GET, "/v1/persons/search?term=ab", None)
        .await;
    assert_eq!(s, 410);

    assert!(
        ck.errors.is_empty(),
        "legacy v1 responses that do not match the January 2026 document:\n{}",
        ck.errors.join("\n")
    );
    let missing: Vec<&str> = Op::ALL
        .iter()
        .filter(|op| op.is_legacy() && !ck.covered.contains(op))
        .map(|op| op.name())
        .collect();
    assert!(
        missing.is_empty(),
        "legacy operations not exercised: {missing:?}"
    );
}

#[tokio::test]
async fn without_the_legacy_flag_the_legacy_v1_reads_are_gone() {
    let sim = pipedrive_sim::start(SimConfig {
        persons: 3,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let c = Client {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        base: sim.base_url().to_owned(),
    };
    for path in [
        "/v1/deals",
        "/v1/persons",
        "/v1/organizations",
        "/v1/activities",
        "/v1/products",
        "/v1/deals/1/products",
        "/v1/deals/1/flow",
        "/v1/persons/1",
    ] {
        let (s, _) = c.call(reqwest::Method::GET, path, None).await;
        assert_eq!(s, 410, "{path}");
    }
}
