//! Backups and restore over HTTP and the CLI, against the real binary in sim mode
//! (CONTRACT §12): an operator puts a healed session back without a shell.

mod common;

use std::path::Path;
use std::process::Command;

use common::{API_KEY, Daemon, WIPE_AT_ONCE};
use serde_json::{Value, json};

const P1: &str = "573001234567";
const P2: &str = "573009990000";

/// The phone in a directory's sim credentials.
fn phone_in(dir: &Path) -> String {
    let bytes = std::fs::read(dir.join("sim-credentials.json")).unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    v["phone"].as_str().unwrap().to_owned()
}

async fn backups(daemon: &Daemon, org: &str) -> Vec<Value> {
    let (code, body) = daemon.get(&format!("/api/backups/{org}")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["organization_id"], org);
    body["backups"].as_array().unwrap().clone()
}

async fn heal(daemon: &Daemon, org: &str) -> Value {
    for _ in 0..3 {
        let (code, body) = daemon
            .post(&format!("/sim/{org}/inject"), json!({ "fault": "bad_mac" }))
            .await;
        assert_eq!(code, 200, "{body}");
    }
    daemon.wait_status(org, "qr_ready").await;
    let listed = backups(daemon, org).await;
    assert_eq!(listed[0]["reason"], "bad_mac", "{listed:?}");
    listed[0].clone()
}

async fn restore(daemon: &Daemon, org: &str, name: &str) -> Value {
    let (code, body) = daemon
        .post(
            "/api/restore",
            json!({ "organization_id": org, "backup": name }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    body
}

#[tokio::test]
async fn a_healed_session_is_restored_without_a_qr_and_the_replaced_one_is_kept() {
    let daemon = Daemon::start_with(WIPE_AT_ONCE).await;
    daemon.ensure_connected("2", P1).await;

    // Healed: backed up, wiped, a new QR.
    let b1 = heal(&daemon, "2").await;
    assert!(b1["bytes"].as_u64().unwrap() > 0, "{b1}");
    let created: chrono::DateTime<chrono::Utc> =
        b1["created_at"].as_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now() - created).num_seconds().abs() < 60);

    // Restored: connected with its number, no QR. The pairing that was showing
    // a QR had stored nothing, so there was nothing to keep.
    let r = restore(&daemon, "2", b1["name"].as_str().unwrap()).await;
    assert_eq!(r["status"], "connected", "{r}");
    assert_eq!(r["phone_number"], P1);
    assert_eq!(r["has_qr"], false);
    assert_eq!(r["backup"], b1["name"]);
    assert_eq!(r["before_restore"], Value::Null);
    let (_, qr) = daemon.get("/api/qr/2").await;
    assert_eq!(qr["qr"], Value::Null, "{qr}");
    assert_eq!(backups(&daemon, "2").await, Vec::<Value>::new());

    // Healed again, and this time another phone paired before the restore: that
    // session is the one kept, as before_restore.
    let b2 = heal(&daemon, "2").await;
    daemon.post("/sim/2/scan", json!({ "phone": P2 })).await;
    daemon.wait_status("2", "connected").await;
    let r = restore(&daemon, "2", b2["name"].as_str().unwrap()).await;
    assert_eq!(r["status"], "connected", "{r}");
    assert_eq!(r["phone_number"], P1);
    let kept = r["before_restore"]
        .as_str()
        .expect("the replaced session is kept");
    let listed = backups(&daemon, "2").await;
    assert_eq!(listed[0]["name"], kept, "newest first: {listed:?}");
    assert_eq!(listed[0]["reason"], "before_restore");
    assert!(
        listed.iter().all(|b| b["name"] != b2["name"]),
        "the restored backup is live now, not listed: {listed:?}"
    );
    let root = daemon.sessions_dir();
    assert_eq!(phone_in(&root.join("_backups/2").join(kept)), P2);
    assert_eq!(phone_in(&root.join("2")), P1);

    // It sends again from the restored number.
    let (code, body) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": "2", "phone": "3009998877", "message": "hola" }),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(!daemon.logs().contains("panicked"), "{}", daemon.logs());
}

#[tokio::test]
async fn bad_names_are_400_unknown_ones_404_and_change_nothing() {
    let daemon = Daemon::start_with(WIPE_AT_ONCE).await;
    daemon.ensure_connected("3", P1).await;
    let b = heal(&daemon, "3").await;
    daemon.post("/sim/3/scan", json!({ "phone": P1 })).await;
    daemon.wait_status("3", "connected").await;
    let root = daemon.sessions_dir();
    // A directory that a joined `..` would reach from `_backups/3/`.
    std::fs::create_dir_all(root.join("_backups/x")).unwrap();

    for (body, code) in [
        (json!({ "organization_id": "3", "backup": "../x" }), 400),
        (json!({ "organization_id": "3", "backup": "../../3" }), 400),
        (json!({ "organization_id": "3", "backup": "a/b" }), 400),
        (json!({ "organization_id": "3", "backup": "" }), 400),
        (json!({ "organization_id": "3", "backup": ".." }), 400),
        (json!({ "organization_id": "3" }), 400),
        (
            json!({ "organization_id": "../3", "backup": b["name"] }),
            400,
        ),
        (json!({ "backup": b["name"] }), 400),
        (
            json!({ "organization_id": "3", "backup": "20260101T000000.000000Z_bad_mac" }),
            404,
        ),
        // Another org's backup is not this org's.
        (json!({ "organization_id": "4", "backup": b["name"] }), 404),
    ] {
        let (got, answer) = daemon.post("/api/restore", body.clone()).await;
        assert_eq!(got, code, "{body} → {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let (code, answer) = daemon
        .post(
            "/api/restore",
            json!({ "organization_id": "3", "backup": "20260101T000000.000000Z_bad_mac" }),
        )
        .await;
    assert_eq!(code, 404);
    assert!(answer["hint"].as_str().unwrap().contains("/api/backups"));
    let (code, answer) = daemon.get("/api/backups/..").await;
    assert!(code == 400 || code == 404, "{code} {answer}");
    let (code, _, _) = daemon.raw("GET", "/api/backups/3", None, None).await;
    assert_eq!(code, 401);

    // Nothing moved, nothing stopped.
    let s = daemon.wait_status("3", "connected").await;
    assert_eq!(s["reason"], "connected", "{s}");
    assert_eq!(backups(&daemon, "3").await, vec![b]);
    assert_eq!(phone_in(&root.join("3")), P1);
}

#[tokio::test]
async fn an_operator_lists_and_restores_from_the_shell() {
    let daemon = Daemon::start_with(WIPE_AT_ONCE).await;
    daemon.ensure_connected("5", P1).await;
    let b = heal(&daemon, "5").await;
    let name = b["name"].as_str().unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
            .args(args)
            .arg("--config")
            .arg(daemon.operator_config_path())
            .env("WHATSAPP_SERVER_API_KEY", API_KEY)
            .env_remove("PORT")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(&["backups", "5"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains(name) && out.contains("bad_mac"), "{out}");
    assert!(out.contains("1 backup(s)"), "{out}");

    let (ok, out, err) = cli(&["restore", "5", name]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("status connected"), "{out}");
    assert!(out.contains(P1), "{out}");
    daemon.wait_status("5", "connected").await;

    let (ok, _, err) = cli(&["restore", "5", "20260101T000000Z_nope"]);
    assert!(!ok);
    assert!(err.contains("404") && err.contains("hint:"), "{err}");
    let (ok, _, err) = cli(&["restore", "5", "../../etc"]);
    assert!(!ok);
    assert!(err.contains("400"), "{err}");
}
