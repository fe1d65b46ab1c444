//! The organizations tandem found or created by name (`crm_organization`, ADR 0017): one row
//! per (connection, name key). A row without `org_id` is a claim in progress: the worker that
//! inserted it is searching the CRM or creating the organization; every other worker waits for
//! it. Rows also remember which name an organization id has, so a person's company is read
//! without a CRM call.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Set, TryInsertResult};
use tandem_core::{ConnectionId, FieldKey, FieldValue};

use super::entities::{crm_organization, crm_organization_snapshot};
use super::{Conn, StoreError};

/// A row: the name's key, the organization (once known) and its name as the CRM writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationRow {
    pub name_key: String,
    pub org_id: Option<i64>,
    pub name: String,
    pub claimed_at: DateTime<Utc>,
}

impl From<crm_organization::Model> for OrganizationRow {
    fn from(row: crm_organization::Model) -> Self {
        Self {
            name_key: row.name_key,
            org_id: row.org_id,
            name: row.name,
            claimed_at: row.claimed_at,
        }
    }
}

/// The row of a name key.
pub async fn by_key(
    db: &impl Conn,
    connection: ConnectionId,
    name_key: &str,
) -> Result<Option<OrganizationRow>, StoreError> {
    let connection = connection.uuid();
    Ok(
        crm_organization::Entity::find_by_id((connection, name_key.to_owned()))
            .one(db.raw())
            .await?
            .map(OrganizationRow::from),
    )
}

/// The name of organization `org_id`, if tandem knows it.
pub async fn name_of(
    db: &impl Conn,
    connection: ConnectionId,
    org_id: i64,
) -> Result<Option<String>, StoreError> {
    let connection = connection.uuid();
    Ok(crm_organization::Entity::find()
        .filter(crm_organization::Column::ConnectionId.eq(connection))
        .filter(crm_organization::Column::OrgId.eq(org_id))
        .one(db.raw())
        .await?
        .map(|row| row.name))
}

/// The names of those of these organizations tandem knows, by id (one statement per
/// [`super::MAX_BIND_PARAMS`] ids).
pub async fn names_of(
    db: &impl Conn,
    connection: ConnectionId,
    org_ids: &[i64],
) -> Result<HashMap<i64, String>, StoreError> {
    let connection = connection.uuid();
    let mut out = HashMap::new();
    for chunk in org_ids.chunks(super::MAX_BIND_PARAMS) {
        let rows = crm_organization::Entity::find()
            .filter(crm_organization::Column::ConnectionId.eq(connection))
            .filter(crm_organization::Column::OrgId.is_in(chunk.iter().copied()))
            .all(db.raw())
            .await?;
        for row in rows {
            if let Some(id) = row.org_id {
                out.insert(id, row.name);
            }
        }
    }
    Ok(out)
}

/// Claims a name key: `true` when this call inserted the row (the caller finds or creates the
/// organization), `false` when a row was already there.
pub async fn claim(
    db: &impl Conn,
    connection: ConnectionId,
    name_key: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let connection = connection.uuid();
    let row = crm_organization::ActiveModel {
        connection_id: Set(connection),
        name_key: Set(name_key.to_owned()),
        org_id: Set(None),
        name: Set(name.to_owned()),
        claimed_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
    };
    insert_if_absent(db, row).await
}

/// A row whose (connection, name key) is taken is left as it is.
fn key_taken() -> OnConflict {
    OnConflict::columns([
        crm_organization::Column::ConnectionId,
        crm_organization::Column::NameKey,
    ])
    .do_nothing()
    .to_owned()
}

/// Inserts `row` unless its (connection, name key) is taken; says whether it did.
async fn insert_if_absent(
    db: &impl Conn,
    row: crm_organization::ActiveModel,
) -> Result<bool, StoreError> {
    let inserted = crm_organization::Entity::insert(row)
        .on_conflict(key_taken())
        .do_nothing()
        .exec(db.raw())
        .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(_)))
}

