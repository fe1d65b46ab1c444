//! Behaviour tests: each starts a simulator on 127.0.0.1:0 and talks HTTP to it.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine;
use reqwest::{Method, StatusCode};
use salesforce_sim::{
    DuplicateRule, FaultSpec, OrgKind, Permissions, SfSim, SfSimConfig, SfSimHandle,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const V: &str = "/services/data/v59.0";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sim() -> SfSim {
    salesforce_sim::start(SfSimConfig::default()).await.unwrap()
}

async fn sim_with(config: SfSimConfig) -> SfSim {
    salesforce_sim::start(config).await.unwrap()
}

/// A session in an org, with helpers for API calls.
struct Api {
    base: String,
    token: String,
}

impl Api {
    fn new(h: &SfSimHandle, org: OrgKind, user: Option<&str>) -> Api {
        let t = h.issue_tokens(org, user).unwrap();
        Api {
            base: t.instance_url,
            token: t.access_token,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.call_with(method, path, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut r = client().request(method, url).bearer_auth(&self.token);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::GET, path, None).await;
        (s, v)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::POST, path, Some(body)).await;
        (s, v)
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::PATCH, path, Some(body)).await;
        (s, v)
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call(Method::DELETE, path, None).await;
        (s, v)
    }

    async fn query(&self, soql: &str) -> (StatusCode, Value) {
        let q: String = url::form_urlencoded::byte_serialize(soql.as_bytes()).collect();
        self.get(&format!("{V}/query?q={q}")).await
    }

    async fn lead(&self, last: &str, email: &str) -> String {
        let (s, v) = self
            .post(
                &format!("{V}/sobjects/Lead/"),
                json!({"LastName": last, "Company": "Acme", "Email": email}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_owned()
    }
}

fn code(v: &Value) -> &str {
    v[0]["errorCode"].as_str().unwrap_or("")
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn authorize(sim: &SfSim, sandbox: bool, verifier: &str) -> String {
    let url = format!(
        "{}/services/oauth2/authorize?response_type=code&client_id=sim-consumer-key&redirect_uri={}&state=xyz&code_challenge={}&code_challenge_method=S256",
        sim.login_url(sandbox),
        "http%3A%2F%2F127.0.0.1%3A9%2Fcb",
        challenge(verifier)
    );
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.starts_with("http://127.0.0.1:9/cb?"), "{loc}");
    let u = url::Url::parse(&loc).unwrap();
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "xyz");
    q["code"].clone()
}

async fn token(sim: &SfSim, sandbox: bool, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let r = client()
        .post(format!("{}/services/oauth2/token", sim.login_url(sandbox)))
        .form(form)
        .send()
        .await
        .unwrap();
    let s = r.status();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_web_server_flow_with_pkce_issues_tokens_that_work_on_the_instance() {
    let sim = sim().await;
    let code = authorize(&sim, false, "verifier-0123456789-0123456789-0123456789-xyz").await;
    let (s, t) = token(
        &sim,
        false,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            (
                "code_verifier",
                "verifier-0123456789-0123456789-0123456789-xyz",
            ),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{t}");
    for k in [
        "access_token",
        "refresh_token",
        "instance_url",
        "id",
        "issued_at",
        "signature",
        "token_type",
    ] {
        assert!(t[k].is_string(), "{k} missing in {t}");
    }
    assert_eq!(t["instance_url"], sim.instance_url());
    assert!(t["id"].as_str().unwrap().starts_with(sim.login_url(false)));
    assert_eq!(t["issued_at"].as_str().unwrap().len(), 13);
    let api = Api {
        base: t["instance_url"].as_str().unwrap().to_owned(),
        token: t["access_token"].as_str().unwrap().to_owned(),
    };
    let (s, _) = api.get(&format!("{V}/limits")).await;
    assert_eq!(s, StatusCode::OK);
    // The code is single use.
    let (s, e) = token(
        &sim,
        false,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            (
                "code_verifier",
                "verifier-0123456789-0123456789-0123456789-xyz",
            ),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], "invalid_grant");
    // Refresh gives a new session and no new refresh token.
    let rt = t["refresh_token"].as_str().unwrap();
    let (s, r) = token(
        &sim,
        false,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(r.get("refresh_token").is_none());
    assert_ne!(r["access_token"], t["access_token"]);
    // Revoking the refresh token ends its sessions too.
    let rv = client()
        .post(format!("{}/services/oauth2/revoke", sim.login_url(false)))
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(rv.status(), StatusCode::OK);
    let (s, e) = api.get(&format!("{V}/limits")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        e,
        json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    );
    let (s, e) = token(
        &sim,
        false,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        e,
        json!({"error": "invalid_grant", "error_description": "expired access/refresh token"})
    );
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused() {
    let sim = sim().await;
    let code = authorize(&sim, false, "the-right-verifier-0123456789-0123456789-abc").await;
    let (s, e) = token(
        &sim,
        false,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            (
                "code_verifier",
                "a-wrong-verifier-0123456789-0123456789-abcde",
            ),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], "invalid_grant");
    let (s, e) = token(
        &sim,
        false,
        &[
            ("grant_type", "authorization_code"),
            ("code", "nope"),
            ("client_id", "someone-else"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], "invalid_client_id");
}

#[tokio::test]
async fn sandbox_and_production_are_separate_orgs_with_their_own_login_hosts() {
    let sim = sim().await;
    let code = authorize(&sim, true, "sandbox-verifier-0123456789-0123456789-0123").await;
    let (s, t) = token(
        &sim,
        true,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            (
                "code_verifier",
                "sandbox-verifier-0123456789-0123456789-0123",
            ),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(t["id"].as_str().unwrap().starts_with(sim.login_url(true)));
    let sandbox = Api {
        base: t["instance_url"].as_str().unwrap().to_owned(),
        token: t["access_token"].as_str().unwrap().to_owned(),
    };
    let prod = Api::new(&sim.handle(), OrgKind::Production, None);
    sandbox
        .lead("Sandboxed", "only.in.sandbox@example.com")
        .await;
    let (_, v) = prod
        .query("SELECT Id FROM Lead WHERE Email = 'only.in.sandbox@example.com'")
        .await;
    assert_eq!(v["totalSize"], 0);
    let (_, v) = sandbox
        .query("SELECT Id FROM Lead WHERE Email = 'only.in.sandbox@example.com'")
        .await;
    assert_eq!(v["totalSize"], 1);
    // A production code is not accepted by the sandbox's token endpoint either way round:
    // codes belong to the org that issued them, and the data follows the session.
    assert_eq!(
        sim.handle()
            .ids_by_email(OrgKind::Production, "Lead", "only.in.sandbox@example.com")
            .len(),
        0
    );
}

#[tokio::test]
async fn sessions_expire_after_their_lifetime_and_a_refresh_recovers() {
    let sim = sim().await;
    let h = sim.handle();
    let t = h.issue_tokens(OrgKind::Production, None).unwrap();
    let api = Api {
        base: t.instance_url.clone(),
        token: t.access_token.clone(),
    };
    assert_eq!(api.get(&format!("{V}/limits")).await.0, StatusCode::OK);
    h.advance_clock(Duration::from_secs(2 * 3600 + 1));
    let (s, e) = api.get(&format!("{V}/limits")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&e), "INVALID_SESSION_ID");
    let (s, r) = token(
        &sim,
        false,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &t.refresh_token),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let api2 = Api {
        base: t.instance_url,
        token: r["access_token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(api2.get(&format!("{V}/limits")).await.0, StatusCode::OK);
    // Rotation: the old token stops working, the new one works.
    let new = h.rotate_session(&api2.token).unwrap();
    assert_eq!(
        api2.get(&format!("{V}/limits")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let api3 = Api {
        base: api2.base.clone(),
        token: new,
    };
    assert_eq!(api3.get(&format!("{V}/limits")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn userinfo_and_the_identity_url_describe_the_session_user() {
    let sim = sim().await;
    let h = sim.handle();
    let t = h.issue_tokens(OrgKind::Production, None).unwrap();
    let r = client()
        .get(format!("{}/services/oauth2/userinfo", sim.login_url(false)))
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["user_id"], h.admin_user(OrgKind::Production));
    let r = client()
        .get(&t.id)
        .bearer_auth(&t.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .get(format!("{}/services/oauth2/userinfo", sim.login_url(false)))
        .bearer_auth("bogus")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_lead_is_created_read_updated_and_deleted_with_or_without_trailing_slashes() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    let id = api.lead("Lovelace", "ada@example.com").await;
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("00Q"));
    let (s, v) = api.get(&format!("{V}/sobjects/Lead/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["attributes"]["type"], "Lead");
    assert_eq!(v["attributes"]["url"], format!("{V}/sobjects/Lead/{id}"));
    assert_eq!(v["IsDeleted"], false);
    assert_eq!(v["IsConverted"], false);
    assert_eq!(v["OwnerId"], h.admin_user(OrgKind::Production));
    assert_eq!(v["Status"], "Open - Not Contacted");
    let stamp = v["SystemModstamp"].as_str().unwrap().to_owned();
    assert!(
        stamp.ends_with(".000+0000") || stamp.contains('.'),
        "{stamp}"
    );
    h.advance_clock(Duration::from_secs(5));
    let (s, v) = api
        .patch(
            &format!("{V}/sobjects/Lead/{id}/"),
            json!({"Title": "Countess"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, v) = api
        .get(&format!(
            "{V}/sobjects/Lead/{id}?fields=Title,SystemModstamp"
        ))
        .await;
    assert_eq!(v["Title"], "Countess");
    assert_ne!(v["SystemModstamp"], stamp);
    assert!(v.get("Email").is_none());
    let (s, _) = api.delete(&format!("{V}/sobjects/Lead/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, e) = api.get(&format!("{V}/sobjects/Lead/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(code(&e), "ENTITY_IS_DELETED");
}

#[tokio::test]
async fn errors_come_as_salesforce_error_arrays_with_their_statuses() {
    let sim = sim().await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "NoCompany"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        e,
        json!([{"message": "Required fields are missing: [Company]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["Company"]}])
    );
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y", "Bogus__c": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_FIELD");
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y", "SystemModstamp": "2024-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(e[0]["fields"], json!(["SystemModstamp"]));
    let (s, e) = api
        .get(&format!("{V}/sobjects/Lead/00Q5g0000000000ZZZ"))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(code(&e), "NOT_FOUND");
    let (s, e) = api.get(&format!("{V}/sobjects/Nope/describe")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(code(&e), "NOT_FOUND");
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y", "Email": "not-an-email"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_EMAIL_ADDRESS");
}

#[tokio::test]
async fn upsert_by_external_id_creates_then_updates_and_reports_ambiguity_with_300() {
    let sim = sim().await;
    let h = sim.handle();
    h.add_custom_field(
        OrgKind::Production,
        "Lead",
        "Pipedrive_Id__c",
        json!({"type": "Text", "length": 40, "externalId": true}),
    )
    .unwrap();
    let admin = h.admin_user(OrgKind::Production);
    h.grant_field_access(
        OrgKind::Production,
        &admin,
        "Lead.Pipedrive_Id__c",
        true,
        true,
    )
    .unwrap();
    let api = Api::new(&h, OrgKind::Production, None);
    let path = format!("{V}/sobjects/Lead/Pipedrive_Id__c/pd-1");
    let (s, v) = api
        .patch(&path, json!({"LastName": "Hopper", "Company": "Navy"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], true);
    let id = v["id"].as_str().unwrap().to_owned();
    let (s, v) = api.patch(&path, json!({"Title": "Admiral"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"id": id, "success": true, "errors": [], "created": false})
    );
    let (s, v) = api.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["Title"], "Admiral");
    // Not unique: a second record with the same value makes the upsert ambiguous.
    h.insert_record(
        OrgKind::Production,
        "Lead",
        json!({"LastName": "Twin", "Company": "Navy", "Pipedrive_Id__c": "pd-1"}),
    )
    .unwrap();
    let (s, v) = api.patch(&path, json!({"Title": "x"})).await;
    assert_eq!(s, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (s, e) = api
        .patch(&format!("{V}/sobjects/Lead/Email/x@y.com"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(code(&e), "NOT_FOUND");
}

#[tokio::test]
async fn describe_lists_fields_and_field_level_security_of_the_session_user() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    let (s, d) = api.get(&format!("{V}/sobjects/Lead/describe")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["keyPrefix"], "00Q");
    let field = |d: &Value, n: &str| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == n)
            .cloned()
            .unwrap()
    };
    let email = field(&d, "Email");
    assert_eq!(email["type"], "email");
    assert_eq!(email["updateable"], true);
    assert_eq!(email["nillable"], true);
    assert_eq!(field(&d, "SystemModstamp")["updateable"], false);
    assert_eq!(field(&d, "LastName")["nillable"], false);
    assert!(
        field(&d, "Status")["picklistValues"]
            .as_array()
            .unwrap()
            .len()
            >= 4
    );
    // Restricting Title on the admin's profile shows in describe and refuses writes.
    let admin = h.admin_user(OrgKind::Production);
    h.grant_field_access(OrgKind::Production, &admin, "Lead.Title", true, false)
        .unwrap();
    let (_, d) = api.get(&format!("{V}/sobjects/Lead/describe")).await;
    assert_eq!(field(&d, "Title")["updateable"], false);
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y", "Title": "Boss"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(e[0]["fields"], json!(["Title"]));
}

#[tokio::test]
async fn a_tasks_type_is_an_optional_picklist_written_read_and_hidden_by_field_level_security() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    let (s, d) = api.get(&format!("{V}/sobjects/Task/describe")).await;
    assert_eq!(s, StatusCode::OK);
    let field = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Type")
        .cloned()
        .expect("Task has Type");
    assert_eq!(field["type"], "picklist");
    assert_eq!(
        (
            &field["nillable"],
            &field["createable"],
            &field["updateable"]
        ),
        (&json!(true), &json!(true), &json!(true))
    );
    let values: Vec<&str> = field["picklistValues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["Call", "Email", "Meeting", "Other"]);

    let who = api.lead("Typed", "typed@example.com").await;
    let (s, v) = api
        .post(
            &format!("{V}/sobjects/Task"),
            json!({"Subject": "Call back", "WhoId": who, "Type": "Call"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let task = v["id"].as_str().unwrap().to_owned();
    let (s, v) = api
        .post(
            &format!("{V}/sobjects/Task"),
            json!({"Subject": "No type", "WhoId": who}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, q) = api
        .query("SELECT Id, Type FROM Task WHERE Type = 'Call'")
        .await;
    assert_eq!(q["totalSize"], 1, "{q}");
    assert_eq!(q["records"][0]["Type"], "Call");
    let (s, v) = api
        .patch(
            &format!("{V}/sobjects/Task/{task}"),
            json!({"Type": "Meeting"}),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (_, r) = api.get(&format!("{V}/sobjects/Task/{task}")).await;
    assert_eq!(r["Type"], "Meeting");
    let (_, q) = api.query("SELECT Id FROM Task WHERE Type = null").await;
    assert_eq!(q["totalSize"], 1, "the Task without a type: {q}");

    // Hidden from the session user: not in describe, and a query naming it is refused.
    let admin = h.admin_user(OrgKind::Production);
    h.grant_field_access(OrgKind::Production, &admin, "Task.Type", false, false)
        .unwrap();
    let (_, d) = api.get(&format!("{V}/sobjects/Task/describe")).await;
    assert!(
        !d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "Type"),
        "{d}"
    );
    let (s, e) = api.query("SELECT Id, Type FROM Task").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_FIELD");
}

#[tokio::test]
async fn queries_filter_order_limit_and_page_through_next_records_url() {
    let sim = sim_with(SfSimConfig {
        leads: 450,
        ..SfSimConfig::default()
    })
    .await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let (s, v) = api.query("SELECT COUNT() FROM Lead").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["totalSize"], 450);
    let q: String = url::form_urlencoded::byte_serialize(
        b"select Id, Email, SystemModstamp from Lead order by SystemModstamp, Id",
    )
    .collect();
    let (s, _, v) = api
        .call_with(
            Method::GET,
            &format!("{V}/query/?q={q}"),
            None,
            &[("Sforce-Query-Options", "batchSize=200")],
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["totalSize"], 450);
    assert_eq!(v["done"], false);
    let mut seen: Vec<Value> = v["records"].as_array().unwrap().clone();
    assert_eq!(seen.len(), 200);
    let mut next = v["nextRecordsUrl"].as_str().unwrap().to_owned();
    assert!(next.starts_with(&format!("{V}/query/01g")));
    loop {
        let (s, page) = api.get(&next).await;
        assert_eq!(s, StatusCode::OK);
        seen.extend(page["records"].as_array().unwrap().iter().cloned());
        if page["done"] == true {
            assert!(page.get("nextRecordsUrl").is_none());
            break;
        }
        next = page["nextRecordsUrl"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen.len(), 450);
    let stamps: Vec<&str> = seen
        .iter()
        .map(|r| r["SystemModstamp"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(seen[0]["attributes"]["type"], "Lead");
    // Filters: IN, LIKE, datetime literals, AND/OR with parentheses, LIMIT.
    let first = seen[0]["Email"].as_str().unwrap();
    let second = seen[1]["Email"].as_str().unwrap();
    let (_, v) = api
        .query(&format!(
            "SELECT Id FROM Lead WHERE Email IN ('{}', '{}')",
            first.to_uppercase(),
            second
        ))
        .await;
    assert_eq!(v["totalSize"], 2);
    let (_, v) = api.query("SELECT Id FROM Lead WHERE SystemModstamp > 2000-01-01T00:00:00Z AND (Email LIKE 'ada%' OR Email LIKE 'grace%') LIMIT 5").await;
    assert!(v["totalSize"].as_u64().unwrap() <= 5);
    let (_, v) = api
        .query("SELECT Id FROM Lead WHERE SystemModstamp > 2999-01-01T00:00:00Z")
        .await;
    assert_eq!(v["totalSize"], 0);
    assert_eq!(v["done"], true);
}

#[tokio::test]
async fn malformed_queries_and_unknown_fields_are_reported_as_salesforce_does() {
    let sim = sim().await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let (s, e) = api.query("SELECT Id FORM Lead").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "MALFORMED_QUERY");
    assert!(e[0]["message"]
        .as_str()
        .unwrap()
        .contains("ERROR at Row:1:Column:11"));
    let (s, e) = api.query("SELECT Id, Nope__c FROM Lead").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_FIELD");
    assert!(e[0]["message"]
        .as_str()
        .unwrap()
        .contains("No such column 'Nope__c' on entity 'Lead'"));
    let (_, e) = api.query("SELECT Id FROM Lead WHERE Email = 5").await;
    assert_eq!(code(&e), "INVALID_FIELD");
    let (_, e) = api.query("SELECT Id FROM Leed").await;
    assert_eq!(code(&e), "INVALID_TYPE");
    let (_, e) = api
        .query("SELECT Id FROM Lead WHERE A = 1 AND B = 2 OR C = 3")
        .await;
    assert_eq!(code(&e), "MALFORMED_QUERY");
}

#[tokio::test]
async fn a_query_names_a_parents_field_through_a_lookup_as_a_nested_record_or_null() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    let (s, account) = api
        .post(
            &format!("{V}/sobjects/Account/"),
            json!({"Name": "Initech"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{account}");
    let account = account["id"].as_str().unwrap().to_owned();
    for (last, parent) in [("Gibbons", Some(account.as_str())), ("Waddams", None)] {
        let mut body = json!({"LastName": last, "Email": format!("{last}@initech.example")});
        if let Some(parent) = parent {
            body["AccountId"] = json!(parent);
        }
        let (s, v) = api.post(&format!("{V}/sobjects/Contact/"), body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = api
        .query("SELECT LastName, AccountId, account.Name FROM Contact ORDER BY LastName")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let gibbons = &v["records"][0];
    assert_eq!(gibbons["LastName"], "Gibbons");
    assert_eq!(gibbons["Account"]["Name"], "Initech", "{gibbons}");
    assert_eq!(gibbons["Account"]["attributes"]["type"], "Account");
    assert!(gibbons["Account"]["attributes"]["url"]
        .as_str()
        .unwrap()
        .ends_with(&format!("/sobjects/Account/{account}")));
    let waddams = &v["records"][1];
    assert!(
        waddams.as_object().unwrap().contains_key("Account") && waddams["Account"].is_null(),
        "{waddams}"
    );
    // An unknown relationship, or a field the parent lacks, is refused as Salesforce does.
    let (s, e) = api.query("SELECT Acount.Name FROM Contact").await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "INVALID_FIELD"));
    assert!(e[0]["message"]
        .as_str()
        .unwrap()
        .contains("Didn't understand relationship 'Acount'"));
    let (s, e) = api.query("SELECT Account.Nmae FROM Contact").await;
    assert_eq!((s, code(&e)), (StatusCode::BAD_REQUEST, "INVALID_FIELD"));
}

#[tokio::test]
async fn query_all_updated_and_deleted_show_deleted_records_in_their_windows() {
    let sim = sim().await;
    let h = sim.handle();
    h.freeze_clock(true);
    let api = Api::new(&h, OrgKind::Production, None);
    let start = chrono::DateTime::from_timestamp_millis(h.now_ms() - 120_000).unwrap();
    let a = api.lead("Keep", "keep@example.com").await;
    let b = api.lead("Drop", "drop@example.com").await;
    h.advance_clock(Duration::from_secs(61));
    api.delete(&format!("{V}/sobjects/Lead/{b}")).await;
    h.advance_clock(Duration::from_secs(120));
    let (_, v) = api.query("SELECT Id FROM Lead").await;
    assert_eq!(v["totalSize"], 1);
    let q: String = url::form_urlencoded::byte_serialize(
        b"SELECT Id, IsDeleted FROM Lead WHERE IsDeleted = true",
    )
    .collect();
    let (_, v) = api.get(&format!("{V}/queryAll?q={q}")).await;
    assert_eq!(v["totalSize"], 1);
    assert_eq!(v["records"][0]["Id"], b);
    let enc = |d: chrono::DateTime<chrono::Utc>| -> String {
        url::form_urlencoded::byte_serialize(
            d.format("%Y-%m-%dT%H:%M:%S+00:00").to_string().as_bytes(),
        )
        .collect()
    };
    let end = chrono::DateTime::from_timestamp_millis(h.now_ms() + 60_000).unwrap();
    let (s, v) = api
        .get(&format!(
            "{V}/sobjects/Lead/updated/?start={}&end={}",
            enc(start),
            enc(end)
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ids"], json!([a]));
    assert!(v["latestDateCovered"].as_str().unwrap().ends_with("+0000"));
    let (s, v) = api
        .get(&format!(
            "{V}/sobjects/Lead/deleted/?start={}&end={}",
            enc(start),
            enc(end)
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["deletedRecords"][0]["id"], b);
    assert!(v["earliestDateAvailable"].is_string());
    let old = chrono::DateTime::from_timestamp_millis(h.now_ms() - 40 * 86_400_000).unwrap();
    let (s, e) = api
        .get(&format!(
            "{V}/sobjects/Lead/updated/?start={}&end={}",
            enc(old),
            enc(end)
        ))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_REPLICATION_DATE");
}

#[tokio::test]
async fn composite_sobjects_takes_200_records_and_refuses_201() {
    let sim = sim().await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let records = |n: usize, tag: &str| -> Vec<Value> {
        (0..n).map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("{tag}{i}"), "Email": format!("{tag}{i}@example.com")})).collect()
    };
    let (s, v) = api
        .post(
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": false, "records": records(200, "ok")}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let v = v.as_array().unwrap();
    assert_eq!(v.len(), 200);
    assert!(v
        .iter()
        .all(|r| r["success"] == true && r["id"].as_str().unwrap().starts_with("003")));
    let (s, e) = api
        .post(
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": false, "records": records(201, "no")}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "EXCEEDED_ID_LIMIT");
    assert_eq!(sim.handle().count(OrgKind::Production, "Contact"), 200);
    // Updates and deletes, per record, in order.
    let ids: Vec<String> = v
        .iter()
        .take(2)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let (s, u) = api
        .patch(
            &format!("{V}/composite/sobjects"),
            json!({"records": [
                {"attributes": {"type": "Contact"}, "id": ids[0], "Title": "CEO"},
                {"attributes": {"type": "Contact"}, "id": ids[1], "LastName": null}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(u[0]["success"], true);
    assert_eq!(u[1]["success"], false);
    assert_eq!(u[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    // Salesforce's shape of a failed record: no id, `{statusCode, message, fields}` per error.
    assert!(u[1].get("id").is_none(), "{u}");
    assert_eq!(u[1]["errors"][0]["fields"], json!(["LastName"]));
    assert!(u[1]["errors"][0]["message"].is_string());
    let (s, d) = api
        .delete(&format!(
            "{V}/composite/sobjects?ids={},{}&allOrNone=false",
            ids[0], ids[1]
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        d.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["success"] == true)
            .count(),
        2
    );
}

#[tokio::test]
async fn a_value_of_the_wrong_json_type_fails_the_whole_collection_request_and_saves_nothing() {
    let sim = sim().await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let (s, e) = api
        .post(
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "LastName": "Good", "Email": "good@example.com"},
                {"attributes": {"type": "Contact"}, "LastName": "Bad", "HasOptedOutOfEmail": "maybe"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert_eq!(code(&e), "JSON_PARSER_ERROR");
    assert!(
        e[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Cannot deserialize instance of boolean from VALUE_STRING"),
        "{e}"
    );
    assert_eq!(sim.handle().count(OrgKind::Production, "Contact"), 0);
    // A numeric string is read as the number it spells; a per-record error stays per record.
    let (s, v) = api
        .post(
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "Acme", "AnnualRevenue": "12.5"},
                {"attributes": {"type": "Lead"}, "LastName": "Mail", "Company": "Acme", "Email": "not an address"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["success"], true, "{v}");
    assert_eq!(
        v[1]["errors"][0]["statusCode"], "INVALID_EMAIL_ADDRESS",
        "{v}"
    );
}

#[tokio::test]
async fn a_composite_call_carries_a_collection_write_and_its_read_back_as_one_api_call() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    let a = api.lead("Alpha", "alpha@example.com").await;
    let b = api.lead("Beta", "beta@example.com").await;
    let calls_before = h.calls("composite.composite");
    let (_, head, _) = api.call(Method::GET, &format!("{V}/limits"), None).await;
    let used = |head: &reqwest::header::HeaderMap| -> u64 {
        let v = head["sforce-limit-info"].to_str().unwrap();
        v.trim_start_matches("api-usage=")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let used_before = used(&head);
    let (s, head, v) = api
        .call(
            Method::POST,
            &format!("{V}/composite"),
            Some(json!({"allOrNone": false, "collateSubrequests": false, "compositeRequest": [
                {"method": "PATCH", "url": format!("{V}/composite/sobjects"), "referenceId": "write",
                 "body": {"allOrNone": false, "records": [
                    {"attributes": {"type": "Lead"}, "id": a, "Title": "CEO"},
                    {"attributes": {"type": "Lead"}, "id": b, "LastName": null}]}},
                {"method": "GET", "url": format!("{V}/composite/sobjects/Lead?ids={a},{b}&fields=Id,Title,LastName,SystemModstamp"),
                 "referenceId": "readLead"},
                {"method": "GET", "url": format!("{V}/sobjects/Lead/@{{write[0].id}}?fields=Title"), "referenceId": "byRef"},
                {"method": "GET", "url": format!("{V}/sobjects/Lead/@{{write[1].id}}"), "referenceId": "failedRef"},
                {"method": "GET", "url": format!("{V}/sobjects/Lead/@{{nowhere.id}}"), "referenceId": "unknownRef"},
                {"method": "GET", "url": format!("{V}/tooling/sobjects/CustomField/x"), "referenceId": "notServed"}
            ]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // One API call, whatever it carries.
    assert_eq!(used(&head), used_before + 1);
    assert_eq!(h.calls("composite.composite") - calls_before, 1);
    assert_eq!(h.subrequests("composite.update"), 1);
    assert_eq!(h.subrequests("composite.retrieve"), 1);
    assert_eq!(
        h.calls("composite.update"),
        0,
        "subrequests are not calls of their own"
    );
    // Salesforce's shape: {compositeResponse: [{body, httpHeaders, httpStatusCode, referenceId}]}.
    let r = v["compositeResponse"].as_array().unwrap();
    assert_eq!(r.len(), 6);
    // The documented keys, no more, no fewer (the engine's fixture
    // `composite_response.json` is Salesforce's own example).
    for item in r {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["body", "httpHeaders", "httpStatusCode", "referenceId"]
        );
        assert!(
            item["httpHeaders"].is_object() && item["httpStatusCode"].is_u64(),
            "{item}"
        );
    }
    assert_eq!(r[0]["referenceId"], "write");
    assert_eq!(r[0]["httpStatusCode"], 200);
    assert_eq!(r[0]["body"][0]["success"], true);
    assert_eq!(
        r[0]["body"][1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    // The read runs after the write and sees it.
    assert_eq!(r[1]["httpStatusCode"], 200);
    assert_eq!(r[1]["body"][0]["Title"], "CEO");
    assert!(r[1]["body"][0]["SystemModstamp"].is_string());
    assert_eq!(r[1]["body"][1]["LastName"], "Beta");
    // A reference reads an earlier answer; one that finds no value halts only its subrequest.
    assert_eq!(r[2]["httpStatusCode"], 200, "{}", r[2]);
    assert_eq!(r[2]["body"]["Title"], "CEO");
    assert_eq!(r[3]["httpStatusCode"], 400);
    assert_eq!(r[3]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(r[4]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(r[5]["httpStatusCode"], 404);
    assert_eq!(r[5]["body"][0]["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn a_composite_call_refuses_26_subrequests_six_collections_and_inherited_headers() {
    let sim = sim().await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let get = |i: usize| json!({"method": "GET", "url": format!("{V}/limits"), "referenceId": format!("r{i}")});
    let (s, e) = api
        .post(
            &format!("{V}/composite"),
            json!({"compositeRequest": (0..26).map(get).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "LIMIT_EXCEEDED");
    let (s, v) = api
        .post(
            &format!("{V}/composite"),
            json!({"compositeRequest": (0..25).map(|i| json!({"method": "GET", "url": format!("{V}/sobjects/Lead/describe"), "referenceId": format!("d{i}")})).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let query = |i: usize| json!({"method": "GET", "url": format!("{V}/query?q=SELECT+Id+FROM+Lead"), "referenceId": format!("q{i}")});
    let (s, e) = api
        .post(
            &format!("{V}/composite"),
            json!({"compositeRequest": (0..6).map(query).collect::<Vec<_>>()}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "LIMIT_EXCEEDED");
    let (s, e) = api
        .post(
            &format!("{V}/composite"),
            json!({"compositeRequest": [{"method": "GET", "url": format!("{V}/limits"), "referenceId": "x",
                   "httpHeaders": {"Content-Type": "application/json"}}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_INPUT");
    let (s, e) = api
        .post(
            &format!("{V}/composite"),
            json!({"compositeRequest": [{"method": "get", "url": format!("{V}/limits"), "referenceId": "x"}]}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "methods are case-sensitive: {e}"
    );
}

#[tokio::test]
async fn a_composite_call_with_all_or_none_rolls_every_subrequest_back() {
    let sim = sim().await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let (s, v) = api
        .post(
            &format!("{V}/composite"),
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": format!("{V}/sobjects/Lead"), "referenceId": "made",
                 "body": {"LastName": "Kept", "Company": "Acme"}},
                {"method": "POST", "url": format!("{V}/sobjects/Lead"), "referenceId": "refused",
                 "body": {"Company": "Acme"}}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = v["compositeResponse"].as_array().unwrap();
    assert_eq!(r[0]["httpStatusCode"], 400);
    assert_eq!(r[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(r[1]["httpStatusCode"], 400);
    assert_eq!(r[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(sim.handle().count(OrgKind::Production, "Lead"), 0);
}

#[tokio::test]
async fn all_or_none_rolls_every_record_back_when_one_fails() {
    let sim = sim().await;
    let api = Api::new(&sim.handle(), OrgKind::Production, None);
    let (s, v) = api
        .post(
            &format!("{V}/composite/sobjects"),
            json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Lead"}, "LastName": "A", "Company": "C"},
                {"attributes": {"type": "Lead"}, "LastName": "B"},
                {"attributes": {"type": "Account"}, "Name": "Acme"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(v[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(v[2]["success"], false);
    assert_eq!(sim.handle().count(OrgKind::Production, "Lead"), 0);
    assert_eq!(sim.handle().count(OrgKind::Production, "Account"), 0);
}

#[tokio::test]
async fn every_answer_carries_the_limit_header_and_an_exhausted_allocation_recovers_after_a_day() {
    let sim = sim_with(SfSimConfig {
        daily_api_requests: 3,
        ..SfSimConfig::default()
    })
    .await;
    let h = sim.handle();
    h.freeze_clock(true);
    let api = Api::new(&h, OrgKind::Production, None);
    for n in 1..=3 {
        let (s, headers, _) = api.call(Method::GET, &format!("{V}/limits"), None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            headers["sforce-limit-info"],
            format!("api-usage={n}/3").as_str()
        );
    }
    let (s, headers, e) = api.call(Method::GET, &format!("{V}/sobjects"), None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        e,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(headers["sforce-limit-info"], "api-usage=3/3");
    h.advance_clock(Duration::from_secs(24 * 3600 + 60));
    // The session has expired meanwhile (2 hours); a new one sees the recovered allocation.
    let api = Api::new(&h, OrgKind::Production, None);
    let (s, headers, v) = api.call(Method::GET, &format!("{V}/limits"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(headers["sforce-limit-info"], "api-usage=1/3");
    assert_eq!(v["DailyApiRequests"], json!({"Max": 3, "Remaining": 2}));
}

#[tokio::test]
async fn a_user_without_api_enabled_can_log_in_but_not_call_the_api() {
    let sim = sim().await;
    let h = sim.handle();
    let admin = h.admin_user(OrgKind::Production);
    h.set_user_permissions(
        OrgKind::Production,
        &admin,
        Permissions {
            api_enabled: false,
            ..Permissions::all()
        },
    )
    .unwrap();
    let code_ = authorize(&sim, false, "api-disabled-verifier-0123456789-0123456789").await;
    let (s, t) = token(
        &sim,
        false,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code_),
            ("client_id", "sim-consumer-key"),
            ("client_secret", "sim-consumer-secret"),
            ("redirect_uri", "http://127.0.0.1:9/cb"),
            (
                "code_verifier",
                "api-disabled-verifier-0123456789-0123456789",
            ),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let api = Api {
        base: t["instance_url"].as_str().unwrap().to_owned(),
        token: t["access_token"].as_str().unwrap().to_owned(),
    };
    let (s, e) = api.get(&format!("{V}/limits")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(code(&e), "API_DISABLED_FOR_ORG");
}

#[tokio::test]
async fn private_sharing_hides_records_owned_by_other_users_from_a_standard_user() {
    let sim = sim().await;
    let h = sim.handle();
    let users = h.users(OrgKind::Production);
    let rep = users
        .iter()
        .find(|(_, u)| u.starts_with("sam.sales"))
        .unwrap()
        .0
        .clone();
    let admin_api = Api::new(&h, OrgKind::Production, None);
    let theirs = admin_api.lead("Theirs", "theirs@example.com").await;
    let rep_api = Api::new(&h, OrgKind::Production, Some(&rep));
    let mine = rep_api.lead("Mine", "mine@example.com").await;
    let (_, v) = rep_api.query("SELECT Id FROM Lead").await;
    assert_eq!(v["totalSize"], 1);
    assert_eq!(v["records"][0]["Id"], mine);
    let (s, e) = rep_api.get(&format!("{V}/sobjects/Lead/{theirs}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(code(&e), "NOT_FOUND");
    let (s, _) = rep_api
        .patch(
            &format!("{V}/sobjects/Lead/{theirs}"),
            json!({"Title": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // View All Data shows everything but does not allow editing others' records.
    h.set_user_permissions(
        OrgKind::Production,
        &rep,
        Permissions {
            view_all_data: true,
            ..Permissions::standard()
        },
    )
    .unwrap();
    let (_, v) = rep_api.query("SELECT Id FROM Lead").await;
    assert_eq!(v["totalSize"], 2);
    let (s, e) = rep_api
        .patch(
            &format!("{V}/sobjects/Lead/{theirs}"),
            json!({"Title": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INSUFFICIENT_ACCESS_OR_READONLY");
    let (_, v) = admin_api.query("SELECT Id FROM Lead").await;
    assert_eq!(v["totalSize"], 2);
}

#[tokio::test]
async fn a_tooling_custom_field_is_visible_but_not_writable_until_field_permissions_grant_edit() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    let (s, v) = api.post(&format!("{V}/tooling/sobjects/CustomField"), json!({"FullName": "Lead.Tandem_Source__c", "Metadata": {"type": "Text", "length": 255, "label": "Tandem source"}})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("00N"));
    let (_, d) = api.get(&format!("{V}/sobjects/Lead/describe")).await;
    let f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Tandem_Source__c")
        .cloned()
        .unwrap();
    assert_eq!(f["custom"], true);
    assert_eq!(f["updateable"], false);
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y", "Tandem_Source__c": "web"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INVALID_FIELD_FOR_INSERT_UPDATE");
    // Find the admin profile's permission set and grant Edit.
    let admin = h.admin_user(OrgKind::Production);
    let (_, u) = api
        .query(&format!("SELECT ProfileId FROM User WHERE Id = '{admin}'"))
        .await;
    let profile = u["records"][0]["ProfileId"].as_str().unwrap().to_owned();
    let (_, ps) = api.query(&format!("SELECT Id FROM PermissionSet WHERE IsOwnedByProfile = true AND ProfileId = '{profile}'")).await;
    let ps = ps["records"][0]["Id"].as_str().unwrap().to_owned();
    let (s, v) = api.post(&format!("{V}/sobjects/FieldPermissions"), json!({"ParentId": ps, "SobjectType": "Lead", "Field": "Lead.Tandem_Source__c", "PermissionsRead": true, "PermissionsEdit": true})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, d) = api.get(&format!("{V}/sobjects/Lead/describe")).await;
    let f = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Tandem_Source__c")
        .cloned()
        .unwrap();
    assert_eq!(f["updateable"], true);
    let (s, _) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y", "Tandem_Source__c": "web"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // Without Customize Application, no custom fields.
    h.set_user_permissions(
        OrgKind::Production,
        &admin,
        Permissions {
            customize_application: false,
            ..Permissions::all()
        },
    )
    .unwrap();
    let (s, e) = api
        .post(
            &format!("{V}/tooling/sobjects/CustomField"),
            json!({"FullName": "Lead.Other__c", "Metadata": {"type": "Text"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "INSUFFICIENT_ACCESS_OR_READONLY");
}

#[tokio::test]
async fn validation_and_duplicate_rules_refuse_saves_until_switched_off() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    h.set_validation_rule(
        OrgKind::Production,
        "Lead",
        "Source_Required",
        "LeadSource = null",
        "Lead Source is required",
        Some("LeadSource"),
    )
    .unwrap();
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        e,
        json!([{"message": "Lead Source is required", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["LeadSource"]}])
    );
    h.clear_validation_rules(OrgKind::Production);
    api.lead("First", "same@example.com").await;
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "Second", "Company": "Y", "Email": "SAME@example.com"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "DUPLICATES_DETECTED");
    assert!(
        e[0]["duplicateResut"]["matchResults"][0]["matchRecords"][0]["record"]["Id"].is_string()
    );
    h.set_duplicate_rule(OrgKind::Production, "Lead", DuplicateRule::Alert)
        .unwrap();
    let (s, _, _) = api
        .call_with(
            Method::POST,
            &format!("{V}/sobjects/Lead"),
            Some(json!({"LastName": "Second", "Company": "Y", "Email": "same@example.com"})),
            &[("Sforce-Duplicate-Rule-Header", "allowSave=true")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    h.set_duplicate_rule(OrgKind::Production, "Lead", DuplicateRule::Off)
        .unwrap();
    api.lead("Third", "same@example.com").await;
}

#[tokio::test]
async fn converting_a_lead_creates_and_links_a_contact_and_freezes_the_lead() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    let lead = api.lead("Turing", "alan@example.com").await;
    let (account, contact) = h
        .convert_lead(OrgKind::Production, &lead, None, None)
        .unwrap();
    let (_, l) = api.get(&format!("{V}/sobjects/Lead/{lead}")).await;
    assert_eq!(l["IsConverted"], true);
    assert_eq!(l["ConvertedContactId"], contact);
    assert_eq!(l["ConvertedAccountId"], account);
    let (_, c) = api.get(&format!("{V}/sobjects/Contact/{contact}")).await;
    assert_eq!(c["Email"], "alan@example.com");
    assert_eq!(c["AccountId"], account);
    let (s, e) = api
        .patch(&format!("{V}/sobjects/Lead/{lead}"), json!({"Title": "x"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "CANNOT_UPDATE_CONVERTED_LEAD");
}

#[tokio::test]
async fn merging_deletes_the_losers_and_points_them_at_the_master() {
    let sim = sim().await;
    let h = sim.handle();
    h.set_duplicate_rule(OrgKind::Production, "Contact", DuplicateRule::Off)
        .unwrap();
    let api = Api::new(&h, OrgKind::Production, None);
    let (_, a) = api
        .post(
            &format!("{V}/sobjects/Contact"),
            json!({"LastName": "Master", "Email": "m@example.com"}),
        )
        .await;
    let (_, b) = api
        .post(
            &format!("{V}/sobjects/Contact"),
            json!({"LastName": "Loser", "Email": "m@example.com"}),
        )
        .await;
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    h.merge(OrgKind::Production, "Contact", a, &[b]).unwrap();
    let q: String = url::form_urlencoded::byte_serialize(
        format!("SELECT Id, MasterRecordId, IsDeleted FROM Contact WHERE Id = '{b}'").as_bytes(),
    )
    .collect();
    let (_, v) = api.get(&format!("{V}/queryAll?q={q}")).await;
    assert_eq!(v["records"][0]["MasterRecordId"], a);
    assert_eq!(v["records"][0]["IsDeleted"], true);
}

#[tokio::test]
async fn injected_faults_answer_as_salesforce_and_a_lock_writes_nothing() {
    let sim = sim().await;
    let h = sim.handle();
    let api = Api::new(&h, OrgKind::Production, None);
    h.set_faults(FaultSpec::parse("sobject.create:lock=1").unwrap());
    let (s, e) = api
        .post(
            &format!("{V}/sobjects/Lead"),
            json!({"LastName": "X", "Company": "Y"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(code(&e), "UNABLE_TO_LOCK_ROW");
    assert_eq!(h.count(OrgKind::Production, "Lead"), 0);
    h.set_faults(FaultSpec::parse("query:503=1;limits:limit=1").unwrap());
    let (s, e) = api.query("SELECT Id FROM Lead").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&e), "SERVER_UNAVAILABLE");
    let (s, e) = api.get(&format!("{V}/limits")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(code(&e), "REQUEST_LIMIT_EXCEEDED");
    h.set_faults(FaultSpec::parse("sobject.create:lost_answer=1").unwrap());
    let r = client()
        .post(format!("{}{V}/sobjects/Lead", api.base))
        .bearer_auth(&api.token)
        .json(&json!({"LastName": "Lost", "Company": "Y"}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(r.is_err());
    assert_eq!(h.count(OrgKind::Production, "Lead"), 1);
    assert_eq!(h.calls("sobject.create"), 2);
}

#[tokio::test]
async fn the_admin_path_drives_the_same_hooks_over_http() {
    let sim = sim().await;
    let base = format!("{}/__sim/production", sim.instance_url());
    let r = client()
        .post(format!("{base}/sessions"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let t: Value = r.json().await.unwrap();
    let api = Api {
        base: t["instance_url"].as_str().unwrap().to_owned(),
        token: t["access_token"].as_str().unwrap().to_owned(),
    };
    let lead = api.lead("Hook", "hook@example.com").await;
    let r = client()
        .post(format!("{base}/leads/{lead}/convert"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(v["contactId"].as_str().unwrap().starts_with("003"));
    let r = client()
        .put(format!("{base}/limits"))
        .json(&json!({"dailyApiRequests": 1, "resetUsage": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .post(format!("{base}/tokens/revoke"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        api.get(&format!("{V}/limits")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_hundred_thousand_seeded_leads_are_indexed_by_email() {
    let sim = sim_with(SfSimConfig {
        leads: 100_000,
        accounts: 10,
        contacts: 10,
        ..SfSimConfig::default()
    })
    .await;
    let h = sim.handle();
    assert_eq!(h.count(OrgKind::Production, "Lead"), 100_000);
    assert_eq!(h.count(OrgKind::Sandbox, "Lead"), 100_000);
    let api = Api::new(&h, OrgKind::Production, None);
    let (_, v) = api.query("SELECT Id, Email FROM Lead LIMIT 1").await;
    let email = v["records"][0]["Email"].as_str().unwrap();
    assert_eq!(
        h.ids_by_email(OrgKind::Production, "Lead", &email.to_uppercase())
            .len(),
        1
    );
}

#[tokio::test]
async fn https_is_served_on_the_same_port_as_http() {
    let sim = sim().await;
    let cert = reqwest::Certificate::from_pem(salesforce_sim::TLS_CERT_PEM.as_bytes()).unwrap();
    let c = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let url = sim.instance_url().replace("http://", "https://");
    let r = c.get(format!("{url}/services/data/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
