//! The store's faults in their two classes (corrupt, unavailable), provoked on
//! real files: garbage, damaged pages, a missing sessions directory, and no file
//! descriptors left.

use std::time::{Duration, Instant};

use super::super::*;
use super::offline::{offline_connector, request};
use crate::connection::{ConnectionError, Connector as _, StartMode};

/// A paired store as whatsapp-rust leaves it, as far as `has_credentials` reads it.
fn paired_store(dir: &std::path::Path) {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection as _, SqliteConnection};
    let path = dir.join(STORE_FILE);
    let mut db = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    db.batch_execute(
        "CREATE TABLE device (id INTEGER PRIMARY KEY, pn TEXT NOT NULL, account BLOB);
         INSERT INTO device (id, pn, account) VALUES (1, '573001234567@s.whatsapp.net', x'0a00');
         CREATE TABLE filler (id INTEGER PRIMARY KEY, data BLOB);
         CREATE INDEX filler_data ON filler (data);",
    )
    .unwrap();
    for i in 0..200 {
        db.batch_execute(&format!(
            "INSERT INTO filler (id, data) VALUES ({i}, randomblob(200));"
        ))
        .unwrap();
    }
}

/// Bytes that SQLite does not take for a database: the class is corrupt, from
/// `has_credentials` and from a connect alike, and at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_store_is_corrupt() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join(STORE_FILE),
        b"this was never an SQLite database, whatever its name says".repeat(100),
    )
    .unwrap();
    let connector = offline_connector();
    let err = connector.has_credentials(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, ConnectionError::StoreCorrupt(detail) if detail.contains("not a database")),
        "{err:?}"
    );

    let started = Instant::now();
    let opened = connector.open(request(tmp.path(), StartMode::Resume)).await;
    let Err(err) = opened else {
        panic!("a garbage store opened")
    };
    assert!(matches!(err, ConnectionError::StoreCorrupt(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "reported at once, not after the pool's retries: {:?}",
        started.elapsed()
    );
}

/// A real database with damaged pages fails SQLite's quick check: corrupt, even
/// though its first page (and so the `device` table) still reads.
#[test]
fn damaged_pages_fail_the_quick_check() {
    use std::io::{Seek, SeekFrom, Write};
    let tmp = tempfile::tempdir().unwrap();
    paired_store(tmp.path());
    let connector = WhatsAppConnector::default();
    assert_eq!(connector.has_credentials(tmp.path()), Ok(true));

    let path = tmp.path().join(STORE_FILE);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 8 * 4096, "{len}");
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Pages 3 to 6: the tables' and the index's b-tree pages.
    file.seek(SeekFrom::Start(2 * 4096)).unwrap();
    file.write_all(&[0xA5; 4 * 4096]).unwrap();
    drop(file);

    let err = connector.has_credentials(tmp.path()).unwrap_err();
    assert!(matches!(err, ConnectionError::StoreCorrupt(_)), "{err:?}");
}

/// The org directory missing is "nothing stored" for a new org; the sessions
/// directory above it missing too (a volume not mounted) is not an answer.
#[test]
fn a_missing_sessions_directory_is_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let connector = WhatsAppConnector::default();
    assert_eq!(
        connector.has_credentials(&tmp.path().join("new-org")),
        Ok(false)
    );
    let err = connector
        .has_credentials(&tmp.path().join("unmounted").join("org"))
        .unwrap_err();
    assert!(
        matches!(err, ConnectionError::StoreUnavailable(_)),
        "{err:?}"
    );
}

/// The full test name, for running this test alone in a child process.
const NO_DESCRIPTORS_TEST: &str =
    "connection::whatsapp::tests::store::no_descriptors_left_is_unavailable";
/// Set in the child: the org directory to look at once descriptors are gone.
const NO_DESCRIPTORS_DIR: &str = "WA_TEST_NO_DESCRIPTORS_DIR";

/// With no file descriptors left (EMFILE), a paired store is neither "no
/// credentials" nor corrupt: it is unavailable, from `has_credentials` and from a
/// connect. Running as root, permission bits would not stop a read, so the
/// failure is provoked this way: a child process (this test again, alone) lowers
/// its RLIMIT_NOFILE and opens files until the limit is reached.
#[test]
fn no_descriptors_left_is_unavailable() {
    if let Some(dir) = std::env::var_os(NO_DESCRIPTORS_DIR) {
        return without_descriptors(std::path::Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    paired_store(tmp.path());
    assert_eq!(
        WhatsAppConnector::default().has_credentials(tmp.path()),
        Ok(true)
    );
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            NO_DESCRIPTORS_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NO_DESCRIPTORS_DIR, tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test: {stdout}"
    );
    assert!(stdout.contains("EMFILE reached"), "{stdout}");
    // Descriptors back: the store was never touched.
    assert_eq!(
        WhatsAppConnector::default().has_credentials(tmp.path()),
        Ok(true)
    );
}

/// The child's side: exhaust the descriptors, then ask.
fn without_descriptors(dir: &std::path::Path) {
    // The runtime's own descriptors (epoll, eventfd) are taken before the limit.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connector = offline_connector();
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(256);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => held.push(file),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
    }
    println!("EMFILE reached after {} files", held.len());

    let err = connector.has_credentials(dir).unwrap_err();
    assert!(
        matches!(&err, ConnectionError::StoreUnavailable(detail) if detail.contains("Too many open files")),
        "{err:?}"
    );
    let opened = runtime.block_on(connector.open(request(dir, StartMode::Resume)));
    let Err(err) = opened else {
        panic!("opened without descriptors")
    };
    assert!(
        matches!(err, ConnectionError::StoreUnavailable(_)),
        "{err:?}"
    );
    drop(held);
}
