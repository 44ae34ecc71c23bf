//! Listing an org's backups and restoring one, as plain functions like
//! [`super::fs_ops`].
//!
//! A restore is two renames, each atomic on one filesystem:
//!
//! 1. *keep the live session*: `<org>/` → `_backups/<org>/<now>_before_restore/`
//!    (only when the live directory holds anything; an empty one is removed);
//! 2. *put the backup in place*: `_backups/<org>/<name>/` → `<org>/`;
//!
//! then the backups beyond `keep` are pruned, never the `before_restore` one.
//!
//! What a `kill -9` can leave on disk, and what the next start does with it:
//!
//! | stopped                 | live `<org>/`          | backups                    | next start |
//! |-------------------------|------------------------|----------------------------|------------|
//! | before step 1           | the old session        | the chosen one among them  | as before the restore |
//! | between steps 1 and 2   | absent                 | the chosen one **and** the newest, `…_before_restore` | [`recover_interrupted_restores`] renames `…_before_restore` back to `<org>/`: the restore is undone, the chosen backup is still listed |
//! | between step 2 and pruning | the chosen session  | `…_before_restore` and one too many | the restore is done; the next backup prunes |
//!
//! At every instant each set of credentials is whole in exactly one directory an
//! operator can list (`GET /api/backups/{org}` or `ls`), so no state loses one.
//!
//! Why "live absent and the newest backup is `…_before_restore`" identifies the
//! middle state and nothing else: only step 1 makes such a backup, and after step 2
//! the live directory exists; every later way of removing it (logout, clean) first
//! makes a newer backup. A clock that went backwards could hide the state from the
//! rule: then the org simply stays stopped with both sessions listed as backups.
//!
//! Names are never trusted: a requested name must be well formed (else
//! [`RestoreError::InvalidName`]) and one of the listed directories (else
//! [`RestoreError::UnknownBackup`]); only the listed directory's own name is joined
//! onto a path.
//!
//! (Over 400 lines with its tests: the crash-point tests need the disk helpers
//! beside them.)

use std::fs;
use std::io;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::fs_ops::{
    BACKUPS_DIR, backups_dir, has_content, live_dir, new_backup_name, prune, sync_dir,
};
use crate::OrgId;

/// The reason of the backup a restore makes of the session it replaces.
pub const BEFORE_RESTORE: &str = "before_restore";

/// Longest backup name accepted (ours are about 40 to 70 characters).
const MAX_NAME_LEN: usize = 128;

/// One backup of one org.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The directory's name under `_backups/<org>/`.
    pub name: String,
    /// Why it was made (`bad_mac`, `logout`, `before_restore`, …).
    pub reason: String,
    pub created_at: DateTime<Utc>,
    /// The sum of its files' sizes.
    pub bytes: u64,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The backup that is now the live session.
    pub restored: String,
    /// The backup made of the session it replaced; `None` when there was none.
    pub before_restore: Option<String>,
}

/// Why a restore did not happen (or, for `Storage`, failed half-way and was undone).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The name cannot be a backup's: not `<UTC timestamp>_<reason>`.
    #[error("{0:?} is not a backup name (expected <UTC timestamp>_<reason>, as listed)")]
    InvalidName(String),
    /// A well-formed name that is not among the org's backups.
    #[error("this organization has no backup named {0:?}")]
    UnknownBackup(String),
    #[error("{0}")]
    Storage(String),
}

impl From<io::Error> for RestoreError {
    fn from(e: io::Error) -> Self {
        Self::Storage(e.to_string())
    }
}

/// Reads a backup name: its creation time and its reason, or `None` when it is not
/// `<%Y%m%dT%H%M%S[.ffffff]Z>[~NNN]_<reason>` with a reason of `[A-Za-z0-9_]`.
pub fn parse_name(name: &str) -> Option<(DateTime<Utc>, &str)> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let (head, reason) = name.split_once('_')?;
    if reason.is_empty()
        || !reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return None;
    }
    let stamp = match head.split_once('~') {
        Some((stamp, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => stamp,
        Some(_) => return None,
        None => head,
    };
    if !stamp
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b'.'))
    {
        return None;
    }
    let at = NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.fZ").ok()?;
    Some((at.and_utc(), reason))
}

