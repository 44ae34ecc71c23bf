//! A message's life after acceptance: `update` through the transition table, the
//! times it sets, the lane's `next_pending` and `expire_due`.

use std::sync::Arc;

use super::*;

/// How a fresh message reaches each status through `update`.
fn path_to(status: MessageStatus) -> Vec<Update> {
    let sending = Update::Sending { at: at(1) };
    match status {
        S::Queued => vec![],
        S::Sending => vec![sending],
        S::Sent => vec![sending, Update::Sent { at: at(2) }],
        S::Delivered => vec![sending, Update::Delivered { at: at(3) }],
        S::Read => vec![sending, Update::Read { at: at(4) }],
        S::Failed => vec![Update::Failed {
            error: "gave up".into(),
        }],
        S::Expired => vec![Update::Expired],
        S::Cancelled => vec![Update::Cancelled],
    }
}

/// Every (status, update) pair of the transition table, through the store: it
/// applies or refuses exactly as [`Message::apply`] does, and keeps the result.
pub async fn every_transition_through_update(store: Arc<dyn OutboxStore>) {
    let updates = [
        Update::Sending { at: at(10) },
        Update::Sent { at: at(20) },
        Update::Delivered { at: at(30) },
        Update::Read { at: at(40) },
        Update::Failed {
            error: "not on WhatsApp".into(),
        },
        Update::Expired,
        Update::ExpiredUnsent,
        Update::Cancelled,
    ];
    for status in S::ALL {
        for update in &updates {
            let mut model = accept(&*store, text("2", "573001234567", "t", None)).await;
            let id = model.message_id.clone();
            for step in path_to(status) {
                assert!(model.apply(&step));
                assert_eq!(
                    store.update(&id, step).await.unwrap(),
                    Updated::Applied(model.clone())
                );
            }
            assert_eq!(model.status, status);
            let before = model.clone();
            let want = if model.apply(update) {
                assert_eq!(Some(model.status), status.after(update));
                Updated::Applied(model.clone())
            } else {
                assert_eq!(status.after(update), None);
                Updated::Refused(before)
            };
            let got = store.update(&id, update.clone()).await.unwrap();
            assert_eq!(got, want, "{update:?} on {status}");
            assert_eq!(
                store.get(&id).await.unwrap(),
                Some(model),
                "{update:?} on {status}"
            );
        }
    }
    let unknown = store
        .update(&MessageId::generate(), Update::Cancelled)
        .await
        .unwrap();
    assert_eq!(unknown, Updated::NotFound);
}

pub async fn times_are_set_once_and_attempts_counted(store: Arc<dyn OutboxStore>) {
    let id = accept(&*store, text("2", "571", "t", None))
        .await
        .message_id;
    apply(&*store, &id, Update::Sending { at: at(1) }).await;
    apply(&*store, &id, Update::Sending { at: at(2) }).await;
    apply(&*store, &id, Update::Sent { at: at(3) }).await;
    assert!(matches!(
        store.update(&id, Update::Sent { at: at(4) }).await.unwrap(),
        Updated::Refused(_)
    ));
    apply(&*store, &id, Update::Delivered { at: at(5) }).await;
    apply(&*store, &id, Update::Read { at: at(6) }).await;
    assert!(matches!(
        store
            .update(&id, Update::Delivered { at: at(7) })
            .await
            .unwrap(),
        Updated::Refused(_)
    ));
    let m = store.get(&id).await.unwrap().unwrap();
    assert_eq!(
        (m.status, m.attempts, m.sent_at, m.delivered_at, m.read_at),
        (S::Read, 2, Some(at(3)), Some(at(5)), Some(at(6)))
    );

    // A read receipt before any ack fills the earlier times with its own.
    let id = accept(&*store, text("2", "572", "t", None))
        .await
        .message_id;
    apply(&*store, &id, Update::Sending { at: at(1) }).await;
    let m = apply(&*store, &id, Update::Read { at: at(8) }).await;
    assert_eq!(
        (m.sent_at, m.delivered_at, m.read_at),
        (Some(at(8)), Some(at(8)), Some(at(8)))
    );
}

pub async fn next_pending_is_the_orgs_oldest_accepted(store: Arc<dyn OutboxStore>) {
    let next = |o: &'static str| {
        let store = Arc::clone(&store);
        async move {
            store
                .next_pending(&org(o))
                .await
                .unwrap()
                .map(|m| m.message_id)
        }
    };
    assert_eq!(next("2").await, None);
    let a = accept(&*store, text("2", "571", "a", None))
        .await
        .message_id;
    let b = accept(&*store, text("7", "572", "b", None))
        .await
        .message_id;
    let c = accept(&*store, text("2", "573", "c", None))
        .await
        .message_id;
    let d = accept(&*store, text("2", "574", "d", None))
        .await
        .message_id;
    assert_eq!(next("2").await, Some(a.clone()));
    assert_eq!(next("7").await, Some(b.clone()));
    assert_eq!(next("9").await, None);

    // A newer one sending does not jump the line; an older one sending leads it.
    apply(&*store, &c, Update::Sending { at: at(1) }).await;
    assert_eq!(next("2").await, Some(a.clone()));
    let sending = apply(&*store, &a, Update::Sending { at: at(2) }).await;
    assert_eq!(store.next_pending(&org("2")).await.unwrap(), Some(sending));
    apply(&*store, &a, Update::Sent { at: at(3) }).await;
    assert_eq!(next("2").await, Some(c.clone()));
    apply(&*store, &c, Update::Failed { error: "x".into() }).await;
    assert_eq!(next("2").await, Some(d.clone()));
    apply(&*store, &d, Update::Cancelled).await;
    assert_eq!(next("2").await, None);
    assert_eq!(next("7").await, Some(b));
}

pub async fn expire_due_expires_pending_messages_past_their_time(store: Arc<dyn OutboxStore>) {
    let expiring = |o: &str, body: &str, secs| NewMessage {
        expires_at: at(secs),
        ..text(o, "571", body, None)
    };
    let queued = accept(&*store, expiring("2", "due", 100)).await;
    let sending = accept(&*store, expiring("2", "due, sending", 100)).await;
    let sending = apply(&*store, &sending.message_id, Update::Sending { at: at(1) }).await;
    let later = accept(&*store, expiring("2", "not yet", 101)).await;
    let sent = accept(&*store, expiring("2", "sent", 50)).await;
    apply(&*store, &sent.message_id, Update::Sending { at: at(1) }).await;
    let sent = apply(&*store, &sent.message_id, Update::Sent { at: at(2) }).await;
    let other_org = accept(&*store, expiring("7", "due", 99)).await;
    let cancelled = accept(&*store, expiring("7", "cancelled", 10)).await;
    let cancelled = apply(&*store, &cancelled.message_id, Update::Cancelled).await;

    let mut expired = store.expire_due(at(100)).await.unwrap();
    let mut want: Vec<Message> = [queued, sending, other_org]
        .into_iter()
        .map(|mut m| {
            assert!(m.apply(&Update::Expired));
            m
        })
        .collect();
    expired.sort_by(|x, y| x.message_id.cmp(&y.message_id));
    want.sort_by(|x, y| x.message_id.cmp(&y.message_id));
    assert_eq!(expired, want);
    for m in want.iter().chain([&later, &sent, &cancelled]) {
        assert_eq!(store.get(&m.message_id).await.unwrap().as_ref(), Some(m));
    }
    assert_eq!(store.expire_due(at(100)).await.unwrap(), vec![]);
}
