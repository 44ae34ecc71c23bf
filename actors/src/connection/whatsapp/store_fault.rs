//! What is wrong with an org's store, from the words SQLite and the OS use.
//!
//! The two classes ask for opposite actions, so telling them apart is the point:
//! a **corrupt** store can never be used again as it is (the org actor backs it up,
//! wipes it and pairs again), while an **unavailable** one is fine on disk and
//! only unusable right now (no descriptors left, disk full, permission denied,
//! locked, a directory gone): waiting costs nothing, wiping would cost the shop a
//! QR rescan. So only SQLite's own verdicts on the file's content count as
//! corrupt, and anything unrecognised is unavailable: never wipe on a guess.

use crate::connection::ConnectionError;

/// The fault behind a failed store operation, fine-grained for the log line;
/// [`StoreFault::error`] folds it into the connection's two classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFault {
    /// SQLite says the file is not a database or is malformed, or
    /// `PRAGMA quick_check` found damage.
    Corrupt,
    /// Another connection holds the database lock (`SQLITE_BUSY`, `SQLITE_LOCKED`).
    Busy,
    /// No file descriptors left in the process or the system (`EMFILE`, `ENFILE`).
    NoDescriptors,
    /// The disk or the quota is full (`ENOSPC`, `EDQUOT`, `SQLITE_FULL`).
    DiskFull,
    /// Writing or reading is not allowed (`EACCES`, `EPERM`, `EROFS`, a read-only
    /// database).
    PermissionDenied,
    /// The directory or a path component is missing (`ENOENT`, `ENOTDIR`).
    Missing,
    /// Any other I/O failure, and whatever is not recognised.
    Io,
}

impl StoreFault {
    /// The connection error of this class, carrying `detail`.
    pub fn error(self, detail: impl Into<String>) -> ConnectionError {
        let detail = detail.into();
        match self {
            Self::Corrupt => ConnectionError::StoreCorrupt(detail),
            _ => ConnectionError::StoreUnavailable(detail),
        }
    }

    /// Whether an operator has to act: everything but a lock, which passes by
    /// itself once the other connection lets go.
    pub fn needs_an_operator(self) -> bool {
        self != Self::Busy
    }
}

/// Classifies a failure from its OS error code, when one is known, else from its
/// text (SQLite's messages and the OS's `strerror` texts, in any case).
///
/// The code wins because SQLite reports every failed open as "unable to open
/// database file", whatever the OS said.
pub fn classify_store_error(text: &str, os_code: Option<i32>) -> StoreFault {
    if let Some(fault) = os_code.and_then(classify_os_code) {
        return fault;
    }
    let text = text.to_ascii_lowercase();
    let has = |needle: &str| text.contains(needle);
    if has("not a database")
        || has("disk image is malformed")
        || has("malformed database schema")
        || has("quick_check")
        || has("sqlite_corrupt")
        || has("sqlite_notadb")
    {
        StoreFault::Corrupt
    } else if has("too many open files") {
        StoreFault::NoDescriptors
    } else if has("no space left")
        || has("database or disk is full")
        || has("disk quota exceeded")
        || has("sqlite_full")
    {
        StoreFault::DiskFull
    } else if has("permission denied")
        || has("operation not permitted")
        || has("readonly database")
        || has("read-only file system")
        || has("sqlite_readonly")
    {
        StoreFault::PermissionDenied
    } else if has("database is locked")
        || has("database table is locked")
        || has("sqlite_busy")
        || has("sqlite_locked")
    {
        StoreFault::Busy
    } else if has("no such file or directory") || has("not a directory") {
        StoreFault::Missing
    } else {
        StoreFault::Io
    }
}

/// The fault an OS error code names, for the codes that name one.
fn classify_os_code(code: i32) -> Option<StoreFault> {
    Some(match code {
        libc::EMFILE | libc::ENFILE => StoreFault::NoDescriptors,
        libc::ENOSPC | libc::EDQUOT => StoreFault::DiskFull,
        libc::EACCES | libc::EPERM | libc::EROFS => StoreFault::PermissionDenied,
        libc::ENOENT | libc::ENOTDIR => StoreFault::Missing,
        libc::EIO => StoreFault::Io,
        _ => return None,
    })
}

/// The fault behind an I/O error of the OS.
pub fn classify_io(error: &std::io::Error) -> StoreFault {
    classify_store_error(&error.to_string(), error.raw_os_error())
}

