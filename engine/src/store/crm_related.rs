//! The records a CRM relates to its people (`crm_related_record`): Salesforce Accounts,
//! Opportunities, their contact roles and Tasks, per connection, for the journey conditions,
//! triggers and actions.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use tandem_core::{ConnectionId, PersonId};

use super::entities::crm_related_record::{self as row, Column};
use super::{Conn, StoreError, MAX_BIND_PARAMS};
use crate::crm::{CrmRelated, RelatedKind};

/// The table's columns: the values one row binds.
const COLUMNS: usize = 18;

/// Stores `items`: a record seen again replaces what was stored (and is live again); a
/// deleted one is marked `deleted_at`. A deal's person (set when tandem created it) stays
/// when the CRM's answer names none.
pub async fn save(
    db: &impl Conn,
    connection: ConnectionId,
    items: &[CrmRelated],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (deleted, live): (Vec<&CrmRelated>, Vec<&CrmRelated>) =
        items.iter().partition(|item| item.deleted);
    let rows: Vec<row::ActiveModel> = live
        .iter()
        .map(|item| active_row(connection, item, now))
        .collect();
    let on_conflict = OnConflict::columns([Column::ConnectionId, Column::Kind, Column::RecordId])
        .update_columns([
            Column::Name,
            Column::CompanyId,
            Column::DealId,
            Column::Stage,
            Column::StageId,
            Column::Status,
            Column::OwnerId,
            Column::DueOn,
            Column::ActivityType,
            Column::CreatedInCrm,
            Column::ModifiedInCrm,
            Column::Raw,
            Column::DeletedAt,
            Column::SyncedAt,
        ])
        .value(
            Column::PersonId,
            Expr::cust("COALESCE(excluded.person_id, crm_related_record.person_id)"),
        )
        .to_owned();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<row::ActiveModel> = rows.by_ref().take(MAX_BIND_PARAMS / COLUMNS).collect();
        row::Entity::insert_many(chunk)
            .on_conflict(on_conflict.clone())
            .exec_without_returning(db.raw())
            .await?;
    }
    for item in deleted {
        row::Entity::update_many()
            .col_expr(Column::DeletedAt, Expr::value(now))
            .col_expr(Column::SyncedAt, Expr::value(now))
            .filter(Column::ConnectionId.eq(connection.uuid()))
            .filter(Column::Kind.eq(item.kind.as_str()))
            .filter(Column::RecordId.eq(item.id))
            .exec(db.raw())
            .await?;
    }
    Ok(())
}

/// The row of a live record.
fn active_row(connection: ConnectionId, item: &CrmRelated, now: DateTime<Utc>) -> row::ActiveModel {
    row::ActiveModel {
        connection_id: Set(connection.uuid()),
        kind: Set(item.kind.as_str().to_owned()),
        record_id: Set(item.id),
        name: Set(item.name.clone()),
        company_id: Set(item.company_id),
        deal_id: Set(item.deal_id),
        person_id: Set(item.person_id.map(PersonId::get)),
        stage: Set(item.stage.clone()),
        stage_id: Set(item.stage_id),
        status: Set(item.status.clone()),
        owner_id: Set(item.owner_id),
        due_on: Set(item.due_on.clone()),
        activity_type: Set(item.activity_type.clone()),
        created_in_crm: Set(item.created.clone()),
        modified_in_crm: Set(item.modified.clone()),
        raw: Set((!item.raw.is_null()).then(|| item.raw.clone())),
        deleted_at: Set(None),
        synced_at: Set(now),
    }
}

/// A person's live deals, oldest first: those a live role names the person in, and those
/// tandem created for the person.
pub async fn deals_of_person(
    db: &impl Conn,
    connection: ConnectionId,
    person: PersonId,
) -> Result<Vec<CrmRelated>, StoreError> {
    let roles: Vec<i64> = row::Entity::find()
        .filter(live(connection, RelatedKind::DealRole))
        .filter(Column::PersonId.eq(person.get()))
        .all(db.raw())
        .await?
        .into_iter()
        .filter_map(|role| role.deal_id)
        .collect();
    Ok(row::Entity::find()
        .filter(live(connection, RelatedKind::Deal))
        .filter(
            Condition::any()
                .add(Column::PersonId.eq(person.get()))
                .add(Column::RecordId.is_in(roles)),
        )
        .order_by_asc(Column::CreatedInCrm)
        .order_by_asc(Column::RecordId)
        .all(db.raw())
        .await?
        .into_iter()
        .map(|deal| related_of(RelatedKind::Deal, deal))
        .collect())
}

