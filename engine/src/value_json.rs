//! The JSON of structured field values (money, date and time ranges, times, addresses): one
//! shape, Pipedrive's API v2 one, which the app's contact format follows too.

use serde_json::{json, Map, Value};
use tandem_core::{FieldValue, NumberValue, TimeZone};

/// A number as JSON: an integer when it is one.
pub fn number_json(n: NumberValue) -> Value {
    let f = n.get();
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Value::from(f as i64)
    } else {
        serde_json::to_value(n).unwrap_or(Value::Null)
    }
}

fn zone_json(object: &mut Map<String, Value>, zone: &TimeZone) {
    if let Some(id) = zone.id {
        object.insert("timezone_id".into(), Value::from(id));
    }
    if let Some(name) = &zone.name {
        object.insert("timezone_name".into(), Value::String(name.clone()));
    }
}

/// A structured value as JSON (`{value, currency}`, `{value, until}`, an address with its
/// parts, a time with its zone); `null` for any other value.
pub fn structured_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Money(m) => {
            json!({ "value": number_json(m.amount), "currency": m.currency.as_str() })
        }
        FieldValue::Address(a) => {
            let mut object = Map::new();
            object.insert("value".into(), Value::String(a.value.clone()));
            for (k, v) in &a.parts {
                object.insert(k.clone(), Value::String(v.clone()));
            }
            Value::Object(object)
        }
        FieldValue::DateRange(r) => json!({ "value": r.start.as_str(), "until": r.until.as_str() }),
        FieldValue::Time(t) => {
            let mut object = Map::new();
            object.insert("value".into(), Value::String(t.time.as_str().to_owned()));
            zone_json(&mut object, &t.zone);
            Value::Object(object)
        }
        FieldValue::TimeRange(t) => {
            let mut object = Map::new();
            object.insert("value".into(), Value::String(t.start.as_str().to_owned()));
            object.insert("until".into(), Value::String(t.until.as_str().to_owned()));
            zone_json(&mut object, &t.zone);
            Value::Object(object)
        }
        FieldValue::Text(_)
        | FieldValue::Number(_)
        | FieldValue::Date(_)
        | FieldValue::Option(_)
        | FieldValue::Options(_)
        | FieldValue::Emails(_)
        | FieldValue::Phones(_)
        | FieldValue::Cleared => Value::Null,
    }
}
