//! The org's whatsapp-rust store on disk: where it lives and whether it holds a device.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Bool;

/// The SQLite store of one org, inside its live directory (plus `-wal`/`-shm`).
pub const STORE_FILE: &str = "whatsapp.db";

pub(super) fn store_path(dir: &Path) -> PathBuf {
    dir.join(STORE_FILE)
}

/// The rule of `Connector::has_credentials`: `<dir>/whatsapp.db` exists and its
/// `device` table has a row with a phone-number JID (`pn`) and the signed device
/// identity (`account`), both of which whatsapp-rust stores only once pairing has
/// succeeded. The file is opened read-only; nothing is created or migrated.
///
/// A store that exists but cannot be read (locked, corrupt, a future schema) counts
/// as holding credentials: resuming lets whatsapp-rust decide, while reporting "no
/// credentials" would make the daemon treat a paired org as a new pairing.
pub(super) fn has_device(dir: &Path) -> bool {
    let path = store_path(dir);
    if !path.is_file() {
        return false;
    }
    match query_device(&path) {
        Ok(paired) => paired,
        Err(error) => {
            tracing::warn!(store = %path.display(), %error, "the session store could not be read; assuming it holds credentials");
            true
        }
    }
}

fn query_device(path: &Path) -> Result<bool, String> {
    let url = read_only_uri(path);
    let mut conn = SqliteConnection::establish(&url).map_err(|e| e.to_string())?;
    // A connection closing elsewhere (the last one of a store that was just shut
    // down checkpoints the WAL) holds the lock for a moment: wait, don't fail.
    conn.batch_execute("PRAGMA busy_timeout = 2000;")
        .map_err(|e| e.to_string())?;
    let has_table: bool = diesel::select(diesel::dsl::sql::<Bool>(
        "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'device')",
    ))
    .get_result(&mut conn)
    .map_err(|e| e.to_string())?;
    if !has_table {
        // Created but never initialised: nothing to resume from.
        return Ok(false);
    }
    diesel::select(diesel::dsl::sql::<Bool>(
        "EXISTS (SELECT 1 FROM device WHERE pn <> '' AND account IS NOT NULL)",
    ))
    .get_result(&mut conn)
    .map_err(|e| e.to_string())
}

/// An SQLite URI that opens `path` read-only (diesel opens with `SQLITE_OPEN_URI`).
fn read_only_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for ch in path.to_string_lossy().chars() {
        match ch {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", ch as u32)),
            _ => uri.push(ch),
        }
    }
    uri.push_str("?mode=ro");
    uri
}
