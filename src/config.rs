//! The daemon's configuration (CONTRACT §8).
//!
//! Sources, later wins: the embedded defaults, `config.toml`, then the environment
//! (which `main` has already filled from `.env`). Every key has a default, so an
//! operator writes only what they change; an unknown key is an error, so a typo
//! never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_actors::connection::sim::SimTiming;
use wa_actors::{Backoff, SupervisorConfig, WindowSpec};

use crate::phone::PhoneRules;
use crate::webhook::{ENV_WEBHOOK_SECRET, WebhookConfig, WebhookSecret};
use wa_actors::connection::whatsapp::WhatsAppOptions;

/// Where `config.toml` is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "config.toml";

/// Environment variable that replaces the port of `[server] listen` (the Node
/// server's variable; CONTRACT §8).
pub const ENV_PORT: &str = "PORT";
/// Environment variable that replaces `[sessions] dir`.
pub const ENV_SESSIONS_DIR: &str = "WA_SESSIONS_DIR";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("environment variable {name}={value:?} is invalid: {reason}")]
    Env {
        name: &'static str,
        value: String,
        reason: String,
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
    pub connection_budget: BudgetConfig,
    pub reconnect: ReconnectConfig,
    pub send: SendConfig,
    pub phone: PhoneConfig,
    pub sim: SimConfig,
    pub webhook: WebhookConfig,
    pub whatsapp: WhatsappConfig,
}

/// `[server]`: the HTTP listener and the API key.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 3000 as the Node server it replaces.
    pub listen: SocketAddr,
    /// A file holding the API key, used when `WHATSAPP_SERVER_API_KEY` is not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// A request unanswered after this many seconds is answered 504.
    pub request_timeout_seconds: u64,
    /// Requests handled at once; more are shed with 503 and `Retry-After`.
    pub max_in_flight: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            api_key_file: None,
            request_timeout_seconds: 30,
            max_in_flight: 256,
        }
    }
}

/// `[sessions]`: the sessions directory (CONTRACT §7).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    pub dir: PathBuf,
    pub backups_kept: usize,
    /// Average gap between two stored sessions resumed at start-up (randomized
    /// ±50%), so a restart never reconnects every shop at once.
    pub resume_gap_ms: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("auth_sessions"),
            backups_kept: 3,
            resume_gap_ms: 250,
        }
    }
}

/// Which connection the org actors open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    /// Real WhatsApp Web.
    #[default]
    Whatsapp,
    /// The scriptable fake phone of CONTRACT §9.
    Sim,
}

impl ConnectionKind {
    /// The name used in `config.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Sim => "sim",
        }
    }
}

/// `[connection]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    pub kind: ConnectionKind,
}

/// One sliding window: `limit` events within `seconds`.
///
/// The defaults are type parameters because each window has its own (CONTRACT §5):
/// with one shared `Default`, `[windows.stream] limit = 4` alone would silently get
/// the Bad MAC window's 30 s. Serde's derive does not take const generics, hence the
/// hand-written impls below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig<const LIMIT: usize, const SECONDS: u64> {
    pub limit: usize,
    pub seconds: u64,
}

/// The TOML shape of a [`WindowConfig`]; a missing key takes the window's default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    limit: Option<usize>,
    seconds: Option<u64>,
}

impl<'de, const LIMIT: usize, const SECONDS: u64> Deserialize<'de>
    for WindowConfig<LIMIT, SECONDS>
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawWindow::deserialize(d)?;
        Ok(Self {
            limit: raw.limit.unwrap_or(LIMIT),
            seconds: raw.seconds.unwrap_or(SECONDS),
        })
    }
}

impl<const LIMIT: usize, const SECONDS: u64> Serialize for WindowConfig<LIMIT, SECONDS> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("WindowConfig", 2)?;
        st.serialize_field("limit", &self.limit)?;
        st.serialize_field("seconds", &self.seconds)?;
        st.end()
    }
}

impl<const LIMIT: usize, const SECONDS: u64> Default for WindowConfig<LIMIT, SECONDS> {
    fn default() -> Self {
        Self {
            limit: LIMIT,
            seconds: SECONDS,
        }
    }
}

