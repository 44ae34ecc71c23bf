//! The connection pool a [`PostgresStore`](crate::PostgresStore) runs on.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::Error;

/// How long a caller waits for a free connection, and for a new one to open, before
/// the store reports a connection error instead of hanging on a dead server.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

/// A pool of up to `max_size` connections to `url` (`postgres://user:pass@host/db`,
/// or key-value `host=/run/postgresql dbname=wa`; a `host` that is a directory is a
/// Unix socket). One pool serves the stores of every organization.
///
/// Plain TCP (no TLS): for a server on another host, build the pool yourself with a
/// TLS connector and hand it to [`PostgresStore::new`](crate::PostgresStore::new).
pub fn connect(url: &str, max_size: usize) -> Result<Pool, Error> {
    let config = tokio_postgres::Config::from_str(url).map_err(Error::Url)?;
    pool_for(config, max_size)
}

/// Like [`connect`], from a parsed configuration.
pub fn pool_for(config: tokio_postgres::Config, max_size: usize) -> Result<Pool, Error> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // A broken connection fails its next statement and is dropped then;
            // checking every checkout would cost a round trip per operation.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(max_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECTION_WAIT))
        .create_timeout(Some(CONNECTION_WAIT))
        .build()
        .map_err(Error::Pool)
}
