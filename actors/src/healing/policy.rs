//! What the healer is told: the two windows, restart before wipe, and how many
//! restarts it may make (CONTRACT §5 and §11).

use std::time::Duration;

use crate::WindowSpec;

/// The healing policy of one organization. [`Default`] is CONTRACT §11's;
/// [`HealingPolicy::old_rule`] is the Node server's, kept for comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealingPolicy {
    /// `[windows.bad_mac] limit`, `seconds`: undecryptable messages that trip.
    pub bad_mac: WindowSpec,
    /// `[windows.bad_mac] distinct_senders`: ... and how many different senders they
    /// must come from. 1 is the old rule (any senders).
    pub distinct_senders: usize,
    /// `[windows.stream] limit`, `seconds`: stream errors sent by the server that trip.
    pub stream: WindowSpec,
    /// `[healing] restart_first`: the first trip restarts the connection from the same
    /// credentials instead of wiping.
    pub restart_first: bool,
    /// `[healing] confirm_seconds`: a trip this soon after a restart wipes.
    pub confirm: Duration,
    /// `[healing.restarts] limit`, `seconds`: restart intensity. With `limit` restarts
    /// already inside the period, the next trip wipes. `limit = 0` never restarts.
    pub restarts: WindowSpec,
}

impl Default for HealingPolicy {
    fn default() -> Self {
        Self {
            bad_mac: WindowSpec::new(3, Duration::from_secs(30)),
            distinct_senders: 2,
            stream: WindowSpec::new(2, Duration::from_secs(60)),
            restart_first: true,
            confirm: Duration::from_secs(900),
            // Why 3 a day: a restart only escalates by itself when the next trip comes
            // within `confirm` (15 min), so trouble that a restart cures for a while and
            // that comes back later would restart forever, every 15–20 min. Four trips in
            // one day that each needed a restart mean the store is not healthy, and the
            // fourth wipes (after about an hour in the fastest such loop). A shop's
            // ordinary trips (an offline backlog after a night with the router off) come
            // once or twice a day and stay restarts. Restarts draw nothing from the
            // connection budget, so this bound is what limits them.
            restarts: WindowSpec::new(3, Duration::from_secs(24 * 3600)),
        }
    }
}

impl HealingPolicy {
    /// The old server's rule: 3 Bad MACs in 30 s from anyone, 2 stream errors in
    /// 60 s, and every trip wipes.
    pub fn old_rule() -> Self {
        Self {
            bad_mac: WindowSpec::new(3, Duration::from_secs(30)),
            distinct_senders: 1,
            stream: WindowSpec::new(2, Duration::from_secs(60)),
            restart_first: false,
            confirm: Duration::ZERO,
            restarts: WindowSpec::new(0, Duration::from_secs(1)),
        }
    }

    /// Checks the keys this policy adds to the configuration (the ranges in the module
    /// documentation); the windows' own `limit` and `seconds` are checked where they
    /// were before.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.distinct_senders < 1 || self.distinct_senders > self.bad_mac.limit.max(1) {
            return Err(PolicyError::DistinctSenders {
                got: self.distinct_senders,
                limit: self.bad_mac.limit,
            });
        }
        if self.restart_first {
            let confirm = self.confirm.as_secs();
            if !(CONFIRM_SECONDS.0..=CONFIRM_SECONDS.1).contains(&confirm) {
                return Err(PolicyError::Confirm(confirm));
            }
            if self.restarts.limit > RESTARTS_LIMIT_MAX {
                return Err(PolicyError::RestartsLimit(self.restarts.limit));
            }
            let period = self.restarts.length.as_secs();
            if period < confirm || period > RESTARTS_SECONDS_MAX {
                return Err(PolicyError::RestartsPeriod { period, confirm });
            }
        }
        Ok(())
    }
}

/// `[healing] confirm_seconds`: at least a minute, so a reconnect's backoff cannot hide
/// a repeat; at most a day.
pub const CONFIRM_SECONDS: (u64, u64) = (60, 86_400);
/// `[healing.restarts] limit`: at most this many.
pub const RESTARTS_LIMIT_MAX: usize = 100;
/// `[healing.restarts] seconds`: at most a week.
pub const RESTARTS_SECONDS_MAX: u64 = 7 * 86_400;

/// A healing policy the daemon must refuse to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "[windows.bad_mac] distinct_senders = {got}: must be from 1 to [windows.bad_mac] limit ({limit})"
    )]
    DistinctSenders { got: usize, limit: usize },
    #[error("[healing] confirm_seconds = {0}: must be from 60 to 86400")]
    Confirm(u64),
    #[error("[healing.restarts] limit = {0}: must be from 0 to 100")]
    RestartsLimit(usize),
    #[error(
        "[healing.restarts] seconds = {period}: must be from [healing] confirm_seconds ({confirm}) to 604800"
    )]
    RestartsPeriod { period: u64, confirm: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_and_the_old_rule_are_valid() {
        assert_eq!(HealingPolicy::default().validate(), Ok(()));
        assert_eq!(HealingPolicy::old_rule().validate(), Ok(()));
    }

    #[test]
    fn each_out_of_range_key_is_named() {
        let base = HealingPolicy::default();
        let cases: &[(&str, HealingPolicy, &str)] = &[
            (
                "no senders",
                HealingPolicy {
                    distinct_senders: 0,
                    ..base
                },
                "distinct_senders = 0",
            ),
            (
                "more senders than events",
                HealingPolicy {
                    distinct_senders: 4,
                    ..base
                },
                "distinct_senders = 4",
            ),
            (
                "confirm too short",
                HealingPolicy {
                    confirm: Duration::from_secs(59),
                    ..base
                },
                "confirm_seconds = 59",
            ),
            (
                "confirm too long",
                HealingPolicy {
                    confirm: Duration::from_secs(86_401),
                    ..base
                },
                "confirm_seconds = 86401",
            ),
            (
                "too many restarts",
                HealingPolicy {
                    restarts: WindowSpec::new(101, base.restarts.length),
                    ..base
                },
                "limit = 101",
            ),
            (
                "period shorter than confirm",
                HealingPolicy {
                    restarts: WindowSpec::new(3, Duration::from_secs(600)),
                    ..base
                },
                "seconds = 600",
            ),
            (
                "period over a week",
                HealingPolicy {
                    restarts: WindowSpec::new(3, Duration::from_secs(604_801)),
                    ..base
                },
                "seconds = 604801",
            ),
        ];
        for (name, policy, needle) in cases {
            let err = policy.validate().expect_err(name).to_string();
            assert!(err.contains(needle), "{name}: {err}");
        }
    }

    #[test]
    fn restart_keys_do_not_matter_without_restart_first() {
        let policy = HealingPolicy {
            restart_first: false,
            confirm: Duration::ZERO,
            restarts: WindowSpec::new(1000, Duration::ZERO),
            ..HealingPolicy::default()
        };
        assert_eq!(policy.validate(), Ok(()));
    }
}
