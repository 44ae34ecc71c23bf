//! Self-healing through the actor tree (CONTRACT §5, §11): a restart first, a
//! wipe when the trouble comes back soon after, one broken contact never.

use super::*;
use crate::EventKind;
use crate::healing::{HealingPolicy, Step};

fn bad_mac_from(sender: &str) -> Fault {
    Fault::BadMac {
        sender: Some(sender.into()),
    }
}

/// The steps healing reported, in order: `restart:bad_mac`, `wipe:stream_errors`…
fn healing_steps(rig: &Rig) -> Vec<String> {
    rig.events
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Healing { step, window, .. } => Some(format!(
                "{}:{window}",
                match step {
                    Step::Restart => "restart",
                    Step::Wipe => "wipe",
                }
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn one_contacts_broken_session_never_costs_a_wipe() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..5 {
        rig.inject(&a, bad_mac_from("573001112233")).await;
        rig.settle_for(Duration::from_secs(2)).await;
    }
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Connected);
    assert!(rig.backups(&a).is_empty());
    assert!(healing_steps(&rig).is_empty());
}

#[tokio::test(start_paused = true)]
async fn many_senders_restart_first_then_wipe_when_it_comes_back() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for sender in ["573001110001", "573001110002", "573001110003"] {
        rig.inject(&a, bad_mac_from(sender)).await;
    }
    // A restart from the same credentials: no backup, no QR.
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(rig.backups(&a).is_empty());
    assert_eq!(healing_steps(&rig), ["restart:bad_mac"]);
    assert!(holds_credentials(&rig.live(&a)));

    // The same soon after the restart: back up, wipe, pair again.
    rig.settle_for(Duration::from_secs(60)).await;
    for sender in ["573001110004", "573001110005", "573001110006"] {
        rig.inject(&a, bad_mac_from(sender)).await;
    }
    let snapshot = rig.wait(&a, SessionStatus::QrReady).await;
    assert!(snapshot.qr.is_some());
    assert_eq!(snapshot.phone_number, None);
    assert_eq!(healing_steps(&rig), ["restart:bad_mac", "wipe:bad_mac"]);
    let backups = rig.backups(&a);
    assert_eq!(backups.len(), 1);
    assert!(backups[0].ends_with("_bad_mac"), "{backups:?}");
    let backup = rig.root.path().join("_backups/2").join(&backups[0]);
    assert!(
        holds_credentials(&backup),
        "the backup holds the credentials"
    );
    assert_eq!(std::fs::read_dir(rig.live(&a)).unwrap().count(), 0);
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_trip_long_after_a_restart_restarts_again() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for round in 0..2 {
        for i in 0..3 {
            rig.inject(&a, bad_mac_from(&format!("57300111{round}{i:03}")))
                .await;
        }
        rig.wait(&a, SessionStatus::Connected).await;
        // Past `[healing] confirm_seconds` (900 s).
        rig.settle_for(Duration::from_secs(901)).await;
    }
    assert_eq!(healing_steps(&rig), ["restart:bad_mac", "restart:bad_mac"]);
    assert!(rig.backups(&a).is_empty());
}

#[tokio::test(start_paused = true)]
async fn bad_macs_spread_beyond_the_window_do_not_heal() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.settle_for(Duration::from_secs(20)).await;
    }
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Connected);
    assert!(rig.backups(&a).is_empty());
    assert!(healing_steps(&rig).is_empty());
}

/// With the old rule (any senders, no restart first) every trip wipes; the backups
/// of five cleanups are pruned to the newest three, each holding its credentials.
#[tokio::test(start_paused = true)]
async fn five_cleanups_keep_three_backups() {
    let rig = Rig::with(|c| {
        c.cleanups = WindowSpec::new(10, LONG);
        c.healing = HealingPolicy::old_rule();
    })
    .await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for round in 0..5 {
        for _ in 0..3 {
            rig.inject(&a, Fault::BadMac { sender: None }).await;
        }
        rig.wait(&a, SessionStatus::QrReady).await;
        assert_eq!(rig.backups(&a).len(), (round + 1).min(3));
        rig.sim.scan(&a, "573001234567").unwrap();
        rig.wait(&a, SessionStatus::Connected).await;
    }
    let backups = rig.backups(&a);
    assert_eq!(backups.len(), 3, "{backups:?}");
    for name in &backups {
        let dir = rig.root.path().join("_backups/2").join(name);
        assert!(holds_credentials(&dir), "{name} holds the credentials");
    }
}

