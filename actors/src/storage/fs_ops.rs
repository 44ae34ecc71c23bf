//! The file operations behind the storage actor, as plain functions so that each
//! can be tested on a temporary directory.
//!
//! Crash safety comes from using only `rename` to move a session: at every instant
//! the org's files are whole in exactly one place, live or backup.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::OrgId;

/// The directory under the sessions directory that holds backups.
pub const BACKUPS_DIR: &str = "_backups";

/// The UTC timestamp that starts every backup's name (lexical order = time order).
pub(crate) const TIMESTAMP_FORMAT: &str = "%Y%m%dT%H%M%S%.6fZ";

/// Where one org's live session lives.
pub fn live_dir(root: &Path, org: &OrgId) -> PathBuf {
    root.join(org.as_str())
}

/// Where one org's backups live.
pub fn backups_dir(root: &Path, org: &OrgId) -> PathBuf {
    root.join(BACKUPS_DIR).join(org.as_str())
}

/// Creates `dir` (and missing parents) with mode 0700, and tightens it to 0700 if
/// it already existed.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Whether a directory exists and holds at least one entry.
pub(crate) fn has_content(dir: &Path) -> io::Result<bool> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Keeps a reason to what a directory name may safely hold.
fn sanitize_reason(reason: &str) -> String {
    let clean: String = reason
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if clean.is_empty() {
        "manual".into()
    } else {
        clean
    }
}

/// A backup name for `now` and `reason` that is not taken yet in `parent`:
/// `<UTC timestamp>_<reason>`, or `<UTC timestamp>~NNN_<reason>` on a collision.
pub(crate) fn new_backup_name(parent: &Path, now: DateTime<Utc>, reason: &str) -> String {
    backup_name(now, reason, &|name| parent.join(name).exists())
}

/// A backup name for `now` and `reason` for which `taken` is false:
/// `<UTC timestamp>_<reason>`, or `<UTC timestamp>~NNN_<reason>` on a collision.
/// Every store names its backups so ([`super::backups::parse_name`] reads them).
pub fn backup_name(now: DateTime<Utc>, reason: &str, taken: &dyn Fn(&str) -> bool) -> String {
    let stamp = now.format(TIMESTAMP_FORMAT);
    let reason = sanitize_reason(reason);
    let mut name = format!("{stamp}_{reason}");
    let mut n = 1;
    while taken(&name) {
        n += 1;
        // `~` sorts after `_`, so a same-instant backup still lists as newer.
        name = format!("{stamp}~{n:03}_{reason}");
    }
    name
}

/// Moves the live session into a new backup and removes the live directory; when
/// `recreate`, a fresh empty live directory takes its place. Returns the backup's
/// name, or `None` when the live directory was missing or empty (nothing to keep).
/// Afterwards only the newest `keep` backups remain, and never fewer than the one
/// just made: a `keep` of 0 would otherwise delete the only copy of the session.
pub fn backup_and_wipe(
    root: &Path,
    org: &OrgId,
    reason: &str,
    now: DateTime<Utc>,
    keep: usize,
    recreate: bool,
) -> io::Result<Option<String>> {
    backup_and_wipe_keeping_a_session(root, org, reason, now, keep, recreate, &|_| false)
}

