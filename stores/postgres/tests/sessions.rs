//! Stored sessions in PostgreSQL ([`PostgresSessions`]): backups are renamed
//! stores, restores swap two, each in one fenced transaction; and the fake
//! phone's record ([`PostgresSimLedger`]) across nodes.

use std::sync::Arc;
use std::time::Duration;

use wa_actors::OrgId;
use wa_actors::cluster::{Claim, Fencing, LeaseStore};
use wa_actors::connection::ConnectionError;
use wa_actors::connection::sim::{SentRecord, SimCredentials, SimLedger};
use wa_actors::storage::SessionStore;
use wa_actors::storage::backups::{BEFORE_RESTORE, RestoreError, parse_name};
use wa_store_postgres::testing::{self, TestDatabase};
use wa_store_postgres::{
    PostgresLeases, PostgresSessions, PostgresSimLedger, PostgresStore, migrate,
};
use wacore::store::traits::SignalStore;

const LEASE: Duration = Duration::from_secs(15);

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

struct Rig {
    db: TestDatabase,
    leases: PostgresLeases,
    fencing: Fencing,
    sessions: PostgresSessions,
}

async fn rig(keep: usize) -> Rig {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let leases = PostgresLeases::new(db.pool().clone());
    let (fencing, _refused) = Fencing::new();
    let sessions = PostgresSessions::new(db.pool().clone(), Arc::new(fencing.clone()), keep);
    Rig {
        db,
        leases,
        fencing,
        sessions,
    }
}

impl Rig {
    async fn own(&self, node: &str, o: &str) {
        let Claim::Won(token) = self.leases.claim(node, &org(o), LEASE).await.unwrap() else {
            panic!("claim")
        };
        self.fencing.hold(&org(o), token);
    }

    /// A live session whose store holds one identity, `marker`.
    async fn live(&self, o: &str, marker: u8) {
        self.sessions.prepare(&org(o)).await.unwrap();
        let store =
            PostgresStore::new_fenced(self.db.pool().clone(), o, Arc::new(self.fencing.clone()))
                .await
                .unwrap();
        store.put_identity("peer.0", [marker; 32]).await.unwrap();
    }

    /// The marker of the live session, if it has one.
    async fn marker(&self, o: &str) -> Option<u8> {
        let store = PostgresStore::new(self.db.pool().clone(), o).await.unwrap();
        store.load_identity("peer.0").await.unwrap().map(|k| k[0])
    }

    /// `times` live sessions of org `o` in a row, each wiped with a backup (marked
    /// `reason`): the backups' names, oldest first.
    async fn live_and_wipe(&self, o: &str, times: u8, reason: &str) -> Vec<String> {
        let mut made = Vec::new();
        for marker in 0..times {
            self.live(o, marker).await;
            made.push(
                self.sessions
                    .backup_and_wipe(&org(o), reason, true)
                    .await
                    .unwrap()
                    .expect("a live session is backed up"),
            );
        }
        made
    }

    /// The fake phone pairs org `o` on node `a`: its store holds a session.
    async fn pair_sim(&self, o: &str) {
        PostgresSimLedger::new(
            self.db.pool().clone(),
            Arc::new(self.fencing.clone()),
            "a".into(),
        )
        .pair(&org(o), &SimCredentials::generate("573009990000"))
        .await
        .unwrap();
    }

    async fn names(&self, o: &str) -> Vec<String> {
        self.sessions
            .list_backups(&org(o))
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect()
    }
}

#[tokio::test]
async fn a_backup_keeps_the_session_and_a_restore_swaps_it_back() {
    let r = rig(3).await;
    r.own("a", "7").await;
    r.live("7", 1).await;
    let first = r
        .sessions
        .backup_and_wipe(&org("7"), "Bad MAC!", true)
        .await
        .unwrap()
        .expect("there was something to keep");
    assert!(first.ends_with("_bad_mac_"), "{first}");
    assert!(parse_name(&first).is_some());
    assert_eq!(r.marker("7").await, None, "the live session is empty");
    let listed = r.sessions.list_backups(&org("7")).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].reason.as_str()),
        (first.as_str(), "bad_mac_")
    );
    assert!(listed[0].bytes > 0);

    // A new pairing lives; the first session comes back, the new one is kept.
    r.live("7", 2).await;
    let done = r.sessions.restore(&org("7"), &first).await.unwrap();
    assert_eq!(done.restored, first);
    let kept = done.before_restore.expect("the live session was kept");
    assert_eq!(parse_name(&kept).unwrap().1, BEFORE_RESTORE);
    assert_eq!(r.marker("7").await, Some(1));
    assert_eq!(r.names("7").await, vec![kept.clone()]);
    // And back again.
    r.sessions.restore(&org("7"), &kept).await.unwrap();
    assert_eq!(r.marker("7").await, Some(2));
    assert!(r.sessions.has_credentials(&org("7")).await.is_ok());
}

