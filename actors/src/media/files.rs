//! Where a queued file waits: `<sessions dir>/outbox.media/<message_id>`, mode
//! 0600, beside the outbox database.
//!
//! The order of writes keeps the file and its message together through a crash:
//!
//! 1. the upload streams into `.incoming-<random>` (hashed and counted on the way,
//!    so an oversized one is stopped, and removed, as soon as it crosses the limit);
//! 2. it is fsync'd and renamed to `<message_id>`, and the directory fsync'd;
//! 3. only then is the message committed to the outbox, and only then answered.
//!
//! So a queued message always has its file. The file is removed once its message
//! is settled (sent, failed, expired, cancelled) or was never committed (a
//! duplicate, a refusal); a crash between those steps leaves at most a file
//! without a pending message, which [`MediaFiles::sweep`] removes at the next
//! start, with every `.incoming-` left over.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::detect::HEAD_BYTES;
use crate::outbox::MessageId;

/// The directory's name inside the sessions directory: beside `outbox.db`, and,
/// with its dot, never the name of an organization's session directory.
pub const MEDIA_DIR: &str = "outbox.media";
/// Files being received start with this; none outlives a start.
pub const INCOMING_PREFIX: &str = ".incoming-";

/// The directory of queued files.
#[derive(Clone, Debug)]
pub struct MediaFiles {
    dir: PathBuf,
}

/// Why a file could not be received.
#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    /// More bytes came than the limit allows; what came is already removed.
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the file could not be stored: {0}")]
    Io(#[from] io::Error),
}

impl MediaFiles {
    /// Files live in `dir` (created, mode 0700, on the first file).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file of message `id` is kept. A [`MessageId`] is letters,
    /// digits, `_` and `-` only, so the path stays inside the directory.
    pub fn path(&self, id: &MessageId) -> PathBuf {
        self.dir.join(id.as_str())
    }

    /// Starts receiving a file of at most `limit` bytes.
    pub async fn incoming(&self, limit: u64) -> Result<Incoming, IncomingError> {
        let dir = self.dir.clone();
        let (file, path) = blocking(move || {
            DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
            let name = format!("{INCOMING_PREFIX}{}", MessageId::generate());
            let path = dir.join(name);
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            Ok((file, path))
        })
        .await?;
        Ok(Incoming {
            file: Some(file),
            path,
            limit,
            size: 0,
            sha256: Sha256::new(),
            head: Vec::new(),
        })
    }

    /// The bytes of message `id`'s file.
    pub async fn read(&self, id: &MessageId) -> io::Result<Vec<u8>> {
        let path = self.path(id);
        blocking(move || fs::read(path)).await
    }

    /// Removes message `id`'s file; a file already gone is fine.
    pub async fn remove(&self, id: &MessageId) {
        let path = self.path(id);
        if let Err(e) = blocking(move || remove_if_present(&path)).await {
            tracing::warn!(message_id = %id, error = %e, "a media file could not be removed");
        }
    }

