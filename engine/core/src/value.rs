//! Field keys, field values and snapshots: what the merge works on.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ParseError;
use crate::ids::Timestamp;

/// Canonical local field names (the app's standard contact fields, named like Pipedrive's).
pub mod keys {
    /// Full name.
    pub const NAME: &str = "name";
    /// First name.
    pub const FIRST_NAME: &str = "first_name";
    /// Last name.
    pub const LAST_NAME: &str = "last_name";
    /// E-mail addresses (a list).
    pub const EMAIL: &str = "email";
    /// Phone numbers (a list).
    pub const PHONE: &str = "phone";
    /// Organisation name.
    pub const ORG_NAME: &str = "org_name";
    /// Pipedrive owner (user id).
    pub const OWNER_ID: &str = "owner_id";
    /// Label(s).
    pub const LABEL: &str = "label";
    /// Every canonical name.
    pub const ALL: &[&str] = &[
        NAME, FIRST_NAME, LAST_NAME, EMAIL, PHONE, ORG_NAME, OWNER_ID, LABEL,
    ];
}

/// The name of a contact field: a snake_case local name (`name`, `first_name`, `email`, ...,
/// see [`keys`]) or a Pipedrive custom-field key (40 lower-case hex characters).
///
/// Cheap to clone (shared text), ordered by its text.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldKey(Arc<str>);

impl FieldKey {
    /// Accepts a snake_case name (`[a-z][a-z0-9_]*`, at most 64 characters) or a 40-hex
    /// Pipedrive custom-field key (upper-case hex is lower-cased).
    pub fn new(key: impl AsRef<str>) -> Result<Self, ParseError> {
        let key = key.as_ref();
        if is_hash_key(key) {
            return Ok(Self(Arc::from(key.to_ascii_lowercase())));
        }
        let mut chars = key.chars();
        let starts_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if starts_ok && rest_ok && key.len() <= 64 {
            Ok(Self(Arc::from(key)))
        } else {
            Err(ParseError::InvalidFieldKey(key.to_owned()))
        }
    }

    /// Same as [`FieldKey::new`], for text from the outside world.
    pub fn parse(key: &str) -> Result<Self, ParseError> {
        Self::new(key)
    }

    /// Whether this is a Pipedrive custom-field hash key.
    pub fn is_custom(&self) -> bool {
        is_hash_key(&self.0)
    }

    /// Whether this is one of the canonical local names in [`keys::ALL`].
    pub fn is_canonical(&self) -> bool {
        keys::ALL.contains(&&*self.0)
    }

    /// The key's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_hash_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

impl fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FieldKey({:?})", &*self.0)
    }
}

impl fmt::Display for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for FieldKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for FieldKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FieldKey {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<FieldKey> for String {
    fn from(key: FieldKey) -> Self {
        key.0.as_ref().to_owned()
    }
}

/// A finite number with well-defined equality: `-0.0` is stored as `0.0`, NaN and infinities
/// are refused. Serialises as a JSON number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct NumberValue(f64);

impl NumberValue {
    /// Accepts a finite number.
    pub fn new(value: f64) -> Result<Self, ParseError> {
        if value.is_finite() {
            // Adding 0.0 turns -0.0 into 0.0 and leaves every other value alone.
            Ok(Self(value + 0.0))
        } else {
            Err(ParseError::NonFiniteNumber)
        }
    }

    /// The number.
    pub const fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for NumberValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for NumberValue {}

impl PartialOrd for NumberValue {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NumberValue {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl TryFrom<f64> for NumberValue {
    type Error = ParseError;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<NumberValue> for f64 {
    fn from(value: NumberValue) -> Self {
        value.0
    }
}

/// A calendar date in `YYYY-MM-DD` form (Pipedrive's date fields), validated including leap years.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CalendarDate(String);

impl CalendarDate {
    /// Parses `YYYY-MM-DD` (years 0001 to 9999).
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let err = || ParseError::InvalidDate(input.to_owned());
        let bytes = input.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return Err(err());
        }
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = input.get(range)?;
            if part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().ok()
            } else {
                None
            }
        };
        let (Some(year), Some(month), Some(day)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err(err());
        };
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(err()),
        };
        if year == 0 || day == 0 || day > days_in_month {
            return Err(err());
        }
        Ok(Self(input.to_owned()))
    }

