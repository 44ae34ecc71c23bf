//! Replays a [`Trace`] through a [`Healer`] in virtual time, with a small model of what
//! the org actor does between the healer's decisions: reconnect after a drop with its
//! backoff, restart when told, stop at a wipe.
//!
//! The model (the actor's behaviour, without jitter so that a replay is exact):
//! - a connection is up until a stream error, a network drop, a 515, a 429/503 or a
//!   heal ends it; then it reconnects after `reconnect.base_delay(attempt)` (1 s, 2 s,
//!   4 s … 60 s), where `attempt` counts the backoffs since the last connect: each
//!   failed attempt (the network still down) backs off once more, and a connect resets it;
//! - a 515 reconnects at once; a `Restart` step is up again `restart_takes` later
//!   (shutdown and connect), and only then is [`Healer::restart_done`] called. Neither
//!   is a backoff: when that connect fails, the backoff goes on from where it stood;
//! - connecting takes no time and succeeds whenever the network is up; undecryptable
//!   messages that waited at the server arrive right after it, in order; those behind
//!   a trip that closes the connection again reached the old connection and are gone;
//! - a `Wipe` step ends the replay (nothing arrives until the shop pairs again).

use std::time::Duration;

use tokio::time::Instant;

use super::trace::{Delivery, Expect, Scheduled, Trace, WorldEvent};
use super::{Healer, HealingPolicy, Step, Trip};
use crate::Backoff;

/// What the replay assumes of the org actor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DaemonModel {
    /// Reconnect backoff; only its base delays are used (no jitter).
    pub reconnect: Backoff,
    /// From a `Restart` step to the restarted connection being up.
    pub restart_takes: Duration,
}

impl Default for DaemonModel {
    fn default() -> Self {
        Self {
            reconnect: Backoff::default(),
            restart_takes: Duration::from_secs(2),
        }
    }
}

/// What happened to the session in one replay.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Outcome {
    /// When the session was wiped (since the start of the trace).
    pub wiped_at: Option<Duration>,
    /// When the session received its first error (undecryptable or stream error).
    pub first_error_at: Option<Duration>,
    /// Restarts made by healing.
    pub restarts: usize,
    /// Every trip, with its time.
    pub trips: Vec<(Duration, Trip)>,
    /// Errors the session received (and the healer was told about).
    pub errors: usize,
}

impl Outcome {
    /// From the first error to the wipe.
    pub fn time_to_wipe(&self) -> Option<Duration> {
        Some(self.wiped_at?.saturating_sub(self.first_error_at?))
    }
}

/// Replays `trace` with `policy`.
pub fn replay(trace: &Trace, policy: HealingPolicy, model: &DaemonModel) -> Outcome {
    let mut run = Run {
        healer: Healer::new(policy),
        model: *model,
        t0: Instant::now(),
        link: Link::Up,
        attempt: 0,
        network_down_until: Duration::ZERO,
        restart_pending: false,
        waiting: Vec::new(),
        heal_restarts: Vec::new(),
        outcome: Outcome::default(),
    };
    let mut events = trace.timeline().peekable();
    while run.outcome.wiped_at.is_none() {
        let next_event = events.peek().map(|e| e.at);
        let next_retry = match run.link {
            Link::Down { retry_at } if retry_at <= trace.end => Some(retry_at),
            _ => None,
        };
        match (next_retry, next_event) {
            (None, None) => break,
            // A reconnect due at the same time as an event comes first.
            (Some(retry), event) if event.is_none_or(|e| retry <= e) => run.retry(retry),
            _ => {
                let event = events.next().expect("an event is due");
                run.event(event);
            }
        }
    }
    run.outcome
}

/// Whether a replay's outcome is what the trace's label asks of the new policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// A benign trace was wiped.
    pub false_wipe: bool,
    /// A corrupt trace was not wiped, or later than its bound.
    pub missed_heal: bool,
}

/// Judges `outcome` against the trace's `expect:` label (whichever policy made it).
pub fn verdict(trace: &Trace, outcome: &Outcome) -> Verdict {
    match trace.expect {
        Expect::NoWipe => Verdict {
            false_wipe: outcome.wiped_at.is_some(),
            missed_heal: false,
        },
        Expect::WipeWithin(bound) => Verdict {
            false_wipe: false,
            missed_heal: outcome.time_to_wipe().is_none_or(|t| t > bound),
        },
    }
}

