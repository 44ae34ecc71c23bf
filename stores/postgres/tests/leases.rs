//! Ownership leases and fencing on PostgreSQL ([`PostgresLeases`]): what makes two
//! nodes driving one organization impossible, checked statement by statement.
//!
//! A lease "running out" is made by moving its `expires_at` into the past, as the
//! clock would: the rules compare with the database's `now()`, so no test waits.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use wa_actors::cluster::{Claim, ClusterError, Fencing, Held, LeaseStore, Owner};
use wa_actors::{OrgId, SessionSnapshot, SessionStatus};
use wa_store_postgres::testing::{self, TestDatabase};
use wa_store_postgres::{Heard, PostgresLeases, PostgresStore, listen, migrate};

const LEASE: Duration = Duration::from_secs(15);

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

async fn setup() -> (TestDatabase, PostgresLeases) {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let leases = PostgresLeases::new(db.pool().clone());
    (db, leases)
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

/// Makes every lease of `org` run out now.
async fn expire(db: &TestDatabase, org: &str) {
    sql(
        db,
        &format!(
            "UPDATE wa_leases SET expires_at = now() - interval '1 second' WHERE org = '{org}'"
        ),
    )
    .await;
}

async fn won(leases: &PostgresLeases, node: &str, o: &str) -> i64 {
    match leases.claim(node, &org(o), LEASE).await.unwrap() {
        Claim::Won(token) => token,
        other => panic!("{node} did not win {o}: {other:?}"),
    }
}

#[tokio::test]
async fn one_owner_at_a_time_and_every_new_owner_a_greater_token() {
    let (db, leases) = setup().await;
    assert_eq!(leases.owner(&org("x")).await.unwrap(), Owner::Nobody);
    let t1 = won(&leases, "a", "x").await;
    assert_eq!(
        leases.owner(&org("x")).await.unwrap(),
        Owner::Node("a".into())
    );
    assert_eq!(
        leases.claim("b", &org("x"), LEASE).await.unwrap(),
        Claim::HeldBy("a".into()),
        "a live lease cannot be taken"
    );
    // The same node claiming again (an earlier run of it) gets a new token.
    let t2 = won(&leases, "a", "x").await;
    assert!(t2 > t1);
    expire(&db, "x").await;
    assert_eq!(leases.owner(&org("x")).await.unwrap(), Owner::Free);
    let t3 = won(&leases, "b", "x").await;
    assert!(t3 > t2);
    assert_eq!(
        leases.owner(&org("x")).await.unwrap(),
        Owner::Node("b".into())
    );

    // A removed org's lease, made again, never reuses a token.
    leases
        .remove(
            "b",
            &Held {
                org: org("x"),
                token: t3,
            },
        )
        .await
        .unwrap();
    assert_eq!(leases.owner(&org("x")).await.unwrap(), Owner::Nobody);
    let t4 = won(&leases, "a", "x").await;
    assert!(t4 > t3);
}

#[tokio::test]
async fn renewal_extends_only_the_leases_asked_for_that_have_not_run_out() {
    let (db, leases) = setup().await;
    let tx = won(&leases, "a", "x").await;
    let ty = won(&leases, "a", "y").await;
    let tz = won(&leases, "b", "z").await;
    let x = Held {
        org: org("x"),
        token: tx,
    };
    let y = Held {
        org: org("y"),
        token: ty,
    };
    let z = Held {
        org: org("z"),
        token: tz,
    };
    let w_first = won(&leases, "a", "w").await;
    won(&leases, "a", "w").await;
    // a asks for x and y (w is not among them), and for b's z: x and y renew.
    let renewed = leases
        .renew("a", &[y.clone(), x.clone(), z], LEASE)
        .await
        .unwrap();
    assert_eq!(renewed, vec![x.clone(), y.clone()]);
    // An old token of a lease a holds again is not renewed by it.
    let stale = Held {
        org: org("w"),
        token: w_first,
    };
    assert_eq!(leases.renew("a", &[stale], LEASE).await.unwrap(), vec![]);
    // Paused past its lease: the renewal does not bring it back.
    expire(&db, "y").await;
    assert_eq!(
        leases.renew("a", &[x.clone(), y], LEASE).await.unwrap(),
        vec![x]
    );
    assert_eq!(leases.owner(&org("y")).await.unwrap(), Owner::Free);
}

#[tokio::test]
async fn free_leases_are_shared_out_without_two_nodes_taking_one() {
    let (db, leases) = setup().await;
    let leases = Arc::new(leases);
    for i in 0..40 {
        won(&leases, "dead", &format!("o{i:02}")).await;
    }
    sql(
        &db,
        "UPDATE wa_leases SET expires_at = now() - interval '1 second'",
    )
    .await;
    // Two nodes claim at once, each its share; a skipped org is never claimed.
    let claim = |node: &'static str, skip: Vec<OrgId>| {
        let leases = leases.clone();
        tokio::spawn(async move { leases.claim_free(node, 20, &skip, LEASE).await.unwrap() })
    };
    let (b, c) = tokio::join!(claim("b", vec![org("o00")]), claim("c", vec![org("o00")]));
    let (b, c) = (b.unwrap(), c.unwrap());
    // Whichever claims first takes 20; the other the 19 left (o00 is skipped).
    let mut sizes = [b.len(), c.len()];
    sizes.sort();
    assert_eq!(sizes, [19, 20], "o00 was skipped");
    let mut all: Vec<&OrgId> = b.iter().chain(&c).map(|h| &h.org).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 39, "no org claimed twice");
    assert!(!all.contains(&&org("o00")));
    let census = leases.census(LEASE, LEASE).await.unwrap();
    assert_eq!(census.leases, 40);
    // Only b and c sent no heartbeat yet: the census lists heartbeating nodes.
    assert!(census.nodes.is_empty());
    leases.heartbeat("b").await.unwrap();
    leases.heartbeat("c").await.unwrap();
    let census = leases.census(LEASE, LEASE).await.unwrap();
    let loads: Vec<(String, u64, bool)> = census
        .nodes
        .iter()
        .map(|n| (n.node_id.clone(), n.orgs, n.live))
        .collect();
    assert_eq!(loads, vec![("b".into(), 20, true), ("c".into(), 19, true)]);
    assert_eq!(census.least_loaded().unwrap().node_id, "c");
    assert_eq!(census.fair_share(), 20);
    leases.leave("c").await.unwrap();
    assert_eq!(leases.census(LEASE, LEASE).await.unwrap().fair_share(), 40);
}

