//! `[sessions]`: the sessions directory (CONTRACT §7), the backups kept, and the
//! pace of resuming stored sessions at start-up.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;

use super::ConfigError;
use super::range::{Number, Range};

const TABLE: &str = "sessions";
/// At least one: a cleanup must never delete the only copy of a session.
pub const BACKUPS_KEPT: Range = Range::new(1, 100);
pub const RESUME_GAP_MS: Range = Range::new(0, 60_000);

/// The default sessions directory (the Node server's).
pub const DEFAULT_DIR: &str = "auth_sessions";
/// Average gap between two stored sessions resumed at start-up.
const DEFAULT_RESUME_GAP_MS: u64 = 250;

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
            dir: PathBuf::from(DEFAULT_DIR),
            backups_kept: super::actor_defaults().backups_kept,
            resume_gap_ms: DEFAULT_RESUME_GAP_MS,
        }
    }
}

impl SessionsConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![
            Number::new(TABLE, "backups_kept", self.backups_kept, BACKUPS_KEPT),
            Number::new(TABLE, "resume_gap_ms", self.resume_gap_ms, RESUME_GAP_MS),
        ]
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dir.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("[sessions] dir is empty".into()));
        }
        Ok(())
    }

    /// Sets what this table configures of the actor tree.
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.sessions_dir = self.dir.clone();
        actors.backups_kept = self.backups_kept;
    }

    pub fn resume_gap(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.resume_gap_ms)
    }
}
