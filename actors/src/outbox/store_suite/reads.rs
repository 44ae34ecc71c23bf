//! What the HTTP API and the metrics read: `list`, `orgs_with_pending`, `counts`.

use std::sync::Arc;

use super::*;

pub async fn list_filters_newest_accepted_first(store: Arc<dyn OutboxStore>) {
    // `created_at` deliberately out of acceptance order: "newest" is acceptance.
    let made_at = |new: NewMessage, secs| NewMessage {
        created_at: at(secs),
        ..new
    };
    let a1 = accept(&*store, made_at(text("2", "571", "a1", None), 50)).await;
    let b1 = accept(&*store, made_at(text("7", "572", "b1", None), 10)).await;
    let a2 = accept(&*store, made_at(text("2", "573", "a2", None), 5)).await;
    apply(&*store, &a2.message_id, Update::Sending { at: at(60) }).await;
    let a3 = accept(&*store, made_at(text("2", "574", "a3", None), 40)).await;
    let b2 = accept(&*store, made_at(text("7", "575", "b2", None), 30)).await;
    apply(&*store, &b2.message_id, Update::Cancelled).await;

    let cases: Vec<(ListFilter, Vec<&Message>)> = vec![
        (filter(None, None, 100), vec![&b2, &a3, &a2, &b1, &a1]),
        (filter(Some("2"), None, 100), vec![&a3, &a2, &a1]),
        (filter(None, Some(S::Queued), 100), vec![&a3, &b1, &a1]),
        (filter(Some("2"), Some(S::Queued), 100), vec![&a3, &a1]),
        (filter(Some("7"), Some(S::Cancelled), 100), vec![&b2]),
        (filter(Some("7"), Some(S::Sending), 100), vec![]),
        (filter(Some("9"), None, 100), vec![]),
        (filter(None, None, 2), vec![&b2, &a3]),
        (filter(Some("2"), None, 1), vec![&a3]),
        // An org's newest of any status, across statuses (queued a3, sending a2).
        (filter(Some("2"), None, 2), vec![&a3, &a2]),
        (filter(Some("7"), None, 100), vec![&b2, &b1]),
        (filter(Some("7"), None, usize::MAX), vec![&b2, &b1]),
        (filter(None, None, 0), vec![]),
        (
            filter(None, None, usize::MAX),
            vec![&b2, &a3, &a2, &b1, &a1],
        ),
    ];
    for (f, want) in cases {
        let want = current(&*store, &want).await;
        assert_eq!(store.list(&f).await.unwrap(), want, "{f:?}");
    }
}

pub async fn orgs_with_pending_are_listed_by_id(store: Arc<dyn OutboxStore>) {
    assert_eq!(store.orgs_with_pending().await.unwrap(), vec![]);
    for o in ["7", "2", "x-9", "2"] {
        accept(&*store, text(o, "571", "q", None)).await;
    }
    let cancelled = accept(&*store, text("5", "571", "c", None))
        .await
        .message_id;
    apply(&*store, &cancelled, Update::Cancelled).await;
    let sending = accept(&*store, text("3", "571", "s", None))
        .await
        .message_id;
    apply(&*store, &sending, Update::Sending { at: at(1) }).await;
    let pending = |ids: &[&str]| ids.iter().map(|o| org(o)).collect::<Vec<_>>();
    assert_eq!(
        store.orgs_with_pending().await.unwrap(),
        pending(&["2", "3", "7", "x-9"])
    );
    apply(&*store, &sending, Update::Sent { at: at(2) }).await;
    assert_eq!(
        store.orgs_with_pending().await.unwrap(),
        pending(&["2", "7", "x-9"])
    );
}

pub async fn counts_are_per_org_and_status(store: Arc<dyn OutboxStore>) {
    assert_eq!(store.counts().await.unwrap(), vec![]);
    accept(&*store, text("2", "571", "q", None)).await;
    accept(&*store, text("2", "572", "q", None)).await;
    let s = accept(&*store, text("2", "573", "s", None))
        .await
        .message_id;
    apply(&*store, &s, Update::Sending { at: at(1) }).await;
    accept(&*store, text("7", "574", "q", None)).await;
    let c = accept(&*store, text("7", "575", "c", None))
        .await
        .message_id;
    apply(&*store, &c, Update::Cancelled).await;
    let mut counts = store.counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            (org("2"), S::Queued, 2),
            (org("2"), S::Sending, 1),
            (org("7"), S::Queued, 1),
            (org("7"), S::Cancelled, 1),
        ]
    );
}
