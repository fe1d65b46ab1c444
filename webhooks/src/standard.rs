//! Standard Webhooks (<https://www.standardwebhooks.com>) signatures, both ways: tandem signs the
//! webhooks it sends to the app and verifies the ones the app sends, so an app uses any Standard
//! Webhooks library instead of code of its own.
//!
//! - Headers: `webhook-id`, `webhook-timestamp` (Unix seconds), `webhook-signature`.
//! - Signed content: `{id}.{timestamp}.{body}`, HMAC-SHA256, base64; the header carries
//!   space-separated `v1,<signature>` entries (several during a secret rotation).
//! - Secrets are written `whsec_<base64 of the key bytes>`.
//! - Verification: timestamp within ±5 minutes, constant-time comparison (`Mac::verify_slice`),
//!   any of several active secrets may match (rotation).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Header names.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// How far a timestamp may be from now, either way (svix `TOLERANCE_IN_SECONDS`).
pub const TOLERANCE_SECS: i64 = 5 * 60;

const PREFIX: &str = "whsec_";

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the secret must be written whsec_<base64>")]
    MalformedSecret,
    #[error("the `{0}` header is missing or not text")]
    MissingHeader(&'static str),
    #[error("the `webhook-timestamp` header is not a Unix time in seconds")]
    MalformedTimestamp,
    #[error("the timestamp is more than 5 minutes away from now (replayed or clock skew)")]
    TimestampOutOfTolerance,
    #[error("no `v1` signature matches any active secret")]
    NoMatchingSignature,
}

/// A signing secret: the key bytes of a `whsec_<base64>` string. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl Secret {
    /// Parses `whsec_<base64>` (at least 16 key bytes; the prefix is required).
    pub fn parse(text: &str) -> Result<Self, SignatureError> {
        let encoded = text
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(SignatureError::MalformedSecret)?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SignatureError::MalformedSecret)?;
        if bytes.len() < 16 {
            return Err(SignatureError::MalformedSecret);
        }
        Ok(Self(bytes))
    }

    /// A secret from raw key bytes (the caller's RNG; the crate holds no randomness).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The `whsec_<base64>` form, to hand to the app once.
    pub fn to_whsec(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac =
            HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable_hmac_key_error());
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `v1,<base64>` signature of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

#[allow(clippy::panic)]
fn unreachable_hmac_key_error() -> HmacSha256 {
    panic!("HMAC accepts keys of every length")
}

/// The three headers of a signed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
}

/// Signs `body` as message `id` at `timestamp` with `secret`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> SignedHeaders {
    SignedHeaders {
        id: id.to_owned(),
        timestamp,
        signature: secret.sign(id, timestamp, body),
    }
}

/// Verifies a message: the timestamp is within [`TOLERANCE_SECS`] of `now` (Unix seconds), and
/// one of the header's `v1` signatures matches one of `secrets` (compared in constant time).
/// `header` reads a header by name. Returns the message id (the deduplication key).
pub fn verify<'a>(
    secrets: &[Secret],
    header: impl Fn(&'static str) -> Option<&'a str>,
    body: &[u8],
    now: i64,
) -> Result<String, SignatureError> {
    let id = header(HEADER_ID)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(SignatureError::MissingHeader(HEADER_ID))?;
    let timestamp: i64 = header(HEADER_TIMESTAMP)
        .ok_or(SignatureError::MissingHeader(HEADER_TIMESTAMP))?
        .trim()
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    let signatures = header(HEADER_SIGNATURE)
        .filter(|v| !v.trim().is_empty())
        .ok_or(SignatureError::MissingHeader(HEADER_SIGNATURE))?;
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(SignatureError::TimestampOutOfTolerance);
    }
    let presented: Vec<Vec<u8>> = signatures
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect();
    for secret in secrets {
        for candidate in &presented {
            if secret
                .mac(id, timestamp, body)
                .verify_slice(candidate)
                .is_ok()
            {
                return Ok(id.to_owned());
            }
        }
    }
    Err(SignatureError::NoMatchingSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vector published with the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    // The specification publishes this id (a copy elsewhere has `msg_p5jXN8AQM9LjDnDM5GJBc1E3DlE`,
    // which does not produce the published signature).
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &str = r#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers<'a>(
        id: &'a str,
        ts: &'a str,
        sig: &'a str,
    ) -> impl Fn(&'static str) -> Option<&'a str> {
        move |name| match name {
            HEADER_ID => Some(id),
            HEADER_TIMESTAMP => Some(ts),
            HEADER_SIGNATURE => Some(sig),
            _ => None,
        }
    }

    #[test]
    fn signing_the_published_test_vector_gives_the_published_signature() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY.as_bytes()), SIGNATURE);
        assert_eq!(secret.to_whsec(), SECRET);
    }

    #[test]
    fn the_published_test_vector_verifies_within_tolerance() {
        let secret = Secret::parse(SECRET).unwrap();
        let ts = TIMESTAMP.to_string();
        let id = verify(
            &[secret],
            headers(ID, &ts, SIGNATURE),
            BODY.as_bytes(),
            TIMESTAMP + 299,
        )
        .unwrap();
        assert_eq!(id, ID);
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_refused_either_way() {
        let secret = Secret::parse(SECRET).unwrap();
        let ts = TIMESTAMP.to_string();
        for now in [TIMESTAMP + 301, TIMESTAMP - 301] {
            assert_eq!(
                verify(
                    std::slice::from_ref(&secret),
                    headers(ID, &ts, SIGNATURE),
                    BODY.as_bytes(),
                    now
                ),
                Err(SignatureError::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn a_changed_body_id_or_timestamp_does_not_verify() {
        let secret = Secret::parse(SECRET).unwrap();
        let ts = TIMESTAMP.to_string();
        let other_ts = (TIMESTAMP + 1).to_string();
        let cases = [
            (ID, ts.as_str(), BODY.replace("2432232314", "2432232315")),
            ("msg_other", ts.as_str(), BODY.to_owned()),
            (ID, other_ts.as_str(), BODY.to_owned()),
        ];
        for (id, ts, body) in cases {
            assert_eq!(
                verify(
                    std::slice::from_ref(&secret),
                    headers(id, ts, SIGNATURE),
                    body.as_bytes(),
                    TIMESTAMP
                ),
                Err(SignatureError::NoMatchingSignature)
            );
        }
    }

    #[test]
    fn any_active_secret_and_any_listed_signature_may_match_during_a_rotation() {
        let old = Secret::parse(SECRET).unwrap();
        let new = Secret::from_bytes(vec![7; 32]);
        let ts = TIMESTAMP.to_string();
        let header = format!("v1,bm90IGl0 {SIGNATURE}");
        assert!(verify(
            &[new.clone(), old],
            headers(ID, &ts, &header),
            BODY.as_bytes(),
            TIMESTAMP
        )
        .is_ok());
        assert_eq!(
            verify(
                &[new],
                headers(ID, &ts, &header),
                BODY.as_bytes(),
                TIMESTAMP
            ),
            Err(SignatureError::NoMatchingSignature)
        );
    }

    #[test]
    fn missing_headers_and_malformed_secrets_are_named() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(
            verify(&[secret], |_| None, b"{}", TIMESTAMP),
            Err(SignatureError::MissingHeader(HEADER_ID))
        );
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_!!!",
            "whsec_c2hvcnQ=",
        ] {
            assert_eq!(Secret::parse(bad), Err(SignatureError::MalformedSecret));
        }
        assert!(!format!("{:?}", Secret::parse(SECRET).unwrap()).contains("MfKQ"));
    }
}