#[tokio::test]
async fn only_the_newest_backups_are_kept_and_names_are_checked() {
    let r = rig(3).await;
    r.own("a", "7").await;
    let made = r.live_and_wipe("7", 5, "x").await;
    let mut newest: Vec<String> = made[2..].to_vec();
    newest.reverse();
    assert_eq!(r.names("7").await, newest, "newest first, three kept");
    // An empty live session is not backed up; without `recreate` it is gone.
    assert_eq!(
        r.sessions
            .backup_and_wipe(&org("7"), "x", false)
            .await
            .unwrap(),
        None
    );
    for bad in ["../x", "", "20261123T071533Z"] {
        assert_eq!(
            r.sessions.restore(&org("7"), bad).await,
            Err(RestoreError::InvalidName(bad.into()))
        );
    }
    let absent = "20261123T071533.000000Z_bad_mac";
    assert_eq!(
        r.sessions.restore(&org("7"), absent).await,
        Err(RestoreError::UnknownBackup(absent.into()))
    );
    // Another org's backups are not this one's.
    r.own("a", "8").await;
    assert_eq!(
        r.sessions.restore(&org("8"), &made[4]).await,
        Err(RestoreError::UnknownBackup(made[4].clone()))
    );
}

/// Wipes of stores that never held a session (pairings cut short) never prune
/// the backup of the org's last real session; it counts towards the three kept.
#[tokio::test]
async fn wipes_of_sessionless_stores_keep_the_last_session() {
    let r = rig(3).await;
    r.own("a", "7").await;
    r.sessions.prepare(&org("7")).await.unwrap();
    r.pair_sim("7").await;
    let session = r
        .sessions
        .backup_and_wipe(&org("7"), "logged_out", true)
        .await
        .unwrap()
        .unwrap();
    let sessionless = r.live_and_wipe("7", 4, "pairing_failed").await;
    assert_eq!(
        r.names("7").await,
        vec![
            sessionless[3].clone(),
            sessionless[2].clone(),
            session.clone()
        ],
        "the two newest, and the last session"
    );
    // Restoring it brings the credentials back.
    r.sessions.restore(&org("7"), &session).await.unwrap();
    assert_eq!(r.sessions.has_credentials(&org("7")).await, Ok(true));
}

#[tokio::test]
async fn credentials_are_found_and_orgs_listed() {
    let r = rig(3).await;
    r.own("a", "wa").await;
    r.own("a", "sim").await;
    r.own("a", "empty").await;
    r.sessions.prepare(&org("empty")).await.unwrap();
    r.sessions.prepare(&org("wa")).await.unwrap();
    r.db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO wa_device (store_id, pn, registration_id, noise_key, identity_key, \
             signed_pre_key, signed_pre_key_id, signed_pre_key_signature, adv_secret_key, account, \
             push_name, app_version_primary, app_version_secondary, app_version_tertiary, \
             app_version_last_fetched_ms, next_pre_key_id, first_unupload_pre_key_id, \
             server_has_prekeys, login_counter, lid_migrated, last_signed_pre_key_rotation_ms, \
             read_receipts_disabled) VALUES ('wa', '573001234567@s.whatsapp.net', 1, '', '', '', \
             1, '', '', '\\x01', '', 2, 3000, 1, 0, 1, 1, false, 0, false, 0, false)",
        )
        .await
        .unwrap();
    r.pair_sim("sim").await;
    for (o, has) in [
        ("wa", true),
        ("sim", true),
        ("empty", false),
        ("none", false),
    ] {
        assert_eq!(r.sessions.has_credentials(&org(o)).await, Ok(has), "{o}");
    }
    assert_eq!(
        r.sessions.orgs_with_credentials().await.unwrap(),
        vec![org("sim"), org("wa")]
    );
    // A backup is not a live session.
    r.sessions
        .backup_and_wipe(&org("sim"), "x", true)
        .await
        .unwrap();
    assert_eq!(
        r.sessions.orgs_with_credentials().await.unwrap(),
        vec![org("wa")]
    );
}

