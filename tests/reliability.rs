//! What a hostile environment and hostile clients showed, over the real binary: a
//! corrupt store is healed at once (not "reconnecting"), a store that cannot be
//! used says why, racing requests answer what happened, no patient's number
//! reaches the log, and a send hanging in the connection holds up nobody.

mod common;

use std::time::{Duration, Instant};

use common::{API_KEY, Daemon};
use serde_json::{Value, json};

/// Polls `check` until it gives a value, at most 20 s.
async fn eventually<T>(
    what: &str,
    daemon: &Daemon,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}\n{}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn backups_of(daemon: &Daemon, org: &str) -> Vec<String> {
    let dir = daemon.sessions_dir().join("_backups").join(org);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A `whatsapp.db` that is not a database, on the real connection with WhatsApp
/// unreachable: backed up as `store_corrupt` within seconds and paired anew, never
/// shown as `reconnecting` ("wait, do not clean") meanwhile.
#[tokio::test]
async fn a_corrupt_real_store_is_backed_up_at_once_and_never_reads_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let org_dir = dir.path().join("auth_sessions").join("7");
    std::fs::create_dir_all(&org_dir).unwrap();
    std::fs::write(
        org_dir.join("whatsapp.db"),
        b"this is not a database at all",
    )
    .unwrap();
    let daemon = Daemon::start_real_in(dir, "ws://127.0.0.1:1/ws/chat", "").await;

    let mut seen = Vec::new();
    let backup = eventually("a store_corrupt backup", &daemon, async || {
        let (_, status) = daemon.get("/api/status/7").await;
        seen.push(status["status"].as_str().unwrap_or_default().to_owned());
        backups_of(&daemon, "7")
            .into_iter()
            .find(|name| name.ends_with("_store_corrupt"))
    })
    .await;
    let kept = daemon
        .sessions_dir()
        .join("_backups/7")
        .join(&backup)
        .join("whatsapp.db");
    assert_eq!(
        std::fs::read(kept).unwrap(),
        b"this is not a database at all",
        "the backup holds the store as it was"
    );
    // Afterwards it pairs anew (and, offline, keeps trying as `connecting`).
    let (_, status) = daemon.get("/api/status/7").await;
    seen.push(status["status"].as_str().unwrap_or_default().to_owned());
    assert!(!seen.iter().any(|s| s == "reconnecting"), "{seen:?}");
    assert!(
        daemon.logs().contains("store_corrupt"),
        "the heal is logged with its reason"
    );
}

/// A sessions directory the daemon may not change (immutable): a new org's start
/// says so, and keeps retrying, instead of "automatic cleanup failed".
#[tokio::test]
async fn a_new_org_in_an_unwritable_directory_says_why() {
    let daemon = Daemon::start().await;
    let sessions = daemon.sessions_dir();
    let Some(_unlock) = Unwritable::make(&sessions) else {
        eprintln!("skipped: this filesystem cannot make a directory unwritable to root");
        return;
    };

    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": "new" }))
        .await;
    assert_eq!(code, 200, "{body}");
    let status = eventually("a reason naming the cause", &daemon, async || {
        let (_, status) = daemon.get("/api/status/new").await;
        let reason = status["reason"].as_str().unwrap_or_default().to_lowercase();
        (reason.contains("not permitted") || reason.contains("permission denied")).then_some(status)
    })
    .await;
    assert_eq!(status["status"], "connecting", "{status}");
    assert!(
        status["reason"].as_str().unwrap().contains("retrying in"),
        "{status}"
    );
    assert!(!daemon.logs().contains("automatic cleanup failed"));
}