    /// The `YYYY-MM-DD` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CalendarDate {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CalendarDate> for String {
    fn from(date: CalendarDate) -> Self {
        date.0
    }
}

/// The option ids of a multi-option (`set`) field, kept sorted and without duplicates so that
/// equality does not depend on order. Serialises as a JSON array of integers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<i64>", into = "Vec<i64>")]
pub struct OptionIds(Vec<i64>);

impl OptionIds {
    /// Sorts and deduplicates the ids.
    pub fn new(ids: impl IntoIterator<Item = i64>) -> Self {
        let mut ids: Vec<i64> = ids.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        Self(ids)
    }

    /// The ids, ascending.
    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }

    /// Whether no option is selected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<i64>> for OptionIds {
    fn from(ids: Vec<i64>) -> Self {
        Self::new(ids)
    }
}

impl From<OptionIds> for Vec<i64> {
    fn from(ids: OptionIds) -> Self {
        ids.0
    }
}

/// An ISO 4217 currency code (`EUR`, `USD`): three ASCII letters, kept upper-case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CurrencyCode(String);

impl CurrencyCode {
    /// Accepts three ASCII letters (any case; stored upper-case).
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let code = input.trim();
        if code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Self(code.to_ascii_uppercase()))
        } else {
            Err(ParseError::InvalidCurrency(input.to_owned()))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CurrencyCode {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CurrencyCode> for String {
    fn from(code: CurrencyCode) -> Self {
        code.0
    }
}

/// An amount in a currency (Pipedrive's `monetary` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: NumberValue,
    pub currency: CurrencyCode,
}

/// A range of calendar days, `start` to `until` inclusive (Pipedrive's `daterange` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DateRange {
    pub start: CalendarDate,
    pub until: CalendarDate,
}

impl DateRange {
    /// A range; `until` must not be before `start`.
    pub fn new(start: CalendarDate, until: CalendarDate) -> Result<Self, ParseError> {
        if until < start {
            return Err(ParseError::InvalidRange(format!(
                "{} is before {}",
                until.as_str(),
                start.as_str()
            )));
        }
        Ok(Self { start, until })
    }
}

/// A time of day, `HH:MM:SS` (24 h). `HH:MM` is accepted and completed with `:00`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeOfDay(String);

impl TimeOfDay {
    /// Parses `HH:MM` or `HH:MM:SS`.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let err = || ParseError::InvalidTime(input.to_owned());
        let parts: Vec<&str> = input.trim().split(':').collect();
        if !(2..=3).contains(&parts.len())
            || parts
                .iter()
                .any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err());
        }
        let num = |i: usize| {
            parts
                .get(i)
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0)
        };
        if num(0) > 23 || num(1) > 59 || num(2) > 59 {
            return Err(err());
        }
        Ok(Self(format!("{:02}:{:02}:{:02}", num(0), num(1), num(2))))
    }

    /// The `HH:MM:SS` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TimeOfDay {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeOfDay> for String {
    fn from(time: TimeOfDay) -> Self {
        time.0
    }
}

/// The time zone Pipedrive keeps with a `time` or `timerange` value, as far as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeZone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A time of day with its zone (Pipedrive's `time` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZonedTime {
    pub time: TimeOfDay,
    #[serde(default)]
    pub zone: TimeZone,
}

/// A range of times of day with its zone (Pipedrive's `timerange` fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    pub start: TimeOfDay,
    pub until: TimeOfDay,
    #[serde(default)]
    pub zone: TimeZone,
}

