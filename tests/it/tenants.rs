//! Tenants (issue 24, ADR 26): many app accounts in one database, each with its own contacts,
//! list, subscriptions and CRM companies. The app names its tenant with the `Tandem-Tenant`
//! header; contacts of two tenants never meet, not even when their e-mails are the same.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_core::TenantId;
use tandem_engine::sync::{app, connections, inbound::poller, links};
use tandem_tests::receiver::TestReceiver;
use tandem_tests::{pid, spawn_app, TestApp};
use uuid::Uuid;

/// The address both tenants' companies have a person with.
const SHARED: &str = "shared.person@example.com";

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// A company of its own for `tenant`: a new simulator company holding one person with
/// `email` (named `name`), connected for the tenant and synced. Returns the connection, the
/// company and the person.
async fn company_for(
    app: &TestApp,
    tenant: &TenantId,
    name: &str,
    email: &str,
) -> (Uuid, i64, i64) {
    let sim = app.sim.handle();
    let company = sim.add_company(0);
    let person = sim
        .insert_person_in(
            company.company_id,
            json!({ "name": name, "emails": [{ "value": email, "primary": true, "label": "work" }] }),
        )
        .unwrap();
    let connection = connect_synced(app, tenant, &company.api_token).await;
    (connection.uuid(), company.company_id, person)
}

/// Connects the simulator company of `api_token` for `tenant`, runs its initial sync and the
/// workers.
async fn connect_synced(
    app: &TestApp,
    tenant: &TenantId,
    api_token: &str,
) -> tandem_core::ConnectionId {
    let connected = connections::connect_alongside(
        &app.engine,
        connections::NewConnection {
            api_domain: app.sim.base_url().to_owned(),
            auth_kind: "api_token",
            access_token: api_token.to_owned(),
            refresh_token: None,
            token_expires_at: None,
        },
        tenant,
    )
    .await
    .expect("the company connects for its tenant");
    poller::initial_sync(&app.engine, connected.id, |_| {})
        .await
        .expect("its initial sync");
    app.drive().await;
    connected.id
}

/// An API request acting for `tenant`.
fn as_tenant(app: &TestApp, tenant: &str, method: Method, path: &str) -> reqwest::RequestBuilder {
    app.api(method, path).header("Tandem-Tenant", tenant)
}

async fn body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sends `request`; (status, JSON body or `null`).
async fn call(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    body(request.send().await.unwrap()).await
}

