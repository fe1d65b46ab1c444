//! The field-mapping editor: Pipedrive's person fields and its organization fields (built-in
//! and custom, each marked with its entity), the local fields, the connection's mappings
//! (entity, direction and optional owner) with a type check, and "create the field in
//! Pipedrive" (a person or an organization field) for a missing custom field.

use serde::{Deserialize, Serialize};
use tandem_core::ConnectionId;
use tandem_core::{keys, CrmErrorKind, CurrencyCode, FieldKey, FieldValue};
use uuid::Uuid;

use crate::crm::CatalogField;
use crate::store::contacts as stored_contacts;
use crate::store::field_mappings::{self, FieldMappingRow};
use crate::sync::synclog::{self, Direction, Entry, Level};
use crate::sync::{Engine, SyncError};

/// A Pipedrive person or organization field.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteFieldInfo {
    /// Whose field it is: `person` or `organization` (the person's organization).
    pub entity: &'static str,
    /// `name`, `email`, `phone`, `owner_id`, or a custom field's 40-hex key.
    pub key: String,
    pub name: String,
    pub field_type: String,
    pub is_custom: bool,
    /// Whether tandem can map it.
    pub mappable: bool,
    /// Whether the connecting user may write it (Salesforce: `updateable` in `describe`, after
    /// field-level security); a read-only field maps inbound only.
    pub writable: bool,
    pub options: Vec<(i64, String)>,
}

/// A local contact field.
#[derive(Debug, Clone, Serialize)]
pub struct LocalFieldInfo {
    pub key: String,
    /// What its values are (`text`, `number`, `date`, `option`, `options`, `emails`,
    /// `phones`), from a stored value; `None` when no contact has a value yet.
    pub kind: Option<&'static str>,
}

/// A stored mapping.
#[derive(Debug, Clone, Serialize)]
pub struct Mapping {
    pub local_field: String,
    /// `person` or `organization`: whose field `remote_field` is.
    pub entity: String,
    pub remote_field: String,
    pub remote_type: String,
    pub direction: String,
    pub owner: Option<String>,
    /// For a local number field on a `monetary` field: the numbers' currency.
    pub currency: Option<String>,
}

impl From<FieldMappingRow> for Mapping {
    fn from(m: FieldMappingRow) -> Self {
        Self {
            local_field: m.local_field,
            entity: m.entity,
            remote_field: m.remote_field,
            remote_type: m.remote_type,
            direction: m.direction,
            owner: m.owner,
            currency: m.currency,
        }
    }
}

/// A mapping to add or change.
#[derive(Debug, Clone, Deserialize)]
pub struct MappingRequest {
    pub local_field: String,
    pub remote_field: String,
    /// Whose field `remote_field` is: `person` (default) or `organization` (the person's
    /// organization; Pipedrive's `organizationFields`).
    #[serde(default)]
    pub entity: Option<String>,
    /// `inbound`, `outbound` or `bidirectional` (default).
    #[serde(default)]
    pub direction: Option<String>,
    /// `local`, `remote`, or none (last writer wins).
    #[serde(default)]
    pub owner: Option<String>,
    /// For a `monetary` field: the currency (ISO 4217) of a local field's bare numbers.
    /// Required when the local field holds numbers; without it the local field holds
    /// `{value, currency}` amounts.
    #[serde(default)]
    pub currency: Option<String>,
}

/// Whose fields a mapping or a field creation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Person,
    Organization,
}

