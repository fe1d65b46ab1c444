use tandem_tests::spawn_app;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn readyz_answers_ok_when_the_database_is_reachable_and_migrated() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_fails_with_not_ready_when_the_database_is_gone() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    app.store.clone().close().await.unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "not_ready");
}

#[tokio::test]
async fn readyz_fails_when_migrations_are_pending() {
    let app = spawn_app().await;
    app.store.migrate_down(Some(1)).await.unwrap();
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("pending"),
        "{body}"
    );
}
