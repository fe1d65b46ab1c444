//! Mapping and error classification on recorded Salesforce JSON (`fixtures/`).

use std::collections::BTreeMap;

use serde_json::Value;
use tandem_core::{
    keys, ApId, CrmErrorKind, ErrorClass, FieldKey, FieldRule, FieldValue, PersonId, Timestamp,
};

use super::errors::{crm_error, error_text, record_error};
use super::ids::surrogate;
use super::mapping::{self, catalog, create_body, crm_person, parse_time, person_write};
use super::wire::{Describe, Record, SaveResult};
use super::{SObject, SfConfig};
use crate::crm::fields::{FieldMap, MappedField, RemoteField};

fn record(json: &str) -> Record {
    serde_json::from_str(json).unwrap()
}

fn key(k: &str) -> FieldKey {
    FieldKey::new(k).unwrap()
}

fn custom(local: &str, remote: &str, field_type: &str) -> MappedField {
    MappedField {
        local: key(local),
        remote: RemoteField::Custom {
            key: remote.into(),
            field_type: field_type.into(),
            currency: None,
        },
        rule: FieldRule::default(),
    }
}

fn map() -> FieldMap {
    let mut map = FieldMap::defaults(None);
    map.fields.extend([
        custom("company", "Company", "string"),
        custom("title", "Title", "string"),
        custom("revenue", "AnnualRevenue", "currency"),
        custom("opted_out", "HasOptedOutOfEmail", "boolean"),
        custom("birthday", "Birthdate__c", "date"),
    ]);
    map
}

#[test]
fn a_lead_becomes_a_neutral_person_with_its_surrogate_id_and_key() {
    let lead = record(include_str!("fixtures/lead.json"));
    let person = crm_person(&lead, &map(), &SfConfig::default());
    assert_eq!(person.key, "00Q5g00000AbCdEFGH");
    assert_eq!(person.id.get(), surrogate("00Q5g00000AbCdEFGH"));
    assert_eq!(person.ap_id, Some(ApId::parse("ap-ada-1").unwrap()));
    assert_eq!(person.email.unwrap().as_str(), "ada@example.com");
    assert_eq!(
        person.updated.as_ref().unwrap().as_str(),
        "2024-05-02T11:30:15.250+0000"
    );
    assert_eq!(person.snapshot.version, Timestamp(1_714_649_415_250));
    let f = &person.snapshot.fields;
    assert_eq!(
        f.get(&key(keys::NAME)),
        Some(&FieldValue::text("Ada Lovelace"))
    );
    assert_eq!(f.get(&key("title")), Some(&FieldValue::text("Analyst")));
    // The company placeholder tandem wrote reads as no company.
    assert_eq!(f.get(&key("company")), Some(&FieldValue::Cleared));
    assert_eq!(
        f.get(&key("revenue")),
        Some(&FieldValue::number(1_250_000.5).unwrap())
    );
    assert_eq!(f.get(&key("opted_out")), Some(&FieldValue::text("false")));
    assert_eq!(
        f.get(&key("birthday")),
        Some(&FieldValue::date("1815-12-10").unwrap())
    );
    assert_eq!(
        f.get(&key(keys::OWNER_ID)),
        Some(&FieldValue::number(surrogate("0055g00000OwNeRAAA") as f64).unwrap())
    );
    assert!(!person.deleted);
}

#[test]
fn a_contact_with_a_placeholder_last_name_has_no_name_and_unknown_lead_fields() {
    let contact = record(include_str!("fixtures/contact.json"));
    let person = crm_person(&contact, &map(), &SfConfig::default());
    let f = &person.snapshot.fields;
    assert_eq!(f.get(&key(keys::NAME)), Some(&FieldValue::Cleared));
    assert_eq!(f.get(&key(keys::EMAIL)), Some(&FieldValue::Cleared));
    // Company is a Lead field: absent from a Contact, so unknown rather than cleared.
    assert_eq!(f.get(&key("company")), None);
    assert_eq!(person.ap_id, None);
    assert_eq!(person.added, person.updated, "created by us, untouched");
    // Its Account and owner, as the surrogates the contacts list's filters take.
    assert_eq!(person.org_id, Some(surrogate("0015g00000AcCtAAAA")));
    assert_eq!(person.owner_id, Some(surrogate("0055g00000OwNeRAAA")));
    assert!(!person.lead);
}