/// A person's live activities, oldest first.
pub async fn activities_of_person(
    db: &impl Conn,
    connection: ConnectionId,
    person: PersonId,
) -> Result<Vec<CrmRelated>, StoreError> {
    Ok(row::Entity::find()
        .filter(live(connection, RelatedKind::Activity))
        .filter(Column::PersonId.eq(person.get()))
        .order_by_asc(Column::CreatedInCrm)
        .order_by_asc(Column::RecordId)
        .all(db.raw())
        .await?
        .into_iter()
        .map(|activity| related_of(RelatedKind::Activity, activity))
        .collect())
}

fn live(connection: ConnectionId, kind: RelatedKind) -> Condition {
    Condition::all()
        .add(Column::ConnectionId.eq(connection.uuid()))
        .add(Column::Kind.eq(kind.as_str()))
        .add(Column::DeletedAt.is_null())
}

/// The ids of the live records of `kind` last stored before `since`: those a full listing
/// that began at `since` did not see again (deleted in the CRM while tandem could not tell).
pub async fn live_ids_stored_before(
    db: &impl Conn,
    connection: ConnectionId,
    kind: RelatedKind,
    since: DateTime<Utc>,
) -> Result<Vec<i64>, StoreError> {
    Ok(row::Entity::find()
        .select_only()
        .column(Column::RecordId)
        .filter(live(connection, kind))
        .filter(Column::SyncedAt.lt(since))
        .order_by_asc(Column::RecordId)
        .into_tuple()
        .all(db.raw())
        .await?)
}

/// How many live records of `kind` the connection keeps.
pub async fn count(
    db: &impl Conn,
    connection: ConnectionId,
    kind: RelatedKind,
) -> Result<u64, StoreError> {
    Ok(row::Entity::find()
        .filter(live(connection, kind))
        .count(db.raw())
        .await?)
}

/// Every record of `kind` the connection keeps, deleted ones marked, by id.
pub async fn all(
    db: &impl Conn,
    connection: ConnectionId,
    kind: RelatedKind,
) -> Result<Vec<CrmRelated>, StoreError> {
    Ok(row::Entity::find()
        .filter(Column::ConnectionId.eq(connection.uuid()))
        .filter(Column::Kind.eq(kind.as_str()))
        .order_by_asc(Column::RecordId)
        .all(db.raw())
        .await?
        .into_iter()
        .map(|r| related_of(kind, r))
        .collect())
}

/// The records of `kind` among `ids` the connection keeps, deleted ones marked.
pub async fn by_ids(
    db: &impl Conn,
    connection: ConnectionId,
    kind: RelatedKind,
    ids: &[i64],
) -> Result<Vec<CrmRelated>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(MAX_BIND_PARAMS / 2) {
        out.extend(
            row::Entity::find()
                .filter(Column::ConnectionId.eq(connection.uuid()))
                .filter(Column::Kind.eq(kind.as_str()))
                .filter(Column::RecordId.is_in(chunk.iter().copied()))
                .all(db.raw())
                .await?
                .into_iter()
                .map(|r| related_of(kind, r)),
        );
    }
    Ok(out)
}

/// The persons a deal concerns: those its roles name (live roles; every role it had, for a
/// deleted deal) and the person tandem created it for.
pub async fn persons_of_deal(
    db: &impl Conn,
    connection: ConnectionId,
    deal: &CrmRelated,
) -> Result<Vec<PersonId>, StoreError> {
    let mut roles = row::Entity::find()
        .filter(Column::ConnectionId.eq(connection.uuid()))
        .filter(Column::Kind.eq(RelatedKind::DealRole.as_str()))
        .filter(Column::DealId.eq(deal.id));
    if !deal.deleted {
        roles = roles.filter(Column::DeletedAt.is_null());
    }
    let mut persons: Vec<PersonId> = roles
        .all(db.raw())
        .await?
        .into_iter()
        .filter_map(|role| role.person_id)
        .chain(deal.person_id.map(PersonId::get))
        .filter_map(|p| PersonId::new(p).ok())
        .collect();
    persons.sort_unstable();
    persons.dedup();
    Ok(persons)
}

