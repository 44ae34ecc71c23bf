//! Two nodes in one process on one database: [`ClusterNode`]s over real
//! supervisors (the fake phone with its record in the database, sessions and
//! outbox in PostgreSQL). Ticks are run by hand (the renewal period is an hour),
//! so each step of a takeover is taken on purpose; a node "paused" past its
//! lease is one whose heartbeat and lease are moved into the past, as they are
//! when its process is stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wa_actors::cluster::{ClusterNode, ClusterSpec, Fencing, Route};
use wa_actors::connection::sim::{SimConnector, SimTiming};
use wa_actors::events::NoEvents;
use wa_actors::outbox::{MessageBody, MessageStatus};
use wa_actors::storage::SessionStore;
use wa_actors::{
    MessageRequest, OrgId, SessionStatus, Supervisor, SupervisorConfig, SupervisorParts,
};
use wa_store_postgres::testing::{self, TestDatabase};
use wa_store_postgres::{
    PostgresLeases, PostgresMedia, PostgresOutbox, PostgresSessions, PostgresSimLedger, migrate,
};

const LEASE: Duration = Duration::from_secs(30);
const PHONE: &str = "573001234567";

struct Node {
    id: &'static str,
    sup: Supervisor,
    sim: SimConnector,
    ledger: Arc<PostgresSimLedger>,
    node: ClusterNode,
    _dir: tempfile::TempDir,
}

async fn node(db: &TestDatabase, id: &'static str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let pool = db.pool().clone();
    let (fencing, refused) = Fencing::new();
    let fence = Arc::new(fencing.clone());
    let ledger = Arc::new(PostgresSimLedger::new(
        pool.clone(),
        fence.clone(),
        id.into(),
    ));
    let sim = SimConnector::with_ledger(SimTiming::default(), ledger.clone());
    let mut config = SupervisorConfig::new(dir.path());
    config.node_id = Some(id.into());
    config.outbox.min_gap = Duration::ZERO;
    config.reconnect.initial = Duration::from_millis(50);
    config.shutdown_grace = Duration::from_secs(1);
    let sessions = Arc::new(PostgresSessions::new(pool.clone(), fence.clone(), 3));
    let sup = Supervisor::spawn_in_cluster(
        SupervisorParts {
            config,
            connector: Arc::new(sim.clone()),
            outbox: Arc::new(PostgresOutbox::new(pool.clone(), fence)),
            events: Arc::new(NoEvents),
        },
        sessions.clone() as Arc<dyn SessionStore>,
        fencing.clone(),
        Arc::new(PostgresMedia::new(pool.clone())),
    )
    .await
    .unwrap();
    let node = ClusterNode::start(
        ClusterSpec {
            node_id: id.into(),
            lease: LEASE,
            renew: Duration::from_secs(3600),
            takeover_gap: Duration::ZERO,
            stop_bound: sup.release_bound(),
        },
        Arc::new(PostgresLeases::new(pool)),
        sup.clone(),
        fencing,
        refused,
        sessions.orgs_with_credentials().await.unwrap(),
    )
    .await
    .unwrap();
    Node {
        id,
        sup,
        sim,
        ledger,
        node,
        _dir: dir,
    }
}

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sql(db: &TestDatabase, statement: &str) {
    db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute(statement)
        .await
        .unwrap();
}

/// Pairs `o` on node `n` (which must hold it) through the fake phone.
async fn pair(n: &Node, o: &OrgId) {
    assert_eq!(n.node.acquire(o).await.unwrap(), Route::Here);
    n.sup.start(o, None).await.unwrap();
    eventually("a QR", async || n.sim.current_qr(o).is_some()).await;
    n.sim.scan(o, PHONE).unwrap();
    eventually("connected", async || {
        n.sup.status(o).status == SessionStatus::Connected
    })
    .await;
    n.node.finish(o).await;
}