/// A released lease is free at once and announced, for the others to claim.
#[tokio::test]
async fn a_handover_frees_the_lease_at_once() {
    let (db, leases) = setup().await;
    let mut heard = listen(db.config().clone(), &["wa_leases"]);
    assert_eq!(heard.recv().await, Some(Heard::Connected));
    let token = won(&leases, "a", "x").await;
    // Another token for the org is not this node's to release.
    leases
        .release(
            "a",
            &[Held {
                org: org("x"),
                token: token + 1000,
            }],
        )
        .await
        .unwrap();
    assert_eq!(
        leases.owner(&org("x")).await.unwrap(),
        Owner::Node("a".into())
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), heard.recv()).await;
    leases
        .release(
            "a",
            &[Held {
                org: org("x"),
                token,
            }],
        )
        .await
        .unwrap();
    assert_eq!(leases.owner(&org("x")).await.unwrap(), Owner::Free);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), heard.recv())
            .await
            .unwrap(),
        Some(Heard::Notice {
            channel: "wa_leases".into(),
            payload: "a".into()
        })
    );
    let claimed = leases.claim_free("b", 10, &[], LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(claimed[0].token > token);
}

#[tokio::test]
async fn stored_sessions_are_seeded_as_free_leases_once() {
    let (_db, leases) = setup().await;
    let held = won(&leases, "a", "x").await;
    leases.seed(&[org("x"), org("y")]).await.unwrap();
    leases.seed(&[org("y")]).await.unwrap();
    assert_eq!(
        leases.owner(&org("x")).await.unwrap(),
        Owner::Node("a".into())
    );
    assert_eq!(leases.owner(&org("y")).await.unwrap(), Owner::Free);
    let x = Held {
        org: org("x"),
        token: held,
    };
    assert_eq!(
        leases
            .renew("a", std::slice::from_ref(&x), LEASE)
            .await
            .unwrap(),
        vec![x]
    );
    assert_eq!(leases.census(LEASE, LEASE).await.unwrap().leases, 2);
}

