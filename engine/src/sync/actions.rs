//! Journey actions (Add Deal, Assign Person Owner, Schedule Activity, Update Pipedrive Field,
//! Update Deal Stage). Not built yet: no code path enqueues an action job, and one found in the
//! queue is dead-lettered with a clear message rather than silently dropped.

use uuid::Uuid;

use super::connections::ConnectionCtx;
use super::outbound::CrmFailure;
use super::Engine;
use crate::queue::Job;

pub async fn execute(
    _engine: &Engine,
    _conn: &ConnectionCtx,
    _job: &Job,
    action_id: Uuid,
) -> Result<(), CrmFailure> {
    Err(CrmFailure::Crm(
        tandem_core::CrmError::from_response(
            Some(501),
            None,
            format!("journey action {action_id}: actions are not supported by this version"),
            None,
        ),
        None,
    ))
}
