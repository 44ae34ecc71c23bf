//! Cluster nodes over an in-memory lease store and fake phones that share one
//! record of credentials and open connections, in paused time: what a node does
//! when the database stops answering, fails for a moment, or while it stops an
//! org's slow connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::*;
use crate::connection::ConnectionError;
use crate::connection::sim::{SentRecord, SimConnector, SimCredentials, SimError, SimLedger};
use crate::storage::FileSessions;
use crate::{OrgId, SessionSnapshot, SessionStatus, Supervisor, SupervisorConfig, SupervisorParts};

const LEASE: Duration = Duration::from_secs(20);
const RENEW: Duration = Duration::from_secs(2);
/// The connection's close takes this long: a stop is under way that long.
const CLOSE: Duration = Duration::from_millis(2500);
/// The connections' grace (more than `CLOSE`); a stop is bounded by 4× + 1 s.
const GRACE: Duration = Duration::from_secs(3);
const PHONE: &str = "573001234567";

struct Lease {
    node: Option<String>,
    token: Token,
    /// `None`: released.
    expires: Option<Instant>,
}

impl Lease {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| e > now)
    }
}

/// The shared database, in memory, with its clock the test's.
#[derive(Default)]
struct MemoryLeases {
    leases: Mutex<HashMap<OrgId, Lease>>,
    nodes: Mutex<HashMap<String, Instant>>,
    next_token: AtomicI64,
    /// Every call waits forever (a silently dead connection).
    silent: AtomicBool,
    /// The next renewals fail at once (a database that refuses for a moment).
    failing_renewals: AtomicU32,
    /// Each org's last published snapshot, with the token it was written under.
    published: Mutex<HashMap<OrgId, (SessionSnapshot, Token)>>,
}

impl MemoryLeases {
    async fn answer(&self) {
        if self.silent.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }

    fn token(&self) -> Token {
        self.next_token.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// `snapshot` as another node's reader would find it now.
    fn as_published(&self, snapshot: &SessionSnapshot, token: Token) -> Published {
        let leases = self.leases.lock().unwrap();
        let owner_live = leases
            .get(&snapshot.organization_id)
            .is_some_and(|l| l.token == token && l.live(Instant::now()));
        Published {
            snapshot: snapshot.clone(),
            owner_live,
        }
    }

    /// The node holding `org`'s live lease, and until when.
    fn holder(&self, org: &OrgId) -> Option<(String, Instant)> {
        let leases = self.leases.lock().unwrap();
        let lease = leases.get(org)?;
        lease.live(Instant::now()).then(|| {
            (
                lease.node.clone().unwrap_or_default(),
                lease.expires.unwrap(),
            )
        })
    }
}

#[async_trait]
impl LeaseStore for MemoryLeases {
    async fn join(&self, node: &str, _: Duration) -> Result<(), ClusterError> {
        self.heartbeat(node).await
    }

    async fn heartbeat(&self, node: &str) -> Result<(), ClusterError> {
        self.answer().await;
        self.nodes
            .lock()
            .unwrap()
            .insert(node.to_owned(), Instant::now());
        Ok(())
    }

    async fn leave(&self, node: &str) -> Result<(), ClusterError> {
        self.answer().await;
        self.nodes.lock().unwrap().remove(node);
        Ok(())
    }