/// The parts of an address Pipedrive keeps besides its text (`route`, `locality`, ...).
pub const ADDRESS_PARTS: &[&str] = &[
    "street_number",
    "route",
    "subpremise",
    "sublocality",
    "locality",
    "admin_area_level_1",
    "admin_area_level_2",
    "country",
    "postal_code",
    "formatted_address",
];

/// An address (Pipedrive's `address` fields): its text and the parts Pipedrive knows. An
/// address without parts is the same value as its text ([`FieldValue::canonical`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub value: String,
    /// Keys from [`ADDRESS_PARTS`]; empty parts are left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, String>,
}

/// One entry of an e-mail or phone list, as Pipedrive models them (`{value, label, primary}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LabeledValue {
    /// The address or number.
    pub value: String,
    /// `work`, `home`, `mobile`, `other`, ... if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Whether this is the primary entry.
    #[serde(default)]
    pub primary: bool,
}

impl LabeledValue {
    /// An entry with a value, an optional label and the primary flag.
    pub fn new(value: impl Into<String>, label: Option<&str>, primary: bool) -> Self {
        Self {
            value: value.into(),
            label: label.map(str::to_owned),
            primary,
        }
    }
}

/// The value of one field on one side.
///
/// `Cleared` is a value ("this field is empty"), distinct from a field being absent from a
/// [`Snapshot`] ("unknown / not part of this event"). Empty text, an empty option set and empty
/// e-mail/phone lists are equal to `Cleared` (Pipedrive does not distinguish them), so equality
/// is semantic; [`FieldValue::canonical`] gives the canonical form.
///
/// JSON form: `{"type": "text", "value": "..."}`, `{"type": "cleared"}`, ...
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum FieldValue {
    /// Free text (varchar, text, varchar_auto, phone-typed custom fields).
    Text(String),
    /// A number (double, monetary amount, user/org id fields).
    Number(NumberValue),
    /// A calendar date.
    Date(CalendarDate),
    /// A single-option (`enum`) field: the option id.
    Option(i64),
    /// A multi-option (`set`) field: the option ids.
    Options(OptionIds),
    /// E-mail addresses.
    Emails(Vec<LabeledValue>),
    /// Phone numbers.
    Phones(Vec<LabeledValue>),
    /// An amount with its currency (`monetary`).
    Money(Money),
    /// A range of days (`daterange`).
    DateRange(DateRange),
    /// A time of day with its zone (`time`).
    Time(ZonedTime),
    /// A range of times with its zone (`timerange`).
    TimeRange(TimeRange),
    /// An address with its parts (`address`); without parts it equals its text.
    Address(Address),
    /// Explicitly empty.
    Cleared,
}

impl FieldValue {
    /// A text value.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// A number value; fails on NaN and infinities.
    pub fn number(value: f64) -> Result<Self, ParseError> {
        NumberValue::new(value).map(Self::Number)
    }

    /// A date value from `YYYY-MM-DD`.
    pub fn date(date: &str) -> Result<Self, ParseError> {
        CalendarDate::parse(date).map(Self::Date)
    }

    /// A multi-option value (order and duplicates do not matter).
    pub fn options(ids: impl IntoIterator<Item = i64>) -> Self {
        Self::Options(OptionIds::new(ids))
    }

    /// Whether this value means "empty": `Cleared`, `""`, no options, an empty list.
    pub fn is_cleared(&self) -> bool {
        match self {
            Self::Cleared => true,
            Self::Text(text) => text.is_empty(),
            Self::Options(ids) => ids.is_empty(),
            Self::Emails(list) | Self::Phones(list) => list.is_empty(),
            Self::Address(address) => address.value.is_empty() && address.parts.is_empty(),
            Self::Number(_)
            | Self::Date(_)
            | Self::Option(_)
            | Self::Money(_)
            | Self::DateRange(_)
            | Self::Time(_)
            | Self::TimeRange(_) => false,
        }
    }

