use std::collections::HashSet;

use chrono::Utc;
use sea_orm::TransactionTrait;
use tandem_engine::queue::{self, JobPayload, Priority};
use tandem_tests::spawn_app;

#[tokio::test]
async fn concurrent_claims_never_share_a_job_and_never_run_two_jobs_of_one_contact() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let db = app.store.db();
    let now = Utc::now() - chrono::Duration::seconds(1);
    let keys: Vec<uuid::Uuid> = (0..10).map(|_| uuid::Uuid::now_v7()).collect();
    let txn = db.begin().await.unwrap();
    for round in 0..5 {
        for key in &keys {
            // Actions do not coalesce: five jobs per contact stay five jobs, in order.
            let payload = JobPayload::Action {
                action_id: uuid::Uuid::now_v7(),
                contact_id: *key,
            };
            assert!(queue::enqueue(
                &txn,
                connection,
                &key.to_string(),
                Priority::Action,
                &payload,
                now + chrono::Duration::milliseconds(round)
            )
            .await
            .unwrap());
        }
    }
    txn.commit().await.unwrap();

    let mut seen = HashSet::new();
    for _round in 0..5 {
        let lease = chrono::Duration::seconds(60);
        let (a, b, c) = tokio::join!(
            queue::claim(db, Utc::now(), lease, 8),
            queue::claim(db, Utc::now(), lease, 8),
            queue::claim(db, Utc::now(), lease, 8)
        );
        let claimed: Vec<_> = [a.unwrap(), b.unwrap(), c.unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(claimed.len(), 10, "one job per contact per round");
        let keys_this_round: HashSet<_> = claimed.iter().map(|j| j.ordering_key.clone()).collect();
        assert_eq!(
            keys_this_round.len(),
            10,
            "never two jobs of one contact at once"
        );
        for job in &claimed {
            assert!(seen.insert(job.id), "job {} claimed twice", job.id);
        }
        assert!(
            queue::claim(db, Utc::now(), lease, 8)
                .await
                .unwrap()
                .is_empty(),
            "nothing else is claimable while they run"
        );
        for job in claimed {
            queue::complete(db, job.id).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 50);
}

#[tokio::test]
async fn a_job_whose_worker_died_is_claimed_again_after_its_lease() {
    let app = spawn_app().await;
    let connection = app.connect_pipedrive().await;
    let db = app.store.db();
    let contact = uuid::Uuid::now_v7();
    let txn = db.begin().await.unwrap();
    queue::enqueue(
        &txn,
        connection,
        &contact.to_string(),
        Priority::Edit,
        &JobPayload::PushContact {
            contact_id: contact,
        },
        Utc::now(),
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    let first = queue::claim(db, Utc::now(), chrono::Duration::seconds(30), 5)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // The worker dies; before the lease ends nobody else takes the job...
    assert!(queue::claim(
        db,
        Utc::now() + chrono::Duration::seconds(29),
        chrono::Duration::seconds(30),
        5
    )
    .await
    .unwrap()
    .is_empty());
    // ...after it, the job comes back.
    let again = queue::claim(
        db,
        Utc::now() + chrono::Duration::seconds(31),
        chrono::Duration::seconds(30),
        5,
    )
    .await
    .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, first[0].id);
}
