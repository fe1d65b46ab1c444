//! Contact points: e-mail addresses and phone numbers, parsed once at the edge.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::error::ParseError;

/// Characters Pipedrive refuses in an e-mail address ("unsupported characters such as
/// `\`, `/`, `"`, `:`, `<`, `>`, `|`, `*`, or `~`", product note 003), plus the comma that
/// separates addresses.
const UNSUPPORTED_EMAIL_CHARS: &[char] = &['\\', ',', '/', '"', ':', '<', '>', '|', '*', '~'];

/// An e-mail address: trimmed, compared case-insensitively.
///
/// [`EmailAddress::as_str`] is the normalised (lower-cased) form used for matching and
/// deduplication; [`EmailAddress::original`] keeps the trimmed input for display. Equality,
/// ordering and hashing use the normalised form. Serialises as the original text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress {
    normalised: String,
    original: String,
}

impl EmailAddress {
    /// Parses an address: trims it, requires exactly one `@` with a non-empty local part
    /// (at most 64 characters) and a dotted domain, at most 254 characters in all, and rejects
    /// whitespace, control characters and the characters Pipedrive does not support.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(ParseError::EmptyEmail);
        }
        if trimmed.chars().count() > 254 {
            return Err(ParseError::EmailTooLong);
        }
        if let Some(bad) = trimmed
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || UNSUPPORTED_EMAIL_CHARS.contains(c))
        {
            return Err(ParseError::EmailInvalidCharacter(bad));
        }
        let mut parts = trimmed.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(ParseError::EmailAtSign);
        };
        if local.is_empty() || local.chars().count() > 64 {
            return Err(ParseError::EmailLocalPart);
        }
        let labels_ok = domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
        if !domain.contains('.') || !labels_ok {
            return Err(ParseError::EmailDomain);
        }
        Ok(Self {
            normalised: trimmed.to_lowercase(),
            original: trimmed.to_owned(),
        })
    }

    /// The normalised form: trimmed and lower-cased. Use it for matching.
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    /// The trimmed input as the user typed it. Use it for display and for writing to the CRM.
    pub fn original(&self) -> &str {
        &self.original
    }
}

impl PartialEq for EmailAddress {
    fn eq(&self, other: &Self) -> bool {
        self.normalised == other.normalised
    }
}

impl Eq for EmailAddress {}

impl PartialOrd for EmailAddress {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EmailAddress {
    fn cmp(&self, other: &Self) -> Ordering {
        self.normalised.cmp(&other.normalised)
    }
}

impl Hash for EmailAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalised.hash(state);
    }
}

/// Debug does not print the address: it is personal data (C5).
impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(..)")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalised)
    }
}

impl AsRef<str> for EmailAddress {
    fn as_ref(&self) -> &str {
        &self.normalised
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(email: EmailAddress) -> Self {
        email.original
    }
}

/// A phone number: trimmed, digits with optional separators and one leading `+`.
///
/// Equality uses the normalised form (`+` if present, then the digits only), so
/// `+49 (30) 123-45` equals `+493012345`. Serialises as the original text.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone {
    normalised: String,
    original: String,
}

impl Phone {
    /// Parses a phone number: 3 to 20 digits, separators ` - ( ) . /`, at most one leading `+`.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(ParseError::EmptyPhone);
        }
        let mut normalised = String::with_capacity(trimmed.len());
        for (i, c) in trimmed.chars().enumerate() {
            match c {
                '0'..='9' => normalised.push(c),
                '+' if i == 0 => normalised.push('+'),
                '+' => return Err(ParseError::PhoneShape),
                ' ' | '-' | '(' | ')' | '.' | '/' => {}
                other => return Err(ParseError::PhoneInvalidCharacter(other)),
            }
        }
        let digits = normalised.trim_start_matches('+').len();
        if !(3..=20).contains(&digits) {
            return Err(ParseError::PhoneShape);
        }
        Ok(Self {
            normalised,
            original: trimmed.to_owned(),
        })
    }

    /// The normalised form: an optional leading `+`, then digits only.
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    /// The trimmed input, for display and for writing to the CRM.
    pub fn original(&self) -> &str {
        &self.original
    }
}

impl PartialEq for Phone {
    fn eq(&self, other: &Self) -> bool {
        self.normalised == other.normalised
    }
}

impl Eq for Phone {}

impl Hash for Phone {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalised.hash(state);
    }
}

