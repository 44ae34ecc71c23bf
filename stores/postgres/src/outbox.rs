//! [`PostgresOutbox`]: the outbox (CONTRACT §10) in the database several daemons
//! share (CONTRACT §13), with the same semantics as the embedded SQLite one; the
//! actor crate's behavioural suite runs against both (`tests/outbox_suite.rs`).
//!
//! - Accepting is one transaction, committed (and so durable) before it returns;
//!   an idempotency key is unique per org by a partial unique index, so of two
//!   racing requests with one new key, one inserts and the other finds it.
//! - An update locks the message row (`FOR UPDATE`), applies the shared transition
//!   table ([`Message::apply`]) and writes the result back: updates of one message
//!   from several nodes are serialized.
//! - The lane's updates ([`OutboxStore::update_as_owner`]) are fenced as well: the
//!   org's lease must still be this node's, checked in the same transaction.
//! - Accepting a message notifies `wa_outbox` (payload: the org), so the node that
//!   owns the org wakes its lane whichever node accepted it; a change of a
//!   compatible send's message notifies `wa_message` (payload: its id), so the
//!   node whose caller waits for the outcome hears of it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;
use wa_actors::OrgId;
use wa_actors::media::{MediaBody, MediaKind};
use wa_actors::outbox::{
    Enqueued, ListFilter, Message, MessageBody, MessageId, MessageStatus, NewMessage, Origin,
    OutboxError, OutboxStore, Update, Updated,
};

use crate::error::Failure;
use crate::fence::{self, Checked, Fence};

/// The channel a new message is announced on (payload: its org).
pub const OUTBOX_CHANNEL: &str = "wa_outbox";
/// The channel a change of a compatible send's message is announced on (payload:
/// its id).
pub const MESSAGE_CHANNEL: &str = "wa_message";

const COLUMNS: &str = "seq, message_id, org, phone, body_kind, body_text, idempotency_key, \
    origin, status, attempts, created_at, expires_at, sent_at, delivered_at, read_at, error, \
    media_kind, media_mimetype, media_filename, media_caption, media_sha256, media_size";

const TEXT_KIND: &str = "text";
const MEDIA_KIND: &str = "media";

/// The outbox in PostgreSQL (see the module docs). The schema is migration 0002
/// ([`migrate`](crate::migrate) at start).
pub struct PostgresOutbox {
    pool: Pool,
    fence: Arc<dyn Fence>,
}

impl std::fmt::Debug for PostgresOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOutbox").finish_non_exhaustive()
    }
}

impl PostgresOutbox {
    /// The outbox on `pool`; the lane's updates are fenced by `fence`.
    pub fn new(pool: Pool, fence: Arc<dyn Fence>) -> Self {
        Self { pool, fence }
    }

    async fn conn(&self) -> Result<Object, OutboxError> {
        self.pool.get().await.map_err(|e| store(&e))
    }

    async fn apply(
        &self,
        id: &MessageId,
        update: Update,
        fenced: bool,
    ) -> Result<Updated, OutboxError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| store(&e))?;
        let sql = format!("SELECT {COLUMNS} FROM wa_outbox WHERE message_id = $1 FOR UPDATE");
        let Some(row) = tx
            .query_opt(&sql, &[&id.as_str()])
            .await
            .map_err(|e| store(&e))?
        else {
            return Ok(Updated::NotFound);
        };
        let (seq, mut message) = decode(&row)?;
        if fenced
            && let Checked::Refused = fence::check(&*tx, self.fence.as_ref(), message.org.as_str())
                .await
                .map_err(|e| store(&e))?
        {
            return Err(OutboxError::Store(
                "this node no longer drives the organization (its lease moved on)".into(),
            ));
        }
        if !message.apply(&update) {
            return Ok(Updated::Refused(message));
        }
        let m = &message;
        tx.execute(
            "UPDATE wa_outbox SET status = $2, attempts = $3, sent_at = $4, delivered_at = $5, \
             read_at = $6, error = $7 WHERE seq = $1",
            &[
                &seq,
                &m.status.as_str(),
                &i64::from(m.attempts),
                &m.sent_at,
                &m.delivered_at,
                &m.read_at,
                &m.error,
            ],
        )
        .await
        .map_err(|e| store(&e))?;
        if m.origin == Origin::Compat {
            notify(&tx, MESSAGE_CHANNEL, m.message_id.as_str()).await?;
        }
        tx.commit().await.map_err(|e| store(&e))?;
        Ok(Updated::Applied(message))
    }
}

