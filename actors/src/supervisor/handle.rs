//! The [`Supervisor`] handle: the one door the daemon uses into the actor tree.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef, rpc::CallResult};
use tokio::sync::watch;

use super::actor::{SupervisorActor, SupervisorArgs, SupervisorMsg};
use super::registry::Registry;
use crate::cluster::Fencing;
use crate::connection::Connector;
use crate::events::EventSink;
use crate::media::{MEDIA_DIR, MediaFiles, SharedMedia};
use crate::outbox::{Outbox, OutboxStore};
use crate::session::Removal;
use crate::storage::backups::{self, BackupInfo};
use crate::storage::{FileSessions, SessionStore};
use crate::{ConnectionBudget, OrgId, SessionError, SessionSnapshot, SupervisorConfig};

/// What `start` found and did.
#[derive(Clone, Debug, PartialEq)]
pub struct StartOutcome {
    pub snapshot: SessionSnapshot,
    /// The session was already running (nothing was restarted).
    pub already_running: bool,
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
    /// The org's snapshot once the restored store was read (resuming, or blocked).
    pub snapshot: SessionSnapshot,
    /// The backup that is now the live session.
    pub restored: String,
    /// The backup made of the session it replaced (`None`: nothing was live).
    pub before_restore: Option<String>,
}

/// Everything the actor tree is made of.
pub struct SupervisorParts {
    pub config: SupervisorConfig,
    pub connector: Arc<dyn Connector>,
    /// Where messages wait until WhatsApp has them (CONTRACT §10).
    pub outbox: Arc<dyn OutboxStore>,
    /// Receives every session and message event (webhooks, metrics, live events).
    pub events: Arc<dyn EventSink>,
}

/// A cheap, cloneable handle on the running actor tree.
#[derive(Clone)]
pub struct Supervisor {
    actor: ActorRef<SupervisorMsg>,
    pub(super) registry: Registry,
    pub(super) config: Arc<SupervisorConfig>,
    sessions: Arc<dyn SessionStore>,
    pub(super) outbox: Outbox,
    budget: Arc<ConnectionBudget>,
}

/// How many times a request whose org actor went away under it is tried again.
const RETRIES: u32 = 5;

impl Supervisor {
    /// Starts the storage actor, the root supervisor and the outbox's expiry, with
    /// the sessions in the sessions directory ([`FileSessions`]).
    pub async fn spawn(parts: SupervisorParts) -> Result<Self, SessionError> {
        let sessions = Arc::new(FileSessions::new(
            parts.config.sessions_dir.clone(),
            parts.config.backups_kept,
            parts.connector.clone(),
        ));
        Self::spawn_with(parts, sessions, None, None).await
    }

    /// Like [`Supervisor::spawn`], for one node of several sharing a database
    /// (CONTRACT §13): the sessions are in `sessions`, and an org's actor only runs
    /// while `fencing` holds the org's lease (the cluster node takes and gives
    /// them, see [`crate::cluster`]). Media files wait in `media`, which every
    /// node reads, whichever accepted them.
    pub async fn spawn_in_cluster(
        parts: SupervisorParts,
        sessions: Arc<dyn SessionStore>,
        fencing: Fencing,
        media: Arc<dyn SharedMedia>,
    ) -> Result<Self, SessionError> {
        Self::spawn_with(parts, sessions, Some(fencing), Some(media)).await
    }

    async fn spawn_with(
        parts: SupervisorParts,
        sessions: Arc<dyn SessionStore>,
        fencing: Option<Fencing>,
        shared_media: Option<Arc<dyn SharedMedia>>,
    ) -> Result<Self, SessionError> {
        let SupervisorParts {
            config,
            connector,
            outbox,
            events,
        } = parts;
        let registry = Registry::default();
        let config = Arc::new(config);
        let budget = Arc::new(ConnectionBudget::new(config.budget));
        let status_of = {
            let registry = registry.clone();
            Box::new(move |org: &OrgId| registry.status(org))
        };
        let incoming = config.sessions_dir.join(MEDIA_DIR);
        let media = match shared_media {
            Some(shared) => MediaFiles::shared(incoming, shared),
            None => MediaFiles::new(incoming),
        };
        let outbox = Outbox::new(outbox, events.clone(), status_of, media);
        // Before anything is accepted or sent: no file is being written yet.
        outbox.sweep_media().await;
        outbox.start_expiry();
        let (actor, _join) = Actor::spawn(
            None,
            SupervisorActor,
            SupervisorArgs {
                config: config.clone(),
                connector,
                registry: registry.clone(),
                events,
                budget: budget.clone(),
                outbox: outbox.clone(),
                sessions: sessions.clone(),
                fencing,
            },
        )
        .await
        .map_err(|e| SessionError::ActorFailed(e.to_string()))?;
        Ok(Self {
            actor,
            registry,
            config,
            sessions,
            outbox,
            budget,
        })
    }

