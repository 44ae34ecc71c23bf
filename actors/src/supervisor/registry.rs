//! The table every reader shares: org id → its snapshot, its current actor, and the
//! things that must outlive one actor's crash (store lease, cleanup history).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use ractor::ActorRef;
use tokio::sync::watch;

use crate::healing::{Healer, HealingPolicy};
use crate::session::OrgMsg;
use crate::{ErrorWindow, OrgId, SessionSnapshot, SessionStatus, WindowSpec};

#[derive(Clone, Default)]
pub(crate) struct Registry(Arc<RwLock<HashMap<OrgId, OrgSlot>>>);

/// Everything about one org that lives longer than one incarnation of its actor.
pub(crate) struct OrgSlot {
    /// The latest snapshot; the org actor publishes, everyone else reads.
    pub snapshot: watch::Sender<SessionSnapshot>,
    /// The running actor, if any.
    pub actor: Option<ActorRef<OrgMsg>>,
    /// Held by whoever has the org's store open. A restarted actor's connection waits
    /// for the crashed one's to shut down, so two clients never share a store.
    pub lease: Arc<tokio::sync::Mutex<()>>,
    /// Automatic cleanups, for restart intensity (CONTRACT §5).
    pub cleanups: Arc<Mutex<ErrorWindow>>,
    /// Error windows and healing restarts (CONTRACT §11): a crash forgets neither.
    pub healer: Arc<Mutex<Healer>>,
}

impl OrgSlot {
    fn new(org: &OrgId, cleanups: WindowSpec, healing: HealingPolicy) -> Self {
        Self {
            snapshot: watch::Sender::new(SessionSnapshot::not_started(org.clone())),
            actor: None,
            lease: Arc::new(tokio::sync::Mutex::new(())),
            cleanups: Arc::new(Mutex::new(ErrorWindow::new(cleanups))),
            healer: Arc::new(Mutex::new(Healer::new(healing))),
        }
    }
}

/// What a new incarnation of an org actor shares with the ones before it.
pub(crate) struct Shared {
    pub snapshot: watch::Sender<SessionSnapshot>,
    pub lease: Arc<tokio::sync::Mutex<()>>,
    pub cleanups: Arc<Mutex<ErrorWindow>>,
    pub healer: Arc<Mutex<Healer>>,
}

impl Registry {
    /// The org's slot, created the first time.
    pub(crate) fn shared(
        &self,
        org: &OrgId,
        cleanups: WindowSpec,
        healing: HealingPolicy,
    ) -> Shared {
        let mut map = self.0.write().unwrap();
        let slot = map
            .entry(org.clone())
            .or_insert_with(|| OrgSlot::new(org, cleanups, healing));
        Shared {
            snapshot: slot.snapshot.clone(),
            lease: slot.lease.clone(),
            cleanups: slot.cleanups.clone(),
            healer: slot.healer.clone(),
        }
    }

    pub(crate) fn actor(&self, org: &OrgId) -> Option<ActorRef<OrgMsg>> {
        self.0.read().unwrap().get(org)?.actor.clone()
    }

    pub(crate) fn set_actor(&self, org: &OrgId, actor: Option<ActorRef<OrgMsg>>) {
        if let Some(slot) = self.0.write().unwrap().get_mut(org) {
            slot.actor = actor;
        }
    }

    /// Forgets the actor of `org` if it is still `id` (a successor may be in place).
    pub(crate) fn clear_actor(&self, org: &OrgId, id: ractor::ActorId) {
        if let Some(slot) = self.0.write().unwrap().get_mut(org)
            && slot.actor.as_ref().is_some_and(|a| a.get_id() == id)
        {
            slot.actor = None;
        }
    }

    pub(crate) fn lease(&self, org: &OrgId) -> Option<Arc<tokio::sync::Mutex<()>>> {
        Some(self.0.read().unwrap().get(org)?.lease.clone())
    }

    pub(crate) fn snapshot(&self, org: &OrgId) -> SessionSnapshot {
        match self.0.read().unwrap().get(org) {
            Some(slot) => slot.snapshot.borrow().clone(),
            None => SessionSnapshot::not_started(org.clone()),
        }
    }

    pub(crate) fn status(&self, org: &OrgId) -> SessionStatus {
        match self.0.read().unwrap().get(org) {
            Some(slot) => slot.snapshot.borrow().status,
            None => SessionStatus::NotStarted,
        }
    }

    /// Publishes a snapshot from elsewhere (another node) for an org without an
    /// actor here; a running actor's own snapshot is never overwritten.
    pub(crate) fn show_remote(
        &self,
        snapshot: SessionSnapshot,
        cleanups: WindowSpec,
        healing: HealingPolicy,
    ) {
        let mut map = self.0.write().unwrap();
        let org = snapshot.organization_id.clone();
        if !map.contains_key(&org) && snapshot.status == SessionStatus::NotStarted {
            return;
        }
        let slot = map
            .entry(org)
            .or_insert_with(|| OrgSlot::new(&snapshot.organization_id, cleanups, healing));
        if slot.actor.is_some() {
            return;
        }
        slot.snapshot.send_if_modified(|now| {
            let changed = *now != snapshot;
            if changed {
                *now = snapshot;
            }
            changed
        });
    }

    /// Publishes `not_started` for an org whose session was removed.
    pub(crate) fn mark_removed(&self, org: &OrgId) {
        if let Some(slot) = self.0.read().unwrap().get(org) {
            slot.snapshot
                .send_replace(SessionSnapshot::not_started(org.clone()));
        }
    }

    pub(crate) fn watch(&self, org: &OrgId) -> Option<watch::Receiver<SessionSnapshot>> {
        Some(self.0.read().unwrap().get(org)?.snapshot.subscribe())
    }

    /// Every org that has a session (not `not_started`), ordered by id.
    pub(crate) fn sessions(&self) -> Vec<SessionSnapshot> {
        let mut all: Vec<SessionSnapshot> = self
            .0
            .read()
            .unwrap()
            .values()
            .map(|slot| slot.snapshot.borrow().clone())
            .filter(|s| s.status != SessionStatus::NotStarted)
            .collect();
        all.sort_by(|a, b| a.organization_id.cmp(&b.organization_id));
        all
    }

    /// Every running actor.
    pub(crate) fn actors(&self) -> Vec<ActorRef<OrgMsg>> {
        self.0
            .read()
            .unwrap()
            .values()
            .filter_map(|slot| slot.actor.clone())
            .collect()
    }
}