#[async_trait]
impl OutboxStore for PostgresOutbox {
    async fn enqueue(&self, new: NewMessage) -> Result<Enqueued, OutboxError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| store(&e))?;
        if let Some(found) = by_key(&tx, &new).await? {
            return found;
        }
        let message = Message::accepted(new.clone());
        let (kind, text, media) = match &message.body {
            MessageBody::Text(text) => (TEXT_KIND, Some(text.as_str()), None),
            MessageBody::Media(media) => (MEDIA_KIND, None, Some(media)),
        };
        let media_size = media
            .map(|m| i64::try_from(m.size))
            .transpose()
            .map_err(|_| OutboxError::Store("the file is too large to record".into()))?;
        let inserted = tx
            .query_opt(
                "INSERT INTO wa_outbox (message_id, org, phone, body_kind, body_text, \
                 idempotency_key, origin, status, attempts, created_at, expires_at, \
                 media_kind, media_mimetype, media_filename, media_caption, media_sha256, \
                 media_size) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                 $16, $17) \
                 ON CONFLICT (org, idempotency_key) WHERE idempotency_key IS NOT NULL \
                 DO NOTHING RETURNING seq",
                &[
                    &message.message_id.as_str(),
                    &message.org.as_str(),
                    &message.phone,
                    &kind,
                    &text,
                    &message.idempotency_key,
                    &message.origin.as_str(),
                    &message.status.as_str(),
                    &i64::from(message.attempts),
                    &message.created_at,
                    &message.expires_at,
                    &media.map(|m| m.kind.as_str()),
                    &media.map(|m| m.mimetype.as_str()),
                    &media.and_then(|m| m.filename.as_deref()),
                    &media.and_then(|m| m.caption.as_deref()),
                    &media.map(|m| m.sha256.as_str()),
                    &media_size,
                ],
            )
            .await
            .map_err(|e| store(&e))?;
        if inserted.is_none() {
            // Another request took the key in the meantime; it is committed now.
            return match by_key(&tx, &new).await? {
                Some(found) => found,
                None => Err(OutboxError::Store(
                    "the idempotency key was taken and released meanwhile".into(),
                )),
            };
        }
        notify(&tx, OUTBOX_CHANNEL, message.org.as_str()).await?;
        tx.commit().await.map_err(|e| store(&e))?;
        Ok(Enqueued::New(message))
    }

    async fn by_key(&self, org: &OrgId, key: &str) -> Result<Option<Message>, OutboxError> {
        let conn = self.conn().await?;
        let sql =
            format!("SELECT {COLUMNS} FROM wa_outbox WHERE org = $1 AND idempotency_key = $2");
        let row = conn
            .query_opt(&sql, &[&org.as_str(), &key])
            .await
            .map_err(|e| store(&e))?;
        row.map(|r| decode(&r).map(|(_, m)| m)).transpose()
    }

    async fn get(&self, id: &MessageId) -> Result<Option<Message>, OutboxError> {
        let conn = self.conn().await?;
        let sql = format!("SELECT {COLUMNS} FROM wa_outbox WHERE message_id = $1");
        let row = conn
            .query_opt(&sql, &[&id.as_str()])
            .await
            .map_err(|e| store(&e))?;
        row.map(|r| decode(&r).map(|(_, m)| m)).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Message>, OutboxError> {
        let conn = self.conn().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM wa_outbox \
             WHERE ($1::text IS NULL OR org = $1) AND ($2::text IS NULL OR status = $2) \
             ORDER BY seq DESC LIMIT $3"
        );
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let rows = conn
            .query(
                &sql,
                &[
                    &filter.org.as_ref().map(OrgId::as_str),
                    &filter.status.map(MessageStatus::as_str),
                    &limit,
                ],
            )
            .await
            .map_err(|e| store(&e))?;
        rows.iter().map(|r| decode(r).map(|(_, m)| m)).collect()
    }

    async fn update(&self, id: &MessageId, update: Update) -> Result<Updated, OutboxError> {
        self.apply(id, update, false).await
    }

    async fn update_as_owner(
        &self,
        id: &MessageId,
        update: Update,
    ) -> Result<Updated, OutboxError> {
        self.apply(id, update, true).await
    }

    async fn next_pending(&self, org: &OrgId) -> Result<Option<Message>, OutboxError> {
        let conn = self.conn().await?;
        let sql = format!(
            "SELECT {COLUMNS} FROM wa_outbox WHERE org = $1 AND status IN ('queued', 'sending') \
             ORDER BY seq LIMIT 1"
        );
        let row = conn
            .query_opt(&sql, &[&org.as_str()])
            .await
            .map_err(|e| store(&e))?;
        row.map(|r| decode(&r).map(|(_, m)| m)).transpose()
    }

    /// Every node expires the one table's messages: they all go by the
    /// database's clock, so a node whose clock runs ahead expires nothing early.
    async fn now(&self) -> Result<DateTime<Utc>, OutboxError> {
        let row = self
            .conn()
            .await?
            .query_one("SELECT now()", &[])
            .await
            .map_err(|e| store(&e))?;
        Ok(row.get(0))
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Message>, OutboxError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| store(&e))?;
        // The statuses that expire are the transition table's to say.
        let expirable: Vec<&str> = MessageStatus::ALL
            .into_iter()
            .filter(|s| s.after(&Update::Expired).is_some())
            .map(MessageStatus::as_str)
            .collect();
        let sql = format!(
            "UPDATE wa_outbox SET status = $1 WHERE status = ANY($2) AND expires_at <= $3 \
             RETURNING {COLUMNS}"
        );
        let rows = tx
            .query(&sql, &[&MessageStatus::Expired.as_str(), &expirable, &now])
            .await
            .map_err(|e| store(&e))?;
        let mut expired = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        expired.sort_unstable_by_key(|(seq, _)| *seq);
        for (_, m) in &expired {
            if m.origin == Origin::Compat {
                notify(&tx, MESSAGE_CHANNEL, m.message_id.as_str()).await?;
            }
        }
        tx.commit().await.map_err(|e| store(&e))?;
        Ok(expired.into_iter().map(|(_, m)| m).collect())
    }

    async fn orgs_with_pending(&self) -> Result<Vec<OrgId>, OutboxError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT DISTINCT org FROM wa_outbox WHERE status IN ('queued', 'sending') \
                 ORDER BY org",
                &[],
            )
            .await
            .map_err(|e| store(&e))?;
        rows.iter().map(|r| stored_org(r.get(0))).collect()
    }

    async fn counts(&self) -> Result<Vec<(OrgId, MessageStatus, u64)>, OutboxError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT org, status, count(*) FROM wa_outbox GROUP BY org, status",
                &[],
            )
            .await
            .map_err(|e| store(&e))?;
        rows.iter()
            .map(|r| {
                let status: &str = r.get(1);
                let status = MessageStatus::parse(status).ok_or_else(|| {
                    OutboxError::Store(format!("unknown status {status:?} stored"))
                })?;
                let n: i64 = r.get(2);
                Ok((stored_org(r.get(0))?, status, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }
}

/// The org's message with the new one's idempotency key, as the answer to give:
/// the same request (a duplicate) or another one (the key is taken).
async fn by_key(
    tx: &deadpool_postgres::Transaction<'_>,
    new: &NewMessage,
) -> Result<Option<Result<Enqueued, OutboxError>>, OutboxError> {
    let Some(key) = &new.idempotency_key else {
        return Ok(None);
    };
    let sql = format!("SELECT {COLUMNS} FROM wa_outbox WHERE org = $1 AND idempotency_key = $2");
    let Some(row) = tx
        .query_opt(&sql, &[&new.org.as_str(), key])
        .await
        .map_err(|e| store(&e))?
    else {
        return Ok(None);
    };
    let (_, stored) = decode(&row)?;
    Ok(Some(if stored.same_request(new) {
        Ok(Enqueued::Duplicate(stored))
    } else {
        Err(OutboxError::KeyReused(Box::new(stored)))
    }))
}

async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    channel: &str,
    payload: &str,
) -> Result<(), OutboxError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .map(drop)
        .map_err(|e| store(&e))
}

