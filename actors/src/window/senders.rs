//! A true sliding window over undecryptable messages that also counts their senders
//! (CONTRACT §11: the Bad MAC window trips only with `limit` events from at least
//! `distinct_senders` different senders).
//!
//! Same edge rule as [`ErrorWindow`](super::ErrorWindow): an event recorded at `t` is
//! inside until `t + length` exclusive.
//!
//! Unlike `ErrorWindow`, this window keeps every event inside it, not only the newest
//! `limit`: those may all come from one contact while an older one, still inside, came
//! from another. It is bounded by [`MAX_EVENTS`] all the same.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::time::Instant;

use super::WindowSpec;

/// The most events one window keeps.
///
/// Why a cap: an offline backlog after days away, or a store that fails every message,
/// can bring thousands of undecryptable messages within one window, and one org's
/// trouble must not grow its memory without bound (24 bytes an event, so 24 KiB at
/// most). Beyond the cap the oldest event is dropped. That keeps the count exact (the
/// cap is never below `limit`, and the events inside a window are always its newest)
/// and can only undercount senders, so it errs towards *not* tripping. It cannot change
/// a decision at all when `distinct_senders` is 1 or 2 and the caller clears the window
/// on a trip (as the healer does): before such a window holds more than the cap, every
/// event after the first has come from the first one's sender, or it would have tripped.
pub const MAX_EVENTS: usize = 1024;

/// Who sent an undecryptable message, as far as the window cares: one contact, whatever
/// device or address form the message came from.
///
/// Only a 64-bit hash is kept, so a window holds no phone number. Two contacts whose
/// keys collided would count as one, which errs towards not tripping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SenderKey(u64);

impl SenderKey {
    /// The key of a sender given as a JID (`573001112233:12@s.whatsapp.net`,
    /// `123456789@lid`) or as bare digits: the user part alone, so one contact's phone
    /// and linked devices are one sender.
    pub fn of(sender: &str) -> Self {
        let user = sender
            .split(['@', ':', '.'])
            .next()
            .unwrap_or(sender)
            .trim();
        let mut hasher = DefaultHasher::new();
        user.hash(&mut hasher);
        Self(hasher.finish())
    }
}

impl From<&str> for SenderKey {
    fn from(sender: &str) -> Self {
        Self::of(sender)
    }
}

/// A sliding window of `(time, sender)` that reaches its limit with at least `limit`
/// events from at least `distinct_senders` different senders.
#[derive(Clone, Debug)]
pub struct SenderWindow {
    spec: WindowSpec,
    distinct_senders: usize,
    cap: usize,
    events: VecDeque<(Instant, SenderKey)>,
    per_sender: HashMap<SenderKey, usize>,
}

impl SenderWindow {
    /// `distinct_senders` of 0 or 1 both mean "any senders" (the old server's rule).
    pub fn new(spec: WindowSpec, distinct_senders: usize) -> Self {
        Self::with_cap(spec, distinct_senders, MAX_EVENTS)
    }

    fn with_cap(spec: WindowSpec, distinct_senders: usize, cap: usize) -> Self {
        Self {
            spec,
            distinct_senders,
            cap: cap.max(spec.limit).max(1),
            events: VecDeque::new(),
            per_sender: HashMap::new(),
        }
    }

    pub fn spec(&self) -> WindowSpec {
        self.spec
    }

    pub fn distinct_senders(&self) -> usize {
        self.distinct_senders
    }

    /// Records an event from `sender` at `now`; returns true when the window then
    /// holds at least `limit` events from at least `distinct_senders` senders.
    ///
    /// `now` must not go backwards; tokio's `Instant` is monotonic.
    pub fn record(&mut self, now: Instant, sender: SenderKey) -> bool {
        self.expire(now);
        self.events.push_back((now, sender));
        *self.per_sender.entry(sender).or_default() += 1;
        while self.events.len() > self.cap {
            self.pop_oldest();
        }
        self.reached()
    }

    /// How many events are inside the window at `now`.
    pub fn count(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.events.len()
    }

    /// How many different senders the events inside the window at `now` came from.
    pub fn senders(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.per_sender.len()
    }

    /// Forgets every event.
    pub fn clear(&mut self) {
        self.events.clear();
        self.per_sender.clear();
    }

