//! The actor tree driven through its public handle, over the fake phone, in paused
//! time: every timer (QR rotation, backoff, bans, send waits) runs in virtual time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::{Supervisor, SupervisorParts};
use crate::connection::sim::{CREDENTIALS_FILE, Fault, SimConnector, SimTiming};
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

struct Rig {
    sup: Supervisor,
    sim: SimConnector,
    root: TempDir,
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
        let sup = spawn_sup(config, Arc::new(sim.clone()), no_events()).await;
        Self { sup, sim, root }
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

    /// Starts an org and pairs it as `phone`, up to `connected`.
    async fn connect(&self, org: &OrgId, phone: &str) -> SessionSnapshot {
        self.sup.start(org, None).await.unwrap();
        self.wait(org, SessionStatus::QrReady).await;
        self.sim.scan(org, phone).unwrap();
        let snapshot = self.wait(org, SessionStatus::Connected).await;
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

#[tokio::test(start_paused = true)]
async fn start_scan_connect_and_send() {
    let rig = Rig::new().await;
    let a = org("2");
    let started = rig.sup.start(&a, None).await.unwrap();
    assert!(!started.already_running);
    let qr = rig.wait(&a, SessionStatus::QrReady).await;
    assert_eq!(qr.qr, rig.sim.current_qr(&a));
    rig.sim.scan(&a, "573001234567").unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(holds_credentials(&rig.live(&a)));

    let sent = rig
        .sup
        .send_text(&a, "573009999999", "Su cita es mañana", None)
        .await
        .unwrap();
    let log = rig.sim.sent(&a);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].message_id, sent.message_id);
    assert_eq!(log[0].to, "573009999999");

    let again = rig.sup.start(&a, None).await.unwrap();
    assert!(again.already_running, "a running session is left alone");
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn three_bad_macs_back_up_wipe_and_pair_again() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    let snapshot = rig.wait(&a, SessionStatus::QrReady).await;
    assert!(snapshot.qr.is_some());
    assert_eq!(snapshot.phone_number, None);
    let backups = rig.backups(&a);
    assert_eq!(backups.len(), 1);
    assert!(backups[0].ends_with("_bad_mac"), "{backups:?}");
    let backup = rig.root.path().join("_backups/2").join(&backups[0]);
    assert!(
        holds_credentials(&backup),
        "the backup holds the credentials file"
    );
    assert_eq!(
        std::fs::read_dir(rig.live(&a)).unwrap().count(),
        0,
        "live dir empty"
    );
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn bad_macs_spread_beyond_the_window_do_not_heal() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.settle_for(Duration::from_secs(20)).await;
    }
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Connected);
    assert!(rig.backups(&a).is_empty());
}

#[tokio::test(start_paused = true)]
async fn five_cleanups_keep_three_backups() {
    let rig = Rig::with(|c| c.cleanups = WindowSpec::new(10, LONG)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for round in 0..5 {
        for _ in 0..3 {
            rig.inject(&a, Fault::BadMac { sender: None }).await;
        }
        rig.wait(&a, SessionStatus::QrReady).await;
        assert_eq!(rig.backups(&a).len(), (round + 1).min(3));
        rig.sim.scan(&a, "573001234567").unwrap();
        rig.wait(&a, SessionStatus::Connected).await;
    }
    let backups = rig.backups(&a);
    assert_eq!(backups.len(), 3, "{backups:?}");
    for name in &backups {
        let dir = rig.root.path().join("_backups/2").join(name);
        assert!(holds_credentials(&dir), "{name} holds the credentials");
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_error_reconnects_and_two_heal() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::StreamError { code: None }).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Reconnecting);
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(rig.backups(&a).is_empty());

    rig.inject(&a, Fault::StreamError { code: Some(500) }).await;
    let snapshot = rig.wait(&a, SessionStatus::QrReady).await;
    assert!(snapshot.qr.is_some());
    assert_eq!(rig.backups(&a).len(), 1);
    assert!(rig.backups(&a)[0].ends_with("_stream_errors"));
}

#[tokio::test(start_paused = true)]
async fn restart_required_reconnects_at_once_and_is_not_counted() {
    let rig = Rig::new().await;
    let a = org("2");
    // Pairing itself ends with a 515; then one stream error must not heal (limit 2).
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::RestartRequired).await;
        rig.wait(&a, SessionStatus::Connected).await;
        rig.inject(&a, Fault::StreamError { code: Some(515) }).await;
        rig.wait(&a, SessionStatus::Connected).await;
    }
    rig.inject(&a, Fault::StreamError { code: None }).await;
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(rig.backups(&a).is_empty());
}

