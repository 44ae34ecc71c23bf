//! The operator's commands against the real daemon, as an operator types them.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{API_KEY, Daemon};
use serde_json::json;
use tokio::io::AsyncReadExt;

fn cli(daemon: &Daemon, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
        .args(args)
        .arg("--config")
        .arg(daemon.operator_config_path())
        .env("WHATSAPP_SERVER_API_KEY", key)
        .env_remove("PORT")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn an_operator_pairs_sends_and_cleans_from_the_shell() {
    let daemon = Daemon::start().await;
    let out = stdout(&cli(&daemon, API_KEY, &["status", "7"]));
    assert!(out.contains("organization 7: not_started"), "{out}");

    let out = stdout(&cli(&daemon, API_KEY, &["start", "7"]));
    assert!(
        out.contains("status connecting") || out.contains("status qr_ready"),
        "{out}"
    );
    daemon.wait_status("7", "qr_ready").await;

    // `qr` draws the code and waits; the phone scans; `qr` reports and exits.
    let mut qr = tokio::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
        .args(["qr", "7", "--config"])
        .arg(daemon.operator_config_path())
        .env("WHATSAPP_SERVER_API_KEY", API_KEY)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut drawn = String::new();
    let mut pipe = qr.stdout.take().unwrap();
    let mut buf = [0u8; 4096];
    while !drawn.contains("Link a device") {
        let n = tokio::time::timeout(Duration::from_secs(20), pipe.read(&mut buf))
            .await
            .expect("the QR is drawn")
            .unwrap();
        assert!(n > 0, "qr exited early: {drawn}");
        drawn.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        drawn.contains('▀') || drawn.contains('▄'),
        "half blocks: {drawn}"
    );
    daemon
        .post("/sim/7/scan", json!({ "phone": "573001234567" }))
        .await;
    let status = tokio::time::timeout(Duration::from_secs(20), qr.wait())
        .await
        .expect("qr exits once connected")
        .unwrap();
    pipe.read_to_string(&mut drawn).await.unwrap();
    assert!(status.success());
    assert!(drawn.contains("connected as 573001234567"), "{drawn}");

    let out = stdout(&cli(
        &daemon,
        API_KEY,
        &["send", "7", "300 111 2233", "Su cita es mañana"],
    ));
    assert!(out.contains("sent to 573001112233@s.whatsapp.net"), "{out}");
    let (_, sent) = daemon.get("/sim/7/sent").await;
    assert_eq!(sent["messages"][0]["text"], "Su cita es mañana");

    // A file goes through the outbox: queued at once, sent as a document.
    let pdf = daemon.dir.path().join("receta.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\ntrailer<</Root 1 0 R>>\n%%EOF\n").unwrap();
    let out = stdout(&cli(
        &daemon,
        API_KEY,
        &[
            "send-file",
            "7",
            "300 111 2233",
            pdf.to_str().unwrap(),
            "--caption",
            "Su fórmula",
        ],
    ));
    assert!(
        out.contains("document receta.pdf queued for 573001112233"),
        "{out}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let document = loop {
        let (_, sent) = daemon.get("/sim/7/sent").await;
        if let Some(m) = sent["messages"].get(1) {
            break m.clone();
        }
        assert!(std::time::Instant::now() < deadline, "never sent: {sent}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (&document["kind"], &document["filename"], &document["text"]),
        (
            &json!("document"),
            &json!("receta.pdf"),
            &json!("Su fórmula")
        )
    );
    // A file of no accepted type: one clear line and exit status 1.
    let notes = daemon.dir.path().join("notas.txt");
    std::fs::write(&notes, "solo texto").unwrap();
    let refused = cli(
        &daemon,
        API_KEY,
        &["send-file", "7", "300 111 2233", notes.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not an accepted type"), "{stderr}");

    let out = stdout(&cli(&daemon, API_KEY, &["sessions"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with('7') && l.contains("connected") && l.contains("573001234567")),
        "{out}"
    );

    let out = stdout(&cli(&daemon, API_KEY, &["clean", "7"]));
    assert!(out.contains("backup: _backups/7/"), "{out}");
    assert!(!daemon.sessions_dir().join("7").exists());
}

#[tokio::test]
async fn clear_messages_for_a_wrong_key_a_down_daemon_and_api_errors() {
    let daemon = Daemon::start().await;
    let out = cli(&daemon, "wrong", &["sessions"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused the API key"), "{err}");
    assert!(!err.contains(API_KEY));

    let out = cli(&daemon, API_KEY, &["logout", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404") && err.contains("hint:"), "{err}");

    let (_refusing, port) = common::refusing_port();
    let down = format!("http://127.0.0.1:{port}");
    let out = cli(&daemon, API_KEY, &["status", "--url", &down]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach wa-supervisor"), "{err}");
}
