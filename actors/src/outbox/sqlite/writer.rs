//! Group commit: one thread owns the write connection and commits many writes at
//! once; another makes them durable and only then answers their callers.
//!
//! A durable commit costs an fsync, and an fsync costs the same for one message as
//! for a hundred; a commit also writes every page it changed to the WAL, and the
//! writes of one batch share pages. So writes queue on a channel, and the writer
//! thread runs each as it comes inside one open transaction. It commits that
//! transaction when the sync thread has nothing in hand (at once, when the daemon
//! is quiet) or when [`MAX_BATCH`] writes are in it; while an fsync runs, the
//! writes arriving meanwhile gather in the next batch instead of each paying a
//! commit of its own. The commit writes the batch to the WAL without waiting for
//! the disk (`synchronous = NORMAL`); the batch then goes to the sync thread, which
//! fsyncs the WAL file and only then answers every caller of every batch committed
//! before that fsync began. Each caller hears back only once its own write is on
//! disk: what SQLite's `synchronous = FULL` gives, with the fsync off the writer.
//!
//! Nothing acts on a write before its caller hears of it: the delivery lane reads a
//! new message only after its enqueue was answered, or in the same WAL before its own
//! (synced) `sending` update, so no message leaves before its record is durable.
//! Readers see only committed batches (WAL), never the open one.
//!
//! A write that fails (a reused message id, a time out of range) is undone alone,
//! and the others in its batch still commit: a write that changes the database in
//! more than one statement runs in a savepoint of its own; one whose only change is
//! its last statement needs none, since SQLite applies a statement whole or not at
//! all (most writes: an enqueue, an update). When the commit itself fails, every
//! caller in the batch hears so, and nothing of the batch is stored. When the fsync
//! fails, every caller waiting on it hears so.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Connection;
use tokio::sync::{Notify, mpsc, oneshot};

/// Batches committed to the WAL whose callers wait for the fsync.
pub(super) type ToSync = std::sync::mpsc::Sender<Committed>;

use crate::outbox::OutboxError;

/// The most writes one transaction takes; more wait for the next. Keeps one
/// transaction, and so the wait of the first caller in it, bounded under a flood.
pub(super) const MAX_BATCH: usize = 1024;

/// One write: runs against the open transaction and says whether its changes are
/// to be kept, plus how to answer its caller once the batch's commit is known.
pub(super) struct Job {
    write: Box<dyn FnOnce(&Connection) -> Outcome + Send>,
    undo: Undo,
}

/// How a write's changes are undone when it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Undo {
    /// It runs in a savepoint of its own, rolled back if it fails.
    Savepoint,
    /// Its only change is its last statement, which SQLite applies whole or not
    /// at all, so when it fails it has changed nothing. It runs without a
    /// savepoint, which saves two statements and the copy of every page it
    /// changes into the savepoint's journal: about a tenth of an enqueue's work on
    /// the writer thread.
    LastStatement,
}

/// Tells one caller how its write ended.
type Answer = Box<dyn FnOnce(Result<(), OutboxError>) + Send>;

pub(super) struct Outcome {
    keep: bool,
    answer: Answer,
}

/// A job that runs `write` in a savepoint and answers with its result, or with the
/// commit's error.
pub(super) fn job<T: Send + 'static>(
    write: impl FnOnce(&Connection) -> Result<T, OutboxError> + Send + 'static,
) -> (Job, oneshot::Receiver<Result<T, OutboxError>>) {
    job_undone_by(Undo::Savepoint, write)
}

/// A job for a `write` that changes the database only in its last statement, and
/// only when it then returns `Ok` (see [`Undo::LastStatement`]).
pub(super) fn last_statement_job<T: Send + 'static>(
    write: impl FnOnce(&Connection) -> Result<T, OutboxError> + Send + 'static,
) -> (Job, oneshot::Receiver<Result<T, OutboxError>>) {
    job_undone_by(Undo::LastStatement, write)
}

fn job_undone_by<T: Send + 'static>(
    undo: Undo,
    write: impl FnOnce(&Connection) -> Result<T, OutboxError> + Send + 'static,
) -> (Job, oneshot::Receiver<Result<T, OutboxError>>) {
    let (reply, answer) = oneshot::channel();
    let write = Box::new(move |conn: &Connection| {
        let result = write(conn);
        Outcome {
            keep: result.is_ok(),
            answer: Box::new(move |commit: Result<(), OutboxError>| {
                // The caller may have gone (its request was dropped); the write
                // stands all the same, as a committed write must.
                let _ = reply.send(commit.and(result));
            }),
        }
    });
    (Job { write, undo }, answer)
}

/// What the sync thread holds: batches committed to the WAL and not yet answered,
/// and a wake-up for the writer when it holds none.
#[derive(Default)]
pub(super) struct SyncQueue {
    held: AtomicUsize,
    emptied: Notify,
}

