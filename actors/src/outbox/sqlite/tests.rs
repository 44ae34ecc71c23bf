//! What only the SQLite store has: a file, a schema version, group commit and query
//! plans, and survival of `kill -9`. Its behaviour as a store is in `store_suite.rs`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use rand::RngExt;
use rusqlite::Connection;
use rusqlite::types::Value;

use super::{SqliteOutbox, queries, schema, writer};
use crate::OrgId;
use crate::outbox::{
    Enqueued, MessageBody, MessageId, MessageStatus, NewMessage, Origin, OutboxError, OutboxStore,
    Update, Updated,
};

fn message(org: &str, key: Option<&str>) -> NewMessage {
    let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    NewMessage {
        message_id: MessageId::generate(),
        org: OrgId::parse(org).unwrap(),
        phone: "573001234567".to_owned(),
        body: MessageBody::Text("recordatorio".to_owned()),
        idempotency_key: key.map(str::to_owned),
        origin: Origin::Queue,
        created_at: at,
        expires_at: at + chrono::Duration::days(1),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_file_is_private_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let store = SqliteOutbox::open(&path).await.unwrap();
    store.enqueue(message("2", None)).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("outbox.db-wal")), 0o600);
    assert_eq!(mode(&dir.path().join("outbox.db-shm")), 0o600);
    store.close().await;

    // The writer's connection is opened by this function, and nothing else writes.
    let conn = schema::open_writer(&path).unwrap();
    let journal: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let synchronous: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    // 1 is NORMAL: the commit does not wait for the disk, the sync thread does
    // before anyone hears (`a_write_is_answered_only_after_an_fsync_that_follows_it`).
    assert_eq!((journal.as_str(), synchronous), ("wal", 1), "1 is NORMAL");
}

#[tokio::test]
async fn a_reopened_database_keeps_its_messages_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let store = SqliteOutbox::open(&path).await.unwrap();
    let Enqueued::New(kept) = store.enqueue(message("2", Some("k"))).await.unwrap() else {
        panic!("a new message")
    };
    store.close().await;

    let store = SqliteOutbox::open(&path).await.unwrap();
    assert_eq!(
        store.get(&kept.message_id).await.unwrap(),
        Some(kept.clone())
    );
    let again = store.enqueue(message("2", Some("k"))).await.unwrap();
    assert_eq!(again, Enqueued::Duplicate(kept));
    store.close().await;
    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    SqliteOutbox::open(&path).await.unwrap().close().await;
    let newer = schema::MIGRATIONS.len() as i64 + 1;
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    match SqliteOutbox::open(&path).await {
        Err(OutboxError::Store(why)) => assert!(why.contains("schema version"), "{why}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A database written by the first schema (text messages only) opens, migrates to
/// the current version keeping its messages, and takes media messages after.
/// Migration 3 drops the `(org, seq)` index.
#[tokio::test]
async fn a_version_1_database_migrates_and_keeps_its_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(schema::MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO messages (message_id, org, phone, body_kind, body_text, idempotency_key, \
             origin, status, attempts, created_at, expires_at) VALUES ('3EB0AAAAAAAAAAAAAAAAAA', \
             '2', '573001234567', 'text', 'hola', 'k1', 'queue', 'queued', 0, \
             '2027-01-15T08:00:00.000000000Z', '2027-01-16T08:00:00.000000000Z')",
            [],
        )
        .unwrap();
    }
    let store = SqliteOutbox::open(&path).await.unwrap();
    let old = store
        .get(&MessageId::parse("3EB0AAAAAAAAAAAAAAAAAA").unwrap())
        .await
        .unwrap()
        .expect("the version-1 message is still there");
    assert_eq!(old.body, MessageBody::Text("hola".into()));
    assert_eq!(
        (old.status, old.idempotency_key.as_deref()),
        (MessageStatus::Queued, Some("k1"))
    );

    let media = NewMessage {
        body: MessageBody::Media(crate::media::MediaBody {
            kind: crate::media::MediaKind::Document,
            mimetype: "application/pdf".into(),
            filename: Some("receta.pdf".into()),
            caption: None,
            sha256: "ab".repeat(32),
            size: 1234,
        }),
        ..message("2", Some("k2"))
    };
    let Enqueued::New(stored) = store.enqueue(media.clone()).await.unwrap() else {
        panic!("a new message")
    };
    assert_eq!(
        store.get(&media.message_id).await.unwrap(),
        Some(stored.clone())
    );
    // The same key with the same file is a duplicate; with another file, a conflict.
    assert_eq!(
        store
            .enqueue(NewMessage {
                message_id: MessageId::generate(),
                ..media.clone()
            })
            .await
            .unwrap(),
        Enqueued::Duplicate(stored)
    );
    let mut other_file = media.clone();
    other_file.message_id = MessageId::generate();
    if let MessageBody::Media(m) = &mut other_file.body {
        m.sha256 = "cd".repeat(32);
    }
    assert!(matches!(
        store.enqueue(other_file).await,
        Err(OutboxError::KeyReused(_))
    ));
    store.close().await;

    let conn = Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        !indexes.iter().any(|i| i == "messages_org_seq"),
        "migration 3 drops (org, seq): {indexes:?}"
    );
}

