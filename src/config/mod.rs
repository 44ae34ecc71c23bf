//! The daemon's configuration (CONTRACT §8).
//!
//! Sources, later wins: the defaults, `config.toml`, then the environment (which
//! `main` has already filled from `.env`). Every key has a default, so an operator
//! writes only what they change; an unknown key is an error, so a typo never
//! silently falls back to a default; every number has a range, checked at start.
//!
//! One file per table: each deserializes, checks itself (with one message naming
//! the key) and turns itself into what it configures, and takes its defaults from
//! that same thing (the actor crate's [`SupervisorConfig`], the HTTP limits, …),
//! so that every default exists once. This module composes them.

mod budget;
mod cluster;
mod connection;
mod healing;
mod media;
mod outbox;
mod phone;
pub mod range;
mod reconnect;
mod send;
mod server;
mod sessions;
mod sim;
mod store;
mod webhook;
mod whatsapp;
mod windows;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;

pub use budget::BudgetConfig;
pub use cluster::ClusterConfig;
pub use connection::{ConnectionConfig, ConnectionKind};
pub use healing::{HealingConfig, RestartsConfig};
pub use media::MediaConfig;
pub use outbox::OutboxConfig;
pub use phone::PhoneConfig;
pub use range::{Number, Range};
pub use reconnect::ReconnectConfig;
pub use send::SendConfig;
pub use server::ServerConfig;
pub use sessions::SessionsConfig;
pub use sim::SimConfig;
pub use store::{ENV_DATABASE_URL, StoreConfig, StoreKind};
pub use whatsapp::WhatsappConfig;
pub use windows::{BadMacWindow, Window, WindowsConfig};

use crate::http::HttpLimits;
use crate::phone::PhoneRules;
use crate::webhook::{ENV_WEBHOOK_SECRET, WebhookConfig, WebhookSecret};

/// Where `config.toml` is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "config.toml";

/// Environment variable that replaces the port of `[server] listen` (the Node
/// server's variable; CONTRACT §8).
pub const ENV_PORT: &str = "PORT";
/// Environment variable that replaces `[sessions] dir`.
pub const ENV_SESSIONS_DIR: &str = "WA_SESSIONS_DIR";

