use super::*;

#[tokio::test(start_paused = true)]
async fn three_bad_macs_back_up_wipe_and_pair_again() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    let snapshot = rig.wait(&a, SessionStatus::QrReady).await;
    assert!(snapshot.qr.is_some());
    assert_eq!(snapshot.phone_number, None);
    let backups = rig.backups(&a);
    assert_eq!(backups.len(), 1);
    assert!(backups[0].ends_with("_bad_mac"), "{backups:?}");
    let backup = rig.root.path().join("_backups/2").join(&backups[0]);
    assert!(
        holds_credentials(&backup),
        "the backup holds the credentials file"
    );
    assert_eq!(
        std::fs::read_dir(rig.live(&a)).unwrap().count(),
        0,
        "live dir empty"
    );
    assert_eq!(rig.sim.overlaps(), 0);
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
}

#[tokio::test(start_paused = true)]
async fn five_cleanups_keep_three_backups() {
    let rig = Rig::with(|c| c.cleanups = WindowSpec::new(10, LONG)).await;
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
async fn a_stream_error_reconnects_and_two_heal() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::StreamError { code: None }).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Reconnecting);
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(rig.backups(&a).is_empty());

    rig.inject(&a, Fault::StreamError { code: Some(500) }).await;
    let snapshot = rig.wait(&a, SessionStatus::QrReady).await;
    assert!(snapshot.qr.is_some());
    assert_eq!(rig.backups(&a).len(), 1);
    assert!(rig.backups(&a)[0].ends_with("_stream_errors"));
}
