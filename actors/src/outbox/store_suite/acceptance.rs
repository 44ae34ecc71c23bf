//! Accepting messages: what is stored, idempotency keys, racing and concurrent
//! enqueues.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::Duration;
use tokio::sync::Barrier;

use super::*;

pub async fn round_trip_keeps_every_field(store: Arc<dyn OutboxStore>) {
    let new = NewMessage {
        message_id: MessageId::generate(),
        org: org("optica-2"),
        phone: "573001234567".to_owned(),
        body: MessageBody::Text("Hola Ana 👓\nSu cita: mañana 10:00, \"SI\" confirma; 100%".into()),
        idempotency_key: Some("appt-41-reminder".to_owned()),
        origin: Origin::Compat,
        created_at: at(0),
        expires_at: at(3_600) + Duration::microseconds(7),
    };
    let accepted = accept(&*store, new.clone()).await;
    assert_eq!(accepted, Message::accepted(new.clone()));
    assert_eq!(store.get(&new.message_id).await.unwrap(), Some(accepted));

    // Every optional field set: an attempt, its ack, both receipts.
    let id = &new.message_id.clone();
    apply(&*store, id, Update::Sending { at: at(1) }).await;
    apply(&*store, id, Update::Sent { at: at(2) }).await;
    apply(&*store, id, Update::Delivered { at: at(3) }).await;
    let read = apply(&*store, id, Update::Read { at: at(4) }).await;
    let want = Message {
        status: S::Read,
        attempts: 1,
        sent_at: Some(at(2)),
        delivered_at: Some(at(3)),
        read_at: Some(at(4)),
        ..Message::accepted(new)
    };
    assert_eq!(read, want);
    assert_eq!(store.get(id).await.unwrap(), Some(want));

    // An error, kept when a late ack arrives after the message was given up on.
    let plain = accept(&*store, text("7", "573009990000", "otra", None)).await;
    let failed = apply(
        &*store,
        &plain.message_id,
        Update::Failed {
            error: "sin ruta ñ".into(),
        },
    )
    .await;
    assert_eq!(failed.error.as_deref(), Some("sin ruta ñ"));
    let acked = apply(&*store, &plain.message_id, Update::Sent { at: at(9) }).await;
    assert_eq!((acked.status, acked.sent_at), (S::Sent, Some(at(9))));
    assert_eq!(acked.error.as_deref(), Some("sin ruta ñ"));
    assert_eq!(store.get(&plain.message_id).await.unwrap(), Some(acked));

    assert_eq!(store.get(&MessageId::generate()).await.unwrap(), None);
}

pub async fn a_repeated_key_with_the_same_request_is_a_duplicate(store: Arc<dyn OutboxStore>) {
    let first = text("2", "573001234567", "recordatorio", Some("k-1"));
    let stored = accept(&*store, first.clone()).await;
    let again = NewMessage {
        message_id: MessageId::generate(),
        origin: Origin::Compat,
        created_at: at(60),
        expires_at: at(120),
        ..first
    };
    assert_eq!(
        store.enqueue(again).await.unwrap(),
        Enqueued::Duplicate(stored.clone())
    );
    assert_eq!(
        store.list(&filter(None, None, 100)).await.unwrap(),
        vec![stored]
    );
}

pub async fn a_repeated_key_with_another_request_is_refused(store: Arc<dyn OutboxStore>) {
    let first = text("2", "573001234567", "recordatorio", Some("k-1"));
    let stored = accept(&*store, first).await;
    for (phone, body) in [
        ("573001111111", "recordatorio"),
        ("573001234567", "otro texto"),
    ] {
        let other = text("2", phone, body, Some("k-1"));
        match store.enqueue(other).await {
            Err(OutboxError::KeyReused(holder)) => assert_eq!(*holder, stored),
            other => panic!("expected KeyReused, got {other:?}"),
        }
    }
    assert_eq!(
        store.list(&filter(None, None, 100)).await.unwrap(),
        vec![stored]
    );
}

pub async fn keys_belong_to_one_org(store: Arc<dyn OutboxStore>) {
    let in_2 = accept(&*store, text("2", "573001234567", "hola", Some("k"))).await;
    let in_7 = accept(&*store, text("7", "573001234567", "hola", Some("k"))).await;
    assert_ne!(in_2.message_id, in_7.message_id);
    // Without a key nothing is deduplicated.
    accept(&*store, text("2", "573001234567", "hola", None)).await;
    accept(&*store, text("2", "573001234567", "hola", None)).await;
    assert_eq!(store.list(&filter(None, None, 100)).await.unwrap().len(), 4);
    // Found by its key within its org only.
    apply(&*store, &in_7.message_id, Update::Cancelled).await;
    let found = |o: &str, key: &str| {
        let (store, o, key) = (Arc::clone(&store), org(o), key.to_owned());
        async move { store.by_key(&o, &key).await.unwrap() }
    };
    assert_eq!(found("2", "k").await, Some(in_2.clone()));
    let cancelled = found("7", "k").await.expect("7's");
    assert_eq!(cancelled.message_id, in_7.message_id);
    assert_eq!(cancelled.status, MessageStatus::Cancelled, "as it is now");
    assert_eq!(found("2", "other").await, None);
    assert_eq!(found("9", "k").await, None);
}

