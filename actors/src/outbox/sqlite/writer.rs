//! Group commit: one thread owns the write connection and commits many writes at once.
//!
//! A durable commit costs an fsync, and an fsync costs the same for one message as
//! for a hundred. So writes queue on a channel; the thread takes everything queued
//! (up to [`MAX_BATCH`]), runs it in ONE transaction, commits once, and only then
//! answers every caller. Under load a batch grows while the previous one is being
//! fsync'd, so throughput rises with concurrency while each caller still hears back
//! only after its own write is on disk.
//!
//! Each write runs in its own savepoint: one that fails (a reused message id, a time
//! out of range) is rolled back alone, and the others in its batch still commit.
//! When the commit itself fails, every caller in the batch hears so, and nothing of
//! the batch is stored.

use std::panic::{AssertUnwindSafe, catch_unwind};

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::outbox::OutboxError;

/// The most writes one transaction takes; more wait for the next. Keeps one
/// transaction, and so the wait of the first caller in it, bounded under a flood.
pub(super) const MAX_BATCH: usize = 1024;

/// One write: runs against the open transaction (inside its savepoint) and says
/// whether its changes are to be kept, plus how to answer its caller once the
/// batch's commit is known.
pub(super) type Job = Box<dyn FnOnce(&Connection) -> Outcome + Send>;

pub(super) struct Outcome {
    keep: bool,
    answer: Box<dyn FnOnce(Result<(), OutboxError>) + Send>,
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

/// The writer thread's loop: until every sender is gone, take what is queued and
/// commit it as one batch.
pub(super) fn run(mut conn: Connection, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, batch.drain(..));
    }
}

/// Runs `batch` in one transaction, commits it, then answers every job.
pub(super) fn commit_batch(conn: &mut Connection, batch: impl IntoIterator<Item = Job>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = OutboxError::from(e);
            // A job dropped unrun drops its reply: the caller hears "store failed".
            drop(batch);
            tracing::error!(error = %e, "outbox: cannot begin a transaction");
            return;
        }
    };
    let mut answers = Vec::new();
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
    for answer in answers {
        answer(committed.clone());
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
