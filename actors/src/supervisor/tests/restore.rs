//! Restoring a backup (CONTRACT §12) through the actor tree: the org's actor stops
//! its connection, the storage actor swaps the directories, the session resumes.

use super::*;
use crate::SessionError;
use crate::storage::backups;

/// Every trip wipes at once here: these tests restore what a heal backed up.
async fn rig() -> (Supervisor, SimConnector, TempDir) {
    let rig = Rig::with(|c| c.healing = crate::healing::HealingPolicy::old_rule()).await;
    (rig.sup, rig.sim, rig.root)
}

async fn wait(sup: &Supervisor, org: &OrgId, status: SessionStatus) {
    if sup
        .wait_for(org, LONG, |s| s.status == status)
        .await
        .is_none()
    {
        panic!("{org} never reached {status}; now {:?}", sup.status(org));
    }
}

async fn pair(sup: &Supervisor, sim: &SimConnector, org: &OrgId, phone: &str) {
    sup.start(org, None).await.unwrap();
    wait(sup, org, SessionStatus::QrReady).await;
    sim.scan(org, phone).unwrap();
    wait(sup, org, SessionStatus::Connected).await;
}

fn phone_in(dir: &Path) -> String {
    let creds = std::fs::read(dir.join(CREDENTIALS_FILE)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&creds).unwrap();
    v["phone"].as_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_healed_session_comes_back_from_its_backup_without_a_qr() {
    let (sup, sim, root) = rig().await;
    let a = org("2");
    pair(&sup, &sim, &a, "573001234567").await;
    for _ in 0..3 {
        sim.inject(&a, Fault::BadMac { sender: None }).unwrap();
    }
    wait(&sup, &a, SessionStatus::QrReady).await;
    let listed = sup.backups(&a).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].reason, "bad_mac");

    let done = sup.restore(&a, &listed[0].name).await.unwrap();
    assert_eq!(done.restored, listed[0].name);
    // The pairing that was showing a QR had nothing stored to keep.
    assert_eq!(done.before_restore, None);
    wait(&sup, &a, SessionStatus::Connected).await;
    let now = sup.status(&a);
    assert_eq!(now.phone_number.as_deref(), Some("573001234567"));
    assert_eq!(now.qr, None);
    assert_eq!(sim.current_qr(&a), None, "no QR shown after the restore");
    assert_eq!(sim.overlaps(), 0, "the old connection was closed first");
    assert_eq!(sup.backups(&a).await.unwrap(), []);
    let live = fs_ops::live_dir(root.path(), &a);
    assert_eq!(phone_in(&live), "573001234567");
    // It sends again.
    sup.send_text(&a, "573009999999", "hola", None)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_running_session_is_kept_as_before_restore() {
    let (sup, sim, root) = rig().await;
    let a = org("3");
    pair(&sup, &sim, &a, "573001111111").await;
    let cleaned = sup.force_clean(&a).await.unwrap().backup.unwrap();
    pair(&sup, &sim, &a, "573002222222").await;

    let done = sup.restore(&a, &cleaned).await.unwrap();
    let kept = done.before_restore.expect("the running session was kept");
    wait(&sup, &a, SessionStatus::Connected).await;
    assert_eq!(sup.status(&a).phone_number.as_deref(), Some("573001111111"));
    let listed = sup.backups(&a).await.unwrap();
    assert_eq!(listed[0].name, kept);
    assert_eq!(listed[0].reason, backups::BEFORE_RESTORE);
    let kept_dir = fs_ops::backups_dir(root.path(), &a).join(&kept);
    assert_eq!(phone_in(&kept_dir), "573002222222");
    assert_eq!(sim.overlaps(), 0);

    // And back again: the replaced session is one restore away.
    sup.restore(&a, &kept).await.unwrap();
    wait(&sup, &a, SessionStatus::Connected).await;
    assert_eq!(sup.status(&a).phone_number.as_deref(), Some("573002222222"));
}

#[tokio::test(start_paused = true)]
async fn bad_and_unknown_names_stop_nothing() {
    let (sup, sim, root) = rig().await;
    let a = org("4");
    pair(&sup, &sim, &a, "573003333333").await;
    for bad in ["../4", "..", "x/y", ""] {
        assert_eq!(
            sup.restore(&a, bad).await,
            Err(SessionError::InvalidBackupName(bad.into()))
        );
    }
    let absent = "20261123T071533.000000Z_bad_mac";
    assert_eq!(
        sup.restore(&a, absent).await,
        Err(SessionError::UnknownBackup(absent.into()))
    );
    let now = sup.status(&a);
    assert_eq!(now.status, SessionStatus::Connected);
    assert_eq!(now.reason.as_deref(), Some("connected"), "never stopped");
    assert_eq!(phone_in(&fs_ops::live_dir(root.path(), &a)), "573003333333");
    // An org that never ran has no backups, and nothing to restore.
    assert_eq!(sup.backups(&org("none")).await.unwrap(), []);
}

#[tokio::test(start_paused = true)]
async fn an_org_without_a_running_session_is_started_from_the_backup() {
    let (sup, sim, _root) = rig().await;
    let a = org("5");
    pair(&sup, &sim, &a, "573004444444").await;
    let cleaned = sup.force_clean(&a).await.unwrap().backup.unwrap();
    assert_eq!(sup.status(&a).status, SessionStatus::NotStarted);
    let done = sup.restore(&a, &cleaned).await.unwrap();
    assert_eq!(done.before_restore, None);
    wait(&sup, &a, SessionStatus::Connected).await;
    assert_eq!(sup.status(&a).phone_number.as_deref(), Some("573004444444"));
}
