//! The outbox: every message a shop asked to send, from acceptance to the recipient's
//! phone (CONTRACT §10).
//!
//! A message is committed to a durable [`OutboxStore`] before the caller hears
//! "accepted", gets its WhatsApp message id right then, and keeps it for every
//! attempt, so a resend after a lost server ack is deduplicated by WhatsApp instead
//! of reaching the patient twice. Its [`MessageStatus`] only moves along the
//! transitions of [`MessageStatus::after`]: one table, tested row by row, that every
//! store applies.
//!
//! # Stores
//!
//! - [`SqliteOutbox`], the embedded default: one SQLite file in the sessions
//!   directory (`outbox.db`, mode 0600), WAL fsync'd before a write is answered, its schema
//!   migrated at open (`PRAGMA user_version`).
//! - [`MemoryStore`], the reference: the plainest code that obeys the trait, what
//!   the lane's unit tests run on. Not durable; never behind a `202`.
//!
//! Both pass one behavioural suite (`store_suite.rs`); a new store (PostgreSQL,
//! CONTRACT §13) is added to it with one line.
//!
//! # Group commit
//!
//! Accepting is the hot path, and a durable commit costs an fsync whether it holds
//! one message or a thousand. `SqliteOutbox` therefore has one writer thread that
//! owns the only write connection: every write (`enqueue`, `update`, `expire_due`)
//! is queued to it, and it takes everything queued, runs it in one transaction
//! (each write in its own savepoint, so a write that fails, such as one with a
//! message id already taken, is undone alone), commits once, and only then answers
//! each caller. Concurrent
//! requests share fsyncs instead of queueing for one each; a lone request waits for
//! one fsync, as it would without grouping. Reads use separate connections on the
//! blocking pool and see the last commit (WAL), never waiting for the writer.

mod id_clock;
pub(crate) mod lane;
pub mod memory;
mod service;
pub mod sqlite;
pub mod store;
#[cfg(any(test, feature = "test-suite"))]
pub mod store_suite;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use crate::OrgId;
use crate::media::MediaBody;

pub use lane::{LaneSpec, NOT_ON_WHATSAPP};
pub use memory::MemoryStore;
pub use service::{MessageWatch, Outbox};
pub use sqlite::SqliteOutbox;
pub use store::{Enqueued, ListFilter, OutboxError, OutboxStore, Updated};

