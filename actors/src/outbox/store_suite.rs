//! What every [`OutboxStore`] owes, written once and run against each store:
//! `memory` ([`MemoryStore`], the reference) and `sqlite` ([`SqliteOutbox`]) here,
//! and a store of another crate (PostgreSQL) through the exported
//! [`outbox_store_suite!`](crate::outbox_store_suite) macro, with the crate
//! feature `test-suite`. A new store here adds one line to the `suite!` call at
//! the end.
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
    Enqueued, ListFilter, Message, MessageBody, MessageId, MessageStatus, NewMessage, Origin,
    OutboxError, OutboxStore, Update, Updated,
};
use crate::OrgId;
use MessageStatus as S;

pub use acceptance::*;
pub use lifecycle::*;
pub use reads::*;

/// A store to run the suite on, and whatever must live as long as the test (a
/// database's directory, a test database).
pub struct Fixture {
    pub store: Arc<dyn OutboxStore>,
    pub keep: Box<dyn std::any::Any + Send>,
}

#[cfg(test)]
async fn memory_store() -> Fixture {
    Fixture {
        store: Arc::new(super::MemoryStore::new()),
        keep: Box::new(()),
    }
}

#[cfg(test)]
async fn sqlite_store() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = super::SqliteOutbox::open(dir.path().join("outbox.db"))
        .await
        .unwrap();
    Fixture {
        store: Arc::new(store),
        keep: Box::new(dir),
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

/// Runs every behaviour of the suite against one store, one `#[tokio::test]`
/// each, in a module `$name`: `$fixture` is an async fn returning a
/// [`Fixture`](crate::outbox::store_suite::Fixture).
#[macro_export]
macro_rules! outbox_store_suite {
    ($name:ident => $fixture:path) => {
        mod $name {
            $crate::outbox_store_suite!(@tests $fixture:
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
    };
    (@tests $fixture:path: $($behaviour:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $behaviour() {
            let fixture = $fixture().await;
            let store = ::std::sync::Arc::clone(&fixture.store);
            $crate::outbox::store_suite::$behaviour(store).await;
            drop(fixture);
        }
    )*};
}

#[cfg(test)]
crate::outbox_store_suite!(memory => super::memory_store);
#[cfg(test)]
crate::outbox_store_suite!(sqlite => super::sqlite_store);
