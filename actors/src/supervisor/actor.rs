//! The root supervisor actor.
//!
//! It spawns one linked org actor per organization on demand and overrides
//! `handle_supervisor_evt` (ractor's default would stop the whole tree when one org
//! fails): a crashed org actor is restarted after a backoff, and nobody else notices.
//! Everything that must survive that crash (snapshot, store lease, cleanup history)
//! lives in the registry, not in the org actor.

mod restore;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::sync::watch;
use tokio::time::Instant;

use super::handle::{CleanOutcome, RestoreOutcome, StartOutcome};
use super::registry::{OrgSlot, Registry};
use crate::connection::Connector;
use crate::events::EventSink;
use crate::phone_book::PhoneBook;
use crate::session::{Begin, OrgActor, OrgArgs, OrgMsg};
use crate::storage::backups::BackupInfo;
use crate::storage::{self, StorageActor, StorageArgs, StorageMsg};
use crate::{
    ConnectionBudget, ErrorWindow, OrgId, SessionError, SessionSnapshot, SessionStatus,
    SupervisorConfig,
};

pub(crate) enum SupervisorMsg {
    Start {
        org: OrgId,
        phone_for_code: Option<String>,
        reply: RpcReplyPort<Result<StartOutcome, SessionError>>,
    },
    Logout {
        org: OrgId,
        reply: RpcReplyPort<Result<CleanOutcome, SessionError>>,
    },
    ForceClean {
        org: OrgId,
        reply: RpcReplyPort<Result<CleanOutcome, SessionError>>,
    },
    /// An org's backups, newest first.
    Backups {
        org: OrgId,
        reply: RpcReplyPort<Result<Vec<BackupInfo>, SessionError>>,
    },
    /// Makes a backup the org's live session and resumes it (see `restore.rs`).
    Restore {
        org: OrgId,
        backup: String,
        reply: RpcReplyPort<Result<RestoreOutcome, SessionError>>,
    },
    /// The orgs whose directories hold credentials.
    Stored {
        reply: RpcReplyPort<Result<Vec<OrgId>, SessionError>>,
    },
    /// Restart a crashed org actor (sent to itself after the backoff).
    Respawn {
        org: OrgId,
    },
    Ping {
        reply: RpcReplyPort<()>,
    },
    /// Fault injection: keep the supervisor's mailbox blocked for a while.
    Stall {
        duration: std::time::Duration,
    },
}

pub(crate) struct SupervisorArgs {
    pub config: Arc<SupervisorConfig>,
    pub connector: Arc<dyn Connector>,
    pub registry: Registry,
    pub events: Arc<dyn EventSink>,
    pub budget: Arc<ConnectionBudget>,
}

pub(crate) struct SupervisorActor;

