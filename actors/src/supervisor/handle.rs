//! The [`Supervisor`] handle: the one door the daemon uses into the actor tree.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::{Actor, ActorRef, rpc::CallResult};
use tokio::sync::watch;

use super::actor::{SupervisorActor, SupervisorArgs, SupervisorMsg};
use super::registry::Registry;
use crate::connection::Connector;
use crate::events::{EventSink, NoEvents};
use crate::session::OrgMsg;
use crate::storage::backups::BackupInfo;
use crate::{
    ConnectionBudget, OrgId, SendError, SessionError, SessionSnapshot, SessionStatus,
    SupervisorConfig,
};

/// What `start` found and did.
#[derive(Clone, Debug, PartialEq)]
pub struct StartOutcome {
    pub snapshot: SessionSnapshot,
    /// The session was already running (nothing was restarted).
    pub already_running: bool,
}

/// A message WhatsApp accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentMessage {
    pub message_id: String,
    /// The recipient, digits only.
    pub phone: String,
}

/// What a logout or a forced clean did to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanOutcome {
    /// The backup's directory name under `_backups/<org>/`, when there was anything
    /// to back up.
    pub backup: Option<String>,
}

/// What a restore did.
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreOutcome {
    /// The org's snapshot right after it was started again.
    pub snapshot: SessionSnapshot,
    /// The backup that is now the live session.
    pub restored: String,
    /// The backup made of the session it replaced (`None`: nothing was live).
    pub before_restore: Option<String>,
}

/// A cheap, cloneable handle on the running actor tree.
#[derive(Clone)]
pub struct Supervisor {
    actor: ActorRef<SupervisorMsg>,
    registry: Registry,
    call_timeout: Duration,
    send_timeout: Duration,
    budget: Arc<ConnectionBudget>,
}

impl Supervisor {
    /// Starts the storage actor and the root supervisor.
    pub async fn spawn(
        config: SupervisorConfig,
        connector: Arc<dyn Connector>,
    ) -> Result<Self, SessionError> {
        Self::spawn_with_events(config, connector, Arc::new(NoEvents)).await
    }

    /// Like [`Supervisor::spawn`], reporting every session event to `events`.
    pub async fn spawn_with_events(
        config: SupervisorConfig,
        connector: Arc<dyn Connector>,
        events: Arc<dyn EventSink>,
    ) -> Result<Self, SessionError> {
        let registry: Registry = Arc::new(RwLock::new(HashMap::new()));
        let send_timeout = config.send_wait + config.shutdown_grace + Duration::from_secs(30);
        let call_timeout = config.shutdown_grace * 2 + Duration::from_secs(30);
        let budget = Arc::new(ConnectionBudget::new(config.budget));
        let (actor, _join) = Actor::spawn(
            None,
            SupervisorActor,
            SupervisorArgs {
                config: Arc::new(config),
                connector,
                registry: registry.clone(),
                events,
                budget: budget.clone(),
            },
        )
        .await
        .map_err(|e| SessionError::Storage(e.to_string()))?;
        Ok(Self {
            actor,
            registry,
            call_timeout,
            send_timeout,
            budget,
        })
    }

    /// Starts (or resumes) an org's session. Stored credentials are resumed, never
    /// wiped; a running session is left alone. `phone_for_code` asks for a pairing
    /// code beside the QR.
    pub async fn start(
        &self,
        org: &OrgId,
        phone_for_code: Option<String>,
    ) -> Result<StartOutcome, SessionError> {
        let org = org.clone();
        self.call(
            |reply| SupervisorMsg::Start {
                org,
                phone_for_code,
                reply,
            },
            self.call_timeout,
        )
        .await?
    }

    /// The connection-attempt budget (CONTRACT §6), shared with every org actor.
    pub fn budget(&self) -> &ConnectionBudget {
        &self.budget
    }

    /// The snapshot of one org (`not_started` when it has no session).
    pub fn status(&self, org: &OrgId) -> SessionSnapshot {
        let registry = self.registry.read().unwrap();
        match registry.get(org) {
            Some(slot) => slot.snapshot.borrow().clone(),
            None => SessionSnapshot::not_started(org.clone()),
        }
    }

    /// Every org that has a session, ordered by id.
    pub fn sessions(&self) -> Vec<SessionSnapshot> {
        let registry = self.registry.read().unwrap();
        let mut all: Vec<SessionSnapshot> = registry
            .values()
            .map(|slot| slot.snapshot.borrow().clone())
            .filter(|s| s.status != SessionStatus::NotStarted)
            .collect();
        all.sort_by(|a, b| a.organization_id.cmp(&b.organization_id));
        all
    }

    /// Follows one org's snapshots as they change.
    pub fn watch(&self, org: &OrgId) -> Option<watch::Receiver<SessionSnapshot>> {
        let registry = self.registry.read().unwrap();
        registry.get(org).map(|slot| slot.snapshot.subscribe())
    }

    /// Waits until an org's snapshot satisfies `done`, at most `timeout`.
    pub async fn wait_for(
        &self,
        org: &OrgId,
        timeout: Duration,
        done: impl FnMut(&SessionSnapshot) -> bool,
    ) -> Option<SessionSnapshot> {
        let mut rx = self.watch(org)?;
        match tokio::time::timeout(timeout, rx.wait_for(done)).await {
            Ok(Ok(snapshot)) => Some(snapshot.clone()),
            _ => None,
        }
    }