fn related_of(kind: RelatedKind, r: row::Model) -> CrmRelated {
    CrmRelated {
        kind,
        id: r.record_id,
        name: r.name,
        company_id: r.company_id,
        deal_id: r.deal_id,
        person_id: r.person_id.and_then(|p| PersonId::new(p).ok()),
        stage: r.stage,
        stage_id: r.stage_id,
        status: r.status,
        owner_id: r.owner_id,
        due_on: r.due_on,
        activity_type: r.activity_type,
        created: r.created_in_crm,
        modified: r.modified_in_crm,
        deleted: r.deleted_at.is_some(),
        raw: r.raw.unwrap_or_default(),
    }
}

/// Notes a record tandem itself created (a journey action's deal or activity, a logged
/// e-mail), unless a read stored it already: the next read then finds it known and announces
/// nothing for tandem's own write.
pub async fn note_created(
    db: &impl Conn,
    connection: ConnectionId,
    record: &CrmRelated,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let row = active_row(connection, record, now);
    row::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([Column::ConnectionId, Column::Kind, Column::RecordId])
                .do_nothing()
                .to_owned(),
        )
        .do_nothing()
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Notes the stage tandem moved a kept deal to (a journey action), so the next read announces
/// no `deal.stage_changed` for tandem's own write.
pub async fn note_deal_stage(
    db: &impl Conn,
    connection: ConnectionId,
    deal: i64,
    stage_id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    row::Entity::update_many()
        .col_expr(Column::StageId, Expr::value(stage_id))
        .col_expr(Column::SyncedAt, Expr::value(now))
        .filter(Column::ConnectionId.eq(connection.uuid()))
        .filter(Column::Kind.eq(RelatedKind::Deal.as_str()))
        .filter(Column::RecordId.eq(deal))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// The `crm.*` list filters for a connection whose persons and deals are kept here
/// (Salesforce): subqueries of the ids of the persons that satisfy every given part, for
/// `person_id IN (…)` each (all must hold); parameters numbered after `first_param - 1` already
/// bound on Postgres, `?` on SQLite.
/// - `crm.owner_id`, `crm.org_id`: the person's owner and organization as last read
///   (`crm_person`, see `super::crm_persons`);
/// - `crm.lead.open`: the person is (`true`) or is not (`false`) a Lead as last read: on
///   Salesforce an open lead is the person itself, a Lead not converted yet (a converted
///   Lead's contact is linked to its Contact);
/// - `crm.deal.*`: a live deal that satisfies every given part (the same deal), through a
///   live role or as the person tandem created it for;
/// - `crm.activity.open_type`: a live open activity of that type (compared lower case) that
///   names the person; a Task read without a type (its `Type` hidden from the connecting
///   user, or read before tandem kept types) matches no type.
///
/// `Err` names a filter these records cannot answer (a deal's pipeline).
pub fn person_subqueries(
    db: &impl Conn,
    connection: ConnectionId,
    conditions: &super::crm_conditions::CrmConditions,
    first_param: usize,
) -> Result<super::crm_conditions::PersonSubqueries, &'static str> {
    let unanswerable = [(
        conditions.deal.pipeline_id.is_some(),
        "crm.deal.pipeline_id",
    )];
    if let Some((_, name)) = unanswerable.iter().find(|(given, _)| *given) {
        return Err(name);
    }
    let mut p = Params {
        backend: sea_orm::ConnectionTrait::get_database_backend(db.raw()),
        offset: first_param.saturating_sub(1),
        values: Vec::new(),
    };
    let mut include = Vec::new();
    if conditions.owner_id.is_some() || conditions.org_id.is_some() {
        let c = p.bind(connection.uuid().into());
        let mut sql = format!("SELECT person_id FROM crm_person WHERE connection_id = {c}");
        if let Some(owner) = conditions.owner_id {
            sql.push_str(&format!(" AND owner_id = {}", p.bind(owner.into())));
        }
        if let Some(org) = conditions.org_id {
            sql.push_str(&format!(" AND org_id = {}", p.bind(org.into())));
        }
        include.push(sql);
    }
    let deal = &conditions.deal;
    if !deal.is_empty() {
        let through_roles = {
            let c = p.bind(connection.uuid().into());
            let parts = deal_parts(&mut p, deal);
            format!(
                "SELECT r.person_id FROM crm_related_record r JOIN crm_related_record d \
                 ON d.connection_id = r.connection_id AND d.kind = 'deal' \
                 AND d.record_id = r.deal_id \
                 WHERE r.connection_id = {c} AND r.kind = 'deal_role' AND r.deleted_at IS NULL \
                 AND r.person_id IS NOT NULL AND d.deleted_at IS NULL{parts}"
            )
        };
        let created_for = {
            let c = p.bind(connection.uuid().into());
            let parts = deal_parts(&mut p, deal);
            format!(
                "SELECT d.person_id FROM crm_related_record d WHERE d.connection_id = {c} \
                 AND d.kind = 'deal' AND d.deleted_at IS NULL AND d.person_id IS NOT NULL{parts}"
            )
        };
        include.push(format!("{through_roles} UNION {created_for}"));
    }
    if let Some(kind) = &conditions.activity_open_type {
        // The type is kept lower case (`activity_type`), whatever the CRM's spelling.
        let c = p.bind(connection.uuid().into());
        let t = p.bind(kind.to_lowercase().into());
        include.push(format!(
            "SELECT person_id FROM crm_related_record WHERE connection_id = {c} \
             AND kind = 'activity' AND deleted_at IS NULL AND status = 'open' \
             AND activity_type = {t} AND person_id IS NOT NULL"
        ));
    }
    // Last: SQLite binds its `?` in the order they appear, includes first, then excludes.
    let mut exclude = Vec::new();
    if let Some(open) = conditions.lead_open {
        let c = p.bind(connection.uuid().into());
        let yes = p.bind(true.into());
        let leads =
            format!("SELECT person_id FROM crm_person WHERE connection_id = {c} AND lead = {yes}");
        if open {
            include.push(leads);
        } else {
            exclude.push(leads);
        }
    }
    let values = p.values;
    Ok(super::crm_conditions::PersonSubqueries {
        include,
        exclude,
        values,
    })
}

