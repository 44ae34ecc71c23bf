//! Group commit: one thread owns the write connection and commits many writes at
//! once; another makes them durable and only then answers their callers.
//!
//! A durable commit costs an fsync, and an fsync costs the same for one message as
//! for a hundred. So writes queue on a channel; the writer thread takes everything
//! queued (up to [`MAX_BATCH`]), runs it in ONE transaction and commits once. The
//! commit writes the batch to the WAL without waiting for the disk (`synchronous =
//! NORMAL`); the batch then goes to the sync thread, which fsyncs the WAL file and
//! only then answers every caller of every batch committed before that fsync began.
//! So the writer runs the next batch's SQL while the disk takes the last one, and
//! one fsync covers as many batches as were committed meanwhile, yet each caller
//! still hears back only once its own write is on disk: what SQLite's `synchronous
//! = FULL` gives, with the fsync moved off the writer.
//!
//! Nothing acts on a write before its caller hears of it: the delivery lane reads a
//! new message only after its enqueue was answered, or in the same WAL before its own
//! (synced) `sending` update, so no message leaves before its record is durable.
//!
//! Each write runs in its own savepoint: one that fails (a reused message id, a time
//! out of range) is rolled back alone, and the others in its batch still commit.
//! When the commit itself fails, every caller in the batch hears so, and nothing of
//! the batch is stored. When the fsync fails, every caller waiting on it hears so.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

/// Batches committed to the WAL whose callers wait for the fsync.
pub(super) type ToSync = std::sync::mpsc::Sender<Committed>;

use crate::outbox::OutboxError;

/// The most writes one transaction takes; more wait for the next. Keeps one
/// transaction, and so the wait of the first caller in it, bounded under a flood.
pub(super) const MAX_BATCH: usize = 1024;

/// One write: runs against the open transaction (inside its savepoint) and says
/// whether its changes are to be kept, plus how to answer its caller once the
/// batch's commit is known.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> Outcome + Send>;

/// Tells one caller how its write ended.
type Answer = Box<dyn FnOnce(Result<(), OutboxError>) + Send>;

pub(super) struct Outcome {
    keep: bool,
    answer: Answer,
}

/// A job that runs `write` and answers with its result, or with the commit's error.
pub(super) fn job<T: Send + 'static>(
    write: impl FnOnce(&Connection) -> Result<T, OutboxError> + Send + 'static,
) -> (Job, oneshot::Receiver<Result<T, OutboxError>>) {
    let (reply, answer) = oneshot::channel();
    let job: Job = Box::new(move |conn| {
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
    (job, answer)
}

/// The writer thread's loop: until every sender is gone, take what is queued,
/// commit it as one batch and hand it to the sync thread (a failed commit is
/// answered at once: there is nothing to make durable).
pub(super) fn run(mut conn: Connection, mut jobs: mpsc::UnboundedReceiver<Job>, to_sync: ToSync) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = commit_batch(&mut conn, batch.drain(..));
        if committed.result.is_err() {
            committed.answer(Ok(()));
        } else if let Err(unsent) = to_sync.send(committed) {
            // The sync thread is gone (it cannot panic, but should it): no caller
            // may hear "stored" of a write that was never synced.
            unsent.0.answer(Err(OutboxError::Store(
                "the outbox's sync thread has stopped".to_owned(),
            )));
        }
    }
}

/// The sync thread's loop: fsyncs the WAL file once for every batch committed
/// before the fsync began, then answers their callers, until the writer is gone.
pub(super) fn sync_loop(
    committed: std::sync::mpsc::Receiver<Committed>,
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
        for batch in round.drain(..) {
            batch.answer(durable.clone());
        }
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
pub(super) fn commit_batch(
    conn: &mut Connection,
    batch: impl IntoIterator<Item = Job>,
) -> Committed {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = OutboxError::from(e);
            // A job dropped unrun drops its reply: the caller hears "store failed".
            drop(batch);
            tracing::error!(error = %e, "outbox: cannot begin a transaction");
            return Committed {
                answers: Vec::new(),
                result: Err(e),
            };
        }
    };
    let mut answers: Vec<Answer> = Vec::new();
    for job in batch {
        // An I/O error or a full disk can make SQLite roll the whole transaction
        // back by itself; a later savepoint would then open a transaction of its
        // own and commit on release. Stop instead: the batch as a whole failed.
        if tx.is_autocommit() || savepoint::begin(&tx).is_err() {
            break;
        }
        // A panicking job (a bug) must not take the writer thread, and with it
        // every later write, down: its savepoint is rolled back and its caller,
        // whose reply unwound with it, hears the write was dropped.
        let Ok(outcome) = catch_unwind(AssertUnwindSafe(|| job(&tx))) else {
            savepoint::roll_back(&tx);
            continue;
        };
        if outcome.keep {
            if let Err(e) = savepoint::release(&tx) {
                savepoint::roll_back(&tx);
                (outcome.answer)(Err(e.into()));
                continue;
            }
        } else {
            savepoint::roll_back(&tx);
        }
        answers.push(outcome.answer);
    }
    let committed = if tx.is_autocommit() {
        Err(OutboxError::Store(
            "the outbox transaction was rolled back by the database".to_owned(),
        ))
    } else {
        tx.commit().map_err(OutboxError::from)
    };
    if let Err(e) = &committed {
        tracing::error!(error = %e, writes = answers.len(), "outbox: a group commit failed");
    }
    Committed {
        answers,
        result: committed,
    }
}

/// One job's savepoint, through cached statements: rusqlite's `Savepoint` parses
/// its `SAVEPOINT` and `RELEASE` afresh each time, twice per message in a batch.
mod savepoint {
    use rusqlite::Connection;

    pub(super) fn begin(conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("SAVEPOINT job")?.execute([]).map(drop)
    }

    /// Keeps the job's changes in the batch's transaction.
    pub(super) fn release(conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached("RELEASE job")?.execute([]).map(drop)
    }

    /// Undoes the job's changes and ends its savepoint. Should SQLite refuse (it
    /// has rolled the whole transaction back), the batch's next step sees the
    /// transaction gone and stops.
    pub(super) fn roll_back(conn: &Connection) {
        let undo = conn
            .prepare_cached("ROLLBACK TO job")
            .and_then(|mut s| s.execute([]));
        if undo.is_ok() {
            let _ = release(conn);
        }
    }
}