#[test]
fn a_contact_is_read_with_its_account_and_a_lead_has_none() {
    let contact = mapping::select_fields(SObject::Contact, &map(), &SfConfig::default(), None);
    assert!(contact.iter().any(|f| f == "AccountId"), "{contact:?}");
    let lead = mapping::select_fields(SObject::Lead, &map(), &SfConfig::default(), None);
    assert!(!lead.iter().any(|f| f == "AccountId"), "{lead:?}");
    let person = crm_person(
        &record(include_str!("fixtures/lead.json")),
        &map(),
        &SfConfig::default(),
    );
    assert_eq!(person.org_id, None);
    assert!(person.lead);
}

#[test]
fn a_converted_lead_reads_as_merged_into_its_contact() {
    let lead = record(include_str!("fixtures/lead_converted.json"));
    let person = crm_person(&lead, &map(), &SfConfig::default());
    assert!(person.deleted);
    assert_eq!(
        person.merged_into.map(PersonId::get),
        Some(surrogate("0035g00000XyZabAAA"))
    );
    let named: Vec<&str> = mapping::named_ids(&lead).collect();
    assert!(named.contains(&"0035g00000XyZabAAA"));
    assert!(named.contains(&"0015g00000AcCtAAAA"), "the Account it made");
    assert!(person.lead);
    assert_eq!(person.owner_id, Some(surrogate("0055g00000OwNeRAAA")));
    assert_eq!(
        person.conversion,
        Some(crate::crm::Conversion {
            organization_id: Some(surrogate("0015g00000AcCtAAAA")),
            deal_id: None,
        }),
        "no Opportunity was made"
    );
}

#[test]
fn a_record_a_merge_deleted_reads_as_merged_into_its_master_and_a_deleted_one_as_deleted() {
    let merged = mapping::deleted_person(
        "0035g00000MeRgEAAA",
        Some("2024-05-04T09:00:00.000+0000"),
        Some("0035g00000XyZabAAA"),
    );
    assert!(merged.deleted && !merged.lead);
    assert_eq!(
        merged.merged_into.map(PersonId::get),
        Some(surrogate("0035g00000XyZabAAA"))
    );
    let deleted = mapping::deleted_person("00Q5g00000GoNeAAAA", None, None);
    assert!(deleted.deleted && deleted.lead);
    assert_eq!(deleted.merged_into, None);
    assert_eq!(deleted.conversion, None);
}

#[test]
fn record_times_with_a_colonless_offset_parse() {
    assert_eq!(
        parse_time("2013-05-20T20:49:32.000+0000"),
        Some(Timestamp(1_369_082_972_000))
    );
    assert_eq!(
        parse_time("2013-05-20T20:49:32Z"),
        Some(Timestamp(1_369_082_972_000))
    );
    assert_eq!(parse_time("yesterday"), None);
}

#[test]
fn a_create_fills_required_fields_with_placeholders_and_says_so() {
    let config = SfConfig::default();
    let mut fields = BTreeMap::new();
    fields.insert(key(keys::EMAIL), FieldValue::text("ada@example.com"));
    let ap = ApId::parse("ap-1").unwrap();
    let owner = |_: i64| None;
    let (body, filled) = create_body(
        SObject::Lead,
        &fields,
        &map(),
        &config,
        &ap,
        Some("005000000000001AAA".into()),
        &owner,
    )
    .unwrap();
    assert_eq!(body["tandem_id__c"], "ap-1");
    assert_eq!(body["LastName"], "[not provided]");
    assert_eq!(body["Company"], "[not provided]");
    assert_eq!(body["OwnerId"], "005000000000001AAA");
    assert_eq!(body["Email"], "ada@example.com");
    let names: Vec<&str> = filled.iter().map(|f| f.field.as_str()).collect();
    assert_eq!(names, ["LastName", "Company"]);
    // A Contact needs no Company.
    let (body, filled) = create_body(
        SObject::Contact,
        &fields,
        &map(),
        &config,
        &ap,
        None,
        &owner,
    )
    .unwrap();
    assert!(!body.contains_key("Company"));
    assert_eq!(filled.len(), 1);
}

