//! tandem's pure core: domain types, the field-level three-way merge, identity resolution,
//! echo suppression and retry maths. No async runtime, no I/O, no clock, no RNG: time and
//! randomness are passed in by the caller.
//!
//! - [`ids`], [`email`], [`value`]: types that parse, not validate (C3).
//! - [`merge`](mod@merge): the merge of a link's base with both sides, and event ordering.
//! - [`link`]: a link's state (base, versions, tandem's own and unknown-outcome writes, refused
//!   values) and its pure transitions.
//! - [`echo`]: recognising tandem's own writes when they come back.
//! - [`identity`]: which contact an inbound person is, and how to create outbound persons.
//! - [`scope`]: which contacts reach Pipedrive, and what deletes do.
//! - [`retry`], [`error`]: retry schedule, `Retry-After`, and CRM error classification (C8, C4).

pub mod batching;
pub mod echo;
pub mod email;
pub mod email_links;
pub mod error;
pub mod identity;
pub mod ids;
pub mod link;
pub mod merge;
pub mod organization;
pub mod record_check;
pub mod retry;
pub mod scope;
pub mod triggers;
pub mod value;

#[cfg(test)]
mod link_properties;
#[cfg(test)]
mod properties;

pub use batching::{plan_batches, BatchDecision, BatchWindow, PartialBatch, WriteBatching};
pub use echo::{is_echo, strip_echo, strip_echo_snapshot};
pub use email::{EmailAddress, Phone};
pub use error::{classify, CrmError, CrmErrorKind, ErrorClass, ParseError};
pub use identity::{
    decide_outbound_create, duplicate_groups, plan_outbound_create, resolve_inbound, resolve_local,
    DuplicateGroup, FoundPerson, IdentityCandidates, InboundIdentity, InboundPerson,
    LocalCandidate, LocalIdentity, MatchedBy, OutboundCreate, OutboundCreateDecision,
    OutboundCreatePlan, OutboundSearchResults,
};
pub use ids::{ApId, ConnectionId, ContactId, PersonId, TenantId, Timestamp};
pub use link::{LinkState, RemoteCheck, RemoteMerge, RemoteSource};
pub use merge::{
    freshness, is_stale, last_writer, merge, merge_delta, whole_seconds, Conflict, ConflictReason,
    ConflictRule, Direction, FieldRule, Freshness, LinkVersions, MergeDelta, MergeOutcome,
    MergePolicy, Side,
};
pub use organization::{organization_display_name, organization_key};
pub use retry::{RetryDecision, RetryPolicy};
pub use scope::{
    on_contact_deleted_locally, on_person_deleted, reaches_pipedrive, ContactScope, DeleteDecision,
    JourneyAction, LocalDeleteDecision,
};
pub use value::{
    keys, Address, CalendarDate, CurrencyCode, DateRange, FieldKey, FieldValue, LabeledValue,
    Money, NumberValue, OptionIds, Snapshot, TimeOfDay, TimeRange, TimeZone, ZonedTime,
    ADDRESS_PARTS,
};