    async fn renew(
        &self,
        node: &str,
        held: &[Held],
        lease: Duration,
    ) -> Result<Vec<Held>, ClusterError> {
        self.answer().await;
        if self
            .failing_renewals
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ClusterError::Store("refused for a moment".into()));
        }
        let now = Instant::now();
        let mut leases = self.leases.lock().unwrap();
        let mut renewed = Vec::new();
        for h in held {
            if let Some(l) = leases.get_mut(&h.org)
                && l.node.as_deref() == Some(node)
                && l.token == h.token
                && l.live(now)
            {
                l.expires = Some(now + lease);
                renewed.push(h.clone());
            }
        }
        renewed.sort();
        Ok(renewed)
    }

    async fn census(&self, live_within: Duration, _: Duration) -> Result<Census, ClusterError> {
        self.answer().await;
        let now = Instant::now();
        let leases = self.leases.lock().unwrap();
        let mut nodes: Vec<NodeLoad> = self
            .nodes
            .lock()
            .unwrap()
            .iter()
            .map(|(id, seen)| NodeLoad {
                node_id: id.clone(),
                last_seen: chrono::Utc::now(),
                orgs: leases
                    .values()
                    .filter(|l| l.node.as_deref() == Some(id.as_str()) && l.live(now))
                    .count() as u64,
                live: *seen + live_within > now,
            })
            .collect();
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(Census {
            nodes,
            leases: leases.len() as u64,
        })
    }

    async fn claim_free(
        &self,
        node: &str,
        limit: u64,
        skip: &[OrgId],
        lease: Duration,
    ) -> Result<Vec<Held>, ClusterError> {
        self.answer().await;
        let now = Instant::now();
        let mut leases = self.leases.lock().unwrap();
        let mut free: Vec<OrgId> = leases
            .iter()
            .filter(|(org, l)| !l.live(now) && !skip.contains(org))
            .map(|(org, _)| org.clone())
            .collect();
        free.sort();
        free.truncate(limit as usize);
        Ok(free
            .into_iter()
            .map(|org| {
                let token = self.token();
                leases.insert(
                    org.clone(),
                    Lease {
                        node: Some(node.to_owned()),
                        token,
                        expires: Some(now + lease),
                    },
                );
                Held { org, token }
            })
            .collect())
    }

    async fn claim(&self, node: &str, org: &OrgId, lease: Duration) -> Result<Claim, ClusterError> {
        self.answer().await;
        let now = Instant::now();
        let mut leases = self.leases.lock().unwrap();
        if let Some(l) = leases.get(org)
            && l.live(now)
            && l.node.as_deref() != Some(node)
        {
            return Ok(Claim::HeldBy(l.node.clone().unwrap_or_default()));
        }
        let token = self.token();
        leases.insert(
            org.clone(),
            Lease {
                node: Some(node.to_owned()),
                token,
                expires: Some(now + lease),
            },
        );
        Ok(Claim::Won(token))
    }

    async fn release(&self, node: &str, held: &[Held]) -> Result<(), ClusterError> {
        self.answer().await;
        let mut leases = self.leases.lock().unwrap();
        for h in held {
            if let Some(l) = leases.get_mut(&h.org)
                && l.node.as_deref() == Some(node)
                && l.token == h.token
            {
                l.expires = None;
            }
        }
        Ok(())
    }

    async fn remove(&self, _: &str, held: &Held) -> Result<(), ClusterError> {
        self.answer().await;
        let mut leases = self.leases.lock().unwrap();
        match leases.get(&held.org) {
            Some(l) if l.token == held.token && l.live(Instant::now()) => {
                leases.remove(&held.org);
                Ok(())
            }
            _ => Err(ClusterError::Fenced),
        }
    }

    async fn seed(&self, _: &[OrgId]) -> Result<(), ClusterError> {
        self.answer().await;
        Ok(())
    }

    async fn owner(&self, org: &OrgId) -> Result<Owner, ClusterError> {
        self.answer().await;
        let leases = self.leases.lock().unwrap();
        Ok(match leases.get(org) {
            None => Owner::Nobody,
            Some(l) if l.live(Instant::now()) => Owner::Node(l.node.clone().unwrap_or_default()),
            Some(_) => Owner::Free,
        })
    }

    async fn publish(
        &self,
        _: &str,
        token: Token,
        s: &SessionSnapshot,
    ) -> Result<(), ClusterError> {
        self.answer().await;
        let leases = self.leases.lock().unwrap();
        match leases.get(&s.organization_id) {
            Some(l) if l.token == token && l.live(Instant::now()) => {
                let mut published = self.published.lock().unwrap();
                published.insert(s.organization_id.clone(), (s.clone(), token));
                Ok(())
            }
            _ => Err(ClusterError::Fenced),
        }
    }

    async fn published(&self) -> Result<Vec<Published>, ClusterError> {
        self.answer().await;
        let all: Vec<(SessionSnapshot, Token)> =
            self.published.lock().unwrap().values().cloned().collect();
        Ok(all
            .iter()
            .map(|(snapshot, token)| self.as_published(snapshot, *token))
            .collect())
    }

    async fn published_of(&self, org: &OrgId) -> Result<Option<Published>, ClusterError> {
        self.answer().await;
        let one = self.published.lock().unwrap().get(org).cloned();
        Ok(one.map(|(snapshot, token)| self.as_published(&snapshot, token)))
    }
}