/// Every label of `trace` that the outcomes break: `expect` and `restarts` for the new
/// policy, `old_rule` for the old one. Empty when all hold.
pub fn broken_labels(trace: &Trace, new: &Outcome, old: &Outcome) -> Vec<String> {
    let mut broken = Vec::new();
    let v = verdict(trace, new);
    if v.false_wipe {
        broken.push(format!("expect: no_wipe, but wiped at {:?}", new.wiped_at));
    }
    if v.missed_heal {
        broken.push(format!(
            "expect: {:?}, but time to wipe was {:?}",
            trace.expect,
            new.time_to_wipe()
        ));
    }
    if trace.old_rule_wipes != old.wiped_at.is_some() {
        broken.push(format!(
            "old_rule: {}, but the old rule wiped at {:?}",
            if trace.old_rule_wipes {
                "wipe"
            } else {
                "no_wipe"
            },
            old.wiped_at
        ));
    }
    if let Some(restarts) = trace.restarts
        && restarts != new.restarts
    {
        broken.push(format!(
            "restarts: {restarts}, but the new policy restarted {} times",
            new.restarts
        ));
    }
    broken
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Up,
    Down { retry_at: Duration },
}

struct Run {
    healer: Healer,
    model: DaemonModel,
    t0: Instant,
    link: Link,
    /// Backoffs since the last connect, as the actor counts them.
    attempt: u32,
    network_down_until: Duration,
    /// A heal restart is under way: `restart_done` when the link is up again.
    restart_pending: bool,
    /// Undecryptable messages waiting at the server for the next connect.
    waiting: Vec<String>,
    heal_restarts: Vec<Duration>,
    outcome: Outcome,
}

impl Run {
    fn instant(&self, at: Duration) -> Instant {
        self.t0 + at
    }

    fn retry(&mut self, at: Duration) {
        if self.link == Link::Up {
            return;
        }
        if at < self.network_down_until {
            self.reconnect_later(at);
            return;
        }
        self.link = Link::Up;
        self.attempt = 0;
        if std::mem::take(&mut self.restart_pending) {
            self.healer.restart_done(self.instant(at));
        }
        for sender in std::mem::take(&mut self.waiting) {
            if self.link != Link::Up || self.outcome.wiped_at.is_some() {
                break;
            }
            self.undecryptable(at, &sender);
        }
    }

    fn event(&mut self, event: &Scheduled) {
        if event.cured(&self.heal_restarts) {
            return;
        }
        let at = event.at;
        match &event.event {
            WorldEvent::NetworkDrop { down } => {
                self.network_down_until = self.network_down_until.max(at + *down);
                if self.link == Link::Up {
                    self.reconnect_later(at);
                }
            }
            WorldEvent::Undecryptable { sender } if self.link != Link::Up => {
                if event.delivery == Delivery::Once {
                    self.waiting.push(sender.clone());
                }
            }
            _ if self.link != Link::Up => {}
            WorldEvent::Undecryptable { sender } => self.undecryptable(at, sender),
            WorldEvent::StreamError { .. } => {
                self.error_at(at);
                match self.healer.on_stream_error(self.instant(at)) {
                    Some(trip) => self.heal(at, trip),
                    None => self.reconnect_later(at),
                }
            }
            WorldEvent::RestartRequired => self.link = Link::Down { retry_at: at },
            WorldEvent::ServerBusy { .. } => self.reconnect_later(at),
        }
    }

    fn undecryptable(&mut self, at: Duration, sender: &str) {
        self.error_at(at);
        if let Some(trip) = self.healer.on_decrypt_error(self.instant(at), sender) {
            self.heal(at, trip);
        }
    }

    fn error_at(&mut self, at: Duration) {
        self.outcome.first_error_at.get_or_insert(at);
        self.outcome.errors += 1;
    }

    /// Backs off: the actor's `back_off`.
    fn reconnect_later(&mut self, at: Duration) {
        self.link = Link::Down {
            retry_at: at + self.model.reconnect.base_delay(self.attempt),
        };
        self.attempt = self.attempt.saturating_add(1);
    }

    fn heal(&mut self, at: Duration, trip: Trip) {
        self.outcome.trips.push((at, trip));
        match trip.step {
            Step::Restart => {
                self.outcome.restarts += 1;
                self.heal_restarts.push(at);
                self.restart_pending = true;
                self.link = Link::Down {
                    retry_at: at + self.model.restart_takes,
                };
            }
            Step::Wipe => self.outcome.wiped_at = Some(at),
        }
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
mod tests;
