use super::*;

#[tokio::test(start_paused = true)]
async fn start_scan_connect_and_send() {
    let rig = Rig::new().await;
    let a = org("2");
    let started = rig.sup.start(&a, None).await.unwrap();
    assert!(!started.already_running);
    let qr = rig.wait(&a, SessionStatus::QrReady).await;
    assert_eq!(qr.qr, rig.sim.current_qr(&a));
    rig.sim.scan(&a, "573001234567").unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    assert!(holds_credentials(&rig.live(&a)));

    let sent = rig
        .sup
        .send_text(&a, "573009999999", "Su cita es mañana", None)
        .await
        .unwrap();
    let log = rig.sim.sent(&a);
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].message_id, sent.message_id);
    assert_eq!(log[0].to, "573009999999");

    let again = rig.sup.start(&a, None).await.unwrap();
    assert!(again.already_running, "a running session is left alone");
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_one_org_leaves_the_others_alone() {
    let rig = Rig::new().await;
    let (a, b) = (org("a"), org("b"));
    rig.connect(&a, "573001111111").await;
    rig.connect(&b, "573002222222").await;
    let b_before = rig.sup.status(&b);
    rig.sup.crash_for_test(&a);
    settle().await;
    // The supervisor restarts `a` and it resumes from its stored credentials.
    rig.wait(&a, SessionStatus::Connected).await;
    let b_after = rig.sup.status(&b);
    assert_eq!(b_after.status, SessionStatus::Connected);
    assert_eq!(
        b_after.updated_at, b_before.updated_at,
        "b was never touched"
    );
    rig.sup
        .send_text(&b, "573009999999", "hola", None)
        .await
        .unwrap();
    rig.sup
        .send_text(&a, "573009999999", "hola", None)
        .await
        .unwrap();
    assert_eq!(rig.sim.overlaps(), 0, "never two clients on one store");
}

