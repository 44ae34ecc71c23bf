//! The anti-ban connection-attempt budget (CONTRACT §6).
//!
//! Opening connections to WhatsApp too often gets numbers banned, so every
//! *connection attempt* (a new pairing, an explicit start after `disconnected` and
//! the like, a resume at start-up; never a reconnect inside a live session's
//! backoff) draws from two budgets at once: one per organization and one for the
//! whole daemon. Each is a true sliding log of attempt times (like the error
//! windows), so the counts reported by `GET /api/rate-limit-status` are exact.
//!
//! **Race-freedom:** [`ConnectionBudget::try_draw`] checks both budgets and records
//! the attempt in both under one lock. Concurrent starts therefore draw exactly the
//! budget: with a global limit of 3, ten simultaneous starts of ten orgs let three
//! through. (The old server checked its limit, slept 30 s, then recorded, so all
//! ten passed.) A draw refused by one budget consumes nothing from the other.
//!
//! Why not the `governor` crate: its GCRA limiter cannot say how many attempts were
//! made in the last hour or day (fields the Django client reads), and two governor
//! limiters cannot be checked together atomically: a draw that passed the org's
//! limiter and then failed the global one would still have spent the org's cell.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::{OrgId, WindowSpec};

/// The limits: attempts per organization and in total, each within its own period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BudgetSpec {
    /// Attempts of one organization (default 10 per 24 h).
    pub per_org: WindowSpec,
    /// Attempts of all organizations together (default 1,000 per hour).
    pub global: WindowSpec,
}

impl Default for BudgetSpec {
    /// 10 attempts per organization per day, 1,000 per hour in all.
    ///
    /// A healthy shop needs one attempt per pairing or restart; ten a day leaves room
    /// for a few rescans and daemon restarts while stopping a client that loops on
    /// `start-session`. The per-org budget is what keeps a number from being
    /// banned; the global one only caps a runaway loop across orgs, and must let a
    /// whole fleet resume after a restart (resumes count as attempts): 1,000 an
    /// hour lets a daemon with hundreds of shops come back at the staggered resume
    /// pace without a single org left `blocked`.
    fn default() -> Self {
        Self {
            per_org: WindowSpec::new(10, Duration::from_secs(24 * 3600)),
            global: WindowSpec::new(1000, Duration::from_secs(3600)),
        }
    }
}

/// Which budget refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockReason {
    /// The organization's own budget is spent.
    OrgLimit,
    /// The daemon-wide budget is spent.
    GlobalLimit,
}

/// An attempt that the budget refused, and how long until one would pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub reason: BlockReason,
    /// Until the oldest attempt in the spent budget(s) leaves its period.
    pub wait: Duration,
}

impl Blocked {
    /// Words for an operator, naming the limit.
    pub fn describe(&self, spec: &BudgetSpec) -> String {
        let (what, w) = match self.reason {
            BlockReason::OrgLimit => ("this organization's", spec.per_org),
            BlockReason::GlobalLimit => ("the daemon-wide", spec.global),
        };
        format!(
            "{what} connection-attempt budget is spent ({} attempts within {} s); retrying in {} s",
            w.limit,
            w.length.as_secs(),
            self.wait.as_secs_f64().ceil() as u64
        )
    }
}

/// One organization's side of the budget at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgBudget {
    pub org: OrgId,
    /// Attempts within the per-org period.
    pub attempts: usize,
    pub limit: usize,
    /// Set when an attempt of this org would be refused now.
    pub blocked: Option<Blocked>,
}

/// The daemon-wide side of the budget at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalBudget {
    /// Attempts within the global period.
    pub attempts: usize,
    pub limit: usize,
    /// How long until the global budget has room again, when it has none.
    pub blocked_for: Option<Duration>,
}

/// Attempt times within one period, oldest first.
#[derive(Debug, Default)]
struct Log(VecDeque<Instant>);

impl Log {
    fn expire(&mut self, now: Instant, length: Duration) {
        while let Some(&oldest) = self.0.front() {
            if now.saturating_duration_since(oldest) >= length {
                self.0.pop_front();
            } else {
                break;
            }
        }
    }

    /// `None` when there is room; otherwise how long until there is.
    fn full_for(&mut self, now: Instant, spec: WindowSpec) -> Option<Duration> {
        self.expire(now, spec.length);
        if self.0.len() < spec.limit {
            return None;
        }
        // The attempt that must leave for one more to fit.
        let idx = self.0.len() - spec.limit;
        let leaves = self.0[idx] + spec.length;
        Some(
            leaves
                .saturating_duration_since(now)
                .max(Duration::from_millis(1)),
        )
    }
}

#[derive(Debug, Default)]
struct Logs {
    global: Log,
    orgs: HashMap<OrgId, Log>,
}

/// The shared budget; the supervisor owns it and every org actor draws from it.
#[derive(Debug)]
pub struct ConnectionBudget {
    spec: BudgetSpec,
    logs: Mutex<Logs>,
}

impl ConnectionBudget {
    pub fn new(spec: BudgetSpec) -> Self {
        Self {
            spec,
            logs: Mutex::new(Logs::default()),
        }
    }

    pub fn spec(&self) -> BudgetSpec {
        self.spec
    }