#[tokio::test(start_paused = true)]
async fn server_busy_and_network_failures_back_off_without_counting() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::ServerBusy { code: Some(429) }).await;
        assert_eq!(rig.sup.status(&a).status, SessionStatus::Reconnecting);
        rig.wait(&a, SessionStatus::Connected).await;
    }
    rig.inject(&a, Fault::NetworkDown).await;
    // Many failed reconnects while the network is down: never a cleanup.
    rig.settle_for(Duration::from_secs(600)).await;
    let snapshot = rig.sup.status(&a);
    assert_eq!(snapshot.status, SessionStatus::Reconnecting, "{snapshot:?}");
    rig.inject(&a, Fault::NetworkUp).await;
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(rig.backups(&a).is_empty());
    assert!(holds_credentials(&rig.live(&a)));
}

#[tokio::test(start_paused = true)]
async fn reconnect_backoff_grows_and_is_capped() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    let mut delays = Vec::new();
    for _ in 0..9 {
        let snap = rig.sup.status(&a);
        let due = snap.next_attempt_at.expect("a backoff has a next attempt");
        // The structured time and the words agree (to the wall clock's drift
        // between computing one and stamping the snapshot).
        let ms = (due - snap.updated_at).num_milliseconds().unsigned_abs();
        let reason = snap.reason.unwrap();
        let announced: u64 = reason
            .rsplit("retrying in ")
            .next()
            .and_then(|r| r.trim_end_matches(" ms").parse().ok())
            .unwrap_or_else(|| panic!("{reason}"));
        assert!(announced.abs_diff(ms) <= 5, "{announced} vs {ms}");
        delays.push(announced);
        rig.settle_for(Duration::from_millis(announced)).await;
    }
    assert!(delays.windows(2).take(5).all(|w| w[1] > w[0]), "{delays:?}");
    assert!(delays.iter().all(|&d| d <= 60_000), "{delays:?}");
    assert!(delays[8] >= 48_000, "reaches the cap band: {delays:?}");
}

#[tokio::test(start_paused = true)]
async fn replaced_means_conflict_without_reconnect_or_wipe() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::Replaced).await;
    rig.wait(&a, SessionStatus::Conflict).await;
    rig.settle_for(Duration::from_secs(600)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Conflict);
    assert!(holds_credentials(&rig.live(&a)));
    assert!(rig.backups(&a).is_empty());
    // An explicit start takes the session back from the stored credentials.
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn logged_out_backs_up_and_wipes() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::LoggedOut { code: Some(401) }).await;
    rig.wait(&a, SessionStatus::LoggedOut).await;
    rig.settle_for(Duration::from_millis(10)).await;
    assert_eq!(rig.backups(&a).len(), 1);
    assert!(!holds_credentials(&rig.live(&a)));
    rig.settle_for(Duration::from_secs(600)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::LoggedOut);
    // start-session gives a new QR.
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::QrReady).await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_ban_waits_for_its_expiry() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::TemporaryBan { seconds: Some(900) })
        .await;
    let banned = rig.wait(&a, SessionStatus::Banned).await;
    let retry_at = banned.retry_at.expect("retry_at");
    let left = retry_at - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(890) && left <= chrono::Duration::seconds(900));
    let started = rig.sup.start(&a, None).await.unwrap();
    assert!(
        started.already_running,
        "an explicit start does not break a ban"
    );
    rig.settle_for(Duration::from_secs(890)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Banned);
    rig.settle_for(Duration::from_secs(11)).await;
    rig.wait(&a, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn a_ban_survives_a_crash_of_its_actor() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::TemporaryBan { seconds: Some(600) })
        .await;
    rig.wait(&a, SessionStatus::Banned).await;
    rig.sup.crash_for_test(&a);
    rig.settle_for(Duration::from_secs(5)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Banned);
    rig.settle_for(Duration::from_secs(500)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Banned);
    rig.settle_for(Duration::from_secs(100)).await;
    rig.wait(&a, SessionStatus::Connected).await;
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn client_outdated_stops() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::ClientOutdated).await;
    rig.wait(&a, SessionStatus::ClientOutdated).await;
    rig.settle_for(Duration::from_secs(600)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::ClientOutdated);
    assert!(holds_credentials(&rig.live(&a)));
}