/// Every change needs the lease: refused without it, and after it moved on.
#[tokio::test]
async fn changes_are_fenced_by_the_lease() {
    let r = rig(3).await;
    assert!(r.sessions.prepare(&org("7")).await.is_err());
    r.own("a", "7").await;
    r.live("7", 1).await;
    r.db.pool()
        .get()
        .await
        .unwrap()
        .batch_execute("UPDATE wa_leases SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    assert!(
        r.sessions
            .backup_and_wipe(&org("7"), "x", true)
            .await
            .is_err()
    );
    assert!(matches!(
        r.sessions
            .restore(&org("7"), "20261123T071533.000000Z_x")
            .await,
        Err(RestoreError::Storage(_))
    ));
    assert_eq!(r.marker("7").await, Some(1), "nothing changed");
    assert!(r.names("7").await.is_empty());
}

/// The fake phone's record across nodes: credentials shared, sends fenced, and
/// an overlap whenever another running process has a connection open.
#[tokio::test]
async fn the_fake_phones_record_is_one_across_nodes() {
    let r = rig(3).await;
    let (fencing_b, _refused) = Fencing::new();
    let ledger = |node: &str, fencing: &Fencing| {
        PostgresSimLedger::new(r.db.pool().clone(), Arc::new(fencing.clone()), node.into())
    };
    let (a, b) = (ledger("a", &r.fencing), ledger("b", &fencing_b));
    let o = org("7");
    r.leases.heartbeat("a").await.unwrap();
    r.leases.heartbeat("b").await.unwrap();
    assert!(a.open(&o).await.is_err(), "no lease, no connection");
    r.own("a", "7").await;
    let creds = SimCredentials::generate("573001234567");
    a.pair(&o, &creds).await.unwrap();
    assert!(a.pair(&o, &SimCredentials::generate("1")).await.is_err());
    assert_eq!(b.credentials(&o).await.unwrap(), Some(creds));
    let link_a = a.open(&o).await.unwrap();
    let sent = SentRecord::text("573009990000", "hola", "3EB0AA");
    a.record(&o, link_a, &sent).await.unwrap();

    // b takes the org over while a is alive with its connection open: an overlap.
    let db = r.db.pool().get().await.unwrap();
    db.batch_execute("UPDATE wa_leases SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    let Claim::Won(token) = r.leases.claim("b", &o, LEASE).await.unwrap() else {
        panic!("claim")
    };
    fencing_b.hold(&o, token);
    let link_b = b.open(&o).await.unwrap();
    assert_eq!(a.overlaps().await.unwrap(), 1);
    // a's acts are refused now.
    assert_eq!(
        a.record(&o, link_a, &sent).await,
        Err(ConnectionError::NotConnected)
    );
    b.record(&o, link_b, &sent).await.unwrap();
    assert_eq!(b.sent(&o).await.unwrap(), vec![sent.clone(), sent.clone()]);

    // a closes; then a holds the org again with a connection open, and loses
    // its lease and its heartbeat (cut off from the cluster's tables) while its
    // process still runs: b's connection beside it is an overlap.
    a.close(&o, link_a).await;
    b.close(&o, link_b).await;
    let take = async |node: &str, fencing: &Fencing| {
        db.batch_execute("UPDATE wa_leases SET expires_at = now() - interval '1 second'")
            .await
            .unwrap();
        let Claim::Won(token) = r.leases.claim(node, &o, LEASE).await.unwrap() else {
            panic!("claim")
        };
        fencing.hold(&o, token);
    };
    take("a", &r.fencing).await;
    a.open(&o).await.unwrap();
    db.batch_execute("UPDATE wa_nodes SET last_seen = now() - interval '1 minute'")
        .await
        .unwrap();
    take("b", &fencing_b).await;
    let link_b = b.open(&o).await.unwrap();
    assert_eq!(
        b.overlaps().await.unwrap(),
        2,
        "a cut-off node still counts"
    );

    // a's process freezes (or dies) with its connection open: once the server's
    // timeout passed, that connection is gone, and a new one is no overlap.
    b.close(&o, link_b).await;
    drop(a);
    db.batch_execute(
        "UPDATE wa_sim_presence SET alive_at = now() - interval '1 minute' \
         WHERE instance LIKE 'a/%'",
    )
    .await
    .unwrap();
    take("b", &fencing_b).await;
    b.open(&o).await.unwrap();
    assert_eq!(b.overlaps().await.unwrap(), 2, "no new overlap");
}
