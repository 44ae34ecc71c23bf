//! Where one connection is in its life, and what that allows.
//!
//! A connection is `Idle` (nothing asked, nothing half-read), `ReadingHead` (the
//! first bytes of a request arrived, the head is not complete), or `Busy` (requests
//! handed to the router and not yet answered in full). Each phase has its own
//! deadline: the idle timeout, the header-read timeout, or none (a request is
//! bounded by the router's request timeout). Only a connection with nothing in
//! flight may be closed to make room for another.

use std::time::Duration;

use tokio::time::Instant;

/// The timeouts of the two phases that have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseTimeouts {
    /// From the first byte of a request to the end of its head.
    pub header_read: Duration,
    /// From the end of the last answer (or the accept) to the next request's
    /// first byte.
    pub idle: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No request in flight and no byte of the next one yet, since `since`.
    Idle { since: Instant },
    /// A request head began to arrive at `since` and is not complete.
    ReadingHead { since: Instant },
    /// `requests` requests are with the router or their answers are being written.
    Busy { requests: u32 },
}

/// Why a connection's deadline closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Idle,
    HeaderRead,
}

impl Phase {
    /// A fresh connection is idle: a client that connects and says nothing is
    /// closed after the idle timeout (and first when room is needed).
    pub fn accepted(now: Instant) -> Self {
        Self::Idle { since: now }
    }

    /// Bytes arrived. Only the first byte after an answer starts a head: bytes
    /// read while busy are a body (or a pipelined request, timed once it is
    /// dispatched).
    pub fn on_bytes_read(self, now: Instant) -> Self {
        match self {
            Self::Idle { .. } => Self::ReadingHead { since: now },
            other => other,
        }
    }

    /// A complete request head went to the router.
    pub fn on_request(self) -> Self {
        match self {
            Self::Busy { requests } => Self::Busy {
                requests: requests.saturating_add(1),
            },
            Self::Idle { .. } | Self::ReadingHead { .. } => Self::Busy { requests: 1 },
        }
    }

    /// An answer was written in full (or its request abandoned).
    pub fn on_response_done(self, now: Instant) -> Self {
        match self {
            Self::Busy { requests } if requests > 1 => Self::Busy {
                requests: requests - 1,
            },
            Self::Busy { .. } => Self::Idle { since: now },
            // Not reachable: every answer follows a request. Staying put is safe.
            other => other,
        }
    }

    /// When this phase's timeout closes the connection, and why; `None` while busy.
    pub fn deadline(self, timeouts: PhaseTimeouts) -> Option<(Instant, Expiry)> {
        match self {
            Self::Idle { since } => Some((since + timeouts.idle, Expiry::Idle)),
            Self::ReadingHead { since } => Some((since + timeouts.header_read, Expiry::HeaderRead)),
            Self::Busy { .. } => None,
        }
    }

    /// Since when the connection has had nothing in flight; `None` while busy.
    /// The connection with the oldest such instant is the one closed for room.
    pub fn evictable_since(self) -> Option<Instant> {
        match self {
            Self::Idle { since } | Self::ReadingHead { since } => Some(since),
            Self::Busy { .. } => None,
        }
    }

    pub fn is_busy(self) -> bool {
        matches!(self, Self::Busy { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: PhaseTimeouts = PhaseTimeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn each_phase_has_its_own_deadline() {
        let t0 = Instant::now();
        let idle = Phase::accepted(t0);
        assert_eq!(idle.deadline(T), Some((t0 + T.idle, Expiry::Idle)));
        assert_eq!(idle.evictable_since(), Some(t0));

        // The first byte starts the header clock, which later bytes do not reset
        // (a client trickling a byte at a time is still cut at 10 s).
        let t1 = t0 + Duration::from_secs(5);
        let head = idle.on_bytes_read(t1);
        assert_eq!(head, Phase::ReadingHead { since: t1 });
        let head = head.on_bytes_read(t1 + Duration::from_secs(9));
        assert_eq!(
            head.deadline(T),
            Some((t1 + T.header_read, Expiry::HeaderRead))
        );

        let busy = head.on_request();
        assert_eq!(busy, Phase::Busy { requests: 1 });
        assert_eq!(busy.deadline(T), None);
        assert_eq!(busy.evictable_since(), None);
        // Body bytes keep it busy.
        assert_eq!(busy.on_bytes_read(t1), busy);

        let t2 = t1 + Duration::from_secs(30);
        let idle_again = busy.on_response_done(t2);
        assert_eq!(idle_again, Phase::Idle { since: t2 });
        assert_eq!(idle_again.deadline(T), Some((t2 + T.idle, Expiry::Idle)));
    }

    #[tokio::test(start_paused = true)]
    async fn pipelined_requests_keep_it_busy_until_the_last_answer() {
        let now = Instant::now();
        let two = Phase::accepted(now).on_request().on_request();
        assert_eq!(two, Phase::Busy { requests: 2 });
        let one = two.on_response_done(now);
        assert!(one.is_busy());
        assert_eq!(one.on_response_done(now), Phase::Idle { since: now });
    }
}
