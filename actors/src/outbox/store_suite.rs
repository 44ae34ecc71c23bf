//! What every [`OutboxStore`] owes, written once and run against each store:
//! `memory` ([`MemoryStore`], the reference) and `sqlite` ([`SqliteOutbox`]). A new
//! store adds one line to the `suite!` call at the end.
//!
//! Each behaviour is an async fn over `Arc<dyn OutboxStore>`. Times carry
//! microseconds, not nanoseconds: the finest a PostgreSQL timestamp keeps, so a
//! PostgreSQL store can be held to the same suite.
//!
//! The behaviours are in `acceptance`, `lifecycle` and `reads`; the helpers they
//! share are here.

mod acceptance;
mod lifecycle;
mod reads;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{
    Enqueued, ListFilter, MemoryStore, Message, MessageBody, MessageId, MessageStatus, NewMessage,
    Origin, OutboxError, OutboxStore, SqliteOutbox, Update, Updated,
};
use crate::OrgId;
use MessageStatus as S;

use acceptance::*;
use lifecycle::*;
use reads::*;

struct Fixture {
    store: Arc<dyn OutboxStore>,
    /// Keeps a database's directory until the test ends.
    _dir: Option<tempfile::TempDir>,
}

async fn memory_store() -> Fixture {
    Fixture {
        store: Arc::new(MemoryStore::new()),
        _dir: None,
    }
}

async fn sqlite_store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOutbox::open(dir.path().join("outbox.db"))
        .await
        .unwrap();
    Fixture {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

// ---------------------------------------------------------------- helpers

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

/// `secs` after a fixed instant, with a microsecond fraction.
fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 123_456_000).unwrap()
}

fn text(org_id: &str, phone: &str, body: &str, key: Option<&str>) -> NewMessage {
    NewMessage {
        message_id: MessageId::generate(),
        org: org(org_id),
        phone: phone.to_owned(),
        body: MessageBody::Text(body.to_owned()),
        idempotency_key: key.map(str::to_owned),
        origin: Origin::Queue,
        created_at: at(0),
        expires_at: at(86_400),
    }
}

async fn accept(store: &dyn OutboxStore, new: NewMessage) -> Message {
    match store.enqueue(new).await.unwrap() {
        Enqueued::New(m) => m,
        other => panic!("expected a new message, got {other:?}"),
    }
}

async fn apply(store: &dyn OutboxStore, id: &MessageId, update: Update) -> Message {
    match store.update(id, update.clone()).await.unwrap() {
        Updated::Applied(m) => m,
        other => panic!("expected {update:?} to apply, got {other:?}"),
    }
}

async fn current(store: &dyn OutboxStore, messages: &[&Message]) -> Vec<Message> {
    let mut now = Vec::new();
    for m in messages {
        now.push(store.get(&m.message_id).await.unwrap().unwrap());
    }
    now
}

fn filter(org_id: Option<&str>, status: Option<MessageStatus>, limit: usize) -> ListFilter {
    ListFilter {
        org: org_id.map(org),
        status,
        limit,
    }
}

// ---------------------------------------------------------------- the runs

/// One module per store, one `#[tokio::test]` per behaviour.
macro_rules! suite {
    ($($store:ident => $fixture:ident),* $(,)?) => {$(
        mod $store {
            suite!(@tests $fixture:
                round_trip_keeps_every_field,
                media_bodies_round_trip_and_are_compared_by_content,
                a_repeated_key_with_the_same_request_is_a_duplicate,
                a_repeated_key_with_another_request_is_refused,
                keys_belong_to_one_org,
                racing_enqueues_of_one_new_key,
                list_filters_newest_accepted_first,
                every_transition_through_update,
                times_are_set_once_and_attempts_counted,
                next_pending_is_the_orgs_oldest_accepted,
                expire_due_expires_pending_messages_past_their_time,
                orgs_with_pending_are_listed_by_id,
                counts_are_per_org_and_status,
                concurrent_enqueues_are_all_kept_in_order,
            );
        }
    )*};
    (@tests $fixture:ident: $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $behaviour() {
            let fixture = super::$fixture().await;
            super::$behaviour(std::sync::Arc::clone(&fixture.store)).await;
        }
    )*};
}

suite!(memory => memory_store, sqlite => sqlite_store);
