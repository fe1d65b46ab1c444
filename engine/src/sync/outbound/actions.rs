//! Journey actions: Add Deal, Assign Person Owner, Schedule Activity, Update Pipedrive Field,
//! Update Deal Stage, Add to Campaign (Salesforce only). A request is validated (422 with the reason), recorded with its
//! idempotency key and queued through the outbox with the `Action` priority (ahead of
//! backfill), in one transaction. Creating actions create the person first when the contact has
//! none (through the same identity path as pushes: link → apId → e-mail search → create);
//! the others fail with "no Pipedrive person" and create nothing. An action goes to the
//! connection the request names, else to the one that links the contact, else to the oldest
//! active one ([`route`]); its record and its outbox job keep that connection.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use tandem_core::ConnectionId;
use tandem_core::{ContactId, TenantId};

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tandem_core::{CrmError, FieldKey, FieldValue, JourneyAction};
use uuid::Uuid;

use crate::crm::{CrmStage, NewActivity, NewDeal};
use crate::queue::{self, Job, JobPayload, Priority};
use crate::store::journey_actions::{self, ActionRow};
use crate::store::{Conn, Constraint};
use crate::sync::app::contacts;
use crate::sync::connections::route::{self, RouteError};
use crate::sync::connections::{self, ConnectionCtx};
use crate::sync::links;
use crate::sync::outbound::{self, CrmFailure};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};

/// Action states.
pub mod state {
    pub const QUEUED: &str = "queued";
    pub const DONE: &str = "done";
    pub const FAILED: &str = "failed";
}

/// Why a request was refused before anything was queued.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown action {0:?}: use add_deal, assign_person_owner, schedule_activity, update_person_field, update_deal_stage or add_to_campaign")]
    UnknownAction(String),
    #[error("{0} is not supported on {1}")]
    NotSupported(&'static str, &'static str),
    #[error("the contact's Salesforce record is a Lead: a deal (Opportunity) needs a Contact, so the Lead must be converted in Salesforce first")]
    LeadNotConverted,
    #[error("no such contact")]
    UnknownContact,
    #[error("the contact has no Pipedrive person, and {0} never creates one")]
    NoPipedrivePerson(&'static str),
    #[error("the idempotency key was already used for a different request")]
    KeyReused,
    /// No connection to act on: the named one is unknown or disconnected, the contact is
    /// linked in several, or none is active.
    #[error(transparent)]
    Route(#[from] RouteError),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<crate::store::StoreError> for ActionError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::Sync(error.into())
    }
}

impl From<CrmError> for ActionError {
    fn from(error: CrmError) -> Self {
        Self::Sync(SyncError::Crm(error))
    }
}

/// The URL name of an action.
pub fn parse_action(name: &str) -> Result<JourneyAction, ActionError> {
    Ok(match name {
        "add_deal" => JourneyAction::AddDeal,
        "assign_person_owner" => JourneyAction::AssignPersonOwner,
        "schedule_activity" => JourneyAction::ScheduleActivity,
        "update_person_field" => JourneyAction::UpdatePipedriveField,
        "update_deal_stage" => JourneyAction::UpdateDealStage,
        "add_to_campaign" => JourneyAction::AddToCampaign,
        other => return Err(ActionError::UnknownAction(other.to_owned())),
    })
}

fn action_name(action: JourneyAction) -> &'static str {
    match action {
        JourneyAction::AddDeal => "add_deal",
        JourneyAction::AssignPersonOwner => "assign_person_owner",
        JourneyAction::ScheduleActivity => "schedule_activity",
        JourneyAction::UpdatePipedriveField => "update_person_field",
        JourneyAction::UpdateDealStage => "update_deal_stage",
        JourneyAction::AddToCampaign => "add_to_campaign",
    }
}

/// Which contact an action is for.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ContactRef {
    Id { contact_id: ContactId },
    Email { email: String },
}

/// Validated parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Params {
    AddDeal {
        title: String,
        value: Option<f64>,
        currency: Option<String>,
        pipeline_id: Option<i64>,
        stage_id: Option<i64>,
        owner_id: Option<i64>,
    },
    AssignPersonOwner {
        owner_id: i64,
    },
    ScheduleActivity {
        subject: String,
        r#type: Option<String>,
        due_date: Option<String>,
        owner_id: Option<i64>,
    },
    UpdatePersonField {
        field: String,
        value: Value,
    },
    UpdateDealStage {
        stage_id: i64,
        deal_id: Option<i64>,
    },
    AddToCampaign {
        campaign_id: String,
        status: Option<String>,
    },
}

