//! The persons tandem saw merged away into another (`merged_person`): a Salesforce Lead
//! converted into its Contact, a merge's losing record. Such a person does not come back, so a
//! read of it as live (a poll's page read before the merge, applied after tandem followed it)
//! is stale, never a new person.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Statement};
use tandem_core::{ConnectionId, PersonId};

use super::{Conn, StoreError};

/// Notes that `person` was merged into `into`.
pub async fn note(
    db: &impl Conn,
    connection: ConnectionId,
    person: PersonId,
    into: PersonId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let backend = db.raw().get_database_backend();
    db.raw()
        .execute(Statement::from_sql_and_values(
            backend,
            "INSERT INTO merged_person (connection_id, person_id, merged_into, merged_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id, person_id) \
             DO UPDATE SET merged_into = excluded.merged_into, merged_at = excluded.merged_at",
            [
                connection.uuid().into(),
                person.get().into(),
                into.get().into(),
                now.into(),
            ],
        ))
        .await?;
    Ok(())
}

/// Whether `person` was merged away into another.
pub async fn is_merged(
    db: &impl Conn,
    connection: ConnectionId,
    person: PersonId,
) -> Result<bool, StoreError> {
    let backend = db.raw().get_database_backend();
    Ok(db
        .raw()
        .query_one(Statement::from_sql_and_values(
            backend,
            "SELECT person_id FROM merged_person WHERE connection_id = $1 AND person_id = $2",
            [connection.uuid().into(), person.get().into()],
        ))
        .await?
        .is_some())
}