/// Where a message stands (CONTRACT §10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Waiting for its org to be connected, or for its turn.
    Queued,
    /// Handed to the connection; WhatsApp's server ack not seen yet.
    Sending,
    /// WhatsApp's server acknowledged it.
    Sent,
    /// The recipient's phone reported it delivered.
    Delivered,
    /// The recipient's phone reported it read.
    Read,
    /// It will not be sent; `error` says why.
    Failed,
    /// Its `expires_at` passed before it was sent.
    Expired,
    /// Cancelled while queued.
    Cancelled,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 8] = [
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Delivered,
        Self::Read,
        Self::Failed,
        Self::Expired,
        Self::Cancelled,
    ];

    /// The wire name, as in CONTRACT §10.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Still to be delivered by the outbox (the org's lane works on these).
    pub fn is_pending(self) -> bool {
        matches!(self, Self::Queued | Self::Sending)
    }

    /// The status after `update`, or `None` when the update does not apply to a
    /// message in this status (the store then leaves the message as it is).
    ///
    /// Receipts and acks may arrive late or out of order, so they never move a
    /// message backwards (a `read` message stays `read` when its `delivered`
    /// receipt comes after), and an ack for the id of an attempt still counts after
    /// the message was given up on: WhatsApp has it, and the record says so.
    pub fn after(self, update: &Update) -> Option<Self> {
        use MessageStatus as S;
        match (update, self) {
            (Update::Sending { .. }, S::Queued | S::Sending) => Some(S::Sending),
            (Update::Sent { .. }, S::Sending | S::Failed | S::Expired) => Some(S::Sent),
            (Update::Delivered { .. }, S::Sending | S::Sent | S::Failed | S::Expired) => {
                Some(S::Delivered)
            }
            (Update::Read { .. }, S::Sending | S::Sent | S::Delivered | S::Failed | S::Expired) => {
                Some(S::Read)
            }
            (Update::Failed { .. }, S::Queued | S::Sending) => Some(S::Failed),
            (Update::Expired, S::Queued | S::Sending) => Some(S::Expired),
            (Update::ExpiredUnsent, S::Queued) => Some(S::Expired),
            (Update::Cancelled, S::Queued) => Some(S::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change a store applies to one message, if [`MessageStatus::after`] allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Update {
    /// An attempt starts: `attempts` grows by one.
    Sending {
        at: DateTime<Utc>,
    },
    /// The server acked it: `sent_at` is set (once; a later ack keeps the first time).
    Sent {
        at: DateTime<Utc>,
    },
    /// Delivered receipt: `delivered_at` (and `sent_at` if still empty) are set.
    Delivered {
        at: DateTime<Utc>,
    },
    /// Read receipt: `read_at` (and `delivered_at`, `sent_at` if still empty) are set.
    Read {
        at: DateTime<Utc>,
    },
    Failed {
        error: String,
    },
    Expired,
    /// Expired only if it was never handed to WhatsApp (still `queued`): a compat
    /// send whose wait ended answers an error, so the message must then never
    /// leave; one the lane has just begun to send is left to its ack.
    ExpiredUnsent,
    Cancelled,
}

/// A WhatsApp message id, fixed when the message is accepted.
///
/// Ours are WhatsApp Web's shape (`3EB0` and 18 upper-case hex digits); ids that
/// reach us from a request path are only checked to be short and plain, so a bad
/// one is a 400 and never reaches a query unchecked.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

/// Why a string is not a message id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message_id must be 1 to 64 letters, digits, '_' or '-'")]
pub struct MessageIdError;

impl MessageId {
    /// A new id in WhatsApp Web's shape: `3EB0` + 9 bytes in hex, which sort after
    /// the last id this process made (`id_clock.rs` says why and how).
    pub fn generate() -> Self {
        use rand::RngExt;
        static CLOCK: std::sync::Mutex<id_clock::IdClock> =
            std::sync::Mutex::new(id_clock::IdClock::new());
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
        let random: u32 = rand::rng().random();
        let bytes = CLOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next(now_ms, random);
        let mut id = String::with_capacity(22);
        id.push_str("3EB0");
        for b in bytes {
            id.push(HEX[usize::from(b >> 4)] as char);
            id.push(HEX[usize::from(b & 0x0f)] as char);
        }
        Self(id)
    }

    pub fn parse(raw: &str) -> Result<Self, MessageIdError> {
        let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(plain) {
            return Err(MessageIdError);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What a message carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageBody {
    Text(String),
    /// A file (CONTRACT §14), kept on disk under the message's id until the
    /// message is settled (see [`crate::media::MediaFiles`]).
    Media(MediaBody),
}

impl MessageBody {
    /// Whether two bodies are the same message (an idempotency key reused with
    /// another body is a conflict). Files are compared by content hash and size,
    /// with their kind, type, name and caption.
    pub fn same_content(&self, other: &Self) -> bool {
        self == other
    }

    /// The wire name of what it carries: `text`, `image` or `document`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text(_) => "text",
            Self::Media(media) => media.kind.as_str(),
        }
    }

    pub fn media(&self) -> Option<&MediaBody> {
        match self {
            Self::Text(_) => None,
            Self::Media(media) => Some(media),
        }
    }
}

/// How a message reached the outbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `POST /api/messages`: the caller reads the outcome later.
    Queue,
    /// `POST /api/send-message`: the caller waits for the outcome; the message
    /// expires when that wait ends, so an answered error is never delivered later.
    Compat,
}

impl Origin {
    pub const ALL: [Origin; 2] = [Self::Queue, Self::Compat];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Compat => "compat",
        }
    }

    /// The origin named by [`Origin::as_str`] (how a store reads it back).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// A message to accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    pub message_id: MessageId,
    pub org: OrgId,
    /// The recipient, digits with country code.
    pub phone: String,
    pub body: MessageBody,
    /// Unique per org when given.
    pub idempotency_key: Option<String>,
    pub origin: Origin,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A message as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub message_id: MessageId,
    pub org: OrgId,
    pub phone: String,
    pub body: MessageBody,
    pub idempotency_key: Option<String>,
    pub origin: Origin,
    pub status: MessageStatus,
    /// Attempts started so far (every one with `message_id`).
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

impl Message {
    /// The record of a message just accepted.
    pub fn accepted(new: NewMessage) -> Self {
        Self {
            message_id: new.message_id,
            org: new.org,
            phone: new.phone,
            body: new.body,
            idempotency_key: new.idempotency_key,
            origin: new.origin,
            status: MessageStatus::Queued,
            attempts: 0,
            created_at: new.created_at,
            expires_at: new.expires_at,
            sent_at: None,
            delivered_at: None,
            read_at: None,
            error: None,
        }
    }

    /// Applies `update` when [`MessageStatus::after`] allows it; returns whether it did.
    /// Every store keeps its records with this, so they all agree on the rules.
    pub fn apply(&mut self, update: &Update) -> bool {
        let Some(next) = self.status.after(update) else {
            return false;
        };
        self.status = next;
        match update {
            Update::Sending { .. } => self.attempts = self.attempts.saturating_add(1),
            Update::Sent { at } => {
                self.sent_at.get_or_insert(*at);
            }
            Update::Delivered { at } => {
                self.sent_at.get_or_insert(*at);
                self.delivered_at.get_or_insert(*at);
            }
            Update::Read { at } => {
                self.sent_at.get_or_insert(*at);
                self.delivered_at.get_or_insert(*at);
                self.read_at.get_or_insert(*at);
            }
            Update::Failed { error } => self.error = Some(error.clone()),
            Update::Expired | Update::ExpiredUnsent | Update::Cancelled => {}
        }
        true
    }

    /// Whether `new` asks for the same message as this one (same recipient and body).
    pub fn same_request(&self, new: &NewMessage) -> bool {
        self.org == new.org && self.phone == new.phone && self.body.same_content(&new.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus as S;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// Every (update, status) pair of the transition table, one row per line.
    #[test]
    fn transition_table() {
        let sending = Update::Sending { at: t() };
        let sent = Update::Sent { at: t() };
        let delivered = Update::Delivered { at: t() };
        let read = Update::Read { at: t() };
        let failed = Update::Failed { error: "x".into() };
        #[rustfmt::skip]
        let table: Vec<(&Update, [Option<S>; 8])> = vec![
            //            queued          sending          sent             delivered        read     failed           expired  cancelled
            (&sending,   [Some(S::Sending), Some(S::Sending), None,            None,            None,    None,            None,    None]),
            (&sent,      [None,           Some(S::Sent),    None,            None,            None,    Some(S::Sent),    Some(S::Sent), None]),
            (&delivered, [None,           Some(S::Delivered), Some(S::Delivered), None,       None,    Some(S::Delivered), Some(S::Delivered), None]),
            (&read,      [None,           Some(S::Read),    Some(S::Read),   Some(S::Read),   None,    Some(S::Read),    Some(S::Read), None]),
            (&failed,    [Some(S::Failed), Some(S::Failed), None,            None,            None,    None,            None,    None]),
            (&Update::Expired,   [Some(S::Expired), Some(S::Expired), None,  None,            None,    None,            None,    None]),
            (&Update::ExpiredUnsent, [Some(S::Expired), None,     None,            None,            None,    None,            None,    None]),
            (&Update::Cancelled, [Some(S::Cancelled), None,  None,            None,            None,    None,            None,    None]),
        ];
        for (update, row) in table {
            for (status, want) in S::ALL.into_iter().zip(row) {
                assert_eq!(status.after(update), want, "{update:?} on {status}");
            }
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
        assert_eq!(S::parse("unknown"), None);
        for o in Origin::ALL {
            assert_eq!(Origin::parse(o.as_str()), Some(o));
            assert_eq!(
                serde_json::to_value(o).unwrap(),
                serde_json::Value::String(o.as_str().into())
            );
        }
        assert_eq!(Origin::parse("unknown"), None);
    }

    #[test]
    fn generated_ids_have_whatsapp_webs_shape_and_increase() {
        let id = MessageId::generate();
        assert_eq!(id.as_str().len(), 22);
        assert!(id.as_str().starts_with("3EB0"));
        assert!(
            id.as_str()[4..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        assert_eq!(MessageId::parse(id.as_str()), Ok(id.clone()));
        // Each sorts after the one before (`id_clock.rs`).
        let next = MessageId::generate();
        assert!(next > id, "{next} after {id}");
    }

    #[test]
    fn message_ids_from_requests_are_checked() {
        for bad in ["", "a/b", "../x", "a b", &"x".repeat(65)] {
            assert_eq!(MessageId::parse(bad), Err(MessageIdError), "{bad:?}");
        }
        assert!(MessageId::parse("3EB0ABC_def-1").is_ok());
    }

    #[test]
    fn apply_sets_times_once_and_counts_attempts() {
        let org = OrgId::parse("2").unwrap();
        let mut m = Message::accepted(NewMessage {
            message_id: MessageId::generate(),
            org,
            phone: "573001234567".into(),
            body: MessageBody::Text("hola".into()),
            idempotency_key: None,
            origin: Origin::Queue,
            created_at: t(),
            expires_at: t() + chrono::Duration::days(1),
        });
        let later = t() + chrono::Duration::seconds(5);
        assert!(m.apply(&Update::Sending { at: t() }));
        assert!(m.apply(&Update::Sending { at: t() }));
        assert_eq!(m.attempts, 2);
        assert!(m.apply(&Update::Read { at: later }));
        assert_eq!(
            (m.sent_at, m.delivered_at, m.read_at),
            (Some(later), Some(later), Some(later))
        );
        // A late delivered receipt never moves a read message back.
        assert!(!m.apply(&Update::Delivered { at: later }));
        assert_eq!(m.status, S::Read);
        assert!(!m.apply(&Update::Cancelled));
    }
}