/// The tenant's contacts with `email`, through the API.
async fn contacts_with(app: &TestApp, tenant: &str, email: &str) -> Vec<Value> {
    let (status, page) = call(as_tenant(
        app,
        tenant,
        Method::GET,
        &format!("/api/v1/contacts?email={email}"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().cloned().unwrap_or_default()
}

fn person_named(persons: &[Value], id: i64) -> &Value {
    persons
        .iter()
        .find(|p| p["id"] == id)
        .expect("the person exists")
}

fn has_email(person: &Value, email: &str) -> bool {
    person["emails"]
        .as_array()
        .is_some_and(|all| all.iter().any(|e| e["value"] == email))
}

#[tokio::test]
async fn two_tenants_whose_companies_hold_a_person_with_the_same_email_get_a_contact_each_linked_to_its_own_person(
) {
    let app = spawn_app().await;
    let (acme, acme_company, acme_person) =
        company_for(&app, &tenant("acme"), "Sam at Acme", SHARED).await;
    let (globex, globex_company, globex_person) =
        company_for(&app, &tenant("globex"), "Sam at Globex", SHARED).await;

    let in_acme = contacts_with(&app, "acme", SHARED).await;
    let in_globex = contacts_with(&app, "globex", SHARED).await;
    assert_eq!(in_acme.len(), 1, "{in_acme:?}");
    assert_eq!(in_globex.len(), 1, "{in_globex:?}");
    assert_ne!(
        in_acme[0]["id"], in_globex[0]["id"],
        "one contact per tenant"
    );
    assert_eq!(in_acme[0]["fields"]["name"], "Sam at Acme");
    assert_eq!(in_globex[0]["fields"]["name"], "Sam at Globex");
    assert!(
        contacts_with(&app, "default", SHARED).await.is_empty(),
        "the default tenant has no such contact"
    );
    let acme_contact = links::by_person(&app.store, acme.into(), pid(acme_person))
        .await
        .unwrap()
        .expect("Acme's person is linked")
        .contact_id;
    let globex_contact = links::by_person(&app.store, globex.into(), pid(globex_person))
        .await
        .unwrap()
        .expect("Globex's person is linked")
        .contact_id;
    assert_eq!(in_acme[0]["id"], acme_contact.to_string());
    assert_eq!(in_globex[0]["id"], globex_contact.to_string());
    assert!(
        links::by_contact(app.store.db(), globex.into(), acme_contact)
            .await
            .unwrap()
            .is_none(),
        "Acme's contact is not linked in Globex's company"
    );

    // An edit of Acme's contact reaches Acme's company only.
    let (status, patched) = call(
        as_tenant(
            &app,
            "acme",
            Method::PATCH,
            &format!("/api/v1/contacts/{acme_contact}"),
        )
        .json(&json!({ "fields": { "name": "Sam Edited At Acme" } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    app.drive().await;
    let sim = app.sim.handle();
    assert_eq!(
        sim.person_writes(acme_company)[&acme_person],
        ["Sam Edited At Acme"]
    );
    assert!(
        sim.person_writes(globex_company).is_empty(),
        "{:?}",
        sim.person_writes(globex_company)
    );
    let globex_persons = sim.persons_of(globex_company);
    assert_eq!(
        person_named(&globex_persons, globex_person)["name"],
        "Sam at Globex"
    );
    let still = contacts_with(&app, "globex", SHARED).await;
    assert_eq!(still[0]["fields"]["name"], "Sam at Globex");

    // And a user's edit in Globex's company reaches Globex's contact only.
    sim.clear_deliveries();
    sim.update_person_as_user_in(
        globex_company,
        globex_person,
        json!({ "name": "Sam Typed In Globex" }),
    )
    .unwrap();
    app.await_person_webhooks(1).await;
    assert_eq!(
        contacts_with(&app, "globex", SHARED).await[0]["fields"]["name"],
        "Sam Typed In Globex"
    );
    assert_eq!(
        contacts_with(&app, "acme", SHARED).await[0]["fields"]["name"],
        "Sam Edited At Acme"
    );
    assert_eq!(
        sim.person_writes(acme_company)[&acme_person],
        ["Sam Edited At Acme"],
        "nothing more was written to Acme's person"
    );
}

#[tokio::test]
async fn an_app_contact_created_under_one_tenant_with_the_email_of_another_tenants_person_is_not_linked_to_it(
) {
    let app = spawn_app().await;
    let (acme, acme_company, _) =
        company_for(&app, &tenant("acme"), "Someone Else", "other@example.com").await;
    let (globex, globex_company, globex_person) =
        company_for(&app, &tenant("globex"), "Sam at Globex", SHARED).await;
    let globex_contact = links::by_person(&app.store, globex.into(), pid(globex_person))
        .await
        .unwrap()
        .expect("linked")
        .contact_id;
    let sim = app.sim.handle();
    sim.reset_counts();

    let (status, created) = call(as_tenant(&app, "acme", Method::POST, "/api/v1/contacts")
            .json(&json!({ "email": SHARED, "fields": { "name": "Sam for Acme" }, "in_pipedrive_list": true }))).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a new contact, not Globex's: {created}"
    );
    assert_ne!(created["id"], globex_contact.to_string());
    app.drive().await;

    let contact: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let link = links::by_contact(app.store.db(), acme.into(), contact.into())
        .await
        .unwrap()
        .expect("created in Acme's company, the tenant's list's connection");
    let acme_persons = sim.persons_of(acme_company);
    assert!(has_email(
        person_named(&acme_persons, link.person_id.get()),
        SHARED
    ));
    assert!(
        links::by_contact(app.store.db(), globex.into(), contact.into())
            .await
            .unwrap()
            .is_none(),
        "not linked to Globex's person"
    );
    assert_eq!(
        links::by_person(&app.store, globex.into(), pid(globex_person))
            .await
            .unwrap()
            .unwrap()
            .contact_id,
        globex_contact,
        "Globex's person stays with Globex's contact"
    );
    assert_eq!(sim.persons_of(globex_company).len(), 1);
    assert_eq!(
        sim.company_traffic(globex_company).requests,
        0,
        "not one request to Globex's company"
    );
    assert_eq!(
        contacts_with(&app, "globex", SHARED).await[0]["fields"]["name"],
        "Sam at Globex"
    );
}

#[tokio::test]
async fn a_contact_of_one_tenant_is_not_found_under_another() {
    let app = spawn_app().await;
    let (_, acme_company, acme_person) =
        company_for(&app, &tenant("acme"), "Sam at Acme", SHARED).await;
    let (globex, _, _) = company_for(&app, &tenant("globex"), "Gil", "gil@example.com").await;
    let acme_contact = contacts_with(&app, "acme", SHARED).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/contacts/{acme_contact}");

    let (status, _) = call(as_tenant(&app, "acme", Method::GET, &path)).await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, payload) in [
        (Method::GET, path.clone(), None),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({ "fields": { "name": "Hijacked" } })),
        ),
        (Method::POST, format!("{path}/archive"), None),
        (Method::GET, format!("{path}/crm"), None),
        (
            Method::DELETE,
            format!("/api/v1/lists/pipedrive_contacts/members/{acme_contact}"),
            None,
        ),
    ] {
        let mut request = as_tenant(&app, "globex", method.clone(), &path);
        if let Some(payload) = payload {
            request = request.json(&payload);
        }
        let (status, answer) = call(request).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["code"], "not_found", "{answer}");
    }
    // The default tenant (no header) does not see it either.
    let (status, _) = call(app.api(Method::GET, &path)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = call(
        as_tenant(
            &app,
            "globex",
            Method::POST,
            "/api/v1/lists/pipedrive_contacts/members",
        )
        .json(&json!({ "contact_id": acme_contact })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (_, members) = call(as_tenant(
        &app,
        "globex",
        Method::GET,
        "/api/v1/lists/pipedrive_contacts/members",
    ))
    .await;
    let members = members["data"].as_array().unwrap();
    assert_eq!(members.len(), 1, "Globex's own person only: {members:?}");
    assert_ne!(members[0]["contact_id"], acme_contact);

    // A journey action of Globex may name neither Acme's contact nor, later, its connection.
    let (status, answer) = call(
        as_tenant(&app, "globex", Method::POST, "/api/v1/actions/add_deal")
            .header("Idempotency-Key", "cross-1")
            .json(&json!({ "contact_id": acme_contact, "params": { "title": "Nope" } })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    app.drive().await;
    let still = contacts_with(&app, "acme", SHARED).await;
    assert_eq!(still[0]["fields"]["name"], "Sam at Acme", "nothing changed");
    assert_eq!(still[0]["archived"], false);
    assert!(app
        .sim
        .handle()
        .person_writes(acme_company)
        .get(&acme_person)
        .is_none_or(|w| w.is_empty()));
    assert!(links::by_contact(
        app.store.db(),
        globex.into(),
        acme_contact.parse::<Uuid>().unwrap().into()
    )
    .await
    .unwrap()
    .is_none());
}

#[tokio::test]
async fn a_journey_action_may_name_only_a_connection_of_its_own_tenant() {
    let app = spawn_app().await;
    let (acme, acme_company, _) = company_for(&app, &tenant("acme"), "Sam at Acme", SHARED).await;
    let (globex, globex_company, _) =
        company_for(&app, &tenant("globex"), "Gil", "gil@example.com").await;
    let acme_contact = contacts_with(&app, "acme", SHARED).await[0]["id"].clone();

    let (status, answer) = call(as_tenant(&app, "acme", Method::POST, "/api/v1/actions/add_deal")
            .header("Idempotency-Key", "deal-1")
            .json(&json!({ "contact_id": acme_contact, "params": { "title": "Deal" }, "connection_id": globex }))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["code"], "unknown_connection", "{answer}");

    // The same key in another tenant is another request, not a replay of Acme's.
    let (status, queued) = call(
        as_tenant(&app, "acme", Method::POST, "/api/v1/actions/add_deal")
            .header("Idempotency-Key", "deal-2")
            .json(&json!({ "contact_id": acme_contact, "params": { "title": "Acme Deal" } })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["connection_id"], acme.to_string());
    let gil = contacts_with(&app, "globex", "gil@example.com").await[0]["id"].clone();
    let (status, other) = call(
        as_tenant(&app, "globex", Method::POST, "/api/v1/actions/add_deal")
            .header("Idempotency-Key", "deal-2")
            .json(&json!({ "contact_id": gil, "params": { "title": "Globex Deal" } })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    assert_ne!(other["id"], queued["id"]);
    assert_eq!(other["connection_id"], globex.to_string());
    // Each tenant reads its own action only.
    let (status, _) = call(as_tenant(
        &app,
        "globex",
        Method::GET,
        &format!("/api/v1/actions/{}", queued["id"].as_str().unwrap()),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.drive().await;
    let sim = app.sim.handle();
    let titles = |company| -> Vec<Value> {
        sim.deals_of(company)
            .into_iter()
            .map(|d| d["title"].clone())
            .collect()
    };
    assert_eq!(titles(acme_company), [json!("Acme Deal")]);
    assert_eq!(titles(globex_company), [json!("Globex Deal")]);
}

#[tokio::test]
async fn the_list_of_a_tenant_is_pushed_only_to_that_tenants_connection() {
    let app = spawn_app().await;
    let (acme, acme_company, _) = company_for(&app, &tenant("acme"), "Sam at Acme", SHARED).await;
    let (globex, globex_company, _) =
        company_for(&app, &tenant("globex"), "Gil", "gil@example.com").await;
    let sim = app.sim.handle();
    sim.reset_counts();

    let (status, created) = call(as_tenant(&app, "globex", Method::POST, "/api/v1/contacts")
            .json(&json!({ "email": "new.lead@example.com", "fields": { "name": "New Lead" }, "in_pipedrive_list": true }))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    app.drive().await;

    let named = |company| {
        sim.persons_of(company)
            .iter()
            .filter(|p| p["name"] == "New Lead")
            .count()
    };
    assert_eq!(
        named(globex_company),
        1,
        "the tenant's own company receives its list"
    );
    assert_eq!(named(acme_company), 0);
    assert_eq!(sim.company_traffic(acme_company).requests, 0);
    let contact: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    assert!(
        links::by_contact(app.store.db(), globex.into(), contact.into())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        links::by_contact(app.store.db(), acme.into(), contact.into())
            .await
            .unwrap()
            .is_none()
    );
    // Each tenant counts its own list.
    for (tenant, members) in [("acme", 1), ("globex", 2), ("default", 0)] {
        let (_, lists) = call(as_tenant(&app, tenant, Method::GET, "/api/v1/lists")).await;
        assert_eq!(
            lists["data"][0]["member_count"], members,
            "{tenant}: {lists}"
        );
    }
}

async fn subscribe(app: &TestApp, name: &str, url: &str) -> app::Subscription {
    app::create_subscription_with(
        &app.engine,
        &tenant(name),
        url,
        app::generate_secret(),
        app::EventFilter::default(),
    )
    .await
    .unwrap()
    .0
}

#[tokio::test]
async fn a_tenants_subscriptions_hear_only_its_own_contacts() {
    let app = spawn_app().await;
    let acme_receiver = TestReceiver::start().await;
    let globex_receiver = TestReceiver::start().await;
    let acme_hook = subscribe(&app, "acme", &acme_receiver.url).await;
    let globex_hook = subscribe(&app, "globex", &globex_receiver.url).await;
    company_for(&app, &tenant("acme"), "Sam at Acme", SHARED).await;
    company_for(&app, &tenant("globex"), "Sam at Globex", SHARED).await;
    let acme_contact = contacts_with(&app, "acme", SHARED).await[0]["id"].clone();
    let globex_contact = contacts_with(&app, "globex", SHARED).await[0]["id"].clone();

    for (hook, own) in [(&acme_hook, &acme_contact), (&globex_hook, &globex_contact)] {
        let log = app::delivery_log(&app.engine, hook.id, 100).await.unwrap();
        assert!(!log.is_empty(), "the tenant hears its contact's creation");
        assert!(
            log.iter()
                .all(|d| d.contact_id.map(|c| json!(c)) == Some(own.clone())),
            "{log:?}"
        );
    }
    // The API lists a tenant's own subscriptions only.
    let (_, listed) = call(as_tenant(
        &app,
        "acme",
        Method::GET,
        "/api/v1/webhook-subscriptions",
    ))
    .await;
    let ids: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&json!(acme_hook.id)]);
    let (status, _) = call(as_tenant(
        &app,
        "acme",
        Method::GET,
        &format!("/api/v1/webhook-subscriptions/{}", globex_hook.id),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_malformed_tandem_tenant_header_is_refused_with_invalid_tenant() {
    let app = spawn_app().await;
    for bad in ["two words", "a/b", "", &"x".repeat(65), "ünicode"] {
        let (status, answer) = call(
            app.api(Method::GET, "/api/v1/contacts")
                .header("Tandem-Tenant", bad),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {answer}");
        assert_eq!(answer["code"], "invalid_tenant", "{answer}");
    }
    // Without the header: the default tenant, as always.
    let (status, created) = call(
        app.api(Method::POST, "/api/v1/contacts")
            .json(&json!({ "email": "ada@example.com" })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        contacts_with(&app, "default", "ada@example.com")
            .await
            .len(),
        1
    );
    assert!(contacts_with(&app, "acme", "ada@example.com")
        .await
        .is_empty());
    // The OpenAPI document says so on every authenticated operation.
    let (_, document) = body(app.get("/api/v1/openapi.json").await).await;
    let tenant = &document["components"]["parameters"]["TandemTenant"];
    assert_eq!(tenant["name"], "Tandem-Tenant");
    assert_eq!(tenant["in"], "header");
    let parameters = document["paths"]["/api/v1/contacts"]["get"]["parameters"]
        .as_array()
        .unwrap();
    assert!(parameters
        .iter()
        .any(|p| p["$ref"] == "#/components/parameters/TandemTenant"));
    // A wrong API key is still a 401 first, whatever the header says.
    let status = app
        .http
        .get(format!("{}/api/v1/contacts", app.base_url))
        .bearer_auth("wrong")
        .header("Tandem-Tenant", "two words")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_company_serves_one_tenant() {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    let company = sim.add_company(1);
    let new = || connections::NewConnection {
        api_domain: app.sim.base_url().to_owned(),
        auth_kind: "api_token",
        access_token: company.api_token.clone(),
        refresh_token: None,
        token_expires_at: None,
    };
    let first = connections::connect_alongside(&app.engine, new(), &tenant("acme"))
        .await
        .unwrap();
    let again = connections::connect_alongside(&app.engine, new(), &tenant("acme"))
        .await
        .unwrap();
    assert_eq!(
        first.id, again.id,
        "a reconnect for the same tenant reuses it"
    );
    let refused = connections::connect_alongside(&app.engine, new(), &tenant("globex"))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("another tenant"), "{refused}");
}

#[tokio::test]
async fn connect_with_pipedrive_for_a_tenant_connects_the_company_alongside_the_default_tenants() {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let first = app.connection_id().await;
    let sim = app.sim.handle();
    let old_company = sim.company_id();
    sim.switch_company(old_company + 1);

    let connected = app
        .admin(Method::GET, "/connections/pipedrive/connect?tenant=acme")
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status(), StatusCode::OK, "not a company change");
    let list = connections::admin::list_connections(&app.engine)
        .await
        .unwrap();
    assert_eq!(list.len(), 2, "the default tenant's company stays");
    let acme = list.iter().find(|c| c.id.uuid() != first).unwrap();
    assert_eq!(acme.tenant, "acme");
    assert_eq!(acme.company_id, Some(old_company + 1));
    assert!(
        acme.receives_list,
        "the first company of its tenant receives its list"
    );
    let default = list.iter().find(|c| c.id.uuid() == first).unwrap();
    assert_eq!(default.tenant, "default");
    assert_eq!(default.company_id, Some(old_company));
    let console = app.admin_page("/admin").await;
    assert!(console.contains("<code>acme</code>"), "{console}");
    assert!(console.contains("<code>default</code>"));

    let refused = app
        .admin(Method::GET, "/connections/pipedrive/connect?tenant=a%2Fb")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("invalid_tenant"));
}

#[tokio::test]
async fn the_console_connects_for_the_tenant_it_names_and_a_tenants_card_reconnects_for_its_own_tenant(
) {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let first = app.connection_id().await;
    let sim = app.sim.handle();
    sim.switch_company(sim.company_id() + 1);

    // The default tenant has its company: no Pipedrive connect forms, but the tenant form.
    let console = app.admin_page("/admin").await;
    assert!(!console.contains("id=pipedrive-card"), "{console}");
    assert!(console.contains("id=tenant-form"));
    // Named, the page offers to connect for it: the links and the API-token form carry it.
    let page = app.admin_page("/admin?tenant=acme").await;
    assert!(
        page.contains("Connect Pipedrive for tenant <code>acme</code>"),
        "{page}"
    );
    assert!(page.contains(r#"href="/connections/pipedrive/connect?tenant=acme""#));
    assert!(page.contains(r#"<input type=hidden name=tenant value="acme">"#));
    let refused = app
        .admin(Method::GET, "/admin?tenant=a%20b")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    // The link connects the company for acme, beside the default tenant's.
    let connected = app
        .admin(Method::GET, "/connections/pipedrive/connect?tenant=acme")
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status(), StatusCode::OK);
    let acme = connections::admin::list_connections(&app.engine)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id.uuid() != first)
        .unwrap();
    assert_eq!(acme.tenant, "acme");

    // Its token expires: its card's Reconnect starts a consent for acme, which reconnects it
    // (for the default tenant it would be refused: the company serves acme).
    tandem_engine::store::connections::set_state(
        &app.store,
        acme.id,
        connections::state::TOKEN_EXPIRED,
        Some("token expired"),
        app.engine.now(),
    )
    .await
    .unwrap();
    let console = app.admin_page("/admin").await;
    let reconnect = r#"id=reconnect href="/connections/pipedrive/connect?tenant=acme""#;
    assert!(console.contains(reconnect), "{console}");
    let again = app
        .admin(Method::GET, "/connections/pipedrive/connect?tenant=acme")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let list = connections::admin::list_connections(&app.engine)
        .await
        .unwrap();
    assert_eq!(list.len(), 2, "reconnected, not added");
    let reconnected = list.iter().find(|c| c.id == acme.id).unwrap();
    assert_eq!(reconnected.state, connections::state::CONNECTED);
    assert_eq!(reconnected.tenant, "acme");
}

#[tokio::test]
async fn the_admin_api_connects_an_api_token_company_for_the_tenant_its_body_names() {
    let app = spawn_app().await;
    let company = app.sim.handle().add_company(1);
    let add = |tenant: &str| {
        app.admin(Method::POST, "/admin/api/connections")
            .json(&json!({
                "api_token": company.api_token,
                "api_domain": app.sim.base_url(),
                "tenant": tenant,
            }))
    };
    let refused = add("a/b").send().await.unwrap();
    let (status, error) = body(refused).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["code"], "invalid_tenant", "{error}");

    let (status, connected) = call(add("globex")).await;
    assert_eq!(status, StatusCode::CREATED, "{connected}");
    let stored = tandem_engine::store::connections::list(&app.store)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tenant.as_str(), "globex");
    assert_eq!(stored[0].id.uuid().to_string(), connected["id"]);
    // The company serves globex: the same token for another tenant is refused.
    let (status, error) = call(add("initech")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error.to_string().contains("another tenant"), "{error}");
}

#[tokio::test]
async fn connect_with_salesforce_for_a_tenant_connects_the_org_for_that_tenant_and_the_org_serves_only_it(
) {
    use tandem_tests::salesforce::spawn_sf_app;
    let sf = spawn_sf_app(salesforce_sim::SfSimConfig::default(), |_| {}).await;
    let answer = sf
        .app
        .admin(Method::GET, "/connections/salesforce/connect?tenant=acme")
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    let stored = tandem_engine::store::connections::list(&sf.app.store)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].crm, "salesforce");
    assert_eq!(stored[0].tenant.as_str(), "acme");
    let console = sf.app.admin_page("/admin?tenant=acme").await;
    assert!(
        console.contains(r#"href="/connections/salesforce/connect?sandbox=1&#38;tenant=acme""#),
        "{console}"
    );

    // The same org for the default tenant is refused, and stays acme's.
    let refused = sf.oauth_connect(false).await;
    assert!(!refused.status().is_success());
    let text = refused.text().await.unwrap();
    assert!(text.contains("another tenant"), "{text}");
    let stored = tandem_engine::store::connections::list(&sf.app.store)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tenant.as_str(), "acme");
}

#[tokio::test]
async fn two_tenants_log_an_email_under_the_same_message_id_and_each_has_its_own_record() {
    let app = spawn_app().await;
    let (acme, _, acme_person) = company_for(&app, &tenant("acme"), "Sam at Acme", SHARED).await;
    let (globex, _, globex_person) =
        company_for(&app, &tenant("globex"), "Sam at Globex", SHARED).await;
    let message_id = "<same-id@mailer.example>";
    let email = |subject: &str| {
        json!({
            "message_id": message_id,
            "direction": "sent",
            "from": "news@our-app.example",
            "to": [SHARED],
            "subject": subject,
            "sent_at": "2026-12-05T10:00:00Z",
        })
    };
    for (name, subject) in [("acme", "For Acme"), ("globex", "For Globex")] {
        let (status, logged) =
            call(as_tenant(&app, name, Method::POST, "/api/v1/emails").json(&email(subject))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{name}: {logged}");
    }
    app.drive().await;

    // Each tenant reads its own, logged in its own company for its own person.
    for (name, person, connection) in [
        ("acme", acme_person, acme),
        ("globex", globex_person, globex),
    ] {
        let path = format!("/api/v1/emails/{message_id}");
        let (status, outcome) = call(as_tenant(&app, name, Method::GET, &path)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {outcome}");
        assert_eq!(outcome["state"], "logged", "{name}: {outcome}");
        assert_eq!(outcome["persons"], json!([person]), "{name}: {outcome}");
        assert_eq!(
            outcome["connection_id"],
            connection.to_string(),
            "{name}: {outcome}"
        );
    }
    // An event is recorded on the tenant's own e-mail only; a third tenant has none.
    let events = format!("/api/v1/emails/{message_id}/events");
    let (status, opened) = call(
        as_tenant(&app, "acme", Method::POST, &events)
            .json(&json!({ "type": "opened", "at": "2026-12-05T11:00:00Z" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{opened}");
    assert_eq!(opened["connection_id"], acme.to_string(), "{opened}");
    assert_eq!(opened["events"]["opened"]["count"], 1, "{opened}");
    let (status, _) = call(
        as_tenant(&app, "initech", Method::POST, &events)
            .json(&json!({ "type": "opened", "at": "2026-12-05T11:00:00Z" })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_app_event_names_its_tenant_in_its_signed_body_and_changes_only_that_tenants_contacts() {
    use tandem_tests::TEST_APP_SECRET;
    let app = spawn_app().await;
    company_for(&app, &tenant("acme"), "Someone else", "someone@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let created = r#"{"type":"contact.created","tenant":"acme","data":{"email":"event@example.com","fields":{"name":"From the app"}}}"#;
    let accepted = app
        .post_app_event(TEST_APP_SECRET, "msg_t1", now, created)
        .await;
    assert_eq!(accepted.status(), StatusCode::OK);
    app.drive().await;
    let acme = contacts_with(&app, "acme", "event@example.com").await;
    assert_eq!(acme.len(), 1, "{acme:?}");
    assert_eq!(acme[0]["fields"]["name"], "From the app");
    assert!(contacts_with(&app, "default", "event@example.com")
        .await
        .is_empty());

    // The same e-mail without a tenant is the default tenant's (a contact of its own, as an
    // update of an e-mail it does not know creates one), never acme's.
    let updated = r#"{"type":"contact.updated","data":{"email":"event@example.com","fields":{"name":"Default's"}}}"#;
    app.post_app_event(TEST_APP_SECRET, "msg_t2", now, updated)
        .await;
    app.drive().await;
    let acme = contacts_with(&app, "acme", "event@example.com").await;
    assert_eq!(acme[0]["fields"]["name"], "From the app", "untouched");
    let default = contacts_with(&app, "default", "event@example.com").await;
    assert_eq!(default.len(), 1, "{default:?}");
    assert_eq!(default[0]["fields"]["name"], "Default's");
    assert_ne!(default[0]["id"], acme[0]["id"]);

    let malformed = r#"{"type":"contact.created","tenant":"a/b","data":{"email":"x@example.com"}}"#;
    let refused = app
        .post_app_event(TEST_APP_SECRET, "msg_t3", now, malformed)
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["code"],
        "invalid_tenant"
    );
}

#[tokio::test]
async fn a_tenants_own_api_key_acts_for_that_tenant_only_and_a_platform_key_for_any() {
    const ACME_KEY: &str = "acme-only-key-0123456789";
    let app = tandem_tests::spawn_app_with(pipedrive_sim::SimConfig::default(), |settings| {
        settings
            .security
            .tenant_api_keys
            .push(tandem_engine::config::TenantApiKey {
                tenant: tenant("acme"),
                key: tandem_engine::config::Redacted::new(ACME_KEY.to_owned()),
            });
    })
    .await;
    let create = |email: &str| json!({ "email": email, "fields": { "name": "Ada" } });
    let with_key = |method: Method, path: &str| {
        app.http
            .request(method, format!("{}{path}", app.base_url))
            .bearer_auth(ACME_KEY)
    };

    // No header: the key's own tenant.
    let (status, created) =
        call(with_key(Method::POST, "/api/v1/contacts").json(&create("ada@acme.example"))).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        contacts_with(&app, "acme", "ada@acme.example").await.len(),
        1
    );
    assert!(contacts_with(&app, "default", "ada@acme.example")
        .await
        .is_empty());
    // Its own tenant named: the same.
    let named = with_key(Method::GET, "/api/v1/contacts?email=ada@acme.example")
        .header("Tandem-Tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(named.status(), StatusCode::OK);
    // Another tenant named, even the default one: refused.
    for other in ["globex", "default"] {
        let (status, error) =
            call(with_key(Method::GET, "/api/v1/contacts").header("Tandem-Tenant", other)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{other}: {error}");
        assert_eq!(error["code"], "tenant_forbidden", "{error}");
    }
    // The platform key (security.api_keys) still names any tenant.
    let (status, _) = call(as_tenant(&app, "globex", Method::GET, "/api/v1/contacts")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_console_and_the_admin_api_show_a_named_connections_duplicates_and_emails() {
    let app = spawn_app().await;
    let sim = app.sim.handle();
    let company = sim.add_company(0);
    let mut twins = Vec::new();
    for name in ["Twin One", "Twin Two"] {
        twins.push(
            sim.insert_person_in(
                company.company_id,
                json!({ "name": name, "emails": [{ "value": "twin@acme.example", "primary": true }] }),
            )
            .unwrap(),
        );
    }
    let acme = connect_synced(&app, &tenant("acme"), &company.api_token).await;

    // The default tenant has no connection: its report is not there; acme's is, when named.
    let default = app
        .admin(Method::GET, "/admin/api/duplicates")
        .send()
        .await
        .unwrap();
    assert_eq!(default.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (status, groups) = call(app.admin(
        Method::GET,
        &format!("/admin/api/duplicates?connection={acme}"),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(groups[0]["members"].as_array().unwrap().len(), 2);

    // The pages of the connection, linked from its card, and their forms name it.
    let cards = app.admin_page("/admin").await;
    assert!(cards.contains(&format!("/admin/duplicates?connection={acme}")));
    let page = app
        .admin_page(&format!("/admin/duplicates?connection={acme}"))
        .await;
    assert!(
        page.contains(&format!(r#"name=connection_id value="{acme}""#)),
        "{page}"
    );
    let emails = app
        .admin_page(&format!("/admin/emails?connection={acme}"))
        .await;
    assert!(emails.contains(&format!(r#"name=connection_id value="{acme}""#)));

    // The contact search says whose each contact is.
    let found = app
        .admin_page("/admin/contacts?q=twin%40acme.example")
        .await;
    assert!(
        found.contains("<td class=tenant><code>acme</code></td>"),
        "{found}"
    );

    // Merging through the API names the connection; the two persons become one.
    let (status, merged) = call(app.admin(Method::POST, "/admin/api/duplicates/merge").json(
        &json!({
            "survivor_person_id": twins[0],
            "merged_person_id": twins[1],
            "connection_id": acme.to_string(),
        }),
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["survivor_person_id"], twins[0]);
}

#[tokio::test]
async fn the_sync_log_says_which_connection_and_tenant_each_entry_is_about_and_filters_by_tenant() {
    let app = spawn_app().await;
    let (acme, ..) = company_for(&app, &tenant("acme"), "Ada Acme", "ada@acme.example").await;
    let (globex, ..) =
        company_for(&app, &tenant("globex"), "Gus Globex", "gus@globex.example").await;

    // Both initial syncs wrote their entries; acme's filter shows acme's only.
    let (status, entries) = call(app.admin(Method::GET, "/admin/api/sync-log?tenant=acme")).await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    let entries = entries.as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["kind"] == "initial_sync_finished"),
        "{entries:?}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["connection_id"] == acme.to_string()),
        "{entries:?}"
    );
    let (_, every) = call(app.admin(Method::GET, "/admin/api/sync-log")).await;
    assert!(every
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["connection_id"] == globex.to_string()));

    // The page names each entry's connection and its tenant, and filters the same way.
    let page = app.admin_page("/admin/log?tenant=acme").await;
    assert!(
        page.contains(&format!(
            r#"<a href="/admin/log?connection_id={acme}">Pipedrive · "#
        )),
        "{page}"
    );
    assert!(page.contains(r#"tenant <a href="/admin/log?tenant=acme"><code>acme</code></a>"#));
    assert!(!page.contains(&format!("/admin/log?connection_id={globex}\">")));
    assert!(page.contains(r#"<input name=tenant value="acme""#));

    // A tenant that is not a tenant id is a validation error naming the field.
    let (status, error) = call(app.admin(Method::GET, "/admin/api/sync-log?tenant=a%20b")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["fields"][0]["field"], "tenant", "{error}");
}
