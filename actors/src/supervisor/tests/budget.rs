use super::*;

fn budget_of(per_org: usize, global: usize) -> crate::BudgetSpec {
    crate::BudgetSpec {
        per_org: WindowSpec::new(per_org, Duration::from_secs(24 * 3600)),
        global: WindowSpec::new(global, Duration::from_secs(3600)),
    }
}

/// The old server checked its limit, slept, then recorded: ten concurrent starts
/// passed a limit of three. Here exactly three pass and seven are `blocked`.
#[tokio::test(start_paused = true)]
async fn concurrent_starts_draw_exactly_the_global_budget() {
    let rig = Rig::with(|c| c.budget = budget_of(10, 3)).await;
    let orgs: Vec<OrgId> = (0..10).map(|i| org(&format!("o{i}"))).collect();
    let outcomes = start_all(&rig.sup, &orgs).await;
    let blocked = outcomes
        .iter()
        .filter(|o| o.as_ref().unwrap().snapshot.status == SessionStatus::Blocked)
        .count();
    assert_eq!(blocked, 7);
    for o in &outcomes {
        let s = &o.as_ref().unwrap().snapshot;
        assert_eq!(
            s.status == SessionStatus::Blocked,
            s.retry_at.is_some(),
            "{s:?}"
        );
    }
    let global = rig.sup.budget().global(tokio::time::Instant::now());
    assert_eq!((global.attempts, global.limit), (3, 3));
    assert!(global.blocked_for.is_some());
    // The same org started ten times at once is one attempt.
    let rig = Rig::with(|c| c.budget = budget_of(10, 3)).await;
    let a = org("same");
    let outcomes = start_all(&rig.sup, &vec![a.clone(); 10]).await;
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| !o.as_ref().unwrap().already_running)
            .count(),
        1
    );
    assert_eq!(
        rig.sup
            .budget()
            .org(&a, tokio::time::Instant::now())
            .attempts,
        1
    );
}

/// A `blocked` org retries by itself when `retry_at` passes; a start before then
/// stays `blocked`.
#[tokio::test(start_paused = true)]
async fn a_spent_org_budget_blocks_then_retries_by_itself() {
    let rig = Rig::with(|c| c.budget = budget_of(2, 60)).await;
    let a = org("2");
    for _ in 0..2 {
        rig.sup.start(&a, None).await.unwrap();
        rig.wait(&a, SessionStatus::QrReady).await;
        rig.sup.force_clean(&a).await.unwrap();
    }
    let out = rig.sup.start(&a, None).await.unwrap();
    assert_eq!(out.snapshot.status, SessionStatus::Blocked);
    let retry_at = out.snapshot.retry_at.expect("retry_at");
    assert!(retry_at > chrono::Utc::now() + chrono::Duration::hours(23));
    assert!(out.snapshot.reason.unwrap().contains("budget"));
    rig.settle_for(Duration::from_secs(3600)).await;
    let again = rig.sup.start(&a, None).await.unwrap();
    assert_eq!(again.snapshot.status, SessionStatus::Blocked, "still spent");
    assert_eq!(
        rig.sup
            .budget()
            .org(&a, tokio::time::Instant::now())
            .attempts,
        2
    );
    // A day after the first attempt, it connects on its own.
    rig.settle_for(Duration::from_secs(24 * 3600)).await;
    rig.wait(&a, SessionStatus::QrReady).await;
}

/// Reconnects inside a live session (network blips, 515, busy servers) and an
/// actor restart never draw from the budget.
#[tokio::test(start_paused = true)]
async fn reconnects_do_not_draw_from_the_budget() {
    let rig = Rig::with(|c| c.budget = budget_of(1, 60)).await;
    let a = org("2");
    rig.connect(&a, "573001234567").await; // one attempt (pairing) + the 515
    rig.inject(&a, Fault::NetworkDown).await;
    rig.settle_for(Duration::from_secs(120)).await;
    rig.inject(&a, Fault::NetworkUp).await;
    rig.wait(&a, SessionStatus::Connected).await;
    rig.inject(&a, Fault::ServerBusy { code: Some(503) }).await;
    rig.wait(&a, SessionStatus::Connected).await;
    rig.sup.crash_for_test(&a);
    rig.settle_for(Duration::from_secs(60)).await;
    rig.wait(&a, SessionStatus::Connected).await;
    let now = tokio::time::Instant::now();
    assert_eq!(rig.sup.budget().org(&a, now).attempts, 1);
    assert_eq!(rig.sup.budget().global(now).attempts, 1);
}

/// Starts every org of `orgs` at once, each from its own task.
async fn start_all(
    sup: &Supervisor,
    orgs: &[OrgId],
) -> Vec<Result<crate::StartOutcome, crate::SessionError>> {
    let mut set = tokio::task::JoinSet::new();
    for (i, o) in orgs.iter().cloned().enumerate() {
        let sup = sup.clone();
        set.spawn(async move { (i, sup.start(&o, None).await) });
    }
    let mut out: Vec<_> = set.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}
