use serde_json::json;
use tandem_engine::sync::{connections, inbound::duplicates, links};
use tandem_tests::{pid, spawn_app};

async fn three_same_email_persons(app: &tandem_tests::TestApp) -> Vec<i64> {
    let sim = app.sim.handle();
    (0..3)
        .map(|i| {
            sim.insert_person(json!({ "name": format!("Twin {i}"), "emails": [{ "value": "twin@example.com", "primary": true }] }))
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn three_persons_sharing_an_email_are_one_group_of_three_linked_local_contacts() {
    let app = spawn_app().await;
    let persons = three_same_email_persons(&app).await;
    let connection = app.connect_and_sync().await;
    let conn = connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let groups = duplicates::list(&app.engine, &conn, false).await.unwrap();
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group.kind, duplicates::kind::SAME_EMAIL_PERSONS);
    assert_eq!(group.key, "twin@example.com");
    let mut linked: Vec<i64> = group
        .members
        .iter()
        .map(|m| m.person_id.unwrap().get())
        .collect();
    linked.sort_unstable();
    assert_eq!(
        linked, persons,
        "three separate contacts, each linked to its own person"
    );
    assert!(group.differing_fields.contains(&"name".to_owned()));
    let csv = duplicates::to_csv(&groups);
    assert_eq!(
        csv.lines().count(),
        4,
        "header + one line per member:\n{csv}"
    );

    // Ignoring is remembered.
    duplicates::set_state(&app.engine, group.id, duplicates::state::IGNORED)
        .await
        .unwrap();
    assert!(duplicates::list(&app.engine, &conn, false)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        duplicates::list(&app.engine, &conn, true).await.unwrap()[0].state,
        "ignored"
    );
}

#[tokio::test]
async fn merging_two_persons_through_tandem_leaves_one_person_one_link_and_an_updated_report() {
    let app = spawn_app().await;
    let persons = three_same_email_persons(&app).await;
    let connection = app.connect_and_sync().await;
    let conn = connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let (survivor, merged) = (persons[0], persons[1]);
    let merged_contact = links::by_person(app.store.db(), connection.into(), pid(merged))
        .await
        .unwrap()
        .unwrap()
        .contact_id;

    let survivor_contact =
        duplicates::merge_persons(&app.engine, &conn, pid(survivor), pid(merged))
            .await
            .unwrap();
    app.drive().await;

    let sim = app.sim.handle();
    assert!(
        sim.person(merged).is_none_or(|p| p["is_deleted"] == true),
        "the merged person is gone in Pipedrive"
    );
    assert_eq!(sim.persons_by_email("twin@example.com").len(), 2);
    assert!(
        links::by_person(app.store.db(), connection.into(), pid(merged))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        links::by_person(app.store.db(), connection.into(), pid(survivor))
            .await
            .unwrap()
            .unwrap()
            .contact_id,
        survivor_contact.into()
    );
    let archived = app.contact(merged_contact.uuid()).await;
    assert!(archived.archived, "the merged contact is kept, archived");
    let groups = duplicates::list(&app.engine, &conn, false).await.unwrap();
    assert_eq!(groups[0].members.len(), 2, "the report follows");
    // The webhooks of the merge come back: nothing is re-created.
    app.await_person_webhooks(2).await;
    assert_eq!(sim.calls("v2.addPerson"), 0);
    assert_eq!(sim.persons_by_email("twin@example.com").len(), 2);
}

#[tokio::test]
async fn a_merge_done_in_pipedrive_is_followed_through_its_webhook() {
    let app = spawn_app().await;
    let persons = three_same_email_persons(&app).await;
    let connection = app.connect_and_sync().await;
    let (survivor, merged) = (persons[2], persons[0]);
    let merged_contact = links::by_person(app.store.db(), connection.into(), pid(merged))
        .await
        .unwrap()
        .unwrap()
        .contact_id;
    let sim = app.sim.handle();
    sim.merge_persons(merged, survivor).unwrap();
    app.await_person_webhooks(2).await;
    assert!(
        links::by_person(app.store.db(), connection.into(), pid(merged))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        links::by_person(app.store.db(), connection.into(), pid(survivor))
            .await
            .unwrap()
            .is_some()
    );
    assert!(app.contact(merged_contact.uuid()).await.archived);
    assert_eq!(sim.calls("v2.addPerson"), 0, "no duplicate was created");
}

#[tokio::test]
async fn a_person_whose_ap_id_points_at_a_contact_linked_elsewhere_is_reported_and_kept_separate() {
    let app = spawn_app().await;
    let connection = app.connect_and_sync().await;
    let created = tandem_engine::sync::app::local::create_contact(
        &app.engine,
        tandem_tests::fields::fields([
            tandem_tests::fields::name("Original"),
            tandem_tests::fields::email("orig@example.com"),
        ]),
        true,
    )
    .await
    .unwrap();
    app.drive().await;
    let sim = app.sim.handle();
    let apid_key = sim.person_field_key("apId").unwrap();
    // Someone copies the person in Pipedrive, apId included.
    let copy = sim
        .create_person_as_user(json!({ "name": "Copy", "emails": [{ "value": "copy@example.com" }], "custom_fields": { apid_key: created.contact_id.to_string() } }))
        .unwrap();
    app.await_person_webhooks(2).await;
    let copy_id = copy["id"].as_i64().unwrap();
    let copy_link = links::by_person(app.store.db(), connection.into(), pid(copy_id))
        .await
        .unwrap()
        .expect("the copy is linked to a contact of its own");
    assert_ne!(copy_link.contact_id, created.contact_id);
    let conn = connections::load(&app.engine, connection.into())
        .await
        .unwrap();
    let groups = duplicates::list(&app.engine, &conn, false).await.unwrap();
    let conflict = groups
        .iter()
        .find(|g| g.kind == duplicates::kind::APID_CONFLICT)
        .expect("reported");
    assert_eq!(conflict.key, created.contact_id.to_string());
    assert!(conflict
        .members
        .iter()
        .any(|m| m.person_id == Some(pid(copy_id))));
}

#[tokio::test]
async fn the_admin_api_lists_exports_merges_and_ignores_duplicate_groups() {
    let app = spawn_app().await;
    let persons = three_same_email_persons(&app).await;
    app.connect_and_sync().await;
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth("test-admin-token");
    let groups: serde_json::Value = admin(
        app.http
            .get(format!("{}/admin/api/duplicates", app.base_url)),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["members"].as_array().unwrap().len(), 3);

    let csv = admin(
        app.http
            .get(format!("{}/admin/api/duplicates.csv", app.base_url)),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.text()
            .await
            .unwrap()
            .lines()
            .filter(|l| l.contains("twin@example.com"))
            .count(),
        3
    );

    let unauthenticated = app
        .http
        .get(format!("{}/admin/api/duplicates", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);

    let bad = admin(
        app.http
            .post(format!("{}/admin/api/duplicates/merge", app.base_url)),
    )
    .json(&json!({ "survivor_person_id": persons[0], "merged_person_id": persons[0] }))
    .send()
    .await
    .unwrap();
    assert_eq!(bad.status(), 422, "a person cannot be merged with itself");

    let merged = admin(
        app.http
            .post(format!("{}/admin/api/duplicates/merge", app.base_url)),
    )
    .json(&json!({ "survivor_person_id": persons[0], "merged_person_id": persons[1] }))
    .send()
    .await
    .unwrap();
    assert_eq!(merged.status(), 200);
    assert_eq!(
        app.sim.handle().persons_by_email("twin@example.com").len(),
        2
    );

    let group_id = groups[0]["id"].as_str().unwrap();
    let ignored = admin(app.http.post(format!(
        "{}/admin/api/duplicates/{group_id}/ignore",
        app.base_url
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(ignored.status(), 200);
    let open: serde_json::Value = admin(
        app.http
            .get(format!("{}/admin/api/duplicates", app.base_url)),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert!(
        open.as_array().unwrap().is_empty(),
        "an ignored group stays out of the open report"
    );
}
