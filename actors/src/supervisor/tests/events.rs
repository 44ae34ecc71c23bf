use super::*;

#[tokio::test(start_paused = true)]
async fn every_step_of_a_session_is_reported_in_order() {
    use crate::EventKind as K;
    let root = tempfile::tempdir().unwrap();
    let sim = SimConnector::default();
    let recorder = Arc::new(Recorder::default());
    let mut config = SupervisorConfig::new(root.path());
    // One attempt per message, so a refused send fails at once.
    config.outbox.max_attempts = 1;
    // The trip below wipes at once.
    config.healing.restart_first = false;
    let sup = spawn_sup(config, Arc::new(sim.clone()), recorder.clone()).await;
    let (a, b) = (org("a"), org("b"));
    sup.start(&b, None).await.unwrap();
    pair(&sup, &sim, &a, "573001234567").await;
    sup.send_text(&a, "573009999999", "hola", None)
        .await
        .unwrap();
    sim.inject(&a, Fault::SendFails).unwrap();
    assert!(
        sup.send_text(&a, "573009999999", "hola", None)
            .await
            .is_err()
    );
    for _ in 0..3 {
        sim.inject(&a, Fault::BadMac { sender: None }).unwrap();
        settle().await;
    }
    sup.wait_for(&a, LONG, |s| s.status == SessionStatus::QrReady)
        .await
        .unwrap();
    settle().await;

    let events = recorder.0.lock().unwrap().clone();
    assert!(events.iter().all(|e| e.org == a || e.org == b));
    let names: Vec<String> = events
        .iter()
        .filter(|e| e.org == a)
        .map(|e| match &e.kind {
            K::StatusChanged { .. } => format!("status:{}", e.status),
            K::Qr { .. } => "qr".into(),
            K::Connected { phone } => format!("connected:{phone}"),
            K::Cleaned { reason, backup } => {
                assert!(backup.is_some());
                format!("cleaned:{reason}")
            }
            K::DecryptError => "decrypt".into(),
            K::StreamError { .. } => "stream".into(),
            K::Message(m) => format!("message:{}:{}", m.status, m.to),
            K::Healing { window, .. } => format!("healing:{window}"),
        })
        .collect();
    let expected = [
        "status:connecting",
        "status:qr_ready",
        "qr",
        "status:reconnecting",
        "status:connected",
        "connected:573001234567",
        "message:sent:573009999999",
        "message:failed:573009999999",
        "decrypt",
        "decrypt",
        "decrypt",
        "healing:bad_mac",
        "status:connecting",
        "cleaned:bad_mac",
        "status:qr_ready",
        "qr",
    ];
    // The QR rotates only after 60 s, so nothing else can sneak in.
    assert_eq!(names, expected, "{names:?}");
}

#[tokio::test(start_paused = true)]
async fn stored_sessions_resume_one_after_another() {
    let rig = Rig::new().await;
    let orgs = [org("a"), org("b"), org("c")];
    for (i, o) in orgs.iter().enumerate() {
        rig.connect(o, &format!("57300000000{i}")).await;
    }
    rig.sup.shutdown().await;
    let sup = spawn_sup(
        SupervisorConfig::new(rig.root.path()),
        Arc::new(rig.sim.clone()),
        no_events(),
    )
    .await;
    let started = |sup: &Supervisor| {
        orgs.iter()
            .filter(|o| sup.status(o).status != SessionStatus::NotStarted)
            .count()
    };
    let resume = tokio::spawn({
        let sup = sup.clone();
        async move { sup.resume_stored(Duration::from_secs(1)).await }
    });
    settle().await;
    assert_eq!(started(&sup), 1, "the first at once");
    tokio::time::advance(Duration::from_millis(450)).await;
    settle().await;
    assert_eq!(started(&sup), 1, "no second before half the gap");
    tokio::time::advance(Duration::from_millis(1100)).await;
    settle().await;
    assert_eq!(started(&sup), 2, "the second within 1.5 gaps");
    assert_eq!(resume.await.unwrap().unwrap().len(), 3);
    for o in &orgs {
        sup.wait_for(o, LONG, |s| s.status == SessionStatus::Connected)
            .await
            .unwrap();
    }
}
