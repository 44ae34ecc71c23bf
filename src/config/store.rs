//! `[store]`: where sessions, backups and the outbox live (CONTRACT §13): the
//! sessions directory with SQLite (the default, §7), or a PostgreSQL database that
//! several daemons share.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::range::{Number, Range};

const TABLE: &str = "store";
/// Connections to PostgreSQL: at least two (the outbox and a session at once).
pub const POOL_SIZE: Range = Range::new(2, 1000);
const DEFAULT_POOL_SIZE: usize = 16;

/// Environment variable that replaces `[store] url` (it holds a password: the
/// environment, or a file only the daemon's user reads, is the place for it).
pub const ENV_DATABASE_URL: &str = "WA_DATABASE_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Files and SQLite in the sessions directory; one daemon.
    #[default]
    Sqlite,
    /// PostgreSQL, shared by every daemon of a cluster.
    Postgres,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// `postgres://user:password@host/db` or `host=/run/postgresql dbname=wa`;
    /// `WA_DATABASE_URL` replaces it. Only with `kind = "postgres"`.
    pub url: String,
    /// Connections to the database, shared by every session of this daemon.
    pub pool_size: usize,
}

/// Never prints the URL: it may hold a password.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("kind", &self.kind)
            .field("url", &if self.url.is_empty() { "" } else { "<set>" })
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Sqlite,
            url: String::new(),
            pool_size: DEFAULT_POOL_SIZE,
        }
    }
}

impl StoreConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![Number::new(TABLE, "pool_size", self.pool_size, POOL_SIZE)]
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.kind {
            StoreKind::Sqlite if !self.url.trim().is_empty() => Err(ConfigError::Invalid(
                "[store] url is set but [store] kind is \"sqlite\"; set kind = \"postgres\" \
                 to use the database"
                    .into(),
            )),
            StoreKind::Postgres if self.url.trim().is_empty() => Err(ConfigError::Invalid(
                format!("[store] kind = \"postgres\" needs [store] url or {ENV_DATABASE_URL}"),
            )),
            StoreKind::Postgres => self.database().map(drop),
            StoreKind::Sqlite => Ok(()),
        }
    }

    /// The database to connect to (`kind = "postgres"`). The error never quotes
    /// the URL.
    pub fn database(&self) -> Result<wa_store_postgres::tokio_postgres::Config, ConfigError> {
        self.url
            .trim()
            .parse()
            .map_err(|_| ConfigError::Invalid("[store] url is not a PostgreSQL URL".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_needs_a_url_and_a_url_needs_the_database() {
        let pg = |url: &str| StoreConfig {
            kind: StoreKind::Postgres,
            url: url.into(),
            ..StoreConfig::default()
        };
        assert!(StoreConfig::default().validate().is_ok());
        assert!(
            pg("postgres://wa:secret@db.internal/optics")
                .validate()
                .is_ok()
        );
        assert!(pg("host=/run/postgresql dbname=wa").validate().is_ok());
        let missing = pg(" ").validate().unwrap_err().to_string();
        assert!(missing.contains(ENV_DATABASE_URL), "{missing}");
        let bad = pg("postgres://wa:secret@db:notaport/x")
            .validate()
            .unwrap_err();
        assert!(!bad.to_string().contains("secret"), "{bad}");
        let stray = StoreConfig {
            url: "postgres://x/y".into(),
            ..StoreConfig::default()
        };
        assert!(stray.validate().is_err());
    }

    #[test]
    fn the_url_is_never_printed() {
        let c = StoreConfig {
            kind: StoreKind::Postgres,
            url: "postgres://wa:hunter2@db/x".into(),
            pool_size: 4,
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