    /// Sends a text from an org's number to `phone` (digits with country code).
    pub async fn send_text(
        &self,
        org: &OrgId,
        phone: &str,
        text: &str,
    ) -> Result<SentMessage, SendError> {
        let actor = {
            let registry = self.registry.read().unwrap();
            let slot = registry.get(org).ok_or(SendError::NoSession)?;
            match (&slot.actor, slot.snapshot.borrow().status) {
                (_, SessionStatus::NotStarted) => return Err(SendError::NoSession),
                (Some(actor), _) => actor.clone(),
                // Between a crash and its restart: the session exists but cannot send.
                (None, status) => return Err(SendError::NotConnected { status }),
            }
        };
        let (phone, text) = (phone.to_owned(), text.to_owned());
        match actor
            .call(
                |reply| OrgMsg::Send { phone, text, reply },
                Some(self.send_timeout),
            )
            .await
        {
            Ok(CallResult::Success(result)) => result,
            _ => Err(SendError::Unavailable),
        }
    }

    /// Logs an org's device out of WhatsApp, backs its session up and removes it.
    pub async fn logout(&self, org: &OrgId) -> Result<CleanOutcome, SessionError> {
        let org = org.clone();
        self.call(
            |reply| SupervisorMsg::Logout { org, reply },
            self.call_timeout,
        )
        .await?
    }

    /// Stops an org's session (if any), backs its store up and removes it. Succeeds
    /// for an org without a session too: there is then nothing to do.
    pub async fn force_clean(&self, org: &OrgId) -> Result<CleanOutcome, SessionError> {
        let org = org.clone();
        self.call(
            |reply| SupervisorMsg::ForceClean { org, reply },
            self.call_timeout,
        )
        .await?
    }

    /// An org's backups, newest first.
    pub async fn backups(&self, org: &OrgId) -> Result<Vec<BackupInfo>, SessionError> {
        let org = org.clone();
        self.call(
            |reply| SupervisorMsg::Backups { org, reply },
            self.call_timeout,
        )
        .await?
    }

    /// Makes the backup `name` the org's live session and resumes it (no QR when
    /// its credentials are good). A running session is stopped first, flushed and
    /// never logged out, and kept as a `before_restore` backup. A name that is not
    /// a backup's is [`SessionError::InvalidBackupName`]; a well-formed one that is
    /// not listed, [`SessionError::UnknownBackup`]; neither stops anything.
    pub async fn restore(&self, org: &OrgId, name: &str) -> Result<RestoreOutcome, SessionError> {
        let (org, backup) = (org.clone(), name.to_owned());
        self.call(
            |reply| SupervisorMsg::Restore { org, backup, reply },
            self.call_timeout * 2,
        )
        .await?
    }

    /// Starts every org whose directory holds credentials, one after another with
    /// about `gap` between two (randomized ±50%, so that a restart never reconnects
    /// every number at once); returns the orgs it started.
    pub async fn resume_stored(&self, gap: Duration) -> Result<Vec<OrgId>, SessionError> {
        let stored = self
            .call(|reply| SupervisorMsg::Stored { reply }, self.call_timeout)
            .await??;
        let mut resumed = Vec::new();
        for (i, org) in stored.into_iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                use rand::RngExt;
                let factor = rand::rng().random_range(0.5..=1.5);
                tokio::time::sleep(gap.mul_f64(factor)).await;
            }
            if !self.start(&org, None).await?.already_running {
                resumed.push(org);
            }
        }
        Ok(resumed)
    }

    /// Whether the supervisor answers within `deadline` (for a watchdog).
    pub async fn ping(&self, deadline: Duration) -> bool {
        matches!(
            self.actor
                .call(|reply| SupervisorMsg::Ping { reply }, Some(deadline))
                .await,
            Ok(CallResult::Success(()))
        )
    }

    /// Fault injection (simulation mode and tests): blocks the supervisor's mailbox
    /// for `duration`, as a wedged supervisor would. Sessions keep running; starts,
    /// cleans and pings wait.
    pub fn stall(&self, duration: Duration) {
        let _ = self.actor.cast(SupervisorMsg::Stall { duration });
    }

    /// Stops every session with its state flushed (never logging out), then the
    /// supervisor itself.
    pub async fn shutdown(&self) {
        let _ = self
            .actor
            .stop_and_wait(Some("shutdown".into()), Some(self.call_timeout))
            .await;
    }

    #[cfg(test)]
    pub(crate) fn crash_for_test(&self, org: &OrgId) {
        if let Some(actor) = self.org_actor(org) {
            let _ = actor.cast(OrgMsg::CrashForTest);
        }
    }

    #[cfg(test)]
    fn org_actor(&self, org: &OrgId) -> Option<ActorRef<OrgMsg>> {
        let registry = self.registry.read().unwrap();
        registry.get(org).and_then(|slot| slot.actor.clone())
    }

    async fn call<T: Send + 'static>(
        &self,
        msg: impl FnOnce(ractor::RpcReplyPort<T>) -> SupervisorMsg,
        timeout: Duration,
    ) -> Result<T, SessionError> {
        match self.actor.call(msg, Some(timeout)).await {
            Ok(CallResult::Success(value)) => Ok(value),
            _ => Err(SessionError::Unavailable),
        }
    }
}