impl SyncQueue {
    fn is_empty(&self) -> bool {
        self.held.load(Ordering::Acquire) == 0
    }

    /// `n` batches were answered.
    fn answered(&self, n: usize) {
        if self.held.fetch_sub(n, Ordering::AcqRel) == n {
            self.emptied.notify_one();
        }
    }
}

/// What the writer waited for.
enum Woke {
    Job(Option<Job>),
    SyncEmptied,
}

/// The writer thread's loop: until every sender is gone, run the writes as they
/// come in the open batch, and commit it whenever the sync thread has nothing in
/// hand or the batch is full (see the module docs).
pub(super) fn run(
    conn: Connection,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    to_sync: ToSync,
    syncing: Arc<SyncQueue>,
) {
    // Waits on the channel and the sync thread's wake-up at once; it drives no I/O
    // and no timer, so it cannot fail to build short of the process failing.
    let waiter = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime without drivers");
    let mut open: Option<OpenBatch> = None;
    loop {
        let due =
            |b: &mut OpenBatch| syncing.is_empty() || b.len() >= MAX_BATCH || b.begun.is_err();
        if let Some(batch) = open.take_if(due) {
            hand_over(batch.commit(&conn), &to_sync, &syncing);
            continue;
        }
        let woke = waiter.block_on(async {
            if open.is_none() {
                return Woke::Job(jobs.recv().await);
            }
            tokio::select! {
                job = jobs.recv() => Woke::Job(job),
                () = syncing.emptied.notified() => Woke::SyncEmptied,
            }
        });
        match woke {
            Woke::Job(Some(job)) => {
                let batch = open.get_or_insert_with(|| OpenBatch::begin(&conn));
                batch.run(&conn, job);
                while batch.len() < MAX_BATCH {
                    match jobs.try_recv() {
                        Ok(job) => batch.run(&conn, job),
                        Err(_) => break,
                    }
                }
            }
            Woke::Job(None) => {
                if let Some(batch) = open.take() {
                    hand_over(batch.commit(&conn), &to_sync, &syncing);
                }
                return;
            }
            // Looked at again at the top of the loop.
            Woke::SyncEmptied => {}
        }
    }
}

/// Gives a committed batch to the sync thread (a failed commit is answered at
/// once: there is nothing to make durable).
pub(super) fn hand_over(committed: Committed, to_sync: &ToSync, syncing: &SyncQueue) {
    if committed.result.is_err() {
        committed.answer(Ok(()));
        return;
    }
    syncing.held.fetch_add(1, Ordering::AcqRel);
    if let Err(unsent) = to_sync.send(committed) {
        syncing.answered(1);
        // The sync thread is gone (it cannot panic, but should it): no caller may
        // hear "stored" of a write that was never synced.
        unsent.0.answer(Err(OutboxError::Store(
            "the outbox's sync thread has stopped".to_owned(),
        )));
    }
}

/// The sync thread's loop: fsyncs the WAL file once for every batch committed
/// before the fsync began, then answers their callers, until the writer is gone.
pub(super) fn sync_loop(
    committed: std::sync::mpsc::Receiver<Committed>,
    syncing: &SyncQueue,
    sync: impl Fn() -> io::Result<()>,
) {
    let mut round = Vec::new();
    while let Ok(first) = committed.recv() {
        round.push(first);
        round.extend(committed.try_iter());
        let durable = sync().map_err(|e| {
            let e = OutboxError::Store(format!("the outbox could not be made durable: {e}"));
            let writes: usize = round.iter().map(|c| c.answers.len()).sum();
            tracing::error!(error = %e, writes, "outbox: an fsync failed");
            e
        });
        let batches = round.len();
        for batch in round.drain(..) {
            batch.answer(durable.clone());
        }
        syncing.answered(batches);
    }
}

/// Flushes the WAL file's data to the disk. Opened by name each time: SQLite keeps
/// the file while a connection is open, and a name cannot go stale.
pub(super) fn sync_file(wal: &Path) -> io::Result<()> {
    std::fs::File::open(wal)?.sync_data()
}

/// A batch's transaction, committed or not, whose callers have not heard yet.
pub(super) struct Committed {
    answers: Vec<Answer>,
    result: Result<(), OutboxError>,
}

impl Committed {
    /// Answers every caller of the batch: with the commit's error, else with
    /// `durable`, the outcome of an fsync begun after the commit.
    pub(super) fn answer(self, durable: Result<(), OutboxError>) {
        let outcome = self.result.and(durable);
        for answer in self.answers {
            answer(outcome.clone());
        }
    }
}

/// Runs `batch` in one transaction and commits it; its callers hear when the
/// returned batch is answered.
#[cfg(test)]
pub(super) fn commit_batch(conn: &Connection, batch: impl IntoIterator<Item = Job>) -> Committed {
    let mut open = OpenBatch::begin(conn);
    for job in batch {
        open.run(conn, job);
    }
    open.commit(conn)
}