/// Clean, start and send raced on one org answer what really happened: never
/// "the supervisor is unavailable" while it is neither stopping nor overloaded.
#[tokio::test]
async fn racing_clean_start_and_send_answer_what_happened() {
    // A send waits 2 s at most for a session that is not connected.
    let daemon = Daemon::start_with("[send]\nwait_seconds = 2\n").await;
    daemon.ensure_connected("r", "573001234567").await;
    let mut tasks = Vec::new();
    for i in 0..60 {
        let http = daemon.http.clone();
        let base = daemon.url("");
        tasks.push(tokio::spawn(async move {
            let (path, body) = match i % 3 {
                0 => (
                    "/api/force-clean-session",
                    json!({ "organization_id": "r" }),
                ),
                1 => ("/api/start-session", json!({ "organization_id": "r" })),
                _ => (
                    "/api/send-message",
                    json!({ "organization_id": "r", "phone": "3009998877", "message": "hola" }),
                ),
            };
            let r = http
                .post(format!("{base}{path}"))
                .header("X-API-Key", API_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (path, code, body)
        }));
    }
    for task in tasks {
        let (path, code, body) = task.await.unwrap();
        assert_ne!(code, 503, "{path}: {body}");
        assert!(
            code < 500 || path == "/api/send-message",
            "{path}: {code} {body}"
        );
        assert!(
            body["error"].is_string() || code == 200,
            "{path}: {code} {body}"
        );
    }
    assert!(!daemon.logs().contains("panicked"), "{}", daemon.logs());
}

/// A walk with Bad MACs from a known patient's number: the number appears in no
/// log line (a keyed token stands in for it, the same each time).
#[tokio::test]
async fn a_patients_number_never_reaches_the_log() {
    let daemon = Daemon::start().await;
    daemon.ensure_connected("p", "573004445566").await;
    for _ in 0..4 {
        let (code, body) = daemon
            .post(
                "/sim/p/inject",
                json!({ "fault": "bad_mac", "sender": "+57 300 111 2233" }),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    eventually("the four warnings", &daemon, async || {
        (daemon
            .logs()
            .matches("message could not be decrypted")
            .count()
            == 4)
            .then_some(())
    })
    .await;
    let logs = daemon.logs();
    for number in ["573001112233", "3001112233", "573004445566"] {
        assert!(!logs.contains(number), "{number} in the log:\n{logs}");
    }
    let tokens: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("message could not be decrypted"))
        .filter_map(|l| l.split("\"sender\":\"").nth(1))
        .filter_map(|rest| rest.split('@').next())
        .collect();
    assert_eq!(tokens.len(), 4);
    assert!(
        tokens
            .iter()
            .all(|t| t.starts_with("pn#") && *t == tokens[0]),
        "one stable token per number: {tokens:?}"
    );
}

/// A send that never returns in the connection, for longer than the caller may
/// wait (the zombie check comes after the answer is due): the caller hears a JSON
/// error before the request timeout, the message is `failed` and never delivered
/// afterwards, and the daemon still stops within its bound.
#[tokio::test]
async fn a_hanging_send_answers_in_time_and_stops_nothing() {
    let mut daemon = Daemon::start_with_server(
        "request_timeout_seconds = 6\n",
        "[send]\nwait_seconds = 2\n[outbox]\nmin_gap_ms = 0\nack_timeout_seconds = 30\n",
    )
    .await;
    daemon.ensure_connected("h", "573004445566").await;
    let (code, _) = daemon
        .post("/sim/h/inject", json!({ "fault": "send_hangs" }))
        .await;
    assert_eq!(code, 200);
    let began = Instant::now();
    let (code, body) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": "h", "phone": "3009998877", "message": "hola" }),
        )
        .await;
    let took = began.elapsed();
    assert!(code >= 400, "{code} {body}");
    assert!(body["error"].is_string(), "{body}");
    // The send's own answer (due a second before the request timeout), not the
    // edge's 504 at the timeout: no wall-clock bound, which a loaded machine
    // could stretch.
    assert_ne!(code, 504, "the request timed out after {took:?}: {body}");

    // Its record says so, and nothing went out.
    let (_, listed) = daemon.get("/api/messages?organization_id=h").await;
    let message = &listed["messages"][0];
    assert_eq!(message["status"], "failed", "{message}");
    let (_, sent) = daemon.get("/sim/h/sent").await;
    assert_eq!(sent["messages"].as_array().unwrap().len(), 0, "{sent}");

    let began = Instant::now();
    let status = daemon.terminate();
    assert!(status.success(), "{}", daemon.logs());
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
}

/// Makes a directory unwritable for as long as it lives: immutable where the
/// filesystem supports it (which binds root too), else read-only permissions
/// (which bind everyone but root). `None` when neither can hold.
struct Unwritable(std::path::PathBuf, bool);

impl Unwritable {
    fn make(dir: &std::path::Path) -> Option<Self> {
        let chattr = |flag: &str| {
            std::process::Command::new("chattr")
                .arg(flag)
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if chattr("+i") {
            return Some(Self(dir.to_owned(), true));
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).ok()?;
        let probe = dir.join(".probe");
        if std::fs::write(&probe, b"").is_ok() {
            // Root ignores permissions: nothing here can make it fail.
            let _ = std::fs::remove_file(&probe);
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
            return None;
        }
        Some(Self(dir.to_owned(), false))
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        if self.1 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.0)
                .status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        }
    }
}
