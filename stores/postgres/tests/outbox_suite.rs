//! The outbox's behavioural suite (the actor crate's `outbox::store_suite`, which
//! the embedded SQLite store and the reference in-memory one pass) on
//! [`PostgresOutbox`], and what only a shared outbox adds: fenced delivery
//! updates and the notifications that wake the owner's lane.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use wa_actors::OrgId;
use wa_actors::cluster::{Fencing, LeaseStore};
use wa_actors::outbox::store_suite::Fixture;
use wa_actors::outbox::{
    Enqueued, MessageBody, MessageId, MessageStatus, NewMessage, Origin, OutboxStore, Update,
    Updated,
};
use wa_store_postgres::{Heard, PostgresLeases, PostgresOutbox, listen, migrate, testing};

async fn postgres() -> Fixture {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let (fencing, _refused) = Fencing::new();
    let store = PostgresOutbox::new(db.pool().clone(), Arc::new(fencing));
    Fixture {
        store: Arc::new(store),
        keep: Box::new(db),
    }
}

wa_actors::outbox_store_suite!(postgres => super::postgres);

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

fn message(org_id: &str, origin: Origin) -> NewMessage {
    let now = Utc::now();
    NewMessage {
        message_id: MessageId::generate(),
        org: org(org_id),
        phone: "573001234567".into(),
        body: MessageBody::Text("su cita es mañana".into()),
        idempotency_key: None,
        origin,
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
    }
}

/// The lane's updates apply while this node holds the org's lease, and are
/// refused (and reported) once another node holds it; anyone's plain updates
/// (a cancel from any node) are not fenced.
#[tokio::test]
async fn delivery_updates_need_the_lease() {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let leases = PostgresLeases::new(db.pool().clone());
    let (fencing, mut refused) = Fencing::new();
    let outbox = PostgresOutbox::new(db.pool().clone(), Arc::new(fencing.clone()));
    let lease = Duration::from_secs(15);
    let a = org("a");

    let Enqueued::New(m) = outbox.enqueue(message("a", Origin::Queue)).await.unwrap() else {
        panic!("new")
    };
    let sending = Update::Sending { at: Utc::now() };
    // Not held here: refused without a change, and reported.
    assert!(
        outbox
            .update_as_owner(&m.message_id, sending.clone())
            .await
            .is_err()
    );
    assert_eq!(refused.try_recv().unwrap(), a);
    let stored = outbox.get(&m.message_id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts), (MessageStatus::Queued, 0));

    let wa_actors::cluster::Claim::Won(token) = leases.claim("n1", &a, lease).await.unwrap() else {
        panic!("claim")
    };
    fencing.hold(&a, token);
    assert!(matches!(
        outbox
            .update_as_owner(&m.message_id, sending.clone())
            .await
            .unwrap(),
        Updated::Applied(_)
    ));

    // The lease runs out and another node takes the org: the old token is refused.
    expire(&db, "a").await;
    let wa_actors::cluster::Claim::Won(newer) = leases.claim("n2", &a, lease).await.unwrap() else {
        panic!("claim")
    };
    assert!(newer > token);
    let sent = Update::Sent { at: Utc::now() };
    assert!(
        outbox
            .update_as_owner(&m.message_id, sent.clone())
            .await
            .is_err()
    );
    assert_eq!(refused.try_recv().unwrap(), a);
    let stored = outbox.get(&m.message_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (MessageStatus::Sending, 1)
    );
    // A plain update (no lane behind it) is not fenced.
    assert!(matches!(
        outbox.update(&m.message_id, sent).await.unwrap(),
        Updated::Applied(_)
    ));
}

/// A new message wakes its org's owner, whichever node accepted it; a change of
/// a compatible send's message tells the node whose caller waits.
#[tokio::test]
async fn accepting_and_changing_messages_is_announced() {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let mut heard = listen(db.config().clone(), &["wa_outbox", "wa_message"]);
    assert_eq!(next(&mut heard).await, Heard::Connected);
    let (fencing, _refused) = Fencing::new();
    let outbox = PostgresOutbox::new(db.pool().clone(), Arc::new(fencing));

    outbox
        .enqueue(message("optica-9", Origin::Queue))
        .await
        .unwrap();
    assert_eq!(
        next(&mut heard).await,
        Heard::Notice {
            channel: "wa_outbox".into(),
            payload: "optica-9".into()
        }
    );
    let Enqueued::New(compat) = outbox.enqueue(message("7", Origin::Compat)).await.unwrap() else {
        panic!("new")
    };
    assert_eq!(
        next(&mut heard).await,
        Heard::Notice {
            channel: "wa_outbox".into(),
            payload: "7".into()
        }
    );
    outbox
        .update(&compat.message_id, Update::Expired)
        .await
        .unwrap();
    assert_eq!(
        next(&mut heard).await,
        Heard::Notice {
            channel: "wa_message".into(),
            payload: compat.message_id.to_string()
        }
    );
}

/// Messages expire by the database's clock, whichever node's clock runs ahead.
#[tokio::test]
async fn expiry_goes_by_the_database_clock() {
    let db = testing::database().await;
    migrate(db.pool()).await.unwrap();
    let (fencing, _refused) = Fencing::new();
    let outbox = PostgresOutbox::new(db.pool().clone(), Arc::new(fencing));
    let conn = db.pool().get().await.unwrap();
    let before: chrono::DateTime<Utc> = conn.query_one("SELECT now()", &[]).await.unwrap().get(0);
    let clock = outbox.now().await.unwrap();
    let after: chrono::DateTime<Utc> = conn.query_one("SELECT now()", &[]).await.unwrap().get(0);
    assert!(
        before <= clock && clock <= after,
        "{before} {clock} {after}"
    );
}

async fn next(heard: &mut tokio::sync::mpsc::UnboundedReceiver<Heard>) -> Heard {
    tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("a notification within 10 s")
        .expect("the listener runs")
}

/// Makes the org's lease run out now, as if its node stopped renewing it.
async fn expire(db: &testing::TestDatabase, org: &str) {
    db.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE wa_leases SET expires_at = now() - interval '1 second' WHERE org = $1",
            &[&org],
        )
        .await
        .unwrap();
}
