//! `kill -9` of the daemon in the middle of delivering (CONTRACT §10): after the
//! restart every accepted message ends `sent`, none is missing, none that was
//! acknowledged goes again, and a message that was on its way goes again with the
//! id of its first attempt.
//!
//! The fake phone's log of what it received lives in the daemon's process and dies
//! with it. So the state at the moment of death is read from the outbox database
//! itself, between the kill and the restart, and compared with what the phone of
//! the old process had received (read just before the kill) and what the phone of
//! the new one receives.

mod common;
mod outbox_support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::Daemon;
use outbox_support::*;

const MESSAGES: usize = 50;

/// One row of the outbox database: `(message_id, status, attempts)`.
type Row = (String, String, u64);

/// The org's messages as the database holds them, in acceptance order: read with
/// Python's sqlite3 (not the daemon's code) while no daemon runs.
fn rows(db: &Path, org: &str) -> Vec<Row> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json,sqlite3,sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             rows = c.execute('SELECT message_id, status, attempts FROM messages WHERE org = ? ORDER BY seq', (sys.argv[2],)).fetchall()\n\
             print(json.dumps(rows))",
        ])
        .arg(db)
        .arg(org)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Accepts the messages while the QR waits, then pairs: delivery starts with all
/// of them queued however slow accepting was, and is paced so that it takes
/// seconds. Returns their ids in acceptance order.
async fn fifty_queued(daemon: &Daemon, org: &str) -> Vec<String> {
    showing_qr(daemon, org).await;
    let mut ids = Vec::new();
    for i in 0..MESSAGES {
        ids.push(accepted(daemon, org, &format!("Recordatorio {i}")).await);
    }
    scan(daemon, org).await;
    ids
}

/// Polls until at least `n` of the org's messages are `sent`.
async fn until_sent(daemon: &Daemon, org: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while listed(daemon, org, "sent").await.len() < n {
        assert!(
            Instant::now() < deadline,
            "{n} never sent\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// After the restart: waits until every message is `sent`, then checks that the
/// new process delivered exactly what was pending at the death, in order, each
/// with its own id, and that no message is missing or went twice once acked.
async fn every_message_ends_sent(daemon: &Daemon, org: &str, ids: &[String], at_death: &[Row]) {
    for id in ids {
        wait_message(daemon, id, "sent").await;
    }
    let pending: Vec<&Row> = at_death.iter().filter(|r| r.1 != "sent").collect();
    let want: Vec<&str> = pending.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids_received(daemon, org).await,
        want,
        "the new process sends what was pending, in order, once each"
    );
    for (id, status, attempts) in at_death {
        let now = message(daemon, id).await;
        let more = u64::from(status != "sent");
        assert_eq!(
            now["attempts"].as_u64(),
            Some(attempts + more),
            "{status} at death with {attempts} attempts: {now}"
        );
    }
}

/// Killed at whatever point the paced delivery reached: some sent, the rest queued
/// (and maybe one on its way).
#[tokio::test]
async fn kill_9_while_delivering_loses_and_repeats_nothing() {
    let config = "[outbox]\nmin_gap_ms = 100\n";
    let daemon = Daemon::start_with(config).await;
    let org = "optica-sol";
    let ids = fifty_queued(&daemon, org).await;
    until_sent(&daemon, org, 10).await;
    let before = ids_received(&daemon, org).await;
    let mut daemon = daemon;
    daemon.child.kill().expect("SIGKILL");
    daemon.child.wait().unwrap();

    let at_death = rows(&daemon.sessions_dir().join("outbox.db"), org);
    let in_db: Vec<&str> = at_death.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(in_db, ids, "every accepted message is in the database");
    let sent = at_death.iter().filter(|r| r.1 == "sent").count();
    assert!(
        (10..MESSAGES).contains(&sent),
        "killed in the middle: {sent} sent"
    );
    // One at a time: at most one on its way, and everything after it untouched.
    let sending = at_death.iter().filter(|r| r.1 == "sending").count();
    assert!(sending <= 1, "{at_death:?}");
    for (i, (_, status, attempts)) in at_death.iter().enumerate() {
        let want = if i < sent {
            "sent"
        } else if i == sent && sending == 1 {
            "sending"
        } else {
            "queued"
        };
        assert_eq!(
            (status.as_str(), *attempts),
            (want, u64::from(want != "queued")),
            "row {i}"
        );
    }
    // What the old phone had received just before the kill: a prefix of the sent
    // ones (and of the one on its way), each with its own id.
    assert!(before.len() >= 10, "{before:?}");
    assert_eq!(before[..], ids[..before.len()]);

    let daemon = daemon.kill_and_restart(config).await;
    every_message_ends_sent(&daemon, org, &ids, &at_death).await;
}

/// Killed while one message is provably on its way: the old process's phone
/// received its first attempt and WhatsApp's ack never came (the connection
/// swallowed it). The new process's phone receives it again with that same id.
#[tokio::test]
async fn a_message_on_its_way_at_kill_9_is_resent_with_the_id_of_its_first_attempt() {
    // The zombie must not be noticed before the kill.
    let config = "[outbox]\nmin_gap_ms = 50\nack_timeout_seconds = 600\n";
    let daemon = Daemon::start_with(config).await;
    let org = "optica-sol";
    let ids = fifty_queued(&daemon, org).await;
    until_sent(&daemon, org, 10).await;
    inject(&daemon, org, "no_ack").await;

    // Wait until a message is `sending` and the phone has its first attempt.
    let deadline = Instant::now() + Duration::from_secs(30);
    let on_its_way = loop {
        let sending = listed(&daemon, org, "sending").await;
        let received = ids_received(&daemon, org).await;
        if let [m] = &sending[..]
            && received.last().map(String::as_str) == m["message_id"].as_str()
        {
            break m["message_id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "nothing stuck on its way");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let before = ids_received(&daemon, org).await;
    let mut daemon = daemon;
    daemon.child.kill().expect("SIGKILL");
    daemon.child.wait().unwrap();

    let at_death = rows(&daemon.sessions_dir().join("outbox.db"), org);
    let position = ids.iter().position(|id| *id == on_its_way).unwrap();
    assert!((10..MESSAGES).contains(&position), "{position}");
    assert_eq!(
        at_death[position],
        (on_its_way.clone(), "sending".to_owned(), 1),
        "stuck on its first attempt"
    );
    assert_eq!(
        before,
        ids[..=position],
        "the old phone received each once, the one on its way last"
    );

    let daemon = daemon.kill_and_restart(config).await;
    every_message_ends_sent(&daemon, org, &ids, &at_death).await;
    assert_eq!(
        ids_received(&daemon, org).await.first(),
        Some(&on_its_way),
        "the resend is first, with the id of its first attempt"
    );
    assert_eq!(message(&daemon, &on_its_way).await["attempts"], 2);
}