    fn reached(&self) -> bool {
        self.spec.limit > 0
            && self.events.len() >= self.spec.limit
            && self.per_sender.len() >= self.distinct_senders
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(oldest, _)) = self.events.front() {
            if now.saturating_duration_since(oldest) >= self.spec.length {
                self.pop_oldest();
            } else {
                break;
            }
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, sender)) = self.events.pop_front()
            && let Some(n) = self.per_sender.get_mut(&sender)
        {
            *n -= 1;
            if *n == 0 {
                self.per_sender.remove(&sender);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    fn key(n: u32) -> SenderKey {
        SenderKey::of(&format!("57300{n:07}"))
    }

    fn bad_mac(distinct: usize) -> SenderWindow {
        SenderWindow::new(WindowSpec::new(3, Duration::from_secs(30)), distinct)
    }

    #[test]
    fn one_sender_never_trips_with_two_distinct_required() {
        let t0 = Instant::now();
        let mut w = bad_mac(2);
        for i in 0..10 {
            assert!(!w.record(at(t0, i * 1_000), key(1)), "event {i}");
        }
        assert_eq!(w.count(at(t0, 9_000)), 10);
        assert_eq!(w.senders(at(t0, 9_000)), 1);
    }

    #[test]
    fn a_second_sender_trips_once_the_count_is_reached() {
        let t0 = Instant::now();
        let mut w = bad_mac(2);
        assert!(!w.record(at(t0, 0), key(1)));
        assert!(!w.record(at(t0, 1_000), key(2)));
        assert!(w.record(at(t0, 2_000), key(1)));
    }

    #[test]
    fn an_old_sender_counts_even_behind_many_newer_events_of_another() {
        // The newest `limit` events are all from sender 2; sender 1's event, still
        // inside, is what makes two senders.
        let t0 = Instant::now();
        let mut w = SenderWindow::new(WindowSpec::new(3, Duration::from_secs(30)), 3);
        w.record(at(t0, 0), key(1));
        for i in 1..=5 {
            assert!(!w.record(at(t0, i * 1_000), key(2)));
        }
        assert!(w.record(at(t0, 6_000), key(3)));
    }

    #[test]
    fn a_sender_leaves_with_its_last_event_at_the_exclusive_edge() {
        let t0 = Instant::now();
        let mut w = bad_mac(2);
        w.record(at(t0, 0), key(1));
        w.record(at(t0, 10_000), key(2));
        // At 30 s sender 1's only event has left: two events, one sender left...
        assert!(!w.record(at(t0, 30_000), key(2)));
        assert_eq!(w.senders(at(t0, 30_000)), 1);
        // ...while at 29.999 s it would still have been inside.
        let mut w = bad_mac(2);
        w.record(at(t0, 0), key(1));
        w.record(at(t0, 10_000), key(2));
        assert!(w.record(at(t0, 29_999), key(2)));
    }

    #[test]
    fn distinct_one_is_the_old_rule() {
        let t0 = Instant::now();
        let mut w = bad_mac(1);
        assert!(!w.record(at(t0, 0), key(1)));
        assert!(!w.record(at(t0, 1), key(1)));
        assert!(w.record(at(t0, 2), key(1)));
    }

    #[test]
    fn clear_forgets_events_and_senders() {
        let t0 = Instant::now();
        let mut w = bad_mac(2);
        w.record(at(t0, 0), key(1));
        w.record(at(t0, 1), key(2));
        w.clear();
        assert!(!w.record(at(t0, 2), key(3)));
        assert_eq!((w.count(at(t0, 2)), w.senders(at(t0, 2))), (1, 1));
    }

    #[test]
    fn sender_keys_ignore_device_and_address_form() {
        let digits = SenderKey::of("573001112233");
        assert_eq!(digits, SenderKey::of("573001112233@s.whatsapp.net"));
        assert_eq!(digits, SenderKey::of("573001112233:12@s.whatsapp.net"));
        assert_eq!(digits, SenderKey::of("573001112233.0:3@s.whatsapp.net"));
        assert_ne!(digits, SenderKey::of("573001112234@s.whatsapp.net"));
    }

    #[test]
    fn the_cap_keeps_the_newest_events_and_never_goes_below_the_limit() {
        let t0 = Instant::now();
        let mut w = SenderWindow::with_cap(WindowSpec::new(5, Duration::from_secs(30)), 2, 2);
        for i in 0..4 {
            w.record(at(t0, i), key(1));
        }
        // The cap is raised to the limit (5): all four kept.
        assert_eq!(w.count(at(t0, 4)), 4);
        for i in 4..20 {
            w.record(at(t0, i), key(1));
        }
        assert_eq!(w.count(at(t0, 20)), 5);
    }

    /// The obvious definition: among every event recorded so far, those younger than
    /// the window length, how many and from how many senders.
    fn naive(events: &[(u64, u32)], upto: usize, length: u64) -> (usize, usize) {
        let now = events[upto].0;
        let inside: Vec<_> = events[..=upto]
            .iter()
            .filter(|(t, _)| now - t < length)
            .collect();
        let mut senders: Vec<u32> = inside.iter().map(|(_, s)| *s).collect();
        senders.sort_unstable();
        senders.dedup();
        (inside.len(), senders.len())
    }

    fn timeline() -> impl Strategy<Value = Vec<(u64, u32)>> {
        proptest::collection::vec((0u64..8_000, 0u32..5), 1..80).prop_map(|steps| {
            let mut t = 0;
            steps
                .into_iter()
                .map(|(gap, sender)| {
                    t += gap;
                    (t, sender)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn matches_a_naive_reference(
            events in timeline(),
            limit in 1usize..6,
            distinct in 0usize..5,
            length in 1u64..40_000,
        ) {
            let t0 = Instant::now();
            let mut w = SenderWindow::new(WindowSpec::new(limit, Duration::from_millis(length)), distinct);
            for (i, &(t, s)) in events.iter().enumerate() {
                let got = w.record(at(t0, t), key(s));
                let (count, senders) = naive(&events, i, length);
                prop_assert_eq!(got, count >= limit && senders >= distinct, "event {}", i);
                prop_assert_eq!((w.count(at(t0, t)), w.senders(at(t0, t))), (count, senders));
            }
        }

        /// With a tiny cap the count stays exact up to the cap and senders are never
        /// overcounted, so a capped window never trips where the exact rule would not.
        #[test]
        fn a_capped_window_never_trips_where_the_exact_rule_would_not(
            events in timeline(),
            limit in 1usize..6,
            distinct in 0usize..5,
            cap in 1usize..8,
            length in 1u64..40_000,
        ) {
            let t0 = Instant::now();
            let mut w = SenderWindow::with_cap(WindowSpec::new(limit, Duration::from_millis(length)), distinct, cap);
            let cap = cap.max(limit);
            for (i, &(t, s)) in events.iter().enumerate() {
                let got = w.record(at(t0, t), key(s));
                let (count, senders) = naive(&events, i, length);
                prop_assert_eq!(w.count(at(t0, t)), count.min(cap));
                prop_assert!(w.senders(at(t0, t)) <= senders);
                prop_assert!(!got || (count >= limit && senders >= distinct), "event {}", i);
            }
        }
    }
}