impl Entity {
    /// `person` (also for none or empty) or `organization`; anything else is a validation
    /// error on `entity`.
    pub fn parse(text: Option<&str>) -> Result<Self, SyncError> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Self::Person),
            Some(t) if t == field_mappings::entity::PERSON => Ok(Self::Person),
            Some(t) if t == field_mappings::entity::ORGANIZATION => Ok(Self::Organization),
            Some(other) => Err(invalid(
                "entity",
                format!("`{other}` is not an entity: use person or organization"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Person => field_mappings::entity::PERSON,
            Self::Organization => field_mappings::entity::ORGANIZATION,
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> SyncError {
    SyncError::Validation {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The CRM's person fields, then (on a CRM with organizations) its organization fields, as
/// the connection sees them.
pub async fn remote_fields(
    engine: &Engine,
    id: ConnectionId,
) -> Result<Vec<RemoteFieldInfo>, SyncError> {
    Ok(remote_catalog(engine, id).await?.1)
}

/// [`remote_fields`], with the connection's CRM (for what the field mapping page says of it).
pub async fn remote_catalog(
    engine: &Engine,
    id: ConnectionId,
) -> Result<(crate::crm::Crm, Vec<RemoteFieldInfo>), SyncError> {
    let conn = super::load(engine, id).await?;
    let mut fields = match conn.crm.field_catalog(&conn.session).await {
        Ok(fields) => fields
            .into_iter()
            .map(|f| field_info(&conn.crm, Entity::Person, f))
            .collect::<Vec<_>>(),
        Err(error) => {
            super::tokens::on_auth_error(engine, &conn, &error).await?;
            return Err(error.into());
        }
    };
    // The organization's fields (Pipedrive's organization, Salesforce's Account).
    match conn.crm.organization_field_catalog(&conn.session).await {
        Ok(org_fields) => fields.extend(
            org_fields
                .into_iter()
                .map(|f| field_info(&conn.crm, Entity::Organization, f)),
        ),
        Err(error) => {
            super::tokens::on_auth_error(engine, &conn, &error).await?;
            return Err(error.into());
        }
    }
    Ok((conn.crm, fields))
}

fn field_info(crm: &crate::crm::Crm, entity: Entity, f: CatalogField) -> RemoteFieldInfo {
    let organization = entity == Entity::Organization;
    RemoteFieldInfo {
        entity: entity.as_str(),
        mappable: if f.is_custom {
            convertible(crm, &f.field_type)
        } else {
            crm.builtin_mappable(organization, &f.key, &f.field_type)
        },
        key: f.key,
        name: f.name,
        field_type: f.field_type,
        is_custom: f.is_custom,
        writable: f.writable,
        options: f.options,
    }
}

fn kind_of(value: &FieldValue) -> Option<&'static str> {
    Some(match value {
        FieldValue::Cleared => return None,
        FieldValue::Text(_) => "text",
        FieldValue::Number(_) => "number",
        FieldValue::Date(_) => "date",
        FieldValue::Option(_) => "option",
        FieldValue::Options(_) => "options",
        FieldValue::Emails(_) => "emails",
        FieldValue::Phones(_) => "phones",
        FieldValue::Money(_) => "money",
        FieldValue::DateRange(_) => "daterange",
        FieldValue::Time(_) => "time",
        FieldValue::TimeRange(_) => "timerange",
        FieldValue::Address(_) => "address",
    })
}

/// The local fields: the built-in ones and every key a contact has a value for.
pub async fn local_fields(engine: &Engine) -> Result<Vec<LocalFieldInfo>, SyncError> {
    let mut keys_in_use = stored_contacts::field_keys_in_use(&engine.store).await?;
    for builtin in [keys::NAME, keys::EMAIL, keys::PHONE, keys::OWNER_ID] {
        if !keys_in_use.iter().any(|k| k == builtin) {
            keys_in_use.push(builtin.to_owned());
        }
    }
    keys_in_use.sort();
    let mut out = Vec::with_capacity(keys_in_use.len());
    for key in keys_in_use {
        out.push(LocalFieldInfo {
            kind: local_kind(engine, &key).await?,
            key,
        });
    }
    Ok(out)
}

async fn local_kind(engine: &Engine, key: &str) -> Result<Option<&'static str>, SyncError> {
    let builtin = match key {
        k if k == keys::EMAIL => Some("emails"),
        k if k == keys::PHONE => Some("phones"),
        k if k == keys::NAME => Some("text"),
        k if k == keys::OWNER_ID => Some("number"),
        _ => None,
    };
    if builtin.is_some() {
        return Ok(builtin);
    }
    Ok(stored_contacts::sample_values(&engine.store, key, 20)
        .await?
        .iter()
        .find_map(kind_of))
}

/// The connection's mappings (the defaults are implicit: name, e-mail and phone both ways, the
/// owner inbound).
pub async fn mappings(engine: &Engine, id: ConnectionId) -> Result<Vec<Mapping>, SyncError> {
    Ok(field_mappings::of_connection(&engine.store, id)
        .await?
        .into_iter()
        .map(Mapping::from)
        .collect())
}

/// Adds or changes a mapping, after checking the fields exist and their types fit.
pub async fn set_mapping(
    engine: &Engine,
    id: ConnectionId,
    request: &MappingRequest,
) -> Result<Mapping, SyncError> {
    let local = FieldKey::new(request.local_field.trim())
        .map_err(|e| invalid("local_field", format!("not a valid field name: {e}")))?;
    let direction = request
        .direction
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .unwrap_or("bidirectional");
    if !["inbound", "outbound", "bidirectional"].contains(&direction) {
        return Err(invalid(
            "direction",
            format!("`{direction}` is not a direction: use inbound, outbound or bidirectional"),
        ));
    }
    let owner = request
        .owner
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty() && *o != "none");
    if let Some(owner) = owner {
        if owner != "local" && owner != "remote" {
            return Err(invalid(
                "owner",
                format!("`{owner}` is not an owner: use local, remote, or leave it empty"),
            ));
        }
    }
    let entity = Entity::parse(request.entity.as_deref())?;
    let remote_key = request.remote_field.trim();
    let crm = super::load(engine, id).await?.crm;
    let remote_fields = remote_fields(engine, id).await?;
    let remote = remote_fields
        .iter()
        .find(|f| f.entity == entity.as_str() && f.key == remote_key)
        .ok_or_else(|| {
            invalid(
                "remote_field",
                format!(
                    "{} has no {} field with key `{remote_key}`; create it first",
                    crm.display_name(),
                    entity.as_str()
                ),
            )
        })?;
    if remote.is_custom && !convertible(&crm, &remote.field_type) {
        return Err(invalid(
            "remote_field",
            format!(
                "{} field \"{}\" is of type `{}`, which tandem cannot convert; it maps custom fields of type {}",
                crm.display_name(),
                remote.name,
                remote.field_type,
                crm.custom_field_types().join(", ")
            ),
        ));
    }
    if !remote.mappable {
        return Err(invalid(
            "remote_field",
            format!(
                "{}'s built-in {} field \"{}\" cannot be mapped; tandem maps {} and custom fields",
                crm.display_name(),
                entity.as_str(),
                remote.name,
                crm.mappable_builtins(entity == Entity::Organization)
            ),
        ));
    }
    if direction != "inbound" && !remote.writable {
        return Err(invalid(
            "direction",
            format!(
                "{} field \"{}\" ({}) is read-only for the connecting user, so tandem cannot write it: map it inbound, or grant Edit on it (Salesforce: Setup -> Profiles -> [profile] -> Field-Level Security) and map it again",
                crm.display_name(),
                remote.name,
                remote.key
            ),
        ));
    }
    let local_kind = local_kind(engine, local.as_ref()).await?;
    if let Some(kind) = local_kind {
        crm.compatible(kind, &remote.key, &remote.name, &remote.field_type)
            .map_err(|m| invalid("remote_field", m))?;
    }
    let currency = match request.currency.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(code) => {
            Some(CurrencyCode::parse(code).map_err(|e| invalid("currency", e.to_string()))?)
        }
    };
    if currency.is_some() && remote.field_type != "monetary" {
        return Err(invalid(
            "currency",
            format!(
                "only a monetary field takes a currency; \"{}\" is of type `{}`",
                remote.name, remote.field_type
            ),
        ));
    }
    if remote.field_type == "monetary" && local_kind == Some("number") && currency.is_none() {
        return Err(invalid(
            "currency",
            format!(
                "the local field holds numbers, but Pipedrive's monetary field \"{}\" takes an amount with a currency: give the currency the numbers are in (ISO 4217, e.g. EUR)",
                remote.name
            ),
        ));
    }
    let db = &engine.store;
    let now = engine.now();
    let existing = field_mappings::of_local_field(db, id, local.as_ref()).await?;
    let stored_remote = match (entity, remote.key.as_str()) {
        (Entity::Person, "email") => "emails".to_owned(),
        (Entity::Person, "phone") => "phones".to_owned(),
        (_, other) => other.to_owned(),
    };
    let row = FieldMappingRow {
        id: existing.as_ref().map_or_else(Uuid::now_v7, |e| e.id),
        connection_id: id.uuid(),
        local_field: local.as_ref().to_owned(),
        remote_field: stored_remote,
        remote_type: remote.field_type.clone(),
        direction: direction.to_owned(),
        owner: owner.map(str::to_owned),
        currency: currency.as_ref().map(|c| c.as_str().to_owned()),
        entity: entity.as_str().to_owned(),
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    let saved = field_mappings::save(db, row, existing.is_some()).await?;
    // A changed mapping may make values Pipedrive refused acceptable: send them again.
    crate::sync::links::forget_refused(db, id, None).await?;
    synclog::record(
        db,
        Entry::new(
            Level::Info,
            Direction::Connection,
            "mapping_changed",
            format!(
                "Field mapping saved: {} ↔ {}\"{}\" ({direction}{}).",
                saved.local_field,
                match entity {
                    Entity::Person => "",
                    Entity::Organization => "organization's ",
                },
                remote.name,
                owner.map(|o| format!(", {o} wins")).unwrap_or_default()
            ),
        )
        .connection(id),
        now,
    )
    .await?;
    Ok(saved.into())
}

fn convertible(crm: &crate::crm::Crm, field_type: &str) -> bool {
    crm.custom_field_types().contains(&field_type)
}

/// Removes a mapping (the field falls back to its default, or stops syncing).
pub async fn delete_mapping(
    engine: &Engine,
    id: ConnectionId,
    local_field: &str,
) -> Result<bool, SyncError> {
    let deleted = field_mappings::delete(&engine.store, id, local_field).await?;
    crate::sync::links::forget_refused(&engine.store, id, None).await?;
    Ok(deleted)
}

/// Creates a custom person field in Pipedrive (needs an admin user or the `admin` /
/// `contact-fields:full` scope).
pub async fn create_remote_field(
    engine: &Engine,
    id: ConnectionId,
    name: &str,
    field_type: &str,
) -> Result<RemoteFieldInfo, SyncError> {
    create_remote_field_of(engine, id, Entity::Person, name, field_type).await
}

/// Creates a custom field of the person (`organizationFields` for [`Entity::Organization`])
/// in the CRM, as the field mapping's "create the field" does for a mapped field missing there.
pub async fn create_remote_field_of(
    engine: &Engine,
    id: ConnectionId,
    entity: Entity,
    name: &str,
    field_type: &str,
) -> Result<RemoteFieldInfo, SyncError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("name", "a field name is required"));
    }
    let conn = super::load(engine, id).await?;
    let creatable = conn.crm.creatable_field_types();
    if !creatable.contains(&field_type) {
        return Err(invalid(
            "field_type",
            format!(
                "`{field_type}` cannot be created in {}; use one of {}",
                conn.crm.display_name(),
                creatable.join(", ")
            ),
        ));
    }
    let now = engine.now();
    let created = match entity {
        Entity::Person => conn.crm.create_field(&conn.session, name, field_type).await,
        Entity::Organization => {
            conn.crm
                .create_organization_field(&conn.session, name, field_type)
                .await
        }
    };
    let on = match entity {
        Entity::Person => "Person",
        Entity::Organization => "Organization",
    };
    match created {
        Ok(field) => {
            synclog::record(
                &engine.store,
                Entry::new(
                    Level::Info,
                    Direction::Connection,
                    "field_created",
                    format!(
                        "Custom {} field \"{name}\" ({field_type}) created in {}.",
                        entity.as_str(),
                        conn.crm.display_name()
                    ),
                )
                .connection(id),
                now,
            )
            .await?;
            Ok(RemoteFieldInfo {
                entity: entity.as_str(),
                mappable: true,
                key: field.key,
                name: field.name,
                field_type: field.field_type,
                is_custom: true,
                writable: field.writable,
                options: Vec::new(),
            })
        }
        Err(error) if error.kind == CrmErrorKind::Forbidden => {
            let (who, fix) = conn.crm.field_create_refusal(on);
            let crm = conn.crm.display_name();
            synclog::record(
                &engine.store,
                Entry::new(
                    Level::Error,
                    Direction::Connection,
                    "field_create_refused",
                    format!("{crm} refused to create the custom field \"{name}\": {who}."),
                )
                .connection(id)
                .status(error.status)
                .remote_error(error.message.clone())
                .hint(fix.clone()),
                now,
            )
            .await?;
            Err(SyncError::AdminRequired(format!(
                "{crm} refused to create the field ({} {}): {who}. {fix}",
                error.status.map(|s| s.to_string()).unwrap_or_default(),
                error.message
            )))
        }
        Err(error) => {
            super::tokens::on_auth_error(engine, &conn, &error).await?;
            Err(error.into())
        }
    }
}
