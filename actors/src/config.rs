//! Everything the actor tree needs to know, with the defaults of CONTRACT §5.

use std::path::PathBuf;
use std::time::Duration;

use crate::budget::BudgetSpec;
use crate::healing::HealingPolicy;
use crate::outbox::lane::LaneSpec;
use crate::window::WindowSpec;

/// Exponential backoff with jitter for reconnects and actor restarts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Each delay is drawn uniformly from `[d·(1−jitter), d]`, so that many sessions
    /// dropped by one network blip do not come back in lockstep.
    pub jitter: f64,
}

impl Backoff {
    /// The delay before attempt `attempt` (0-based), before jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(30));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The delay before attempt `attempt`, with jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        use rand::RngExt;
        let base = self.base_delay(attempt);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return base;
        }
        let keep = rand::rng().random_range((1.0 - jitter)..=1.0);
        base.mul_f64(keep)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

/// Configuration of the supervisor and every org actor.
#[derive(Clone, Debug)]
pub struct SupervisorConfig {
    /// The sessions directory (CONTRACT §7).
    pub sessions_dir: PathBuf,
    /// How many backups to keep per organization.
    pub backups_kept: usize,
    /// The error windows and what a trip leads to (CONTRACT §5, §11).
    pub healing: HealingPolicy,
    /// Automatic cleanups of one org allowed in a period; one more quarantines it.
    pub cleanups: WindowSpec,
    /// The connection-attempt budget (CONTRACT §6).
    pub budget: BudgetSpec,
    /// Reconnect backoff for a session whose connection dropped.
    pub reconnect: Backoff,
    /// Restart backoff for an org actor that crashed.
    pub actor_restart: Backoff,
    /// How long a send waits for a `reconnecting` session to come back.
    pub send_wait: Duration,
    /// The outer bound on any request (the HTTP request timeout): every wait
    /// inside one is derived from it, so an answer always comes before it.
    pub request_timeout: Duration,
    /// The outbox (CONTRACT §10).
    pub outbox: OutboxSpec,
    /// Files sent as media (CONTRACT §14).
    pub media: MediaSpec,
    /// How long a `banned` session waits when WhatsApp gave no expiry.
    pub default_ban: Duration,
    /// How long a graceful shutdown of one connection may take before it is dropped.
    pub shutdown_grace: Duration,
    /// This daemon's name among several sharing one database (CONTRACT §13),
    /// shown in every snapshot; `None` for a daemon on its own.
    pub node_id: Option<String>,
}

impl SupervisorConfig {
    /// The defaults of CONTRACT §5 for a sessions directory.
    pub fn new(sessions_dir: impl Into<PathBuf>) -> Self {
        Self {
            sessions_dir: sessions_dir.into(),
            backups_kept: 3,
            healing: HealingPolicy::default(),
            cleanups: WindowSpec::new(3, Duration::from_secs(3600)),
            budget: BudgetSpec::default(),
            reconnect: Backoff::default(),
            actor_restart: Backoff {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
                jitter: 0.2,
            },
            send_wait: Duration::from_secs(20),
            request_timeout: Duration::from_secs(30),
            outbox: OutboxSpec::default(),
            media: MediaSpec::default(),
            default_ban: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(5),
            node_id: None,
        }
    }
}

impl SupervisorConfig {
    /// How long a request may wait for the supervisor and an org actor: a second
    /// less than the request timeout, so the caller hears why before it gives up.
    pub fn call_timeout(&self) -> Duration {
        self.request_timeout.saturating_sub(Duration::from_secs(1))
    }

    /// How long a compatible send may wait for its message's ack in all.
    pub fn answer_within(&self) -> Duration {
        self.call_timeout()
    }

    /// How long stopping the whole tree may take: each org's connection gets its
    /// grace, in parallel, plus the driver's wait for it.
    pub fn shutdown_bound(&self) -> Duration {
        self.shutdown_grace * 3 + Duration::from_secs(1)
    }

    /// How long handing one org's session over ([`crate::Supervisor::release`])
    /// may take: its actor's stop, and the wait for the supervisor's answer.
    pub fn release_bound(&self) -> Duration {
        self.shutdown_bound() + self.shutdown_grace
    }
}

/// How the outbox delivers (CONTRACT §10, `[outbox]`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutboxSpec {
    /// Average gap between two deliveries of one org, drawn from ±50 % (anti-ban).
    pub min_gap: Duration,
    /// A send and its server ack within this, or the connection is taken for dead.
    pub ack_timeout: Duration,
    /// Attempts per message before it is `failed`.
    pub max_attempts: u32,
    /// How long a message without `expires_at` may wait before it is `expired`.
    pub default_ttl: Duration,
}

impl Default for OutboxSpec {
    fn default() -> Self {
        Self {
            min_gap: Duration::from_millis(1000),
            ack_timeout: Duration::from_secs(20),
            max_attempts: 5,
            default_ttl: Duration::from_secs(86_400),
        }
    }
}

impl OutboxSpec {
    /// What one org's lane needs.
    pub(crate) fn lane(&self, retry: Backoff) -> LaneSpec {
        LaneSpec {
            min_gap: self.min_gap,
            ack_timeout: self.ack_timeout,
            max_attempts: self.max_attempts,
            retry,
        }
    }
}

/// Files sent as media (CONTRACT §14, `[media]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaSpec {
    /// The largest file accepted, in bytes (WhatsApp's own limit for images and
    /// documents sent from WhatsApp Web is of this order).
    pub max_bytes: u64,
}

impl Default for MediaSpec {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: 0.0,
        };
        let delays: Vec<u64> = (0..6).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(b.base_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_inside_its_band() {
        let b = Backoff::default();
        for attempt in 0..8 {
            let base = b.base_delay(attempt);
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d <= base && d >= base.mul_f64(0.8), "{d:?} vs {base:?}");
            }
        }
    }
}