#[tokio::test(start_paused = true)]
async fn too_many_cleanups_quarantine_until_an_explicit_start() {
    // Every trip wipes (the old rule), so three trips are three cleanups.
    let rig = Rig::with(|c| c.healing = crate::healing::HealingPolicy::old_rule()).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.inject(&a, Fault::BadMac { sender: None }).await;
        rig.wait(&a, SessionStatus::QrReady).await;
        rig.sim.scan(&a, "573001234567").unwrap();
        rig.wait(&a, SessionStatus::Connected).await;
    }
    assert_eq!(rig.backups(&a).len(), 3);
    for _ in 0..3 {
        rig.inject(&a, Fault::BadMac { sender: None }).await;
    }
    let q = rig.wait(&a, SessionStatus::Quarantined).await;
    assert!(q.reason.unwrap().contains("automatic cleanups"));
    // Quarantine keeps the session as it is and does not loop.
    assert_eq!(rig.backups(&a).len(), 3);
    assert!(holds_credentials(&rig.live(&a)));
    rig.settle_for(Duration::from_secs(7200)).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Quarantined);
    rig.sup.start(&a, None).await.unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn one_number_serves_one_org() {
    let rig = Rig::new().await;
    let (a, b) = (org("a"), org("b"));
    rig.connect(&a, "573001234567").await;
    rig.show_qr(&b).await;
    rig.sim.scan(&b, "573001234567").unwrap();
    let _refused = rig.wait(&b, SessionStatus::NumberInUse).await;
    rig.settle_for(Duration::from_millis(10)).await;
    assert!(
        !holds_credentials(&rig.live(&b)),
        "the second pairing is wiped"
    );
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Connected);
    rig.sup
        .send_text(&a, "573009999999", "hola", None)
        .await
        .unwrap();
    // Once `a` logs out, the number is free for `b`.
    rig.sup.logout(&a).await.unwrap();
    rig.show_qr(&b).await;
    rig.sim.scan(&b, "573001234567").unwrap();
    rig.wait(&b, SessionStatus::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn a_send_while_reconnecting_waits_for_the_connection() {
    let rig = Rig::with(|c| c.send_wait = Duration::from_secs(20)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    assert_eq!(rig.sup.status(&a).status, SessionStatus::Reconnecting);

    let sup = rig.sup.clone();
    let org_a = a.clone();
    let send =
        tokio::spawn(async move { sup.send_text(&org_a, "573009999999", "hola", None).await });
    rig.settle_for(Duration::from_secs(2)).await;
    rig.inject(&a, Fault::NetworkUp).await;
    let sent = send
        .await
        .unwrap()
        .expect("sent once the connection came back");
    assert_eq!(rig.sim.sent(&a)[0].message_id, sent.message_id);
}

#[tokio::test(start_paused = true)]
async fn a_send_while_reconnecting_fails_with_the_status_after_the_wait() {
    let rig = Rig::with(|c| c.send_wait = Duration::from_secs(20)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.inject(&a, Fault::NetworkDown).await;
    let result = rig.sup.send_text(&a, "573009999999", "hola", None).await;
    assert_eq!(
        result,
        Err(SendError::NotConnected {
            status: SessionStatus::Reconnecting
        })
    );
    assert!(rig.sim.sent(&a).is_empty());
}

#[tokio::test(start_paused = true)]
async fn sends_fail_clearly_without_a_connected_session() {
    let rig = Rig::new().await;
    let a = org("2");
    assert_eq!(
        rig.sup.send_text(&a, "573009999999", "x", None).await,
        Err(SendError::NoSession)
    );
    rig.show_qr(&a).await;
    assert_eq!(
        rig.sup.send_text(&a, "573009999999", "x", None).await,
        Err(SendError::NotConnected {
            status: SessionStatus::QrReady
        })
    );
    rig.sim.scan(&a, "573001234567").unwrap();
    rig.wait(&a, SessionStatus::Connected).await;
    // A send the connection refuses is tried again, with the same id.
    rig.inject(&a, Fault::SendFails).await;
    let sent = rig
        .sup
        .send_text(&a, "573009999999", "x", None)
        .await
        .unwrap();
    let id = crate::outbox::MessageId::parse(&sent.message_id).unwrap();
    let record = rig.sup.outbox().get(&id).await.unwrap().unwrap();
    assert_eq!(record.attempts, 2);
    assert_eq!(rig.sim.sent(&a).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn logout_and_force_clean_remove_the_live_session() {
    let rig = Rig::new().await;
    let a = org("2");
    assert_eq!(
        rig.sup.logout(&a).await,
        Err(crate::SessionError::NoSession)
    );
    rig.connect(&a, "573001234567").await;
    let out = rig.sup.logout(&a).await.unwrap();
    assert!(out.backup.is_some());
    assert!(!rig.live(&a).exists(), "live directory gone");
    assert_eq!(rig.sup.status(&a).status, SessionStatus::NotStarted);
    assert!(rig.sup.sessions().is_empty());

    rig.connect(&a, "573001234567").await;
    rig.sup.shutdown().await;
    // A clean on a stopped supervisor's directory, from a new one.
    let sim = SimConnector::default();
    let sup = spawn_sup(
        SupervisorConfig::new(rig.root.path()),
        Arc::new(sim),
        no_events(),
    )
    .await;
    let out = sup.force_clean(&a).await.unwrap();
    assert!(out.backup.is_some());
    assert!(!rig.live(&a).exists());
    assert_eq!(sup.force_clean(&org("never")).await.unwrap().backup, None);
}

#[tokio::test(start_paused = true)]
async fn stored_sessions_resume_without_a_qr() {
    let rig = Rig::new().await;
    let a = org("2");
    rig.connect(&a, "573001234567").await;
    rig.sup.shutdown().await;
    assert!(holds_credentials(&rig.live(&a)), "shutdown never logs out");

    let sup = spawn_sup(
        SupervisorConfig::new(rig.root.path()),
        Arc::new(rig.sim.clone()),
        no_events(),
    )
    .await;
    assert_eq!(
        sup.resume_stored(Duration::from_millis(250)).await.unwrap(),
        vec![a.clone()]
    );
    let seen = sup
        .wait_for(&a, LONG, |s| {
            assert_ne!(s.status, SessionStatus::QrReady, "no QR on resume");
            s.status == SessionStatus::Connected
        })
        .await;
    assert!(seen.is_some());
    assert_eq!(rig.sim.overlaps(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_escaping_org_id_never_reaches_the_disk() {
    let rig = Rig::new().await;
    for raw in ["../x", "..", "", "a/b", "_backups"] {
        assert!(raw.parse::<OrgId>().is_err(), "{raw:?}");
    }
    // The sessions directory's parent is shared (the system's temporary
    // directory), so only the store itself is inspected: an id that does not
    // parse never becomes an `OrgId`, and nothing reaches the disk.
    let entries = std::fs::read_dir(rig.root.path()).unwrap().count();
    assert_eq!(entries, 0, "nothing was created");
}

/// A stored session whose store cannot be read right now reads `reconnecting`
/// while it retries, never `connecting` (on which the deployed client cleans it).
#[tokio::test(start_paused = true)]
async fn an_unreadable_stored_session_reads_reconnecting() {
    let rig = Rig::new().await;
    let a = org("2");
    // The credentials' place holds a directory: reading it fails (EISDIR), a
    // failure of the moment, not a corrupt store.
    std::fs::create_dir_all(rig.live(&a).join(crate::connection::sim::CREDENTIALS_FILE)).unwrap();
    assert_eq!(
        rig.sup.resume_stored(Duration::ZERO).await.unwrap(),
        vec![a.clone()]
    );
    let mut seen = Vec::new();
    for _ in 0..30 {
        rig.settle_for(Duration::from_secs(1)).await;
        seen.push(rig.sup.status(&a).status);
    }
    assert!(seen.contains(&SessionStatus::Reconnecting), "{seen:?}");
    assert!(
        seen.iter().all(|s| *s == SessionStatus::Reconnecting),
        "{seen:?}"
    );
    assert!(rig.backups(&a).is_empty(), "nothing was wiped");
}