/// What WhatsApp's server would know of every fake phone: credentials, and the
/// connections open, whose close takes [`CLOSE`]. A connection opened while
/// another of the same org is open is an overlap.
#[derive(Default)]
struct MemoryLedger {
    credentials: Mutex<HashMap<OrgId, SimCredentials>>,
    open: Mutex<HashMap<i64, (OrgId, &'static str)>>,
    next_link: AtomicI64,
    overlaps: AtomicU64,
}

impl MemoryLedger {
    fn open_on(&self, org: &OrgId) -> Vec<&'static str> {
        let open = self.open.lock().unwrap();
        let mut nodes: Vec<&'static str> = open
            .values()
            .filter(|(o, _)| o == org)
            .map(|(_, node)| *node)
            .collect();
        nodes.sort();
        nodes
    }
}

/// One node's view of the shared ledger (which node opens a connection).
struct NodeLedger {
    ledger: Arc<MemoryLedger>,
    node: &'static str,
}

#[async_trait]
impl SimLedger for NodeLedger {
    async fn credentials(&self, org: &OrgId) -> Result<Option<SimCredentials>, ConnectionError> {
        Ok(self.ledger.credentials.lock().unwrap().get(org).cloned())
    }

    async fn pair(&self, org: &OrgId, credentials: &SimCredentials) -> Result<(), SimError> {
        self.ledger
            .credentials
            .lock()
            .unwrap()
            .insert(org.clone(), credentials.clone());
        Ok(())
    }

    async fn open(&self, org: &OrgId) -> Result<i64, ConnectionError> {
        let mut open = self.ledger.open.lock().unwrap();
        if open.values().any(|(o, _)| o == org) {
            self.ledger.overlaps.fetch_add(1, Ordering::SeqCst);
        }
        let link = self.ledger.next_link.fetch_add(1, Ordering::SeqCst);
        open.insert(link, (org.clone(), self.node));
        Ok(link)
    }

    async fn close(&self, _: &OrgId, link: i64) {
        tokio::time::sleep(CLOSE).await;
        self.ledger.open.lock().unwrap().remove(&link);
    }

    async fn record(&self, _: &OrgId, _: i64, _: &SentRecord) -> Result<(), ConnectionError> {
        Ok(())
    }

    async fn sent(&self, _: &OrgId) -> Result<Vec<SentRecord>, SimError> {
        Ok(Vec::new())
    }

    async fn overlaps(&self) -> Result<u64, SimError> {
        Ok(self.ledger.overlaps.load(Ordering::SeqCst))
    }
}

/// No media is sent here.
struct NoMedia;

#[async_trait]
impl crate::media::SharedMedia for NoMedia {
    async fn put(&self, _: &crate::outbox::MessageId, _: Vec<u8>) -> std::io::Result<()> {
        Err(std::io::Error::other("no media here"))
    }
    async fn get(&self, _: &crate::outbox::MessageId) -> std::io::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    async fn delete(&self, _: &crate::outbox::MessageId) -> std::io::Result<()> {
        Ok(())
    }
    async fn settled_ids(&self) -> std::io::Result<Vec<crate::outbox::MessageId>> {
        Ok(Vec::new())
    }
}