impl<const LIMIT: usize, const SECONDS: u64> WindowConfig<LIMIT, SECONDS> {
    pub fn spec(&self) -> WindowSpec {
        WindowSpec::new(self.limit, Duration::from_secs(self.seconds))
    }
}

/// `[windows.*]`: the error windows and the restart intensity (CONTRACT §5).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsConfig {
    pub bad_mac: WindowConfig<3, 30>,
    pub stream: WindowConfig<2, 60>,
    pub cleanups: WindowConfig<3, 3600>,
}

/// `[connection_budget.*]`: the anti-ban connection-attempt budget (CONTRACT §6).
///
/// Defaults: 10 attempts per organization per day, 1,000 per hour in all (see
/// [`wa_actors::BudgetSpec`] for why).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub per_org: WindowConfig<10, 86400>,
    pub global: WindowConfig<1000, 3600>,
}

/// `[reconnect]`: backoff of a paired session whose connection dropped.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            initial_ms: 1_000,
            max_ms: 60_000,
        }
    }
}

/// `[send]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendConfig {
    /// How long a send waits for a `reconnecting` session to come back.
    pub wait_seconds: u64,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self { wait_seconds: 20 }
    }
}

/// `[phone]`: how typed phone numbers are read.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhoneConfig {
    /// ISO 3166 region assumed for numbers given without a country code.
    pub default_region: String,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        Self {
            default_region: "CO".into(),
        }
    }
}

/// `[sim]`: QR rotation of the fake phone (WhatsApp's own timing by default).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub first_qr_seconds: u64,
    pub next_qr_seconds: u64,
    pub qr_count: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            first_qr_seconds: 60,
            next_qr_seconds: 20,
            qr_count: 6,
        }
    }
}

/// `[whatsapp]`: how the real connection reaches WhatsApp Web.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsappConfig {
    /// A pinned WhatsApp Web version `"2.3000.1012345678"`; empty = look the current
    /// one up (at most once a day per session).
    pub version: String,
    /// Another WebSocket URL than WhatsApp's; empty = WhatsApp's own. Only for a
    /// test server: the server's certificate is still checked against WhatsApp's
    /// key, so this cannot be used to read anyone's traffic.
    pub ws_url: String,
}

impl WhatsappConfig {
    /// The pinned version as numbers, when one is set.
    pub fn version(&self) -> Result<Option<(u32, u32, u32)>, String> {
        let v = self.version.trim();
        if v.is_empty() {
            return Ok(None);
        }
        let parts: Vec<&str> = v.split('.').collect();
        match parts[..] {
            [a, b, c] => match (a.parse(), b.parse(), c.parse()) {
                (Ok(a), Ok(b), Ok(c)) => Ok(Some((a, b, c))),
                _ => Err(format!("[whatsapp] version {v:?} is not three numbers")),
            },
            _ => Err(format!(
                "[whatsapp] version {v:?} is not of the form \"2.3000.1012345678\""
            )),
        }
    }

    /// The connector's options (the version was checked at load).
    pub fn options(&self) -> WhatsAppOptions {
        WhatsAppOptions {
            version: self.version().ok().flatten(),
            ws_url: Some(self.ws_url.trim().to_owned()).filter(|u| !u.is_empty()),
            ..WhatsAppOptions::default()
        }
    }
}

impl Config {
    /// Loads the configuration.
    ///
    /// `path` is `--config`: a named file must exist. Without it, `./config.toml`
    /// is read when present and the embedded defaults are used when not. `env`
    /// looks an environment variable up (a closure, so tests need not touch the
    /// process environment).
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

