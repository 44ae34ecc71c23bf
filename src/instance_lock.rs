//! One daemon per sessions directory (CONTRACT §7).
//!
//! Two daemons on one directory would open two clients on every org's store and
//! corrupt it. The first takes an exclusive `flock` on `<dir>/.lock` and writes its
//! pid there; the kernel drops the lock when the process dies, however it dies, so a
//! crash never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The lock file inside the sessions directory (a name no org id can take).
pub const LOCK_FILE: &str = ".lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another wa-supervisor (pid {pid}) already serves the sessions directory {dir}; \
         stop it first or use another [sessions] dir"
    )]
    Held { dir: PathBuf, pid: String },
    #[error(
        "the sessions directory {dir} is {what}, not a directory; set [sessions] dir \
         (or WA_SESSIONS_DIR) to a directory"
    )]
    NotADirectory { dir: PathBuf, what: &'static str },
    #[error("cannot create the sessions directory {dir}: {cause}")]
    Create { dir: PathBuf, cause: std::io::Error },
    #[error("cannot lock the sessions directory {dir}: {cause}")]
    Io { dir: PathBuf, cause: std::io::Error },
}

/// Held for the daemon's whole life; dropping it releases the directory.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Takes the directory's lock (creating the directory, 0700, if needed).
pub fn acquire(dir: &Path) -> Result<InstanceLock, LockError> {
    let io = |cause| LockError::Io {
        dir: dir.to_owned(),
        cause,
    };
    // Creating over a file fails with a bare "File exists": say what is wrong.
    if let Ok(meta) = std::fs::metadata(dir)
        && !meta.is_dir()
    {
        return Err(LockError::NotADirectory {
            dir: dir.to_owned(),
            what: if meta.is_file() {
                "a file"
            } else {
                "something else"
            },
        });
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|cause| LockError::Create {
            dir: dir.to_owned(),
            cause,
        })?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = match pid.trim() {
                "" => "unknown".to_owned(),
                p => p.to_owned(),
            };
            return Err(LockError::Held {
                dir: dir.to_owned(),
                pid,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(InstanceLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join("auth_sessions");
        let first = acquire(&sessions).unwrap();
        let err = acquire(&sessions).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        assert!(text.contains(&sessions.display().to_string()), "{text}");
        drop(first);
        acquire(&sessions).unwrap();
    }

    #[test]
    fn a_file_in_place_of_the_directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = dir.path().join("auth_sessions");
        std::fs::write(&sessions, b"").unwrap();
        assert_eq!(
            acquire(&sessions).unwrap_err().to_string(),
            format!(
                "the sessions directory {} is a file, not a directory; set [sessions] dir \
                 (or WA_SESSIONS_DIR) to a directory",
                sessions.display()
            )
        );
        // A file on the way to it is a plain "not a directory", said once.
        let below = sessions.join("x");
        let err = acquire(&below).unwrap_err();
        assert!(std::error::Error::source(&err).is_none());
        assert_eq!(
            err.to_string(),
            format!(
                "cannot create the sessions directory {}: Not a directory (os error 20)",
                below.display()
            )
        );
    }
}