async fn message(n: &Node, o: &OrgId, text: &str) -> wa_actors::outbox::Message {
    match n
        .sup
        .enqueue(MessageRequest {
            org: o.clone(),
            phone: "573009990000".into(),
            body: MessageBody::Text(text.into()),
            idempotency_key: None,
            expires_at: None,
        })
        .await
        .unwrap()
    {
        wa_actors::outbox::Enqueued::New(m) => m,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_loses_its_org_without_ever_driving_it_beside_the_new_one() {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let a = node(&db, "a").await;
    let b = node(&db, "b").await;
    let o = org("7");
    pair(&a, &o).await;
    assert_eq!(a.node.held().len(), 1);
    b.node.tick().await;
    assert!(b.node.held().is_empty(), "a live lease is not b's to take");
    // Each tick reads what is published (a's last snapshot may be written just
    // after the pairing: a daemon hears of it by its notification).
    eventually("b shows a's published snapshot", async || {
        b.node.tick().await;
        let s = b.sup.status(&o);
        s.status == SessionStatus::Connected && s.node_id.as_deref() == Some("a")
    })
    .await;

    // a is paused past its lease: no heartbeat, no renewal, and its connection
    // dropped by the server for not answering.
    a.ledger.freeze_presence();
    sql(
        &db,
        &format!(
            "UPDATE wa_leases SET expires_at = now() - interval '1 second'; \
             UPDATE wa_nodes SET last_seen = now() - interval '1 minute' WHERE node_id = 'a'; \
             UPDATE wa_sim_presence SET alive_at = now() - interval '1 minute' \
             WHERE instance = '{}'",
            a.ledger.instance()
        ),
    )
    .await;
    b.node.tick().await;
    assert_eq!(b.node.held().len(), 1, "b takes the free lease over");
    eventually("connected on b, from the stored credentials", async || {
        let s = b.sup.status(&o);
        s.status == SessionStatus::Connected && s.phone_number.as_deref() == Some(PHONE)
    })
    .await;

    // a wakes up and, before its first renewal, tries to deliver: refused, and it
    // stops the org at once; b delivers. (b hears of the message only then: had
    // it sent it first, a's lane would find nothing to send and try nothing.)
    let m = message(&a, &o, "recordatorio").await;
    eventually("a stops driving the org", async || !a.sup.runs(&o)).await;
    // What the daemon's listener does when the database announces the message.
    b.sup.outbox().nudge(&o);
    eventually("sent by b", async || {
        b.sup
            .outbox()
            .get(&m.message_id)
            .await
            .unwrap()
            .unwrap()
            .status
            == MessageStatus::Sent
    })
    .await;
    a.node.tick().await;
    assert!(a.node.held().is_empty());
    let sent = b.sim.sent_log(&o).await.unwrap();
    assert_eq!(
        sent.iter()
            .filter(|r| r.message_id == m.message_id.as_str())
            .count(),
        1,
        "delivered exactly once: {sent:?}"
    );
    assert_eq!(a.sim.overlap_count().await.unwrap(), 0);
    let published = b.node.store().published_of(&o).await.unwrap().unwrap();
    assert_eq!(published.snapshot.node_id.as_deref(), Some("b"));
    assert!(published.owner_live);

    // b hands over on SIGTERM: a (alive again) takes the org at once, no QR.
    b.node.leave().await;
    assert!(!b.sup.runs(&o));
    a.node.tick().await;
    eventually("connected on a again", async || {
        let s = a.sup.status(&o);
        s.status == SessionStatus::Connected && s.node_id.as_deref() == Some(a.id)
    })
    .await;
    assert_eq!(a.sim.overlap_count().await.unwrap(), 0);
    let _ = b.id;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn new_orgs_go_to_the_least_loaded_node_and_removed_ones_are_given_up() {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let a = node(&db, "a").await;
    let b = node(&db, "b").await;
    pair(&a, &org("1")).await;
    // "2" is new: b holds fewer orgs, so b is where it goes.
    assert_eq!(
        a.node.route(&org("2"), true).await.unwrap(),
        Route::Node("b".into())
    );
    // Held by a: a answers; an org nobody runs needs no owner to be told so.
    assert_eq!(a.node.route(&org("1"), false).await.unwrap(), Route::Here);
    a.node.finish(&org("1")).await;
    assert_eq!(b.node.route(&org("9"), false).await.unwrap(), Route::Here);
    assert_eq!(
        b.node.route(&org("1"), true).await.unwrap(),
        Route::Node("a".into())
    );

    // A logout removes the session; its lease is given up with it.
    assert_eq!(a.node.acquire(&org("1")).await.unwrap(), Route::Here);
    a.sup.logout(&org("1")).await.unwrap();
    a.node.finish(&org("1")).await;
    eventually("the lease given up", async || {
        a.node.tick().await;
        a.node.held().is_empty()
    })
    .await;
    assert_eq!(
        a.node.store().owner(&org("1")).await.unwrap(),
        wa_actors::cluster::Owner::Nobody
    );
    eventually("b sees it gone", async || {
        b.node.tick().await;
        b.sup.status(&org("1")).status == SessionStatus::NotStarted
    })
    .await;
}
