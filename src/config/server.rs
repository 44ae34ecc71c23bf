//! `[server]`: the HTTP listener, the API key file, and the limits of the HTTP edge.
//!
//! The defaults belong to what they configure: the router's [`HttpLimits`] and the
//! server's [`ConnectionLimits`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::range::{Number, Range};
use crate::http::HttpLimits;
use crate::server::ConnectionLimits;
use crate::server::open_files;

const TABLE: &str = "server";
pub const REQUEST_TIMEOUT_SECONDS: Range = Range::new(1, 600);
pub const MAX_IN_FLIGHT: Range = Range::new(1, 65_536);
pub const HEADER_READ_TIMEOUT_SECONDS: Range = Range::new(1, 300);
pub const IDLE_TIMEOUT_SECONDS: Range = Range::new(1, 3_600);
pub const MAX_CONNECTIONS: Range =
    Range::new(open_files::MIN_CONNECTIONS, open_files::MAX_CONNECTIONS);

/// How long a stop waits for a request in flight beyond its own timeout.
const DRAIN_MARGIN: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; port 3000 as the Node server it replaces. Port 0
    /// takes any free port (the `listening` log line names it).
    pub listen: SocketAddr,
    /// A file holding the API key, used when `WHATSAPP_SERVER_API_KEY` is not set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_file: Option<PathBuf>,
    /// A request unanswered after this many seconds is answered 504.
    pub request_timeout_seconds: u64,
    /// Requests handled at once; more are shed with 503 and `Retry-After`.
    pub max_in_flight: usize,
    /// From a request's first byte to the end of its head; then the connection
    /// is closed.
    pub header_read_timeout_seconds: u64,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout_seconds: u64,
    /// Connections open at once; unset: half the open-file limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let http = HttpLimits::default();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            api_key_file: None,
            request_timeout_seconds: http.request_timeout.as_secs(),
            max_in_flight: http.max_in_flight,
            header_read_timeout_seconds: ConnectionLimits::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
            idle_timeout_seconds: ConnectionLimits::DEFAULT_IDLE_TIMEOUT.as_secs(),
            max_connections: None,
        }
    }
}

impl ServerConfig {
    pub fn numbers(&self) -> Vec<Number> {
        let mut numbers = vec![
            Number::new(
                TABLE,
                "request_timeout_seconds",
                self.request_timeout_seconds,
                REQUEST_TIMEOUT_SECONDS,
            ),
            Number::new(TABLE, "max_in_flight", self.max_in_flight, MAX_IN_FLIGHT),
            Number::new(
                TABLE,
                "header_read_timeout_seconds",
                self.header_read_timeout_seconds,
                HEADER_READ_TIMEOUT_SECONDS,
            ),
            Number::new(
                TABLE,
                "idle_timeout_seconds",
                self.idle_timeout_seconds,
                IDLE_TIMEOUT_SECONDS,
            ),
        ];
        if let Some(max) = self.max_connections {
            numbers.push(Number::new(TABLE, "max_connections", max, MAX_CONNECTIONS));
        }
        numbers
    }

    /// The actor tree answers every request within the request timeout: its inner
    /// waits are derived from it.
    pub fn apply(&self, actors: &mut wa_actors::SupervisorConfig) {
        actors.request_timeout = Duration::from_secs(self.request_timeout_seconds);
    }

    /// The router's limits.
    pub fn http_limits(&self) -> HttpLimits {
        HttpLimits {
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            max_in_flight: self.max_in_flight,
        }
    }

    /// The server's limits for a process allowed `open_files` descriptors. A
    /// `max_connections` that would leave the sessions too few descriptors is
    /// refused here, at start, rather than met as `Too many open files` later.
    pub fn connection_limits(&self, open_files: u64) -> Result<ConnectionLimits, ConfigError> {
        let max_connections = match self.max_connections {
            Some(max) if !open_files::fits(max, open_files) => {
                return Err(ConfigError::Invalid(format!(
                    "[server] max_connections = {max} leaves fewer than {} of the {open_files} \
                     open files (RLIMIT_NOFILE) to the sessions; lower it, or raise the limit \
                     (LimitNOFILE= in the systemd unit)",
                    open_files::RESERVED
                )));
            }
            Some(max) => max,
            None => open_files::default_max_connections(open_files),
        };
        Ok(ConnectionLimits {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            max_connections,
            drain: Duration::from_secs(self.request_timeout_seconds) + DRAIN_MARGIN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_limits_they_configure() {
        let c = ServerConfig::default();
        assert_eq!(c.listen, "127.0.0.1:3000".parse().unwrap());
        assert_eq!(c.http_limits(), HttpLimits::default());
        let limits = c.connection_limits(1024).unwrap();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.max_connections, 512, "half the open-file limit");
    }

    #[test]
    fn max_connections_must_leave_descriptors_to_the_sessions() {
        let c = ServerConfig {
            max_connections: Some(1000),
            ..ServerConfig::default()
        };
        let err = c.connection_limits(1024).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid configuration: [server] max_connections = 1000 leaves fewer than 64 of the \
             1024 open files (RLIMIT_NOFILE) to the sessions; lower it, or raise the limit \
             (LimitNOFILE= in the systemd unit)"
        );
        assert_eq!(c.connection_limits(65_536).unwrap().max_connections, 1000);
    }
}