pub async fn racing_enqueues_of_one_new_key(store: Arc<dyn OutboxStore>) {
    const RACERS: usize = 16;
    async fn race(
        store: &Arc<dyn OutboxStore>,
        make: impl Fn(usize) -> NewMessage,
    ) -> Vec<Result<Enqueued, OutboxError>> {
        let start = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let (store, start, new) = (Arc::clone(store), Arc::clone(&start), make(i));
                tokio::spawn(async move {
                    start.wait().await;
                    store.enqueue(new).await
                })
            })
            .collect();
        let mut results = Vec::new();
        for racer in racers {
            results.push(racer.await.unwrap());
        }
        results
    }
    fn the_new_one(results: &[Result<Enqueued, OutboxError>]) -> Message {
        let new: Vec<&Message> = results
            .iter()
            .filter_map(|r| match r {
                Ok(Enqueued::New(m)) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(
            new.len(),
            1,
            "exactly one racer creates the message: {results:?}"
        );
        new[0].clone()
    }

    let same = race(&store, |_| text("2", "573001234567", "cita", Some("race"))).await;
    let winner = the_new_one(&same);
    for r in &same {
        match r {
            Ok(Enqueued::New(m) | Enqueued::Duplicate(m)) => assert_eq!(*m, winner),
            Err(e) => panic!("the same request raced: {e:?}"),
        }
    }

    let differing = race(&store, |i| {
        text("2", "573001234567", &format!("cita {i}"), Some("race-2"))
    })
    .await;
    let winner_2 = the_new_one(&differing);
    for r in &differing {
        match r {
            Ok(Enqueued::New(m)) => assert_eq!(*m, winner_2),
            Err(OutboxError::KeyReused(holder)) => assert_eq!(**holder, winner_2),
            other => panic!("a differing request with a taken key: {other:?}"),
        }
    }
    assert_eq!(
        store
            .list(&filter(Some("2"), None, 100))
            .await
            .unwrap()
            .len(),
        2
    );
}

/// Many tasks enqueue at once, each one message after the other: every message is
/// stored, and each task's messages are in the acceptance order it sent them in.
pub async fn concurrent_enqueues_are_all_kept_in_order(store: Arc<dyn OutboxStore>) {
    const TASKS: usize = 32;
    const EACH: usize = 20;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    let new = text(
                        &format!("org-{}", task % 4),
                        "571",
                        &format!("{task}/{i}"),
                        None,
                    );
                    ids.push(accept(&*store, new).await.message_id);
                }
                ids
            })
        })
        .collect();
    let mut sent_by_task = Vec::new();
    for task in tasks {
        sent_by_task.push(task.await.unwrap());
    }
    let listed = store.list(&filter(None, None, usize::MAX)).await.unwrap();
    assert_eq!(listed.len(), TASKS * EACH);
    // Newest first: the later a message was accepted, the smaller its place.
    let place: HashMap<&MessageId, usize> = listed
        .iter()
        .enumerate()
        .map(|(i, m)| (&m.message_id, i))
        .collect();
    assert_eq!(place.len(), TASKS * EACH, "a message is listed twice");
    for ids in &sent_by_task {
        let places: Vec<usize> = ids.iter().map(|id| place[id]).collect();
        assert!(
            places.windows(2).all(|w| w[0] > w[1]),
            "accepted out of order: {places:?}"
        );
    }
    let all: HashSet<&MessageId> = sent_by_task.iter().flatten().collect();
    assert_eq!(all.len(), TASKS * EACH);
}

pub async fn media_bodies_round_trip_and_are_compared_by_content(store: Arc<dyn OutboxStore>) {
    use crate::media::{MediaBody, MediaKind};
    let body = |sha: &str, caption: Option<&str>| {
        MessageBody::Media(MediaBody {
            kind: MediaKind::Image,
            mimetype: "image/png".into(),
            filename: None,
            caption: caption.map(str::to_owned),
            sha256: sha.repeat(32),
            size: 68,
        })
    };
    let keyed = |body: MessageBody| NewMessage {
        body,
        ..text("2", "573001234567", "", Some("appt-7-photo"))
    };
    let new = keyed(body("ab", Some("Su fórmula 👓")));
    let accepted = accept(&*store, new.clone()).await;
    assert_eq!(accepted, Message::accepted(new.clone()));
    assert_eq!(
        store.get(&new.message_id).await.unwrap(),
        Some(accepted.clone())
    );
    assert_eq!(
        store
            .enqueue(keyed(body("ab", Some("Su fórmula 👓"))))
            .await
            .unwrap(),
        Enqueued::Duplicate(accepted.clone())
    );
    for other in [body("cd", Some("Su fórmula 👓")), body("ab", None)] {
        assert!(
            matches!(store.enqueue(keyed(other)).await, Err(OutboxError::KeyReused(m)) if *m == accepted),
            "another file or caption under the same key"
        );
    }
    let next = store.next_pending(&org("2")).await.unwrap();
    assert_eq!(next.map(|m| m.body), Some(accepted.body));
}