struct TestNode {
    sup: Supervisor,
    sim: SimConnector,
    node: ClusterNode,
    fencing: Fencing,
    _dir: tempfile::TempDir,
}

async fn node(
    id: &'static str,
    leases: &Arc<MemoryLeases>,
    ledger: &Arc<MemoryLedger>,
) -> TestNode {
    node_spreading(id, leases, ledger, Duration::ZERO).await
}

/// A node whose takeovers are spread over `takeover_gap` each.
async fn node_spreading(
    id: &'static str,
    leases: &Arc<MemoryLeases>,
    ledger: &Arc<MemoryLedger>,
    takeover_gap: Duration,
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let (fencing, refused) = Fencing::new();
    let sim = SimConnector::with_ledger(
        crate::connection::sim::SimTiming::default(),
        Arc::new(NodeLedger {
            ledger: ledger.clone(),
            node: id,
        }),
    );
    let mut config = SupervisorConfig::new(dir.path());
    config.node_id = Some(id.into());
    config.shutdown_grace = GRACE;
    let sessions = Arc::new(FileSessions::new(
        dir.path().to_owned(),
        3,
        Arc::new(sim.clone()),
    ));
    let sup = Supervisor::spawn_in_cluster(
        SupervisorParts {
            config,
            connector: Arc::new(sim.clone()),
            outbox: Arc::new(crate::outbox::MemoryStore::new()),
            events: Arc::new(crate::events::NoEvents),
        },
        sessions,
        fencing.clone(),
        Arc::new(NoMedia),
    )
    .await
    .unwrap();
    let spec = ClusterSpec {
        node_id: id.into(),
        lease: LEASE,
        renew: RENEW,
        takeover_gap,
        stop_bound: sup.release_bound(),
    };
    // What the daemon's configuration checks: a renewal period and a stop fit.
    assert!(
        spec.drive_for() > RENEW + Duration::from_secs(1),
        "{spec:?}"
    );
    let node = ClusterNode::start(
        spec,
        leases.clone(),
        sup.clone(),
        fencing.clone(),
        refused,
        Vec::new(),
    )
    .await
    .unwrap();
    TestNode {
        sup,
        sim,
        node,
        fencing,
        _dir: dir,
    }
}

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

/// Lets every task run until all wait on timers (or each other).
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

async fn advance(by: Duration) {
    settle().await;
    tokio::time::advance(by).await;
    settle().await;
}

/// Pairs `o` on `n`, which takes its lease for the request.
async fn pair(n: &TestNode, o: &OrgId) {
    assert_eq!(n.node.acquire(o).await.unwrap(), Route::Here);
    n.sup.start(o, None).await.unwrap();
    let wait = Duration::from_secs(60);
    n.sup
        .wait_for(o, wait, |s| s.status == SessionStatus::QrReady)
        .await
        .expect("a QR");
    n.sim.scan(o, PHONE).unwrap();
    n.sup
        .wait_for(o, wait, |s| s.status == SessionStatus::Connected)
        .await
        .expect("connected");
    n.node.finish(o).await;
}

/// A fresh database and WhatsApp, and node "a" with org "7" paired on it.
async fn paired_on_a() -> (Arc<MemoryLeases>, Arc<MemoryLedger>, TestNode, OrgId) {
    let leases = Arc::new(MemoryLeases::default());
    let ledger = Arc::new(MemoryLedger::default());
    let a = node("a", &leases, &ledger).await;
    let o = org("7");
    pair(&a, &o).await;
    (leases, ledger, a, o)
}

