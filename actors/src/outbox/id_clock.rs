//! The order of new message ids: each one sorts after the one made before it.
//!
//! A message id is the key of an index every enqueue writes. Random ids land on a
//! random page of it each, so a commit of a few dozen messages rewrote a few dozen
//! pages of that index alone; ids that grow land on its last page, which a commit
//! writes once. The 9 bytes of an id (WhatsApp Web's shape, `3EB0` and 18 hex
//! digits) are therefore:
//!
//! - 5 bytes: milliseconds since [`EPOCH_MS`] (2024-01-01 UTC), which last until
//!   2058 and then wrap around: ids stay as unique as before, only not in order;
//! - 4 bytes: a random number drawn at the first id of each millisecond and counted
//!   up for the next ones within it, so a second process making ids in the same
//!   millisecond (a restart, another node) almost never meets ours, and nothing in
//!   an id counts the messages of the day.
//!
//! Within a process ids strictly increase, even when the wall clock steps back (an
//! NTP correction): the clock then stays at the last millisecond used and counts on.

/// 2024-01-01T00:00:00Z in milliseconds since the Unix epoch.
pub(super) const EPOCH_MS: u64 = 1_704_067_200_000;

/// The 40 bits of milliseconds an id holds.
const MS_MASK: u64 = (1 << 40) - 1;

/// The last (millisecond, counter) pair handed out.
#[derive(Debug, Default)]
pub(super) struct IdClock {
    last: Option<(u64, u32)>,
}

impl IdClock {
    pub(super) const fn new() -> Self {
        Self { last: None }
    }

    /// The 9 bytes of the next id at wall-clock time `now_ms` (Unix milliseconds);
    /// `random` starts the counter of a millisecond not used yet.
    pub(super) fn next(&mut self, now_ms: u64, random: u32) -> [u8; 9] {
        let now = now_ms.saturating_sub(EPOCH_MS) & MS_MASK;
        let (ms, counter) = match self.last {
            // The same millisecond, or the clock stepped back: count on.
            Some((ms, counter)) if now <= ms => match counter.checked_add(1) {
                Some(next) => (ms, next),
                // Four billion ids in one millisecond: borrow the next one.
                None => ((ms + 1) & MS_MASK, random),
            },
            _ => (now, random),
        };
        self.last = Some((ms, counter));
        let mut bytes = [0u8; 9];
        bytes[..5].copy_from_slice(&ms.to_be_bytes()[3..]);
        bytes[5..].copy_from_slice(&counter.to_be_bytes());
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = EPOCH_MS + 1_000_000;

    #[test]
    fn the_first_id_of_a_millisecond_holds_it_and_the_random_start() {
        let bytes = IdClock::default().next(T, 0xA1B2_C3D4);
        assert_eq!(
            bytes,
            [0x00, 0x00, 0x0F, 0x42, 0x40, 0xA1, 0xB2, 0xC3, 0xD4]
        );
    }

    #[test]
    fn ids_within_a_millisecond_count_up_from_its_random_start() {
        let mut clock = IdClock::default();
        let first = clock.next(T, 7);
        let second = clock.next(T, 999);
        assert_eq!(second[..5], first[..5]);
        assert_eq!(second[5..], [0, 0, 0, 8]);
    }

    #[test]
    fn a_later_millisecond_starts_a_new_random_count() {
        let mut clock = IdClock::default();
        let first = clock.next(T, u32::MAX - 1);
        let later = clock.next(T + 1, 5);
        assert!(later > first);
        assert_eq!(later[5..], [0, 0, 0, 5]);
    }

    #[test]
    fn ids_keep_increasing_when_the_clock_steps_back() {
        let mut clock = IdClock::default();
        let first = clock.next(T, 10);
        let after_the_step = clock.next(T - 5_000, 3);
        assert!(after_the_step > first);
        assert_eq!(after_the_step[..5], first[..5]);
    }

    #[test]
    fn a_full_millisecond_borrows_the_next_one() {
        let mut clock = IdClock::default();
        let last_of_it = clock.next(T, u32::MAX);
        let borrowed = clock.next(T, 42);
        assert!(borrowed > last_of_it);
        assert_eq!(borrowed, IdClock::default().next(T + 1, 42));
    }

    #[test]
    fn many_ids_in_a_row_strictly_increase() {
        let mut clock = IdClock::default();
        let mut previous = clock.next(T, 0);
        // Milliseconds that repeat, step back and jump, with random starts.
        for i in 0..10_000u64 {
            let now = T + (i / 7) * 3 - (i % 5);
            let next = clock.next(now, rand::random());
            assert!(next > previous, "id {i} did not sort after the one before");
            previous = next;
        }
    }
}
