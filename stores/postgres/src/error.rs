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
