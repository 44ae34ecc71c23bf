//! Labelled event traces: what the world does to one paired, connected session, and
//! what the daemon should make of it.
//!
//! A trace describes the *world* (contacts, the server, the network), not the
//! session: whoever replays it decides whether the session is connected at each
//! moment (its own reconnects, restarts and wipes), and [`Delivery`] says what an
//! event does when it is not. So the same trace drives the pure [`replay`](super::replay)
//! and, later, the real org actor over the simulated connection.
//!
//! # Format
//!
//! One line each; `#` starts a comment. First the labels, then the events:
//!
//! ```text
//! # Bad MACs from several contacts and stream errors that no reconnect cures.
//! expect: wipe within 5m        # or: expect: no_wipe (the new policy; `within` counts
//!                               # from the first error the session receives)
//! old_rule: wipe                # or no_wipe: what the old server's rule does
//! restarts: 1                   # optional: restarts the new policy makes
//!
//! +30s                          # move the clock on (from the previous line's time)
//! @2m                           # or set it (from the start); it never goes back
//! +5s undecryptable sender=573001112233          # one event at that time
//! burst 30 over 5s undecryptable senders=15      # 30 one-off events spread over 5 s
//! every 7s for 2h undecryptable senders=6        # keeps happening while connected
//! every 50s for 2h stream_error reason=ack
//! every 3s for 30m undecryptable senders=10 until restart
//! +2h                           # the trace lasts at least until here
//! ```
//!
//! Events: `undecryptable sender=<digits>` (or `senders=<n>` in `burst`/`every`: a pool
//! of n contacts taken in turn, the same n contacts on every line), `stream_error
//! [code=<n>] [reason=<word>]`, `network_drop [down=<duration>]` (the network stays down
//! that long), `restart_required` (515), `server_busy [code=<n>]` (default 503).
//! Durations: `500ms`, `12.5s`, `10m`, `2h`, `1m30s`.
//!
//! `every P for D` repeats at `t, t+P, …` below `t+D`, each time only if the session is
//! connected then (a broken store only fails messages it receives). One-off events and
//! bursts are messages or incidents that happen once: an undecryptable message sent
//! while the session is disconnected waits at the server and arrives right after the
//! next connect (an offline backlog); other one-off events are lost then. `until restart`:
//! a restart made by healing cures the rest of that line. A wipe cures everything: after
//! it nothing arrives until the shop pairs again, and the replay ends.

mod duration;
mod parse;

use std::time::Duration;

pub use duration::format_duration;
pub use parse::{Problem, TraceError};

/// What the new policy must do with a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Never wipe (a benign trace).
    NoWipe,
    /// Wipe, at most this long after the first error the session received.
    WipeWithin(Duration),
}

/// Something the world does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorldEvent {
    /// A message that fails to decrypt; `sender` is digits.
    Undecryptable { sender: String },
    /// The server ends the stream with an error; the session must reconnect.
    StreamError {
        code: Option<u16>,
        reason: Option<String>,
    },
    /// The socket drops; reconnecting fails until `down` has passed.
    NetworkDrop { down: Duration },
    /// 515: reconnect now from the same credentials.
    RestartRequired,
    /// 429/503.
    ServerBusy { code: u16 },
}

/// What an event does when the session is not connected at its time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It happens once: an undecryptable message waits for the next connect, anything
    /// else is lost.
    Once,
    /// It only happens on a live connection (`every`): skipped when disconnected.
    WhileConnected,
}

/// One timed event of a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scheduled {
    /// Since the start of the trace.
    pub at: Duration,
    pub event: WorldEvent,
    pub delivery: Delivery,
    /// `Some(t)`: skipped once healing has restarted the connection at or after `t`
    /// (the line's start), `until restart`.
    pub cured_by_restart_since: Option<Duration>,
    /// The trace line it comes from.
    pub line: usize,
}

impl Scheduled {
    /// Whether a heal restart at any of `restarts` cured this event.
    pub fn cured(&self, restarts: &[Duration]) -> bool {
        self.cured_by_restart_since
            .is_some_and(|since| restarts.iter().any(|r| (since..=self.at).contains(r)))
    }
}

/// A parsed trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub expect: Expect,
    /// Whether the old server's rule wipes.
    pub old_rule_wipes: bool,
    /// Restarts the new policy must make, when the trace says.
    pub restarts: Option<usize>,
    /// In time order (ties in line order).
    pub events: Vec<Scheduled>,
    /// How long the trace lasts: its last event or last time line, whichever is later.
    pub end: Duration,
}

impl Trace {
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        parse::parse(text)
    }

    /// The events in time order: what a replay (pure, or through the org actor in
    /// paused time) walks through.
    pub fn timeline(&self) -> impl Iterator<Item = &Scheduled> {
        self.events.iter()
    }

    /// Whether the trace is meant to be healed by a wipe.
    pub fn is_corrupt(&self) -> bool {
        matches!(self.expect, Expect::WipeWithin(_))
    }
}

/// The `k`-th contact (from 0) of a `senders=<n>` pool, as digits.
pub fn pool_sender(k: usize) -> String {
    format!("57399{:07}", k + 1)
}
