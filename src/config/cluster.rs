//! `[cluster]`: one daemon among several on one PostgreSQL database (CONTRACT §13,
//! `[store] kind = "postgres"`): its name, and the lease every org is owned by.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_actors::SupervisorConfig;

use super::ConfigError;
use super::range::{Number, Range};

const TABLE: &str = "cluster";
/// A lease shorter than 3 s cannot be renewed reliably over a network; one longer
/// than 10 minutes leaves a dead node's shops offline that long.
pub const LEASE_SECONDS: Range = Range::new(3, 600);
pub const RENEW_SECONDS: Range = Range::new(1, 300);
pub const TAKEOVER_GAP_MS: Range = Range::new(0, 10_000);
pub const STOP_GRACE_MS: Range = Range::new(100, 10_000);
/// Kept in a lease beyond the renewal period and the stop, for the renewal's own
/// round trip and the margin of the local deadline.
const LEASE_SLACK: Duration = Duration::from_secs(2);
/// The longest node id (it is shown and stored with every lease).
pub const NODE_ID_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// This node's name; empty: the host name and a random suffix.
    pub node_id: String,
    /// An org's lease lasts this long without renewal: a node that stops renewing
    /// (dead, paused, cut off) loses its orgs after it.
    pub lease_seconds: u64,
    /// How often the leases are renewed (at most half the lease).
    pub renew_seconds: u64,
    /// Average gap between two sessions taken over at once from a dead node.
    pub takeover_gap_ms: u64,
    /// How long a session's connection gets to close when this node stops driving
    /// it (lease lost or about to run out, handover, shutdown).
    pub stop_grace_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            lease_seconds: 15,
            renew_seconds: 5,
            takeover_gap_ms: 20,
            stop_grace_ms: 1500,
        }
    }
}

impl ClusterConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![
            Number::new(TABLE, "lease_seconds", self.lease_seconds, LEASE_SECONDS),
            Number::new(TABLE, "renew_seconds", self.renew_seconds, RENEW_SECONDS),
            Number::new(
                TABLE,
                "takeover_gap_ms",
                self.takeover_gap_ms,
                TAKEOVER_GAP_MS,
            ),
            Number::new(TABLE, "stop_grace_ms", self.stop_grace_ms, STOP_GRACE_MS),
        ]
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.renew_seconds * 2 > self.lease_seconds {
            return Err(ConfigError::Invalid(format!(
                "[cluster] renew_seconds = {} must be at most half of lease_seconds = {} \
                 (a node stops its sessions when a renewal fails, and must be done before \
                 the lease runs out)",
                self.renew_seconds, self.lease_seconds
            )));
        }
        let needed = self.renew() + self.stop_bound() + LEASE_SLACK;
        if self.lease() < needed {
            return Err(ConfigError::Invalid(format!(
                "[cluster] lease_seconds = {} must be at least {} s: renew_seconds ({}) plus \
                 the {} ms a session may take to stop (with stop_grace_ms = {}) plus {} s, \
                 so that a node whose renewals stop answering has stopped its sessions \
                 before any other node can take them",
                self.lease_seconds,
                needed.as_secs_f64().ceil(),
                self.renew_seconds,
                self.stop_bound().as_millis(),
                self.stop_grace_ms,
                LEASE_SLACK.as_secs()
            )));
        }
        let id = self.node_id.trim();
        if id.chars().count() > NODE_ID_MAX
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::Invalid(format!(
                "[cluster] node_id must be up to {NODE_ID_MAX} letters, digits, '-', '_' or '.'"
            )));
        }
        Ok(())
    }

    /// This node's id: the configured one, or the host name with a random suffix
    /// (a restarted node is a new node; its old leases simply expire).
    pub fn node_id(&self) -> String {
        let id = self.node_id.trim();
        if !id.is_empty() {
            return id.to_owned();
        }
        let host: String = host_name()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            .take(NODE_ID_MAX - 7)
            .collect();
        let host = if host.is_empty() { "node".into() } else { host };
        use rand::RngExt;
        format!("{host}-{:06x}", rand::rng().random_range(0..0x100_0000u32))
    }

    pub fn lease(&self) -> Duration {
        Duration::from_secs(self.lease_seconds)
    }

    pub fn renew(&self) -> Duration {
        Duration::from_secs(self.renew_seconds)
    }

    pub fn takeover_gap(&self) -> Duration {
        Duration::from_millis(self.takeover_gap_ms)
    }

    /// The grace of one connection's close.
    pub fn stop_grace(&self) -> Duration {
        Duration::from_millis(self.stop_grace_ms)
    }

    /// The longest an org's session takes to stop with this grace (its actor's
    /// stop and the answer, [`SupervisorConfig::release_bound`]).
    pub fn stop_bound(&self) -> Duration {
        let mut actors = SupervisorConfig::new("");
        actors.shutdown_grace = self.stop_grace();
        actors.release_bound()
    }

    /// Sets the actors' stop grace to this node's.
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.shutdown_grace = self.stop_grace();
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_fit_in_the_lease_and_ids_are_plain() {
        assert!(ClusterConfig::default().validate().is_ok());
        let tight = ClusterConfig {
            lease_seconds: 15,
            renew_seconds: 8,
            ..ClusterConfig::default()
        };
        assert!(tight.validate().unwrap_err().to_string().contains("half"));
        // 4 × grace + 1 s to stop, the renewal period and 2 s must fit in the lease.
        assert_eq!(
            ClusterConfig::default().stop_bound(),
            Duration::from_secs(7)
        );
        for (lease, renew, grace_ms, ok) in [
            (15, 5, 1500, true),
            (13, 5, 1500, false),
            (15, 5, 2000, false),
            (6, 2, 250, true),
            (6, 2, 500, false),
            (30, 5, 5000, true),
        ] {
            let c = ClusterConfig {
                lease_seconds: lease,
                renew_seconds: renew,
                stop_grace_ms: grace_ms,
                ..ClusterConfig::default()
            };
            match c.validate() {
                Ok(()) => assert!(ok, "{c:?} accepted"),
                Err(e) => {
                    assert!(!ok, "{c:?}: {e}");
                    assert!(e.to_string().contains("lease_seconds"), "{e}");
                }
            }
        }
        for bad in ["a b", "x/y", &"n".repeat(65)] {
            let c = ClusterConfig {
                node_id: bad.into(),
                ..ClusterConfig::default()
            };
            assert!(c.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_node_id_is_configured_or_made_unique() {
        let named = ClusterConfig {
            node_id: " optics-1 ".into(),
            ..ClusterConfig::default()
        };
        assert_eq!(named.node_id(), "optics-1");
        let a = ClusterConfig::default().node_id();
        let b = ClusterConfig::default().node_id();
        assert_ne!(a, b, "two default ids differ");
        assert!(a.len() <= NODE_ID_MAX && !a.is_empty(), "{a}");
        assert!(
            ClusterConfig {
                node_id: a.clone(),
                ..ClusterConfig::default()
            }
            .validate()
            .is_ok()
        );
    }
}
