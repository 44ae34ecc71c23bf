//! The walk itself: a trace's events, in virtual time, into the fake phone of a paired
//! and connected org, and the outcome read from the org's events.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{LiveError, Tree};
use crate::connection::sim::Fault;
use crate::events::EventKind;
use crate::healing::replay::Outcome;
use crate::healing::trace::{Delivery, Scheduled, Trace, WorldEvent};
use crate::healing::{Step, Trip, WindowKind};
use crate::{SessionSnapshot, SessionStatus};

/// Walks `trace` through the tree (see the module documentation) from now, the
/// trace's time 0, and reports what the tree did.
pub async fn walk(trace: &Trace, tree: &Tree<'_>) -> Result<Outcome, LiveError> {
    let snapshots = tree
        .sup
        .watch(tree.org)
        .ok_or_else(|| LiveError::NoSession(tree.org.clone()))?;
    let mut walk = Walk {
        tree,
        snapshots,
        t0: Instant::now(),
        read: 0,
        seen: Seen::default(),
        held: Vec::new(),
        network_up_at: None,
    };
    // Whatever the pairing set off is over before the trace's time 0.
    walk.settle().await?;
    walk.read = tree.log.len();
    let mut going = true;
    for event in trace.timeline() {
        going = walk.run_until(event.at).await?;
        if !going {
            break;
        }
        if !event.cured(&walk.seen.restarts) {
            walk.happen(event).await?;
        }
    }
    if going {
        walk.run_until(trace.end).await?;
    }
    walk.outcome()
}

/// Yields that let an injected fault travel the fake phone, the event pump and the
/// org's mailbox; far more than the few hops it takes.
const REACTION_YIELDS: usize = 10_000;
/// Yields that let the tree finish what the last step set off.
const SETTLE_YIELDS: usize = 50;

struct Walk<'a> {
    tree: &'a Tree<'a>,
    snapshots: watch::Receiver<SessionSnapshot>,
    t0: Instant,
    /// How much of the log the walk has read.
    read: usize,
    seen: Seen,
    /// Undecryptable messages waiting at the server for the next connect.
    held: Vec<String>,
    /// When the fake phone's network comes back (since the start of the trace).
    network_up_at: Option<Duration>,
}

/// What the org's events told so far.
#[derive(Default)]
struct Seen {
    outcome: Outcome,
    /// Every event of the org.
    events: usize,
    decrypt_errors: usize,
    /// When healing restarted the connection, for `until restart`.
    restarts: Vec<Duration>,
    wiped: bool,
}