#[tokio::test]
async fn times_round_trip_to_the_nanosecond_and_years_past_9999_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteOutbox::open(dir.path().join("outbox.db"))
        .await
        .unwrap();
    let fine = NewMessage {
        created_at: DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap(),
        expires_at: DateTime::from_timestamp(1_800_000_001, 1).unwrap(),
        ..message("2", None)
    };
    let Enqueued::New(stored) = store.enqueue(fine.clone()).await.unwrap() else {
        panic!("a new message")
    };
    assert_eq!(store.get(&fine.message_id).await.unwrap(), Some(stored));

    let far = DateTime::from_timestamp(300_000_000_000, 0).unwrap(); // the year 11476
    let too_far = NewMessage {
        expires_at: far,
        ..message("2", None)
    };
    let id = too_far.message_id.clone();
    assert!(matches!(
        store.enqueue(too_far).await,
        Err(OutboxError::Store(_))
    ));
    assert_eq!(store.get(&id).await.unwrap(), None);
}

/// One batch, driven by hand: a write that fails is undone alone (a savepoint's
/// even after it wrote; a last-statement one by SQLite, its statement refused
/// whole), a panicking one in a savepoint too, and the rest of the batch commits
/// and sees each other's writes.
#[test]
fn a_failed_write_leaves_the_rest_of_its_batch_committed() {
    let dir = tempfile::tempdir().unwrap();
    let conn = schema::open_writer(&dir.path().join("outbox.db")).unwrap();
    let (a, b, undone) = (message("2", None), message("2", None), message("7", None));
    let taken_id = NewMessage {
        message_id: a.message_id.clone(),
        ..message("7", None)
    };
    let a_id = a.message_id.clone();
    let (jobs, answers): (Vec<_>, Vec<_>) = [
        writer::last_statement_job(move |c| queries::enqueue(c, a).map(|_| "a")),
        writer::last_statement_job(move |c| queries::enqueue(c, taken_id).map(|_| "taken id")),
        writer::job({
            let undone = undone.clone();
            move |c| {
                queries::enqueue(c, undone)?;
                Err(OutboxError::Store("refused after writing".into()))
            }
        }),
        writer::job(|_| -> Result<&str, OutboxError> { panic!("a bug in one write") }),
        writer::last_statement_job(move |c| queries::enqueue(c, b).map(|_| "b")),
        writer::last_statement_job(move |c| {
            match queries::update(c, &a_id, &Update::Sending { at: Utc::now() })? {
                Updated::Applied(_) => Ok("a sending"),
                other => panic!("{other:?}"),
            }
        }),
    ]
    .into_iter()
    .unzip();
    writer::commit_batch(&conn, jobs).answer(Ok(()));
    let answers: Vec<_> = answers.into_iter().map(|a| a.blocking_recv()).collect();

    assert_eq!(answers[0], Ok(Ok("a")));
    assert!(matches!(&answers[1], Ok(Err(OutboxError::Store(e))) if e.contains("UNIQUE")));
    assert!(matches!(&answers[2], Ok(Err(OutboxError::Store(_)))));
    assert!(
        answers[3].is_err(),
        "the panicking write's caller hears it was dropped"
    );
    assert_eq!(answers[4], Ok(Ok("b")));
    assert_eq!(answers[5], Ok(Ok("a sending")));
    let total: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(queries::get(&conn, &undone.message_id).unwrap(), None);
}