fn snapshot(o: &str, status: SessionStatus) -> SessionSnapshot {
    SessionSnapshot {
        status,
        phone_number: Some("573001234567".into()),
        reason: Some("connected".into()),
        updated_at: Utc::now(),
        node_id: Some("a".into()),
        ..SessionSnapshot::not_started(org(o))
    }
}

/// Snapshots are published by the owner only; once the lease moved on, the old
/// owner's are refused, and readers learn that the publisher lost the lease.
#[tokio::test]
async fn snapshots_are_published_under_the_lease() {
    let (db, leases) = setup().await;
    let t1 = won(&leases, "a", "x").await;
    let s = snapshot("x", SessionStatus::Connected);
    leases.publish("a", t1, &s).await.unwrap();
    let all = leases.published().await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].owner_live);
    let mut read = all[0].snapshot.clone();
    read.updated_at = s.updated_at;
    assert_eq!(read, s);
    assert!(
        (all[0].snapshot.updated_at - s.updated_at)
            .num_milliseconds()
            .abs()
            < 1,
        "kept to the microsecond"
    );

    expire(&db, "x").await;
    let seen = leases.published_of(&org("x")).await.unwrap().unwrap();
    assert!(!seen.owner_live, "its publisher's lease ran out");
    let t2 = won(&leases, "b", "x").await;
    assert_eq!(
        leases
            .publish("a", t1, &snapshot("x", SessionStatus::Disconnected))
            .await,
        Err(wa_actors::cluster::ClusterError::Fenced)
    );
    let mut by_b = snapshot("x", SessionStatus::Reconnecting);
    by_b.node_id = Some("b".into());
    leases.publish("b", t2, &by_b).await.unwrap();
    let seen = leases.published_of(&org("x")).await.unwrap().unwrap();
    assert!(seen.owner_live);
    assert_eq!(
        (seen.snapshot.status, seen.snapshot.node_id.as_deref()),
        (SessionStatus::Reconnecting, Some("b"))
    );
    // Removing is fenced too, and takes the snapshot with it.
    assert_eq!(
        leases
            .remove(
                "a",
                &Held {
                    org: org("x"),
                    token: t1
                }
            )
            .await,
        Err(wa_actors::cluster::ClusterError::Fenced)
    );
    leases
        .remove(
            "b",
            &Held {
                org: org("x"),
                token: t2,
            },
        )
        .await
        .unwrap();
    assert!(leases.published().await.unwrap().is_empty());
}