/// Debug does not print the number: it is personal data (C5).
impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phone(..)")
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl TryFrom<String> for Phone {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Phone> for String {
    fn from(phone: Phone) -> Self {
        phone.original
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_email_is_trimmed_and_compared_case_insensitively() {
        let a = EmailAddress::parse("  Ada.Lovelace@Example.COM \n").unwrap();
        let b = EmailAddress::parse("ada.lovelace@example.com").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "ada.lovelace@example.com");
        assert_eq!(a.original(), "Ada.Lovelace@Example.COM");
    }

    #[test]
    fn an_email_with_a_character_pipedrive_does_not_support_is_rejected_with_that_character() {
        for bad in ['\\', ',', '/', '"', ':', '<', '>', '|', '*', '~'] {
            let input = format!("ada{bad}x@example.com");
            assert_eq!(
                EmailAddress::parse(&input),
                Err(ParseError::EmailInvalidCharacter(bad)),
                "{input}"
            );
        }
        assert_eq!(
            EmailAddress::parse("ada lovelace@example.com"),
            Err(ParseError::EmailInvalidCharacter(' '))
        );
    }

    #[test]
    fn an_email_without_exactly_one_at_sign_is_rejected() {
        assert_eq!(
            EmailAddress::parse("ada.example.com"),
            Err(ParseError::EmailAtSign)
        );
        assert_eq!(
            EmailAddress::parse("a@b@example.com"),
            Err(ParseError::EmailAtSign)
        );
    }

    #[test]
    fn an_email_with_an_empty_local_part_or_a_bad_domain_is_rejected() {
        assert_eq!(
            EmailAddress::parse("@example.com"),
            Err(ParseError::EmailLocalPart)
        );
        assert_eq!(
            EmailAddress::parse("ada@localhost"),
            Err(ParseError::EmailDomain)
        );
        assert_eq!(
            EmailAddress::parse("ada@example..com"),
            Err(ParseError::EmailDomain)
        );
        assert_eq!(
            EmailAddress::parse("ada@-example.com"),
            Err(ParseError::EmailDomain)
        );
    }

    #[test]
    fn an_empty_or_blank_email_is_rejected() {
        assert_eq!(EmailAddress::parse(""), Err(ParseError::EmptyEmail));
        assert_eq!(EmailAddress::parse("  \t"), Err(ParseError::EmptyEmail));
    }

    #[test]
    fn an_overlong_email_is_rejected() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(EmailAddress::parse(&long), Err(ParseError::EmailTooLong));
    }

    #[test]
    fn an_email_debug_print_does_not_reveal_the_address() {
        let a = EmailAddress::parse("ada@example.com").unwrap();
        assert!(!format!("{a:?}").contains("ada"));
        let err = EmailAddress::parse("ada@@example.com").unwrap_err();
        assert!(!err.to_string().contains("ada"));
    }

    #[test]
    fn an_email_serialises_as_its_original_text_and_deserialises_by_parsing() {
        let a = EmailAddress::parse(" Ada@Example.com").unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"Ada@Example.com\"");
        let back: EmailAddress = serde_json::from_str(&json).unwrap();
        assert_eq!(back.original(), "Ada@Example.com");
        assert!(serde_json::from_str::<EmailAddress>("\"not an email\"").is_err());
    }

    #[test]
    fn a_phone_is_compared_on_its_digits() {
        let a = Phone::parse(" +49 (30) 123-45 ").unwrap();
        assert_eq!(a, Phone::parse("+493012345").unwrap());
        assert_eq!(a.as_str(), "+493012345");
        assert_eq!(a.to_string(), "+49 (30) 123-45");
    }

    #[test]
    fn a_phone_with_letters_or_a_misplaced_plus_is_rejected() {
        assert_eq!(
            Phone::parse("555-CALL"),
            Err(ParseError::PhoneInvalidCharacter('C'))
        );
        assert_eq!(Phone::parse("12+34"), Err(ParseError::PhoneShape));
        assert_eq!(Phone::parse("12"), Err(ParseError::PhoneShape));
        assert_eq!(Phone::parse(" "), Err(ParseError::EmptyPhone));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parsing_an_email_never_panics_and_is_idempotent(input in "\\PC{0,40}") {
            if let Ok(email) = EmailAddress::parse(&input) {
                let again = EmailAddress::parse(email.as_str()).unwrap();
                prop_assert_eq!(again.as_str(), email.as_str());
            }
        }

        #[test]
        fn emails_differing_only_in_case_and_padding_are_equal(
            local in "[a-zA-Z0-9._%+-]{1,20}",
            domain in "[a-zA-Z0-9]{1,10}\\.[a-zA-Z]{2,6}",
        ) {
            let plain = EmailAddress::parse(&format!("{local}@{domain}")).unwrap();
            let shouted =
                EmailAddress::parse(&format!("  {}@{} ", local.to_uppercase(), domain.to_uppercase()))
                    .unwrap();
            prop_assert_eq!(plain, shouted);
        }
    }
}
