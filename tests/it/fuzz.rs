//! Garbage at the webhook receiver: never a panic, never a 5xx, always a 4xx; and events whose
//! envelope is right but whose person data is arbitrary never break the inbox worker.

use base64::Engine as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tandem_engine::sync::connections;
use tandem_tests::spawn_app;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn arbitrary_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("name".to_owned()),
                    Just("emails".to_owned()),
                    Just("phones".to_owned()),
                    Just("value".to_owned()),
                    Just("custom_fields".to_owned()),
                    Just("update_time".to_owned()),
                    Just("owner_id".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn arbitrary_bytes_with_valid_credentials_always_get_a_4xx_and_never_a_5xx() {
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let connection = rt.block_on(app.connect_pipedrive());
    let (user, password) = rt
        .block_on(connections::webhook_credentials(
            &app.engine,
            app.store.db(),
            connection.into(),
        ))
        .unwrap()
        .unwrap();
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let url = format!("{}/webhooks/pipedrive/{connection}", app.base_url);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let garbage = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        arbitrary_json().prop_map(|v| v.to_string().into_bytes()),
        arbitrary_json().prop_map(|v| serde_json::json!({ "meta": v }).to_string().into_bytes()),
    ];
    runner
        .run(&garbage, |body| {
            let status = rt.block_on(async {
                app.http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
            prop_assert!(
                (400..500).contains(&status),
                "status {status} for {:?}",
                String::from_utf8_lossy(&body)
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn well_formed_envelopes_around_arbitrary_person_data_are_stored_and_never_break_the_inbox_worker()
{
    let rt = runtime();
    let app = rt.block_on(spawn_app());
    let connection = rt.block_on(app.connect_and_sync());
    let (user, password) = rt
        .block_on(connections::webhook_credentials(
            &app.engine,
            app.store.db(),
            connection.into(),
        ))
        .unwrap()
        .unwrap();
    let url = format!("{}/webhooks/pipedrive/{connection}", app.base_url);
    let mut runner = TestRunner::new(Config {
        cases: 120,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(
            &(arbitrary_json(), prop_oneof![Just("create"), Just("change"), Just("delete")]),
            |(data, action)| {
                let n = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let body = serde_json::json!({
                    "meta": { "id": format!("fuzz-{n}"), "entity": "person", "action": action, "entity_id": "1" },
                    "data": data,
                });
                let status = rt.block_on(async {
                    let status = app
                        .http
                        .post(&url)
                        .basic_auth(&user, Some(&password))
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16();
                    app.drive().await;
                    status
                });
                prop_assert_eq!(status, 200);
                Ok(())
            },
        )
        .unwrap();
    let pending = rt.block_on(async {
        use sea_orm::{ConnectionTrait, Statement};
        let db = app.store.db();
        db.query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) FROM inbox_event WHERE state = 'pending'".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap()
    });
    assert_eq!(pending, 0, "every event was applied or marked failed");
}
