//! The actor tree driven through its public handle, over the fake phone, in paused
//! time: every timer (QR rotation, backoff, bans, send waits) runs in virtual time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::{Supervisor, SupervisorParts};
use crate::connection::sim::{CREDENTIALS_FILE, Fault, SimConnector, SimTiming};
use crate::events::FanOut;
use crate::healing::live::LiveLog;
use crate::storage::fs_ops;
use crate::{OrgId, SendError, SessionSnapshot, SessionStatus, SupervisorConfig, WindowSpec};

const LONG: Duration = Duration::from_secs(3600);

/// A supervisor over `connector` with an in-memory outbox.
pub(crate) async fn spawn_sup(
    config: SupervisorConfig,
    connector: Arc<dyn crate::connection::Connector>,
    events: Arc<dyn crate::EventSink>,
) -> Supervisor {
    Supervisor::spawn(SupervisorParts {
        config,
        connector,
        outbox: Arc::new(crate::outbox::MemoryStore::new()),
        events,
    })
    .await
    .unwrap()
}

fn no_events() -> Arc<dyn crate::EventSink> {
    Arc::new(crate::events::NoEvents)
}

/// Records every event, for assertions.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<crate::SessionEvent>>);

impl crate::EventSink for Recorder {
    fn emit(&self, event: crate::SessionEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    fn events(&self) -> Vec<crate::SessionEvent> {
        self.0.lock().unwrap().clone()
    }
}

struct Rig {
    sup: Supervisor,
    sim: SimConnector,
    root: TempDir,
    events: Arc<Recorder>,
    /// The same events with their virtual times.
    log: Arc<LiveLog>,
}

impl Rig {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tune: impl FnOnce(&mut SupervisorConfig)) -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut config = SupervisorConfig::new(root.path());
        tune(&mut config);
        let sim = SimConnector::new(SimTiming::default());
        let events = Arc::new(Recorder::default());
        let log = Arc::new(LiveLog::default());
        let sink = Arc::new(FanOut(vec![events.clone(), log.clone()]));
        let sup = spawn_sup(config, Arc::new(sim.clone()), sink).await;
        Self {
            sup,
            sim,
            root,
            events,
            log,
        }
    }

    fn live(&self, org: &OrgId) -> PathBuf {
        fs_ops::live_dir(self.root.path(), org)
    }

    fn backups(&self, org: &OrgId) -> Vec<String> {
        fs_ops::list_backups(self.root.path(), org).unwrap()
    }

    /// Waits (in virtual time) until the org reaches `status`.
    async fn wait(&self, org: &OrgId, status: SessionStatus) -> SessionSnapshot {
        match self.sup.wait_for(org, LONG, |s| s.status == status).await {
            Some(snapshot) => snapshot,
            None => panic!(
                "{org} never reached {status}; now {:?}",
                self.sup.status(org)
            ),
        }
    }

    /// Starts an org and waits for its QR code (never paired yet).
    async fn show_qr(&self, org: &OrgId) {
        self.sup.start(org, None).await.unwrap();
        self.wait(org, SessionStatus::QrReady).await;
    }

    /// Starts an org and pairs it as `phone`, up to `connected`.
    async fn connect(&self, org: &OrgId, phone: &str) -> SessionSnapshot {
        let snapshot = pair(&self.sup, &self.sim, org, phone).await;
        assert_eq!(snapshot.phone_number.as_deref(), Some(phone));
        snapshot
    }

    async fn inject(&self, org: &OrgId, fault: Fault) {
        self.sim.inject(org, fault).unwrap();
        settle().await;
    }

    /// Lets every task run until all are waiting (on timers, I/O or messages).
    async fn settle_for(&self, d: Duration) {
        settle().await;
        tokio::time::advance(d).await;
        settle().await;
    }
}

/// Starts an org of a supervisor built without a `Rig` and pairs it as `phone`
/// over the fake phone, up to `connected`.
async fn pair(sup: &Supervisor, sim: &SimConnector, org: &OrgId, phone: &str) -> SessionSnapshot {
    sup.start(org, None).await.unwrap();
    for status in [SessionStatus::QrReady, SessionStatus::Connected] {
        let reached = sup.wait_for(org, LONG, |s| s.status == status).await;
        let Some(snapshot) = reached else {
            panic!("{org} never reached {status}; now {:?}", sup.status(org));
        };
        if status == SessionStatus::Connected {
            return snapshot;
        }
        sim.scan(org, phone).unwrap();
    }
    unreachable!("the loop returns once connected")
}

/// A message's record in the outbox.
async fn record(rig: &Rig, id: &crate::outbox::MessageId) -> crate::outbox::Message {
    rig.sup.outbox().get(id).await.unwrap().unwrap()
}

/// Waits (in virtual time) until the message reaches `status`.
async fn wait_message(
    rig: &Rig,
    id: &crate::outbox::MessageId,
    status: crate::outbox::MessageStatus,
) -> crate::outbox::Message {
    for _ in 0..10_000 {
        let m = record(rig, id).await;
        if m.status == status {
            return m;
        }
        rig.settle_for(Duration::from_millis(100)).await;
    }
    panic!("{id} never reached {status}: {:?}", record(rig, id).await);
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    // Storage work runs on the blocking pool; give it real time to finish.
    tokio::time::sleep(Duration::from_millis(1)).await;
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

fn holds_credentials(dir: &Path) -> bool {
    dir.join(CREDENTIALS_FILE).is_file()
}

mod budget;
mod connection;
mod corpus;
mod events;
mod healing;
mod lifecycle;
mod machine;
mod media;
mod outbox;
mod restore;
