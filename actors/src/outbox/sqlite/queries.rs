//! Every statement the store runs, as plain functions on a connection.
//!
//! The writes run on the writer thread inside a batch's transaction (each in its
//! own savepoint); the reads on a read connection. Each query has the index it
//! needs (`schema.rs`); `tests.rs` checks the plans.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::rows::{COLUMNS, Stored, body_columns, decode, time_text};
use crate::OrgId;
use crate::outbox::{
    Enqueued, ListFilter, Message, MessageId, MessageStatus, NewMessage, OutboxError, Update,
    Updated,
};

/// `'queued', 'sending'`: the statuses the lane still works on.
fn pending_statuses() -> impl Iterator<Item = MessageStatus> {
    MessageStatus::ALL.into_iter().filter(|s| s.is_pending())
}

fn sql_list(statuses: impl Iterator<Item = MessageStatus>) -> String {
    statuses
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The oldest pending message of org ?1. One `min(seq)` per pending status, each a
/// single probe of `(org, status, seq)`, so it costs the same with one queued
/// message or a hundred thousand (`status IN (..) ORDER BY seq` would sort them).
static NEXT_PENDING: LazyLock<String> = LazyLock::new(|| {
    let per_status: Vec<String> = pending_statuses()
        .map(|s| {
            format!(
                "SELECT min(seq) AS s FROM messages WHERE org = ?1 AND status = '{}'",
                s.as_str()
            )
        })
        .collect();
    format!(
        "SELECT {COLUMNS} FROM messages WHERE seq = (SELECT min(s) FROM ({}))",
        per_status.join(" UNION ALL ")
    )
});

/// Expires every message of a status that [`Update::Expired`] applies to (the
/// transition table decides which) whose `expires_at` is at or before ?1. Expiry
/// changes the status and nothing else, as [`crate::outbox::Message::apply`] does.
static EXPIRE_DUE: LazyLock<String> = LazyLock::new(|| {
    let expirable = MessageStatus::ALL
        .into_iter()
        .filter(|s| s.after(&Update::Expired).is_some());
    format!(
        "UPDATE messages SET status = '{}' WHERE status IN ({}) AND expires_at <= ?1 \
         RETURNING {COLUMNS}",
        MessageStatus::Expired.as_str(),
        sql_list(expirable)
    )
});

/// The orgs with pending messages, by id: a loose index scan that hops from one org
/// to the next on `(org, status, seq)` and probes each there, so it costs one probe
/// per org, not one row per queued message (a `DISTINCT` over 100,000 queued
/// messages takes some 100 ms of a restart; this, a few).
static ORGS_WITH_PENDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE orgs(org) AS (
            SELECT (SELECT min(org) FROM messages)
            UNION ALL
            SELECT (SELECT min(org) FROM messages WHERE org > orgs.org)
                FROM orgs WHERE orgs.org IS NOT NULL)
        SELECT org FROM orgs WHERE org IS NOT NULL AND EXISTS (
            SELECT 1 FROM messages AS m WHERE m.org = orgs.org AND m.status IN ({}))",
        sql_list(pending_statuses())
    )
});

static GET: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {COLUMNS} FROM messages WHERE message_id = ?1"));

static BY_KEY: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM messages WHERE org = ?1 AND idempotency_key = ?2")
});

/// One statement per filter shape, so each can use its own index: `(org, status,
/// seq)`, `(status, seq)` or the table itself.
///
/// An org's messages of any status are the newest of its `(org, status, seq)`
/// ranges, one per status, merged by `seq` (SQLite merges ordered compound
/// selects): reading them costs the limit, not the org's whole history, and no
/// `(org, seq)` index is kept up to date on every enqueue for this one listing.
static LIST: LazyLock<[String; 4]> = LazyLock::new(|| {
    let select = |filter: &str| {
        format!("SELECT {COLUMNS} FROM messages {filter} ORDER BY seq DESC LIMIT ?3")
    };
    let per_status: Vec<String> = MessageStatus::ALL
        .into_iter()
        .map(|s| {
            format!(
                "SELECT seq FROM messages WHERE org = ?1 AND status = '{}'",
                s.as_str()
            )
        })
        .collect();
    let by_org = format!(
        "SELECT {COLUMNS} FROM messages WHERE ?2 IS NULL AND seq IN ({} ORDER BY seq DESC LIMIT ?3) \
         ORDER BY seq DESC",
        per_status.join(" UNION ALL ")
    );
    [
        select("WHERE org = ?1 AND status = ?2"),
        by_org,
        select("WHERE status = ?2 AND ?1 IS NULL"),
        select("WHERE ?1 IS NULL AND ?2 IS NULL"),
    ]
});