/// A write without a savepoint that panics (a bug) may have run its statement,
/// which cannot be undone alone: its whole batch is rolled back and every caller
/// in it hears so, so none whose caller heard of a failure stays stored.
#[test]
fn a_panicking_last_statement_write_fails_its_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let conn = schema::open_writer(&dir.path().join("outbox.db")).unwrap();
    let (a, b) = (message("2", None), message("7", None));
    let (jobs, answers): (Vec<_>, Vec<_>) = [
        writer::last_statement_job(move |c| queries::enqueue(c, a).map(|_| ())),
        writer::last_statement_job(move |c| {
            queries::enqueue(c, b)?;
            panic!("a bug after the statement")
        }),
    ]
    .into_iter()
    .unzip();
    writer::commit_batch(&conn, jobs).answer(Ok(()));
    let answers: Vec<_> = answers.into_iter().map(|a| a.blocking_recv()).collect();

    assert!(
        matches!(&answers[0], Ok(Err(OutboxError::Store(_)))),
        "{answers:?}"
    );
    assert!(
        answers[1].is_err(),
        "the panicking write's caller hears it was dropped"
    );
    let total: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, 0);
    assert!(conn.is_autocommit(), "no transaction is left open");
}

/// Each query reaches its rows through an index: no full scan of `messages`
/// (except the unfiltered list, which walks the table backwards and stops at its
/// limit) and no sort of the rows it found.
#[test]
fn queries_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let conn = schema::open_writer(&dir.path().join("outbox.db")).unwrap();
    for (name, sql) in queries::all_reads_and_writes() {
        let mut plan = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![Value::Null; plan.parameter_count()];
        let steps: Vec<String> = plan
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let full_scan = steps.iter().any(|s| s.starts_with("SCAN messages"));
        let sorts = steps.iter().any(|s| s.contains("TEMP B-TREE"));
        assert!(!sorts, "{name} sorts: {steps:?}");
        assert_eq!(full_scan, name == "list all", "{name}: {steps:?}");
    }
}

// ---------------------------------------------------------------- kill -9

/// Set in the child process: the database it fills.
const CHILD_DB: &str = "WA_OUTBOX_KILL_CHILD_DB";
const CHILD_TEST: &str = "outbox::sqlite::tests::enqueue_and_report";
const ACCEPTED: &str = "accepted ";