/// [`backup_and_wipe`], whose pruning also keeps the newest backup for which
/// `holds_session` is true: wipes of stores that never held a session (a pairing
/// cut short, a QR never scanned) must not push the org's last real session out of
/// its newest `keep`. That backup counts towards `keep` like the one just made.
pub fn backup_and_wipe_keeping_a_session(
    root: &Path,
    org: &OrgId,
    reason: &str,
    now: DateTime<Utc>,
    keep: usize,
    recreate: bool,
    holds_session: &dyn Fn(&Path) -> bool,
) -> io::Result<Option<String>> {
    let live = live_dir(root, org);
    let backup = if has_content(&live)? {
        let parent = backups_dir(root, org);
        ensure_private_dir(&root.join(BACKUPS_DIR))?;
        ensure_private_dir(&parent)?;
        let name = new_backup_name(&parent, now, reason);
        let target = parent.join(&name);
        // The one step that moves the session: atomic on one filesystem.
        fs::rename(&live, &target)?;
        sync_dir(&parent);
        sync_dir(root);
        // The session is in its backup now: what follows only tidies up, and its
        // failure must not report the wipe as undone (nor leave no live
        // directory for the pairing that follows).
        if let Err(e) = tighten(&target) {
            tracing::warn!(org_id = %org, backup = %name, error = %e, "a backup's permissions could not be tightened");
        }
        let session = newest_holding_a_session(&parent, holds_session);
        let protect = kept_by_a_wipe(&name, session.as_deref());
        if let Err(e) = prune(&parent, keep, &protect) {
            tracing::warn!(org_id = %org, error = %e, "old backups could not be pruned");
        }
        Some(name)
    } else {
        match fs::remove_dir(&live) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        None
    };
    if recreate {
        ensure_private_dir(&live)?;
    }
    Ok(backup)
}

/// The newest backup in `parent` for which `holds_session` is true.
fn newest_holding_a_session(
    parent: &Path,
    holds_session: &dyn Fn(&Path) -> bool,
) -> Option<String> {
    let mut names: Vec<String> = fs::read_dir(parent)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
        .into_iter()
        .rev()
        .find(|name| holds_session(&parent.join(name)))
}

/// The names of an org's backups, oldest first.
pub fn list_backups(root: &Path, org: &OrgId) -> io::Result<Vec<String>> {
    let dir = backups_dir(root, org);
    let mut names = match fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect::<Vec<_>>(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    // Names start with a UTC timestamp, so the lexical order is the time order.
    names.sort();
    Ok(names)
}

/// The orgs with a live directory for which `has_credentials` holds, by id.
pub fn orgs_with_credentials(
    root: &Path,
    has_credentials: &dyn Fn(&Path) -> bool,
) -> io::Result<Vec<OrgId>> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut orgs: Vec<OrgId> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| OrgId::parse(e.file_name().to_str()?).ok())
        .filter(|org| has_credentials(&live_dir(root, org)))
        .collect();
    orgs.sort();
    Ok(orgs)
}

/// Removes the oldest backups beyond `keep`, never one named in `protect` (the
/// backup just made, a restore's `before_restore`): those count towards `keep` but
/// stay whatever their place in the order (a clock set back gives a new backup an
/// older name than the rest) and even when they alone exceed it.
pub(crate) fn prune(parent: &Path, keep: usize, protect: &[&str]) -> io::Result<()> {
    // Backups are directories; a stray file (an operator's note) is neither
    // counted nor removed.
    let names: Vec<String> = fs::read_dir(parent)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for name in beyond_keep(names, keep, protect) {
        fs::remove_dir_all(parent.join(name))?;
    }
    Ok(())
}

/// What the pruning after a wipe never removes: the backup `made`, and the org's
/// newest backup holding a session when that is another. Every store prunes so.
pub fn kept_by_a_wipe<'a>(made: &'a str, last_session: Option<&'a str>) -> Vec<&'a str> {
    std::iter::once(made)
        .chain(last_session.filter(|s| *s != made))
        .collect()
}

/// The backups that pruning removes from `names`: the oldest beyond `keep` (at
/// least 1), never one named in `protect` (see [`prune`]). Every store prunes so.
pub fn beyond_keep(names: Vec<String>, keep: usize, protect: &[&str]) -> Vec<String> {
    let mut others: Vec<String> = names
        .into_iter()
        .filter(|name| !protect.contains(&name.as_str()))
        .collect();
    others.sort();
    let room_for_others = keep.max(1).saturating_sub(protect.len());
    let excess = others.len().saturating_sub(room_for_others);
    others.truncate(excess);
    others
}

