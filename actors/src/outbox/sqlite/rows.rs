//! A message as a row of `messages`, and back.
//!
//! Times are stored as RFC 3339 UTC text with exactly nine fraction digits
//! (`2026-11-30T10:00:00.123456789Z`): readable in a `sqlite3` shell, exact to the
//! nanosecond (a message reads back equal to what was stored), and, being fixed
//! width, ordered as text the way they are in time, so `expires_at <= ?` is a plain
//! index range. That holds for years 0000 to 9999 only; a time outside is refused.

use std::error::Error;
use std::fmt;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use rusqlite::Row;
use rusqlite::types::Type;

use crate::OrgId;
use crate::media::{MediaBody, MediaKind};
use crate::outbox::{Message, MessageBody, MessageId, MessageStatus, Origin};

/// Every column of a message, in the order [`decode`] reads them.
pub(super) const COLUMNS: &str = "seq, message_id, org, phone, body_kind, body_text, \
    idempotency_key, origin, status, attempts, created_at, expires_at, sent_at, \
    delivered_at, read_at, error, media_kind, media_mimetype, media_filename, media_caption, \
    media_sha256, media_size";

const TEXT_KIND: &str = "text";
const MEDIA_KIND: &str = "media";

/// A stored message with its place in the acceptance order.
#[derive(Debug)]
pub(super) struct Stored {
    pub seq: i64,
    pub message: Message,
}

/// Reads a row selected with [`COLUMNS`].
pub(super) fn decode(row: &Row<'_>) -> rusqlite::Result<Stored> {
    let body = match row.get_ref(4)?.as_str()? {
        TEXT_KIND => MessageBody::Text(row.get(5)?),
        MEDIA_KIND => MessageBody::Media(MediaBody {
            kind: MediaKind::parse(row.get_ref(16)?.as_str()?)
                .ok_or_else(|| bad(16, "media_kind"))?,
            mimetype: row.get(17)?,
            filename: row.get(18)?,
            caption: row.get(19)?,
            sha256: row.get(20)?,
            size: u64::try_from(row.get::<_, i64>(21)?).map_err(|_| bad(21, "media_size"))?,
        }),
        _ => return Err(bad(4, "body_kind")),
    };
    let message = Message {
        message_id: MessageId::parse(row.get_ref(1)?.as_str()?)
            .map_err(|_| bad(1, "message_id"))?,
        org: OrgId::parse(row.get_ref(2)?.as_str()?).map_err(|_| bad(2, "org"))?,
        phone: row.get(3)?,
        body,
        idempotency_key: row.get(6)?,
        origin: Origin::parse(row.get_ref(7)?.as_str()?).ok_or_else(|| bad(7, "origin"))?,
        status: MessageStatus::parse(row.get_ref(8)?.as_str()?).ok_or_else(|| bad(8, "status"))?,
        attempts: row.get(9)?,
        created_at: time(row, 10)?,
        expires_at: time(row, 11)?,
        sent_at: optional_time(row, 12)?,
        delivered_at: optional_time(row, 13)?,
        read_at: optional_time(row, 14)?,
        error: row.get(15)?,
    };
    Ok(Stored {
        seq: row.get(0)?,
        message,
    })
}

/// The body as its columns: `body_kind`, `body_text` and the `media_*` ones, in
/// the order of [`COLUMNS`].
pub(super) struct BodyColumns<'a> {
    pub kind: &'static str,
    pub text: Option<&'a str>,
    pub media_kind: Option<&'static str>,
    pub mimetype: Option<&'a str>,
    pub filename: Option<&'a str>,
    pub caption: Option<&'a str>,
    pub sha256: Option<&'a str>,
    pub size: Option<i64>,
}

pub(super) fn body_columns(body: &MessageBody) -> BodyColumns<'_> {
    match body {
        MessageBody::Text(text) => BodyColumns {
            kind: TEXT_KIND,
            text: Some(text),
            media_kind: None,
            mimetype: None,
            filename: None,
            caption: None,
            sha256: None,
            size: None,
        },
        MessageBody::Media(media) => BodyColumns {
            kind: MEDIA_KIND,
            text: None,
            media_kind: Some(media.kind.as_str()),
            mimetype: Some(&media.mimetype),
            filename: media.filename.as_deref(),
            caption: media.caption.as_deref(),
            sha256: Some(&media.sha256),
            size: Some(i64::try_from(media.size).unwrap_or(i64::MAX)),
        },
    }
}

/// A time as stored (see the module docs).
pub(super) fn time_text(t: DateTime<Utc>) -> rusqlite::Result<String> {
    if !(0..=9999).contains(&t.year()) {
        return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(
            OutOfRange,
        )));
    }
    Ok(t.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

fn time(row: &Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text = row.get_ref(column)?.as_str()?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| bad(column, "time"))
}

fn optional_time(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get_ref(column)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => time(row, column).map(Some),
    }
}

/// A column whose value this build cannot read. The value itself is left out: it
/// may be a phone number or a message text.
fn bad(column: usize, what: &'static str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(BadValue(what)))
}

#[derive(Debug)]
struct BadValue(&'static str);

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable {} in the outbox database", self.0)
    }
}

impl Error for BadValue {}

#[derive(Debug)]
struct OutOfRange;

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a time outside the years 0000 to 9999 cannot be stored")
    }
}

impl Error for OutOfRange {}
