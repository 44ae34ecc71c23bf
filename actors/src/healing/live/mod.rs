//! Replays a [`Trace`] through the real actor tree: the supervisor, the org actor, its
//! driver and the storage actor over the fake phone ([`SimConnector`]), in paused tokio
//! time. The same trace and delivery rules as the pure [`replay`](super::replay), which
//! models this actor with a bare [`Healer`](super::Healer), and the same [`Outcome`], so
//! one judge ([`verdict`](super::replay::verdict),
//! [`broken_labels`](super::replay::broken_labels)) checks both.
//!
//! How the world of a trace reaches the session:
//! - the clock moves by sleeping until the next event; paused time runs the actors'
//!   own timers (reconnect backoffs) on the way, in order, so a reconnect due at an
//!   event's time comes first, as in the model. After every step the walk lets the tree
//!   settle: it waits while the org is probing, opening or wiping, work that takes no
//!   virtual time over the fake phone (a step that does is an error);
//! - an event that a heal restart cured (`until restart`) is skipped;
//! - a network drop takes the fake phone's network down, connected or not (it keeps
//!   reconnects failing), and up again after its `down`;
//! - any other event reaches only a connected session: an undecryptable message as a
//!   Bad MAC from its sender, a stream error, a 515 or a 429/503 as that fault. A one-off
//!   undecryptable message sent meanwhile waits and is delivered, with the whole backlog
//!   at once, when the session is next connected; anything else is lost;
//! - a heal's wipe ends the walk once the new pairing shows its QR code (`qr_ready`):
//!   the outcome's `wiped_at` is that moment.
//!
//! Run it on a current-thread runtime with paused time (`#[tokio::test(start_paused =
//! true)]`, or `Builder::new_current_thread().start_paused(true)`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::HealingPolicy;
use super::replay::{DaemonModel, Outcome};
use super::trace::Trace;
use crate::connection::sim::{Fault, SimConnector, SimError, SimTiming};
use crate::events::{EventKind, EventSink, SessionEvent};
use crate::outbox::MemoryStore;
use crate::{Backoff, OrgId, SessionError, SessionStatus};
use crate::{Supervisor, SupervisorConfig, SupervisorParts};

mod walk;

pub use walk::walk;

/// Records every event with the (virtual) time it was emitted.
#[derive(Default)]
pub struct LiveLog(Mutex<Vec<(Instant, SessionEvent)>>);

impl EventSink for LiveLog {
    fn emit(&self, event: SessionEvent) {
        self.0.lock().unwrap().push((Instant::now(), event));
    }
}

impl LiveLog {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The events of `org` from the `from`-th event of the log on, and where the log
    /// ends.
    fn since(&self, from: usize, org: &OrgId) -> (Vec<(Instant, EventKind)>, usize) {
        let log = self.0.lock().unwrap();
        let fresh = log.iter().skip(from).filter(|(_, e)| e.org == *org);
        let fresh = fresh.map(|(at, e)| (*at, e.kind.clone())).collect();
        (fresh, log.len())
    }
}

/// Why a live replay could not be carried out (never a verdict on the healing).
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("the actor tree: {0}")]
    Tree(#[from] SessionError),
    #[error("the fake phone did not scan the QR code: {0}")]
    Scan(SimError),
    #[error("the fake phone refused {fault:?}: {error}")]
    Inject { fault: Fault, error: SimError },
    #[error("the org never reacted to {0:?}")]
    NoReaction(Fault),
    #[error("the tree took {0:?} of virtual time to settle at {1:?}; the walk would drift")]
    Drift(Duration, Duration),
    #[error("the session was wiped but then stood at {0} instead of qr_ready")]
    NoQrAfterWipe(SessionStatus),
    #[error("the org {0} has no session to follow")]
    NoSession(OrgId),
    #[error("the org never reached {0} while pairing")]
    NeverReached(SessionStatus),
}

/// The actor tree a walk drives: `org` is paired and connected, and `log` receives
/// the tree's events.
pub struct Tree<'a> {
    pub sup: &'a Supervisor,
    pub sim: &'a SimConnector,
    pub org: &'a OrgId,
    pub log: &'a LiveLog,
}

/// The configuration a live replay runs with: `policy`, and the default reconnect
/// backoff without jitter, so that a replay is exact.
pub fn config(sessions_dir: &Path, policy: HealingPolicy) -> SupervisorConfig {
    let mut config = SupervisorConfig::new(sessions_dir);
    config.healing = policy;
    config.reconnect = reconnect();
    config
}

/// The replay's model of the tree a live replay runs: its reconnect backoff, and heal
/// restarts that take no virtual time (the fake phone connects at once).
pub fn model() -> DaemonModel {
    DaemonModel {
        reconnect: reconnect(),
        restart_takes: Duration::ZERO,
    }
}

fn reconnect() -> Backoff {
    Backoff {
        jitter: 0.0,
        ..Backoff::default()
    }
}

/// Replays `trace` with `policy` through a fresh actor tree whose sessions live in
/// `sessions_dir` (empty): one org is paired with the fake phone, then walked.
pub async fn replay_live(
    trace: &Trace,
    policy: HealingPolicy,
    sessions_dir: &Path,
) -> Result<Outcome, LiveError> {
    let sim = SimConnector::new(SimTiming::default());
    let log = Arc::new(LiveLog::default());
    let sup = Supervisor::spawn(SupervisorParts {
        config: config(sessions_dir, policy),
        connector: Arc::new(sim.clone()),
        outbox: Arc::new(MemoryStore::new()),
        events: log.clone(),
    })
    .await?;
    let org = OrgId::parse("corpus").expect("a valid id");
    let outcome = async {
        pair(&sup, &sim, &org).await?;
        let tree = Tree {
            sup: &sup,
            sim: &sim,
            org: &org,
            log: &log,
        };
        walk(trace, &tree).await
    }
    .await;
    sup.shutdown().await;
    outcome
}

/// Starts `org` and pairs it with the fake phone, up to `connected`.
async fn pair(sup: &Supervisor, sim: &SimConnector, org: &OrgId) -> Result<(), LiveError> {
    const LONG: Duration = Duration::from_secs(3600);
    let reach = async |status| {
        let reached = sup.wait_for(org, LONG, |s| s.status == status).await;
        reached.map(drop).ok_or(LiveError::NeverReached(status))
    };
    sup.start(org, None).await?;
    reach(SessionStatus::QrReady).await?;
    sim.scan(org, "573001234567").map_err(LiveError::Scan)?;
    reach(SessionStatus::Connected).await
}