/// A node whose database goes silent (its connection dead without a word) stops
/// its orgs by itself, before the lease it last renewed can run out, although
/// its tick waits on the store meanwhile.
#[tokio::test(start_paused = true)]
async fn a_node_cut_off_from_the_database_stops_before_its_lease_can_run_out() {
    let (leases, ledger, a, o) = paired_on_a().await;
    for _ in 0..5 {
        advance(RENEW).await;
    }
    assert!(a.sup.runs(&o), "renewals keep the org");

    leases.silent.store(true, Ordering::SeqCst);
    let (_, expires) = leases.holder(&o).expect("a holds the lease");
    let stopped = loop {
        assert!(
            Instant::now() < expires,
            "the lease ran out while the org still ran here"
        );
        if !a.sup.runs(&o) && ledger.open_on(&o).is_empty() {
            break Instant::now();
        }
        advance(Duration::from_millis(100)).await;
    };
    assert!(
        stopped + DEADLINE_MARGIN <= expires,
        "stopped {:?} before the lease ran out",
        expires - stopped
    );
    assert!(a.node.held().is_empty());
}

/// A refusal stops its org at once even while a tick waits on a silent store.
#[tokio::test(start_paused = true)]
async fn a_refusal_stops_the_org_while_a_tick_waits_on_the_store() {
    let (leases, _, a, o) = paired_on_a().await;
    leases.silent.store(true, Ordering::SeqCst);
    advance(RENEW).await; // a tick starts and waits on the store
    a.fencing.refused(&o);
    advance(CLOSE + Duration::from_millis(100)).await;
    assert!(!a.sup.runs(&o), "the refused org stopped");
}

/// One renewal that fails for a moment loses nothing: the org keeps running, its
/// lease stays this node's, and no other node opens a second connection.
#[tokio::test(start_paused = true)]
async fn a_renewal_that_fails_once_hands_nothing_to_another_node() {
    let leases = Arc::new(MemoryLeases::default());
    let ledger = Arc::new(MemoryLedger::default());
    let a = node("a", &leases, &ledger).await;
    let b = node("b", &leases, &ledger).await;
    let o = org("7");
    pair(&a, &o).await;
    advance(RENEW).await;
    let token = a.fencing.token(&o).unwrap();
    let links = ledger.next_link.load(Ordering::SeqCst);
    leases.failing_renewals.store(1, Ordering::SeqCst);
    advance(RENEW).await; // the failed renewal
    advance(RENEW).await; // the next one succeeds
    b.node.tick().await;
    advance(Duration::from_millis(100)).await;
    assert_eq!(leases.holder(&o).map(|(n, _)| n).as_deref(), Some("a"));
    assert!(a.sup.runs(&o));
    assert!(b.node.held().is_empty());
    advance(CLOSE * 2).await;
    assert_eq!(ledger.open_on(&o), vec!["a"]);
    assert_eq!(a.fencing.token(&o), Some(token), "the same lease");
    assert_eq!(
        ledger.next_link.load(Ordering::SeqCst),
        links,
        "the connection was never closed and opened again"
    );
    assert_eq!(ledger.overlaps.load(Ordering::SeqCst), 0);
}

/// Past its deadline an org is stopped; its lease stays this node's, renewed
/// once the store answers again, with its token kept (what the stop writes is
/// still this node's), until the connection closed. Only then may another node
/// take it: never two connections at once.
#[tokio::test(start_paused = true)]
async fn a_lease_is_freed_only_after_its_org_stopped() {
    let leases = Arc::new(MemoryLeases::default());
    let ledger = Arc::new(MemoryLedger::default());
    let a = node("a", &leases, &ledger).await;
    let b = node("b", &leases, &ledger).await;
    let o = org("7");
    pair(&a, &o).await;
    let token = a.fencing.token(&o).unwrap();
    leases.failing_renewals.store(u32::MAX, Ordering::SeqCst);
    let failing_since = Instant::now();
    while a.node.stopping().await.is_empty() {
        assert!(failing_since.elapsed() < LEASE, "never stopped");
        assert!(a.sup.runs(&o));
        advance(Duration::from_millis(100)).await;
    }
    // The stop is under way: the connection closes for `CLOSE`. The store answers
    // again, and b looks for free leases meanwhile.
    leases.failing_renewals.store(0, Ordering::SeqCst);
    assert_eq!(ledger.open_on(&o), vec!["a"]);
    assert_eq!(a.fencing.token(&o), Some(token), "kept during the stop");
    a.node.tick().await;
    b.node.tick().await;
    assert_eq!(leases.holder(&o).map(|(n, _)| n).as_deref(), Some("a"));
    assert!(b.node.held().is_empty());

    let stop_began = Instant::now();
    while !a.node.stopping().await.is_empty() {
        assert!(
            stop_began.elapsed() < a.sup.release_bound(),
            "the stop never ended"
        );
        b.node.tick().await;
        assert!(
            b.node.held().is_empty(),
            "b took the org while a's session was stopping"
        );
        advance(Duration::from_millis(100)).await;
    }
    assert_ne!(a.fencing.token(&o), Some(token), "forgotten once stopped");
    // Freed now, and taken by the next tick of either node, never beside a's
    // old connection.
    for _ in 0..3 {
        b.node.tick().await;
        advance(RENEW).await;
    }
    assert!(leases.holder(&o).is_some(), "taken over");
    assert_eq!(ledger.overlaps.load(Ordering::SeqCst), 0);
}

