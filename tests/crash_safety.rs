//! Crash safety (CONTRACT §5): the daemon is SIGKILLed at random moments while it
//! backs up, wipes and re-pairs sessions over and over; after each restart every
//! org's credentials are whole in its live directory or a backup, nothing is left
//! half-renamed, and the sessions directory serves again.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{API_KEY, Daemon, credentials_phone};
use rand::RngExt;
use serde_json::json;

const KILLS: usize = 10;
/// Every Bad MAC heals at once, and neither the restart intensity nor the budget
/// gets in the way of a hundred heals and restarts.
const CONFIG: &str = "[healing]\nrestart_first = false\n[windows.bad_mac]\nlimit = 1\nseconds = 30\n\
    [windows.cleanups]\nlimit = 100000\nseconds = 3600\n\
    [connection_budget.per_org]\nlimit = 100000\n\
    [connection_budget.global]\nlimit = 100000\n";

fn orgs() -> Vec<(String, String)> {
    (0..3)
        .map(|i| (format!("c{i}"), format!("57300100000{i}")))
        .collect()
}

/// Checks the sessions directory after a crash; returns how many backups exist.
fn check_disk(root: &Path) -> usize {
    let orgs = orgs();
    let names: Vec<String> = orgs.iter().map(|(o, _)| o.clone()).collect();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            assert!(
                name == "_backups" || names.contains(&name),
                "a stray directory {name:?} in the sessions directory"
            );
        }
    }
    let mut backups = 0;
    for (org, phone) in &orgs {
        let mut found = Vec::new();
        let live = root.join(org);
        let creds = live.join("sim-credentials.json");
        if creds.is_file() {
            found.push(credentials_phone(&creds));
        }
        let parent = root.join("_backups").join(org);
        for b in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = b.file_name().into_string().unwrap();
            assert!(b.file_type().unwrap().is_dir(), "{name} is not a directory");
            assert!(
                name.starts_with("20") && name.contains('_'),
                "a backup with a strange name: {name}"
            );
            backups += 1;
            let creds = b.path().join("sim-credentials.json");
            if creds.is_file() {
                found.push(credentials_phone(&creds));
            } else {
                // Only an interrupted pairing (its temporary file) may lack them.
                for f in std::fs::read_dir(b.path()).unwrap().flatten() {
                    let f = f.file_name().into_string().unwrap();
                    assert!(
                        f.ends_with(".tmp"),
                        "backup {name} holds {f} but no credentials"
                    );
                }
            }
        }
        assert!(
            found.iter().any(|p| p == phone),
            "{org}: its credentials are neither live nor in a backup ({found:?})"
        );
        assert!(
            found.iter().all(|p| p == phone),
            "{org}: foreign credentials {found:?}"
        );
    }
    backups
}

#[tokio::test]
async fn sigkill_during_cleanups_loses_no_session() {
    let mut daemon = Daemon::start_with(CONFIG).await;
    let mut rng = rand::rng();
    let mut total_backups = 0;
    for round in 0..KILLS {
        for (org, phone) in orgs() {
            daemon.ensure_connected(&org, phone.as_str()).await;
        }
        // Heal, re-pair, heal… as fast as the API allows, from another task.
        let (http, base) = (daemon.http.clone(), daemon.url(""));
        let churn = tokio::spawn(async move {
            loop {
                for (org, phone) in orgs() {
                    for (path, body) in [
                        (format!("/sim/{org}/inject"), json!({ "fault": "bad_mac" })),
                        (format!("/sim/{org}/scan"), json!({ "phone": phone })),
                    ] {
                        let sent = http
                            .post(format!("{base}{path}"))
                            .header("X-API-Key", API_KEY)
                            .json(&body)
                            .send()
                            .await;
                        if sent.is_err() {
                            return; // the daemon is gone
                        }
                    }
                }
            }
        });
        // Wait until at least one cleanup of this round has landed, then kill at a
        // random moment after it.
        let root = daemon.sessions_dir();
        let before = backup_names(&root);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while backup_names(&root).is_subset(&before) {
            assert!(std::time::Instant::now() < deadline, "no cleanup happened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        daemon = daemon.kill_and_restart(CONFIG).await;
        churn.abort();
        let _ = churn.await;

        total_backups = check_disk(&daemon.sessions_dir());
        assert!(total_backups > 0, "round {round}: no backup at all");
    }
    // The directory serves again: every org connects and sends.
    for (org, phone) in orgs() {
        daemon.ensure_connected(&org, phone.as_str()).await;
        let (code, body) = daemon
            .post(
                "/api/send-message",
                json!({ "organization_id": org, "phone": "3009998877", "message": "hola" }),
            )
            .await;
        assert_eq!(code, 200, "{org}: {body}");
    }
    check_disk(&daemon.sessions_dir());
    assert!(total_backups >= 3);
    assert!(!daemon.logs().contains("panicked"), "{}", daemon.logs());
}

/// Every backup's `<org>/<name>` (older ones are pruned, so a count would stall).
fn backup_names(root: &Path) -> std::collections::BTreeSet<String> {
    orgs()
        .iter()
        .flat_map(|(org, _)| {
            std::fs::read_dir(root.join("_backups").join(org))
                .into_iter()
                .flatten()
                .flatten()
                .map(move |e| format!("{org}/{}", e.file_name().to_string_lossy()))
        })
        .collect()
}
