//! Echo suppression: recognising tandem's own writes when they come back as change events.
//!
//! The engine keeps, per link and side, the values it last wrote to that side (until the side
//! confirms a newer version). An incoming event's fields that equal those values are our echo:
//! they are removed before merging, so they can never produce a write. No ping-pong, by
//! construction: a field that is stripped is absent, and an absent field is never a change.

use std::collections::BTreeMap;

use crate::value::{FieldKey, FieldValue, Snapshot};

/// The fields of `incoming` that genuinely changed: every field whose value equals what tandem
/// itself last wrote to that side is dropped.
pub fn strip_echo(
    incoming: &BTreeMap<FieldKey, FieldValue>,
    last_written: &BTreeMap<FieldKey, FieldValue>,
) -> BTreeMap<FieldKey, FieldValue> {
    incoming
        .iter()
        .filter(|(key, value)| last_written.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// [`strip_echo`] over a whole snapshot, keeping its version.
pub fn strip_echo_snapshot(
    incoming: &Snapshot,
    last_written: &BTreeMap<FieldKey, FieldValue>,
) -> Snapshot {
    Snapshot {
        fields: strip_echo(&incoming.fields, last_written),
        version: incoming.version,
    }
}

/// Whether an event is entirely our own echo: every field it carries equals what tandem last
/// wrote (an event with no fields counts as an echo: it changes nothing).
pub fn is_echo(
    incoming: &BTreeMap<FieldKey, FieldValue>,
    last_written: &BTreeMap<FieldKey, FieldValue>,
) -> bool {
    incoming
        .iter()
        .all(|(key, value)| last_written.get(key) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Timestamp;
    use crate::merge::{merge, MergePolicy};

    fn k(name: &str) -> FieldKey {
        FieldKey::new(name).unwrap()
    }

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<FieldKey, FieldValue> {
        pairs
            .iter()
            .map(|(key, value)| (k(key), FieldValue::text(*value)))
            .collect()
    }

    #[test]
    fn a_field_equal_to_what_tandem_last_wrote_is_recognised_as_an_echo() {
        let incoming = fields(&[("name", "Ada L."), ("org_name", "ACME")]);
        let written = fields(&[("name", "Ada L.")]);
        assert_eq!(
            strip_echo(&incoming, &written),
            fields(&[("org_name", "ACME")])
        );
        assert!(!is_echo(&incoming, &written));
        assert!(is_echo(&fields(&[("name", "Ada L.")]), &written));
    }

    #[test]
    fn a_field_that_differs_from_what_tandem_wrote_is_a_genuine_change() {
        let incoming = fields(&[("name", "Ada B.")]);
        let written = fields(&[("name", "Ada L.")]);
        assert_eq!(strip_echo(&incoming, &written), incoming);
    }

    #[test]
    fn a_late_echo_of_an_older_write_does_not_undo_a_newer_local_change() {
        // tandem wrote name=B to Pipedrive; meanwhile the contact changed to C locally and the
        // base moved to C. The webhook for our write of B then arrives.
        let last_written = fields(&[("name", "B")]);
        let base = Snapshot {
            fields: fields(&[("name", "C")]),
            version: Timestamp(3),
        };
        let local = base.clone();
        let echo = Snapshot {
            fields: fields(&[("name", "B")]),
            version: Timestamp(4),
        };
        let unstripped = merge(&base, &local, &echo, &MergePolicy::default());
        assert!(
            !unstripped.is_noop(),
            "without suppression the echo ping-pongs"
        );
        let stripped = strip_echo_snapshot(&echo, &last_written);
        let out = merge(&base, &local, &stripped, &MergePolicy::default());
        assert!(out.is_noop());
        assert_eq!(out.new_base.fields, base.fields);
    }
}
