//! `[media]`: files sent as WhatsApp media (CONTRACT §14). Defaults are the actor
//! crate's ([`MediaSpec`](wa_actors::MediaSpec)).

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;

use super::range::{Number, Range};

const TABLE: &str = "media";
/// 1 KiB to 100 MiB: WhatsApp refuses larger files anyway, and each upload in
/// flight may hold its whole file in memory while it is sent.
pub const MAX_BYTES: Range = Range::new(1024, 100 * 1024 * 1024);

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The largest file `POST /api/send-media` accepts; a larger one is a 413.
    pub max_bytes: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_bytes: super::actor_defaults().media.max_bytes,
        }
    }
}

impl MediaConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![Number::new(TABLE, "max_bytes", self.max_bytes, MAX_BYTES)]
    }

    /// Sets what this table configures of the actor tree.
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.media.max_bytes = self.max_bytes;
    }
}