/// Directories 0700 and files 0600, all the way down.
fn tighten(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            tighten(&entry.path())?;
        } else if kind.is_file() {
            fs::set_permissions(entry.path(), fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Makes a rename durable; best effort, since not every filesystem allows it.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(handle) = fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn org() -> OrgId {
        OrgId::parse("7").unwrap()
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o777
    }

    /// A pairing cut short again and again (each wipe backs up a store that holds
    /// no session) never prunes the backup of the org's last real session.
    #[test]
    fn wipes_of_sessionless_stores_keep_the_last_session() {
        let root = tempfile::tempdir().unwrap();
        let live = live_dir(root.path(), &org());
        let holds_session = |dir: &Path| dir.join("creds.json").is_file();
        let at = |secs: i64| DateTime::from_timestamp(1_790_000_000 + secs, 0).unwrap();
        ensure_private_dir(&live).unwrap();
        fs::write(live.join("creds.json"), b"{}").unwrap();
        let session = backup_and_wipe_keeping_a_session(
            root.path(),
            &org(),
            "x",
            at(0),
            3,
            true,
            &holds_session,
        )
        .unwrap()
        .unwrap();
        for i in 1..=5 {
            fs::write(live.join("creds.json.tmp"), b"{").unwrap();
            backup_and_wipe_keeping_a_session(
                root.path(),
                &org(),
                "x",
                at(i),
                3,
                true,
                &holds_session,
            )
            .unwrap()
            .unwrap();
        }
        let kept = list_backups(root.path(), &org()).unwrap();
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(kept.contains(&session), "{kept:?}");
        // Without the rule, the plain wipe keeps only the newest three.
        let plain = tempfile::tempdir().unwrap();
        let live = live_dir(plain.path(), &org());
        ensure_private_dir(&live).unwrap();
        fs::write(live.join("creds.json"), b"{}").unwrap();
        let lost = backup_and_wipe(plain.path(), &org(), "x", at(0), 3, true)
            .unwrap()
            .unwrap();
        for i in 1..=5 {
            fs::write(live.join("creds.json.tmp"), b"{").unwrap();
            backup_and_wipe(plain.path(), &org(), "x", at(i), 3, true).unwrap();
        }
        assert!(!list_backups(plain.path(), &org()).unwrap().contains(&lost));
    }

    #[test]
    fn backup_moves_the_session_and_tightens_modes() {
        let root = tempfile::tempdir().unwrap();
        let live = live_dir(root.path(), &org());
        ensure_private_dir(&live.join("sub")).unwrap();
        fs::write(live.join("creds.json"), b"{}").unwrap();
        fs::write(live.join("sub/x"), b"1").unwrap();
        let name = backup_and_wipe(root.path(), &org(), "Bad MAC!", Utc::now(), 3, true)
            .unwrap()
            .expect("there was something to back up");
        assert!(name.ends_with("_bad_mac_"), "{name}");
        let backup = backups_dir(root.path(), &org()).join(&name);
        assert_eq!(fs::read(backup.join("creds.json")).unwrap(), b"{}");
        assert_eq!(mode(&backup), 0o700);
        assert_eq!(mode(&backup.join("creds.json")), 0o600);
        assert_eq!(mode(&backup.join("sub/x")), 0o600);
        assert_eq!(mode(&root.path().join(BACKUPS_DIR)), 0o700);
        assert_eq!(fs::read_dir(&live).unwrap().count(), 0, "live dir empty");
        assert_eq!(mode(&live), 0o700);
    }

    #[test]
    fn only_the_newest_backups_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let live = live_dir(root.path(), &org());
        let t0 = Utc::now();
        let mut made = Vec::new();
        for i in 0..5 {
            ensure_private_dir(&live).unwrap();
            fs::write(live.join("creds.json"), format!("{i}")).unwrap();
            let when = t0 + chrono::Duration::seconds(i);
            made.push(
                backup_and_wipe(root.path(), &org(), "x", when, 3, true)
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(
            list_backups(root.path(), &org()).unwrap(),
            made[2..].to_vec()
        );
    }

    /// `keep = 0` (or a clock set back, which makes the new backup sort first)
    /// must never delete the backup that was just made: it is the only copy of the
    /// session once the live directory is gone.
    #[test]
    fn pruning_never_removes_the_backup_just_made() {
        let root = tempfile::tempdir().unwrap();
        let live = live_dir(root.path(), &org());
        let now = Utc::now();
        ensure_private_dir(&live).unwrap();
        fs::write(live.join("creds.json"), b"first").unwrap();
        let first = backup_and_wipe(root.path(), &org(), "x", now, 0, true)
            .unwrap()
            .unwrap();
        assert_eq!(list_backups(root.path(), &org()).unwrap(), [first.as_str()]);

        // An hour earlier by the clock: the new backup sorts before the old one.
        fs::write(live.join("creds.json"), b"second").unwrap();
        let earlier = now - chrono::Duration::hours(1);
        let second = backup_and_wipe(root.path(), &org(), "x", earlier, 1, true)
            .unwrap()
            .unwrap();
        assert!(second < first, "{second} sorts before {first}");
        assert_eq!(
            list_backups(root.path(), &org()).unwrap(),
            [second.as_str()]
        );
        let kept = backups_dir(root.path(), &org()).join(&second);
        assert_eq!(fs::read(kept.join("creds.json")).unwrap(), b"second");
    }

    #[test]
    fn same_instant_backups_do_not_collide() {
        let root = tempfile::tempdir().unwrap();
        let live = live_dir(root.path(), &org());
        let now = Utc::now();
        let mut made = Vec::new();
        for _ in 0..2 {
            ensure_private_dir(&live).unwrap();
            fs::write(live.join("creds.json"), b"x").unwrap();
            made.push(
                backup_and_wipe(root.path(), &org(), "x", now, 3, true)
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(
            list_backups(root.path(), &org()).unwrap(),
            made,
            "oldest first"
        );
    }

    #[test]
    fn an_empty_session_is_removed_without_a_backup() {
        let root = tempfile::tempdir().unwrap();
        ensure_private_dir(&live_dir(root.path(), &org())).unwrap();
        assert_eq!(
            backup_and_wipe(root.path(), &org(), "x", Utc::now(), 3, false).unwrap(),
            None
        );
        assert!(!live_dir(root.path(), &org()).exists());
        assert!(!root.path().join(BACKUPS_DIR).exists());
    }

    #[test]
    fn lists_orgs_that_hold_credentials() {
        let root = tempfile::tempdir().unwrap();
        for name in ["b", "a", "empty"] {
            ensure_private_dir(&root.path().join(name)).unwrap();
        }
        fs::write(root.path().join("a/c"), b"").unwrap();
        fs::write(root.path().join("b/c"), b"").unwrap();
        ensure_private_dir(&root.path().join(BACKUPS_DIR).join("z")).unwrap();
        fs::write(root.path().join(BACKUPS_DIR).join("z/c"), b"").unwrap();
        let got = orgs_with_credentials(root.path(), &|dir| dir.join("c").exists()).unwrap();
        let names: Vec<&str> = got.iter().map(|o| o.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    /// A stray file among the backups (an operator's note) is neither pruned nor
    /// a reason to report the wipe as failed.
    #[test]
    fn a_stray_file_among_the_backups_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        let now = Utc::now();
        for (i, when) in [now - chrono::Duration::hours(2), now]
            .into_iter()
            .enumerate()
        {
            let live = live_dir(root.path(), &org());
            fs::create_dir_all(&live).unwrap();
            fs::write(live.join("creds"), [i as u8]).unwrap();
            if i == 0 {
                backup_and_wipe(root.path(), &org(), "x", when, 1, true).unwrap();
                fs::write(backups_dir(root.path(), &org()).join("zz-notes.txt"), b"").unwrap();
            } else {
                let made = backup_and_wipe(root.path(), &org(), "x", when, 1, true).unwrap();
                assert_eq!(list_backups(root.path(), &org()).unwrap(), [made.unwrap()]);
            }
        }
        assert!(
            backups_dir(root.path(), &org())
                .join("zz-notes.txt")
                .exists()
        );
        assert!(
            live_dir(root.path(), &org()).is_dir(),
            "a live directory for the pairing"
        );
    }
}