#[tokio::test(start_paused = true)]
async fn unscanned_qr_codes_run_out_into_disconnected() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.sup.start(&a, None).await.unwrap();
    let first = rig.wait(&a, SessionStatus::QrReady).await.qr.unwrap();
    let rotated = rig
        .sup
        .wait_for(&a, LONG, |s| s.qr.as_ref().is_some_and(|q| *q != first))
        .await;
    assert!(rotated.is_some(), "the QR rotates");
    let done = rig.wait(&a, SessionStatus::Disconnected).await;
    assert!(done.qr.is_none());
    // start-session resumes from disconnected.
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::QrReady).await;

    rig.inject(&a, Fault::QrExhausted).await;
    rig.wait(&a, SessionStatus::Disconnected).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_one_org_leaves_the_others_alone() {
    let rig = Rig::new().await;
    let (a, b) = (org("a"), org("b"));
    rig.connect(&a, "573001111111").await;
    rig.connect(&b, "573002222222").await;
    let b_before = rig.sup.status(&b);
    rig.sup.crash_for_test(&a);
    settle().await;
    // The supervisor restarts `a` and it resumes from its stored credentials.
    rig.wait(&a, SessionStatus::Connected).await;
    let b_after = rig.sup.status(&b);
    assert_eq!(b_after.status, SessionStatus::Connected);
    assert_eq!(
        b_after.updated_at, b_before.updated_at,
        "b was never touched"
    );
    rig.sup
        .send_text(&b, "573009999999", "hola", None)
        .await
        .unwrap();
    rig.sup
        .send_text(&a, "573009999999", "hola", None)
        .await
        .unwrap();
    assert_eq!(rig.sim.overlaps(), 0, "never two clients on one store");
}