/// Why the configuration could not be loaded. Each message is one line that
/// carries its cause once (no error here has a `source`, so a chain printer
/// cannot repeat it).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read config file {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{key} = {value} is out of range {range}")]
    OutOfRange {
        key: String,
        value: u64,
        range: Range,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration; one field per `[table]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub sessions: SessionsConfig,
    pub connection: ConnectionConfig,
    pub windows: WindowsConfig,
    pub healing: HealingConfig,
    pub connection_budget: BudgetConfig,
    pub reconnect: ReconnectConfig,
    pub send: SendConfig,
    pub outbox: OutboxConfig,
    pub media: MediaConfig,
    pub phone: PhoneConfig,
    pub sim: SimConfig,
    pub webhook: WebhookConfig,
    pub whatsapp: WhatsappConfig,
    pub store: StoreConfig,
    pub cluster: ClusterConfig,
}

/// The actor crate's defaults, which the tables it configures start from (the
/// directory plays no part in them).
fn actor_defaults() -> SupervisorConfig {
    SupervisorConfig::new(sessions::DEFAULT_DIR)
}

impl Config {
    /// Loads the configuration.
    ///
    /// `path` is `--config`: a named file must exist. Without it, `./config.toml`
    /// is read when present and the defaults are used when not. `env` looks an
    /// environment variable up (a closure, so tests need not touch the process
    /// environment).
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::load_or(path, Path::new(DEFAULT_PATH), env)
    }

    /// [`Config::load`] with the default path given (tests cannot change the
    /// working directory of a multi-threaded test binary).
    fn load_or(
        path: Option<&Path>,
        default_path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => Self::from_file(path)?.ok_or_else(|| ConfigError::Missing {
                path: path.to_owned(),
            })?,
            None => Self::from_file(default_path)?.unwrap_or_default(),
        };
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses `path`; `Ok(None)` when it does not exist.
    fn from_file(path: &Path) -> Result<Option<Self>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    cause,
                });
            }
        };
        toml::from_str(&text)
            .map(Some)
            .map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: one_line(&e, &text),
            })
    }

    fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(port) = env(ENV_PORT) {
            let parsed = port.trim().parse::<u16>().map_err(|e| ConfigError::Env {
                name: ENV_PORT,
                value: port.clone(),
                reason: e.to_string(),
            })?;
            self.server.listen.set_port(parsed);
        }
        if let Some(dir) = env(ENV_SESSIONS_DIR).filter(|d| !d.trim().is_empty()) {
            self.sessions.dir = PathBuf::from(dir);
        }
        // The database URL is read only for a database store: the environment may
        // carry it for other programs, and the default store has no use for it.
        if let Some(url) = env(ENV_DATABASE_URL).filter(|u| !u.trim().is_empty()) {
            match self.store.kind {
                StoreKind::Postgres => self.store.url = url,
                StoreKind::Sqlite => {
                    tracing::debug!(
                        "{ENV_DATABASE_URL} is set but unused: [store] kind is \"sqlite\""
                    )
                }
            }
        }
        self.webhook.secret = env(ENV_WEBHOOK_SECRET)
            .as_deref()
            .and_then(WebhookSecret::new);
        Ok(())
    }

    /// Every numeric key with its value and range.
    pub fn numbers(&self) -> Vec<Number> {
        [
            self.server.numbers(),
            self.sessions.numbers(),
            self.windows.numbers(),
            self.healing.numbers(),
            self.connection_budget.numbers(),
            self.reconnect.numbers(),
            self.send.numbers(),
            self.outbox.numbers(),
            self.media.numbers(),
            self.sim.numbers(),
            webhook::numbers(&self.webhook),
            self.store.numbers(),
            self.cluster.numbers(),
        ]
        .concat()
    }

    /// Refuses anything out of range first, then values that are in range but make
    /// no sense together.
    fn validate(&self) -> Result<(), ConfigError> {
        range::check_all(self.numbers())?;
        self.sessions.validate()?;
        self.reconnect.validate()?;
        if self.server.request_timeout_seconds <= self.send.wait_seconds {
            return Err(ConfigError::Invalid(format!(
                "[server] request_timeout_seconds = {} must exceed [send] wait_seconds = {} \
                 (a send may wait that long for a reconnecting session)",
                self.server.request_timeout_seconds, self.send.wait_seconds
            )));
        }
        HealingConfig::validate(&self.supervisor_config().healing)?;
        self.phone.rules()?;
        self.webhook.validate().map_err(ConfigError::Invalid)?;
        self.whatsapp.validate()?;
        self.store.validate()?;
        self.cluster.validate()?;
        Ok(())
    }

    /// The actor tree's configuration.
    pub fn supervisor_config(&self) -> SupervisorConfig {
        let mut actors = SupervisorConfig::new(&self.sessions.dir);
        self.sessions.apply(&mut actors);
        self.server.apply(&mut actors);
        self.windows.apply(&mut actors);
        self.healing.apply(&mut actors);
        self.connection_budget.apply(&mut actors);
        self.reconnect.apply(&mut actors);
        self.send.apply(&mut actors);
        self.outbox.apply(&mut actors);
        self.media.apply(&mut actors);
        if self.store.kind == StoreKind::Postgres {
            self.cluster.apply(&mut actors);
        }
        actors
    }

    /// How phone numbers are read (validated by [`Config::load`]).
    pub fn phone_rules(&self) -> Result<PhoneRules, ConfigError> {
        self.phone.rules()
    }

    /// The limits of the router.
    pub fn http_limits(&self) -> HttpLimits {
        self.server.http_limits()
    }
}

/// A TOML error as one line: where, then what (toml's own text spans several
/// lines, with a drawing of the offending line).
fn one_line(e: &toml::de::Error, text: &str) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_owned(),
    }
    .replace('\n', " ")
}

#[cfg(test)]
mod tests;