    /// Removes every leftover `.incoming-` file and every file whose message
    /// `keep` does not want (unknown, or settled); returns how many it removed.
    /// Run at start, before anything is accepted.
    pub async fn sweep<F, Fut>(&self, mut keep: F) -> io::Result<usize>
    where
        F: FnMut(MessageId) -> Fut,
        Fut: Future<Output = bool>,
    {
        let dir = self.dir.clone();
        let names = blocking(move || match fs::read_dir(&dir) {
            Ok(entries) => entries
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<io::Result<Vec<_>>>(),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        })
        .await?;
        let mut removed = 0;
        for name in names {
            let wanted = match MessageId::parse(&name) {
                Ok(id) if !name.starts_with(INCOMING_PREFIX) => keep(id).await,
                _ => false,
            };
            if !wanted {
                let path = self.dir.join(&name);
                blocking(move || remove_if_present(&path)).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A file being received. Dropped before [`Incoming::commit`], it is removed.
pub struct Incoming {
    file: Option<fs::File>,
    path: PathBuf,
    limit: u64,
    size: u64,
    sha256: Sha256,
    head: Vec<u8>,
}

impl Incoming {
    /// Appends `chunk`. Past the limit, the file is removed and nothing more is
    /// written.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), IncomingError> {
        let size = self.size.saturating_add(chunk.len() as u64);
        if size > self.limit {
            self.discard();
            return Err(IncomingError::TooLarge { limit: self.limit });
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the incoming file was discarded"))?;
        let owned = chunk.to_vec();
        let (file, written) = blocking(move || {
            let written = file.write_all(&owned);
            Ok((file, written))
        })
        .await?;
        self.file = Some(file);
        written?;
        self.size = size;
        self.sha256.update(chunk);
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        Ok(())
    }

    /// The first bytes, enough to tell the type.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 of everything written, lower-case hex.
    pub fn sha256(&self) -> String {
        super::hex(&self.sha256.clone().finalize())
    }

    /// Makes the file message `id`'s, durably: fsync'd, renamed into place, and
    /// the rename fsync'd with the directory.
    pub async fn commit(mut self, files: &MediaFiles, id: &MessageId) -> io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("the incoming file was discarded"))?;
        let from = std::mem::take(&mut self.path);
        let to = files.path(id);
        let dir = files.dir.clone();
        let result = blocking(move || {
            file.sync_all()?;
            drop(file);
            fs::rename(&from, &to).inspect_err(|_| {
                let _ = fs::remove_file(&from);
            })?;
            fs::File::open(&dir)?.sync_all()
        })
        .await;
        if result.is_err() {
            // Never leave a half-placed file for a message that is not committed.
            files.remove(id).await;
        }
        result
    }

    /// Removes what was received so far.
    fn discard(&mut self) {
        self.file = None;
        if !self.path.as_os_str().is_empty() {
            // A small unlink; done in place so that a dropped request (its task
            // cancelled mid-upload) cannot leave the file behind.
            let _ = remove_if_present(&self.path);
            self.path = PathBuf::new();
        }
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        self.discard();
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| io::Error::other(format!("a file operation panicked: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// An org's session lives in `<sessions dir>/<org>`: the sweep would empty
    /// that of an org named like the media directory.
    #[test]
    fn no_organization_is_named_like_the_media_directory() {
        assert!(crate::OrgId::parse(MEDIA_DIR).is_err());
    }

    #[tokio::test]
    async fn a_committed_file_is_private_and_named_by_its_message() {
        let root = tempfile::tempdir().unwrap();
        let files = MediaFiles::new(root.path().join(MEDIA_DIR));
        let mut incoming = files.incoming(10).await.unwrap();
        incoming.write(b"hola ").await.unwrap();
        incoming.write(b"ojo").await.unwrap();
        assert_eq!((incoming.size(), incoming.head()), (8, &b"hola ojo"[..]));
        let want = super::super::hex(&Sha256::digest(b"hola ojo"));
        assert_eq!(incoming.sha256(), want);
        let id = MessageId::generate();
        incoming.commit(&files, &id).await.unwrap();
        assert_eq!(names(files.dir()), [id.to_string()]);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files.path(&id)), 0o600);
        assert_eq!(mode(files.dir()), 0o700);
        assert_eq!(files.read(&id).await.unwrap(), b"hola ojo");
        files.remove(&id).await;
        files.remove(&id).await;
        assert!(names(files.dir()).is_empty());
    }

    #[tokio::test]
    async fn past_the_limit_nothing_is_kept() {
        let root = tempfile::tempdir().unwrap();
        let files = MediaFiles::new(root.path().join(MEDIA_DIR));
        let mut incoming = files.incoming(4).await.unwrap();
        incoming.write(b"1234").await.unwrap();
        assert_eq!(names(files.dir()).len(), 1);
        let err = incoming.write(b"5").await.unwrap_err();
        assert!(matches!(err, IncomingError::TooLarge { limit: 4 }), "{err}");
        assert!(names(files.dir()).is_empty(), "removed at once");
        assert!(
            incoming.write(b"").await.is_err(),
            "nothing more is written"
        );

        let mut dropped = files.incoming(4).await.unwrap();
        dropped.write(b"12").await.unwrap();
        drop(dropped);
        assert!(names(files.dir()).is_empty(), "a dropped upload is removed");
    }

    #[tokio::test]
    async fn the_sweep_keeps_only_files_of_wanted_messages() {
        let root = tempfile::tempdir().unwrap();
        let files = MediaFiles::new(root.path().join(MEDIA_DIR));
        assert_eq!(
            files.sweep(|_| async { true }).await.unwrap(),
            0,
            "no dir yet"
        );
        let (queued, settled) = (MessageId::generate(), MessageId::generate());
        for id in [&queued, &settled] {
            let mut f = files.incoming(10).await.unwrap();
            f.write(b"x").await.unwrap();
            f.commit(&files, id).await.unwrap();
        }
        // An upload a crash interrupted, and a stray name.
        let left = files.incoming(10).await.unwrap();
        std::mem::forget(left);
        fs::write(files.dir().join("not an id"), b"").unwrap();
        let keep = queued.clone();
        let removed = files
            .sweep(move |id| {
                let keep = id == keep;
                async move { keep }
            })
            .await
            .unwrap();
        assert_eq!(removed, 3);
        assert_eq!(names(files.dir()), [queued.to_string()]);
    }
}
