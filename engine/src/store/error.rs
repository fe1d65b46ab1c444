//! The store's one error type, and the one function that maps sea-orm's errors to it: unique
//! violations by constraint name (Postgres reports the name; SQLite reports the table and
//! columns, matched against the same table of constraints), everything else by kind (C4).

use sea_orm::{DbErr, RuntimeErr};

/// The unique constraints the code relies on, by the names the migrations give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Constraint {
    /// `person_link (connection_id, person_id)`: a person is linked once per connection.
    PersonLinkConnectionPerson,
    /// `person_link (connection_id, contact_id)`: a contact is linked once per connection.
    PersonLinkConnectionContact,
    /// `inbox_event (source, delivery_id)`: a delivery is stored once.
    InboxEventSourceDelivery,
    /// `field_mapping (connection_id, local_field)`.
    FieldMappingConnectionLocal,
    /// `field_mapping (connection_id, remote_field)`.
    FieldMappingConnectionRemote,
    /// `duplicate_group (connection_id, kind, group_key)`.
    DuplicateGroupKind,
    /// `journey_action (idempotency_key)`.
    JourneyActionIdempotencyKey,
    /// `idempotency_key (scope, key)`, the primary key.
    IdempotencyKeyPkey,
    /// `email_log (message_id)`: an e-mail is logged once.
    EmailLogMessageId,
    /// A unique constraint not in this table (a primary key, a constraint added later).
    Other,
}

impl Constraint {
    /// Every named constraint, with its name and (for SQLite, which reports no names) the
    /// `table.column, table.column` list SQLite's message carries.
    const TABLE: [(Self, &'static str, &'static str); 9] = [
        (
            Self::PersonLinkConnectionPerson,
            "person_link_connection_person_key",
            "person_link.connection_id, person_link.person_id",
        ),
        (
            Self::PersonLinkConnectionContact,
            "person_link_connection_contact_key",
            "person_link.connection_id, person_link.contact_id",
        ),
        (
            Self::InboxEventSourceDelivery,
            "inbox_event_source_delivery_key",
            "inbox_event.source, inbox_event.delivery_id",
        ),
        (
            Self::FieldMappingConnectionLocal,
            "field_mapping_connection_local_key",
            "field_mapping.connection_id, field_mapping.local_field",
        ),
        (
            Self::FieldMappingConnectionRemote,
            "field_mapping_connection_remote_key",
            "field_mapping.connection_id, field_mapping.remote_field",
        ),
        (
            Self::DuplicateGroupKind,
            "duplicate_group_kind_key",
            "duplicate_group.connection_id, duplicate_group.kind, duplicate_group.group_key",
        ),
        (
            Self::JourneyActionIdempotencyKey,
            "journey_action_tenant_idempotency_key_key",
            "journey_action.tenant, journey_action.idempotency_key",
        ),
        (
            Self::IdempotencyKeyPkey,
            "idempotency_key_pkey",
            "idempotency_key.scope, idempotency_key.key",
        ),
        (
            Self::EmailLogMessageId,
            "email_log_tenant_message_id_key",
            "email_log.tenant, email_log.message_id",
        ),
    ];

    /// The constraint's name in the schema.
    pub fn name(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(c, _, _)| *c == self)
            .map_or("(unnamed)", |(_, name, _)| name)
    }

    /// The constraint a database reported: by name (Postgres), else by the columns in the
    /// message (SQLite: `UNIQUE constraint failed: person_link.connection_id, ...`).
    fn identify(name: Option<&str>, message: &str) -> Self {
        Self::TABLE
            .iter()
            .find(|(_, known, columns)| match name {
                Some(name) => name == *known,
                None => message
                    .split_once("constraint failed: ")
                    .is_some_and(|(_, listed)| listed.trim() == *columns),
            })
            .map_or(Self::Other, |(c, _, _)| *c)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database: {0}")]
    Connect(String),
    /// The row asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique constraint refused the write.
    #[error("conflict on {}: {message}", constraint.name())]
    Conflict {
        constraint: Constraint,
        message: String,
    },
    /// A foreign key refused the write (the row it refers to is gone).
    #[error("foreign key violated: {0}")]
    ForeignKey(String),
    /// A stored value does not decode (JSON columns, enums stored as text).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Anything else: the database is unreachable or busy, a statement failed.
    #[error("database error: {0}")]
    Db(String),
}

impl StoreError {
    /// Whether this is a violation of `constraint`.
    pub fn is_conflict_on(&self, constraint: Constraint) -> bool {
        matches!(self, Self::Conflict { constraint: c, .. } if *c == constraint)
    }
}

/// The one mapping from sea-orm's errors (C4).
impl From<DbErr> for StoreError {
    fn from(error: DbErr) -> Self {
        match error {
            DbErr::Exec(runtime) | DbErr::Query(runtime) | DbErr::Conn(runtime) => {
                from_runtime(runtime)
            }
            DbErr::RecordNotFound(what) => Self::NotFound(what),
            DbErr::RecordNotUpdated => Self::NotFound("no row was updated".to_owned()),
            DbErr::Json(message) | DbErr::Type(message) => Self::Corrupt(message),
            error @ DbErr::TryIntoErr { .. } => Self::Corrupt(error.to_string()),
            error @ (DbErr::ConnectionAcquire(_)
            | DbErr::ConvertFromU64(_)
            | DbErr::UnpackInsertId
            | DbErr::UpdateGetPrimaryKey
            | DbErr::AttrNotSet(_)
            | DbErr::Custom(_)
            | DbErr::Migration(_)
            | DbErr::RecordNotInserted) => Self::Db(error.to_string()),
        }
    }
}

fn from_runtime(error: RuntimeErr) -> StoreError {
    match error {
        RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(db)) => {
            use sea_orm::sqlx::error::ErrorKind;
            let message = db.message().to_owned();
            match db.kind() {
                ErrorKind::UniqueViolation => StoreError::Conflict {
                    constraint: Constraint::identify(db.constraint(), &message),
                    message,
                },
                ErrorKind::ForeignKeyViolation => StoreError::ForeignKey(message),
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation | ErrorKind::Other => {
                    StoreError::Db(message)
                }
                // sqlx's `ErrorKind` is non-exhaustive.
                _ => StoreError::Db(message),
            }
        }
        // sqlx's `Error` is non-exhaustive: every other kind is the database or the pool.
        RuntimeErr::SqlxError(other) => StoreError::Db(other.to_string()),
        RuntimeErr::Internal(message) => StoreError::Db(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constraint_is_identified_by_name_or_by_sqlite_columns() {
        assert_eq!(
            Constraint::identify(Some("person_link_connection_person_key"), "duplicate key"),
            Constraint::PersonLinkConnectionPerson
        );
        assert_eq!(
            Constraint::identify(
                None,
                "UNIQUE constraint failed: person_link.connection_id, person_link.contact_id"
            ),
            Constraint::PersonLinkConnectionContact
        );
        assert_eq!(
            Constraint::identify(None, "UNIQUE constraint failed: contact.id"),
            Constraint::Other
        );
        assert_eq!(
            Constraint::InboxEventSourceDelivery.name(),
            "inbox_event_source_delivery_key"
        );
    }

    #[test]
    fn sea_orm_errors_map_to_what_callers_act_on() {
        assert!(matches!(
            StoreError::from(DbErr::RecordNotFound("x".into())),
            StoreError::NotFound(_)
        ));
        assert!(matches!(
            StoreError::from(DbErr::Custom("database is locked".into())),
            StoreError::Db(_)
        ));
    }
}