/// The WhatsApp store's every write carries the lease: refused (and reported)
/// without it, after it ran out, and after another node took it; accepted while
/// held.
#[tokio::test]
async fn the_whatsapp_stores_writes_are_fenced() {
    use wacore::store::traits::SignalStore;
    let (db, leases) = setup().await;
    let (fencing, mut refused) = Fencing::new();
    let x = org("x");
    // Registering the store is a write too.
    assert!(
        PostgresStore::new_fenced(db.pool().clone(), "x", Arc::new(fencing.clone()))
            .await
            .is_err()
    );
    assert_eq!(refused.try_recv().unwrap(), x);

    let token = won(&leases, "a", "x").await;
    fencing.hold(&x, token);
    let store = PostgresStore::new_fenced(db.pool().clone(), "x", Arc::new(fencing.clone()))
        .await
        .unwrap();
    store.put_identity("573001234567.0", [7; 32]).await.unwrap();

    expire(&db, "x").await;
    assert!(store.put_identity("573001234567.0", [8; 32]).await.is_err());
    assert_eq!(refused.try_recv().unwrap(), x);
    won(&leases, "b", "x").await;
    assert!(store.put_identity("573001234567.0", [9; 32]).await.is_err());
    assert_eq!(
        store.load_identity("573001234567.0").await.unwrap(),
        Some([7; 32]),
        "nothing written after the lease was lost"
    );
}

/// A write in flight when the lease runs out finishes before the takeover (the
/// claim waits for the lease row the write holds FOR SHARE), and a write that
/// starts after the takeover is refused: never one after the other's first.
#[tokio::test]
async fn a_takeover_waits_for_the_write_in_flight() {
    let (db, leases) = setup().await;
    let token = won(&leases, "a", "x").await;
    let mut writer = db.pool().get().await.unwrap();
    let tx = writer.transaction().await.unwrap();
    // The lease runs out right after the write's transaction began (whose `now()`
    // is its start): the write still finds it held, everyone later finds it
    // expired. Moved before the write locks the row, which an UPDATE would wait on.
    let began: chrono::DateTime<Utc> = tx.query_one("SELECT now()", &[]).await.unwrap().get(0);
    db.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE wa_leases SET expires_at = $1::timestamptz + interval '1 microsecond' \
             WHERE org = 'x'",
            &[&began],
        )
        .await
        .unwrap();
    let held: bool = tx
        .query_one("SELECT wa_fence('x', $1)", &[&token])
        .await
        .unwrap()
        .get(0);
    assert!(held, "the write began while the lease held");
    // The free lease is locked by the write: a sweep passes it by...
    assert!(
        leases
            .claim_free("b", 10, &[], LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    // ...and a claim of this very org waits for the write to end.
    let claimer = {
        let pool = db.pool().clone();
        tokio::spawn(async move {
            PostgresLeases::new(pool)
                .claim("b", &org("x"), LEASE)
                .await
                .unwrap()
        })
    };
    wait_for_a_lock_wait(&db).await;
    assert!(!claimer.is_finished(), "the claim waits for the write");
    tx.execute(
        "INSERT INTO wa_stores (store_id) VALUES ('x') ON CONFLICT DO NOTHING",
        &[],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(claimer.await.unwrap(), Claim::Won(t) if t > token));
    let late: bool = db
        .pool()
        .get()
        .await
        .unwrap()
        .query_one("SELECT wa_fence('x', $1)", &[&token])
        .await
        .unwrap()
        .get(0);
    assert!(!late, "the old token is refused after the takeover");
}

/// Waits until a session of the test database waits for a lock (10 s at most).
async fn wait_for_a_lock_wait(db: &TestDatabase) {
    let conn = db.pool().get().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = conn
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nobody waits for a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A second process under the id of a running one is refused; the same process
/// joins again, and once the first stopped showing itself, the id is free.
#[tokio::test]
async fn one_process_per_node_id() {
    let (db, first) = setup().await;
    let second = PostgresLeases::new(db.pool().clone());
    first.join("a", LEASE).await.unwrap();
    assert_eq!(
        second.join("a", LEASE).await,
        Err(ClusterError::NodeIdInUse("a".into()))
    );
    first.join("a", LEASE).await.unwrap();
    second.join("b", LEASE).await.unwrap();
    db.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE wa_nodes SET last_seen = now() - interval '1 minute' WHERE node_id = 'a'",
            &[],
        )
        .await
        .unwrap();
    second.join("a", LEASE).await.unwrap();
}