impl Walk<'_> {
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.t0)
    }

    /// Reads the events the org emitted since the last call.
    fn read_log(&mut self) {
        let (fresh, read) = self.tree.log.since(self.read, self.tree.org);
        self.read = read;
        for (at, kind) in fresh {
            let at = at.saturating_duration_since(self.t0);
            let seen = &mut self.seen;
            seen.events += 1;
            match kind {
                EventKind::DecryptError | EventKind::StreamError { .. } => {
                    seen.decrypt_errors += usize::from(kind == EventKind::DecryptError);
                    seen.outcome.first_error_at.get_or_insert(at);
                    seen.outcome.errors += 1;
                }
                EventKind::Healing {
                    step,
                    window,
                    events,
                    senders,
                } => {
                    let Some(window) = WindowKind::parse(window) else {
                        continue;
                    };
                    match step {
                        Step::Restart => seen.restarts.push(at),
                        Step::Wipe => seen.wiped = true,
                    }
                    let trip = Trip {
                        step,
                        window,
                        events,
                        senders,
                    };
                    seen.outcome.trips.push((at, trip));
                }
                _ => {}
            }
        }
    }

    fn status(&self) -> SessionStatus {
        self.tree.sup.status(self.tree.org).status
    }

    /// Lets time run to `until`, delivering the backlog at each connect and bringing the
    /// network back when its drop is over. `false`: the session was wiped.
    async fn run_until(&mut self, until: Duration) -> Result<bool, LiveError> {
        loop {
            self.read_log();
            if self.seen.wiped {
                return Ok(false);
            }
            if !self.held.is_empty() && self.status() == SessionStatus::Connected {
                self.deliver_backlog().await?;
                continue;
            }
            let now = self.now();
            if self.network_up_at.is_some_and(|up| up <= now) {
                self.network_up_at = None;
                self.inject(Fault::NetworkUp)?;
                continue;
            }
            if now >= until {
                return Ok(true);
            }
            let stop = self.t0 + self.network_up_at.map_or(until, |up| up.min(until));
            if self.held.is_empty() {
                tokio::time::sleep_until(stop).await;
            } else {
                let connected = self
                    .snapshots
                    .wait_for(|s| s.status == SessionStatus::Connected);
                let _ = tokio::time::timeout_at(stop, connected).await;
            }
            self.settle().await?;
        }
    }

    /// One event of the trace, at its time.
    async fn happen(&mut self, event: &Scheduled) -> Result<(), LiveError> {
        let connected = self.status() == SessionStatus::Connected;
        let fault = match &event.event {
            WorldEvent::NetworkDrop { down } => {
                let up = event.at + *down;
                self.network_up_at = Some(self.network_up_at.map_or(up, |u| u.max(up)));
                if !connected {
                    return self.inject(Fault::NetworkDown);
                }
                Fault::NetworkDown
            }
            WorldEvent::Undecryptable { sender } if !connected => {
                if event.delivery == Delivery::Once {
                    self.held.push(sender.clone());
                }
                return Ok(());
            }
            _ if !connected => return Ok(()),
            WorldEvent::Undecryptable { sender } => Fault::BadMac {
                sender: Some(sender.clone()),
            },
            WorldEvent::StreamError { code, .. } => Fault::StreamError { code: *code },
            WorldEvent::RestartRequired => Fault::RestartRequired,
            WorldEvent::ServerBusy { code } => Fault::ServerBusy { code: Some(*code) },
        };
        self.read_log();
        let before = self.seen.events;
        self.inject(fault.clone())?;
        // Every fault a live session receives shows in its events: a decrypt or stream
        // error, or a status change.
        self.until(|w| w.seen.events > before)
            .await
            .map_err(|()| LiveError::NoReaction(fault))?;
        self.settle().await
    }

    /// The messages that waited for this connect, all at once into it: those behind a
    /// trip that closes it reach the old connection and are gone, as in the model.
    async fn deliver_backlog(&mut self) -> Result<(), LiveError> {
        self.read_log();
        let (errors, trips) = (self.seen.decrypt_errors, self.seen.outcome.trips.len());
        let held = std::mem::take(&mut self.held);
        let count = held.len();
        for sender in held {
            self.inject(Fault::BadMac {
                sender: Some(sender),
            })?;
        }
        let all_seen_or_tripped = |w: &Walk| {
            w.seen.decrypt_errors == errors + count || w.seen.outcome.trips.len() > trips
        };
        self.until(all_seen_or_tripped)
            .await
            .map_err(|()| LiveError::NoReaction(Fault::BadMac { sender: None }))?;
        self.settle().await
    }

    fn inject(&self, fault: Fault) -> Result<(), LiveError> {
        self.tree
            .sim
            .inject(self.tree.org, fault.clone())
            .map_err(|error| LiveError::Inject { fault, error })
    }

    /// Yields until `done` holds of what the log says (`Err` if it never does).
    async fn until(&mut self, done: impl Fn(&Walk) -> bool) -> Result<(), ()> {
        for _ in 0..REACTION_YIELDS {
            self.read_log();
            if done(self) {
                return Ok(());
            }
            tokio::task::yield_now().await;
        }
        Err(())
    }

    /// Lets the tree finish what the last step set off: until the org is no longer
    /// probing, opening or wiping. Over the fake phone that takes no virtual time.
    async fn settle(&mut self) -> Result<(), LiveError> {
        let before = Instant::now();
        loop {
            for _ in 0..SETTLE_YIELDS {
                tokio::task::yield_now().await;
            }
            if !in_motion(&self.snapshots.borrow_and_update()) {
                break;
            }
            if self.snapshots.changed().await.is_err() {
                return Err(LiveError::NoSession(self.tree.org.clone()));
            }
        }
        let took = Instant::now() - before;
        if took.is_zero() {
            Ok(())
        } else {
            Err(LiveError::Drift(took, self.now()))
        }
    }

    /// What the tree did; after a wipe, the QR code of the new pairing must be on show.
    fn outcome(mut self) -> Result<Outcome, LiveError> {
        self.read_log();
        let mut outcome = std::mem::take(&mut self.seen.outcome);
        outcome.restarts = self.seen.restarts.len();
        if self.seen.wiped {
            match self.status() {
                SessionStatus::QrReady => outcome.wiped_at = Some(self.now()),
                other => return Err(LiveError::NoQrAfterWipe(other)),
            }
        }
        Ok(outcome)
    }
}

/// The org is between two phases it rests in: probing the store, opening a connection
/// or wiping (`reconnecting`/`connecting` with no attempt scheduled).
fn in_motion(s: &SessionSnapshot) -> bool {
    use SessionStatus as S;
    matches!(s.status, S::NotStarted | S::Connecting | S::Reconnecting)
        && s.next_attempt_at.is_none()
}
