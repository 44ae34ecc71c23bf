//! The open connections, so that the server can bound them, make room when full,
//! and wait for the last one when it stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::conn::ConnState;
use super::phase::Phase;

#[derive(Debug, Default)]
pub struct Registry {
    conns: Mutex<Conns>,
    emptied: Notify,
}

#[derive(Debug, Default)]
struct Conns {
    next_id: u64,
    open: HashMap<u64, Arc<ConnState>>,
}

/// What admitting a new connection came to.
#[derive(Debug)]
pub enum Admission {
    /// Serve it; dropping the ticket removes it from the registry.
    Admitted(Ticket),
    /// Every open connection has a request in flight: there is no room to make.
    Full,
}

/// A connection's place in the registry, held by its task.
#[derive(Debug)]
pub struct Ticket {
    id: u64,
    pub state: Arc<ConnState>,
    registry: Arc<Registry>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut conns = self.registry.lock();
        conns.open.remove(&self.id);
        if conns.open.is_empty() {
            self.registry.emptied.notify_waiters();
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection. With `max` connections already open (not counting
    /// those being closed), the one idle the longest with nothing in flight is
    /// asked to close to make room; when every one is busy, the new one is refused.
    pub fn admit(self: &Arc<Self>, max: usize, now: Instant) -> Admission {
        let mut conns = self.lock();
        // Counting is a scan: only done once the bound may be reached.
        if conns.open.len() >= max {
            let staying = conns.open.values().filter(|c| !c.close_requested()).count();
            if staying >= max && !evict_oldest(&conns.open) {
                return Admission::Full;
            }
        }
        let id = conns.next_id;
        conns.next_id += 1;
        let state = Arc::new(ConnState::new(now));
        conns.open.insert(id, state.clone());
        Admission::Admitted(Ticket {
            id,
            state,
            registry: self.clone(),
        })
    }

    /// Asks the connection idle the longest to close (the accept loop's answer to
    /// running out of descriptors). Returns whether there was one.
    pub fn evict_one(&self) -> bool {
        evict_oldest(&self.lock().open)
    }

    /// Asks every connection to close: in-flight requests finish first.
    pub fn close_all(&self) {
        for conn in self.lock().open.values() {
            conn.request_close();
        }
    }

    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completes once no connection is open.
    pub async fn wait_empty(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

/// Asks the connection with nothing in flight for the longest to close; false if
/// every one is busy or already closing.
fn evict_oldest(open: &HashMap<u64, Arc<ConnState>>) -> bool {
    let victim = oldest_evictable(
        open.values()
            .filter(|c| !c.close_requested())
            .map(|c| (c, c.phase())),
    );
    victim.is_some_and(|c| c.request_close())
}

/// The entry whose phase has had nothing in flight for the longest.
fn oldest_evictable<T>(entries: impl Iterator<Item = (T, Phase)>) -> Option<T> {
    entries
        .filter_map(|(entry, phase)| phase.evictable_since().map(|since| (since, entry)))
        .min_by_key(|(since, _)| *since)
        .map(|(_, entry)| entry)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_victim_is_the_longest_without_a_request_never_a_busy_one() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let phases = [
            ("busy since long ago", Phase::accepted(t0).on_request()),
            ("idle since 5 s", Phase::Idle { since: t0 + s(5) }),
            ("head since 2 s", Phase::ReadingHead { since: t0 + s(2) }),
            ("idle since 9 s", Phase::Idle { since: t0 + s(9) }),
        ];
        assert_eq!(oldest_evictable(phases.into_iter()), Some("head since 2 s"));
        assert_eq!(
            oldest_evictable(phases.into_iter().filter(|(n, _)| !n.starts_with("head"))),
            Some("idle since 5 s")
        );
        assert_eq!(oldest_evictable(phases.into_iter().take(1)), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_registry_makes_room_by_closing_the_oldest_idle_one() {
        let registry = Arc::new(Registry::default());
        let admit = |registry: &Arc<Registry>| match registry.admit(2, Instant::now()) {
            Admission::Admitted(ticket) => ticket,
            Admission::Full => panic!("refused"),
        };
        let first = admit(&registry);
        tokio::time::advance(Duration::from_secs(1)).await;
        let second = admit(&registry);
        tokio::time::advance(Duration::from_secs(1)).await;

        let third = admit(&registry);
        assert!(first.state.close_requested(), "the oldest idle one goes");
        assert!(!second.state.close_requested());
        assert_eq!(registry.len(), 3, "it stays registered until its task ends");
        drop(first);
        assert_eq!(registry.len(), 2);

        // Both left busy: no room can be made, the next one is refused.
        for ticket in [&second, &third] {
            ticket.state.set_phase(ticket.state.phase().on_request());
        }
        assert!(matches!(registry.admit(2, Instant::now()), Admission::Full));
        assert!(!registry.evict_one());
        drop((second, third));
        registry.wait_empty().await;
    }
}
