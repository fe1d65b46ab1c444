//! The connector against `salesforce-sim` on 127.0.0.1: paging, changes and deletes, creates
//! with placeholders, batches split at 200 with per-record errors, every error code's class,
//! the limit header and the reserve, field-level security, Tooling field creation with its
//! permission, journey objects, and OAuth (PKCE exchange, refresh, revoke) on both login hosts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tandem_core::ConnectionId;

use salesforce_sim::{FaultSpec, OrgKind, Permissions, SfSim, SfSimConfig};
use serde_json::{json, Value};
use tandem_core::{
    keys, ApId, CrmErrorKind, EmailAddress, ErrorClass, FieldKey, FieldRule, FieldValue,
};
use uuid::Uuid;

use super::{SalesforceClient, SfConfig, SfOAuthApp};
use crate::clock::TestClock;
use crate::config::Redacted;
use crate::crm::fields::{FieldMap, MappedField, RemoteField};
use crate::crm::limiter::Limiters;
use crate::crm::records::{LoggedEmail, NewActivity, NewDeal, TokenKind};
use crate::crm::session::{Auth, Session};
use crate::crm::{Crm, CrmPerson};

struct Env {
    sim: SfSim,
    crm: Crm,
    session: Session,
    /// The connector's clock, moved together with the simulator's.
    clock: TestClock,
}

async fn start(config: SfSimConfig) -> SfSim {
    salesforce_sim::start(config).await.unwrap()
}

fn crm_for(sim: &SfSim, sandbox: bool, sf: SfConfig, clock: &TestClock) -> Crm {
    let h = sim.handle();
    let client = SalesforceClient::new(Duration::from_secs(10), Limiters::default(), sf)
        .with_clock(Arc::new(clock.clone()));
    let app = SfOAuthApp::new(
        sim.login_url(sandbox),
        &h.config().client_id,
        Redacted::new(h.config().client_secret.clone()),
    );
    Crm::Salesforce(client, app)
}

fn session_for(sim: &SfSim, org: OrgKind, user: Option<&str>) -> Session {
    let tokens = sim.handle().issue_tokens(org, user).unwrap();
    Session {
        connection_id: ConnectionId::new(Uuid::new_v4()),
        api_domain: tokens.instance_url,
        auth: Auth::Bearer(Redacted::new(tokens.access_token)),
        seed_burst: 20,
    }
}

async fn env_with(config: SfSimConfig, sf: SfConfig) -> Env {
    let sim = start(config).await;
    let clock = TestClock::new();
    let crm = crm_for(&sim, false, sf, &clock);
    let session = session_for(&sim, OrgKind::Production, None);
    Env {
        sim,
        crm,
        session,
        clock,
    }
}

async fn env(config: SfSimConfig) -> Env {
    env_with(config, SfConfig::default()).await
}

fn key(k: &str) -> FieldKey {
    FieldKey::new(k).unwrap()
}

fn map_with(custom: &[(&str, &str, &str)]) -> FieldMap {
    let mut map = FieldMap::defaults(None);
    for (local, remote, field_type) in custom {
        map.fields.push(MappedField {
            local: key(local),
            remote: RemoteField::Custom {
                key: (*remote).into(),
                field_type: (*field_type).into(),
                currency: None,
            },
            rule: FieldRule::default(),
        });
    }
    map
}