/// An action as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    pub id: Uuid,
    pub action: String,
    pub contact_id: ContactId,
    /// The connection the action went to (its job and every retry run there).
    pub connection_id: ConnectionId,
    pub state: String,
    pub params: Value,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub pipedrive_status: Option<i32>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ActionRow> for ActionRecord {
    fn from(m: ActionRow) -> Self {
        Self {
            id: m.id,
            action: m.action,
            contact_id: m.contact_id.into(),
            connection_id: ConnectionId::new(m.connection_id),
            state: m.state,
            params: m.params,
            result: m.result,
            error: m.error,
            pipedrive_status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A submitted request.
#[derive(Debug, Clone)]
pub struct Submit {
    pub action: JourneyAction,
    pub contact: ContactRef,
    pub params: Value,
    pub idempotency_key: String,
    /// The connection to act on; without it, the one that links the contact (see
    /// [`route`]).
    pub connection_id: Option<ConnectionId>,
}

/// What a submission returns: the record, and whether it was created now (false = replay).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub record: ActionRecord,
    pub replayed: bool,
}

fn text(params: &Value, key: &str) -> Result<Option<String>, ActionError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(ActionError::Invalid(format!("`{key}` must not be empty")))
        }
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(ActionError::Invalid(format!("`{key}` must be a string"))),
    }
}

fn int(params: &Value, key: &str) -> Result<Option<i64>, ActionError> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| ActionError::Invalid(format!("`{key}` must be a positive integer"))),
    }
}

/// A positive integer, or (Salesforce) an id or key written as text: a User id `005…`, an
/// Opportunity id `006…`, a stage name.
fn id(conn: &ConnectionCtx, params: &Value, key: &str) -> Result<Option<i64>, ActionError> {
    match params.get(key) {
        Some(Value::String(text)) if !text.trim().is_empty() => conn
            .crm
            .id_from_text(&conn.session, text)
            .map(Some)
            .ok_or_else(|| ActionError::Invalid(format!("`{key}`: {text:?} is not an id"))),
        _ => int(params, key),
    }
}