    /// Draws one attempt for `org` from both budgets, or from neither.
    pub fn try_draw(&self, org: &OrgId, now: Instant) -> Result<(), Blocked> {
        let mut logs = self.logs.lock().unwrap();
        let Logs { global, orgs } = &mut *logs;
        let own = orgs.entry(org.clone()).or_default();
        let org_wait = own.full_for(now, self.spec.per_org);
        let global_wait = global.full_for(now, self.spec.global);
        match (org_wait, global_wait) {
            (None, None) => {
                own.0.push_back(now);
                global.0.push_back(now);
                Ok(())
            }
            (Some(o), g) => Err(Blocked {
                reason: BlockReason::OrgLimit,
                wait: g.map_or(o, |g| g.max(o)),
            }),
            (None, Some(g)) => Err(Blocked {
                reason: BlockReason::GlobalLimit,
                wait: g,
            }),
        }
    }

    /// The daemon-wide budget now.
    pub fn global(&self, now: Instant) -> GlobalBudget {
        let mut logs = self.logs.lock().unwrap();
        let blocked_for = logs.global.full_for(now, self.spec.global);
        GlobalBudget {
            attempts: logs.global.0.len(),
            limit: self.spec.global.limit,
            blocked_for,
        }
    }

    /// One organization's budget now (what its next attempt would meet).
    pub fn org(&self, org: &OrgId, now: Instant) -> OrgBudget {
        let mut logs = self.logs.lock().unwrap();
        self.org_locked(&mut logs, org, now)
    }

    /// Every organization that made an attempt within its period, by id.
    pub fn orgs(&self, now: Instant) -> Vec<OrgBudget> {
        let mut logs = self.logs.lock().unwrap();
        let length = self.spec.per_org.length;
        logs.orgs.retain(|_, log| {
            log.expire(now, length);
            !log.0.is_empty()
        });
        let mut ids: Vec<OrgId> = logs.orgs.keys().cloned().collect();
        ids.sort();
        ids.iter()
            .map(|org| self.org_locked(&mut logs, org, now))
            .collect()
    }

    fn org_locked(&self, logs: &mut Logs, org: &OrgId, now: Instant) -> OrgBudget {
        let global_wait = logs.global.full_for(now, self.spec.global);
        let (attempts, org_wait) = match logs.orgs.get_mut(org) {
            Some(log) => {
                let wait = log.full_for(now, self.spec.per_org);
                (log.0.len(), wait)
            }
            None => (0, None),
        };
        let blocked = match (org_wait, global_wait) {
            (None, None) => None,
            (Some(o), g) => Some(Blocked {
                reason: BlockReason::OrgLimit,
                wait: g.map_or(o, |g| g.max(o)),
            }),
            (None, Some(g)) => Some(Blocked {
                reason: BlockReason::GlobalLimit,
                wait: g,
            }),
        };
        OrgBudget {
            org: org.clone(),
            attempts,
            limit: self.spec.per_org.limit,
            blocked,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    fn budget(per_org: usize, global: usize) -> ConnectionBudget {
        ConnectionBudget::new(BudgetSpec {
            per_org: WindowSpec::new(per_org, Duration::from_secs(100)),
            global: WindowSpec::new(global, Duration::from_secs(10)),
        })
    }

    #[test]
    fn the_org_budget_refuses_once_spent_and_says_until_when() {
        let b = budget(2, 50);
        let t0 = Instant::now();
        b.try_draw(&org("a"), t0).unwrap();
        b.try_draw(&org("a"), t0 + Duration::from_secs(30)).unwrap();
        let blocked = b
            .try_draw(&org("a"), t0 + Duration::from_secs(40))
            .unwrap_err();
        assert_eq!(blocked.reason, BlockReason::OrgLimit);
        // The first attempt leaves at 100 s.
        assert_eq!(blocked.wait, Duration::from_secs(60));
        // Another org is not affected, and a refused draw spent nothing.
        b.try_draw(&org("b"), t0 + Duration::from_secs(40)).unwrap();
        assert_eq!(b.org(&org("a"), t0 + Duration::from_secs(40)).attempts, 2);
        assert_eq!(b.global(t0 + Duration::from_secs(40)).attempts, 1);
        // At 100 s (exclusive end) the first attempt has left.
        b.try_draw(&org("a"), t0 + Duration::from_secs(100))
            .unwrap();
    }

    #[test]
    fn the_global_budget_refuses_without_spending_the_orgs() {
        let b = budget(5, 2);
        let t0 = Instant::now();
        b.try_draw(&org("a"), t0).unwrap();
        b.try_draw(&org("b"), t0).unwrap();
        let blocked = b.try_draw(&org("c"), t0).unwrap_err();
        assert_eq!(blocked.reason, BlockReason::GlobalLimit);
        assert_eq!(blocked.wait, Duration::from_secs(10));
        assert_eq!(b.org(&org("c"), t0).attempts, 0);
        let g = b.global(t0);
        assert_eq!((g.attempts, g.limit), (2, 2));
        assert_eq!(g.blocked_for, Some(Duration::from_secs(10)));
        assert_eq!(
            b.org(&org("c"), t0).blocked.map(|x| x.reason),
            Some(BlockReason::GlobalLimit)
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.global(later).blocked_for, None);
        b.try_draw(&org("c"), later).unwrap();
        let listed: Vec<_> = b.orgs(later).into_iter().map(|o| o.org).collect();
        assert_eq!(listed, [org("a"), org("b"), org("c")]);
        assert!(b.orgs(t0 + Duration::from_secs(200)).is_empty());
    }

    #[test]
    fn concurrent_draws_take_exactly_the_budget() {
        let b = Arc::new(budget(1_000, 37));
        let now = Instant::now();
        let granted: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..200)
                .map(|i| {
                    let b = b.clone();
                    s.spawn(move || b.try_draw(&org(&format!("o{}", i % 20)), now).is_ok())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap() as usize)
                .sum()
        });
        assert_eq!(granted, 37);
        assert_eq!(b.global(now).attempts, 37);
    }
}