fn decode(row: &Row) -> Result<(i64, Message), OutboxError> {
    let body = match row.get::<_, &str>(4) {
        TEXT_KIND => MessageBody::Text(row.get::<_, Option<String>>(5).unwrap_or_default()),
        MEDIA_KIND => MessageBody::Media(MediaBody {
            kind: row
                .get::<_, Option<&str>>(16)
                .and_then(MediaKind::parse)
                .ok_or_else(|| bad("media_kind"))?,
            mimetype: row
                .get::<_, Option<String>>(17)
                .ok_or_else(|| bad("media_mimetype"))?,
            filename: row.get(18),
            caption: row.get(19),
            sha256: row
                .get::<_, Option<String>>(20)
                .ok_or_else(|| bad("media_sha256"))?,
            size: row
                .get::<_, Option<i64>>(21)
                .and_then(|s| u64::try_from(s).ok())
                .ok_or_else(|| bad("media_size"))?,
        }),
        _ => return Err(bad("body_kind")),
    };
    let attempts: i64 = row.get(9);
    let message = Message {
        message_id: MessageId::parse(row.get(1)).map_err(|_| bad("message_id"))?,
        org: stored_org(row.get(2))?,
        phone: row.get(3),
        body,
        idempotency_key: row.get(6),
        origin: Origin::parse(row.get(7)).ok_or_else(|| bad("origin"))?,
        status: MessageStatus::parse(row.get(8)).ok_or_else(|| bad("status"))?,
        attempts: u32::try_from(attempts).map_err(|_| bad("attempts"))?,
        created_at: row.get(10),
        expires_at: row.get(11),
        sent_at: row.get(12),
        delivered_at: row.get(13),
        read_at: row.get(14),
        error: row.get(15),
    };
    Ok((row.get(0), message))
}

fn stored_org(name: &str) -> Result<OrgId, OutboxError> {
    OrgId::parse(name).map_err(|_| bad("org"))
}

/// A column this build cannot read; the value is left out (it may be a phone
/// number or a message text).
fn bad(what: &str) -> OutboxError {
    OutboxError::Store(format!("unreadable {what} in the outbox table"))
}

/// A database failure, in words that name no value.
fn store(e: &dyn Failure) -> OutboxError {
    OutboxError::Store(format!("PostgreSQL: {}", e.describe()))
}
