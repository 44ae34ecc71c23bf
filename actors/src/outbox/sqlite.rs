//! [`SqliteOutbox`]: the embedded, durable outbox, one SQLite database file in the
//! sessions directory (`<sessions dir>/outbox.db`, mode 0600).
//!
//! - **Writes** (`enqueue`, `update`, `expire_due`) go to one writer thread that
//!   owns the only write connection and commits them in groups, and a sync thread
//!   fsyncs the WAL behind it (`writer.rs`): a call returns once its transaction
//!   is committed and fsync'd, so "accepted" survives a crash or a power loss.
//! - **Reads** run on a few read connections on tokio's blocking pool; WAL lets
//!   them read the last commit while the writer writes, so neither waits for the
//!   other.
//!
//! No method blocks a tokio worker: they only await a channel or `spawn_blocking`.

mod queries;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{
    Enqueued, ListFilter, Message, MessageId, MessageStatus, NewMessage, OutboxError, OutboxStore,
    Update, Updated,
};
use crate::OrgId;

/// Read connections open at most at once (each read holds one for its query only).
const READERS: usize = 4;

/// The SQLite outbox (see the module docs). Dropping it lets the writer thread
/// finish what it was given and close; [`SqliteOutbox::close`] also waits for that.
pub struct SqliteOutbox {
    writes: mpsc::UnboundedSender<writer::Job>,
    writer: JoinHandle<()>,
    syncer: JoinHandle<()>,
    reads: Arc<ReadPool>,
}

impl std::fmt::Debug for SqliteOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOutbox")
            .field("path", &self.reads.path)
            .finish_non_exhaustive()
    }
}

impl From<rusqlite::Error> for OutboxError {
    fn from(e: rusqlite::Error) -> Self {
        // SQLite's messages name tables and constraints, never the values.
        Self::Store(e.to_string())
    }
}

impl SqliteOutbox {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    /// The directory must exist.
    pub async fn open(path: impl Into<PathBuf>) -> Result<Self, OutboxError> {
        let path = path.into();
        let (conn, path) = tokio::task::spawn_blocking(move || {
            schema::open_writer(&path).map(|conn| (conn, path))
        })
        .await
        .map_err(|e| OutboxError::Store(format!("opening the outbox panicked: {e}")))??;
        let wal = schema::wal_path(&path);
        let (to_sync, committed) = std::sync::mpsc::channel();
        let syncing = Arc::new(writer::SyncQueue::default());
        let held = Arc::clone(&syncing);
        let syncer = std::thread::Builder::new()
            .name("outbox-sync".to_owned())
            .spawn(move || writer::sync_loop(committed, &held, || writer::sync_file(&wal)))
            .map_err(|e| OutboxError::Store(format!("cannot start the outbox sync: {e}")))?;
        let (writes, jobs) = mpsc::unbounded_channel();
        let writer = std::thread::Builder::new()
            .name("outbox-writer".to_owned())
            .spawn(move || writer::run(conn, jobs, to_sync, syncing))
            .map_err(|e| OutboxError::Store(format!("cannot start the outbox writer: {e}")))?;
        Ok(Self {
            writes,
            writer,
            syncer,
            reads: Arc::new(ReadPool::new(path)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.reads.path
    }

    /// Stops taking writes and waits until every write already given is committed
    /// and the writer's connection is closed (which checkpoints the WAL into the
    /// database file).
    pub async fn close(self) {
        let Self {
            writes,
            writer,
            syncer,
            ..
        } = self;
        drop(writes);
        // The joins only wait for the last commit, its fsync and the close; the
        // writer's end ends the sync thread.
        let _ = tokio::task::spawn_blocking(move || {
            let _ = writer.join();
            let _ = syncer.join();
        })
        .await;
    }

    /// Runs `write` on the writer thread in the next group commit, in a savepoint.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        self.run_job(writer::job(write)).await
    }

    /// Runs `write`, whose only change is its last statement and only when it
    /// returns `Ok`, in the next group commit without a savepoint (see
    /// `writer::Undo::LastStatement`).
    async fn write_last_statement<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        self.run_job(writer::last_statement_job(write)).await
    }

    async fn run_job<T: Send + 'static>(
        &self,
        (job, answer): (writer::Job, oneshot::Receiver<Result<T, OutboxError>>),
    ) -> Result<T, OutboxError> {
        self.writes
            .send(job)
            .map_err(|_| OutboxError::Store("the outbox writer has stopped".to_owned()))?;
        answer.await.map_err(|_| {
            OutboxError::Store("the outbox writer dropped the write (see the log)".to_owned())
        })?
    }

    /// Runs `read` on a read connection, on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let permit = Arc::clone(&self.reads.permits)
            .acquire_owned()
            .await
            .map_err(|_| OutboxError::Store("the outbox read pool is closed".to_owned()))?;
        let pool = Arc::clone(&self.reads);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with_connection(read)
        })
        .await
        .map_err(|e| OutboxError::Store(format!("an outbox read panicked: {e}")))?
    }
}

/// Idle read connections, opened on first need, at most [`READERS`] in use.
struct ReadPool {
    path: PathBuf,
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            permits: Arc::new(Semaphore::new(READERS)),
            idle: Mutex::new(Vec::with_capacity(READERS)),
        }
    }

    /// Called with a permit held, so at most [`READERS`] connections exist.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = read(&conn);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        result
    }
}

#[async_trait]
impl OutboxStore for SqliteOutbox {
    async fn enqueue(&self, message: NewMessage) -> Result<Enqueued, OutboxError> {
        self.write_last_statement(move |conn| queries::enqueue(conn, message))
            .await
    }

    async fn get(&self, id: &MessageId) -> Result<Option<Message>, OutboxError> {
        let id = id.clone();
        self.read(move |conn| queries::get(conn, &id)).await
    }

    async fn by_key(&self, org: &OrgId, key: &str) -> Result<Option<Message>, OutboxError> {
        let (org, key) = (org.clone(), key.to_owned());
        self.read(move |conn| queries::by_key(conn, &org, &key))
            .await
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Message>, OutboxError> {
        let filter = filter.clone();
        self.read(move |conn| queries::list(conn, &filter)).await
    }

    async fn update(&self, id: &MessageId, update: Update) -> Result<Updated, OutboxError> {
        let id = id.clone();
        self.write_last_statement(move |conn| queries::update(conn, &id, &update))
            .await
    }

    async fn next_pending(&self, org: &OrgId) -> Result<Option<Message>, OutboxError> {
        let org = org.clone();
        self.read(move |conn| queries::next_pending(conn, &org))
            .await
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<Vec<Message>, OutboxError> {
        self.write(move |conn| queries::expire_due(conn, now)).await
    }

    async fn orgs_with_pending(&self) -> Result<Vec<OrgId>, OutboxError> {
        self.read(queries::orgs_with_pending).await
    }

    async fn counts(&self) -> Result<Vec<(OrgId, MessageStatus, u64)>, OutboxError> {
        self.read(queries::counts).await
    }
}