#[test]
fn a_name_splits_into_first_and_last_and_a_known_owner_is_written_back_as_its_id() {
    let mut writes = BTreeMap::new();
    writes.insert(key(keys::NAME), FieldValue::text("Ada King Lovelace"));
    writes.insert(key(keys::OWNER_ID), FieldValue::number(42.0).unwrap());
    writes.insert(key("company"), FieldValue::text("Analytical Engines"));
    let owner = |id: i64| (id == 42).then(|| "0055g00000OwNeRAAA".to_owned());
    let (body, filled) =
        person_write(SObject::Lead, &writes, &map(), &SfConfig::default(), &owner).unwrap();
    assert_eq!(body["FirstName"], "Ada King");
    assert_eq!(body["LastName"], "Lovelace");
    assert_eq!(body["OwnerId"], "0055g00000OwNeRAAA");
    assert_eq!(body["Company"], "Analytical Engines");
    assert!(filled.is_empty());
}

#[test]
fn a_value_its_field_type_cannot_take_is_refused_instead_of_sent_or_cleared() {
    use mapping::custom_json;
    use serde_json::json;
    let text = FieldValue::text;
    let number = |n: f64| FieldValue::number(n).unwrap();
    // Checkboxes take what people write for yes and no, and nothing else.
    assert_eq!(custom_json(&text(" Yes "), "boolean"), Ok(json!(true)));
    assert_eq!(custom_json(&text("FALSE"), "boolean"), Ok(json!(false)));
    assert_eq!(custom_json(&text("0"), "boolean"), Ok(json!(false)));
    assert_eq!(custom_json(&number(1.0), "boolean"), Ok(json!(true)));
    assert!(custom_json(&text("maybe"), "boolean").is_err());
    assert!(custom_json(&number(2.0), "boolean").is_err());
    // A number field takes numeric text as a number; a word is refused, not cleared.
    assert_eq!(custom_json(&text(" 12.5 "), "double"), Ok(json!(12.5)));
    assert_eq!(
        custom_json(&text("n/a"), "currency"),
        Err("\"n/a\" is not a number".to_owned())
    );
    // Dates and date-times must parse.
    assert_eq!(
        custom_json(&text("2024-05-01"), "date"),
        Ok(json!("2024-05-01"))
    );
    assert!(custom_json(&text("May 1st"), "date").is_err());
    assert!(custom_json(&number(20240501.0), "date").is_err());
    assert!(custom_json(&text("2024-05-01T10:00:00Z"), "datetime").is_ok());
    assert!(custom_json(&text("soon"), "datetime").is_err());
    // Cleared is null whatever the type; text fields take any text.
    assert_eq!(
        custom_json(&FieldValue::Cleared, "boolean"),
        Ok(Value::Null)
    );
    assert_eq!(custom_json(&text("maybe"), "string"), Ok(json!("maybe")));

    // In a record body the refusal names the field and its code, with the guide's hint.
    let mut writes = BTreeMap::new();
    writes.insert(key("company"), FieldValue::text("Analytical Engines"));
    writes.insert(key("opted_out"), text("perhaps"));
    let refused = person_write(
        SObject::Lead,
        &writes,
        &map(),
        &SfConfig::default(),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(refused.code.as_deref(), Some("VALUE_NOT_OF_FIELD_TYPE"));
    assert!(refused
        .message
        .starts_with("HasOptedOutOfEmail: \"perhaps\" is not a checkbox value"));
    assert_eq!(refused.retry, tandem_core::ErrorClass::DontRetry);
    assert!(refused.hint.as_deref().unwrap().contains("Field Mapping"));
}

#[test]
fn describe_gives_the_catalog_with_types_options_and_the_writable_flag() {
    let describe: Describe =
        serde_json::from_str(include_str!("fixtures/describe_lead.json")).unwrap();
    let fields = catalog(&[&describe]);
    let by = |k: &str| fields.iter().find(|f| f.key == k).unwrap();
    assert_eq!(by("Email").field_type, "email");
    assert!(by("Email").writable);
    assert!(!by("Id").writable);
    let score = by("Score__c");
    assert!(score.is_custom && !score.writable, "FLS without Edit");
    assert_eq!(
        by("LeadSource").options,
        vec![(0, "Web".to_owned()), (1, "Phone Inquiry".to_owned())]
    );
    let selected =
        mapping::select_fields(SObject::Lead, &map(), &SfConfig::default(), Some(&describe));
    assert!(selected.contains(&"tandem_id__c".to_owned()));
    assert!(
        !selected.contains(&"Company".to_owned()),
        "not in this describe"
    );
}

#[test]
fn every_error_code_is_classified_with_its_message_verbatim_and_a_hint() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("fixtures/errors.json")).unwrap();
    let expected = [
        (
            "INVALID_SESSION_ID",
            ErrorClass::Reauthenticate,
            CrmErrorKind::Unauthorized,
        ),
        (
            "REQUEST_LIMIT_EXCEEDED",
            ErrorClass::Retry,
            CrmErrorKind::RateLimited,
        ),
        (
            "REQUEST_LIMIT_EXCEEDED",
            ErrorClass::Retry,
            CrmErrorKind::RateLimited,
        ),
        (
            "UNABLE_TO_LOCK_ROW",
            ErrorClass::Retry,
            CrmErrorKind::Rejected,
        ),
        ("UNKNOWN_EXCEPTION", ErrorClass::Retry, CrmErrorKind::Server),
        (
            "API_DISABLED_FOR_ORG",
            ErrorClass::PauseConnection,
            CrmErrorKind::Forbidden,
        ),
        (
            "INSUFFICIENT_ACCESS_OR_READONLY",
            ErrorClass::PauseConnection,
            CrmErrorKind::Forbidden,
        ),
        (
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            ErrorClass::DontRetry,
            CrmErrorKind::Rejected,
        ),
        (
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            ErrorClass::DontRetry,
            CrmErrorKind::Rejected,
        ),
        (
            "REQUIRED_FIELD_MISSING",
            ErrorClass::DontRetry,
            CrmErrorKind::Rejected,
        ),
        (
            "DUPLICATES_DETECTED",
            ErrorClass::DontRetry,
            CrmErrorKind::Rejected,
        ),
    ];
    assert_eq!(cases.len(), expected.len());
    for (case, (code, class, kind)) in cases.iter().zip(expected) {
        let status = case["status"].as_u64().unwrap() as u16;
        let (parsed, message, _) = error_text(&case["body"], "");
        assert_eq!(parsed.as_deref(), Some(code));
        let error = crm_error(status, parsed.as_deref(), message.clone());
        assert_eq!((error.retry, error.kind), (class, kind), "{code}");
        assert_eq!(error.message, message, "verbatim");
        assert_eq!(error.code.as_deref(), Some(code));
        assert!(error.hint.is_some(), "{code} has a hint");
    }
    let daily = crm_error(
        403,
        Some("REQUEST_LIMIT_EXCEEDED"),
        "TotalRequests Limit exceeded.",
    );
    // The daily allocation's wait is the client's (`salesforce.quota_backoff_secs`).
    assert_eq!(daily.retry_after, None);
    let concurrent = crm_error(
        403,
        Some("REQUEST_LIMIT_EXCEEDED"),
        "ConcurrentPerOrgLongTxn Limit exceeded.",
    );
    assert_eq!(
        concurrent.retry_after,
        Some(std::time::Duration::from_secs(30))
    );
    let (fields_code, _, fields) = error_text(&cases[7]["body"], "");
    assert_eq!(
        fields_code.as_deref(),
        Some("INVALID_FIELD_FOR_INSERT_UPDATE")
    );
    assert_eq!(fields, ["Score__c"]);
}