/// A transaction the writer runs writes in until it commits them as one batch.
struct OpenBatch {
    /// `Err`: the transaction could not begin, or the database rolled it back by
    /// itself; the batch's writes are dropped unrun and it commits nothing.
    begun: Result<(), OutboxError>,
    answers: Vec<Answer>,
}

impl OpenBatch {
    fn begin(conn: &Connection) -> Self {
        let begun = statement::run(conn, "BEGIN IMMEDIATE").map_err(|e| {
            let e = OutboxError::from(e);
            tracing::error!(error = %e, "outbox: cannot begin a transaction");
            e
        });
        Self {
            begun,
            answers: Vec::new(),
        }
    }

    /// Writes run so far (each with a caller to answer).
    fn len(&self) -> usize {
        self.answers.len()
    }

    /// Runs `job` (in its own savepoint if it needs one). A job dropped unrun
    /// drops its reply: its caller hears "store failed".
    fn run(&mut self, conn: &Connection, job: Job) {
        if self.begun.is_err() {
            return;
        }
        // An I/O error or a full disk can make SQLite roll the whole transaction
        // back by itself; a later write would then run in a transaction of its
        // own and commit at once. Stop instead: the batch as a whole failed.
        if conn.is_autocommit() {
            self.begun = Err(rolled_back());
            return;
        }
        if job.undo == Undo::LastStatement {
            self.run_alone(conn, job);
            return;
        }
        if savepoint::begin(conn).is_err() {
            self.begun = Err(rolled_back());
            return;
        }
        // A panicking job (a bug) must not take the writer thread, and with it
        // every later write, down: its savepoint is rolled back and its caller,
        // whose reply unwound with it, hears the write was dropped.
        let Ok(outcome) = catch_unwind(AssertUnwindSafe(|| (job.write)(conn))) else {
            savepoint::roll_back(conn);
            return;
        };
        if outcome.keep {
            if let Err(e) = savepoint::release(conn) {
                savepoint::roll_back(conn);
                (outcome.answer)(Err(e.into()));
                return;
            }
        } else {
            savepoint::roll_back(conn);
        }
        self.answers.push(outcome.answer);
    }

    /// Runs a job whose failure changed nothing (see [`Undo::LastStatement`]).
    fn run_alone(&mut self, conn: &Connection, job: Job) {
        match catch_unwind(AssertUnwindSafe(|| (job.write)(conn))) {
            Ok(outcome) => self.answers.push(outcome.answer),
            // Nothing says whether its statement ran before the panic (a bug), and
            // with no savepoint it cannot be undone alone: the whole batch is, and
            // every caller in it hears so, so that no write its caller heard was
            // dropped stays stored.
            Err(_) => {
                self.begun = Err(OutboxError::Store(
                    "a write in the batch failed unexpectedly (see the log)".to_owned(),
                ));
            }
        }
    }

    /// Commits the batch; its callers hear when the returned batch is answered.
    fn commit(self, conn: &Connection) -> Committed {
        let committed = self.begun.and_then(|()| {
            if conn.is_autocommit() {
                return Err(rolled_back());
            }
            statement::run(conn, "COMMIT").map_err(OutboxError::from)
        });
        // Whatever failed, no transaction may stay open under the next batch.
        if !conn.is_autocommit() {
            let _ = statement::run(conn, "ROLLBACK");
        }
        if let Err(e) = &committed {
            tracing::error!(error = %e, writes = self.answers.len(), "outbox: a group commit failed");
        }
        Committed {
            answers: self.answers,
            result: committed,
        }
    }
}

/// The error of a batch whose transaction SQLite rolled back by itself.
fn rolled_back() -> OutboxError {
    OutboxError::Store("the outbox transaction was rolled back by the database".to_owned())
}

/// Transaction control through cached statements: rusqlite's `Transaction` parses
/// its `BEGIN` and `COMMIT` afresh each time.
mod statement {
    use rusqlite::Connection;

    pub(super) fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
        conn.prepare_cached(sql)?.execute([]).map(drop)
    }
}

/// One job's savepoint, through cached statements: rusqlite's `Savepoint` parses
/// its `SAVEPOINT` and `RELEASE` afresh each time, twice per message in a batch.
mod savepoint {
    use rusqlite::Connection;

    use super::statement;

    pub(super) fn begin(conn: &Connection) -> rusqlite::Result<()> {
        statement::run(conn, "SAVEPOINT job")
    }

    /// Keeps the job's changes in the batch's transaction.
    pub(super) fn release(conn: &Connection) -> rusqlite::Result<()> {
        statement::run(conn, "RELEASE job")
    }

    /// Undoes the job's changes and ends its savepoint. Should SQLite refuse (it
    /// has rolled the whole transaction back), the batch's next step sees the
    /// transaction gone and stops.
    pub(super) fn roll_back(conn: &Connection) {
        if statement::run(conn, "ROLLBACK TO job").is_ok() {
            let _ = release(conn);
        }
    }
}
