//! The daemon under a stand-in for systemd: a unix datagram socket as
//! `NOTIFY_SOCKET` receives what `Type=notify` and `WatchdogSec` rely on.

mod common;

use std::time::Duration;

use common::Daemon;
use serde_json::json;
use tokio::net::UnixDatagram;
use tokio::time::{Instant, timeout};

/// A notify socket and everything received on it.
struct Manager {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
    /// Every line received so far.
    log: Vec<String>,
}

impl Manager {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self {
            socket,
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
            log: Vec::new(),
        }
    }

    /// The next datagram's lines, or `None` after `wait` of silence.
    async fn next(&mut self, wait: Duration) -> Option<Vec<String>> {
        let mut buf = vec![0u8; 4096];
        let n = timeout(wait, self.socket.recv(&mut buf))
            .await
            .ok()?
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        self.log.extend(lines.iter().cloned());
        Some(lines)
    }

    /// Reads until a datagram holds `line`; returns everything read before it.
    async fn until(&mut self, line: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let got = self
                .next(Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("no {line:?}; saw {seen:?}"));
            let found = got.iter().any(|l| l == line);
            seen.extend(got);
            if found {
                return seen;
            }
        }
    }

    /// Counts `WATCHDOG=1` received during `span`.
    async fn watchdog_pings_during(&mut self, span: Duration) -> usize {
        let end = Instant::now() + span;
        let mut pings = 0;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.next(left).await {
                Some(lines) => pings += lines.iter().filter(|l| *l == "WATCHDOG=1").count(),
                None => break,
            }
        }
        pings
    }
}

#[tokio::test]
async fn ready_watchdog_status_and_stopping() {
    let mut manager = Manager::new();
    // A 400 ms watchdog: the daemon pings every 200 ms.
    let mut daemon = Daemon::start_with_env(
        "",
        &[
            ("NOTIFY_SOCKET", &manager.path),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    manager.until("READY=1").await;
    let seen = manager.until("WATCHDOG=1").await;
    assert!(
        !seen.iter().any(|l| l == "STOPPING=1"),
        "not stopping yet: {seen:?}"
    );
    let pings = manager.watchdog_pings_during(Duration::from_secs(1)).await;
    assert!(pings >= 3, "repeated WATCHDOG=1, got {pings} in 1 s");

    daemon
        .post("/api/start-session", json!({ "organization_id": "9" }))
        .await;
    manager.until("STATUS=1 sessions: 1 qr_ready").await;
    assert!(
        manager.log.iter().any(|l| l == "STATUS=0 sessions"),
        "{:?}",
        manager.log
    );

    let status = daemon.terminate();
    manager.until("STOPPING=1").await;
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn a_wedged_supervisor_stops_the_watchdog_pings() {
    let mut manager = Manager::new();
    let daemon = Daemon::start_with_env(
        "",
        &[
            ("NOTIFY_SOCKET", &manager.path),
            ("WATCHDOG_USEC", "400000"),
        ],
    )
    .await;
    manager.until("WATCHDOG=1").await;
    let (code, body) = daemon.post("/sim/stall", json!({ "seconds": 3 })).await;
    assert_eq!(code, 200, "{body}");
    // A ping already in flight may still land; after that, silence.
    manager
        .watchdog_pings_during(Duration::from_millis(500))
        .await;
    let during = manager
        .watchdog_pings_during(Duration::from_millis(1500))
        .await;
    assert_eq!(during, 0, "no WATCHDOG=1 while the supervisor is wedged");
    // Once it answers again, the pings come back.
    manager.until("WATCHDOG=1").await;
}

#[tokio::test]
async fn a_second_daemon_on_the_same_directory_is_refused() {
    let first = Daemon::start().await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
        .args(["serve", "--sim", "--config"])
        .arg(first.config_path())
        .env("WHATSAPP_SERVER_API_KEY", common::API_KEY)
        // Any free port: the directory's lock is taken before the port is bound.
        .env("PORT", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let pid = first.child.id().to_string();
    assert!(text.contains(&pid), "names the holder's pid {pid}: {text}");
    assert!(
        text.contains(&first.sessions_dir().display().to_string()),
        "names the directory: {text}"
    );
    // After the first exits, a new one starts on the same directory.
    first.restart().await;
}
