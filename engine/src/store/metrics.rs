//! The repository of operators' numbers: the console's minute series (`metric_minute`:
//! write, read, prune) and the queue gauges sampled on a scrape or once a minute (a few
//! grouped `COUNT`/`MIN` queries, indexed by the claim indexes).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use tandem_core::ConnectionId;
use uuid::Uuid;

use super::entities::{inbox_event, metric_minute, outbox_job};
use super::{Conn, StoreError, MAX_BIND_PARAMS};

/// One minute of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct MinutePoint {
    /// `ConnectionId::nil()` for what belongs to no connection (the app's webhooks).
    pub connection_id: ConnectionId,
    pub minute: DateTime<Utc>,
    pub series: String,
    pub count: i64,
    pub sum: f64,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

impl From<metric_minute::Model> for MinutePoint {
    fn from(row: metric_minute::Model) -> Self {
        Self {
            connection_id: row.connection_id.into(),
            minute: row.minute,
            series: row.series,
            count: row.count,
            sum: row.sum,
            p50: row.p50,
            p95: row.p95,
        }
    }
}

/// Adds `points` to the table. A minute already written (a second flush within the minute, a
/// replica) adds its count and sum; its quantiles are replaced by the newer ones.
pub async fn write_minutes(db: &impl Conn, points: &[MinutePoint]) -> Result<(), StoreError> {
    use metric_minute::Column;
    let excluded = |column: Column| Expr::col((Alias::new("excluded"), column));
    let current = |column: Column| Expr::col((metric_minute::Entity, column));
    for chunk in points.chunks(MAX_BIND_PARAMS / 7) {
        let rows = chunk.iter().map(|p| metric_minute::ActiveModel {
            connection_id: Set(p.connection_id.uuid()),
            series: Set(p.series.clone()),
            minute: Set(p.minute),
            count: Set(p.count),
            sum: Set(p.sum),
            p50: Set(p.p50),
            p95: Set(p.p95),
        });
        metric_minute::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([Column::ConnectionId, Column::Series, Column::Minute])
                    .value(
                        Column::Count,
                        current(Column::Count).add(excluded(Column::Count)),
                    )
                    .value(Column::Sum, current(Column::Sum).add(excluded(Column::Sum)))
                    .update_columns([Column::P50, Column::P95])
                    .to_owned(),
            )
            .exec_without_returning(db.raw())
            .await?;
    }
    Ok(())
}

/// The connection's points since `since`, oldest first.
pub async fn read_series(
    db: &impl Conn,
    connection: ConnectionId,
    since: DateTime<Utc>,
) -> Result<Vec<MinutePoint>, StoreError> {
    let connection = connection.uuid();
    Ok(metric_minute::Entity::find()
        .filter(metric_minute::Column::ConnectionId.eq(connection))
        .filter(metric_minute::Column::Minute.gte(since))
        .order_by_asc(metric_minute::Column::Minute)
        .all(db.raw())
        .await?
        .into_iter()
        .map(MinutePoint::from)
        .collect())
}

/// Deletes the minutes before `before`; returns how many rows went.
pub async fn prune_minutes(db: &impl Conn, before: DateTime<Utc>) -> Result<u64, StoreError> {
    Ok(metric_minute::Entity::delete_many()
        .filter(metric_minute::Column::Minute.lt(before))
        .exec(db.raw())
        .await?
        .rows_affected)
}

/// A connection's queues at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueGauges {
    /// `ConnectionId::nil()` for the app's events (they belong to no connection).
    pub connection_id: ConnectionId,
    /// Received events not applied yet.
    pub inbox_pending: u64,
    pub inbox_oldest: Option<DateTime<Utc>>,
    /// Writes waiting or running.
    pub outbox_pending: u64,
    pub outbox_oldest: Option<DateTime<Utc>>,
    pub dead_letters: u64,
}

/// The queues of every connection that has something queued (three grouped queries).
pub async fn queue_gauges(db: &impl Conn) -> Result<Vec<QueueGauges>, StoreError> {
    use crate::queue::{inbox::state as inbox_state, state as job_state};
    let mut out: std::collections::BTreeMap<Uuid, QueueGauges> = Default::default();
    fn entry(
        out: &mut std::collections::BTreeMap<Uuid, QueueGauges>,
        id: Uuid,
    ) -> &mut QueueGauges {
        out.entry(id).or_insert_with(|| QueueGauges {
            connection_id: id.into(),
            ..QueueGauges::default()
        })
    }
    let inbox: Vec<(Option<Uuid>, i64, Option<DateTime<Utc>>)> = inbox_event::Entity::find()
        .select_only()
        .column(inbox_event::Column::ConnectionId)
        .column_as(inbox_event::Column::Id.count(), "n")
        .column_as(inbox_event::Column::ReceivedAt.min(), "oldest")
        .filter(inbox_event::Column::State.is_in([inbox_state::PENDING, inbox_state::RUNNING]))
        .group_by(inbox_event::Column::ConnectionId)
        .into_tuple()
        .all(db.raw())
        .await?;
    for (id, n, oldest) in inbox {
        let gauges = entry(&mut out, id.unwrap_or(Uuid::nil()));
        gauges.inbox_pending = u64::try_from(n).unwrap_or(0);
        gauges.inbox_oldest = oldest;
    }
    let outbox: Vec<(Uuid, String, i64, Option<DateTime<Utc>>)> = outbox_job::Entity::find()
        .select_only()
        .column(outbox_job::Column::ConnectionId)
        .column(outbox_job::Column::State)
        .column_as(outbox_job::Column::Id.count(), "n")
        .column_as(outbox_job::Column::CreatedAt.min(), "oldest")
        .group_by(outbox_job::Column::ConnectionId)
        .group_by(outbox_job::Column::State)
        .into_tuple()
        .all(db.raw())
        .await?;
    for (id, state, n, oldest) in outbox {
        let gauges = entry(&mut out, id);
        let n = u64::try_from(n).unwrap_or(0);
        if state == job_state::DEAD {
            gauges.dead_letters += n;
        } else {
            gauges.outbox_pending += n;
            gauges.outbox_oldest = match (gauges.outbox_oldest, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Ok(out.into_values().collect())
}

/// Every connection's id, stored state and CRM kind, oldest first.
pub async fn connections(
    db: &impl Conn,
) -> Result<Vec<(ConnectionId, String, String)>, StoreError> {
    use super::entities::connection;
    Ok(connection::Entity::find()
        .select_only()
        .column(connection::Column::Id)
        .column(connection::Column::State)
        .column(connection::Column::Crm)
        .order_by_asc(connection::Column::CreatedAt)
        .into_tuple::<(Uuid, String, String)>()
        .all(db.raw())
        .await?
        .into_iter()
        .map(|(id, state, crm)| (id.into(), state, crm))
        .collect())
}
