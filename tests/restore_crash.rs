//! Crash safety of restore (CONTRACT §12, §5): the daemon is SIGKILLed at random
//! moments while it restores backups over and over; after each restart every set
//! of credentials ever made is whole in exactly one place, live or a backup, and
//! the org serves again.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{API_KEY, Daemon, credentials_phone};
use rand::RngExt;
use serde_json::{Value, json};

const KILLS: usize = 12;
const CONFIG: &str = "[healing]\nrestart_first = false\n[windows.cleanups]\nlimit = 100000\nseconds = 3600\n\
    [connection_budget.per_org]\nlimit = 100000\n\
    [connection_budget.global]\nlimit = 100000\n";

/// Each org has two numbers: one paired first, healed into a backup, then the
/// other paired. From then on each restore swaps which one is live.
fn orgs() -> Vec<(String, [String; 2])> {
    (0..3)
        .map(|i| {
            (
                format!("r{i}"),
                [format!("57300200000{i}"), format!("57300300000{i}")],
            )
        })
        .collect()
}

/// Every org's two sets of credentials are each in exactly one place; nothing
/// stray lies in the sessions directory.
fn check_disk(root: &Path, round: usize) {
    let orgs = orgs();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if entry.file_type().unwrap().is_dir() {
            assert!(
                name == "_backups" || orgs.iter().any(|(o, _)| *o == name),
                "round {round}: a stray directory {name:?}"
            );
        }
    }
    for (org, phones) in &orgs {
        let mut found = Vec::new();
        let creds = root.join(org).join("sim-credentials.json");
        if creds.is_file() {
            found.push(credentials_phone(&creds));
        }
        for b in std::fs::read_dir(root.join("_backups").join(org))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = b.file_name().into_string().unwrap();
            assert!(b.file_type().unwrap().is_dir(), "{name} is not a directory");
            let creds = b.path().join("sim-credentials.json");
            if creds.is_file() {
                found.push(credentials_phone(&creds));
            }
        }
        found.sort();
        let mut want = phones.to_vec();
        want.sort();
        assert_eq!(
            found, want,
            "round {round}, {org}: each set of credentials exactly once"
        );
    }
}

/// Pairs both numbers of every org: the first ends in a backup, the second live.
async fn prepare(daemon: &Daemon) {
    for (org, [first, second]) in orgs() {
        daemon.ensure_connected(&org, &first).await;
        for _ in 0..3 {
            daemon
                .post(&format!("/sim/{org}/inject"), json!({ "fault": "bad_mac" }))
                .await;
        }
        daemon.wait_status(&org, "qr_ready").await;
        daemon
            .post(&format!("/sim/{org}/scan"), json!({ "phone": second }))
            .await;
        daemon.wait_status(&org, "connected").await;
    }
}

/// Restores each org's newest backup over and over until the daemon is gone.
async fn churn(http: reqwest::Client, base: String, org: String, done: Arc<AtomicUsize>) {
    loop {
        let listed = http
            .get(format!("{base}/api/backups/{org}"))
            .header("X-API-Key", API_KEY)
            .send()
            .await;
        let Ok(listed) = listed else { return };
        let Ok(listed) = listed.json::<Value>().await else {
            return;
        };
        let Some(newest) = listed["backups"][0]["name"].as_str() else {
            // Only between a kill and the end of this round.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let restored = http
            .post(format!("{base}/api/restore"))
            .header("X-API-Key", API_KEY)
            .json(&json!({ "organization_id": org, "backup": newest }))
            .send()
            .await;
        match restored {
            Ok(r) if r.status().is_success() => {
                done.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

#[tokio::test]
async fn sigkill_during_restores_loses_no_credentials() {
    let mut daemon = Daemon::start_with(CONFIG).await;
    prepare(&daemon).await;
    check_disk(&daemon.sessions_dir(), 0);
    let mut rng = rand::rng();
    let done = Arc::new(AtomicUsize::new(0));
    for round in 1..=KILLS {
        let tasks: Vec<_> = orgs()
            .into_iter()
            .map(|(org, _)| {
                tokio::spawn(churn(
                    daemon.http.clone(),
                    daemon.url(""),
                    org,
                    done.clone(),
                ))
            })
            .collect();
        // At least one restore of this round has landed; kill a while after it.
        let before = done.load(Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while done.load(Ordering::SeqCst) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no restore happened:\n{}",
                daemon.logs()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..60))).await;
        daemon = daemon.kill_and_restart(CONFIG).await;
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        check_disk(&daemon.sessions_dir(), round);
    }
    assert!(done.load(Ordering::SeqCst) >= KILLS);
    // How often a kill landed between the two renames (random; for the record).
    let undone = daemon.logs().matches("a restore was interrupted").count();
    eprintln!(
        "{} restores, {KILLS} kills, {undone} interrupted restores undone at start-up",
        done.load(Ordering::SeqCst)
    );

    // Every org serves again from whichever number is live, and restores again.
    for (org, phones) in orgs() {
        let live = credentials_phone(
            &daemon
                .sessions_dir()
                .join(&org)
                .join("sim-credentials.json"),
        );
        assert!(phones.contains(&live));
        daemon.ensure_connected(&org, &live).await;
        let (_, listed) = daemon.get(&format!("/api/backups/{org}")).await;
        let newest = listed["backups"][0]["name"].as_str().unwrap().to_owned();
        let (code, body) = daemon
            .post(
                "/api/restore",
                json!({ "organization_id": org, "backup": newest }),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["status"], "connected", "{body}");
        assert_ne!(body["phone_number"], live.as_str(), "{body}");
    }
    check_disk(&daemon.sessions_dir(), KILLS + 1);
    assert!(!daemon.logs().contains("panicked"), "{}", daemon.logs());
}
