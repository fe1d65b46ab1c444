//! Connections: OAuth connect, token refresh (before expiry and on 401), api_domain moves,
//! company-change refusal, disconnect with revoke, uninstall, encryption at rest.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tandem_engine::sync::connections::{self, state};
use tandem_engine::sync::{app::local, connections::admin, connections::tokens};
use tandem_tests::fields::{email, fields, name};
use tandem_tests::{spawn_app, spawn_app_with, TestApp};

async fn stored_tokens(app: &TestApp) -> (String, Option<String>) {
    let id = app.connection_id().await;
    let conn = connections::load(&app.engine, id.into()).await.unwrap();
    let access = match &conn.session.auth {
        tandem_engine::crm::Auth::Bearer(t) => t.expose().clone(),
        tandem_engine::crm::Auth::ApiToken(t) => t.expose().clone(),
    };
    let refresh = refresh_token(app).await;
    (access, refresh)
}

async fn refresh_token(app: &TestApp) -> Option<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.store.db();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT refresh_token_enc FROM connection",
        ))
        .await
        .unwrap()?;
    let sealed: Option<Vec<u8>> = row.try_get("", "refresh_token_enc").unwrap();
    sealed.map(|s| app.engine.vault.decrypt_string(&s).unwrap())
}

async fn state_of(app: &TestApp) -> String {
    admin::connection_status(&app.engine, app.connection_id().await.into())
        .await
        .unwrap()
        .state
}