async fn everything(
    e: &Env,
    map: &FieldMap,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> (Vec<CrmPerson>, usize) {
    let (mut items, mut pages) = (Vec::new(), 0);
    let streams: Vec<Option<&str>> = match since {
        None => vec![None],
        Some(_) => e.crm.change_streams().iter().copied().map(Some).collect(),
    };
    for stream in streams {
        let mut cursor = None;
        loop {
            let page = match (stream, since) {
                (Some(stream), Some(since)) => e
                    .crm
                    .changes_since(&e.session, map, stream, since, cursor)
                    .await
                    .unwrap(),
                _ => e
                    .crm
                    .list_people(&e.session, map, cursor, None)
                    .await
                    .unwrap(),
            };
            pages += 1;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    (items, pages)
}

fn client(e: &Env) -> &SalesforceClient {
    e.crm.salesforce_client().unwrap()
}

async fn count(e: &Env, soql: &str) -> u64 {
    client(e).query(&e.session, soql).await.unwrap().total_size
}

#[tokio::test]
async fn listing_pages_leads_by_2000_then_contacts() {
    let e = env(SfSimConfig {
        leads: 2100,
        contacts: 30,
        ..Default::default()
    })
    .await;
    let leads = count(&e, "SELECT Id FROM Lead WHERE IsConverted = false").await as usize;
    let contacts = count(&e, "SELECT Id FROM Contact").await as usize;
    assert!(leads > 2000, "{leads}");
    let first = e
        .crm
        .list_people(&e.session, &FieldMap::defaults(None), None, None)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 2000);
    assert!(first
        .next_cursor
        .as_deref()
        .unwrap()
        .starts_with("Lead|/services/data/"));
    let (items, pages) = everything(&e, &FieldMap::defaults(None), None).await;
    assert_eq!(pages, 3, "2,000 leads, the rest, the contacts");
    assert_eq!(
        items.iter().filter(|p| p.key.starts_with("00Q")).count(),
        leads
    );
    assert_eq!(
        items.iter().filter(|p| p.key.starts_with("003")).count(),
        contacts
    );
    assert!(items.iter().all(|p| !p.deleted && p.key.len() == 18));
    assert_eq!(
        e.sim.handle().calls("query.more"),
        1,
        "the full listing went past 2,000 once"
    );
    // Every listed person can be read back by its boundary id.
    let one = &items[2050];
    let read = e
        .crm
        .get_person(&e.session, &FieldMap::defaults(None), one.id)
        .await
        .unwrap();
    assert_eq!(read.key, one.key);
}

#[tokio::test]
async fn changes_since_follow_edits_conversions_and_deletes() {
    let e = env(SfSimConfig {
        leads: 5,
        contacts: 3,
        ..Default::default()
    })
    .await;
    let h = e.sim.handle();
    let map = FieldMap::defaults(None);
    let (all, _) = everything(&e, &map, None).await;
    let lead = all
        .iter()
        .find(|p| p.key.starts_with("00Q"))
        .unwrap()
        .clone();
    let gone = all
        .iter()
        .find(|p| p.key.starts_with("003"))
        .unwrap()
        .clone();
    let converted = all
        .iter()
        .filter(|p| p.key.starts_with("00Q"))
        .nth(1)
        .unwrap()
        .clone();
    let since = chrono::Utc::now() - chrono::Duration::seconds(1);
    h.update_record_as_user(
        OrgKind::Production,
        "Lead",
        &lead.key,
        json!({"LastName": "Changed"}),
    )
    .unwrap();
    let (_, contact) = h
        .convert_lead(OrgKind::Production, &converted.key, None, None)
        .unwrap();
    h.delete_record(OrgKind::Production, "Contact", &gone.key)
        .unwrap();
    // The deleted resource covers whole minutes: move both clocks past this one.
    let past_the_minute = Duration::from_secs(61);
    h.advance_clock(past_the_minute);
    e.clock
        .advance(chrono::Duration::from_std(past_the_minute).unwrap());
    let (changes, _) = everything(&e, &map, Some(since)).await;
    let changed = changes.iter().find(|p| p.key == lead.key).unwrap();
    assert_eq!(
        changed.snapshot.fields.get(&key(keys::NAME)),
        Some(&FieldValue::text(
            lead_first_name(&e, &lead.key).await + "Changed"
        ))
    );
    let conv = changes.iter().find(|p| p.key == converted.key).unwrap();
    assert!(conv.deleted);
    assert_eq!(
        conv.merged_into,
        Some(super::ids::person_surrogate(&contact))
    );
    let deleted = changes.iter().find(|p| p.key == gone.key).unwrap();
    assert!(deleted.deleted && deleted.id == gone.id);
    assert!(changes.iter().all(|p| p.key
        != all
            .iter()
            .filter(|p| p.key.starts_with("00Q"))
            .nth(2)
            .unwrap()
            .key));
}

#[tokio::test]
async fn a_contact_read_by_a_query_carries_its_accounts_name_and_a_lead_none() {
    let e = env(SfSimConfig::default()).await;
    let h = e.sim.handle();
    let account = h
        .insert_record(OrgKind::Production, "Account", json!({"Name": "Initech"}))
        .unwrap();
    h.insert_record(
        OrgKind::Production,
        "Contact",
        json!({"LastName": "Gibbons", "Email": "peter@initech.example", "AccountId": account}),
    )
    .unwrap();
    h.insert_record(
        OrgKind::Production,
        "Contact",
        json!({"LastName": "Waddams", "Email": "milton@initech.example"}),
    )
    .unwrap();
    h.insert_record(
        OrgKind::Production,
        "Lead",
        json!({"LastName": "Lumbergh", "Company": "Initech", "Email": "bill@initech.example"}),
    )
    .unwrap();
    let (people, _) = everything(&e, &FieldMap::defaults(None), None).await;
    let of = |address: &str| {
        people
            .iter()
            .find(|p| p.email.as_ref().is_some_and(|m| m.as_str() == address))
            .unwrap()
    };
    let peter = of("peter@initech.example");
    assert_eq!(peter.org_name.as_deref(), Some("Initech"));
    assert_eq!(peter.org_id, Some(super::ids::surrogate(&account)));
    assert_eq!(of("milton@initech.example").org_name, None);
    let bill = of("bill@initech.example");
    assert!(bill.lead && bill.org_name.is_none() && bill.org_id.is_none());
}

async fn lead_first_name(e: &Env, id: &str) -> String {
    let r = client(e)
        .get_record(&e.session, "Lead", id, &["FirstName".to_owned()])
        .await
        .unwrap();
    r.text("FirstName")
        .map(|f| format!("{f} "))
        .unwrap_or_default()
}

#[tokio::test]
async fn a_create_carries_the_ap_id_fills_placeholders_and_is_found_again() {
    let e = env(SfSimConfig::default()).await;
    let map = FieldMap::defaults(Some("tandem_id__c".into()));
    let field = e
        .crm
        .create_field(&e.session, "tandem_id__c", "string")
        .await
        .unwrap();
    assert!(field.writable && field.is_custom);
    let mut fields = BTreeMap::new();
    fields.insert(key(keys::EMAIL), FieldValue::text("new.person@example.com"));
    let ap = ApId::parse("ap-new-1").unwrap();
    let email = EmailAddress::parse("new.person@example.com").unwrap();
    let created = e
        .crm
        .create_person_detailed(&e.session, &map, &fields, &ap, Some(&email), None)
        .await
        .unwrap();
    let filled: Vec<&str> = created
        .placeholders
        .iter()
        .map(|p| p.field.as_str())
        .collect();
    assert_eq!(filled, ["LastName", "Company"]);
    let person = created.person;
    assert!(person.key.starts_with("00Q"), "a Lead by default");
    assert_eq!(person.ap_id, Some(ap.clone()));
    assert_eq!(
        person.snapshot.fields.get(&key(keys::NAME)),
        Some(&FieldValue::Cleared)
    );
    let record = e
        .sim
        .handle()
        .record(OrgKind::Production, "Lead", &person.key)
        .unwrap();
    assert_eq!(record["Company"], "[not provided]");
    assert_eq!(record["tandem_id__c"], "ap-new-1");
    assert_eq!(
        e.crm.search_by_external_id(&e.session, &ap).await.unwrap(),
        vec![person.id]
    );
    let upper = EmailAddress::parse("New.Person@Example.com").unwrap();
    assert_eq!(
        e.crm.search_by_email(&e.session, &upper).await.unwrap(),
        vec![person.id]
    );
    // A Contact with the e-mail wins over the Lead.
    e.sim
        .handle()
        .set_duplicate_rule(
            OrgKind::Production,
            "Contact",
            salesforce_sim::DuplicateRule::Off,
        )
        .unwrap();
    let contact = e
        .sim
        .handle()
        .insert_record(
            OrgKind::Production,
            "Contact",
            json!({"LastName": "Person", "Email": "new.person@example.com"}),
        )
        .unwrap();
    let found = e.crm.search_by_email(&e.session, &upper).await.unwrap();
    assert_eq!(found, vec![super::ids::person_surrogate(&contact)]);
    // A second create with the same e-mail is refused by the duplicate rule, per record.
    let again = e
        .crm
        .create_person(
            &e.session,
            &map,
            &fields,
            &ApId::parse("ap-new-2").unwrap(),
            Some(&email),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(again.code.as_deref(), Some("DUPLICATES_DETECTED"));
    assert_eq!(again.retry, ErrorClass::DontRetry);
}

#[tokio::test]
async fn a_batch_of_201_goes_as_200_plus_1_with_per_record_errors() {
    let e = env(SfSimConfig::default()).await;
    let h = e.sim.handle();
    for i in 0..201 {
        h.insert_record(
            OrgKind::Production,
            "Lead",
            json!({"LastName": format!("L{i}"), "Company": "C", "Email": format!("l{i}@example.com")}),
        )
        .unwrap();
    }
    h.set_validation_rule(
        OrgKind::Production,
        "Lead",
        "no_bad_titles",
        "Title = 'bad'",
        "Title must not be bad",
        Some("Title"),
    )
    .unwrap();
    let map = map_with(&[("title", "Title", "string")]);
    let (people, _) = everything(&e, &map, None).await;
    assert_eq!(people.len(), 201);
    let updates: Vec<(tandem_core::PersonId, BTreeMap<FieldKey, FieldValue>)> = people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let title = if i == 7 {
                "bad".to_owned()
            } else {
                format!("T{i}")
            };
            (
                p.id,
                BTreeMap::from([(key("title"), FieldValue::text(title))]),
            )
        })
        .collect();
    let (before, calls, reads) = (
        h.subrequests("composite.update"),
        h.calls("composite.composite"),
        h.calls("composite.retrieve"),
    );
    let results = e
        .crm
        .update_people_batch(&e.session, &map, &updates)
        .await
        .unwrap();
    assert_eq!(h.subrequests("composite.update") - before, 2, "200 + 1");
    // Each write and its read-back travel in one Composite call: no read-back call of its own.
    assert_eq!(h.calls("composite.composite") - calls, 2);
    assert_eq!(h.calls("composite.retrieve") - reads, 0);
    assert_eq!(results.len(), 201);
    let bad = results[7].as_ref().unwrap_err();
    assert_eq!(
        bad.code.as_deref(),
        Some("FIELD_CUSTOM_VALIDATION_EXCEPTION")
    );
    assert_eq!(bad.message, "Title must not be bad");
    assert_eq!(bad.retry, ErrorClass::DontRetry);
    for (i, r) in results.iter().enumerate().filter(|(i, _)| *i != 7) {
        let person = r.as_ref().unwrap();
        assert_eq!(
            person.snapshot.fields.get(&key("title")),
            Some(&FieldValue::text(format!("T{i}")))
        );
    }
    // An unknown id is its own error, not the batch's.
    let unknown = vec![(
        tandem_core::PersonId::new(12345).unwrap(),
        BTreeMap::from([(key("title"), FieldValue::text("x"))]),
    )];
    let results = e
        .crm
        .update_people_batch(&e.session, &map, &unknown)
        .await
        .unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().kind,
        CrmErrorKind::NotFound
    );
}