    /// Parses a TOML document.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Reads and parses `path`; `None` when it does not exist.
    fn from_file(path: &Path) -> Result<Option<Self>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
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
        if let Some(dir) = env(ENV_SESSIONS_DIR) {
            if dir.is_empty() {
                return Err(ConfigError::Env {
                    name: ENV_SESSIONS_DIR,
                    value: dir,
                    reason: "it is empty".into(),
                });
            }
            self.sessions.dir = PathBuf::from(dir);
        }
        self.webhook.secret = env(ENV_WEBHOOK_SECRET)
            .as_deref()
            .and_then(WebhookSecret::new);
        Ok(())
    }

    /// Refuses values that parse but make no sense (a zero-length window never
    /// counts anything, a zero backoff reconnects in a busy loop).
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: &str| Err(ConfigError::Invalid(msg.to_owned()));
        if self.sessions.dir.as_os_str().is_empty() {
            return invalid("[sessions] dir is empty");
        }
        for (name, limit, seconds) in [
            (
                "bad_mac",
                self.windows.bad_mac.limit,
                self.windows.bad_mac.seconds,
            ),
            (
                "stream",
                self.windows.stream.limit,
                self.windows.stream.seconds,
            ),
            (
                "cleanups",
                self.windows.cleanups.limit,
                self.windows.cleanups.seconds,
            ),
        ] {
            if limit == 0 || seconds == 0 {
                return invalid(&format!(
                    "[windows.{name}] limit and seconds must be at least 1"
                ));
            }
        }
        for (name, w) in [
            ("per_org", self.connection_budget.per_org.spec()),
            ("global", self.connection_budget.global.spec()),
        ] {
            if w.limit == 0 || w.length.is_zero() {
                return invalid(&format!(
                    "[connection_budget.{name}] limit and seconds must be at least 1"
                ));
            }
        }
        if self.reconnect.initial_ms == 0 || self.reconnect.max_ms < self.reconnect.initial_ms {
            return invalid("[reconnect] needs 0 < initial_ms <= max_ms");
        }
        if self.server.max_in_flight == 0 {
            return invalid("[server] max_in_flight must be at least 1");
        }
        if self.server.request_timeout_seconds <= self.send.wait_seconds {
            return invalid(
                "[server] request_timeout_seconds must exceed [send] wait_seconds \
                 (a send may wait that long for a reconnecting session)",
            );
        }
        if let Err(e) = PhoneRules::new(&self.phone.default_region) {
            return Err(ConfigError::Invalid(format!("[phone] default_region: {e}")));
        }
        if self.sim.qr_count == 0 || self.sim.first_qr_seconds == 0 || self.sim.next_qr_seconds == 0
        {
            return invalid("[sim] qr_count and the QR seconds must be at least 1");
        }
        self.webhook.validate().map_err(ConfigError::Invalid)?;
        self.whatsapp.version().map_err(ConfigError::Invalid)?;
        let ws = self.whatsapp.ws_url.trim();
        if !(ws.is_empty() || ws.starts_with("ws://") || ws.starts_with("wss://")) {
            return invalid("[whatsapp] ws_url must start with ws:// or wss://");
        }
        Ok(())
    }

    /// The actor tree's configuration.
    pub fn supervisor_config(&self) -> SupervisorConfig {
        let mut config = SupervisorConfig::new(&self.sessions.dir);
        config.backups_kept = self.sessions.backups_kept;
        config.bad_mac = self.windows.bad_mac.spec();
        config.stream = self.windows.stream.spec();
        config.cleanups = self.windows.cleanups.spec();
        config.budget = wa_actors::BudgetSpec {
            per_org: self.connection_budget.per_org.spec(),
            global: self.connection_budget.global.spec(),
        };
        config.reconnect = Backoff {
            initial: Duration::from_millis(self.reconnect.initial_ms),
            max: Duration::from_millis(self.reconnect.max_ms),
            ..config.reconnect
        };
        config.send_wait = Duration::from_secs(self.send.wait_seconds);
        config
    }

    /// How phone numbers are read (validated by [`Config::load`]).
    pub fn phone_rules(&self) -> Result<PhoneRules, ConfigError> {
        PhoneRules::new(&self.phone.default_region)
            .map_err(|e| ConfigError::Invalid(format!("[phone] default_region: {e}")))
    }

    /// The limits of the HTTP edge.
    pub fn http_limits(&self) -> crate::http::HttpLimits {
        crate::http::HttpLimits {
            request_timeout: Duration::from_secs(self.server.request_timeout_seconds),
            max_in_flight: self.server.max_in_flight,
        }
    }

    /// The fake phone's QR timing.
    pub fn sim_timing(&self) -> SimTiming {
        SimTiming {
            first_qr: Duration::from_secs(self.sim.first_qr_seconds),
            next_qr: Duration::from_secs(self.sim.next_qr_seconds),
            qr_count: self.sim.qr_count,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_are_the_contract_values() {
        let c = Config::default();
        assert_eq!(c.server.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.server.api_key_file, None);
        assert_eq!(c.server.request_timeout_seconds, 30);
        assert_eq!(c.server.max_in_flight, 256);
        assert_eq!(c.http_limits(), crate::http::HttpLimits::default());
        assert_eq!(c.sessions.dir, PathBuf::from("auth_sessions"));
        assert_eq!(c.sessions.backups_kept, 3);
        assert_eq!(c.connection.kind, ConnectionKind::Whatsapp);
        assert_eq!(
            (c.windows.bad_mac.limit, c.windows.bad_mac.seconds),
            (3, 30)
        );
        assert_eq!((c.windows.stream.limit, c.windows.stream.seconds), (2, 60));
        assert_eq!(
            (c.windows.cleanups.limit, c.windows.cleanups.seconds),
            (3, 3600)
        );
        assert_eq!(c.send.wait_seconds, 20);
        assert_eq!(
            (
                c.connection_budget.per_org.limit,
                c.connection_budget.per_org.seconds
            ),
            (10, 86400)
        );
        assert_eq!(
            (
                c.connection_budget.global.limit,
                c.connection_budget.global.seconds
            ),
            (1000, 3600)
        );
        assert_eq!(
            c.supervisor_config().budget,
            wa_actors::BudgetSpec::default()
        );
        assert_eq!(c.phone.default_region, "CO");
        assert_eq!(c.phone_rules().unwrap().region(), "CO");
        assert_eq!(
            (
                c.sim.first_qr_seconds,
                c.sim.next_qr_seconds,
                c.sim.qr_count
            ),
            (60, 20, 6)
        );
        let sup = c.supervisor_config();
        assert_eq!(sup.bad_mac, WindowSpec::new(3, Duration::from_secs(30)));
        assert_eq!(sup.stream, WindowSpec::new(2, Duration::from_secs(60)));
        assert_eq!(sup.cleanups, WindowSpec::new(3, Duration::from_secs(3600)));
        assert_eq!(sup.send_wait, Duration::from_secs(20));
        assert_eq!(sup.reconnect.initial, Duration::from_secs(1));
        assert_eq!(sup.reconnect.max, Duration::from_secs(60));
    }

    #[test]
    fn without_config_flag_a_missing_default_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("config.toml");
        assert_eq!(
            Config::load_or(None, &absent, no_env).unwrap(),
            Config::default()
        );
        // ...and a present one is read.
        let path = write(&dir, "[sessions]\nbackups_kept = 5\n");
        assert_eq!(
            Config::load_or(None, &path, no_env)
                .unwrap()
                .sessions
                .backups_kept,
            5
        );
    }

    #[test]
    fn an_empty_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "");
        assert_eq!(
            Config::load(Some(&path), no_env).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn file_values_win_over_defaults_and_missing_keys_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            r#"
            [server]
            listen = "0.0.0.0:8080"
            api_key_file = "/run/secrets/wa_key"
            [sessions]
            dir = "/var/lib/wa"
            [connection]
            kind = "sim"
            [windows.stream]
            limit = 4
            [reconnect]
            max_ms = 5000
            [sim]
            qr_count = 2
            "#,
        );
        let c = Config::load(Some(&path), no_env).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(
            c.server.api_key_file,
            Some(PathBuf::from("/run/secrets/wa_key"))
        );
        assert_eq!(c.sessions.dir, PathBuf::from("/var/lib/wa"));
        assert_eq!(c.sessions.backups_kept, 3);
        assert_eq!(c.connection.kind, ConnectionKind::Sim);
        // A window keeps its own default for the key not given.
        assert_eq!((c.windows.stream.limit, c.windows.stream.seconds), (4, 60));
        assert_eq!(c.windows.bad_mac, WindowConfig::default());
        assert_eq!((c.reconnect.initial_ms, c.reconnect.max_ms), (1000, 5000));
        assert_eq!(c.sim_timing().qr_count, 2);
    }

    #[test]
    fn a_missing_named_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = Config::load(Some(&path), no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("nope.toml"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "[server]\nlisten_addr = \"127.0.0.1:1\"\n",
            "[windows.bad_mac]\nlimt = 3\n",
            "[typo]\nx = 1\n",
            "top_level = 1\n",
        ] {
            let path = write(&dir, text);
            let err = Config::load(Some(&path), no_env).unwrap_err();
            assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err}");
            assert!(err.to_string().contains("unknown field"), "{err}");
        }
    }

    #[test]
    fn wrong_types_and_values_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "[server]\nlisten = \"not an address\"\n",
            "[connection]\nkind = \"telegram\"\n",
            "[windows.bad_mac]\nlimit = \"three\"\n",
        ] {
            let path = write(&dir, text);
            assert!(matches!(
                Config::load(Some(&path), no_env),
                Err(ConfigError::Parse { .. })
            ));
        }
        for text in [
            "[windows.bad_mac]\nlimit = 0\n",
            "[windows.stream]\nseconds = 0\n",
            "[reconnect]\ninitial_ms = 5000\nmax_ms = 1000\n",
            "[sim]\nqr_count = 0\n",
            "[connection_budget.global]\nlimit = 0\n",
            "[server]\nmax_in_flight = 0\n",
            "[server]\nrequest_timeout_seconds = 20\n",
            "[phone]\ndefault_region = \"XX\"\n",
        ] {
            let path = write(&dir, text);
            assert!(
                matches!(
                    Config::load(Some(&path), no_env),
                    Err(ConfigError::Invalid(_))
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn port_and_sessions_dir_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "[server]\nlisten = \"0.0.0.0:3000\"\n");
        let env = env_of(&[("PORT", "4010"), ("WA_SESSIONS_DIR", "/tmp/s")]);
        let c = Config::load(Some(&path), env).unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:4010".parse().unwrap());
        assert_eq!(c.sessions.dir, PathBuf::from("/tmp/s"));

        let err = Config::load(Some(&path), env_of(&[("PORT", "http")])).unwrap_err();
        assert!(
            matches!(err, ConfigError::Env { name: "PORT", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_webhook_url_needs_the_secret_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "[webhook]\nurl = \"http://127.0.0.1:8000/wa/events/\"\nmax_attempts = 3\n",
        );
        let err = Config::load(Some(&path), no_env).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("WHATSAPP_WEBHOOK_SECRET"), "{err}");

        let env = env_of(&[("WHATSAPP_WEBHOOK_SECRET", "k3y-never-shown")]);
        let c = Config::load(Some(&path), env).unwrap();
        assert!(c.webhook.enabled());
        assert_eq!(c.webhook.max_attempts, 3);
        assert_eq!(c.webhook.timeout_ms, WebhookConfig::default().timeout_ms);
        assert_eq!(c.webhook.secret, WebhookSecret::new("k3y-never-shown"));
        assert!(!format!("{c:?}").contains("k3y-never-shown"));
    }

    /// The shipped `config.toml` loads, equals the defaults, and spells out every
    /// key the daemon knows (so an operator can see them all in one place).
    #[test]
    fn the_shipped_config_file_has_every_key_with_its_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            Config::load(Some(&path), no_env).unwrap(),
            Config::default()
        );

        let shipped: toml::Table = toml::from_str(&text).unwrap();
        let defaults: toml::Table = toml::from_str(&toml::to_string(&Config::default()).unwrap())
            .expect("defaults serialize");
        fn missing(want: &toml::Table, have: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (key, value) in want {
                let name = format!("{prefix}{key}");
                match (value, have.get(key)) {
                    (toml::Value::Table(w), Some(toml::Value::Table(h))) => {
                        missing(w, h, &format!("{name}."), out)
                    }
                    (_, None) => out.push(name),
                    _ => {}
                }
            }
        }
        let mut absent = Vec::new();
        missing(&defaults, &shipped, "", &mut absent);
        assert!(absent.is_empty(), "config.toml lacks {absent:?}");
        // The one optional key is documented, commented out.
        assert!(text.contains("# api_key_file"));
    }
}