    /// The canonical form: every empty value becomes `Cleared`, an address without parts
    /// becomes its text.
    pub fn canonical(self) -> Self {
        if self.is_cleared() {
            return Self::Cleared;
        }
        match self {
            Self::Address(address) if address.parts.is_empty() => Self::Text(address.value),
            other => other,
        }
    }
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Text(a), Self::Text(b)) => a == b,
            (Self::Number(a), Self::Number(b)) => a == b,
            (Self::Date(a), Self::Date(b)) => a == b,
            (Self::Option(a), Self::Option(b)) => a == b,
            (Self::Options(a), Self::Options(b)) => a == b,
            (Self::Emails(a), Self::Emails(b)) | (Self::Phones(a), Self::Phones(b)) => a == b,
            (Self::Money(a), Self::Money(b)) => a == b,
            (Self::DateRange(a), Self::DateRange(b)) => a == b,
            (Self::Time(a), Self::Time(b)) => a == b,
            (Self::TimeRange(a), Self::TimeRange(b)) => a == b,
            (Self::Address(a), Self::Address(b)) => {
                (a == b) || (a.is_cleared_like() && b.is_cleared_like())
            }
            (Self::Address(a), Self::Text(t)) | (Self::Text(t), Self::Address(a))
                if a.parts.is_empty() =>
            {
                &a.value == t
            }
            _ => self.is_cleared() && other.is_cleared(),
        }
    }
}

impl Eq for FieldValue {}

impl Address {
    fn is_cleared_like(&self) -> bool {
        self.value.is_empty() && self.parts.is_empty()
    }
}

/// The values of a contact's fields on one side (or the agreed base), with that side's version.
///
/// A field absent from `fields` is unknown (not part of this event); use
/// [`FieldValue::Cleared`] for an empty field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Field values by key.
    pub fields: BTreeMap<FieldKey, FieldValue>,
    /// The side's own version: Pipedrive's `update_time`, the app's `updated_at`. For a base,
    /// the newest version merged into it.
    pub version: Timestamp,
}

impl Snapshot {
    /// An empty snapshot at a version.
    pub fn new(version: Timestamp) -> Self {
        Self {
            fields: BTreeMap::new(),
            version,
        }
    }

    /// Adds or replaces a field (builder style).
    #[must_use]
    pub fn with(mut self, key: FieldKey, value: FieldValue) -> Self {
        self.fields.insert(key, value);
        self
    }

    /// A field's value, if known.
    pub fn get(&self, key: &FieldKey) -> Option<&FieldValue> {
        self.fields.get(key)
    }