/// Takes over a claim that was left unresolved (its worker stopped, or its create's outcome
/// was lost): `true` when this call moved `claimed_at` from `seen` to `now`, so exactly one
/// worker takes it over.
pub async fn take_over(
    db: &impl Conn,
    connection: ConnectionId,
    name_key: &str,
    seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let connection = connection.uuid();
    let result = crm_organization::Entity::update_many()
        .col_expr(crm_organization::Column::ClaimedAt, Expr::value(now))
        .col_expr(crm_organization::Column::UpdatedAt, Expr::value(now))
        .filter(crm_organization::Column::ConnectionId.eq(connection))
        .filter(crm_organization::Column::NameKey.eq(name_key))
        .filter(crm_organization::Column::OrgId.is_null())
        .filter(crm_organization::Column::ClaimedAt.eq(seen))
        .exec(db.raw())
        .await?;
    Ok(result.rows_affected == 1)
}

/// Records the organization a claimed name key resolved to.
pub async fn resolve(
    db: &impl Conn,
    connection: ConnectionId,
    name_key: &str,
    org_id: i64,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection = connection.uuid();
    crm_organization::Entity::update_many()
        .col_expr(crm_organization::Column::OrgId, Expr::value(org_id))
        .col_expr(crm_organization::Column::Name, Expr::value(name))
        .col_expr(crm_organization::Column::UpdatedAt, Expr::value(now))
        .filter(crm_organization::Column::ConnectionId.eq(connection))
        .filter(crm_organization::Column::NameKey.eq(name_key))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Remembers organization `org_id`'s current name (read from the CRM or a webhook): a row of
/// another key for the same id (its old name) is dropped; a key already held by another
/// organization (a duplicate name in the CRM) keeps its organization.
pub async fn remember(
    db: &impl Conn,
    connection: ConnectionId,
    org_id: i64,
    name_key: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection = connection.uuid();
    crm_organization::Entity::delete_many()
        .filter(crm_organization::Column::ConnectionId.eq(connection))
        .filter(crm_organization::Column::OrgId.eq(org_id))
        .filter(crm_organization::Column::NameKey.ne(name_key))
        .exec(db.raw())
        .await?;
    let row = crm_organization::ActiveModel {
        connection_id: Set(connection),
        name_key: Set(name_key.to_owned()),
        org_id: Set(Some(org_id)),
        name: Set(name.to_owned()),
        claimed_at: Set(now),
        created_at: Set(now),
        updated_at: Set(now),
    };
    insert_if_absent(db, row).await?;
    // Same key, same organization: the name's spelling may have changed ("ACME" → "Acme").
    crm_organization::Entity::update_many()
        .col_expr(crm_organization::Column::Name, Expr::value(name))
        .col_expr(crm_organization::Column::UpdatedAt, Expr::value(now))
        .filter(crm_organization::Column::ConnectionId.eq(connection))
        .filter(crm_organization::Column::NameKey.eq(name_key))
        .filter(crm_organization::Column::OrgId.eq(org_id))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Remembers the names of organizations tandem knows no name of (read with their persons):
/// `(org_id, name_key, name)` rows in multi-row statements; a key already held by another
/// organization keeps it (as [`remember`]).
pub async fn remember_new(
    db: &impl Conn,
    connection: ConnectionId,
    rows: &[(i64, String, String)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection = connection.uuid();
    let mut seen = std::collections::HashSet::new();
    let models: Vec<crm_organization::ActiveModel> = rows
        .iter()
        .filter(|(_, key, _)| seen.insert(key.clone()))
        .map(|(org_id, key, name)| crm_organization::ActiveModel {
            connection_id: Set(connection),
            name_key: Set(key.clone()),
            org_id: Set(Some(*org_id)),
            name: Set(name.clone()),
            claimed_at: Set(now),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .collect();
    // Seven columns a row.
    for chunk in models.chunks(super::MAX_BIND_PARAMS / 7) {
        crm_organization::Entity::insert_many(chunk.to_vec())
            .on_conflict(key_taken())
            .do_nothing()
            .exec(db.raw())
            .await?;
    }
    Ok(())
}

/// Forgets every organization of a connection (its CRM company was reset).
pub async fn forget_connection(db: &impl Conn, connection: ConnectionId) -> Result<(), StoreError> {
    let connection = connection.uuid();
    crm_organization::Entity::delete_many()
        .filter(crm_organization::Column::ConnectionId.eq(connection))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// Gives a claim up (its search or create failed without a doubt about the outcome), so the
/// next worker claims the name afresh.
pub async fn release(
    db: &impl Conn,
    connection: ConnectionId,
    name_key: &str,
    claimed_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let connection = connection.uuid();
    crm_organization::Entity::delete_many()
        .filter(crm_organization::Column::ConnectionId.eq(connection))
        .filter(crm_organization::Column::NameKey.eq(name_key))
        .filter(crm_organization::Column::OrgId.is_null())
        .filter(crm_organization::Column::ClaimedAt.eq(claimed_at))
        .exec(db.raw())
        .await?;
    Ok(())
}

/// The organization's mapped fields as tandem last read or wrote them
/// (`crm_organization_snapshot`), by local key; `None` when tandem has not read them yet.
pub async fn fields_of(
    db: &impl Conn,
    connection: ConnectionId,
    org_id: i64,
) -> Result<Option<BTreeMap<FieldKey, FieldValue>>, StoreError> {
    let Some(row) = crm_organization_snapshot::Entity::find_by_id((connection.uuid(), org_id))
        .one(db.raw())
        .await?
    else {
        return Ok(None);
    };
    serde_json::from_value(row.fields)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("organization {org_id} fields: {e}")))
}

/// The mapped fields of those of these organizations tandem has read, by id (as
/// [`fields_of`]; one statement per [`super::MAX_BIND_PARAMS`] ids).
pub async fn fields_of_many(
    db: &impl Conn,
    connection: ConnectionId,
    org_ids: &[i64],
) -> Result<HashMap<i64, BTreeMap<FieldKey, FieldValue>>, StoreError> {
    let mut out = HashMap::new();
    for chunk in org_ids.chunks(super::MAX_BIND_PARAMS) {
        let rows = crm_organization_snapshot::Entity::find()
            .filter(crm_organization_snapshot::Column::ConnectionId.eq(connection.uuid()))
            .filter(crm_organization_snapshot::Column::OrgId.is_in(chunk.iter().copied()))
            .all(db.raw())
            .await?;
        for row in rows {
            let fields = serde_json::from_value(row.fields).map_err(|e| {
                StoreError::Corrupt(format!("organization {} fields: {e}", row.org_id))
            })?;
            out.insert(row.org_id, fields);
        }
    }
    Ok(out)
}

/// Stores the organization's mapped fields (replacing what was stored).
pub async fn remember_fields(
    db: &impl Conn,
    connection: ConnectionId,
    org_id: i64,
    fields: &BTreeMap<FieldKey, FieldValue>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let json = serde_json::to_value(fields)
        .map_err(|e| StoreError::Corrupt(format!("organization {org_id} fields: {e}")))?;
    let row = crm_organization_snapshot::ActiveModel {
        connection_id: Set(connection.uuid()),
        org_id: Set(org_id),
        fields: Set(json),
        created_at: Set(now),
        updated_at: Set(now),
    };
    crm_organization_snapshot::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([
                crm_organization_snapshot::Column::ConnectionId,
                crm_organization_snapshot::Column::OrgId,
            ])
            .update_columns([
                crm_organization_snapshot::Column::Fields,
                crm_organization_snapshot::Column::UpdatedAt,
            ])
            .to_owned(),
        )
        .exec(db.raw())
        .await?;
    Ok(())
}
