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
//!
//! With several daemons on one database (CONTRACT §13) a file must reach the
//! node that delivers its message, whichever node accepted it: a
//! [`SharedMedia`] store (PostgreSQL) then keeps the bytes. The upload still
//! streams to an `.incoming-` file here; once it is complete it is copied into
//! the shared store and the local file removed, before the message is
//! committed, so the order above holds.

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

/// Where the bytes of queued files live when several daemons share them.
#[async_trait::async_trait]
pub trait SharedMedia: Send + Sync + 'static {
    /// Stores message `id`'s file, durably.
    async fn put(&self, id: &MessageId, bytes: Vec<u8>) -> io::Result<()>;
    /// Message `id`'s file; `None` when there is none.
    async fn get(&self, id: &MessageId) -> io::Result<Option<Vec<u8>>>;
    /// Removes message `id`'s file; one already gone is fine.
    async fn delete(&self, id: &MessageId) -> io::Result<()>;
    /// The messages with a file stored long enough ago that its message, if it
    /// was ever committed, is committed by now (a sweep never races an upload
    /// of another node).
    async fn settled_ids(&self) -> io::Result<Vec<MessageId>>;
}

/// The directory of queued files (and, when shared, where their bytes go).
#[derive(Clone)]
pub struct MediaFiles {
    dir: PathBuf,
    shared: Option<std::sync::Arc<dyn SharedMedia>>,
}

impl std::fmt::Debug for MediaFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaFiles")
            .field("dir", &self.dir)
            .field("shared", &self.shared.is_some())
            .finish()
    }
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
        Self {
            dir: dir.into(),
            shared: None,
        }
    }

    /// Uploads arrive in `dir`; complete files are kept in `shared`.
    pub fn shared(dir: impl Into<PathBuf>, shared: std::sync::Arc<dyn SharedMedia>) -> Self {
        Self {
            dir: dir.into(),
            shared: Some(shared),
        }
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
        if let Some(shared) = &self.shared {
            return shared.get(id).await?.ok_or_else(|| {
                io::Error::new(ErrorKind::NotFound, "no stored file for this message")
            });
        }
        let path = self.path(id);
        blocking(move || fs::read(path)).await
    }

    /// Removes message `id`'s file; a file already gone is fine.
    pub async fn remove(&self, id: &MessageId) {
        let removed = match &self.shared {
            Some(shared) => shared.delete(id).await,
            None => {
                let path = self.path(id);
                blocking(move || remove_if_present(&path)).await
            }
        };
        if let Err(e) = removed {
            tracing::warn!(message_id = %id, error = %e, "a media file could not be removed");
        }
    }

    /// Moves message `id`'s file, placed here, into the shared store (if any).
    async fn share(&self, id: &MessageId) -> io::Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let path = self.path(id);
        let bytes = blocking(move || {
            let bytes = fs::read(&path);
            // The local copy goes whatever happens: the shared store is the
            // file's place from now on (or the upload failed).
            remove_if_present(&path)?;
            bytes
        })
        .await?;
        shared.put(id, bytes).await
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
        if let Some(shared) = &self.shared {
            for id in shared.settled_ids().await? {
                if !keep(id.clone()).await {
                    shared.delete(&id).await?;
                    removed += 1;
                }
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
        let result = match result {
            Ok(()) => files.share(id).await,
            Err(e) => Err(e),
        };
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

    /// Shared bytes in memory.
    #[derive(Default)]
    struct Blobs(std::sync::Mutex<std::collections::BTreeMap<String, Vec<u8>>>);

    #[async_trait::async_trait]
    impl SharedMedia for Blobs {
        async fn put(&self, id: &MessageId, bytes: Vec<u8>) -> io::Result<()> {
            self.0.lock().unwrap().insert(id.to_string(), bytes);
            Ok(())
        }
        async fn get(&self, id: &MessageId) -> io::Result<Option<Vec<u8>>> {
            Ok(self.0.lock().unwrap().get(id.as_str()).cloned())
        }
        async fn delete(&self, id: &MessageId) -> io::Result<()> {
            self.0.lock().unwrap().remove(id.as_str());
            Ok(())
        }
        async fn settled_ids(&self) -> io::Result<Vec<MessageId>> {
            let blobs = self.0.lock().unwrap();
            Ok(blobs.keys().map(|k| MessageId::parse(k).unwrap()).collect())
        }
    }

    /// Shared: a committed file leaves this disk for the shared store, where any
    /// node reads it; removing and sweeping act there.
    #[tokio::test]
    async fn a_shared_file_is_kept_in_the_shared_store_only() {
        let root = tempfile::tempdir().unwrap();
        let blobs = std::sync::Arc::new(Blobs::default());
        let files = MediaFiles::shared(root.path().join(MEDIA_DIR), blobs.clone());
        let other_node = MediaFiles::shared(root.path().join("elsewhere"), blobs.clone());
        let (kept, settled) = (MessageId::generate(), MessageId::generate());
        for id in [&kept, &settled] {
            let mut incoming = files.incoming(10).await.unwrap();
            incoming.write(b"hola ojo").await.unwrap();
            incoming.commit(&files, id).await.unwrap();
        }
        assert!(names(files.dir()).is_empty(), "nothing left on this disk");
        assert_eq!(other_node.read(&kept).await.unwrap(), b"hola ojo");
        let keep = kept.clone();
        let removed = other_node
            .sweep(move |id| {
                let keep = id == keep;
                async move { keep }
            })
            .await
            .unwrap();
        assert_eq!(removed, 1);
        let gone = other_node.read(&settled).await.unwrap_err();
        assert_eq!(
            gone.kind(),
            ErrorKind::NotFound,
            "a missing file fails its message"
        );
        other_node.remove(&kept).await;
        assert!(blobs.0.lock().unwrap().is_empty());
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
