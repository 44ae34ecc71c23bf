//! The org's whatsapp-rust store on disk: where it lives, whether it holds a
//! device, and whether it can be used at all.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::store_fault::{StoreFault, classify_io, classify_store_error};
use crate::connection::ConnectionError;

/// The SQLite store of one org, inside its live directory (plus `-wal`/`-shm`).
pub const STORE_FILE: &str = "whatsapp.db";

pub(super) fn store_path(dir: &Path) -> PathBuf {
    dir.join(STORE_FILE)
}

/// A store that cannot be used, with what is wrong and the words that said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StoreProblem {
    pub fault: StoreFault,
    pub detail: String,
}

impl StoreProblem {
    fn io(what: &str, path: &Path, error: &std::io::Error) -> Self {
        Self {
            fault: classify_io(error),
            detail: format!("{what} {}: {error}", path.display()),
        }
    }

    fn sqlite(path: &Path, text: String) -> Self {
        Self {
            fault: classify_store_error(&text, None),
            detail: format!("{}: {text}", path.display()),
        }
    }

    pub fn into_error(self) -> ConnectionError {
        self.fault.error(self.detail)
    }
}

/// The rule of `Connector::has_credentials`: `<dir>/whatsapp.db` exists, passes
/// SQLite's `PRAGMA quick_check`, and its `device` table has a row with a
/// phone-number JID (`pn`) and the signed device identity (`account`), both of
/// which whatsapp-rust stores only once pairing has succeeded. The file is opened
/// read-only; nothing is created or migrated.
///
/// No `whatsapp.db` in an existing org directory is "no credentials". A store
/// that cannot be read is an error of its class ([`StoreFault`]), never an answer:
/// "no credentials" would pair a paired org again, "credentials" would resume a
/// store that is known to be broken. A missing org directory is "no credentials"
/// only while the sessions directory above it exists: without that (a volume not
/// mounted) nothing can be said.
pub(super) fn has_device(dir: &Path) -> Result<bool, ConnectionError> {
    let path = store_path(dir);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => {
            return Err(StoreFault::Io.error(format!("{} is not a file", path.display())));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return absent_store(dir);
        }
        Err(e) => return Err(StoreProblem::io("cannot look at", &path, &e).into_error()),
    }
    inspect(&path).map_err(StoreProblem::into_error)
}

/// No store file: nothing stored, when the directories above say so.
fn absent_store(dir: &Path) -> Result<bool, ConnectionError> {
    let parent = dir.parent().unwrap_or(dir);
    for existing in [dir, parent] {
        match std::fs::metadata(existing) {
            Ok(meta) if meta.is_dir() => return Ok(false),
            Ok(_) => {
                return Err(
                    StoreFault::Missing.error(format!("{} is not a directory", existing.display()))
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(StoreProblem::io("cannot look at", existing, &e).into_error());
            }
        }
    }
    Err(StoreFault::Missing.error(format!(
        "neither {} nor the sessions directory above it exists",
        dir.display()
    )))
}

/// Makes sure a connection can open the store in `dir`: the directory exists, and
/// an existing `whatsapp.db` opens for writing and passes `PRAGMA quick_check`.
///
/// whatsapp-rust finds none of this out quickly: its connection pool retries a
/// failing open for 30 s before it gives up, and SQLite quietly opens a file it
/// may not write read-only, failing only at the first write.
pub(super) fn check_usable(dir: &Path) -> Result<(), StoreProblem> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(StoreProblem {
                fault: StoreFault::Missing,
                detail: format!("{} is not a directory", dir.display()),
            });
        }
        Err(e) => return Err(StoreProblem::io("cannot open", dir, &e)),
    }
    let path = store_path(dir);
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Ok(file) => drop(file),
        // A new pairing: whatsapp-rust creates the file.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreProblem::io("cannot open for writing", &path, &e)),
    }
    inspect(&path).map(drop)
}

/// Reads a store file: SQLite's quick check, then whether a paired device is in it.
fn inspect(path: &Path) -> Result<bool, StoreProblem> {
    // SQLite reports any failed open as "unable to open database file": open it
    // ourselves first, so that the OS's reason (EMFILE, EACCES, …) is known.
    std::fs::File::open(path).map_err(|e| StoreProblem::io("cannot open", path, &e))?;
    query_device(path).map_err(|text| StoreProblem::sqlite(path, text))
}

fn query_device(path: &Path) -> Result<bool, String> {
    let url = read_only_uri(path);
    let mut conn = SqliteConnection::establish(&url).map_err(|e| e.to_string())?;
    // A connection closing elsewhere (the last one of a store that was just shut
    // down checkpoints the WAL) holds the lock for a moment: wait, don't fail.
    conn.batch_execute("PRAGMA busy_timeout = 2000;")
        .map_err(|e| e.to_string())?;
    quick_check(&mut conn)?;
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

/// SQLite's own check of the file's structure (pages, indexes, the schema).
/// Its result rows are `ok` or descriptions of the damage.
fn quick_check(conn: &mut SqliteConnection) -> Result<(), String> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        quick_check: String,
    }
    let rows = diesel::sql_query("PRAGMA quick_check(5)")
        .load::<Row>(conn)
        .map_err(|e| e.to_string())?;
    match rows.first() {
        Some(row) if row.quick_check == "ok" => Ok(()),
        Some(row) => Err(format!("PRAGMA quick_check: {}", row.quick_check)),
        None => Err("PRAGMA quick_check returned nothing".to_owned()),
    }
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