const INSERT: &str = "INSERT INTO messages (message_id, org, phone, body_kind, body_text, \
    idempotency_key, origin, status, attempts, created_at, expires_at, sent_at, delivered_at, \
    read_at, error, media_kind, media_mimetype, media_filename, media_caption, media_sha256, \
    media_size) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
    ?17, ?18, ?19, ?20, ?21)";

/// Writes back what [`Message::apply`] may change.
const WRITE_BACK: &str = "UPDATE messages SET status = ?2, attempts = ?3, sent_at = ?4, \
    delivered_at = ?5, read_at = ?6, error = ?7 WHERE seq = ?1";

const COUNTS: &str = "SELECT org, status, count(*) FROM messages GROUP BY org, status";

// ---------------------------------------------------------------- writes

pub(super) fn enqueue(conn: &Connection, new: NewMessage) -> Result<Enqueued, OutboxError> {
    if let Some(key) = &new.idempotency_key
        && let Some(stored) = by_key_stored(conn, &new.org, key)?
    {
        return if stored.message.same_request(&new) {
            Ok(Enqueued::Duplicate(stored.message))
        } else {
            Err(OutboxError::KeyReused(Box::new(stored.message)))
        };
    }
    let message = Message::accepted(new);
    insert(conn, &message)?;
    Ok(Enqueued::New(message))
}

fn insert(conn: &Connection, m: &Message) -> rusqlite::Result<()> {
    let body = body_columns(&m.body);
    conn.prepare_cached(INSERT)?.execute(params![
        m.message_id.as_str(),
        m.org.as_str(),
        m.phone,
        body.kind,
        body.text,
        m.idempotency_key,
        m.origin.as_str(),
        m.status.as_str(),
        m.attempts,
        time_text(m.created_at)?,
        time_text(m.expires_at)?,
        m.sent_at.map(time_text).transpose()?,
        m.delivered_at.map(time_text).transpose()?,
        m.read_at.map(time_text).transpose()?,
        m.error,
        body.media_kind,
        body.mimetype,
        body.filename,
        body.caption,
        body.sha256,
        body.size,
    ])?;
    Ok(())
}

/// Reads the message, applies the shared transition table, and writes it back only
/// when the update applied.
pub(super) fn update(
    conn: &Connection,
    id: &MessageId,
    update: &Update,
) -> Result<Updated, OutboxError> {
    let Some(Stored { seq, mut message }) = get_stored(conn, id)? else {
        return Ok(Updated::NotFound);
    };
    if !message.apply(update) {
        return Ok(Updated::Refused(message));
    }
    let m = &message;
    conn.prepare_cached(WRITE_BACK)?.execute(params![
        seq,
        m.status.as_str(),
        m.attempts,
        m.sent_at.map(time_text).transpose()?,
        m.delivered_at.map(time_text).transpose()?,
        m.read_at.map(time_text).transpose()?,
        m.error,
    ])?;
    Ok(Updated::Applied(message))
}

/// One statement; the expired messages in acceptance order.
pub(super) fn expire_due(
    conn: &Connection,
    now: DateTime<Utc>,
) -> Result<Vec<Message>, OutboxError> {
    let mut expired = conn
        .prepare_cached(&EXPIRE_DUE)?
        .query_map([time_text(now)?], decode)?
        .collect::<rusqlite::Result<Vec<Stored>>>()?;
    expired.sort_unstable_by_key(|s| s.seq);
    Ok(expired.into_iter().map(|s| s.message).collect())
}

