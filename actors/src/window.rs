//! True sliding windows over error events.
//!
//! The Node server counted errors in a counter that reset after a quiet gap, so three
//! Bad MACs at 0 s, 20 s and 40 s tripped a "3 within 30 s" limit. Here a window keeps
//! the timestamps themselves and counts only those inside the last `length`.
//!
//! **Edge rule:** an event recorded at `t` is inside the window until `t + length`
//! *exclusive*. At exactly `t + length` it has left. So with a 30 s window, events at
//! 0 s and 30 s are never counted together, while 0 s and 29.999 s are.
//!
//! [`ErrorWindow`] counts events; [`SenderWindow`] also counts who sent them (the Bad
//! MAC window of CONTRACT §11).

mod senders;

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

pub use senders::{MAX_EVENTS, SenderKey, SenderWindow};

/// A limit of `limit` events within `length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    pub limit: usize,
    pub length: Duration,
}

impl WindowSpec {
    pub const fn new(limit: usize, length: Duration) -> Self {
        Self { limit, length }
    }
}

/// A sliding window of event times.
#[derive(Clone, Debug)]
pub struct ErrorWindow {
    spec: WindowSpec,
    events: VecDeque<Instant>,
}

impl ErrorWindow {
    pub fn new(spec: WindowSpec) -> Self {
        Self {
            spec,
            events: VecDeque::with_capacity(spec.limit.min(16)),
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    /// Records an event at `now`; returns true when the window then holds `limit` or
    /// more events (the limit is reached).
    ///
    /// `now` must not go backwards; tokio's `Instant` is monotonic.
    pub fn record(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.events.push_back(now);
        // Only the newest `limit` events can ever matter; older ones leave first.
        while self.events.len() > self.spec.limit.max(1) {
            self.events.pop_front();
        }
        self.spec.limit > 0 && self.events.len() >= self.spec.limit
    }

    /// How many events are inside the window at `now`.
    pub fn count(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.events.len()
    }

    /// Forgets every event (done when the session is wiped).
    pub fn clear(&mut self) {
        self.events.clear();
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&oldest) = self.events.front() {
            if now.saturating_duration_since(oldest) >= self.spec.length {
                self.events.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn bad_mac() -> ErrorWindow {
        ErrorWindow::new(WindowSpec::new(3, Duration::from_secs(30)))
    }

    #[test]
    fn three_events_inside_thirty_seconds_trip() {
        let t0 = Instant::now();
        let mut w = bad_mac();
        assert!(!w.record(at(t0, 0)));
        assert!(!w.record(at(t0, 10_000)));
        assert!(w.record(at(t0, 29_000)));
    }

    #[test]
    fn events_at_0_20_40_seconds_do_not_trip() {
        // The gap-reset counter of the old server tripped here.
        let t0 = Instant::now();
        let mut w = bad_mac();
        assert!(!w.record(at(t0, 0)));
        assert!(!w.record(at(t0, 20_000)));
        assert!(!w.record(at(t0, 40_000)));
        assert_eq!(w.count(at(t0, 40_000)), 2);
    }

    #[test]
    fn an_event_exactly_at_the_edge_has_left() {
        let t0 = Instant::now();
        let mut w = bad_mac();
        w.record(at(t0, 0));
        w.record(at(t0, 10_000));
        // 30 s after the first: the first has just left (exclusive end).
        assert!(!w.record(at(t0, 30_000)));
        assert_eq!(w.count(at(t0, 30_000)), 2);
    }

    #[test]
    fn one_millisecond_before_the_edge_is_still_inside() {
        let t0 = Instant::now();
        let mut w = bad_mac();
        w.record(at(t0, 0));
        w.record(at(t0, 10_000));
        assert!(w.record(at(t0, 29_999)));
    }

    #[test]
    fn clear_forgets_everything() {
        let t0 = Instant::now();
        let mut w = bad_mac();
        w.record(at(t0, 0));
        w.record(at(t0, 1));
        w.clear();
        assert!(!w.record(at(t0, 2)));
        assert_eq!(w.count(at(t0, 2)), 1);
    }

    /// The obvious definition: count every recorded event whose age is below the
    /// window length.
    fn naive_trips(times: &[u64], upto: usize, limit: usize, length: u64) -> bool {
        let now = times[upto];
        let inside = times[..=upto].iter().filter(|&&t| now - t < length).count();
        limit > 0 && inside >= limit
    }

    proptest! {
        #[test]
        fn matches_a_naive_reference(
            gaps in proptest::collection::vec(0u64..20_000, 1..60),
            limit in 1usize..6,
            length in 1u64..40_000,
        ) {
            let t0 = Instant::now();
            let mut times = Vec::with_capacity(gaps.len());
            let mut t = 0;
            for g in gaps { t += g; times.push(t); }
            let mut w = ErrorWindow::new(WindowSpec::new(limit, Duration::from_millis(length)));
            for i in 0..times.len() {
                let got = w.record(at(t0, times[i]));
                prop_assert_eq!(got, naive_trips(&times, i, limit, length), "event {}", i);
            }
        }
    }
}