fn reject_unknown(params: &Value, allowed: &[&str]) -> Result<(), ActionError> {
    let Some(object) = params.as_object() else {
        return Err(ActionError::Invalid(
            "the parameters must be a JSON object".into(),
        ));
    };
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(ActionError::Invalid(format!(
            "unknown parameter `{key}`; allowed: {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

static STAGES: LazyLock<DashMap<ConnectionId, (Instant, Vec<CrmStage>)>> =
    LazyLock::new(DashMap::new);

async fn stages(conn: &ConnectionCtx) -> Result<Vec<CrmStage>, ActionError> {
    if let Some(cached) = STAGES
        .get(&conn.id)
        .filter(|c| c.0.elapsed() < Duration::from_secs(300))
    {
        return Ok(cached.1.clone());
    }
    let fetched = conn.crm.stages(&conn.session).await?;
    STAGES.insert(conn.id, (Instant::now(), fetched.clone()));
    Ok(fetched)
}

async fn check_stage(
    conn: &ConnectionCtx,
    stage_id: i64,
    pipeline_id: Option<i64>,
) -> Result<(), ActionError> {
    let stages = stages(conn).await?;
    match stages.iter().find(|s| s.id == stage_id) {
        None => Err(ActionError::Invalid(format!("unknown stage {stage_id}"))),
        Some(stage) if pipeline_id.is_some() && stage.pipeline_id != pipeline_id => {
            Err(ActionError::Invalid(format!(
                "stage {stage_id} is not in pipeline {}",
                pipeline_id.unwrap_or_default()
            )))
        }
        Some(_) => Ok(()),
    }
}

/// Validates the parameters of an action (422 material).
pub async fn validate(
    _engine: &Engine,
    conn: &ConnectionCtx,
    action: JourneyAction,
    params: &Value,
) -> Result<Params, ActionError> {
    Ok(match action {
        JourneyAction::AddDeal => {
            reject_unknown(
                params,
                &[
                    "title",
                    "value",
                    "currency",
                    "pipeline_id",
                    "stage_id",
                    "owner_id",
                ],
            )?;
            let title = text(params, "title")?
                .ok_or_else(|| ActionError::Invalid("`title` is required".into()))?;
            let value = match params.get("value") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_f64()
                        .filter(|n| n.is_finite() && *n >= 0.0)
                        .ok_or_else(|| {
                            ActionError::Invalid("`value` must be a non-negative number".into())
                        })?,
                ),
            };
            let currency = text(params, "currency")?;
            if let Some(c) = &currency {
                if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                    return Err(ActionError::Invalid(format!(
                        "`currency` must be a 3-letter ISO code such as EUR, not {c:?}"
                    )));
                }
            }
            let (pipeline_id, stage_id) = (
                id(conn, params, "pipeline_id")?,
                id(conn, params, "stage_id")?,
            );
            if let Some(stage) = stage_id {
                check_stage(conn, stage, pipeline_id).await?;
            }
            Params::AddDeal {
                title,
                value,
                currency,
                pipeline_id,
                stage_id,
                owner_id: id(conn, params, "owner_id")?,
            }
        }
        JourneyAction::AssignPersonOwner => {
            reject_unknown(params, &["owner_id"])?;
            Params::AssignPersonOwner {
                owner_id: id(conn, params, "owner_id")?
                    .ok_or_else(|| ActionError::Invalid("`owner_id` is required".into()))?,
            }
        }
        JourneyAction::ScheduleActivity => {
            reject_unknown(params, &["subject", "type", "due_date", "owner_id"])?;
            let subject = text(params, "subject")?
                .ok_or_else(|| ActionError::Invalid("`subject` is required".into()))?;
            let due_date = text(params, "due_date")?;
            if let Some(date) = &due_date {
                tandem_core::CalendarDate::parse(date).map_err(|_| {
                    ActionError::Invalid(format!(
                        "`due_date` must be a date YYYY-MM-DD, not {date:?}"
                    ))
                })?;
            }
            Params::ScheduleActivity {
                subject,
                r#type: text(params, "type")?,
                due_date,
                owner_id: id(conn, params, "owner_id")?,
            }
        }
        JourneyAction::UpdatePipedriveField => {
            reject_unknown(params, &["field", "value"])?;
            let field = text(params, "field")?
                .ok_or_else(|| ActionError::Invalid("`field` is required".into()))?;
            let value = params.get("value").cloned().ok_or_else(|| {
                ActionError::Invalid("`value` is required (null clears the field)".into())
            })?;
            let key = FieldKey::new(&field)
                .map_err(|_| ActionError::Invalid(format!("unknown field {field:?}")))?;
            let mapped = conn.map.get(&key).ok_or_else(|| {
                ActionError::Invalid(format!("unknown field {field:?}: map it first"))
            })?;
            conn.crm
                .value_from_json(&mapped.remote, &value)
                .ok_or_else(|| {
                    ActionError::Invalid(format!("`value` has the wrong type for field {field:?}"))
                })?;
            Params::UpdatePersonField { field, value }
        }
        JourneyAction::UpdateDealStage => {
            reject_unknown(params, &["stage_id", "deal_id"])?;
            let stage_id = id(conn, params, "stage_id")?
                .ok_or_else(|| ActionError::Invalid("`stage_id` is required".into()))?;
            check_stage(conn, stage_id, None).await?;
            Params::UpdateDealStage {
                stage_id,
                deal_id: id(conn, params, "deal_id")?,
            }
        }
        JourneyAction::AddToCampaign => {
            if !conn.crm.has_campaigns() {
                return Err(ActionError::NotSupported(
                    "add_to_campaign",
                    conn.crm.display_name(),
                ));
            }
            reject_unknown(params, &["campaign_id", "status"])?;
            let campaign_id = text(params, "campaign_id")?
                .ok_or_else(|| ActionError::Invalid("`campaign_id` is required".into()))?;
            if conn
                .crm
                .campaign_name(&conn.session, &campaign_id)
                .await?
                .is_none()
            {
                return Err(ActionError::Invalid(format!(
                    "unknown campaign {campaign_id:?} (or the connecting user cannot see it)"
                )));
            }
            Params::AddToCampaign {
                campaign_id,
                status: text(params, "status")?,
            }
        }
    })
}

fn request_hash(request: &Submit) -> String {
    let mut value = json!({
        "action": action_name(request.action),
        "contact": request.contact,
        "params": request.params,
    });
    // Only when named, so the requests recorded before the field existed hash as they did.
    if let Some(connection) = request.connection_id {
        value["connection_id"] = json!(connection);
    }
    let text = value.to_string();
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

async fn resolve_contact(
    db: &impl Conn,
    tenant: &TenantId,
    contact: &ContactRef,
) -> Result<ContactId, ActionError> {
    match contact {
        ContactRef::Id { contact_id } => {
            let found = contacts::load_in(db, tenant, *contact_id)
                .await?
                .filter(|c| !c.archived);
            found.map(|c| c.id).ok_or(ActionError::UnknownContact)
        }
        ContactRef::Email { email } => {
            let email = tandem_core::EmailAddress::parse(email)
                .map_err(|e| ActionError::Invalid(format!("`email`: {e}")))?;
            contacts::ids_by_email(db, tenant, email.as_str())
                .await?
                .into_iter()
                .next()
                .ok_or(ActionError::UnknownContact)
        }
    }
}

/// [`submit_for`] the default tenant.
pub async fn submit(engine: &Engine, request: Submit) -> Result<Submitted, ActionError> {
    submit_for(engine, &TenantId::default(), request).await
}

/// Validates, records and queues an action of `tenant`: its contact and its connection are
/// the tenant's (another tenant's are unknown, as if they did not exist); a replayed
/// idempotency key (per tenant) returns the first result.
pub async fn submit_for(
    engine: &Engine,
    tenant: &TenantId,
    request: Submit,
) -> Result<Submitted, ActionError> {
    let db = &engine.store;
    let hash = request_hash(&request);
    if let Some(existing) =
        journey_actions::by_idempotency_key(db, tenant, &request.idempotency_key).await?
    {
        return replay(existing, &hash);
    }
    let named = match request.connection_id {
        Some(id) => Some(route::named(db, tenant, id).await?),
        None => {
            route::require_active(db, tenant).await?;
            None
        }
    };
    let contact_id = resolve_contact(db, tenant, &request.contact).await?;
    let connection_id = match named {
        Some(id) => id,
        None => route::for_contact(db, tenant, contact_id).await?,
    };
    let conn = connections::load(engine, connection_id).await?;
    let params = validate(engine, &conn, request.action, &request.params).await?;
    let link = links::by_contact(db, conn.id, contact_id).await?;
    let now = engine.now();
    if link.is_none() && !request.action.creates_person() {
        let name = action_name(request.action);
        let refusal = Refusal {
            kind: "no_pipedrive_person",
            message: format!(
                "{name}: the contact has no {} person and this action never creates one.",
                conn.crm.display_name()
            ),
            hint: "Link the contact or add it to the CRM contacts list first.",
        };
        record_refused(engine, &conn, contact_id, &request, &hash, refusal, now).await?;
        return Err(ActionError::NoPipedrivePerson(name));
    }
    if let (JourneyAction::AddDeal, Some(link)) = (request.action, &link) {
        if !conn.crm.person_takes_deals(&conn.session, link.person_id)? {
            let refusal = Refusal {
                kind: "lead_not_converted",
                message: ActionError::LeadNotConverted.to_string(),
                hint: LEAD_NOT_CONVERTED_HINT,
            };
            record_refused(engine, &conn, contact_id, &request, &hash, refusal, now).await?;
            return Err(ActionError::LeadNotConverted);
        }
    }
    let row = ActionRow {
        id: Uuid::now_v7(),
        connection_id: conn.id.uuid(),
        contact_id: contact_id.uuid(),
        action: action_name(request.action).to_owned(),
        params: serde_json::to_value(&params).unwrap_or_default(),
        idempotency_key: request.idempotency_key.clone(),
        tenant: tenant.clone(),
        request_hash: hash.clone(),
        state: state::QUEUED.to_owned(),
        result: None,
        error: None,
        status: None,
        created_at: now,
        updated_at: now,
    };
    let id = row.id;
    let txn = db.begin().await?;
    match journey_actions::insert(&txn, row).await {
        Ok(()) => {}
        Err(error) if error.is_conflict_on(Constraint::JourneyActionIdempotencyKey) => {
            // A concurrent request with the same key won the race: answer with its record.
            txn.rollback().await?;
            return match journey_actions::by_idempotency_key(db, tenant, &request.idempotency_key)
                .await?
            {
                Some(existing) => replay(existing, &hash),
                None => Err(ActionError::Sync(SyncError::Invalid(
                    "the action could not be recorded".into(),
                ))),
            };
        }
        Err(error) => return Err(error.into()),
    }
    queue::enqueue(
        &txn,
        conn.id,
        &contact_id.to_string(),
        Priority::Action,
        &JobPayload::Action {
            action_id: id,
            contact_id,
        },
        now,
    )
    .await
    .map_err(SyncError::from)?;
    txn.commit().await?;
    // Read back, so the first answer and a replay show the same stored values.
    let record = journey_actions::get(db, id)
        .await?
        .ok_or(ActionError::UnknownContact)?;
    Ok(Submitted {
        record: record.into(),
        replayed: false,
    })
}

/// The answer to a request whose idempotency key is already recorded.
fn replay(existing: ActionRow, hash: &str) -> Result<Submitted, ActionError> {
    if existing.request_hash != hash {
        return Err(ActionError::KeyReused);
    }
    Ok(Submitted {
        record: existing.into(),
        replayed: true,
    })
}

/// Why a request was refused after the contact was known: the sync log's kind, the action's
/// error and the fix.
struct Refusal {
    kind: &'static str,
    message: String,
    hint: &'static str,
}

/// The fix for an Add Deal on a Salesforce Lead.
const LEAD_NOT_CONVERTED_HINT: &str = "Convert the Lead in Salesforce (it becomes a Contact, which tandem follows), then run the action again.";

/// Records a refused request as a failed action (so a replay of its key answers the same) and
/// says why in the sync log.
async fn record_refused(
    engine: &Engine,
    conn: &ConnectionCtx,
    contact_id: ContactId,
    request: &Submit,
    hash: &str,
    refusal: Refusal,
    now: DateTime<Utc>,
) -> Result<(), ActionError> {
    let db = &engine.store;
    journey_actions::insert(
        db,
        ActionRow {
            id: Uuid::now_v7(),
            connection_id: conn.id.uuid(),
            contact_id: contact_id.uuid(),
            action: action_name(request.action).to_owned(),
            params: request.params.clone(),
            idempotency_key: request.idempotency_key.clone(),
            tenant: conn.tenant.clone(),
            request_hash: hash.to_owned(),
            state: state::FAILED.to_owned(),
            result: None,
            error: Some(refusal.message.clone()),
            status: None,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    synclog::record(
        db,
        Entry::new(
            Level::Warn,
            Direction::Outbound,
            refusal.kind,
            refusal.message,
        )
        .connection(conn.id)
        .contact(contact_id)
        .hint(refusal.hint),
        now,
    )
    .await?;
    Ok(())
}

pub async fn get(engine: &Engine, id: Uuid) -> Result<Option<ActionRecord>, SyncError> {
    Ok(journey_actions::get(&engine.store, id)
        .await?
        .map(Into::into))
}

/// The action `id` of `tenant` (another tenant's is not there).
pub async fn get_for(
    engine: &Engine,
    tenant: &TenantId,
    id: Uuid,
) -> Result<Option<ActionRecord>, SyncError> {
    Ok(journey_actions::get(&engine.store, id)
        .await?
        .filter(|row| row.tenant == *tenant)
        .map(Into::into))
}

/// Runs a queued action (called by the outbox worker).
pub async fn execute(
    engine: &Engine,
    conn: &ConnectionCtx,
    job: &Job,
    action_id: Uuid,
) -> Result<(), CrmFailure> {
    let Some(row) = journey_actions::get(&engine.store, action_id)
        .await
        .map_err(SyncError::from)?
    else {
        return Ok(());
    };
    if row.state != state::QUEUED {
        return Ok(());
    }
    let params: Params = serde_json::from_value(row.params.clone())
        .map_err(|e| SyncError::Corrupt(format!("action {action_id}: {e}")))?;
    let person_id = match outbound::ensure_person(engine, conn, job, row.contact_id.into()).await? {
        Some(person) => person,
        None => {
            finish(
                engine,
                conn,
                &row,
                state::FAILED,
                None,
                Some("the contact has no Pipedrive person".into()),
                None,
            )
            .await?;
            return Ok(());
        }
    };
    let owner = conn.default_owner;
    let crm = |e: CrmError| CrmFailure::Crm(e, Some(person_id));
    let result = match &params {
        Params::AddDeal {
            title,
            value,
            currency,
            pipeline_id,
            stage_id,
            owner_id,
        } => {
            // The person may have been found or created as a Salesforce Lead just now.
            if !conn
                .crm
                .person_takes_deals(&conn.session, person_id)
                .map_err(crm)?
            {
                let error = ActionError::LeadNotConverted.to_string();
                finish(engine, conn, &row, state::FAILED, None, Some(error), None).await?;
                return Ok(());
            }
            // After an attempt whose outcome is unknown, look for the deal before creating again.
            if job.attempts > 0 {
                let existing = conn
                    .crm
                    .person_deals(&conn.session, person_id)
                    .await
                    .map_err(crm)?;
                if let Some(deal) = existing
                    .iter()
                    .find(|d| d.title.as_deref() == Some(title.as_str()))
                {
                    finish(
                        engine,
                        conn,
                        &row,
                        state::DONE,
                        Some(json!({ "person_id": person_id, "deal_id": deal.id })),
                        None,
                        None,
                    )
                    .await?;
                    return Ok(());
                }
            }
            let deal = NewDeal {
                person_id,
                title,
                value: *value,
                currency: currency.as_deref(),
                pipeline_id: *pipeline_id,
                stage_id: *stage_id,
                owner_id: owner_id.or(owner),
            };
            let deal_id = conn
                .crm
                .create_deal(&conn.session, &deal)
                .await
                .map_err(crm)?;
            let noted = crate::crm::CrmRelated {
                name: Some(deal.title.to_owned()),
                person_id: Some(person_id),
                stage_id: deal.stage_id,
                owner_id: deal.owner_id,
                ..crate::crm::CrmRelated::noted(crate::crm::RelatedKind::Deal, deal_id, "open")
            };
            crate::sync::related::note_created(engine, conn, noted).await?;
            json!({ "person_id": person_id, "deal_id": deal_id })
        }
        Params::AssignPersonOwner { owner_id } => {
            conn.crm
                .set_person_owner(&conn.session, person_id, *owner_id)
                .await
                .map_err(crm)?;
            crate::sync::triggers::note_person_owner(engine, conn, person_id, *owner_id).await?;
            json!({ "person_id": person_id, "owner_id": owner_id })
        }
        Params::ScheduleActivity {
            subject,
            r#type,
            due_date,
            owner_id,
        } => {
            // After an attempt whose outcome is unknown, look for the activity before creating again.
            if job.attempts > 0 {
                let existing = conn
                    .crm
                    .person_activities(&conn.session, person_id)
                    .await
                    .map_err(crm)?;
                if let Some(found) = existing
                    .iter()
                    .find(|a| a.subject.as_deref() == Some(subject.as_str()))
                {
                    let result = json!({ "person_id": person_id, "activity_id": found.id });
                    finish(engine, conn, &row, state::DONE, Some(result), None, None).await?;
                    return Ok(());
                }
            }
            let activity = NewActivity {
                person_id,
                subject,
                kind: r#type.as_deref(),
                due_date: due_date.as_deref(),
                owner_id: owner_id.or(owner),
            };
            let activity_id = conn
                .crm
                .create_activity(&conn.session, &activity)
                .await
                .map_err(crm)?;
            let noted = crate::crm::CrmRelated {
                name: Some(subject.clone()),
                person_id: Some(person_id),
                due_on: due_date.clone(),
                // No type: whether the CRM took it (a Salesforce `Type` field-level security
                // hides is left out) is known from the next read, which keeps it.
                ..crate::crm::CrmRelated::noted(
                    crate::crm::RelatedKind::Activity,
                    activity_id,
                    "open",
                )
            };
            crate::sync::related::note_created(engine, conn, noted).await?;
            json!({ "person_id": person_id, "activity_id": activity_id })
        }
        Params::UpdatePersonField { field, value } => {
            let key = FieldKey::new(field).map_err(|e| SyncError::Invalid(e.to_string()))?;
            let mapped = conn
                .map
                .get(&key)
                .ok_or_else(|| SyncError::Invalid(format!("field {field} is no longer mapped")))?;
            let value = conn
                .crm
                .value_from_json(&mapped.remote, value)
                .ok_or_else(|| {
                    SyncError::Invalid(format!("value for {field} has the wrong type"))
                })?;
            let writes: BTreeMap<FieldKey, FieldValue> = [(key, value)].into_iter().collect();
            // A company written to a person whose company is its organization (a Salesforce
            // Contact's Account): the organization found or created by that name.
            let lead = conn.crm.person_is_lead(conn.id, person_id);
            let writes = crate::sync::organizations::crm_writes(engine, conn, &writes, lead)
                .await
                .map_err(|e| CrmFailure::from_organization(e, Some(person_id)))?;
            conn.crm
                .update_person(&conn.session, &conn.map, person_id, &writes)
                .await
                .map_err(crm)?;
            json!({ "person_id": person_id, "field": field })
        }
        Params::UpdateDealStage { stage_id, deal_id } => {
            let deal_id = match deal_id {
                Some(id) => *id,
                None => {
                    let deals = conn
                        .crm
                        .person_deals(&conn.session, person_id)
                        .await
                        .map_err(crm)?;
                    // The newest: the CRM lists a person's deals oldest first (Salesforce's
                    // ids are surrogates, not in creation order).
                    match deals.last().map(|d| d.id) {
                        Some(id) => id,
                        None => {
                            finish(
                                engine,
                                conn,
                                &row,
                                state::FAILED,
                                None,
                                Some("the person has no deal to move".into()),
                                None,
                            )
                            .await?;
                            return Ok(());
                        }
                    }
                }
            };
            conn.crm
                .move_deal(&conn.session, deal_id, *stage_id)
                .await
                .map_err(crm)?;
            crate::sync::related::note_deal_stage(engine, conn, deal_id, *stage_id).await?;
            json!({ "person_id": person_id, "deal_id": deal_id, "stage_id": stage_id })
        }
        Params::AddToCampaign {
            campaign_id,
            status,
        } => {
            // Idempotent by itself: a person already in the campaign is not added twice.
            let membership = conn
                .crm
                .add_to_campaign(&conn.session, person_id, campaign_id, status.as_deref())
                .await
                .map_err(crm)?;
            json!({
                "person_id": person_id,
                "campaign_id": campaign_id,
                "campaign_member_id": membership.member_id,
                "already_member": membership.already_member,
            })
        }
    };
    finish(engine, conn, &row, state::DONE, Some(result), None, None).await?;
    Ok(())
}

async fn finish(
    engine: &Engine,
    conn: &ConnectionCtx,
    row: &ActionRow,
    new_state: &str,
    result: Option<Value>,
    error: Option<String>,
    status: Option<u16>,
) -> Result<(), SyncError> {
    let now = engine.now();
    let txn = engine.store.begin().await?;
    let outcome = journey_actions::Outcome {
        state: new_state,
        result: result.clone(),
        error: error.clone(),
        status: status.map(i32::from),
    };
    // The app hears about the outcome (in the same transaction, like every delivery).
    if let Some(record) = journey_actions::finish(&txn, row.id, outcome, now).await? {
        let event = if new_state == state::DONE {
            crate::sync::app::ContactEvent::ActionDone
        } else {
            crate::sync::app::ContactEvent::ActionFailed
        };
        let record = serde_json::to_value(ActionRecord::from(record)).unwrap_or_default();
        crate::sync::app::contact_event_with(
            &txn,
            row.contact_id.into(),
            event,
            Some(("action", record)),
            now,
        )
        .await?;
    }
    let (level, kind, message) = if new_state == state::DONE {
        (
            Level::Info,
            "action_done",
            format!("Journey action {} done.", row.action),
        )
    } else {
        (
            Level::Error,
            "action_failed",
            format!("Journey action {} failed.", row.action),
        )
    };
    let mut entry = Entry::new(level, Direction::Outbound, kind, message)
        .connection(conn.id)
        .contact(row.contact_id.into())
        .status(status);
    if let Some(error) = error {
        entry = entry.remote_error(error);
    }
    if let Some(result) = result {
        entry = entry.detail(result);
    }
    synclog::record(&txn, entry, now).await?;
    txn.commit().await?;
    Ok(())
}

/// Marks an action failed when its job became a dead letter (Pipedrive's text verbatim).
pub async fn mark_failed(
    engine: &Engine,
    conn: &ConnectionCtx,
    action_id: Uuid,
    error: &CrmError,
) -> Result<(), SyncError> {
    if let Some(row) = journey_actions::get(&engine.store, action_id).await? {
        finish(
            engine,
            conn,
            &row,
            state::FAILED,
            None,
            Some(error.message.clone()),
            error.status,
        )
        .await?;
    }
    Ok(())
}