async fn push_new_contact(app: &TestApp, mail: &str) -> uuid::Uuid {
    let created = local::create_contact(
        &app.engine,
        fields([name("Ada Lovelace"), email(mail)]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    created.contact_id.uuid()
}

#[tokio::test]
async fn connecting_with_oauth_stores_the_tokens_encrypted_and_the_database_does_not_contain_them()
{
    let app = spawn_app().await;
    let answer = app.oauth_connect(false).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(answer.text().await.unwrap().contains("connected"));

    let status = admin::connection_status(&app.engine, app.connection_id().await.into())
        .await
        .unwrap();
    assert_eq!(status.state, state::CONNECTED);
    assert_eq!(status.auth_kind, "oauth");
    assert_eq!(status.company_id, Some(app.sim.handle().company_id()));
    assert_eq!(status.user_id, Some(app.sim.handle().config().user_id));
    assert_eq!(app.sim.handle().webhooks().len(), 4, "webhooks registered");
    assert!(app.sim.handle().person_field_key("apId").is_some());

    let (access, refresh) = stored_tokens(&app).await;
    let refresh = refresh.expect("a refresh token is stored");
    assert!(access.starts_with("v1u:"));
    if app.database.is_postgres() {
        use sea_orm::{ConnectionTrait, Statement};
        let db = app.store.db();
        let rows = db
            .query_all(Statement::from_string(
                db.get_database_backend(),
                "SELECT encode(access_token_enc, 'escape') AS a, encode(refresh_token_enc, 'escape') AS r FROM connection",
            ))
            .await
            .unwrap();
        for row in rows {
            let a: String = row.try_get("", "a").unwrap();
            let r: String = row.try_get("", "r").unwrap();
            assert!(!a.contains(&access) && !r.contains(&refresh));
        }
    } else {
        let path = app.database.url.trim_start_matches("sqlite://").to_owned();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        for secret in [&access, &refresh] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "the database file holds a token in clear"
            );
        }
    }
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_on_401_and_the_write_goes_through() {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let (before, _) = stored_tokens(&app).await;
    app.sim.handle().expire_access_tokens();

    push_new_contact(&app, "ada@example.com").await;

    assert_eq!(
        app.sim.handle().persons_by_email("ada@example.com").len(),
        1
    );
    let (after, _) = stored_tokens(&app).await;
    assert_ne!(before, after, "a new access token was stored");
    assert_eq!(state_of(&app).await, state::CONNECTED);
    assert!(app.log_entries("token_expired").await.is_empty());
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_it_is_used() {
    let app = spawn_app().await;
    app.sim
        .handle()
        .set_access_token_ttl(std::time::Duration::from_secs(120));
    app.oauth_connect(false).await;
    let (before, _) = stored_tokens(&app).await;
    let refreshes = app.sim.handle().calls("oauth.token");

    let conn = connections::load(&app.engine, app.connection_id().await.into())
        .await
        .unwrap();

    assert_eq!(app.sim.handle().calls("oauth.token"), refreshes + 1);
    let tandem_engine::crm::Auth::Bearer(token) = &conn.session.auth else {
        panic!("an OAuth connection uses a Bearer token");
    };
    assert_ne!(token.expose(), &before);
}

#[tokio::test]
async fn a_refused_refresh_moves_the_connection_to_token_expired_with_the_401_in_the_sync_log() {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    app.sim.handle().revoke_all_tokens();

    let contact = push_new_contact(&app, "grace@example.com").await;

    assert_eq!(state_of(&app).await, state::TOKEN_EXPIRED);
    let expired = app.log_entries("token_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status, Some(401));
    assert_eq!(expired[0].contact_id, Some(contact.into()));
    assert_eq!(
        expired[0].remote_error.as_deref(),
        Some("unauthorized access (Please check developers.pipedrive.com)")
    );
    assert!(expired[0].hint.as_deref().unwrap().contains("Reconnect"));
    let refused = app.log_entries("token_refresh_failed").await;
    assert_eq!(refused[0].status, Some(400));
    assert_eq!(
        refused[0].remote_error.as_deref(),
        Some("Invalid grant: refresh_token is invalid")
    );

    // Reconnecting resumes the paused write on the same connection.
    let id = app.connection_id().await;
    assert_eq!(app.oauth_connect(false).await.status(), StatusCode::OK);
    assert_eq!(app.connection_id().await, id);
    app.drive().await;
    assert_eq!(
        app.sim.handle().persons_by_email("grace@example.com").len(),
        1
    );
}

#[tokio::test]
async fn an_api_domain_move_is_followed_on_refresh_and_logged_as_a_mismatch() {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let old = app.sim.base_url().to_owned();
    let port = app
        .sim
        .handle()
        .base_url()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let moved = format!("http://localhost:{port}");
    app.sim.handle().set_api_domain(&moved);
    app.sim.handle().expire_access_tokens();

    push_new_contact(&app, "moved@example.com").await;

    let status = admin::connection_status(&app.engine, app.connection_id().await.into())
        .await
        .unwrap();
    assert_eq!(status.api_domain, moved);
    let entries = app.log_entries("api_domain_mismatch").await;
    assert_eq!(entries.len(), 1);
    assert!(entries[0].message.contains(&old), "{}", entries[0].message);
    assert!(entries[0].message.contains(&moved));
    assert_eq!(
        app.sim.handle().persons_by_email("moved@example.com").len(),
        1
    );
}

#[tokio::test]
async fn reconnecting_to_a_different_company_is_refused_unless_the_admin_confirms_a_reset() {
    let app = spawn_app().await;
    app.sim.handle().seed_persons(3);
    app.oauth_connect(false).await;
    let first = app.connection_id().await;
    tandem_engine::sync::inbound::poller::initial_sync(&app.engine, first.into(), |_| {})
        .await
        .unwrap();
    let old_company = app.sim.handle().company_id();
    app.sim.handle().switch_company(old_company + 1);

    let refused = app.oauth_connect(false).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let page = refused.text().await.unwrap();
    assert!(page.contains("Company changed"), "{page}");
    assert!(page.contains("company_changed"));
    let status = admin::connection_status(&app.engine, first.into())
        .await
        .unwrap();
    assert_eq!(status.company_id, Some(old_company));
    assert_eq!(status.linked_persons, 3, "nothing was dropped");
    assert_eq!(app.log_entries("company_changed").await.len(), 1);

    let accepted = app.oauth_connect(true).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    let list = admin::list_connections(&app.engine).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].company_id, Some(old_company + 1));
    assert_eq!(list[0].linked_persons, 0);
    assert_eq!(app.log_entries("company_reset").await.len(), 1);
}

#[tokio::test]
async fn disconnecting_revokes_the_token_removes_webhooks_and_a_reconnect_makes_no_duplicates() {
    let app = spawn_app().await;
    app.sim.handle().seed_persons(4);
    app.oauth_connect(false).await;
    let id = app.connection_id().await;
    tandem_engine::sync::inbound::poller::initial_sync(&app.engine, id.into(), |_| {})
        .await
        .unwrap();
    let (_, refresh) = stored_tokens(&app).await;
    let refresh = refresh.unwrap();
    let contacts_before = contact_count(&app).await;

    let answer = app
        .admin(Method::DELETE, &format!("/admin/api/connections/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["webhooks_removed"], 4);
    assert_eq!(body["token_revoked"], true);

    assert!(app.sim.handle().webhooks().is_empty());
    let p = &app.engine.settings.pipedrive;
    let reuse = app
        .engine
        .crm
        .pipedrive()
        .oauth_token(
            &p.oauth_base_url,
            &p.client_id,
            p.client_secret.expose(),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(
        reuse.unwrap_err().status,
        Some(400),
        "the refresh token is revoked"
    );
    let status = admin::connection_status(&app.engine, id.into())
        .await
        .unwrap();
    assert_eq!(status.state, state::DISCONNECTED);
    assert_eq!(status.linked_persons, 4, "links are kept");
    assert_eq!(
        contact_count(&app).await,
        contacts_before,
        "contacts are kept"
    );

    app.oauth_connect(false).await;
    assert_eq!(
        app.connection_id().await,
        id,
        "the same connection comes back"
    );
    tandem_engine::sync::inbound::poller::initial_sync(&app.engine, id.into(), |_| {})
        .await
        .unwrap();
    assert_eq!(contact_count(&app).await, contacts_before, "no duplicates");
    assert_eq!(app.sim.handle().webhooks().len(), 4);
}

async fn contact_count(app: &TestApp) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.store.db();
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM contact",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

#[tokio::test]
async fn an_oauth_state_is_single_use_and_a_forged_one_is_refused() {
    let app = spawn_app().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = no_redirects
        .get(format!("{}/connections/pipedrive/connect", app.base_url))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", app.sim.base_url())));
    let consent = no_redirects.get(&authorize).send().await.unwrap();
    let callback = consent.headers()["location"].to_str().unwrap().to_owned();

    assert_eq!(
        no_redirects.get(&callback).send().await.unwrap().status(),
        StatusCode::OK
    );
    let replay = no_redirects.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(replay.text().await.unwrap().contains("oauth_state_invalid"));

    let forged = callback.replace("state=", "state=x");
    let answer = no_redirects.get(&forged).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);

    let unauthenticated = no_redirects
        .get(format!("{}/connections/pipedrive/connect", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::SEE_OTHER);
    assert_eq!(unauthenticated.headers()["location"], "/admin/login");
}

#[tokio::test]
async fn a_denied_consent_leaves_nothing_connected_and_says_why() {
    let app = spawn_app().await;
    app.sim.handle().set_consent(false);
    let answer = app.oauth_connect(false).await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let page = answer.text().await.unwrap();
    assert!(
        page.contains("oauth_denied") && page.contains("user_denied"),
        "{page}"
    );
    assert!(admin::list_connections(&app.engine)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn an_api_token_connection_is_added_listed_and_removed_through_the_admin_api() {
    let app = spawn_app().await;
    let added = app
        .admin(Method::POST, "/admin/api/connections")
        .json(&json!({ "api_token": app.sim.handle().config().api_token, "api_domain": app.sim.base_url() }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    let id = added.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let list: Value = app
        .admin(Method::GET, "/admin/api/connections")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["id"], id);
    assert_eq!(list[0]["state"], "connected");
    assert_eq!(list[0]["label"], "Connected");
    assert_eq!(list[0]["pending"], 0);
    assert_eq!(list[0]["dead"], 0);

    let bad = app
        .admin(Method::POST, "/admin/api/connections")
        .json(&json!({ "api_token": "wrong", "api_domain": app.sim.base_url() }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "connection_unavailable");
    assert!(body["detail"].as_str().unwrap().contains("401"));

    let removed = app
        .admin(Method::DELETE, &format!("/admin/api/connections/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    assert!(app.sim.handle().webhooks().is_empty());
    let again: Value = app
        .admin(Method::GET, &format!("/admin/api/connections/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["state"], "disconnected");
}

#[tokio::test]
async fn pipedrives_uninstall_notice_marks_the_connection_app_removed() {
    let app = spawn_app().await;
    app.oauth_connect(false).await;
    let notice = json!({ "client_id": "sim-client", "company_id": app.sim.handle().company_id(), "user_id": 1, "timestamp": "2026-01-01T00:00:00Z" });

    let forged = app
        .http
        .delete(format!("{}/connections/pipedrive/callback", app.base_url))
        .basic_auth("sim-client", Some("wrong"))
        .json(&notice)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(state_of(&app).await, state::CONNECTED);

    let answer = app
        .http
        .delete(format!("{}/connections/pipedrive/callback", app.base_url))
        .basic_auth("sim-client", Some("sim-secret"))
        .json(&notice)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(state_of(&app).await, state::APP_REMOVED);
    assert_eq!(app.log_entries("app_removed").await.len(), 1);
}

#[tokio::test]
async fn an_api_token_connection_is_not_refreshable() {
    let app = spawn_app_with(Default::default(), |_| {}).await;
    let id = app.connect_pipedrive().await;
    let refreshed = tokens::refresh_connection(&app.engine, id.into(), None, None)
        .await
        .unwrap();
    assert_eq!(refreshed, tokens::Refreshed::NotRefreshable);
}