    /// Starts (or resumes) an org's session. Stored credentials are resumed, never
    /// wiped; a running session is left alone. `phone_for_code` asks for a pairing
    /// code beside the QR. Answers once the org's store has been read.
    pub async fn start(
        &self,
        org: &OrgId,
        phone_for_code: Option<String>,
    ) -> Result<StartOutcome, SessionError> {
        self.call_org(|reply| SupervisorMsg::Start {
            org: org.clone(),
            phone_for_code: phone_for_code.clone(),
            reply,
        })
        .await?
    }

    /// The connection-attempt budget (CONTRACT §6), shared with every org actor.
    pub fn budget(&self) -> &ConnectionBudget {
        &self.budget
    }

    /// The outbox (CONTRACT §10).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// What the actor tree was configured with.
    pub fn config(&self) -> &SupervisorConfig {
        &self.config
    }

    /// The snapshot of one org (`not_started` when it has no session).
    pub fn status(&self, org: &OrgId) -> SessionSnapshot {
        self.registry.snapshot(org)
    }

    /// Every org that has a session, ordered by id.
    pub fn sessions(&self) -> Vec<SessionSnapshot> {
        self.registry.sessions()
    }

    /// Follows one org's snapshots as they change.
    pub fn watch(&self, org: &OrgId) -> Option<watch::Receiver<SessionSnapshot>> {
        self.registry.watch(org)
    }

