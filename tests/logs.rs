//! The real binary's log lines (CONTRACT §8), as an operator reads them from the
//! journal: one shop's story by its `org_id`, `ERROR` only when someone must act,
//! and no patient's number. The daemon runs the real whatsapp-rust connection
//! against the loopback WhatsApp Web server, at `RUST_LOG=info` so that the
//! library's own lines are in the log too.

mod common;
mod loopback_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Daemon;
use loopback_support::*;
use serde_json::{Value, json};
use wa_loopback::{Fault, Loopback};

/// Every line the daemon wrote, parsed; a line that is not JSON fails the test.
fn json_lines(daemon: &Daemon) -> Vec<Value> {
    daemon
        .logs()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Targets of the WhatsApp stack and of our connection on it: their lines are
/// always about one org's connection.
const CONNECTION_TARGETS: &[&str] = &[
    "whatsapp_rust",
    "wacore",
    "waproto",
    "wa_actors::connection::whatsapp",
];

/// Whether a line is about an org's work: it comes from the WhatsApp stack or our
/// connection, sits in a span that names an org, or is a session's status change.
fn about_an_org(line: &Value) -> bool {
    let target = line["target"].as_str().unwrap_or_default();
    CONNECTION_TARGETS.iter().any(|t| target.starts_with(t))
        || line["span"].get("org_id").is_some()
        || line["fields"]["message"] == "session status changed"
}

fn org_of(line: &Value) -> Option<&str> {
    line["org_id"].as_str()
}

/// Pair two shops, drop one's socket, send, and heal it from three undecryptable
/// messages of a known contact: every line about an org's work names that org,
/// the same at the top level, in `fields` and in its span; no line carries
/// `log.*` bookkeeping; no line carries the contact's or the shop's number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_shops_story_is_all_in_its_org_id_and_names_no_number() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    pair(&daemon, &server, "optica-sol", PHONE).await;
    pair(&daemon, &server, "optica-luna", OTHER_PHONE).await;

    server.fault(PHONE, Fault::DropSocket).unwrap();
    daemon.wait_status("optica-sol", "reconnecting").await;
    daemon.wait_status("optica-sol", "connected").await;
    let id = send(&daemon, "optica-sol", "3009998877").await;
    recorded(&server, &id).await;
    three_undecryptable_messages(&server, PHONE);
    daemon.wait_status("optica-sol", "qr_ready").await;

    let lines = json_lines(&daemon);
    let mut per_org: std::collections::BTreeMap<String, usize> = Default::default();
    for line in lines.iter().filter(|l| about_an_org(l)) {
        let org = org_of(line).unwrap_or_else(|| panic!("no org_id: {line}"));
        assert_eq!(line["fields"]["org_id"], org, "{line}");
        if let Some(span_org) = line["span"].get("org_id") {
            assert_eq!(span_org, org, "{line}");
        }
        if line["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("whatsapp_rust"))
        {
            *per_org.entry(org.to_owned()).or_default() += 1;
        }
    }
    // The library spoke for both shops, and its lines were told apart.
    assert!(
        per_org.get("optica-sol").is_some_and(|n| *n > 10),
        "{per_org:?}"
    );
    assert!(
        per_org.get("optica-luna").is_some_and(|n| *n > 5),
        "{per_org:?}"
    );
    assert_eq!(per_org.len(), 2, "{per_org:?}");

    // The library's own Bad MAC lines are among sol's.
    assert!(
        lines.iter().any(|l| org_of(l) == Some("optica-sol")
            && l["level"] == "WARN"
            && l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("whatsapp_rust::message"))),
        "no library warning about the undecryptable messages"
    );
    for line in &lines {
        let fields = line["fields"].as_object().unwrap();
        assert!(fields.keys().all(|k| !k.starts_with("log.")), "{line}");
    }
    let text = daemon.logs();
    assert!(!text.contains("log.file") && !text.contains("log.line"));
    assert!(
        !text.contains(CUSTOMER),
        "the contact's number is in the log"
    );
    assert!(!text.contains(PHONE), "the shop's number is in the log");
    // Yet the operator can tell the senders of the Bad MACs apart.
    let senders: Vec<&str> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "message could not be decrypted")
        .filter_map(|l| l["fields"]["sender"].as_str())
        .collect();
    assert_eq!(senders.len(), 3, "{senders:?}");
    assert!(
        senders
            .iter()
            .all(|s| s.starts_with("pn#") && *s == senders[0])
    );
}

/// An org whose phone cannot be reached (a closed port) keeps trying for 30 s
/// without a single `ERROR`: being offline is expected trouble.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_session_writes_no_error_line() {
    let daemon = Daemon::start_real("ws://127.0.0.1:1/ws/chat", "").await;
    let (code, body) = daemon
        .post(
            "/api/start-session",
            json!({ "organization_id": "optica-sol" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let errors: Vec<Value> = json_lines(&daemon)
            .into_iter()
            .filter(|l| l["level"] == "ERROR")
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lines = json_lines(&daemon);
    let failed_connects = lines
        .iter()
        .filter(|l| {
            org_of(l) == Some("optica-sol")
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("Failed to connect"))
        })
        .inspect(|l| assert_eq!(l["level"], "WARN", "{l}"))
        .count();
    assert!(failed_connects >= 3, "it kept trying: {failed_connects}");
    assert!(lines.iter().all(|l| l["level"] != "ERROR"));
}

/// Undoes `chattr +i` when dropped, so that the temporary directory can go.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Self {
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("chattr runs");
        assert!(status.success(), "chattr +i {}", path.display());
        Self(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

/// A paired org whose store cannot be written (immutable: the tests run as root,
/// whom permission bits do not stop) gets an `ERROR` line naming the org and why,
/// when the restarted daemon resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_store_is_an_error_line() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    pair(&daemon, &server, "optica-sol", PHONE).await;
    let mut guard = None;
    let daemon = daemon
        .restart_with(|sessions| {
            guard = Some(Immutable::set(
                &sessions.join("optica-sol").join("whatsapp.db"),
            ));
        })
        .await;
    // Dropped before the daemon, whose temporary directory holds the file.
    let _guard = guard;

    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let found = json_lines(&daemon)
            .into_iter()
            .find(|l| l["level"] == "ERROR" && org_of(l) == Some("optica-sol"));
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no ERROR line:\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        line["fields"]["message"], "the session store cannot be used",
        "{line}"
    );
    assert_eq!(line["fields"]["fault"], "PermissionDenied", "{line}");
    assert_eq!(
        line["target"], "wa_actors::connection::whatsapp::connector",
        "{line}"
    );
}

/// Lines are written by a thread of their own, off the requests' path: none is
/// lost when the daemon stops, and its last line is still "stopped".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_written_before_the_daemon_exits() {
    const ASKED: usize = 300;
    let mut daemon = Daemon::start().await;
    for i in 0..ASKED {
        // An invalid org id: a 400, which is logged at info.
        let (code, _) = daemon.get(&format!("/api/status/org.{i}")).await;
        assert_eq!(code, 400);
    }
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
    let lines = json_lines(&daemon);
    let answered = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request answered" && l["fields"]["status"] == 400)
        .count();
    assert_eq!(answered, ASKED, "one line per refused request");
    assert_eq!(lines.last().unwrap()["fields"]["message"], "stopped");
}
