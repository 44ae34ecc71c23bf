//! Errors of the crate's own API (pool, migrations, opening a store), and how a
//! database error becomes the trait's [`StoreError`].

use wacore::store::error::StoreError;

/// What can go wrong outside the store traits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the PostgreSQL URL is not valid")]
    Url(#[source] tokio_postgres::Error),
    #[error("could not build the PostgreSQL connection pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    #[error("no PostgreSQL connection")]
    Connection(#[source] deadpool_postgres::PoolError),
    #[error("PostgreSQL error")]
    Database(#[source] tokio_postgres::Error),
    #[error("the store operation failed")]
    Store(#[from] StoreError),
    #[error("a store id must be 1 to {max} characters, got {len}")]
    InvalidStoreId { len: usize, max: usize },
    #[error(
        "the database schema is at version {found}, newer than this build knows ({known}): \
         run a build at least as new"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("migration {version} ({name}) was applied with a different text than this build's")]
    MigrationChanged { version: i64, name: String },
    /// A fenced write of an organization this node no longer owns.
    #[error("the organization's lease is held by another node; the write was refused")]
    Fenced,
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Database(e)
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Connection(e)
    }
}

/// A failed statement, for the store traits.
pub(crate) fn db(e: tokio_postgres::Error) -> StoreError {
    StoreError::Database(Box::new(e))
}

/// No connection from the pool, for the store traits.
pub(crate) fn no_connection(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Connection(Box::new(e))
}

/// A value that does not fit its column or cannot be encoded.
pub(crate) fn encode(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Serialization(Box::new(e))
}

/// A PostgreSQL failure in words that name no stored value: the server's
/// message without its `DETAIL` (which may quote a key, e.g. a phone number).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The failures of a pool and of a statement, described without stored values.
pub(crate) trait Failure {
    fn describe(&self) -> String;
}

impl Failure for tokio_postgres::Error {
    fn describe(&self) -> String {
        describe(self)
    }
}

impl Failure for deadpool_postgres::PoolError {
    fn describe(&self) -> String {
        match self {
            deadpool_postgres::PoolError::Backend(e) => describe(e),
            other => other.to_string(),
        }
    }
}