/// Runs this test binary again as a child that enqueues as fast as it can and
/// prints each id once `enqueue` returned, kills it with SIGKILL at a random point,
/// and checks that every id it printed is in the reopened database and the
/// database is sound. Several rounds on one database: each reopens a crashed one.
#[test]
fn accepted_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("outbox.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut accepted_so_far = 0;
    for round in 0..4 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                CHILD_TEST,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let kill_after = rand::rng().random_range(1..=300);
        let mut ids = Vec::new();
        let mut line = Vec::new();
        // Complete lines only: the child may die halfway through printing one.
        let mut read_line = |ids: &mut Vec<MessageId>| -> bool {
            line.clear();
            out.read_until(b'\n', &mut line).unwrap();
            if line.last() != Some(&b'\n') {
                return false;
            }
            if let Some(id) = std::str::from_utf8(&line)
                .unwrap()
                .trim_end()
                .strip_prefix(ACCEPTED)
            {
                ids.push(MessageId::parse(id).unwrap());
            }
            true
        };
        while ids.len() < kill_after {
            assert!(
                read_line(&mut ids),
                "the child stopped by itself: {:?}",
                child.wait()
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        while read_line(&mut ids) {}

        runtime.block_on(async {
            let store = SqliteOutbox::open(&db).await.unwrap();
            for id in &ids {
                let stored = store.get(id).await.unwrap();
                assert!(stored.is_some(), "round {round}: accepted {id} is gone");
            }
            let all = store.list(&crate::outbox::ListFilter {
                org: None,
                status: None,
                limit: usize::MAX,
            });
            let total = all.await.unwrap().len();
            assert!(total >= accepted_so_far + ids.len(), "round {round}");
            accepted_so_far = total;
            store.close().await;
        });
        let conn = Connection::open(&db).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
    }
}

/// The child of [`accepted_messages_survive_kill_9`]: 8 producers enqueue until
/// killed, each printing an id once its `enqueue` returned. Run alone it fills a
/// database of its own for a while and checks every message is there.
#[test]
#[ignore = "the child process of accepted_messages_survive_kill_9"]
fn enqueue_and_report() {
    let own_dir;
    let (db, per_producer) = match std::env::var_os(CHILD_DB) {
        Some(db) => (std::path::PathBuf::from(db), usize::MAX),
        None => {
            own_dir = tempfile::tempdir().unwrap();
            (own_dir.path().join("outbox.db"), 50)
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = std::sync::Arc::new(SqliteOutbox::open(&db).await.unwrap());
        let producers: Vec<_> = (0..8)
            .map(|p| {
                let store = std::sync::Arc::clone(&store);
                tokio::spawn(async move {
                    for _ in 0..per_producer {
                        let new = message(&format!("org-{p}"), None);
                        let id = new.message_id.clone();
                        assert!(matches!(store.enqueue(new).await, Ok(Enqueued::New(_))));
                        println!("{ACCEPTED}{id}");
                    }
                })
            })
            .collect();
        for p in producers {
            p.await.unwrap();
        }
        let counts = store.counts().await.unwrap();
        let queued: u64 = counts
            .iter()
            .filter(|c| c.1 == MessageStatus::Queued)
            .map(|c| c.2)
            .sum();
        assert_eq!(queued, 8 * per_producer as u64);
    });
}

/// A sync thread whose fsyncs the test runs: each fsync says it began on the
/// returned receiver, then waits for the test to send what it ends with.
fn sync_thread_run_by_the_test(
    committed: std::sync::mpsc::Receiver<writer::Committed>,
    held: std::sync::Arc<writer::SyncQueue>,
) -> (
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::SyncSender<std::io::Result<()>>,
    std::thread::JoinHandle<()>,
) {
    let (began, fsync_began) = std::sync::mpsc::channel::<()>();
    let (go, fsync_goes) = std::sync::mpsc::sync_channel::<std::io::Result<()>>(0);
    let syncer = std::thread::spawn(move || {
        writer::sync_loop(committed, &held, || {
            began.send(()).unwrap();
            fsync_goes.recv().unwrap()
        })
    });
    (fsync_began, go, syncer)
}

/// The sync thread answers a committed batch only once an fsync begun after the
/// commit has returned, answers every batch committed before that fsync with it,
/// and passes an fsync's failure to each of their callers.
#[test]
fn a_write_is_answered_only_after_an_fsync_that_follows_it() {
    use std::sync::mpsc::channel;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let conn = schema::open_writer(&dir.path().join("outbox.db")).unwrap();
    let commit = |conn: &rusqlite::Connection, org: &str| {
        let new = message(org, None);
        let (job, answer) = writer::job(move |c| queries::enqueue(c, new).map(|_| ()));
        (writer::commit_batch(conn, [job]), answer)
    };
    let (to_sync, committed) = channel();
    let syncing = std::sync::Arc::new(writer::SyncQueue::default());

    // Both batches are handed over before the sync thread starts, so its first
    // round finds both (started first, it could begin a round with one alone).
    let (first, mut first_answer) = commit(&conn, "2");
    let (second, mut second_answer) = commit(&conn, "3");
    writer::hand_over(first, &to_sync, &syncing);
    writer::hand_over(second, &to_sync, &syncing);
    // Each fsync waits for the test's go, then reports what the test says.
    let (fsync_began, go, syncer) = sync_thread_run_by_the_test(committed, syncing.clone());
    fsync_began.recv().unwrap();
    // Committed and visible to SQLite, but not yet on disk: nobody has heard.
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 2);
    assert!(first_answer.try_recv().is_err());
    assert!(second_answer.try_recv().is_err());
    go.send(Ok(())).unwrap();
    // Both batches were committed before the fsync began: one fsync covers both.
    assert_eq!(first_answer.blocking_recv(), Ok(Ok(())));
    assert_eq!(second_answer.blocking_recv(), Ok(Ok(())));

    let (third, third_answer) = commit(&conn, "4");
    writer::hand_over(third, &to_sync, &syncing);
    fsync_began.recv().unwrap();
    go.send(Err(std::io::Error::other("the disk is gone")))
        .unwrap();
    assert!(matches!(
        third_answer.blocking_recv(),
        Ok(Err(OutboxError::Store(e))) if e.contains("could not be made durable")
    ));
    assert!(
        fsync_began.recv_timeout(Duration::ZERO).is_err(),
        "no fsync without a batch"
    );
    drop(to_sync);
    syncer.join().unwrap();
}

