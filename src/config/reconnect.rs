//! `[reconnect]`: backoff of a paired session whose connection dropped. Defaults
//! are the actor crate's ([`SupervisorConfig::new`]'s `reconnect`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;

use super::ConfigError;
use super::range::{Number, Range};

const TABLE: &str = "reconnect";
pub const INITIAL_MS: Range = Range::new(10, 60_000);
/// An hour at most: a longer wait leaves a shop offline for no reason.
pub const MAX_MS: Range = Range::new(10, 3_600_000);

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    pub initial_ms: u64,
    pub max_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        let backoff = super::actor_defaults().reconnect;
        Self {
            initial_ms: backoff.initial.as_millis() as u64,
            max_ms: backoff.max.as_millis() as u64,
        }
    }
}

impl ReconnectConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![
            Number::new(TABLE, "initial_ms", self.initial_ms, INITIAL_MS),
            Number::new(TABLE, "max_ms", self.max_ms, MAX_MS),
        ]
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_ms < self.initial_ms {
            return Err(ConfigError::Invalid(format!(
                "[reconnect] max_ms = {} is below initial_ms = {}",
                self.max_ms, self.initial_ms
            )));
        }
        Ok(())
    }

    /// Sets what this table configures of the actor tree (the jitter stays the
    /// actor crate's).
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.reconnect.initial = Duration::from_millis(self.initial_ms);
        actors.reconnect.max = Duration::from_millis(self.max_ms);
    }
}