#[test]
fn oauth_errors_and_raw_bodies_are_read_too() {
    let body = serde_json::json!({"error": "invalid_grant", "error_description": "expired access/refresh token"});
    let (code, message, _) = error_text(&body, "");
    assert_eq!(code.as_deref(), Some("invalid_grant"));
    assert_eq!(message, "expired access/refresh token");
    assert_eq!(
        crm_error(400, code.as_deref(), message).retry,
        ErrorClass::Reauthenticate
    );
    let (code, message, _) = error_text(&Value::Null, "<html>Bad Gateway</html>");
    assert_eq!((code, message.as_str()), (None, "<html>Bad Gateway</html>"));
}

#[test]
fn a_composite_answer_maps_to_per_record_errors() {
    let results: Vec<SaveResult> =
        serde_json::from_str(include_str!("fixtures/composite_update.json")).unwrap();
    let errors: Vec<Option<(ErrorClass, String)>> = results
        .iter()
        .map(|r| {
            (!r.success).then(|| {
                let e = &r.errors[0];
                let error = record_error(e.status_code.as_deref(), &e.message);
                (error.retry, error.message)
            })
        })
        .collect();
    assert_eq!(errors[0], None);
    assert_eq!(
        errors[1],
        Some((ErrorClass::DontRetry, "Title must not be bad".into()))
    );
    assert_eq!(errors[2].as_ref().unwrap().0, ErrorClass::Retry);
    assert_eq!(errors[3].as_ref().unwrap().0, ErrorClass::DontRetry);
}