#[tokio::test(start_paused = true)]
async fn stream_errors_reconnect_restart_then_heal() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::StreamError { code: None }).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Reconnecting);
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(healing_steps(&rig).is_empty(), "one is only a reconnect");

    rig.inject(&a, Fault::StreamError { code: Some(500) }).await;
    rig.wait(&a, SessionStatus::Connected).await;
    assert_eq!(healing_steps(&rig), ["restart:stream_errors"]);
    assert!(rig.backups(&a).is_empty());

    // The server keeps rejecting the session after the restart: wipe.
    rig.inject(&a, Fault::StreamError { code: Some(500) }).await;
    rig.wait(&a, SessionStatus::Connected).await;
    rig.inject(&a, Fault::StreamError { code: Some(500) }).await;
    let snapshot = rig.wait(&a, SessionStatus::QrReady).await;
    assert!(snapshot.qr.is_some());
    assert_eq!(rig.backups(&a).len(), 1);
    assert!(rig.backups(&a)[0].ends_with("_stream_errors"));
}

#[tokio::test(start_paused = true)]
async fn a_corrupt_store_is_backed_up_and_paired_again_at_once() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.sup.shutdown().await;
    std::fs::write(rig.live(&a).join(CREDENTIALS_FILE), b"not a store").unwrap();
    let sup = spawn_sup(
        SupervisorConfig::new(rig.root.path()),
        Arc::new(rig.sim.clone()),
        no_events(),
    )
    .await;
    let mut seen = Vec::new();
    sup.start(&a, None).await.unwrap();
    let qr = sup
        .wait_for(&a, LONG, |s| {
            seen.push(s.status);
            s.status == SessionStatus::QrReady
        })
        .await
        .unwrap();
    assert!(qr.qr.is_some());
    assert!(!seen.contains(&SessionStatus::Reconnecting), "{seen:?}");
    let backups = rig.backups(&a);
    assert_eq!(backups.len(), 1);
    assert!(backups[0].ends_with("_store_corrupt"), "{backups:?}");
}

/// A cleanup that fails leaves the session in place, and healing goes on for it: the
/// next trip heals again instead of every error being ignored from then on.
#[tokio::test(start_paused = true)]
async fn a_failed_cleanup_does_not_stop_healing_for_good() {
    let rig = Rig::with(|c| c.healing = HealingPolicy::old_rule()).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    // No backup can be made: a file stands where the backups directory goes.
    let blocker = rig.root.path().join("_backups");
    std::fs::write(&blocker, b"").unwrap();
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    let failed = rig.wait(&a, SessionStatus::Disconnected).await;
    let reason = failed.reason.unwrap_or_default();
    assert!(reason.contains("cleanup failed"), "{reason}");
    assert!(
        holds_credentials(&rig.live(&a)),
        "the session was left in place"
    );

    std::fs::remove_file(&blocker).unwrap();
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    rig.wait(&a, SessionStatus::QrReady).await;
    assert_eq!(healing_steps(&rig), ["wipe:bad_mac", "wipe:bad_mac"]);
    assert_eq!(rig.backups(&a).len(), 1);
}

/// An org actor that crashes while its heal's wipe is under way never hears how the
/// wipe ended; the next incarnation still heals the session it pairs again.
#[tokio::test(start_paused = true)]
async fn a_crash_during_a_heal_wipe_does_not_stop_healing_for_good() {
    let rig = Rig::with(|c| c.healing = HealingPolicy::old_rule()).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..2 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    rig.sim.inject(&a, Fault::BadMac { sender: None }).unwrap();
    // The third trips a wipe (status `connecting`); crash before the wipe reports back.
    let mut wiping = false;
    for _ in 0..1000 {
        if rig.sup.status(&a).status == SessionStatus::Connecting {
            wiping = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(wiping, "the wipe never began");
    rig.sup.crash_for_test(&a);
    rig.wait(&a, SessionStatus::QrReady).await;
    rig.sim.scan(&a, "573001234567").unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    rig.wait(&a, SessionStatus::QrReady).await;
    assert_eq!(healing_steps(&rig), ["wipe:bad_mac", "wipe:bad_mac"]);
}
