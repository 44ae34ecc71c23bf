use super::*;

#[tokio::test(start_paused = true)]
async fn restart_required_reconnects_at_once_and_is_not_counted() {
    let rig = Rig::new().await;
    let a = org("2");
    // Pairing itself ends with a 515; then one stream error must not heal (limit 2).
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::RestartRequired).await;
        rig.wait(&a, SessionStatus::Connected).await;
        rig.inject(&a, Fault::StreamError { code: Some(515) }).await;
        rig.wait(&a, SessionStatus::Connected).await;
    }
    rig.inject(&a, Fault::StreamError { code: None }).await;
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(rig.backups(&a).is_empty());
}

#[tokio::test(start_paused = true)]
async fn server_busy_and_network_failures_back_off_without_counting() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::ServerBusy { code: Some(429) }).await;
        assert_eq!(rig.sup.status(&a).status, SessionStatus::Reconnecting);
        rig.wait(&a, SessionStatus::Connected).await;
    }
    rig.inject(&a, Fault::NetworkDown).await;
    // Many failed reconnects while the network is down: never a cleanup.
    rig.settle_for(Duration::from_secs(600)).await;
    let snapshot = rig.sup.status(&a);
    assert_eq!(snapshot.status, SessionStatus::Reconnecting, "{snapshot:?}");
    rig.inject(&a, Fault::NetworkUp).await;
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(rig.backups(&a).is_empty());
    assert!(holds_credentials(&rig.live(&a)));
}

#[tokio::test(start_paused = true)]
async fn reconnect_backoff_grows_and_is_capped() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    let mut delays = Vec::new();
    for _ in 0..9 {
        let snap = rig.sup.status(&a);
        let due = snap.next_attempt_at.expect("a backoff has a next attempt");
        // The structured time and the words agree (to the wall clock's drift
        // between computing one and stamping the snapshot).
        let ms = (due - snap.updated_at).num_milliseconds().unsigned_abs();
        let reason = snap.reason.unwrap();
        let announced: u64 = reason
            .rsplit("retrying in ")
            .next()
            .and_then(|r| r.trim_end_matches(" ms").parse().ok())
            .unwrap_or_else(|| panic!("{reason}"));
        assert!(announced.abs_diff(ms) <= 5, "{announced} vs {ms}");
        delays.push(announced);
        rig.settle_for(Duration::from_millis(announced)).await;
    }
    assert!(delays.windows(2).take(5).all(|w| w[1] > w[0]), "{delays:?}");
    assert!(delays.iter().all(|&d| d <= 60_000), "{delays:?}");
    assert!(delays[8] >= 48_000, "reaches the cap band: {delays:?}");
}

#[tokio::test(start_paused = true)]
async fn replaced_means_conflict_without_reconnect_or_wipe() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::Replaced).await;
    rig.wait(&a, SessionStatus::Conflict).await;
    rig.settle_for(Duration::from_secs(600)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Conflict);
    assert!(holds_credentials(&rig.live(&a)));
    assert!(rig.backups(&a).is_empty());
    // An explicit start takes the session back from the stored credentials.
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn logged_out_backs_up_and_wipes() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::LoggedOut { code: Some(401) }).await;
    rig.wait(&a, SessionStatus::LoggedOut).await;
    rig.settle_for(Duration::from_millis(10)).await;
    assert_eq!(rig.backups(&a).len(), 1);
    assert!(!holds_credentials(&rig.live(&a)));
    rig.settle_for(Duration::from_secs(600)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::LoggedOut);
    // start-session gives a new QR.
    rig.show_qr(&a).await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_ban_waits_for_its_expiry() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::TemporaryBan { seconds: Some(900) })
        .await;
    let banned = rig.wait(&a, SessionStatus::Banned).await;
    let retry_at = banned.retry_at.expect("retry_at");
    let left = retry_at - chrono::Utc::now();
    assert!(left > chrono::Duration::seconds(890) && left <= chrono::Duration::seconds(900));
    let started = rig.sup.start(&a, None).await.unwrap();
    assert!(
        started.already_running,
        "an explicit start does not break a ban"
    );
    rig.settle_for(Duration::from_secs(890)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Banned);
    rig.settle_for(Duration::from_secs(11)).await;
    rig.wait(&a, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn a_ban_survives_a_crash_of_its_actor() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::TemporaryBan { seconds: Some(600) })
        .await;
    rig.wait(&a, SessionStatus::Banned).await;
    rig.sup.crash_for_test(&a);
    rig.settle_for(Duration::from_secs(5)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Banned);
    rig.settle_for(Duration::from_secs(500)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Banned);
    rig.settle_for(Duration::from_secs(100)).await;
    rig.wait(&a, SessionStatus::Connected).await;
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn client_outdated_stops() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::ClientOutdated).await;
    rig.wait(&a, SessionStatus::ClientOutdated).await;
    rig.settle_for(Duration::from_secs(600)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::ClientOutdated);
    assert!(holds_credentials(&rig.live(&a)));
}

#[tokio::test(start_paused = true)]
async fn unscanned_qr_codes_run_out_into_disconnected() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.sup.start(&a, None).await.unwrap();
    let first = rig.wait(&a, SessionStatus::QrReady).await.qr.unwrap();
    let rotated = rig
        .sup
        .wait_for(&a, LONG, |s| s.qr.as_ref().is_some_and(|q| *q != first))
        .await;
    assert!(rotated.is_some(), "the QR rotates");
    let done = rig.wait(&a, SessionStatus::Disconnected).await;
    assert!(done.qr.is_none());
    // start-session resumes from disconnected.
    rig.show_qr(&a).await;

    rig.inject(&a, Fault::QrExhausted).await;
    rig.wait(&a, SessionStatus::Disconnected).await;
}