#[test]
fn a_composite_answer_decodes_each_subrequest_or_classifies_its_error_array() {
    use super::client::subrequest_answer;
    use super::wire::CompositeResponse;
    let answer: CompositeResponse =
        serde_json::from_str(include_str!("fixtures/composite_response.json")).unwrap();
    let mut results = answer.composite_response.into_iter();
    let created = results.next().unwrap();
    assert_eq!(created.reference_id, "refAccount");
    assert!(created.http_headers.contains_key("Location"));
    let saved: SaveResult = subrequest_answer(created).unwrap();
    assert_eq!(saved.id.as_deref(), Some("001R00000064wdtIAA"));
    let refused = subrequest_answer::<SaveResult>(results.next().unwrap()).unwrap_err();
    // Classified as the same answer to a call of its own: code and message verbatim.
    assert_eq!(refused.code.as_deref(), Some("INVALID_EMAIL_ADDRESS"));
    assert_eq!(
        refused.message,
        "Email: invalid email address: Not a real email address"
    );
    assert_eq!(refused.retry, ErrorClass::DontRetry);
    assert!(refused
        .hint
        .as_deref()
        .is_some_and(|h| h.contains("correct it in the app")));
}

#[test]
fn limit_info_and_soql_literals() {
    use super::client::parse_limit_info;
    assert_eq!(parse_limit_info("api-usage=18/5000"), Some((18, 5000)));
    assert_eq!(
        parse_limit_info("api-usage=25/5000, per-app-api-usage=17/250(appName=sample)"),
        Some((25, 5000))
    );
    assert_eq!(parse_limit_info("nonsense"), None);
    assert_eq!(mapping::soql_string("O'Brien\\"), "'O\\'Brien\\\\'");
    assert_eq!(super::ops::api_name("lifetime value"), "lifetime_value__c");
    assert_eq!(super::ops::api_name("tandem_id__c"), "tandem_id__c");
    assert_eq!(super::ops::api_name("1st touch"), "f_1st_touch__c");
}

#[test]
fn the_pkce_challenge_is_s256() {
    // base64url(SHA-256(verifier)) without padding, as computed by Python's hashlib.
    assert_eq!(
        super::pkce_challenge("dBjftJeZ4CVP-mJ92ZzDyVN7xUq3aD3vmjxCp2n9pXk"),
        "Wg7hLD9OvntYDrwYk6IZ6p7vxEhwA8XmYhMoixTW1xE"
    );
}