// ---------------------------------------------------------------- reads

fn get_stored(conn: &Connection, id: &MessageId) -> rusqlite::Result<Option<Stored>> {
    conn.prepare_cached(&GET)?
        .query_row([id.as_str()], decode)
        .optional()
}

pub(super) fn get(conn: &Connection, id: &MessageId) -> Result<Option<Message>, OutboxError> {
    Ok(get_stored(conn, id)?.map(|s| s.message))
}

pub(super) fn by_key(
    conn: &Connection,
    org: &OrgId,
    key: &str,
) -> Result<Option<Message>, OutboxError> {
    Ok(by_key_stored(conn, org, key)?.map(|s| s.message))
}

fn by_key_stored(conn: &Connection, org: &OrgId, key: &str) -> Result<Option<Stored>, OutboxError> {
    Ok(conn
        .prepare_cached(&BY_KEY)?
        .query_row(params![org.as_str(), key], decode)
        .optional()?)
}

pub(super) fn list(conn: &Connection, filter: &ListFilter) -> Result<Vec<Message>, OutboxError> {
    let shape = match (&filter.org, filter.status) {
        (Some(_), Some(_)) => 0,
        (Some(_), None) => 1,
        (None, Some(_)) => 2,
        (None, None) => 3,
    };
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let messages = conn
        .prepare_cached(&LIST[shape])?
        .query_map(
            params![
                filter.org.as_ref().map(OrgId::as_str),
                filter.status.map(MessageStatus::as_str),
                limit
            ],
            |row| decode(row).map(|s| s.message),
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(messages)
}

pub(super) fn next_pending(conn: &Connection, org: &OrgId) -> Result<Option<Message>, OutboxError> {
    Ok(conn
        .prepare_cached(&NEXT_PENDING)?
        .query_row([org.as_str()], decode)
        .optional()?
        .map(|s| s.message))
}

pub(super) fn orgs_with_pending(conn: &Connection) -> Result<Vec<OrgId>, OutboxError> {
    let names = conn
        .prepare_cached(&ORGS_WITH_PENDING)?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut orgs = names
        .iter()
        .map(|name| stored_org(name))
        .collect::<Result<Vec<_>, _>>()?;
    // Already in order as the scan hops upwards, but SQL promises no order without
    // ORDER BY, and a sort of a few hundred ids costs nothing.
    orgs.sort_unstable();
    Ok(orgs)
}

pub(super) fn counts(conn: &Connection) -> Result<Vec<(OrgId, MessageStatus, u64)>, OutboxError> {
    let rows = conn
        .prepare_cached(COUNTS)?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter()
        .map(|(org, status, n)| {
            let status = MessageStatus::parse(&status)
                .ok_or_else(|| OutboxError::Store(format!("unknown status {status:?} stored")))?;
            Ok((stored_org(&org)?, status, u64::try_from(n).unwrap_or(0)))
        })
        .collect()
}

fn stored_org(name: &str) -> Result<OrgId, OutboxError> {
    OrgId::parse(name).map_err(|e| OutboxError::Store(format!("unreadable org stored: {e}")))
}

/// The SQL of each query, for the plan checks in `tests.rs`.
#[cfg(test)]
pub(super) fn all_reads_and_writes() -> Vec<(&'static str, String)> {
    let mut all = vec![
        ("get", GET.clone()),
        ("by_key", BY_KEY.clone()),
        ("next_pending", NEXT_PENDING.clone()),
        ("expire_due", EXPIRE_DUE.clone()),
        ("write_back", WRITE_BACK.to_owned()),
        ("orgs_with_pending", ORGS_WITH_PENDING.clone()),
    ];
    let names = ["list org+status", "list org", "list status", "list all"];
    all.extend(names.into_iter().zip(LIST.iter().cloned()));
    all
}