#[tokio::test(start_paused = true)]
async fn too_many_cleanups_quarantine_until_an_explicit_start() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.wait(&a, SessionStatus::QrReady).await;
        rig.sim.scan(&a, "573001234567").unwrap();
        rig.wait(&a, SessionStatus::Connected).await;
    }
    assert_eq!(rig.backups(&a).len(), 3);
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    let q = rig.wait(&a, SessionStatus::Quarantined).await;
    assert!(q.reason.unwrap().contains("automatic cleanups"));
    // Quarantine keeps the session as it is and does not loop.
    assert_eq!(rig.backups(&a).len(), 3);
    assert!(holds_credentials(&rig.live(&a)));
    rig.settle_for(Duration::from_secs(7200)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Quarantined);
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn one_number_serves_one_org() {
    let rig = Rig::new().await;
    let (a, b) = (org("a"), org("b"));
    rig.connect(&a, "573001234567").await;
    rig.sup.start(&b, None).await.unwrap();
    rig.wait(&b, SessionStatus::QrReady).await;
    rig.sim.scan(&b, "573001234567").unwrap();
    let _refused = rig.wait(&b, SessionStatus::NumberInUse).await;
    rig.settle_for(Duration::from_millis(10)).await;
    assert!(
        !holds_credentials(&rig.live(&b)),
        "the second pairing is wiped"
    );
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Connected);
    rig.sup
        .send_text(&a, "573009999999", "hola", None)
        .await
        .unwrap();
    // Once `a` logs out, the number is free for `b`.
    rig.sup.logout(&a).await.unwrap();
    rig.sup.start(&b, None).await.unwrap();
    rig.wait(&b, SessionStatus::QrReady).await;
    rig.sim.scan(&b, "573001234567").unwrap();
    rig.wait(&b, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn a_send_while_reconnecting_waits_for_the_connection() {
    let rig = Rig::with(|c| c.send_wait = Duration::from_secs(20)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Reconnecting);

    let sup = rig.sup.clone();
    let org_a = a.clone();
    let send =
        tokio::spawn(async move { sup.send_text(&org_a, "573009999999", "hola", None).await });
    rig.settle_for(Duration::from_secs(2)).await;
    rig.inject(&a, Fault::NetworkUp).await;
    let sent = send
        .await
        .unwrap()
        .expect("sent once the connection came back");
    assert_eq!(rig.sim.sent(&a)[0].message_id, sent.message_id);
}

#[tokio::test(start_paused = true)]
async fn a_send_while_reconnecting_fails_with_the_status_after_the_wait() {
    let rig = Rig::with(|c| c.send_wait = Duration::from_secs(20)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    let result = rig.sup.send_text(&a, "573009999999", "hola", None).await;
    assert_eq!(
        result,
        Err(SendError::NotConnected {
            status: SessionStatus::Reconnecting
        })
    );
    assert!(rig.sim.sent(&a).is_empty());
}

#[tokio::test(start_paused = true)]
async fn sends_fail_clearly_without_a_connected_session() {
    let rig = Rig::new().await;
    let a = org("2");
    assert_eq!(
        rig.sup.send_text(&a, "573009999999", "x", None).await,
        Err(SendError::NoSession)
    );
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::QrReady).await;
    assert_eq!(
        rig.sup.send_text(&a, "573009999999", "x", None).await,
        Err(SendError::NotConnected {
            status: SessionStatus::QrReady
        })
    );
    rig.sim.scan(&a, "573001234567").unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    // A send the connection refuses is tried again, with the same id.
    rig.inject(&a, Fault::SendFails).await;
    let sent = rig
        .sup
        .send_text(&a, "573009999999", "x", None)
        .await
        .unwrap();
    let id = crate::outbox::MessageId::parse(&sent.message_id).unwrap();
    let record = rig.sup.outbox().get(&id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 2);
    assert_eq!(rig.sim.sent(&a).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn logout_and_force_clean_remove_the_live_session() {
    let rig = Rig::new().await;
    let a = org("2");
    assert_eq!(
        rig.sup.logout(&a).await,
        Err(crate::SessionError::NoSession)
    );
    rig.connect(&a, "573001234567").await;
    let out = rig.sup.logout(&a).await.unwrap();
    assert!(out.backup.is_some());
    assert!(!rig.live(&a).exists(), "live directory gone");
    assert_eq!(rig.sup.status(&a).status, SessionStatus::NotStarted);
    assert!(rig.sup.sessions().is_empty());

    rig.connect(&a, "573001234567").await;
    rig.sup.shutdown().await;
    // A clean on a stopped supervisor's directory, from a new one.
    let sim = SimConnector::default();
    let sup = spawn_sup(
        SupervisorConfig::new(rig.root.path()),
        Arc::new(sim),
        no_events(),
    )
    .await;
    let out = sup.force_clean(&a).await.unwrap();
    assert!(out.backup.is_some());
    assert!(!rig.live(&a).exists());
    assert_eq!(sup.force_clean(&org("never")).await.unwrap().backup, None);
}

#[tokio::test(start_paused = true)]
async fn stored_sessions_resume_without_a_qr() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.sup.shutdown().await;
    assert!(holds_credentials(&rig.live(&a)), "shutdown never logs out");

    let sup = spawn_sup(
        SupervisorConfig::new(rig.root.path()),
        Arc::new(rig.sim.clone()),
        no_events(),
    )
    .await;
    assert_eq!(
        sup.resume_stored(Duration::from_millis(250)).await.unwrap(),
        vec![a.clone()]
    );
    let seen = sup
        .wait_for(&a, LONG, |s| {
            assert_ne!(s.status, SessionStatus::QrReady, "no QR on resume");
            s.status == SessionStatus::Connected
        })
        .await;
    assert!(seen.is_some());
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_escaping_org_id_never_reaches_the_disk() {
    let rig = Rig::new().await;
    for raw in ["../x", "..", "", "a/b", "_backups"] {
        assert!(raw.parse::<OrgId>().is_err(), "{raw:?}");
    }
    let entries = std::fs::read_dir(rig.root.path()).unwrap().count();
    assert_eq!(entries, 0, "nothing was created");
    assert!(!rig.root.path().parent().unwrap().join("x").exists());
}

/// Records every event, for assertions.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<crate::SessionEvent>>);

impl crate::EventSink for Recorder {
    fn emit(&self, event: crate::SessionEvent) {
        self.0.lock().unwrap().push(event);
    }
}

#[tokio::test(start_paused = true)]
async fn every_step_of_a_session_is_reported_in_order() {
    use crate::EventKind as K;
    let root = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let recorder = Arc::new(Recorder::default());
    let mut config = SupervisorConfig::new(root.path());
    // One attempt per message, so a refused send fails at once.
    config.outbox.max_attempts = 1;
    let sup = spawn_sup(config, Arc::new(sim.clone()), recorder.clone()).await;
    let (a, b) = (org("a"), org("b"));
    sup.start(&b, None).await.unwrap();
    sup.start(&a, None).await.unwrap();
    sup.wait_for(&a, LONG, |s| s.status == SessionStatus::QrReady)
        .await
        .unwrap();
    sim.scan(&a, "573001234567").unwrap();
    sup.wait_for(&a, LONG, |s| s.status == SessionStatus::Connected)
        .await
        .unwrap();
    sup.send_text(&a, "573009999999", "hola", None)
        .await
        .unwrap();
    sim.inject(&a, Fault::SendFails).unwrap();
    assert!(
        sup.send_text(&a, "573009999999", "hola", None)
            .await
            .is_err()
    );
    for _ in 0..3 {
        sim.inject(&a, Fault::BadMac { sender: None }).unwrap();
        settle().await;
    }
    sup.wait_for(&a, LONG, |s| s.status == SessionStatus::QrReady)
        .await
        .unwrap();
    settle().await;

    let events = recorder.0.lock().unwrap().clone();
    assert!(events.iter().all(|e| e.org == a || e.org == b));
    let names: Vec<String> = events
        .iter()
        .filter(|e| e.org == a)
        .map(|e| match &e.kind {
            K::StatusChanged { .. } => format!("status:{}", e.status),
            K::Qr { .. } => "qr".into(),
            K::Connected { phone } => format!("connected:{phone}"),
            K::Cleaned { reason, backup } => {
                assert!(backup.is_some());
                format!("cleaned:{reason}")
            }
            K::DecryptError => "decrypt".into(),
            K::StreamError { .. } => "stream".into(),
            K::Message(m) => format!("message:{}:{}", m.status, m.to),
        })
        .collect();
    let expected = [
        "status:connecting",
        "status:qr_ready",
        "qr",
        "status:reconnecting",
        "status:connected",
        "connected:573001234567",
        "message:sent:573009999999",
        "message:failed:573009999999",
        "decrypt",
        "decrypt",
        "decrypt",
        "status:connecting",
        "cleaned:bad_mac",
        "status:qr_ready",
        "qr",
    ];
    // The QR rotates only after 60 s, so nothing else can sneak in.
    assert_eq!(names, expected, "{names:?}");
}

#[tokio::test(start_paused = true)]
async fn stored_sessions_resume_one_after_another() {
    let rig = Rig::new().await;
    let orgs = [org("a"), org("b"), org("c")];
    for (i, o) in orgs.iter().enumerate() {
        rig.connect(o, &format!("57300000000{i}")).await;
    }
    rig.sup.shutdown().await;
    let sup = spawn_sup(
        SupervisorConfig::new(rig.root.path()),
        Arc::new(rig.sim.clone()),
        no_events(),
    )
    .await;
    let started = |sup: &Supervisor| {
        orgs.iter()
            .filter(|o| sup.status(o).status != SessionStatus::NotStarted)
            .count()
    };
    let resume = tokio::spawn({
        let sup = sup.clone();
        async move { sup.resume_stored(Duration::from_secs(1)).await }
    });
    settle().await;
    assert_eq!(started(&sup), 1, "the first at once");
    tokio::time::advance(Duration::from_millis(450)).await;
    settle().await;
    assert_eq!(started(&sup), 1, "no second before half the gap");
    tokio::time::advance(Duration::from_millis(1100)).await;
    settle().await;
    assert_eq!(started(&sup), 2, "the second within 1.5 gaps");
    assert_eq!(resume.await.unwrap().unwrap().len(), 3);
    for o in &orgs {
        sup.wait_for(o, LONG, |s| s.status == SessionStatus::Connected)
            .await
            .unwrap();
    }
}

fn budget_of(per_org: usize, global: usize) -> crate::BudgetSpec {
    crate::BudgetSpec {
        per_org: WindowSpec::new(per_org, Duration::from_secs(24 * 3600)),
        global: WindowSpec::new(global, Duration::from_secs(3600)),
    }
}

/// The old server checked its limit, slept, then recorded: ten concurrent starts
/// passed a limit of three. Here exactly three pass and seven are `blocked`.
#[tokio::test(start_paused = true)]
async fn concurrent_starts_draw_exactly_the_global_budget() {
    let rig = Rig::with(|c| c.budget = budget_of(10, 3)).await;
    let orgs: Vec<OrgId> = (0..10).map(|i| org(&format!("o{i}"))).collect();
    let outcomes = start_all(&rig.sup, &orgs).await;
    let blocked = outcomes
        .iter()
        .filter(|o| o.as_ref().unwrap().snapshot.status == SessionStatus::Blocked)
        .count();
    assert_eq!(blocked, 7);
    for o in &outcomes {
        let s = &o.as_ref().unwrap().snapshot;
        assert_eq!(
            s.status == SessionStatus::Blocked,
            s.retry_at.is_some(),
            "{s:?}"
        );
    }
    let global = rig.sup.budget().global(tokio::time::Instant::now());
    assert_eq!((global.attempts, global.limit), (3, 3));
    assert!(global.blocked_for.is_some());
    // The same org started ten times at once is one attempt.
    let rig = Rig::with(|c| c.budget = budget_of(10, 3)).await;
    let a = org("same");
    let outcomes = start_all(&rig.sup, &vec![a.clone(); 10]).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| !o.as_ref().unwrap().already_running)
            .count(),
        1
    );
    assert_eq!(
        rig.sup
            .budget()
            .org(&a, tokio::time::Instant::now())
            .attempts,
        1
    );
}

/// A `blocked` org retries by itself when `retry_at` passes; a start before then
/// stays `blocked`.
#[tokio::test(start_paused = true)]
async fn a_spent_org_budget_blocks_then_retries_by_itself() {
    let rig = Rig::with(|c| c.budget = budget_of(2, 60)).await;
    let a = org("2");
    for _ in 0..2 {
        rig.sup.start(&a, None).await.unwrap();
        rig.wait(&a, SessionStatus::QrReady).await;
        rig.sup.force_clean(&a).await.unwrap();
    }
    let out = rig.sup.start(&a, None).await.unwrap();
    assert_eq!(out.snapshot.status, SessionStatus::Blocked);
    let retry_at = out.snapshot.retry_at.expect("retry_at");
    assert!(retry_at > chrono::Utc::now() + chrono::Duration::hours(23));
    assert!(out.snapshot.reason.unwrap().contains("budget"));
    rig.settle_for(Duration::from_secs(3600)).await;
    let again = rig.sup.start(&a, None).await.unwrap();
    assert_eq!(again.snapshot.status, SessionStatus::Blocked, "still spent");
    assert_eq!(
        rig.sup
            .budget()
            .org(&a, tokio::time::Instant::now())
            .attempts,
        2
    );
    // A day after the first attempt, it connects on its own.
    rig.settle_for(Duration::from_secs(24 * 3600)).await;
    rig.wait(&a, SessionStatus::QrReady).await;
}

/// Reconnects inside a live session (network blips, 515, busy servers) and an
/// actor restart never draw from the budget.
#[tokio::test(start_paused = true)]
async fn reconnects_do_not_draw_from_the_budget() {
    let rig = Rig::with(|c| c.budget = budget_of(1, 60)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await; // one attempt (pairing) + the 515
    rig.inject(&a, Fault::NetworkDown).await;
    rig.settle_for(Duration::from_secs(120)).await;
    rig.inject(&a, Fault::NetworkUp).await;
    rig.wait(&a, SessionStatus::Connected).await;
    rig.inject(&a, Fault::ServerBusy { code: Some(503) }).await;
    rig.wait(&a, SessionStatus::Connected).await;
    rig.sup.crash_for_test(&a);
    rig.settle_for(Duration::from_secs(60)).await;
    rig.wait(&a, SessionStatus::Connected).await;
    let now = tokio::time::Instant::now();
    assert_eq!(rig.sup.budget().org(&a, now).attempts, 1);
    assert_eq!(rig.sup.budget().global(now).attempts, 1);
}

/// Starts every org of `orgs` at once, each from its own task.
async fn start_all(
    sup: &Supervisor,
    orgs: &[OrgId],
) -> Vec<Result<super::StartOutcome, crate::SessionError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, o) in orgs.iter().cloned().enumerate() {
        let sup = sup.clone();
        set.spawn(async move { (i, sup.start(&o, None).await) });
    }
    let mut out: Vec<_> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
