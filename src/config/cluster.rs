//! `[cluster]`: one daemon among several on one PostgreSQL database (CONTRACT §13,
//! `[store] kind = "postgres"`): its name, and the lease every org is owned by.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::range::{Number, Range};

const TABLE: &str = "cluster";
/// A lease shorter than 3 s cannot be renewed reliably over a network; one longer
/// than 10 minutes leaves a dead node's shops offline that long.
pub const LEASE_SECONDS: Range = Range::new(3, 600);
pub const RENEW_SECONDS: Range = Range::new(1, 300);
pub const TAKEOVER_GAP_MS: Range = Range::new(0, 10_000);
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
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node_id: String::new(),
            lease_seconds: 15,
            renew_seconds: 5,
            takeover_gap_ms: 20,
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
