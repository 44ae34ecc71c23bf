//! `[healing]` and `[healing.restarts]`: restart before wipe (CONTRACT §11). The
//! defaults and the checks of how the keys fit together are the actor crate's
//! ([`HealingPolicy`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;
use wa_actors::healing::{
    CONFIRM_SECONDS, HealingPolicy, RESTARTS_LIMIT_MAX, RESTARTS_SECONDS_MAX,
};

use super::ConfigError;
use super::range::{Number, Range};

const TABLE: &str = "healing";
const RESTARTS: &str = "healing.restarts";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealingConfig {
    /// The first trip of a window restarts the connection from the same
    /// credentials; only a trip within `confirm_seconds` of that restart wipes.
    pub restart_first: bool,
    pub confirm_seconds: u64,
    pub restarts: RestartsConfig,
}

/// `[healing.restarts]`: restart intensity.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartsConfig {
    pub limit: usize,
    pub seconds: u64,
}

fn defaults() -> HealingPolicy {
    super::actor_defaults().healing
}

impl Default for HealingConfig {
    fn default() -> Self {
        let policy = defaults();
        Self {
            restart_first: policy.restart_first,
            confirm_seconds: policy.confirm.as_secs(),
            restarts: RestartsConfig::default(),
        }
    }
}

impl Default for RestartsConfig {
    fn default() -> Self {
        let policy = defaults();
        Self {
            limit: policy.restarts.limit,
            seconds: policy.restarts.length.as_secs(),
        }
    }
}

impl HealingConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![
            Number::new(
                TABLE,
                "confirm_seconds",
                self.confirm_seconds,
                Range::new(CONFIRM_SECONDS.0, CONFIRM_SECONDS.1),
            ),
            Number::new(
                RESTARTS,
                "limit",
                self.restarts.limit,
                Range::new(0, RESTARTS_LIMIT_MAX as u64),
            ),
            Number::new(
                RESTARTS,
                "seconds",
                self.restarts.seconds,
                Range::new(CONFIRM_SECONDS.0, RESTARTS_SECONDS_MAX),
            ),
        ]
    }

    /// Sets what these tables configure of the actor tree (the windows themselves
    /// come from `[windows.*]`).
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.healing.restart_first = self.restart_first;
        actors.healing.confirm = Duration::from_secs(self.confirm_seconds);
        actors.healing.restarts = wa_actors::WindowSpec::new(
            self.restarts.limit,
            Duration::from_secs(self.restarts.seconds),
        );
    }

    /// How the keys fit together with `[windows.bad_mac]` (one message naming the key).
    pub fn validate(policy: &HealingPolicy) -> Result<(), ConfigError> {
        policy
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}
