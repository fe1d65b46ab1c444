//! Salesforce record ids: a three-character key prefix, a 12-character body, and the
//! three-character case-safe suffix that turns the 15-character id into the 18-character one.

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The 18-character id of the `n`-th record with this key prefix in an org whose pod
/// characters are `pod` (two characters, e.g. `5g` for production, `8s` for a sandbox).
pub(crate) fn make_id(prefix: &str, pod: &str, n: u64) -> String {
    let mut body = [b'0'; 10];
    let mut v = n;
    for slot in body.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    let mut id15 = String::with_capacity(18);
    id15.push_str(prefix);
    id15.push_str(pod);
    id15.push_str(std::str::from_utf8(&body).unwrap_or("0000000000"));
    id15.truncate(15);
    to_18(&id15)
}

/// Appends the case-safe suffix to a 15-character id (an 18-character id is returned as is).
pub(crate) fn to_18(id: &str) -> String {
    if id.len() != 15 {
        return id.to_owned();
    }
    let bytes = id.as_bytes();
    let mut out = id.to_owned();
    for chunk in bytes.chunks(5) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(SUFFIX[bits] as char);
    }
    out
}

/// Whether `s` looks like a Salesforce id (15 or 18 alphanumeric characters, with a valid
/// suffix when 18); returns the 18-character form.
pub(crate) fn parse_id(s: &str) -> Option<String> {
    if !(s.len() == 15 || s.len() == 18) || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let full = to_18(&s[..15]);
    if s.len() == 18 && !full[15..].eq_ignore_ascii_case(&s[15..]) {
        return None;
    }
    Some(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_fifteen_character_id_gets_its_documented_suffix() {
        // The example of Salesforce's own documentation.
        assert_eq!(to_18("001A0000006Vm9r"), "001A0000006Vm9rIAC");
    }

    #[test]
    fn ids_are_eighteen_characters_sorted_by_sequence_and_parse_back() {
        let a = make_id("00Q", "5g", 1);
        let b = make_id("00Q", "5g", 62);
        assert_eq!(a.len(), 18);
        assert!(a.starts_with("00Q5g"));
        assert!(a < b);
        assert_eq!(parse_id(&a), Some(a.clone()));
        assert_eq!(parse_id(&a[..15]), Some(a.clone()));
        assert_eq!(parse_id("not-an-id"), None);
    }
}
