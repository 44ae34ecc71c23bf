//! `[send]`. The default wait is the actor crate's ([`SupervisorConfig::new`]'s
//! `send_wait`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;

use super::range::{Number, Range};

const TABLE: &str = "send";
/// 0 answers at once; the upper bound stays below the longest request timeout.
pub const WAIT_SECONDS: Range = Range::new(0, 300);

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SendConfig {
    /// How long a send waits for a `reconnecting` session to come back.
    pub wait_seconds: u64,
}

impl Default for SendConfig {
    fn default() -> Self {
        Self {
            wait_seconds: super::actor_defaults().send_wait.as_secs(),
        }
    }
}

impl SendConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![Number::new(
            TABLE,
            "wait_seconds",
            self.wait_seconds,
            WAIT_SECONDS,
        )]
    }

    /// Sets what this table configures of the actor tree.
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.send_wait = Duration::from_secs(self.wait_seconds);
    }
}