    /// Writes `changes` over this snapshot's fields (what a side looks like after tandem's write).
    pub fn apply(&mut self, changes: &BTreeMap<FieldKey, FieldValue>) {
        for (key, value) in changes {
            self.fields.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> FieldKey {
        FieldKey::new(k).unwrap()
    }

    #[test]
    fn a_canonical_field_name_is_a_valid_key() {
        for name in keys::ALL {
            let k = key(name);
            assert!(k.is_canonical());
            assert!(!k.is_custom());
        }
    }

    #[test]
    fn a_pipedrive_hash_key_is_a_custom_field_key_and_is_lower_cased() {
        let k = key("946947D1B02FD3EF20798D6112EC5D895A686A21");
        assert!(k.is_custom());
        assert_eq!(k.as_str(), "946947d1b02fd3ef20798d6112ec5d895a686a21");
    }

    #[test]
    fn a_field_key_that_is_neither_snake_case_nor_a_hash_is_rejected() {
        for bad in ["", "Name", "1abc", "first-name", "a b", "946947d1b02f"] {
            assert!(FieldKey::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn option_ids_compare_regardless_of_order_and_duplicates() {
        assert_eq!(
            FieldValue::options([3, 1, 2, 3]),
            FieldValue::options([1, 2, 3])
        );
        let json = serde_json::to_string(&FieldValue::options([3, 1])).unwrap();
        assert_eq!(json, r#"{"type":"options","value":[1,3]}"#);
        let back: FieldValue =
            serde_json::from_str(r#"{"type":"options","value":[9,2,9]}"#).unwrap();
        assert_eq!(back, FieldValue::options([2, 9]));
    }

    #[test]
    fn a_number_has_well_defined_equality() {
        assert_eq!(
            FieldValue::number(-0.0).unwrap(),
            FieldValue::number(0.0).unwrap()
        );
        assert_ne!(
            FieldValue::number(0.1).unwrap(),
            FieldValue::number(0.2).unwrap()
        );
        assert!(FieldValue::number(f64::NAN).is_err());
        assert!(FieldValue::number(f64::INFINITY).is_err());
        assert!(serde_json::from_str::<NumberValue>("1e999").is_err());
    }

    #[test]
    fn a_date_must_be_a_real_calendar_day() {
        assert!(CalendarDate::parse("2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-1-01",
            "20240101",
            "0000-01-01",
        ] {
            assert!(CalendarDate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_text_an_empty_list_and_cleared_are_the_same_value() {
        assert_eq!(FieldValue::text(""), FieldValue::Cleared);
        assert_eq!(FieldValue::Emails(vec![]), FieldValue::Cleared);
        assert_eq!(FieldValue::options([]), FieldValue::text(""));
        assert_ne!(FieldValue::text(" "), FieldValue::Cleared);
        assert_eq!(FieldValue::text("").canonical(), FieldValue::Cleared);
        assert!(matches!(
            FieldValue::text("").canonical(),
            FieldValue::Cleared
        ));
    }

    #[test]
    fn a_field_value_round_trips_through_json() {
        let values = vec![
            FieldValue::text("Ada"),
            FieldValue::number(500.5).unwrap(),
            FieldValue::date("2024-01-01").unwrap(),
            FieldValue::Option(123),
            FieldValue::options([456, 123]),
            FieldValue::Emails(vec![LabeledValue::new("a@b.co", Some("work"), true)]),
            FieldValue::Phones(vec![LabeledValue::new("+1 555 0100", None, false)]),
            FieldValue::Cleared,
        ];
        for value in values {
            let json = serde_json::to_string(&value).unwrap();
            let back: FieldValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back, value, "{json}");
        }
        assert_eq!(
            serde_json::to_string(&FieldValue::Cleared).unwrap(),
            r#"{"type":"cleared"}"#
        );
    }

    #[test]
    fn a_snapshot_round_trips_through_json_with_a_plain_integer_version() {
        let snap = Snapshot::new(Timestamp(5)).with(key("name"), FieldValue::text("Ada"));
        let json = serde_json::to_string(&snap).unwrap();
        assert_eq!(
            json,
            r#"{"fields":{"name":{"type":"text","value":"Ada"}},"version":5}"#
        );
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), snap);
    }

    #[test]
    fn every_pipedrive_value_shape_round_trips_through_json_and_compares_by_meaning() {
        let money = FieldValue::Money(Money {
            amount: NumberValue::new(1234.5).unwrap(),
            currency: CurrencyCode::parse("eur").unwrap(),
        });
        let range = FieldValue::DateRange(
            DateRange::new(
                CalendarDate::parse("2024-01-01").unwrap(),
                CalendarDate::parse("2024-01-31").unwrap(),
            )
            .unwrap(),
        );
        let time = FieldValue::Time(ZonedTime {
            time: TimeOfDay::parse("09:30").unwrap(),
            zone: TimeZone {
                id: Some(318),
                name: Some("Europe/London".into()),
            },
        });
        let times = FieldValue::TimeRange(TimeRange {
            start: TimeOfDay::parse("09:00:00").unwrap(),
            until: TimeOfDay::parse("17:00:00").unwrap(),
            zone: TimeZone::default(),
        });
        let address = FieldValue::Address(Address {
            value: "1 Main St, London".into(),
            parts: [("country".to_owned(), "UK".to_owned())]
                .into_iter()
                .collect(),
        });
        for value in [money, range, time, times, address] {
            let json = serde_json::to_string(&value).unwrap();
            let back: FieldValue = serde_json::from_str(&json).unwrap();
            assert_eq!(back, value, "{json}");
            assert!(!value.is_cleared());
        }
        let bare = FieldValue::Address(Address {
            value: "1 Main St".into(),
            parts: BTreeMap::new(),
        });
        assert_eq!(bare, FieldValue::text("1 Main St"));
        assert_eq!(bare.canonical(), FieldValue::text("1 Main St"));
        assert_eq!(TimeOfDay::parse("9:30").ok(), None);
        assert!(TimeOfDay::parse("24:00").is_err());
        assert!(CurrencyCode::parse("EURO").is_err());
        assert!(DateRange::new(
            CalendarDate::parse("2024-02-01").unwrap(),
            CalendarDate::parse("2024-01-01").unwrap()
        )
        .is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn zone() -> impl Strategy<Value = TimeZone> {
            (
                proptest::option::of(1i64..500),
                proptest::option::of("[A-Z][a-z]{2,8}/[A-Z][a-z]{2,8}"),
            )
                .prop_map(|(id, name)| TimeZone { id, name })
        }

        fn time() -> impl Strategy<Value = TimeOfDay> {
            (0u32..24, 0u32..60, 0u32..60)
                .prop_map(|(h, m, s)| TimeOfDay::parse(&format!("{h:02}:{m:02}:{s:02}")).unwrap())
        }

        fn date() -> impl Strategy<Value = CalendarDate> {
            (1u32..=9999, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| {
                CalendarDate::parse(&format!("{y:04}-{m:02}-{d:02}")).unwrap()
            })
        }

        fn structured() -> impl Strategy<Value = FieldValue> {
            prop_oneof![
                // Amounts in cents: serde_json without `float_roundtrip` may move the last
                // digit of an arbitrary f64.
                (-100_000_000_000i64..100_000_000_000, "[A-Za-z]{3}").prop_map(|(cents, code)| {
                    FieldValue::Money(Money {
                        amount: NumberValue::new(cents as f64 / 100.0).unwrap(),
                        currency: CurrencyCode::parse(&code).unwrap(),
                    })
                }),
                (date(), date()).prop_map(|(a, b)| {
                    let (start, until) = if a <= b { (a, b) } else { (b, a) };
                    FieldValue::DateRange(DateRange::new(start, until).unwrap())
                }),
                (time(), zone())
                    .prop_map(|(time, zone)| FieldValue::Time(ZonedTime { time, zone })),
                (time(), time(), zone()).prop_map(|(start, until, zone)| {
                    FieldValue::TimeRange(TimeRange { start, until, zone })
                }),
                (
                    "[a-z0-9 ]{0,12}",
                    proptest::collection::btree_map(
                        proptest::sample::select(ADDRESS_PARTS.to_vec()).prop_map(str::to_owned),
                        "[a-z]{1,6}",
                        0..3
                    )
                )
                    .prop_map(|(value, parts)| FieldValue::Address(Address { value, parts })),
            ]
        }

        proptest! {
            #[test]
            fn a_structured_value_round_trips_through_json_and_its_canonical_form_is_the_same_value(
                value in structured()
            ) {
                let json = serde_json::to_string(&value).unwrap();
                let back: FieldValue = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(&back, &value);
                let canonical = value.clone().canonical();
                prop_assert_eq!(&canonical, &value);
                prop_assert_eq!(canonical.clone().canonical(), canonical.clone());
                prop_assert_eq!(value.is_cleared(), matches!(canonical, FieldValue::Cleared));
            }

            #[test]
            fn a_time_of_day_parses_what_it_prints(t in time()) {
                prop_assert_eq!(TimeOfDay::parse(t.as_str()).unwrap(), t);
            }
        }
    }
}