/// Leaving (SIGTERM) keeps renewing while the orgs stop, and frees each lease
/// once its org stopped.
#[tokio::test(start_paused = true)]
async fn leaving_keeps_renewing_until_each_org_stopped() {
    let (leases, ledger, a, o) = paired_on_a().await;
    advance(RENEW).await;
    let (_, before) = leases.holder(&o).unwrap();
    let leaving = tokio::spawn({
        let node = a.node.clone();
        async move { node.leave().await }
    });
    let mut renewed = false;
    while !leaving.is_finished() {
        let (holder, expires) = leases.holder(&o).expect("held until a stopped");
        assert_eq!(holder, "a");
        renewed |= expires > before;
        advance(Duration::from_millis(100)).await;
    }
    assert!(renewed, "the lease was renewed during the handover");
    assert!(!a.sup.runs(&o));
    assert!(ledger.open_on(&o).is_empty());
    assert_eq!(leases.holder(&o), None, "freed for the others");
}

/// What the first node up after every node stopped shows of a paired session
/// it takes over while the takeover waits its turn (the resume itself is the
/// cluster tests' over PostgreSQL, whose store the nodes share).
async fn first_takeover_reads(forget_published: bool) -> SessionSnapshot {
    let (leases, ledger, a, o) = paired_on_a().await;
    advance(RENEW).await;
    a.node.leave().await;
    assert!(!a.sup.runs(&o));
    assert_eq!(leases.holder(&o), None, "freed");
    if forget_published {
        leases.published.lock().unwrap().clear();
    }
    // A minute's spread: the takeover waits a random part of it, and time does
    // not move while the first tick settles.
    let b = node_spreading("b", &leases, &ledger, Duration::from_secs(60)).await;
    settle().await;
    assert_eq!(b.node.held().len(), 1, "taken on b's first tick");
    assert!(b.sup.runs(&o));
    b.sup.status(&o)
}

/// A paired session taken over on a node's first tick starts from what its last
/// node published: `reconnecting` with its number, never `connecting`, on which
/// the deployed client cleans it (CONTRACT §3).
#[tokio::test(start_paused = true)]
async fn a_session_taken_over_on_a_first_tick_reads_as_its_last_node_left_it() {
    let shown = first_takeover_reads(false).await;
    assert_eq!(shown.status, SessionStatus::Reconnecting, "{shown:?}");
    assert_eq!(shown.phone_number.as_deref(), Some(PHONE), "{shown:?}");
}

/// With nothing published of it (a lease seeded from stored credentials), a
/// session taken over reads `reconnecting` until the store says otherwise.
#[tokio::test(start_paused = true)]
async fn a_session_taken_over_with_nothing_published_reads_reconnecting() {
    let shown = first_takeover_reads(true).await;
    assert_eq!(shown.status, SessionStatus::Reconnecting, "{shown:?}");
}
