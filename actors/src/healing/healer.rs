//! The healing decision as a pure state machine: errors in, a step out. No actor, no
//! I/O, no clock of its own (every call takes `now`), so the org actor, the corpus
//! replay and the tests drive the very same object.
//!
//! ```text
//!            trip (restart allowed)              restart_done(now)
//!  Watching ─────────────────────────▶ Restarting ─────────────────▶ Confirming
//!     ▲   │                                 │ trip                   │   │ trip before
//!     │   │ trip (restart_first off,        ▼                        │   │ restarted + confirm
//!     │   │ or restart intensity spent)   Wiping ◀───────────────────┼───┘
//!     │   └──────────────────────────────▶  │                        │ confirm passed:
//!     │                 wiped()             │                        │ as Watching
//!     └─────────────────────────────────────┘◀───────────────────────┘
//! ```

use tokio::time::Instant;

use super::HealingPolicy;
use crate::window::{ErrorWindow, SenderKey, SenderWindow};

/// What the caller must do about a trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Close the connection and open a new one from the same credentials (status
    /// `reconnecting`), then call [`Healer::restart_done`].
    Restart,
    /// Back up, wipe and pair again (CONTRACT §5), unless the org's cleanup intensity
    /// puts it in quarantine; then call [`Healer::wiped`].
    Wipe,
}

/// Which window tripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowKind {
    BadMac,
    Stream,
}

impl WindowKind {
    /// The reason word used in logs, status reasons and backup names.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadMac => "bad_mac",
            Self::Stream => "stream_errors",
        }
    }

    /// The window a reason word names (the inverse of [`WindowKind::as_str`]).
    pub fn parse(word: &str) -> Option<Self> {
        [Self::BadMac, Self::Stream]
            .into_iter()
            .find(|kind| kind.as_str() == word)
    }
}

/// A window reached its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trip {
    pub step: Step,
    pub window: WindowKind,
    /// Events inside the window when it tripped.
    pub events: usize,
    /// Different senders among them; 0 for the stream window (no senders).
    pub senders: usize,
}

/// Where the healer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Counting errors; the next trip restarts, or wipes when restarts are off or spent.
    Watching,
    /// A restart was handed out and is not done yet; a trip now wipes.
    Restarting,
    /// Restarted at `restarted_at`; a trip before `restarted_at + confirm` wipes.
    Confirming { restarted_at: Instant },
    /// A wipe was handed out; every event is ignored until [`Healer::wiped`].
    Wiping,
}

/// One organization's healing decisions (see the module documentation for what each
/// call resets).
#[derive(Clone, Debug)]
pub struct Healer {
    policy: HealingPolicy,
    bad_mac: SenderWindow,
    stream: ErrorWindow,
    /// When the restarts made by healing were done, for the restart intensity.
    restarts: ErrorWindow,
    phase: Phase,
}

impl Healer {
    pub fn new(policy: HealingPolicy) -> Self {
        Self {
            policy,
            bad_mac: SenderWindow::new(policy.bad_mac, policy.distinct_senders),
            stream: ErrorWindow::new(policy.stream),
            restarts: ErrorWindow::new(policy.restarts),
            phase: Phase::Watching,
        }
    }

    pub fn policy(&self) -> &HealingPolicy {
        &self.policy
    }

    /// Where the healer stands at `now` (a confirmation that has run out reads as
    /// `Watching`).
    pub fn phase(&self, now: Instant) -> Phase {
        match self.phase {
            Phase::Confirming { restarted_at } if !self.confirming(restarted_at, now) => {
                Phase::Watching
            }
            phase => phase,
        }
    }

    /// A message from `sender` (a JID or digits) could not be decrypted.
    pub fn on_decrypt_error(&mut self, now: Instant, sender: &str) -> Option<Trip> {
        if self.phase == Phase::Wiping || !self.bad_mac.record(now, SenderKey::of(sender)) {
            return None;
        }
        let events = self.bad_mac.count(now);
        let senders = self.bad_mac.senders(now);
        Some(self.trip(now, WindowKind::BadMac, events, senders))
    }

    /// The server ended the stream with an error that counts (CONTRACT §4). Below the
    /// limit (`None`) the caller reconnects with backoff as before.
    pub fn on_stream_error(&mut self, now: Instant) -> Option<Trip> {
        if self.phase == Phase::Wiping || !self.stream.record(now) {
            return None;
        }
        let events = self.stream.count(now);
        Some(self.trip(now, WindowKind::Stream, events, 0))
    }

    /// The restart handed out by the last trip is done: the new connection from the
    /// same credentials is up. The confirmation period starts now and the restart
    /// counts towards the restart intensity. Does nothing in any other phase.
    pub fn restart_done(&mut self, now: Instant) {
        if self.phase == Phase::Restarting {
            self.restarts.record(now);
            self.phase = Phase::Confirming { restarted_at: now };
        }
    }

    /// The wipe handed out by the last trip failed, or its end was lost with the actor
    /// that asked for it (a crash), so the store may still be in place: watch it again
    /// (the windows start afresh, the restart history is kept), so that the next trip
    /// heals by the usual rules instead of being ignored for good. Does nothing in any
    /// other phase.
    pub fn wipe_failed(&mut self) {
        if self.phase == Phase::Wiping {
            self.phase = Phase::Watching;
        }
    }

    /// The session was wiped (a new store, a new pairing): forget everything,
    /// restart history included. Also the way back from quarantine.
    pub fn wiped(&mut self) {
        self.bad_mac.clear();
        self.stream.clear();
        self.restarts.clear();
        self.phase = Phase::Watching;
    }

    fn trip(&mut self, now: Instant, window: WindowKind, events: usize, senders: usize) -> Trip {
        let step = self.next_step(now);
        // Both windows start afresh: after a restart only new evidence counts, and
        // after a wipe nothing of the old store does.
        self.bad_mac.clear();
        self.stream.clear();
        self.phase = match step {
            Step::Restart => Phase::Restarting,
            Step::Wipe => Phase::Wiping,
        };
        Trip {
            step,
            window,
            events,
            senders,
        }
    }

    fn next_step(&mut self, now: Instant) -> Step {
        if !self.policy.restart_first {
            return Step::Wipe;
        }
        match self.phase {
            Phase::Restarting => Step::Wipe,
            Phase::Confirming { restarted_at } if self.confirming(restarted_at, now) => Step::Wipe,
            _ if self.restarts.count(now) >= self.policy.restarts.limit => Step::Wipe,
            _ => Step::Restart,
        }
    }

    /// Same edge rule as the windows: `confirm` after the restart it has run out.
    fn confirming(&self, restarted_at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(restarted_at) < self.policy.confirm
    }
}

#[cfg(test)]
#[path = "healer_tests.rs"]
mod tests;