/// An org's backups, newest first. Only directories with a backup's name that hold
/// something are listed: a stray file, a symlink or an empty leftover is not a backup.
pub fn list(root: &Path, org: &OrgId) -> io::Result<Vec<BackupInfo>> {
    let parent = backups_dir(root, org);
    let entries = match fs::read_dir(&parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut backups = Vec::new();
    for entry in entries {
        let entry = entry?;
        // `file_type` does not follow symlinks.
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some((created_at, reason)) = parse_name(&name) else {
            continue;
        };
        let path = entry.path();
        if !has_content(&path)? {
            continue;
        }
        backups.push(BackupInfo {
            reason: reason.to_owned(),
            created_at,
            bytes: size_of(&path)?,
            name,
        });
    }
    // Names start with the UTC timestamp: lexical order is time order.
    backups.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(backups)
}

/// The sum of the sizes of the files below `dir` (symlinks are not followed).
fn size_of(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            total += size_of(&entry.path())?;
        } else if kind.is_file() {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

/// Makes the backup `name` the org's live session, keeping the live one (if any) as
/// a new backup with reason [`BEFORE_RESTORE`]; then keeps the newest `keep`
/// backups, never removing that one. See the module documentation for what a crash
/// at any point leaves behind. The org's session must be stopped.
pub fn restore(
    root: &Path,
    org: &OrgId,
    name: &str,
    now: DateTime<Utc>,
    keep: usize,
) -> Result<Restored, RestoreError> {
    restore_stopping_at(root, org, name, now, keep, &mut |_| false)
}

/// The steps of a restore, for tests that stop it half-way as a crash would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    KeepLive,
    PutInPlace,
    Prune,
}

/// [`restore`], abandoned without any clean-up before the first step for which
/// `crash_before` says so (as `kill -9` would).
fn restore_stopping_at(
    root: &Path,
    org: &OrgId,
    name: &str,
    now: DateTime<Utc>,
    keep: usize,
    crash_before: &mut dyn FnMut(Step) -> bool,
) -> Result<Restored, RestoreError> {
    if parse_name(name).is_none() {
        return Err(RestoreError::InvalidName(name.to_owned()));
    }
    let chosen = list(root, org)?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| RestoreError::UnknownBackup(name.to_owned()))?
        .name;
    let crashed = |step| RestoreError::Storage(format!("stopped before {step:?}"));
    let live = live_dir(root, org);
    let parent = backups_dir(root, org);

    if crash_before(Step::KeepLive) {
        return Err(crashed(Step::KeepLive));
    }
    let before_restore = if has_content(&live)? {
        let kept = new_backup_name(&parent, now, BEFORE_RESTORE);
        fs::rename(&live, parent.join(&kept))?;
        sync_dir(&parent);
        sync_dir(root);
        Some(kept)
    } else {
        match fs::remove_dir(&live) {
            Ok(()) => sync_dir(root),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        None
    };

    if crash_before(Step::PutInPlace) {
        return Err(crashed(Step::PutInPlace));
    }
    if let Err(e) = fs::rename(parent.join(&chosen), &live) {
        // Undo step 1, so a failed restore leaves the org as it was.
        if let Some(kept) = &before_restore
            && let Err(undo) = fs::rename(parent.join(kept), &live)
        {
            tracing::error!(org_id = %org, backup = %kept, error = %undo, "a failed restore could not be undone; the live session is that backup");
        }
        return Err(e.into());
    }
    sync_dir(root);
    sync_dir(&parent);

    if crash_before(Step::Prune) {
        return Err(crashed(Step::Prune));
    }
    let protect: Vec<&str> = before_restore.iter().map(String::as_str).collect();
    if let Err(e) = prune(&parent, keep, &protect) {
        // The restore itself is done; the next backup prunes again.
        tracing::warn!(org_id = %org, error = %e, "old backups could not be pruned after a restore");
    }
    Ok(Restored {
        restored: chosen,
        before_restore,
    })
}

/// Undoes every restore that a crash stopped between its two renames (see the
/// module documentation): for each org whose live directory is absent and whose
/// newest backup is a `before_restore` one, that backup becomes live again.
/// Returns the orgs and backups it moved back. Run before any session starts.
pub fn recover_interrupted_restores(root: &Path) -> io::Result<Vec<(OrgId, String)>> {
    let entries = match fs::read_dir(root.join(BACKUPS_DIR)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut recovered = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Some(org) = entry
            .file_name()
            .to_str()
            .and_then(|n| OrgId::parse(n).ok())
        else {
            continue;
        };
        let live = live_dir(root, &org);
        if fs::symlink_metadata(&live).is_ok() {
            continue;
        }
        let Some(newest) = list(root, &org)?.into_iter().next() else {
            continue;
        };
        if newest.reason != BEFORE_RESTORE {
            continue;
        }
        fs::rename(backups_dir(root, &org).join(&newest.name), &live)?;
        sync_dir(root);
        sync_dir(&backups_dir(root, &org));
        recovered.push((org, newest.name));
    }
    recovered.sort();
    Ok(recovered)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs_ops::{backup_and_wipe, ensure_private_dir};
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn org() -> OrgId {
        OrgId::parse("7").unwrap()
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap()
    }

    /// Makes the live session hold `creds`, then backs it up with `reason` at `when`.
    fn backup(root: &Path, creds: &str, reason: &str, when: DateTime<Utc>) -> String {
        put_live(root, creds);
        backup_and_wipe(root, &org(), reason, when, 10, false)
            .unwrap()
            .unwrap()
    }

    fn put_live(root: &Path, creds: &str) {
        let live = live_dir(root, &org());
        ensure_private_dir(&live).unwrap();
        fs::write(live.join("creds"), creds).unwrap();
    }

    /// Every credentials file on disk, by content, with where it lies.
    fn credentials(root: &Path) -> BTreeMap<String, PathBuf> {
        let mut found = BTreeMap::new();
        let live = live_dir(root, &org()).join("creds");
        if let Ok(c) = fs::read_to_string(&live) {
            found.insert(c, live);
        }
        for entry in fs::read_dir(backups_dir(root, &org()))
            .into_iter()
            .flatten()
        {
            let file = entry.unwrap().path().join("creds");
            if let Ok(c) = fs::read_to_string(&file) {
                assert!(found.insert(c, file).is_none(), "a copy, not a move");
            }
        }
        found
    }

    fn live_creds(root: &Path) -> Option<String> {
        fs::read_to_string(live_dir(root, &org()).join("creds")).ok()
    }

    fn names(root: &Path) -> Vec<String> {
        list(root, &org())
            .unwrap()
            .into_iter()
            .map(|b| b.name)
            .collect()
    }

    #[test]
    fn names_are_read_back_into_time_and_reason() {
        let (when, reason) = parse_name("20261123T071533.123456Z_bad_mac").unwrap();
        assert_eq!(when.to_rfc3339(), "2026-11-23T07:15:33.123456+00:00");
        assert_eq!(reason, "bad_mac");
        let (when, reason) = parse_name("20261123T071533Z~002_before_restore").unwrap();
        assert_eq!(when.to_rfc3339(), "2026-11-23T07:15:33+00:00");
        assert_eq!(reason, "before_restore");
        // What `backup_and_wipe` writes parses back to the same instant.
        let root = tempfile::tempdir().unwrap();
        let name = backup(root.path(), "a", "Bad MAC!", at(0));
        assert_eq!(parse_name(&name), Some((at(0), "bad_mac_")));
    }

    #[test]
    fn anything_else_is_not_a_backup_name() {
        for bad in [
            "",
            ".",
            "..",
            "../7",
            "..%2F7",
            "20261123T071533Z",
            "20261123T071533Z_",
            "20261123T071533Z_a/b",
            "20261123T071533Z_../x",
            "20261123T071533Z_a.b",
            "x_bad_mac",
            "20261123T071533Z~_x",
            "20261123T071533Z~0a_x",
            "20261399T071533Z_x",
            "/etc/passwd",
            "20261123T071533Z_x\0",
            &format!("20261123T071533Z_{}", "x".repeat(200)),
        ] {
            assert_eq!(parse_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lists_newest_first_with_reason_time_and_size() {
        let root = tempfile::tempdir().unwrap();
        let old = backup(root.path(), "12345", "logout", at(0));
        let new = backup(root.path(), "1", "bad_mac", at(60));
        let nested = backups_dir(root.path(), &org()).join(&new).join("sub");
        ensure_private_dir(&nested).unwrap();
        fs::write(nested.join("wal"), "abcdef").unwrap();
        let parent = backups_dir(root.path(), &org());
        // None of these is a backup.
        fs::write(parent.join("20261123T071533Z_file"), "x").unwrap();
        ensure_private_dir(&parent.join("20261123T071534Z_empty")).unwrap();
        ensure_private_dir(&parent.join("not-a-backup")).unwrap();
        fs::write(parent.join("not-a-backup/creds"), "x").unwrap();
        std::os::unix::fs::symlink(parent.join(&old), parent.join("20261123T071535Z_link"))
            .unwrap();

        let listed = list(root.path(), &org()).unwrap();
        assert_eq!(
            listed,
            vec![
                BackupInfo {
                    name: new,
                    reason: "bad_mac".into(),
                    created_at: at(60),
                    bytes: 1 + 6,
                },
                BackupInfo {
                    name: old,
                    reason: "logout".into(),
                    created_at: at(0),
                    bytes: 5,
                },
            ]
        );
        assert_eq!(
            list(root.path(), &OrgId::parse("none").unwrap()).unwrap(),
            []
        );
    }

    #[test]
    fn restore_keeps_the_live_session_and_puts_the_backup_in_place() {
        let root = tempfile::tempdir().unwrap();
        let chosen = backup(root.path(), "old", "bad_mac", at(0));
        put_live(root.path(), "current");
        let done = restore(root.path(), &org(), &chosen, at(60), 3).unwrap();
        assert_eq!(done.restored, chosen);
        let kept = done.before_restore.expect("the live session was kept");
        assert_eq!(parse_name(&kept), Some((at(60), BEFORE_RESTORE)));
        assert_eq!(live_creds(root.path()).as_deref(), Some("old"));
        assert_eq!(
            names(root.path()),
            std::slice::from_ref(&kept),
            "the chosen one is live now"
        );
        let kept_dir = backups_dir(root.path(), &org()).join(&kept);
        assert_eq!(
            fs::read_to_string(kept_dir.join("creds")).unwrap(),
            "current"
        );
    }

    #[test]
    fn restore_without_a_live_session_keeps_nothing() {
        let root = tempfile::tempdir().unwrap();
        let chosen = backup(root.path(), "old", "logout", at(0));
        assert!(!live_dir(root.path(), &org()).exists());
        let done = restore(root.path(), &org(), &chosen, at(60), 3).unwrap();
        assert_eq!(done.before_restore, None);
        assert_eq!(live_creds(root.path()).as_deref(), Some("old"));

        // An empty live directory (a pairing that never got scanned) is not kept.
        let other = backup(root.path(), "old", "force_clean", at(120));
        ensure_private_dir(&live_dir(root.path(), &org())).unwrap();
        let done = restore(root.path(), &org(), &other, at(180), 3).unwrap();
        assert_eq!(done.before_restore, None);
        assert_eq!(names(root.path()), Vec::<String>::new());
    }

    #[test]
    fn unknown_and_invalid_names_change_nothing() {
        let root = tempfile::tempdir().unwrap();
        let chosen = backup(root.path(), "old", "bad_mac", at(0));
        put_live(root.path(), "current");
        // A directory beside the sessions that a joined `..` would reach.
        ensure_private_dir(&root.path().join("_backups/x")).unwrap();
        fs::write(root.path().join("_backups/x/creds"), "elsewhere").unwrap();
        let before = credentials(root.path());

        for bad in ["../x", "..", "a/b", "", "20261123T071533Z"] {
            assert_eq!(
                restore(root.path(), &org(), bad, at(60), 3),
                Err(RestoreError::InvalidName(bad.into())),
            );
        }
        let absent = "20261123T071533.000000Z_bad_mac";
        assert_eq!(
            restore(root.path(), &org(), absent, at(60), 3),
            Err(RestoreError::UnknownBackup(absent.into())),
        );
        assert_eq!(credentials(root.path()), before);
        assert_eq!(names(root.path()), [chosen]);
    }

    #[test]
    fn pruning_spares_the_before_restore_backup() {
        for keep in [0, 1, 2] {
            let root = tempfile::tempdir().unwrap();
            let b0 = backup(root.path(), "b0", "x", at(0));
            backup(root.path(), "b1", "x", at(1));
            let b2 = backup(root.path(), "b2", "x", at(2));
            put_live(root.path(), "live");
            // The oldest is restored: the newest `keep` are what remains.
            let done = restore(root.path(), &org(), &b0, at(10), keep).unwrap();
            let kept = done.before_restore.unwrap();
            let want: Vec<String> = match keep {
                0 | 1 => vec![kept],
                _ => vec![kept, b2],
            };
            assert_eq!(names(root.path()), want, "keep {keep}");
            assert_eq!(live_creds(root.path()).as_deref(), Some("b0"));
        }
    }

    /// Stops a restore before each step as `kill -9` would, checks that every set
    /// of credentials is on disk, then that the next start's recovery leaves the
    /// org either as before the restore or as after it.
    #[test]
    fn a_crash_before_any_step_loses_nothing_and_recovers() {
        for (crash_at, with_live) in [
            (Step::KeepLive, true),
            (Step::PutInPlace, true),
            (Step::Prune, true),
            (Step::KeepLive, false),
            (Step::PutInPlace, false),
            (Step::Prune, false),
        ] {
            let root = tempfile::tempdir().unwrap();
            let root = root.path();
            let chosen = backup(root, "chosen", "bad_mac", at(0));
            backup(root, "other", "logout", at(1));
            if with_live {
                put_live(root, "live");
            }
            let all_before = credentials(root);
            let outcome =
                restore_stopping_at(root, &org(), &chosen, at(60), 1, &mut |s| s == crash_at);
            assert!(outcome.is_err(), "{crash_at:?}");
            let case = format!("crash before {crash_at:?}, live session: {with_live}");

            // Nothing lost, nothing copied: the same sets of credentials.
            let after_crash = credentials(root);
            assert_eq!(
                after_crash.keys().collect::<Vec<_>>(),
                all_before.keys().collect::<Vec<_>>(),
                "{case}"
            );

            let recovered = recover_interrupted_restores(root).unwrap();
            let live = live_creds(root);
            match (crash_at, with_live) {
                (Step::KeepLive, _) => {
                    assert_eq!(recovered, [], "{case}");
                    assert_eq!(live.as_deref(), with_live.then_some("live"), "{case}");
                }
                (Step::PutInPlace, true) => {
                    // The restore is undone: the old session is live again.
                    assert_eq!(recovered.len(), 1, "{case}");
                    assert!(recovered[0].1.ends_with(BEFORE_RESTORE), "{case}");
                    assert_eq!(live.as_deref(), Some("live"), "{case}");
                    assert!(names(root).contains(&chosen), "{case}");
                }
                (Step::PutInPlace, false) => {
                    // No session was live: nothing to undo, the backup stays listed.
                    assert_eq!(recovered, [], "{case}");
                    assert_eq!(live, None, "{case}");
                    assert!(names(root).contains(&chosen), "{case}");
                }
                (Step::Prune, _) => {
                    assert_eq!(recovered, [], "{case}");
                    assert_eq!(live.as_deref(), Some("chosen"), "{case}");
                }
            }
            assert_eq!(
                credentials(root).keys().collect::<Vec<_>>(),
                all_before.keys().collect::<Vec<_>>(),
                "{case}: after recovery"
            );
            // Whatever the crash left, the restore can simply be run again.
            if live.as_deref() != Some("chosen") {
                restore(root, &org(), &chosen, at(120), 1).unwrap();
                assert_eq!(live_creds(root).as_deref(), Some("chosen"), "{case}");
            }
        }
    }

    #[test]
    fn recovery_leaves_every_ordinary_state_alone() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        // A finished restore, then a clean: the newest backup is the clean's.
        let chosen = backup(root, "a", "bad_mac", at(0));
        put_live(root, "b");
        restore(root, &org(), &chosen, at(10), 5).unwrap();
        backup(root, "c", "force_clean", at(20));
        assert!(!live_dir(root, &org()).exists());
        assert_eq!(recover_interrupted_restores(root).unwrap(), []);
        // A finished restore whose session is live.
        let newest = names(root)[0].clone();
        restore(root, &org(), &newest, at(30), 5).unwrap();
        assert_eq!(recover_interrupted_restores(root).unwrap(), []);
        assert_eq!(live_creds(root).as_deref(), Some("c"));
        // No backups at all.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(recover_interrupted_restores(empty.path()).unwrap(), []);
    }
}