/// Every message of an error's source chain, outermost first, without the
/// repeats that wrapping errors produce, and the first OS error code on the way.
///
/// whatsapp-rust's store errors say only "database connection error" at the top;
/// SQLite's words are a few sources down.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> (String, Option<i32>) {
    let mut parts: Vec<String> = Vec::new();
    let mut os_code = None;
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if parts.last() != Some(&text) && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if os_code.is_none() {
            os_code = current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error);
        }
        next = current.source();
    }
    (parts.join(": "), os_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use StoreFault as F;

    /// One row per way a store fails: what SQLite or the OS says → the fault.
    #[test]
    fn store_failures_classify_row_by_row() {
        let rows: &[(&str, Option<i32>, StoreFault)] = &[
            // SQLite's verdicts on the content: corrupt.
            ("file is not a database", None, F::Corrupt),
            ("file is encrypted or is not a database", None, F::Corrupt),
            ("database disk image is malformed", None, F::Corrupt),
            (
                "malformed database schema (device) - near \"x\"",
                None,
                F::Corrupt,
            ),
            (
                "PRAGMA quick_check: *** in database main *** Page 3 is never used",
                None,
                F::Corrupt,
            ),
            ("SQLITE_CORRUPT", None, F::Corrupt),
            ("SQLITE_NOTADB", None, F::Corrupt),
            // Descriptors.
            (
                "Too many open files (os error 24)",
                Some(libc::EMFILE),
                F::NoDescriptors,
            ),
            (
                "Too many open files in system (os error 23)",
                Some(libc::ENFILE),
                F::NoDescriptors,
            ),
            ("too many open files", None, F::NoDescriptors),
            // Space.
            (
                "No space left on device (os error 28)",
                Some(libc::ENOSPC),
                F::DiskFull,
            ),
            ("database or disk is full", None, F::DiskFull),
            (
                "Disk quota exceeded (os error 122)",
                Some(libc::EDQUOT),
                F::DiskFull,
            ),
            // Permission.
            (
                "Permission denied (os error 13)",
                Some(libc::EACCES),
                F::PermissionDenied,
            ),
            (
                "Operation not permitted (os error 1)",
                Some(libc::EPERM),
                F::PermissionDenied,
            ),
            (
                "Read-only file system (os error 30)",
                Some(libc::EROFS),
                F::PermissionDenied,
            ),
            (
                "attempt to write a readonly database",
                None,
                F::PermissionDenied,
            ),
            // Locks.
            ("database is locked", None, F::Busy),
            ("database table is locked", None, F::Busy),
            ("SQLITE_BUSY", None, F::Busy),
            // Missing paths.
            (
                "No such file or directory (os error 2)",
                Some(libc::ENOENT),
                F::Missing,
            ),
            (
                "Not a directory (os error 20)",
                Some(libc::ENOTDIR),
                F::Missing,
            ),
            // The OS code wins over SQLite's catch-all open failure.
            (
                "unable to open database file",
                Some(libc::EMFILE),
                F::NoDescriptors,
            ),
            (
                "unable to open database file",
                Some(libc::EACCES),
                F::PermissionDenied,
            ),
            ("unable to open database file", None, F::Io),
            ("disk I/O error", None, F::Io),
            ("Input/output error (os error 5)", Some(libc::EIO), F::Io),
            // Never wipe on a guess.
            ("something nobody has seen before", None, F::Io),
            ("", None, F::Io),
            ("an unknown errno", Some(9999), F::Io),
        ];
        for (text, code, want) in rows {
            assert_eq!(
                classify_store_error(text, *code),
                *want,
                "{text:?} {code:?}"
            );
        }
    }

    #[test]
    fn only_corruption_is_corrupt_and_only_a_lock_needs_no_operator() {
        for fault in [
            F::Busy,
            F::NoDescriptors,
            F::DiskFull,
            F::PermissionDenied,
            F::Missing,
            F::Io,
        ] {
            assert!(matches!(
                fault.error("x"),
                ConnectionError::StoreUnavailable(_)
            ));
            assert_eq!(fault.needs_an_operator(), fault != F::Busy);
        }
        assert_eq!(
            F::Corrupt.error("file is not a database"),
            ConnectionError::StoreCorrupt("file is not a database".into())
        );
        assert!(F::Corrupt.needs_an_operator());
    }

    #[test]
    fn the_chain_keeps_the_inner_words_and_the_os_code() {
        #[derive(Debug, thiserror::Error)]
        #[error("database connection error")]
        struct Outer(#[source] std::io::Error);
        let inner = std::io::Error::from_raw_os_error(libc::EMFILE);
        let (text, code) = error_chain(&Outer(inner));
        assert!(text.starts_with("database connection error: "), "{text}");
        assert!(text.contains("Too many open files"), "{text}");
        assert_eq!(code, Some(libc::EMFILE));
        assert_eq!(classify_store_error(&text, code), F::NoDescriptors);
    }
}
