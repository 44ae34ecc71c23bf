//! Restoring a backup as an org's live session, the supervisor's part: stop the
//! session, have the storage actor swap the directories, start the org again.
//!
//! It runs inside the supervisor's handler on purpose: no start, clean or respawn
//! of the org can interleave with the renames. The wait is bounded (the org's
//! flushed shutdown, then two renames); sessions keep running meanwhile, only
//! requests to the supervisor queue.

use ractor::ActorRef;
use tokio::sync::watch;

use super::{SupervisorMsg, SupervisorState};
use crate::session::Begin;
use crate::storage::backups::{self, RestoreError};
use crate::storage::{self, StorageMsg};
use crate::supervisor::RestoreOutcome;
use crate::{OrgId, SessionError, SessionSnapshot, SessionStatus};

impl SupervisorState {
    /// Makes the backup `name` the org's live session and resumes it: a running
    /// session is stopped first (flushed, never logged out) and kept as a
    /// `before_restore` backup. Whatever happens on disk, the org is started again
    /// from what is live afterwards.
    pub(super) async fn restore(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        org: &OrgId,
        name: String,
    ) -> Result<RestoreOutcome, SessionError> {
        // Refuse a bad or unknown name before stopping anything.
        if backups::parse_name(&name).is_none() {
            return Err(SessionError::InvalidBackupName(name));
        }
        let id = org.clone();
        let listed = storage::ask(&self.storage, |reply| StorageMsg::ListBackups {
            org: id,
            reply,
        })
        .await
        .map_err(|e| SessionError::Storage(e.0))?;
        if !listed.iter().any(|b| b.name == name) {
            return Err(SessionError::UnknownBackup(name));
        }

        let (snapshot, lease) = match self.registry.read().unwrap().get(org) {
            Some(slot) => (Some(slot.snapshot.clone()), Some(slot.lease.clone())),
            None => (None, None),
        };
        if let Some(actor) = self.running(org) {
            publish_restoring(snapshot.as_ref(), &name);
            // Unlinked first: a linked actor's state (and with it its driver, which
            // holds the store's lease) would travel to this supervisor inside the
            // termination event, queued behind this very handler; unlinked, it is
            // dropped as soon as the actor stops.
            actor.get_cell().unlink(myself.get_cell());
            self.forget(&actor.get_cell());
            let grace = self.config.shutdown_grace * 3;
            if actor
                .stop_and_wait(Some("restore".into()), Some(grace))
                .await
                .is_err()
            {
                tracing::error!(org_id = %org, "the session did not stop in time; nothing was restored");
                if let Some(snapshot) = &snapshot {
                    snapshot.send_modify(|s| {
                        s.status = SessionStatus::Disconnected;
                        s.reason = Some("the session did not stop for the restore".into());
                    });
                }
                return Err(SessionError::Unavailable);
            }
        }
        // The stopped actor's driver lets go of the store once its connection is shut.
        let held = match &lease {
            Some(lease) => Some(lease.clone().lock_owned().await),
            None => None,
        };
        let id = org.clone();
        let restored = storage::ask_restore(&self.storage, id, name).await;
        drop(held);

        self.phones.release(org);
        if let Some(snapshot) = &snapshot {
            snapshot.send_replace(SessionSnapshot::not_started(org.clone()));
        }
        let started = self
            .spawn_org(
                myself,
                org,
                Begin::Start {
                    phone_for_code: None,
                },
            )
            .await;
        let restored = restored.map_err(|e| match e {
            RestoreError::InvalidName(name) => SessionError::InvalidBackupName(name),
            RestoreError::UnknownBackup(name) => SessionError::UnknownBackup(name),
            RestoreError::Storage(e) => SessionError::Storage(e),
        })?;
        Ok(RestoreOutcome {
            snapshot: started?,
            restored: restored.restored,
            before_restore: restored.before_restore,
        })
    }
}

/// While the session stops and the directories move, readers see `reconnecting`
/// (never `disconnected`, which the deployed client answers with a clean).
fn publish_restoring(snapshot: Option<&watch::Sender<SessionSnapshot>>, name: &str) {
    if let Some(snapshot) = snapshot {
        snapshot.send_modify(|s| {
            s.status = SessionStatus::Reconnecting;
            s.qr = None;
            s.pairing_code = None;
            s.retry_at = None;
            s.reason = Some(format!("restoring backup {name}"));
            s.updated_at = chrono::Utc::now();
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use tempfile::TempDir;

    use crate::connection::sim::{CREDENTIALS_FILE, Fault, SimConnector, SimTiming};
    use crate::storage::{backups, fs_ops};
    use crate::supervisor::Supervisor;
    use crate::{OrgId, SessionError, SessionStatus, SupervisorConfig};

    const LONG: Duration = Duration::from_secs(3600);

    async fn rig() -> (Supervisor, SimConnector, TempDir) {
        let root = tempfile::tempdir().unwrap();
        let sim = SimConnector::new(SimTiming::default());
        let sup = Supervisor::spawn(SupervisorConfig::new(root.path()), Arc::new(sim.clone()))
            .await
            .unwrap();
        (sup, sim, root)
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

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_healed_session_comes_back_from_its_backup_without_a_qr() {
        let (sup, sim, root) = rig().await;
        let a = org("2");
        pair(&sup, &sim, &a, "573001234567").await;
        for _ in 0..3 {
            sim.inject(&a, Fault::BadMac).unwrap();
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
        sup.send_text(&a, "573009999999", "hola").await.unwrap();
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
}
