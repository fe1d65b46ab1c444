//! Building contact fields in tests.

use std::collections::BTreeMap;

use tandem_core::{FieldKey, FieldValue, LabeledValue};

pub fn name(name: &str) -> (FieldKey, FieldValue) {
    (FieldKey::new("name").unwrap(), FieldValue::text(name))
}

pub fn email(address: &str) -> (FieldKey, FieldValue) {
    (
        FieldKey::new("email").unwrap(),
        FieldValue::Emails(vec![LabeledValue::new(address, Some("work"), true)]),
    )
}

pub fn phone(number: &str) -> (FieldKey, FieldValue) {
    (
        FieldKey::new("phone").unwrap(),
        FieldValue::Phones(vec![LabeledValue::new(number, Some("work"), true)]),
    )
}

/// A text field `key` set to `value`.
pub fn text(key: &str, value: &str) -> (FieldKey, FieldValue) {
    (FieldKey::new(key).unwrap(), FieldValue::text(value))
}

/// The company (`org_name`) set to `value`.
pub fn company(value: &str) -> (FieldKey, FieldValue) {
    text(tandem_core::keys::ORG_NAME, value)
}

/// Field `key` cleared.
pub fn cleared(key: &str) -> (FieldKey, FieldValue) {
    (FieldKey::new(key).unwrap(), FieldValue::Cleared)
}

pub fn fields(
    entries: impl IntoIterator<Item = (FieldKey, FieldValue)>,
) -> BTreeMap<FieldKey, FieldValue> {
    entries.into_iter().collect()
}

pub fn text_of(
    contact: &tandem_engine::sync::app::contacts::LocalContact,
    key: &str,
) -> Option<String> {
    match contact.fields.get(key)? {
        FieldValue::Text(t) => Some(t.clone()),
        FieldValue::Emails(list) | FieldValue::Phones(list) => {
            list.first().map(|l| l.value.clone())
        }
        other => Some(format!("{other:?}")),
    }
}
