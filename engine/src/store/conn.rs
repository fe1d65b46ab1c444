//! What a repository runs on: the store itself or a transaction ([`Tx`]), both behind [`Conn`],
//! so callers pass `&engine.store` or `&tx` and never name sea-orm.

use std::future::Future;
use std::pin::Pin;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    IsolationLevel, QueryResult, Statement, TransactionTrait,
};

use super::{Store, StoreError};

/// Something a repository can run statements on: a [`Store`] or a [`Tx`] (and the raw
/// connection the integration tests hold for their own SQL).
pub trait Conn: Sync {
    /// The sea-orm connection underneath; only `store/` uses it.
    #[doc(hidden)]
    type Raw: ConnectionTrait;
    #[doc(hidden)]
    fn raw(&self) -> &Self::Raw;
}

impl Conn for Store {
    type Raw = DatabaseConnection;
    fn raw(&self) -> &DatabaseConnection {
        self.db()
    }
}

impl<T: ConnectionTrait> Conn for T {
    type Raw = T;
    fn raw(&self) -> &T {
        self
    }
}

/// A database transaction: commits with [`Tx::commit`], rolls back when dropped.
#[derive(Debug)]
pub struct Tx(DatabaseTransaction);

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.0.commit().await?)
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        Ok(self.0.rollback().await?)
    }
}

impl Store {
    /// Starts a transaction.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(Tx(self.db().begin().await?))
    }

    /// Starts a transaction (for reads) whose reads all see the database as of its first read,
    /// for values that must be read together (a contact and its link: a poll committed between
    /// two plain reads would pair an old contact with a new base, and the difference would be
    /// taken for an edit). Postgres: `REPEATABLE READ` (its default isolation gives each
    /// statement its own snapshot). SQLite: a plain transaction, which holds the one connection,
    /// so nothing commits between its reads.
    pub async fn begin_snapshot(&self) -> Result<Tx, StoreError> {
        let txn = match self.db().get_database_backend() {
            DbBackend::Postgres => {
                self.db()
                    .begin_with_config(Some(IsolationLevel::RepeatableRead), None)
                    .await?
            }
            _ => self.db().begin().await?,
        };
        Ok(Tx(txn))
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, DbErr>> + Send + 'a>>;

/// The transaction's statements (sea-orm's trait is `async_trait`, written out here).
impl ConnectionTrait for Tx {
    fn get_database_backend(&self) -> DbBackend {
        self.0.get_database_backend()
    }

    fn execute<'a, 'b>(&'a self, stmt: Statement) -> Boxed<'b, ExecResult>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(self.0.execute(stmt))
    }

    fn execute_unprepared<'a, 'c, 'b>(&'a self, sql: &'c str) -> Boxed<'b, ExecResult>
    where
        'a: 'b,
        'c: 'b,
        Self: 'b,
    {
        Box::pin(self.0.execute_unprepared(sql))
    }

    fn query_one<'a, 'b>(&'a self, stmt: Statement) -> Boxed<'b, Option<QueryResult>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(self.0.query_one(stmt))
    }

    fn query_all<'a, 'b>(&'a self, stmt: Statement) -> Boxed<'b, Vec<QueryResult>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(self.0.query_all(stmt))
    }

    fn support_returning(&self) -> bool {
        self.0.support_returning()
    }
}