pub(crate) struct SupervisorState {
    config: Arc<SupervisorConfig>,
    connector: Arc<dyn Connector>,
    registry: Registry,
    storage: ActorRef<StorageMsg>,
    phones: PhoneBook,
    events: Arc<dyn EventSink>,
    budget: Arc<ConnectionBudget>,
    /// Which org each running org actor serves.
    orgs_by_actor: HashMap<ActorId, OrgId>,
    /// Recent crashes per org, for the restart backoff.
    crashes: HashMap<OrgId, (u32, Instant)>,
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let connector = args.connector.clone();
        let (storage, _) = Actor::spawn_linked(
            None,
            StorageActor,
            StorageArgs {
                root: args.config.sessions_dir.clone(),
                backups_kept: args.config.backups_kept,
                has_credentials: Arc::new(move |dir| connector.has_credentials(dir)),
            },
            myself.get_cell(),
        )
        .await?;
        Ok(SupervisorState {
            config: args.config,
            connector: args.connector,
            registry: args.registry,
            storage,
            phones: PhoneBook::default(),
            events: args.events,
            budget: args.budget,
            orgs_by_actor: HashMap::new(),
            crashes: HashMap::new(),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Stop every org gracefully (flushing its connection, never logging out)
        // before ractor would kill the children outright.
        let actors: Vec<ActorRef<OrgMsg>> = state
            .registry
            .read()
            .unwrap()
            .values()
            .filter_map(|slot| slot.actor.clone())
            .collect();
        let grace = state.config.shutdown_grace * 3;
        let mut stopping = tokio::task::JoinSet::new();
        for actor in actors {
            stopping.spawn(async move {
                let _ = actor
                    .stop_and_wait(Some("shutdown".into()), Some(grace))
                    .await;
            });
        }
        while stopping.join_next().await.is_some() {}
        tracing::info!("every session stopped");
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Start {
                org,
                phone_for_code,
                reply,
            } => match state.running(&org) {
                Some(actor) => forward(
                    &actor,
                    OrgMsg::Start {
                        phone_for_code,
                        reply,
                    },
                ),
                None => {
                    let result = state
                        .spawn_org(&myself, &org, Begin::Start { phone_for_code })
                        .await
                        .map(|snapshot| StartOutcome {
                            snapshot,
                            already_running: false,
                        });
                    let _ = reply.send(result);
                }
            },
            SupervisorMsg::Logout { org, reply } => match state.running(&org) {
                Some(actor) => forward(
                    &actor,
                    OrgMsg::Remove {
                        logout: true,
                        reply,
                    },
                ),
                None => {
                    let _ = reply.send(Err(SessionError::NoSession));
                }
            },
            SupervisorMsg::ForceClean { org, reply } => match state.running(&org) {
                Some(actor) => forward(
                    &actor,
                    OrgMsg::Remove {
                        logout: false,
                        reply,
                    },
                ),
                None => {
                    let result = state.clean_stopped(&org).await;
                    let _ = reply.send(result);
                }
            },
            SupervisorMsg::Backups { org, reply } => {
                // A read: answered from a task, the mailbox goes on.
                let storage = state.storage.clone();
                tokio::spawn(async move {
                    let listed =
                        storage::ask(&storage, |reply| StorageMsg::ListBackups { org, reply })
                            .await;
                    let _ = reply.send(listed.map_err(|e| SessionError::Storage(e.0)));
                });
            }
            SupervisorMsg::Restore { org, backup, reply } => {
                let result = state.restore(&myself, &org, backup).await;
                let _ = reply.send(result);
            }
            SupervisorMsg::Stored { reply } => {
                let listed = storage::ask(&state.storage, |reply| {
                    StorageMsg::ListWithCredentials { reply }
                })
                .await;
                let _ = reply.send(listed.map_err(|e| SessionError::Storage(e.0)));
            }
            SupervisorMsg::Respawn { org } => {
                if state.running(&org).is_none()
                    && let Err(e) = state.spawn_org(&myself, &org, Begin::Recover).await
                {
                    tracing::error!(org_id = %org, error = %e, "org actor could not be restarted");
                }
            }
            SupervisorMsg::Ping { reply } => {
                let _ = reply.send(());
            }
            SupervisorMsg::Stall { duration } => {
                let ms = duration.as_millis() as u64;
                tracing::warn!(ms, "supervisor stalled on purpose");
                tokio::time::sleep(duration).await;
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if cell.get_id() == state.storage.get_id() {
                    return Err(format!("the storage actor stopped: {reason:?}").into());
                }
                state.forget(&cell);
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if cell.get_id() == state.storage.get_id() {
                    return Err(format!("the storage actor failed: {error}").into());
                }
                if let Some(org) = state.forget(&cell) {
                    state.schedule_respawn(&myself, org, &error.to_string());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Hands a request with its reply port to an org actor; if the actor is already
/// gone the port is dropped and the caller sees the supervisor as unavailable.
fn forward(actor: &ActorRef<OrgMsg>, msg: OrgMsg) {
    if actor.cast(msg).is_err() {
        tracing::warn!("a request reached an org actor that was stopping");
    }
}

impl SupervisorState {
    fn running(&self, org: &OrgId) -> Option<ActorRef<OrgMsg>> {
        let registry = self.registry.read().unwrap();
        registry.get(org).and_then(|slot| slot.actor.clone())
    }

    /// Spawns the org's actor (creating its slot the first time); returns the
    /// snapshot right after it began.
    async fn spawn_org(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        org: &OrgId,
        begin: Begin,
    ) -> Result<SessionSnapshot, SessionError> {
        let (snapshot, lease, cleanups) = {
            let mut registry = self.registry.write().unwrap();
            let slot = registry.entry(org.clone()).or_insert_with(|| OrgSlot {
                snapshot: watch::Sender::new(SessionSnapshot::not_started(org.clone())),
                actor: None,
                lease: Arc::new(tokio::sync::Mutex::new(())),
                cleanups: Arc::new(Mutex::new(ErrorWindow::new(self.config.cleanups))),
            });
            (
                slot.snapshot.clone(),
                slot.lease.clone(),
                slot.cleanups.clone(),
            )
        };
        let args = OrgArgs {
            org: org.clone(),
            config: self.config.clone(),
            connector: self.connector.clone(),
            storage: self.storage.clone(),
            snapshot: snapshot.clone(),
            lease,
            cleanups,
            phones: self.phones.clone(),
            events: self.events.clone(),
            budget: self.budget.clone(),
            begin,
        };
        let (actor, _) = Actor::spawn_linked(None, OrgActor, args, myself.get_cell())
            .await
            .map_err(|e| SessionError::Storage(format!("org actor failed to start: {e}")))?;
        self.orgs_by_actor.insert(actor.get_id(), org.clone());
        if let Some(slot) = self.registry.write().unwrap().get_mut(org) {
            slot.actor = Some(actor);
        }
        Ok(snapshot.borrow().clone())
    }

    /// Drops a terminated org actor from the tables; returns its org.
    fn forget(&mut self, cell: &ActorCell) -> Option<OrgId> {
        let org = self.orgs_by_actor.remove(&cell.get_id())?;
        let mut registry = self.registry.write().unwrap();
        if let Some(slot) = registry.get_mut(&org)
            && slot
                .actor
                .as_ref()
                .is_some_and(|a| a.get_id() == cell.get_id())
        {
            slot.actor = None;
        }
        Some(org)
    }

    fn schedule_respawn(&mut self, myself: &ActorRef<SupervisorMsg>, org: OrgId, error: &str) {
        let now = Instant::now();
        let backoff = self.config.actor_restart;
        let entry = self.crashes.entry(org.clone()).or_insert((0, now));
        // A crash long after the last one starts the backoff over.
        if now.duration_since(entry.1) > backoff.max * 4 {
            entry.0 = 0;
        }
        let delay = backoff.delay(entry.0);
        *entry = (entry.0.saturating_add(1), now);
        tracing::error!(org_id = %org, error, restart_in_ms = delay.as_millis() as u64, "org actor crashed; restarting it");
        if let Some(slot) = self.registry.read().unwrap().get(&org) {
            slot.snapshot.send_modify(|s| {
                if s.status.is_active() {
                    s.status = if s.phone_number.is_some() {
                        SessionStatus::Reconnecting
                    } else {
                        SessionStatus::Connecting
                    };
                    s.qr = None;
                    s.reason = Some("restarting after an internal error".into());
                }
            });
        }
        myself.send_after(delay, move || SupervisorMsg::Respawn { org });
    }

    /// Backs up and wipes the store of an org whose actor is not running.
    async fn clean_stopped(&mut self, org: &OrgId) -> Result<CleanOutcome, SessionError> {
        let lease = {
            let registry = self.registry.read().unwrap();
            registry.get(org).map(|slot| slot.lease.clone())
        };
        // A crashed actor's connection may still be closing; wait for its lease.
        let _held = match &lease {
            Some(lease) => Some(lease.clone().lock_owned().await),
            None => None,
        };
        let org_id = org.clone();
        let backup = storage::ask(&self.storage, |reply| StorageMsg::BackupAndWipe {
            org: org_id,
            reason: "force_clean".into(),
            recreate: false,
            reply,
        })
        .await
        .map_err(|e| SessionError::Storage(e.0))?;
        self.phones.release(org);
        if let Some(slot) = self.registry.read().unwrap().get(org) {
            slot.snapshot
                .send_replace(SessionSnapshot::not_started(org.clone()));
        }
        Ok(CleanOutcome { backup })
    }
}
