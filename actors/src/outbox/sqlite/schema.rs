//! The outbox database file: how its connections are opened and its schema migrated.
//!
//! Schema changes are numbered migrations; `PRAGMA user_version` records how many
//! are applied. Each is applied once, in order, in one transaction with the version
//! bump, at open. A database from a newer build (a higher version) is refused rather
//! than guessed at.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::outbox::OutboxError;

/// The migrations, in order; `user_version` is how many have run.
///
/// Times are RFC 3339 UTC text with nine fraction digits (see `rows.rs`). The body
/// is a `body_kind` plus nullable columns, one set per kind: media kinds add their
/// columns in a later migration without touching the text rows.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: the messages table and the indexes of every query the store makes.
    "CREATE TABLE messages (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT, -- acceptance order
        message_id      TEXT    NOT NULL UNIQUE,
        org             TEXT    NOT NULL,
        phone           TEXT    NOT NULL,
        body_kind       TEXT    NOT NULL,                  -- 'text', 'media' (2)
        body_text       TEXT,                              -- kind 'text'
        idempotency_key TEXT,
        origin          TEXT    NOT NULL,
        status          TEXT    NOT NULL,
        attempts        INTEGER NOT NULL,
        created_at      TEXT    NOT NULL,
        expires_at      TEXT    NOT NULL,
        sent_at         TEXT,
        delivered_at    TEXT,
        read_at         TEXT,
        error           TEXT
    ) STRICT;
    CREATE UNIQUE INDEX messages_org_key ON messages (org, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX messages_org_status_seq ON messages (org, status, seq);
    CREATE INDEX messages_status_expires ON messages (status, expires_at);
    CREATE INDEX messages_org_seq ON messages (org, seq);
    CREATE INDEX messages_status_seq ON messages (status, seq);",
    // 2: media messages (CONTRACT §14), body_kind 'media'. The file itself waits
    // in <sessions dir>/outbox.media/<message_id>; the row keeps what the message
    // needs to be sent and compared (an idempotency key reused with another file).
    "ALTER TABLE messages ADD COLUMN media_kind     TEXT;    -- 'image' | 'document'
    ALTER TABLE messages ADD COLUMN media_mimetype TEXT;
    ALTER TABLE messages ADD COLUMN media_filename TEXT;
    ALTER TABLE messages ADD COLUMN media_caption  TEXT;
    ALTER TABLE messages ADD COLUMN media_sha256   TEXT;    -- lower-case hex
    ALTER TABLE messages ADD COLUMN media_size     INTEGER; -- bytes",
    // 3: `(org, seq)` served one listing, an org's messages of any status, which
    // `(org, status, seq)` serves as well (see `queries.rs`); kept up to date, it
    // was a fifth of each enqueue's work in the writer (a page of its own per
    // message, as the orgs' entries lie apart).
    "DROP INDEX messages_org_seq;",
];

/// The writer's page cache, in KiB (as a negative `cache_size`).
const WRITER_CACHE_KIB: i64 = -16 * 1024;
/// WAL pages between two checkpoints (SQLite's default is 1,000): 16 MiB of 4 KiB pages.
const WAL_CHECKPOINT_PAGES: i64 = 4096;
/// What the WAL file is cut back to after a checkpoint.
const WAL_KEPT_BYTES: i64 = 32 << 20;

/// How long a connection waits for a lock another process holds (an operator's
/// `sqlite3` shell, a backup) before its statement fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens the one connection that writes, creating the file (mode 0600) and its
/// schema as needed. WAL lets readers run beside it. `synchronous = NORMAL`: a
/// commit writes the WAL without waiting for the disk, and the writer's sync
/// thread fsyncs it before any caller hears (`writer.rs`), so a committed message
/// survives a power loss and not only a crash. (SQLite itself still syncs the WAL
/// before a checkpoint and the database after one, so the file is never corrupt.)
pub(super) fn open_writer(path: &Path) -> Result<Connection, OutboxError> {
    create_private(path).map_err(|e| io_error(path, e))?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OutboxError::Store(format!(
            "{} stays in journal mode {mode:?}, not WAL",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Every message touches a few index pages the last batches touched too (its
    // org's newest entries): kept in memory, they are not read back from the file.
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
    // A checkpoint copies each page changed since the last one into the database
    // file, once however often it changed, and fsyncs it: the longer the WAL
    // between checkpoints, the fewer copies of the same hot pages. The file is cut
    // back to `WAL_KEPT_BYTES` after each.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
    conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// The WAL file SQLite keeps beside the database at `path`.
pub(super) fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

/// Opens a connection that only reads. It never checkpoints on close, so dropping
/// one (on whatever thread) never writes: the writer alone does.
pub(super) fn open_reader(path: &Path) -> Result<Connection, OutboxError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    Ok(conn)
}

/// Creates the file owner-only before SQLite first opens it, so no other user can
/// ever read it. SQLite gives its `-wal` and `-shm` files the database's mode.
fn create_private(path: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

fn migrate(conn: &mut Connection) -> Result<(), OutboxError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let applied = usize::try_from(version).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(OutboxError::Store(format!(
            "the outbox database has schema version {version}; this build knows up to {}",
            MIGRATIONS.len()
        )));
    }
    for migration in &MIGRATIONS[applied..] {
        tx.execute_batch(migration)?;
    }
    tx.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
    tx.commit()?;
    Ok(())
}

fn io_error(path: &Path, e: std::io::Error) -> OutboxError {
    OutboxError::Store(format!("cannot create {}: {e}", path.display()))
}
