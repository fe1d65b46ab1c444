//! Identifiers and time: newtypes that can only be built by parsing, so a raw `String`, `i64`
//! or `Uuid` never crosses a module boundary (C3).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ParseError;

/// A point in time as milliseconds since the Unix epoch. Core has no clock: callers pass it in.
///
/// Also used as a side's version (Pipedrive's `update_time`, the app's `updated_at`).
/// Serialises as a plain integer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The Unix epoch; also "never", the version of an empty snapshot.
    pub const EPOCH: Self = Self(0);

    /// A timestamp from milliseconds since the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// A timestamp from whole seconds since the Unix epoch (Pipedrive's resolution).
    pub const fn from_unix_seconds(secs: i64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// This instant plus `delay`, saturating at the end of time.
    pub fn saturating_add(self, delay: Duration) -> Self {
        let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(millis))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn new(id: Uuid) -> Self {
                Self(id)
            }

            /// Parses the hyphenated (or simple) UUID text form.
            pub fn parse(input: &str) -> Result<Self, ParseError> {
                Uuid::parse_str(input.trim())
                    .map(Self)
                    .map_err(|_| ParseError::InvalidUuid { kind: $kind, input: input.to_owned() })
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The all-zero id: "none" where a label or key needs one.
            pub const fn nil() -> Self {
                Self(Uuid::nil())
            }

            /// The underlying UUID, by value (for a storage layer's bind parameters).
            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A local contact (the marketing-automation app's side).
    ContactId,
    "contact id"
);
uuid_id!(
    /// One tenant's connection to a CRM account.
    ConnectionId,
    "connection id"
);

/// A Pipedrive person id: a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct PersonId(i64);

impl PersonId {
    /// Accepts a positive id.
    pub fn new(id: i64) -> Result<Self, ParseError> {
        if id > 0 {
            Ok(Self(id))
        } else {
            Err(ParseError::InvalidPersonId(id.to_string()))
        }
    }

    /// Parses the decimal text form (as found in URLs and webhook payloads).
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        input
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .map(Self)
            .ok_or_else(|| ParseError::InvalidPersonId(input.to_owned()))
    }

    /// The numeric id.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl std::str::FromStr for PersonId {
    type Err = ParseError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        Self::parse(input)
    }
}

impl TryFrom<i64> for PersonId {
    type Error = ParseError;
    fn try_from(id: i64) -> Result<Self, Self::Error> {
        Self::new(id)
    }
}

impl From<PersonId> for i64 {
    fn from(id: PersonId) -> Self {
        id.0
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The value of Pipedrive's `apId` person custom field: the local contact's id as text, written by
/// tandem so a person can be matched back to its contact.
///
/// Any 1 to 255 characters without whitespace are accepted (older integrations wrote other
/// formats); [`ApId::contact_id`] says whether it names a tandem contact.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ApId(String);

impl ApId {
    /// Parses the custom field's text, trimming surrounding whitespace.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let trimmed = input.trim();
        if trimmed.is_empty()
            || trimmed.chars().count() > 255
            || trimmed.chars().any(char::is_whitespace)
        {
            return Err(ParseError::InvalidApId(input.to_owned()));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The apId tandem writes for a contact.
    pub fn for_contact(contact: ContactId) -> Self {
        Self(contact.to_string())
    }

    /// The contact this apId names, if it is a tandem contact id.
    pub fn contact_id(&self) -> Option<ContactId> {
        ContactId::parse(&self.0).ok()
    }

    /// The text as stored in Pipedrive.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ApId {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ApId> for String {
    fn from(id: ApId) -> Self {
        id.0
    }
}

impl AsRef<str> for ApId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The app's account a contact, a connection or a webhook subscription belongs to (issue 24):
/// tenants never meet. 1 to 64 characters of `A-Z a-z 0-9 . _ -`; a deployment that never
/// names one is the tenant [`TenantId::DEFAULT`] (`default`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// The tenant of everything that names none.
    pub const DEFAULT: &'static str = "default";

    /// Parses a tenant id exactly as given (no trimming: ` a` is not `a`).
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let valid = (1..=64).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if valid {
            Ok(Self(input.to_owned()))
        } else {
            Err(ParseError::InvalidTenant(input.chars().take(80).collect()))
        }
    }

    /// Whether this is the tenant of everything that names none.
    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

impl TryFrom<String> for TenantId {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> Self {
        id.0
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_is_one_to_sixty_four_letters_digits_dots_underscores_or_dashes() {
        assert_eq!(
            TenantId::parse("acme-1.eu_west").unwrap().as_str(),
            "acme-1.eu_west"
        );
        assert_eq!(TenantId::default().as_str(), "default");
        assert!(TenantId::default().is_default());
        assert!(TenantId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", " acme", "acme ", "a/b", "a:b", "ünï", "a\nb"] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TenantId::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn a_person_id_must_be_positive() {
        assert!(PersonId::new(0).is_err());
        assert!(PersonId::new(-3).is_err());
        assert_eq!(PersonId::new(42).unwrap().get(), 42);
        assert_eq!(PersonId::parse(" 42 ").unwrap(), PersonId::new(42).unwrap());
        assert!(PersonId::parse("4x").is_err());
    }

    #[test]
    fn a_person_id_deserialises_only_when_positive() {
        assert_eq!(
            serde_json::from_str::<PersonId>("7").unwrap(),
            PersonId::new(7).unwrap()
        );
        assert!(serde_json::from_str::<PersonId>("0").is_err());
        assert_eq!(
            serde_json::to_string(&PersonId::new(7).unwrap()).unwrap(),
            "7"
        );
    }

    #[test]
    fn a_timestamp_serialises_as_a_plain_integer() {
        assert_eq!(
            serde_json::to_string(&Timestamp::from_millis(1_700_000_000_123)).unwrap(),
            "1700000000123"
        );
        assert_eq!(Timestamp::from_unix_seconds(2).as_millis(), 2000);
        assert_eq!(
            Timestamp(1).saturating_add(Duration::from_millis(5)),
            Timestamp(6)
        );
    }

    #[test]
    fn a_contact_id_round_trips_through_its_text_form() {
        let id = ContactId::new(Uuid::from_u128(7));
        assert_eq!(ContactId::parse(&id.to_string()).unwrap(), id);
        assert!(matches!(
            ContactId::parse("nope"),
            Err(ParseError::InvalidUuid {
                kind: "contact id",
                ..
            })
        ));
    }

    #[test]
    fn an_ap_id_is_trimmed_and_may_name_a_contact() {
        let contact = ContactId::new(Uuid::from_u128(99));
        let ap = ApId::parse(&format!("  {contact} ")).unwrap();
        assert_eq!(ap, ApId::for_contact(contact));
        assert_eq!(ap.contact_id(), Some(contact));
        assert_eq!(ApId::parse("person_123").unwrap().contact_id(), None);
        assert!(ApId::parse("   ").is_err());
        assert!(ApId::parse("a b").is_err());
    }
}