/// The parameters of subqueries being built, in the order they appear (SQLite binds `?` in
/// that order; Postgres numbers them after the ones the caller binds).
struct Params {
    backend: sea_orm::DbBackend,
    offset: usize,
    values: Vec<sea_orm::Value>,
}

impl Params {
    fn bind(&mut self, value: sea_orm::Value) -> String {
        self.values.push(value);
        match self.backend {
            sea_orm::DbBackend::Postgres => format!("${}", self.values.len() + self.offset),
            _ => "?".to_owned(),
        }
    }
}

/// ` AND d.stage_id = … AND d.status = … AND d.owner_id = …` for the given parts of `deal`.
fn deal_parts(p: &mut Params, deal: &super::crm_conditions::DealCondition) -> String {
    let mut out = String::new();
    if let Some(stage) = deal.stage_id {
        out.push_str(&format!(" AND d.stage_id = {}", p.bind(stage.into())));
    }
    if let Some(status) = &deal.status {
        out.push_str(&format!(
            " AND d.status = {}",
            p.bind(status.clone().into())
        ));
    }
    if let Some(owner) = deal.owner_id {
        out.push_str(&format!(" AND d.owner_id = {}", p.bind(owner.into())));
    }
    out
}

/// Every kept open activity due on or before `day` (`YYYY-MM-DD`), of every connection.
pub async fn open_activities_due(
    db: &impl Conn,
    day: &str,
) -> Result<Vec<(ConnectionId, CrmRelated)>, StoreError> {
    Ok(row::Entity::find()
        .filter(Column::Kind.eq(RelatedKind::Activity.as_str()))
        .filter(Column::DeletedAt.is_null())
        .filter(Column::Status.eq("open"))
        .filter(Column::DueOn.lte(day))
        .order_by_asc(Column::ConnectionId)
        .order_by_asc(Column::RecordId)
        .all(db.raw())
        .await?
        .into_iter()
        .map(|r| {
            (
                ConnectionId::from(r.connection_id),
                related_of(RelatedKind::Activity, r),
            )
        })
        .collect())
}