    /// Follows one org's snapshots, from the one it has now (`not_started` for an
    /// org never seen here).
    pub fn follow(&self, org: &OrgId) -> watch::Receiver<SessionSnapshot> {
        self.registry
            .shared(org, self.config.cleanups, self.config.healing)
            .snapshot
            .subscribe()
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

    /// Logs an org's device out of WhatsApp, backs its session up and removes it.
    pub async fn logout(&self, org: &OrgId) -> Result<CleanOutcome, SessionError> {
        self.remove(org, Removal::Logout).await
    }

    /// Stops an org's session (if any), backs its store up and removes it. Succeeds
    /// for an org without a session too: there is then nothing to do.
    pub async fn force_clean(&self, org: &OrgId) -> Result<CleanOutcome, SessionError> {
        self.remove(org, Removal::ForceClean).await
    }

    async fn remove(&self, org: &OrgId, how: Removal) -> Result<CleanOutcome, SessionError> {
        self.call_org(|reply| SupervisorMsg::Remove {
            org: org.clone(),
            how,
            reply,
        })
        .await?
    }

    /// An org's backups, newest first.
    pub async fn backups(&self, org: &OrgId) -> Result<Vec<BackupInfo>, SessionError> {
        self.sessions
            .list_backups(org)
            .await
            .map_err(|e| SessionError::Storage(e.0))
    }

    /// Makes the backup `name` the org's live session and resumes it (no QR when
    /// its credentials are good). A running session is stopped first, flushed and
    /// never logged out, and kept as a `before_restore` backup. A name that is not
    /// a backup's is [`SessionError::InvalidBackupName`]; a well-formed one that is
    /// not listed, [`SessionError::UnknownBackup`]; neither stops anything.
    pub async fn restore(&self, org: &OrgId, name: &str) -> Result<RestoreOutcome, SessionError> {
        if backups::parse_name(name).is_none() {
            return Err(SessionError::InvalidBackupName(name.to_owned()));
        }
        if !self.backups(org).await?.iter().any(|b| b.name == name) {
            return Err(SessionError::UnknownBackup(name.to_owned()));
        }
        self.call_org(|reply| SupervisorMsg::Restore {
            org: org.clone(),
            backup: name.to_owned(),
            reply,
        })
        .await?
    }

    /// Whether the org's stored session holds credentials.
    pub async fn has_credentials(&self, org: &OrgId) -> Result<bool, SessionError> {
        self.sessions
            .has_credentials(org)
            .await
            .map_err(|e| SessionError::Storage(e.to_string()))
    }

    /// Starts every org whose stored session holds credentials, one after another
    /// with about `gap` between two (randomized ±50%, so that a restart never
    /// reconnects every number at once); returns the orgs it started.
    pub async fn resume_stored(&self, gap: Duration) -> Result<Vec<OrgId>, SessionError> {
        // A store that cannot be read is resumed: the connect decides, and an
        // unreadable store is never taken for "no credentials".
        let stored = self
            .sessions
            .orgs_with_credentials()
            .await
            .map_err(|e| SessionError::Storage(e.0))?;
        let mut resumed = Vec::new();
        for (i, org) in stored.into_iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                use rand::RngExt;
                let factor = rand::rng().random_range(0.5..=1.5);
                tokio::time::sleep(gap.mul_f64(factor)).await;
            }
            // One org that cannot be started holds up none of the others.
            match self.start(&org, None).await {
                Ok(started) if !started.already_running => resumed.push(org),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(org_id = %org, error = %e, "a stored session could not be resumed");
                }
            }
        }
        Ok(resumed)
    }

    /// Starts an org's session as a takeover from another node (see
    /// [`Begin::TakeOver`](crate::session::Begin)), unless it runs here already.
    /// Its lease must be held here.
    pub async fn take_over(&self, org: &OrgId, after: Duration) -> Result<(), SessionError> {
        self.call_org(|reply| SupervisorMsg::TakeOver {
            org: org.clone(),
            after,
            reply,
        })
        .await?
    }

    /// Stops an org's session here, its connection flushed and nothing wiped, and
    /// returns once it is stopped (or the stop's bound passed): the org is handed
    /// over to another node.
    pub async fn release(&self, org: &OrgId) -> Result<(), SessionError> {
        let bound = self.release_bound();
        match self
            .actor
            .call(
                |reply| SupervisorMsg::Release {
                    org: org.clone(),
                    reply,
                },
                Some(bound),
            )
            .await
        {
            Ok(CallResult::Success(())) => Ok(()),
            Ok(CallResult::Timeout) => Err(SessionError::TimedOut),
            _ => Err(SessionError::Unavailable),
        }
    }

    /// The longest [`Supervisor::release`] takes.
    pub fn release_bound(&self) -> Duration {
        self.config.release_bound()
    }

    /// Whether an org's actor runs here.
    pub fn runs(&self, org: &OrgId) -> bool {
        self.registry.actor(org).is_some()
    }

    /// Shows the snapshot another node published for an org that does not run
    /// here (it is what status, sessions and sends read). Ignored while the org
    /// runs here: its own actor's snapshot is the truth then.
    pub fn show_remote(&self, snapshot: SessionSnapshot) {
        self.registry
            .show_remote(snapshot, self.config.cleanups, self.config.healing);
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
            .stop_and_wait(Some("shutdown".into()), Some(self.config.shutdown_bound()))
            .await;
    }

    #[cfg(test)]
    pub(crate) fn crash_for_test(&self, org: &OrgId) {
        if let Some(actor) = self.registry.actor(org) {
            let _ = actor.cast(crate::session::OrgMsg::CrashForTest);
        }
    }

    /// Asks the supervisor, which hands the reply port to the org's actor. When
    /// that actor goes away before answering (it was stopping: a removal just
    /// finished, or it crashed), the port is dropped: the request is asked again,
    /// and by then the supervisor knows of the end and starts afresh.
    async fn call_org<T: Send + 'static>(
        &self,
        msg: impl Fn(ractor::RpcReplyPort<T>) -> SupervisorMsg,
    ) -> Result<T, SessionError> {
        let deadline = tokio::time::Instant::now() + self.config.call_timeout();
        for attempt in 0..=RETRIES {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.actor.call(&msg, Some(left)).await {
                Ok(CallResult::Success(value)) => return Ok(value),
                Ok(CallResult::SenderError) if attempt < RETRIES => {
                    tokio::time::sleep(Duration::from_millis(10 << attempt)).await;
                }
                Ok(CallResult::Timeout) => return Err(SessionError::TimedOut),
                _ => return Err(SessionError::Unavailable),
            }
        }
        Err(SessionError::Unavailable)
    }
}
