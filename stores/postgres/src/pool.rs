//! The connection pool a [`PostgresStore`](crate::PostgresStore) runs on.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::Error;

/// How long a caller waits for a free connection, and for a new one to open, before
/// the store reports a connection error instead of hanging on a dead server.
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

/// A connection whose server went silent (a cut network, a frozen host) is found
/// out within seconds instead of the operating system's quarter of an hour: TCP
/// keepalives probe an idle connection, unacknowledged data gives up after
/// [`TCP_USER_TIMEOUT`], and no statement runs longer than [`STATEMENT_TIMEOUT`].
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_RETRIES: u32 = 3;
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// `config` with the bounds above where the URL did not set its own (keepalives are
/// always on, probing after at most [`KEEPALIVE_IDLE`] of silence).
pub(crate) fn bounded(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    config.keepalives(true);
    if config.get_keepalives_idle() > KEEPALIVE_IDLE {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVE_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVE_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    let options = config.get_options().unwrap_or_default();
    if !options.contains("statement_timeout") {
        let limit = format!("-c statement_timeout={}", STATEMENT_TIMEOUT.as_millis());
        let options = if options.trim().is_empty() {
            limit
        } else {
            format!("{options} {limit}")
        };
        config.options(options);
    }
    config
}

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
        bounded(config),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_server_is_found_out_in_seconds_unless_the_url_says_otherwise() {
        let plain = bounded(tokio_postgres::Config::from_str("host=/tmp dbname=wa").unwrap());
        assert!(plain.get_keepalives());
        assert_eq!(plain.get_keepalives_idle(), KEEPALIVE_IDLE);
        assert_eq!(plain.get_keepalives_interval(), Some(KEEPALIVE_INTERVAL));
        assert_eq!(plain.get_keepalives_retries(), Some(KEEPALIVE_RETRIES));
        assert_eq!(plain.get_tcp_user_timeout(), Some(&TCP_USER_TIMEOUT));
        assert_eq!(plain.get_options(), Some("-c statement_timeout=30000"));

        let own = bounded(
            tokio_postgres::Config::from_str(
                "host=/tmp dbname=wa tcp_user_timeout=3 options='-c search_path=wa'",
            )
            .unwrap(),
        );
        assert_eq!(own.get_tcp_user_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(
            own.get_options(),
            Some("-c search_path=wa -c statement_timeout=30000")
        );
        let limited = bounded(
            tokio_postgres::Config::from_str("host=/tmp options='-c statement_timeout=5s'")
                .unwrap(),
        );
        assert_eq!(limited.get_options(), Some("-c statement_timeout=5s"));
    }
}
