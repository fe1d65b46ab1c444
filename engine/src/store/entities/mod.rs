//! sea-orm entities, one file per table, hand-written to match the migrations. Private to
//! `store/`: other modules use the store's functions and the core's types.

// The derive macros generate `pub` items; some tables are used by features still landing.
#![allow(unreachable_pub, dead_code)]

pub(crate) mod connection;
pub(crate) mod contact;
pub(crate) mod contact_field;
pub(crate) mod contact_list_member;
pub(crate) mod crm_organization;
pub(crate) mod crm_organization_snapshot;
pub(crate) mod crm_record_key;
pub(crate) mod crm_related_record;
pub(crate) mod duplicate_group;
pub(crate) mod email_log;
pub(crate) mod email_setting;
pub(crate) mod field_mapping;
pub(crate) mod idempotency_key;
pub(crate) mod inbox_event;
pub(crate) mod journey_action;
pub(crate) mod metric_minute;
pub(crate) mod oauth_state;
pub(crate) mod outbound_delivery;
pub(crate) mod outbox_job;
pub(crate) mod person_link;
pub(crate) mod revoked_session;
pub(crate) mod sync_cursor;
pub(crate) mod sync_log;
pub(crate) mod webhook_subscription;