/// While the sync thread holds a batch, the writes that arrive run but wait in
/// one open transaction, unseen by readers; it commits once the sync thread has
/// nothing in hand, and one fsync covers them all. A write to a quiet writer is
/// committed at once.
#[test]
fn writes_gather_while_an_fsync_runs() {
    use std::sync::mpsc::channel;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.db");
    let conn = schema::open_writer(&path).unwrap();
    let reader = schema::open_reader(&path).unwrap();
    let stored = || -> i64 {
        reader
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .unwrap()
    };
    let (to_sync, committed) = channel();
    let syncing = std::sync::Arc::new(writer::SyncQueue::default());
    let (fsync_began, go, syncer) = sync_thread_run_by_the_test(committed, syncing.clone());
    let (writes, jobs) = tokio::sync::mpsc::unbounded_channel();
    let writer = std::thread::spawn(move || writer::run(conn, jobs, to_sync, syncing));
    // Each write says when it has run on the writer thread.
    let (ran, has_run) = channel::<&str>();
    let write = |org: &'static str| {
        let (new, ran) = (message(org, None), ran.clone());
        let (job, answer) = writer::job(move |c| {
            queries::enqueue(c, new)?;
            ran.send(org).unwrap();
            Ok(())
        });
        writes.send(job).unwrap();
        answer
    };

    let first = write("2");
    assert_eq!(has_run.recv().unwrap(), "2");
    fsync_began.recv().unwrap();
    assert_eq!(
        stored(),
        1,
        "a write to a quiet writer is committed at once"
    );
    let (second, third) = (write("3"), write("4"));
    assert_eq!(has_run.recv().unwrap(), "3");
    assert_eq!(has_run.recv().unwrap(), "4");
    assert_eq!(stored(), 1, "run, but not committed while the fsync runs");

    go.send(Ok(())).unwrap();
    assert_eq!(first.blocking_recv(), Ok(Ok(())));
    fsync_began.recv().unwrap();
    assert_eq!(
        stored(),
        3,
        "committed once the sync thread had nothing in hand"
    );
    let (mut second, mut third) = (second, third);
    assert!(second.try_recv().is_err() && third.try_recv().is_err());
    go.send(Ok(())).unwrap();
    assert_eq!(second.blocking_recv(), Ok(Ok(())));
    assert_eq!(third.blocking_recv(), Ok(Ok(())));

    // Nothing is left to write: the writer ends without another batch, and the
    // sync thread ends without another fsync (one would find `go` gone and panic).
    drop(writes);
    drop(go);
    writer.join().unwrap();
    assert!(syncer.join().is_ok(), "one fsync covered both");
    assert!(fsync_began.try_recv().is_err());
}
