//! tandem's schema, as append-only sea-orm migrations. A migration that has landed is never
//! edited: fix it with a new one. Every constraint and index is named, so errors can be mapped
//! by constraint name in one place (`tandem_engine::store::error`).

// `async_trait` cannot take the explicit `SchemaManager<'_>` the lint asks for.
#![allow(elided_lifetimes_in_paths)]

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_core_tables;
mod m20261123_000002_create_journey_action;
mod m20261123_000003_create_revoked_session;
mod m20261123_000004_outbox_claim_index;
mod m20261203_000001_field_mapping_currency;
mod m20261203_000002_link_write_state;
mod m20261203_000010_queue_claims;
mod m20261204_000001_create_metric_minute;
mod m20261215_000001_mirror_cursor;
mod m20261220_000001_replica_leases;
mod m20261220_000002_crm_triggers;
mod m20261220_000003_email_log;
mod m20261221_000001_crm_record_key;
mod m20261222_000001_mirror_schedule;
mod m20261223_000001_crm_organization;
mod m20261224_000001_crm_organization_snapshot;
mod m20261225_000001_crm_trigger_announced;
mod m20261227_000001_crm_trigger_state;
mod m20261227_000002_crm_trigger_catch_up;
mod m20261228_000001_email_log_events;
mod m20261229_000001_connection_receives_list;
mod m20261230_000001_crm_related_record;
mod m20261231_000001_tenants;
mod m20270101_000001_email_log_tenant;
mod m20270102_000001_crm_person;
mod m20270102_000002_merged_person;
mod m20270103_000001_crm_related_activity_type;
mod m20270104_000001_relist_salesforce_tasks;

/// The ordered list of tandem's migrations.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_core_tables::Migration),
            Box::new(m20261123_000002_create_journey_action::Migration),
            Box::new(m20261123_000003_create_revoked_session::Migration),
            Box::new(m20261123_000004_outbox_claim_index::Migration),
            Box::new(m20261203_000001_field_mapping_currency::Migration),
            Box::new(m20261203_000002_link_write_state::Migration),
            Box::new(m20261203_000010_queue_claims::Migration),
            Box::new(m20261204_000001_create_metric_minute::Migration),
            Box::new(m20261215_000001_mirror_cursor::Migration),
            Box::new(m20261220_000001_replica_leases::Migration),
            Box::new(m20261220_000002_crm_triggers::Migration),
            Box::new(m20261220_000003_email_log::Migration),
            Box::new(m20261221_000001_crm_record_key::Migration),
            Box::new(m20261222_000001_mirror_schedule::Migration),
            Box::new(m20261223_000001_crm_organization::Migration),
            Box::new(m20261224_000001_crm_organization_snapshot::Migration),
            Box::new(m20261225_000001_crm_trigger_announced::Migration),
            Box::new(m20261227_000001_crm_trigger_state::Migration),
            Box::new(m20261227_000002_crm_trigger_catch_up::Migration),
            Box::new(m20261228_000001_email_log_events::Migration),
            Box::new(m20261229_000001_connection_receives_list::Migration),
            Box::new(m20261230_000001_crm_related_record::Migration),
            Box::new(m20261231_000001_tenants::Migration),
            Box::new(m20270101_000001_email_log_tenant::Migration),
            Box::new(m20270102_000001_crm_person::Migration),
            Box::new(m20270102_000002_merged_person::Migration),
            Box::new(m20270103_000001_crm_related_activity_type::Migration),
            Box::new(m20270104_000001_relist_salesforce_tasks::Migration),
        ]
    }
}
