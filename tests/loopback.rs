//! The real binary with the real whatsapp-rust connection, against a WhatsApp Web
//! server on loopback: real QR codes, a real pairing, real Noise handshakes and a
//! real SQLite store, with no network. Every flow of CONTRACT §4–§5 that WhatsApp
//! itself drives is exercised here through the HTTP API Django uses.

mod common;
mod loopback_support;

use std::path::Path;

use loopback_support::*;
use wa_loopback::{Fault, Loopback, Pattern};

/// SQLite's own verdict on a database file, through Python's sqlite3 module.
fn integrity_check(db: &Path) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        ])
        .arg(db)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_sends_and_heals_from_undecryptable_messages() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    let first_qr = pair(&daemon, &server, "optica-sol", PHONE).await;
    assert_eq!(
        first_qr.split(',').count(),
        5,
        "the library's QR: {first_qr}"
    );

    let id = send(&daemon, "optica-sol", "3009998877").await;
    let stanza = recorded(&server, &id).await;
    assert_eq!(stanza.to.user.as_str(), CUSTOMER);
    assert_eq!(stanza.kind, "text");
    assert!(stanza.enc_types.iter().any(|t| t == "pkmsg"), "{stanza:?}");

    three_undecryptable_messages(&server, PHONE);
    daemon.wait_status("optica-sol", "qr_ready").await;
    let new_qr = qr_of(&daemon, "optica-sol").await;
    assert_eq!(new_qr.split(',').count(), 5, "a real QR again: {new_qr}");
    assert_ne!(
        new_qr.split(',').nth(1),
        first_qr.split(',').nth(1),
        "a new device key after the wipe"
    );
    let kept = backups(&daemon, "optica-sol");
    assert_eq!(kept.len(), 1, "{kept:?}");
    let db = kept[0].join("whatsapp.db");
    assert!(db.is_file(), "the backup holds the store");
    assert_eq!(integrity_check(&db), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_errors_reconnect_under_the_window_and_heal_over_it() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    pair(&daemon, &server, "optica-sol", PHONE).await;

    server.fault(PHONE, Fault::StreamError(500)).unwrap();
    daemon.wait_status("optica-sol", "reconnecting").await;
    daemon.wait_status("optica-sol", "connected").await;
    assert!(
        backups(&daemon, "optica-sol").is_empty(),
        "one is below the limit"
    );

    server.fault(PHONE, Fault::StreamError(500)).unwrap();
    daemon.wait_status("optica-sol", "qr_ready").await;
    let kept = backups(&daemon, "optica-sol");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].join("whatsapp.db").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_reconnects_with_ik_and_no_qr() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    pair(&daemon, &server, "optica-sol", PHONE).await;
    let qrs = qr_refs_sent(&server);
    let before = logins(&server, PHONE).len();

    server.fault(PHONE, Fault::DropSocket).unwrap();
    daemon.wait_status("optica-sol", "reconnecting").await;
    daemon.wait_status("optica-sol", "connected").await;
    let after = logins(&server, PHONE);
    assert_eq!(after.len(), before + 1, "{after:?}");
    assert_eq!(after.last(), Some(&Pattern::Ik), "{after:?}");
    assert_eq!(qr_refs_sent(&server), qrs, "no QR on a reconnect");
    assert!(backups(&daemon, "optica-sol").is_empty());
}

/// Four orgs on one server; each gets one terminal fault and the status CONTRACT §4
/// gives it, while the others stay connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_faults_set_their_status_and_touch_no_other_org() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    let orgs = [
        ("replaced", "573001000001", Fault::Replaced, "conflict"),
        ("logout", "573001000002", Fault::Failure(401), "logged_out"),
        (
            "ban",
            "573001000003",
            Fault::TemporaryBan { expire_secs: 3600 },
            "banned",
        ),
        (
            "old",
            "573001000004",
            Fault::Failure(405),
            "client_outdated",
        ),
    ];
    for (org, phone, _, _) in &orgs {
        pair(&daemon, &server, org, phone).await;
    }
    for (i, (org, phone, fault, status)) in orgs.iter().enumerate() {
        server.fault(phone, fault.clone()).unwrap();
        daemon.wait_status(org, status).await;
        for (other, other_phone, _, _) in &orgs[i + 1..] {
            let (_, body) = daemon.get(&format!("/api/status/{other}")).await;
            assert_eq!(body["status"], "connected", "{other}: {body}");
            assert_eq!(body["phone_number"], *other_phone);
        }
    }
    assert!(
        daemon
            .sessions_dir()
            .join("replaced")
            .join("whatsapp.db")
            .is_file(),
        "a conflict keeps the session"
    );
    assert!(
        !daemon
            .sessions_dir()
            .join("logout")
            .join("whatsapp.db")
            .exists(),
        "logged out: wiped"
    );
    assert_eq!(backups(&daemon, "logout").len(), 1, "… after a backup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orgs_on_one_server_one_faulted_the_other_untouched() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    pair(&daemon, &server, "optica-sol", PHONE).await;
    pair(&daemon, &server, "optica-luna", OTHER_PHONE).await;
    let luna_logins = logins(&server, OTHER_PHONE).len();

    three_undecryptable_messages(&server, PHONE);
    daemon.wait_status("optica-sol", "qr_ready").await;

    let (_, luna) = daemon.get("/api/status/optica-luna").await;
    assert_eq!(luna["status"], "connected", "{luna}");
    assert_eq!(
        logins(&server, OTHER_PHONE).len(),
        luna_logins,
        "never reconnected"
    );
    assert!(backups(&daemon, "optica-luna").is_empty());
    let id = send(&daemon, "optica-luna", "3009998877").await;
    assert_eq!(recorded(&server, &id).await.to.user.as_str(), CUSTOMER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_resumes_the_paired_org_without_a_qr() {
    let server = Loopback::start().await.unwrap();
    let daemon = real_daemon(&server).await;
    pair(&daemon, &server, "optica-sol", PHONE).await;
    let qrs = qr_refs_sent(&server);

    let daemon = daemon.restart().await;
    let status = daemon.wait_status("optica-sol", "connected").await;
    assert_eq!(status["phone_number"], PHONE);
    assert_eq!(qr_refs_sent(&server), qrs, "no QR after a restart");
    assert_eq!(logins(&server, PHONE).last(), Some(&Pattern::Ik));
    let id = send(&daemon, "optica-sol", "3009998877").await;
    recorded(&server, &id).await;
}
