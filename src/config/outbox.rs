//! `[outbox]`: how accepted messages are delivered (CONTRACT §10). Defaults are
//! the actor crate's ([`OutboxSpec`](wa_actors::OutboxSpec)).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;

use super::range::{Number, Range};

const TABLE: &str = "outbox";
/// Anti-ban pacing: 0 (tests, benchmarks) to a minute between two deliveries.
pub const MIN_GAP_MS: Range = Range::new(0, 60_000);
/// Long enough for a slow network, short enough that a zombie is found soon.
pub const ACK_TIMEOUT_SECONDS: Range = Range::new(1, 600);
pub const MAX_ATTEMPTS: Range = Range::new(1, 100);
/// A minute to 30 days.
pub const DEFAULT_TTL_SECONDS: Range = Range::new(60, 30 * 86_400);

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Average gap between two deliveries of one organization (±50 % jitter).
    pub min_gap_ms: u64,
    /// No server ack within this: the connection is taken for dead and the message
    /// is sent again, with its id, on the next one.
    pub ack_timeout_seconds: u64,
    /// Attempts per message before it is `failed`.
    pub max_attempts: u32,
    /// Expiry of a message accepted without `expires_at` or `ttl_seconds`.
    pub default_ttl_seconds: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        let spec = super::actor_defaults().outbox;
        Self {
            min_gap_ms: spec.min_gap.as_millis() as u64,
            ack_timeout_seconds: spec.ack_timeout.as_secs(),
            max_attempts: spec.max_attempts,
            default_ttl_seconds: spec.default_ttl.as_secs(),
        }
    }
}

impl OutboxConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![
            Number::new(TABLE, "min_gap_ms", self.min_gap_ms, MIN_GAP_MS),
            Number::new(
                TABLE,
                "ack_timeout_seconds",
                self.ack_timeout_seconds,
                ACK_TIMEOUT_SECONDS,
            ),
            Number::new(TABLE, "max_attempts", self.max_attempts, MAX_ATTEMPTS),
            Number::new(
                TABLE,
                "default_ttl_seconds",
                self.default_ttl_seconds,
                DEFAULT_TTL_SECONDS,
            ),
        ]
    }

    /// Sets what this table configures of the actor tree.
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.outbox.min_gap = Duration::from_millis(self.min_gap_ms);
        actors.outbox.ack_timeout = Duration::from_secs(self.ack_timeout_seconds);
        actors.outbox.max_attempts = self.max_attempts;
        actors.outbox.default_ttl = Duration::from_secs(self.default_ttl_seconds);
    }
}
