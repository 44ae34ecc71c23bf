//! CONTRACT §3 and §4 walked through the org actor's state machine, and the
//! promises about its edges: recovery after a crash, no waiting on a slow store.

use super::*;
use crate::EventKind;
use crate::connection::{ConnectRequest, Connection, ConnectionError, Connector, EventStream};

/// What one connection signal of CONTRACT §4 does to a connected session.
#[tokio::test(start_paused = true)]
async fn every_contract_section_4_row_through_the_machine() {
    use SessionStatus as S;
    struct Row {
        name: &'static str,
        fault: Fault,
        /// The status it settles in.
        then: S,
        /// Whether the session was backed up and wiped.
        backup: bool,
    }
    let rows = [
        Row {
            name: "one undecryptable message: counted, nothing else",
            fault: Fault::BadMac { sender: None },
            then: S::Connected,
            backup: false,
        },
        Row {
            name: "stream error below the limit: reconnect",
            fault: Fault::StreamError { code: Some(500) },
            then: S::Connected,
            backup: false,
        },
        Row {
            name: "515: reconnect at once",
            fault: Fault::RestartRequired,
            then: S::Connected,
            backup: false,
        },
        Row {
            name: "503: back off",
            fault: Fault::ServerBusy { code: Some(503) },
            then: S::Connected,
            backup: false,
        },
        Row {
            name: "429: back off",
            fault: Fault::StreamError { code: Some(429) },
            then: S::Connected,
            backup: false,
        },
        Row {
            name: "replaced: conflict",
            fault: Fault::Replaced,
            then: S::Conflict,
            backup: false,
        },
        Row {
            name: "logged out: backed up, wiped",
            fault: Fault::LoggedOut { code: Some(401) },
            then: S::LoggedOut,
            backup: true,
        },
        Row {
            name: "516: logged out",
            fault: Fault::StreamError { code: Some(516) },
            then: S::LoggedOut,
            backup: true,
        },
        Row {
            name: "temporary ban",
            fault: Fault::TemporaryBan { seconds: Some(600) },
            then: S::Banned,
            backup: false,
        },
        Row {
            name: "405: client outdated",
            fault: Fault::ClientOutdated,
            then: S::ClientOutdated,
            backup: false,
        },
    ];
    for row in rows {
        let rig = Rig::new().await;
        let a = org("2");
        rig.connect(&a, "573001234567").await;
        rig.inject(&a, row.fault.clone()).await;
        rig.settle_for(Duration::from_secs(5)).await;
        let now = rig.sup.status(&a);
        assert_eq!(now.status, row.then, "{}: {:?}", row.name, now.reason);
        assert_eq!(!rig.backups(&a).is_empty(), row.backup, "{}", row.name);
        assert_eq!(rig.sim.overlaps(), 0, "{}", row.name);
    }
    // Network failures back off and come back; unscanned QRs end `disconnected`.
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    assert_eq!(rig.sup.status(&a).status, S::Reconnecting);
    rig.inject(&a, Fault::NetworkUp).await;
    rig.wait(&a, S::Connected).await;
    let b = org("3");
    rig.sup.start(&b, None).await.unwrap();
    rig.wait(&b, S::QrReady).await;
    rig.inject(&b, Fault::QrExhausted).await;
    assert_eq!(rig.sup.status(&b).status, S::Disconnected);
}

/// An org actor that crashes while `connected` comes back as `reconnecting`,
/// never `disconnected` (the Django client force-cleans on that).
#[tokio::test(start_paused = true)]
async fn a_crash_while_connected_reports_reconnecting_not_disconnected() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    let mut statuses = rig.sup.watch(&a).unwrap();
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while statuses.changed().await.is_ok() {
            let status = statuses.borrow_and_update().status;
            seen.push(status);
            if status == SessionStatus::Connected {
                break;
            }
        }
        seen
    });
    let before = rig.events.events().len();
    rig.sup.crash_for_test(&a);
    settle().await;
    rig.wait(&a, SessionStatus::Connected).await;
    let seen = seen.await.unwrap();
    assert!(seen.contains(&SessionStatus::Reconnecting), "{seen:?}");
    assert!(
        !seen.contains(&SessionStatus::Disconnected) && !seen.contains(&SessionStatus::Connecting),
        "{seen:?}"
    );
    let disconnected = rig.events.events()[before..]
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StatusChanged { .. }))
        .filter(|e| e.status == SessionStatus::Disconnected)
        .count();
    assert_eq!(
        disconnected, 0,
        "no session.disconnected for a healthy session"
    );
    assert_eq!(rig.sim.overlaps(), 0);
}

/// A connector whose credentials check for one directory blocks until released.
struct SlowProbe {
    sim: SimConnector,
    slow: PathBuf,
    gate: Arc<(std::sync::Mutex<(bool, bool)>, std::sync::Condvar)>,
}

#[async_trait::async_trait]
impl Connector for SlowProbe {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, EventStream), ConnectionError> {
        self.sim.connect(request).await
    }

    fn has_credentials(&self, dir: &Path) -> Result<bool, ConnectionError> {
        if dir == self.slow {
            let (lock, cvar) = &*self.gate;
            let mut state = lock.lock().unwrap();
            state.0 = true; // entered
            while !state.1 {
                state = cvar.wait(state).unwrap();
            }
        }
        self.sim.has_credentials(dir)
    }
}

/// While one org's store takes seconds to read, the rest of the API answers at
/// once: the store is read by that org's driver, never by an actor's handler.
/// Real time: a blocked probe holds tokio's paused clock still.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_holds_up_nobody_else() {
    let root = tempfile::tempdir().unwrap();
    let slow = org("slow");
    let gate = Arc::new((
        std::sync::Mutex::new((false, false)),
        std::sync::Condvar::new(),
    ));
    let connector = SlowProbe {
        sim: SimConnector::default(),
        slow: fs_ops::live_dir(root.path(), &slow),
        gate: gate.clone(),
    };
    let sup = spawn_sup(
        SupervisorConfig::new(root.path()),
        Arc::new(connector),
        no_events(),
    )
    .await;
    let slow_start = tokio::spawn({
        let sup = sup.clone();
        let slow = slow.clone();
        async move { sup.start(&slow, None).await }
    });
    // Until the slow probe has begun.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gate.0.lock().unwrap().0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the probe never began"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let quick = Duration::from_secs(2);
    let other = org("other");
    let started = tokio::time::timeout(quick, sup.start(&other, None))
        .await
        .expect("another org starts while the slow store is read")
        .unwrap();
    assert_eq!(started.snapshot.status, SessionStatus::Connecting);
    assert!(tokio::time::timeout(quick, sup.ping(quick)).await.unwrap());
    assert_eq!(sup.status(&slow).status, SessionStatus::NotStarted);
    assert_eq!(sup.sessions().len(), 1);
    sup.wait_for(&other, quick, |s| s.status == SessionStatus::QrReady)
        .await
        .expect("the other org shows its QR meanwhile");
    assert!(
        !slow_start.is_finished(),
        "the slow start waits for its store"
    );

    *gate.0.lock().unwrap() = (true, true);
    gate.1.notify_all();
    let outcome = tokio::time::timeout(Duration::from_secs(10), slow_start)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome.snapshot.status, SessionStatus::Connecting);
    sup.shutdown().await;
}