#[tokio::test]
async fn every_error_code_from_the_simulator_is_classified() {
    let e = env(SfSimConfig {
        leads: 3,
        ..Default::default()
    })
    .await;
    let h = e.sim.handle();
    let map = map_with(&[("title", "Title", "string")]);
    let (people, _) = everything(&e, &map, None).await;
    let id = people[0].id;
    let write = BTreeMap::from([(key("title"), FieldValue::text("x"))]);
    let err_of = |r: Result<CrmPerson, tandem_core::CrmError>| r.unwrap_err();

    // A write goes out with its read-back in one Composite call.
    h.set_faults(FaultSpec::parse("composite:lock=1").unwrap());
    let e1 = err_of(e.crm.update_person(&e.session, &map, id, &write).await);
    assert_eq!(
        (e1.code.as_deref(), e1.retry),
        (Some("UNABLE_TO_LOCK_ROW"), ErrorClass::Retry)
    );

    h.set_faults(FaultSpec::parse("sobjects:500=1").unwrap());
    let e2 = err_of(e.crm.get_person(&e.session, &map, id).await);
    assert_eq!(
        (e2.kind, e2.retry),
        (CrmErrorKind::Server, ErrorClass::Retry)
    );

    h.set_faults(FaultSpec::parse("sobjects:limit=1").unwrap());
    let e3 = err_of(e.crm.get_person(&e.session, &map, id).await);
    assert_eq!(
        (e3.code.as_deref(), e3.retry),
        (Some("REQUEST_LIMIT_EXCEEDED"), ErrorClass::Retry)
    );
    assert_eq!(e3.kind, CrmErrorKind::RateLimited);
    assert!(e3.retry_after.is_some());
    assert_eq!(
        e.crm
            .budget(&e.session)
            .rate_limited
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    h.set_faults(FaultSpec::default());

    // Required fields, straight through the client (the connector itself fills placeholders).
    let e4: tandem_core::CrmError = client(&e)
        .create_record(&e.session, "Lead", &json!({"Email": "x@example.com"}))
        .await
        .unwrap_err();
    assert_eq!(
        (e4.code.as_deref(), e4.retry),
        (Some("REQUIRED_FIELD_MISSING"), ErrorClass::DontRetry)
    );
    assert!(
        e4.message.starts_with("Required fields are missing"),
        "{}",
        e4.message
    );

    h.set_api_enabled_for_org(OrgKind::Production, false);
    let e5 = err_of(e.crm.get_person(&e.session, &map, id).await);
    assert_eq!(
        (e5.code.as_deref(), e5.retry),
        (Some("API_DISABLED_FOR_ORG"), ErrorClass::PauseConnection)
    );
    assert!(e5.hint.unwrap().contains("API Enabled"));
    h.set_api_enabled_for_org(OrgKind::Production, true);

    h.expire_sessions(None);
    let e6 = err_of(e.crm.get_person(&e.session, &map, id).await);
    assert_eq!(
        (e6.code.as_deref(), e6.retry),
        (Some("INVALID_SESSION_ID"), ErrorClass::Reauthenticate)
    );

    let merge = e
        .crm
        .merge_people(&e.session, id, people[1].id)
        .await
        .unwrap_err();
    assert_eq!(
        (merge.code.as_deref(), merge.retry),
        (Some("unsupported"), ErrorClass::DontRetry)
    );
    assert!(merge.hint.is_some());
}

#[tokio::test]
async fn sforce_limit_info_feeds_the_budget_and_the_reserve_stops_calls() {
    let sf = SfConfig {
        api_reserve: 50,
        ..SfConfig::default()
    };
    let e = env_with(
        SfSimConfig {
            leads: 2,
            ..Default::default()
        },
        sf,
    )
    .await;
    let h = e.sim.handle();
    e.crm.whoami(&e.session).await.unwrap();
    e.crm.field_catalog(&e.session).await.unwrap();
    let (used, max) = h.api_usage(OrgKind::Production);
    let budget = e.crm.budget(&e.session);
    assert_eq!(budget.daily_total(), Some(i64::try_from(max).unwrap()));
    assert_eq!(
        budget.daily_left(),
        Some(i64::try_from(max - used).unwrap())
    );
    assert!(!budget.in_reserve());
    h.set_daily_api_requests(OrgKind::Production, used + 10);
    e.crm
        .list_people(&e.session, &FieldMap::defaults(None), None, None)
        .await
        .unwrap();
    assert!(budget.in_reserve() && budget.daily_budget_low());
    let refused = e.crm.whoami(&e.session).await.unwrap_err();
    assert_eq!(
        (refused.kind, refused.retry),
        (CrmErrorKind::RateLimited, ErrorClass::Retry)
    );
    assert!(refused.retry_after.is_some());
    assert_eq!(
        h.api_usage(OrgKind::Production).0,
        used + 1,
        "the listing counted, the refused call never left"
    );
    // Writes carry the call options header (the simulator accepts it); reads do not need it.
}

#[tokio::test]
async fn once_the_quota_backoff_has_passed_one_call_probes_and_calls_resume_when_the_window_freed_calls(
) {
    let sf = SfConfig {
        api_reserve: 50,
        quota_backoff: Duration::ZERO,
        ..SfConfig::default()
    };
    let e = env_with(SfSimConfig::default(), sf).await;
    async fn list(e: &Env) {
        e.crm
            .list_people(&e.session, &FieldMap::defaults(None), None, None)
            .await
            .unwrap();
    }
    let h = e.sim.handle();
    list(&e).await;
    let (used, max) = h.api_usage(OrgKind::Production);
    h.set_daily_api_requests(OrgKind::Production, used + 10);
    // This answer reports the budget inside the reserve; the next call probes (the backoff is 0)
    // and finds it still there.
    list(&e).await;
    let budget = e.crm.budget(&e.session);
    assert!(budget.in_reserve());
    list(&e).await;
    assert!(budget.in_reserve());
    // The rolling window frees calls (here: the admin's allocation is back): the next probe
    // sees it and calls go on.
    h.set_daily_api_requests(OrgKind::Production, max);
    list(&e).await;
    assert!(!budget.in_reserve());
    list(&e).await;
}

#[tokio::test]
async fn a_field_without_edit_access_is_not_writable_and_writing_it_says_why() {
    let e = env(SfSimConfig {
        leads: 1,
        ..Default::default()
    })
    .await;
    let h = e.sim.handle();
    h.add_custom_field(
        OrgKind::Production,
        "Lead",
        "Secret__c",
        json!({"type": "Text", "length": 255, "label": "Secret"}),
    )
    .unwrap();
    h.add_custom_field(
        OrgKind::Production,
        "Contact",
        "Secret__c",
        json!({"type": "Text", "length": 255, "label": "Secret"}),
    )
    .unwrap();
    let catalog = e.crm.field_catalog(&e.session).await.unwrap();
    let secret = catalog.iter().find(|f| f.key == "Secret__c").unwrap();
    assert!(!secret.writable && secret.is_custom);
    assert!(catalog.iter().find(|f| f.key == "Email").unwrap().writable);
    let map = map_with(&[("secret", "Secret__c", "string")]);
    let (people, _) = everything(&e, &map, None).await;
    let err = e
        .crm
        .update_person(
            &e.session,
            &map,
            people[0].id,
            &BTreeMap::from([(key("secret"), FieldValue::text("s"))]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.as_deref(), err.retry),
        (
            Some("INVALID_FIELD_FOR_INSERT_UPDATE"),
            ErrorClass::DontRetry
        )
    );
    assert!(err.hint.unwrap().contains("Field-Level Security"));
}

#[tokio::test]
async fn tooling_creates_a_field_on_lead_and_contact_and_grants_the_profile_edit() {
    let e = env(SfSimConfig::default()).await;
    let field = e
        .crm
        .create_field(&e.session, "lifetime value", "double")
        .await
        .unwrap();
    assert_eq!(field.key, "lifetime_value__c");
    assert!(field.writable, "the profile was granted Edit");
    let contact = client(&e).describe(&e.session, "Contact").await.unwrap();
    assert!(contact
        .fields
        .iter()
        .any(|f| f.name == "lifetime_value__c" && f.updateable));
    // A user without Customize Application cannot: the connection pauses with the guide's hint.
    let h = e.sim.handle();
    let (user, _) = h
        .users(OrgKind::Production)
        .into_iter()
        .find(|(_, name)| name.starts_with("sam.sales"))
        .unwrap();
    h.set_user_permissions(
        OrgKind::Production,
        &user,
        Permissions {
            api_enabled: true,
            modify_all_data: false,
            view_all_data: false,
            customize_application: false,
        },
    )
    .unwrap();
    let sam = session_for(&e.sim, OrgKind::Production, Some(&user));
    let err = e
        .crm
        .create_field(&sam, "other", "string")
        .await
        .unwrap_err();
    assert_eq!(
        (err.code.as_deref(), err.retry),
        (
            Some("INSUFFICIENT_ACCESS_OR_READONLY"),
            ErrorClass::PauseConnection
        )
    );
}

#[tokio::test]
async fn journey_objects_tasks_opportunities_stages_and_owners() {
    let e = env(SfSimConfig::default()).await;
    let h = e.sim.handle();
    let me = e.crm.whoami(&e.session).await.unwrap();
    let lead = h
        .insert_record(
            OrgKind::Production,
            "Lead",
            json!({"LastName": "Lead", "Company": "C", "Email": "lead@example.com"}),
        )
        .unwrap();
    let contact = h
        .insert_record(
            OrgKind::Production,
            "Contact",
            json!({"LastName": "Contact", "Email": "contact@example.com"}),
        )
        .unwrap();
    let (people, _) = everything(&e, &FieldMap::defaults(None), None).await;
    let id_of = |k: &str| people.iter().find(|p| p.key == k).unwrap().id;
    let deal = |person_id| NewDeal {
        person_id,
        title: "Big deal",
        value: Some(1000.0),
        currency: None,
        pipeline_id: None,
        stage_id: None,
        owner_id: Some(me.id),
    };
    let refused = e
        .crm
        .create_deal(&e.session, &deal(id_of(&lead)))
        .await
        .unwrap_err();
    assert!(
        refused.message.contains("must be converted"),
        "{}",
        refused.message
    );
    assert_eq!(refused.retry, ErrorClass::DontRetry);
    let deal_id = e
        .crm
        .create_deal(&e.session, &deal(id_of(&contact)))
        .await
        .unwrap();
    let deals = e
        .crm
        .person_deals(&e.session, id_of(&contact))
        .await
        .unwrap();
    assert_eq!(
        deals.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![deal_id]
    );
    assert_eq!(deals[0].title.as_deref(), Some("Big deal"));
    let stages = e.crm.stages(&e.session).await.unwrap();
    assert!(stages.len() > 1);
    e.crm
        .move_deal(&e.session, deal_id, stages[1].id)
        .await
        .unwrap();
    let activity = NewActivity {
        person_id: id_of(&lead),
        subject: "Call back",
        kind: Some("Call"),
        due_date: Some("2030-01-02"),
        owner_id: None,
    };
    let task = e.crm.create_activity(&e.session, &activity).await.unwrap();
    let tasks = e
        .crm
        .person_activities(&e.session, id_of(&lead))
        .await
        .unwrap();
    assert_eq!(
        tasks
            .iter()
            .map(|t| (t.id, t.subject.as_deref()))
            .collect::<Vec<_>>(),
        vec![(task, Some("Call back"))]
    );
    e.crm
        .set_person_owner(&e.session, id_of(&lead), me.id)
        .await
        .unwrap();
    let record = h.record(OrgKind::Production, "Lead", &lead).unwrap();
    assert_eq!(
        record["OwnerId"],
        Value::from(
            h.user_id(OrgKind::Production, &h.admin_user(OrgKind::Production))
                .unwrap()
        )
    );
    assert_eq!(
        e.crm
            .register_notifications(
                &e.session,
                crate::crm::NotificationTarget {
                    url: "http://127.0.0.1/x",
                    user: "u",
                    password: "p"
                }
            )
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn an_email_is_a_completed_email_task_on_its_contact_and_opportunity_and_an_update_relinks_it(
) {
    use super::ids::surrogate;
    use tandem_core::email_links::Item;
    let e = env(SfSimConfig::default()).await;
    let h = e.sim.handle();
    let insert = |object: &str, fields: Value| {
        h.insert_record(OrgKind::Production, object, fields)
            .unwrap()
    };
    let lead = insert(
        "Lead",
        json!({"LastName": "Lead", "Company": "C", "Email": "lead@example.com"}),
    );
    let contact = insert(
        "Contact",
        json!({"LastName": "Contact", "Email": "contact@example.com"}),
    );
    let opportunity = |stage: &str| {
        let id = insert(
            "Opportunity",
            json!({"Name": format!("{stage} deal"), "StageName": stage, "CloseDate": "2030-01-01"}),
        );
        insert(
            "OpportunityContactRole",
            json!({"OpportunityId": id, "ContactId": contact}),
        );
        id
    };
    let open = opportunity("Prospecting");
    let won = opportunity("Closed Won");
    let (people, _) = everything(&e, &FieldMap::defaults(None), None).await;
    let id_of = |k: &str| people.iter().find(|p| p.key == k).unwrap().id;

    // The Contact's Opportunities through its contact roles, open or closed, with their
    // creation time; a Lead has none.
    let mut items = e
        .crm
        .email_items(&e.session, id_of(&contact))
        .await
        .unwrap()
        .expect("Salesforce reads the items from the CRM");
    items.sort_by_key(|i| !i.open);
    assert_eq!(
        items
            .iter()
            .map(|i| (i.item.clone(), i.open))
            .collect::<Vec<_>>(),
        vec![
            (Item::Deal(surrogate(&open)), true),
            (Item::Deal(surrogate(&won)), false)
        ]
    );
    assert!(items
        .iter()
        .all(|i| i.created_at_ms > 0 && i.created_at_ms < i64::MAX));
    assert_eq!(
        e.crm.email_items(&e.session, id_of(&lead)).await.unwrap(),
        Some(Vec::new())
    );

    let persons = [id_of(&contact)];
    let email = |note, deal_id| LoggedEmail {
        subject: "Your trial ends soon",
        note,
        date: "2026-12-04",
        time: "09:00",
        persons: &persons,
        deal_id,
        lead_id: None,
        as_note: false,
    };
    let task = e
        .crm
        .log_email(
            &e.session,
            &email(
                "Three days left\nMessage-ID: <m1@x>",
                Some(surrogate(&open)),
            ),
        )
        .await
        .unwrap();
    let tasks = h.ids(OrgKind::Production, "Task");
    assert_eq!(tasks.len(), 1);
    assert_eq!(surrogate(&tasks[0]), task);
    let record = h.record(OrgKind::Production, "Task", &tasks[0]).unwrap();
    assert_eq!(record["Status"], "Completed");
    assert_eq!(record["IsClosed"], true);
    assert_eq!(record["TaskSubtype"], "Email");
    assert_eq!(record["Subject"], "Your trial ends soon");
    assert_eq!(record["ActivityDate"], "2026-12-04");
    assert_eq!(record["WhoId"], Value::from(contact.clone()));
    assert_eq!(record["WhatId"], Value::from(open.clone()));
    // The text is read back with the person's activities (a crashed write is found by it).
    let listed = e
        .crm
        .person_activities(&e.session, id_of(&contact))
        .await
        .unwrap();
    assert!(listed[0]
        .note
        .as_deref()
        .is_some_and(|n| n.lines().any(|l| l == "Message-ID: <m1@x>")));

    // An update rewrites the text, and with `relink` the Opportunity.
    let other = opportunity("Qualification");
    e.crm
        .email_items(&e.session, id_of(&contact))
        .await
        .unwrap();
    e.crm
        .update_logged_email(
            &e.session,
            task,
            &email("Opened 2x", Some(surrogate(&other))),
            false,
        )
        .await
        .unwrap();
    let record = h.record(OrgKind::Production, "Task", &tasks[0]).unwrap();
    assert_eq!(record["Description"], "Opened 2x");
    assert_eq!(record["WhatId"], Value::from(open.clone()));
    e.crm
        .update_logged_email(
            &e.session,
            task,
            &email("Opened 2x", Some(surrogate(&other))),
            true,
        )
        .await
        .unwrap();
    let record = h.record(OrgKind::Production, "Task", &tasks[0]).unwrap();
    assert_eq!(record["WhatId"], Value::from(other));

    // On a Lead the Task has no WhatId (Salesforce allows none with a Lead).
    let lead_persons = [id_of(&lead)];
    let on_lead = LoggedEmail {
        persons: &lead_persons,
        ..email("To a lead", Some(surrogate(&open)))
    };
    let lead_task = e.crm.log_email(&e.session, &on_lead).await.unwrap();
    let lead_task = h
        .ids(OrgKind::Production, "Task")
        .into_iter()
        .find(|t| surrogate(t) == lead_task)
        .unwrap();
    let record = h.record(OrgKind::Production, "Task", &lead_task).unwrap();
    assert_eq!(record["WhoId"], Value::from(lead));
    assert_eq!(record["WhatId"], Value::Null);
}

async fn authorize(sim: &SfSim, sandbox: bool, challenge: &str) -> String {
    let app = SfOAuthApp::new(
        sim.login_url(sandbox),
        &sim.handle().config().client_id,
        Redacted::new(String::new()),
    );
    let url = app.authorize_url("http://127.0.0.1:9/callback", "st4te", challenge);
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    assert!(location
        .query_pairs()
        .any(|(k, v)| k == "state" && v == "st4te"));
    code
}

#[tokio::test]
async fn oauth_with_pkce_exchange_refresh_and_revoke_on_both_login_hosts() {
    let sim = start(SfSimConfig {
        require_pkce: true,
        ..Default::default()
    })
    .await;
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    for sandbox in [false, true] {
        let crm = crm_for(&sim, sandbox, SfConfig::default(), &TestClock::new());
        // A wrong verifier is refused.
        let code = authorize(&sim, sandbox, &super::pkce_challenge(verifier)).await;
        let wrong = crm
            .exchange_code_with_verifier(
                &code,
                "http://127.0.0.1:9/callback",
                Some("not-the-verifier-not-the-verifier-not-the-verifier"),
            )
            .await
            .unwrap_err();
        assert_eq!(wrong.code.as_deref(), Some("invalid_grant"));
        let code = authorize(&sim, sandbox, &super::pkce_challenge(verifier)).await;
        let grant = crm
            .exchange_code_with_verifier(&code, "http://127.0.0.1:9/callback", Some(verifier))
            .await
            .unwrap();
        assert_eq!(grant.api_domain, sim.instance_url().trim_end_matches('/'));
        assert_eq!(grant.expires_in, None);
        let refresh = grant.refresh_token.clone().unwrap();
        let session = Session {
            connection_id: ConnectionId::new(Uuid::new_v4()),
            api_domain: grant.api_domain.clone(),
            auth: Auth::Bearer(grant.access_token.clone()),
            seed_burst: 20,
        };
        let me = crm.whoami(&session).await.unwrap();
        let h = sim.handle();
        let org = if sandbox {
            OrgKind::Sandbox
        } else {
            OrgKind::Production
        };
        let admin_id = h.user_id(org, &h.admin_user(org)).unwrap();
        assert_eq!(me.id, super::ids::surrogate(&admin_id));
        let renewed = crm.refresh_token(refresh.expose()).await.unwrap();
        assert_ne!(renewed.access_token.expose(), grant.access_token.expose());
        assert_eq!(
            renewed.refresh_token.as_ref().unwrap().expose(),
            refresh.expose(),
            "kept"
        );
        crm.revoke_token(refresh.expose(), TokenKind::Refresh)
            .await
            .unwrap();
        let after = crm.refresh_token(refresh.expose()).await.unwrap_err();
        assert_eq!(after.retry, ErrorClass::Reauthenticate);
        assert!(after.hint.is_some());
        let revoked = crm
            .whoami(&Session {
                auth: Auth::Bearer(renewed.access_token.clone()),
                ..session
            })
            .await
            .unwrap_err();
        assert_eq!(revoked.retry, ErrorClass::Reauthenticate);
    }
}
