//! The live mirror: Pipedrive's webhooks (stored in the durable inbox, applied in order per
//! record by the inbox worker) written to the mirror's tables. A change older than the row's
//! `update_time` changes nothing; a delete marks the row's `deleted_at` with when Pipedrive
//! deleted it (`meta.timestamp`), and a change brings a deleted row back only when its
//! `update_time` is strictly newer than that (a late or repeated webhook of an edit made before
//! the delete leaves it deleted). Listing passes are not bound by this: see `extract`.

use serde_json::Value;
use tandem_core::ConnectionId;

use super::catalog::{self, Stream};
use super::columns::{cell, Layout};
use super::{now_text, pipedrive_time, MirrorError};
use crate::store::mirror::MirrorDb;

/// What a webhook did to the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Upserted,
    MarkedDeleted,
    /// No stream for this object, or no data.
    Ignored,
}

/// The stream, action and id a webhook body names.
pub fn describe(payload: &Value) -> Option<(&'static Stream, String, Value)> {
    let meta = payload.get("meta")?;
    let entity = meta
        .get("entity")
        .or_else(|| meta.get("object"))
        .and_then(Value::as_str)?;
    let stream = catalog::stream_of_entity(entity)?;
    let action = meta.get("action").and_then(Value::as_str)?.to_owned();
    let id = meta.get("entity_id").or_else(|| meta.get("id"))?.clone();
    Some((stream, action, id))
}

/// Applies one Pipedrive webhook body to the mirror's tables in `db` (tandem's database).
pub async fn apply_webhook(db: &MirrorDb, payload: &str) -> Result<Applied, MirrorError> {
    let body: Value = serde_json::from_str(payload)
        .map_err(|e| MirrorError::Replication(format!("webhook body: {e}")))?;
    let Some((stream, action, id)) = describe(&body) else {
        return Ok(Applied::Ignored);
    };
    let table = db.table(stream.name);
    let layout_defs = Vec::new();
    let mut layout = Layout::load(db, stream, table.clone(), &layout_defs).await?;
    if action == "delete" {
        let key = match (&id, stream.key_kind) {
            (Value::String(s), crate::store::mirror::ColKind::BigInt) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| id.clone()),
            _ => id.clone(),
        };
        // When Pipedrive deleted it; else when it is applied.
        let at = body
            .pointer("/meta/timestamp")
            .and_then(pipedrive_time)
            .unwrap_or_else(now_text);
        db.mark_deleted(&table, stream.key, cell(stream.key_kind, &key), &at)
            .await?;
        return Ok(Applied::MarkedDeleted);
    }
    let Some(data) = body.get("data").filter(|d| d.is_object()) else {
        return Ok(Applied::Ignored);
    };
    let (columns, rows) = layout.rows(db, vec![data.clone()], &now_text()).await?;
    let Some(row) = rows.first() else {
        return Ok(Applied::Ignored);
    };
    let version_time = stream
        .version_column
        .and_then(|v| data.get(v))
        .and_then(pipedrive_time);
    db.write_change(
        &table,
        stream.key,
        &columns,
        row,
        stream.version_column,
        version_time.as_deref(),
    )
    .await?;
    Ok(Applied::Upserted)
}

/// Applies a connection's webhook to its mirror if the connection keeps one.
pub async fn apply_for_connection(
    store: &crate::store::Store,
    connection: ConnectionId,
    payload: &str,
) -> Result<Option<Applied>, MirrorError> {
    if !crate::store::mirror::mirror_enabled(store, connection).await? {
        return Ok(None);
    }
    apply_webhook(&MirrorDb::in_store(store), payload)
        .await
        .map(Some)
}
