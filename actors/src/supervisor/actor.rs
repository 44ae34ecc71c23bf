//! The root supervisor actor.
//!
//! It spawns one linked org actor per organization on demand and overrides
//! `handle_supervisor_evt` (ractor's default would stop the whole tree when one org
//! fails): a crashed org actor is replaced at once by one that waits out a restart
//! backoff and picks the session up again, and nobody else notices. Everything that
//! must survive that crash (snapshot, store lease, cleanup history) lives in the
//! registry, not in the org actor.
//!
//! Its handler awaits no disk and no network: an org's store is read by that org's
//! driver, a stopped org's cleanup runs in a task of its own, so one slow store
//! never holds up another org's request.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::time::Instant;

use super::handle::{CleanOutcome, RestoreOutcome, StartOutcome};
use super::registry::Registry;
use crate::connection::Connector;
use crate::events::EventSink;
use crate::outbox::Outbox;
use crate::phone_book::PhoneBook;
use crate::session::{Begin, OrgActor, OrgArgs, OrgMsg, Removal, Request};
use crate::storage::{self, SessionStore, StorageActor, StorageArgs, StorageMsg};
use crate::{ConnectionBudget, OrgId, SessionError, SupervisorConfig};

pub(crate) enum SupervisorMsg {
    Start {
        org: OrgId,
        phone_for_code: Option<String>,
        reply: RpcReplyPort<Result<StartOutcome, SessionError>>,
    },
    Remove {
        org: OrgId,
        how: Removal,
        reply: RpcReplyPort<Result<CleanOutcome, SessionError>>,
    },
    Restore {
        org: OrgId,
        backup: String,
        reply: RpcReplyPort<Result<RestoreOutcome, SessionError>>,
    },
    /// Starts the org's actor as a takeover from another node, unless it runs.
    TakeOver {
        org: OrgId,
        after: std::time::Duration,
        reply: RpcReplyPort<Result<(), SessionError>>,
    },
    /// Stops the org's actor (its connection flushed, nothing wiped) and answers
    /// once it is gone: the org is handed to another node.
    Release {
        org: OrgId,
        reply: RpcReplyPort<()>,
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
    pub outbox: Outbox,
    pub sessions: Arc<dyn SessionStore>,
    /// With several daemons on one database: the leases this node holds. An org
    /// actor is only ever started for an org whose lease is held here.
    pub fencing: Option<crate::cluster::Fencing>,
}

pub(crate) struct SupervisorActor;

pub(crate) struct SupervisorState {
    args: SupervisorArgs,
    storage: ActorRef<StorageMsg>,
    phones: PhoneBook,
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
        let (storage, _) = Actor::spawn_linked(
            None,
            StorageActor,
            StorageArgs {
                store: args.sessions.clone(),
            },
            myself.get_cell(),
        )
        .await?;
        Ok(SupervisorState {
            args,
            storage,
            phones: PhoneBook::default(),
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
        let grace = state.args.config.shutdown_grace * 3;
        let mut stopping = tokio::task::JoinSet::new();
        for actor in state.args.registry.actors() {
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
            } => match state.args.registry.actor(&org) {
                Some(actor) => forward(
                    &actor,
                    Request::Start {
                        phone_for_code,
                        reply,
                    },
                ),
                None => {
                    if let Err(e) = state.may_run(&org) {
                        let _ = reply.send(Err(e));
                        return Ok(());
                    }
                    let begin = Begin::Start {
                        phone_for_code,
                        reply: Some(reply),
                    };
                    if let Err(e) = state.spawn_org(&myself, &org, begin).await {
                        tracing::error!(org_id = %org, error = %e, "org actor could not be started");
                    }
                }
            },
            SupervisorMsg::Remove { org, how, reply } => match state.args.registry.actor(&org) {
                Some(actor) => forward(&actor, Request::Remove { how, reply }),
                None if how == Removal::Logout => {
                    let _ = reply.send(Err(SessionError::NoSession));
                }
                None => state.clean_stopped(org, reply),
            },
            SupervisorMsg::Restore { org, backup, reply } => {
                match state.args.registry.actor(&org) {
                    Some(actor) => forward(&actor, Request::Restore { backup, reply }),
                    None => {
                        if let Err(e) = state.may_run(&org) {
                            let _ = reply.send(Err(e));
                            return Ok(());
                        }
                        let begin = Begin::Restore { backup, reply };
                        if let Err(e) = state.spawn_org(&myself, &org, begin).await {
                            tracing::error!(org_id = %org, error = %e, "org actor could not be started");
                        }
                    }
                }
            }
            SupervisorMsg::TakeOver { org, after, reply } => {
                let result = match state.args.registry.actor(&org) {
                    Some(_) => Ok(()),
                    None => {
                        state
                            .spawn_org(&myself, &org, Begin::TakeOver { after })
                            .await
                    }
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::Release { org, reply } => match state.args.registry.actor(&org) {
                Some(actor) => {
                    let grace = state.args.config.shutdown_grace * 3;
                    tokio::spawn(async move {
                        let _ = actor
                            .stop_and_wait(Some("handed over".into()), Some(grace))
                            .await;
                        let _ = reply.send(());
                    });
                }
                None => {
                    let _ = reply.send(());
                }
            },
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
                    state
                        .replace_crashed(&myself, org, &error.to_string())
                        .await;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Hands a request with its reply port to an org actor. If the actor is already
/// gone (or stops before handling it) the port is dropped, and the handle retries
/// the request: by then the supervisor knows of the end and starts afresh.
fn forward(actor: &ActorRef<OrgMsg>, request: Request) {
    if actor.cast(OrgMsg::Request(request)).is_err() {
        tracing::debug!("a request reached an org actor that was stopping");
    }
}

impl SupervisorState {
    /// Spawns the org's actor (creating its registry slot the first time).
    async fn spawn_org(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        org: &OrgId,
        begin: Begin,
    ) -> Result<(), SessionError> {
        self.may_run(org)?;
        let config = &self.args.config;
        let shared = self
            .args
            .registry
            .shared(org, config.cleanups, config.healing);
        let args = OrgArgs {
            org: org.clone(),
            config: config.clone(),
            connector: self.args.connector.clone(),
            storage: self.storage.clone(),
            sessions: self.args.sessions.clone(),
            snapshot: shared.snapshot,
            lease: shared.lease,
            cleanups: shared.cleanups,
            healer: shared.healer,
            phones: self.phones.clone(),
            events: self.args.events.clone(),
            budget: self.args.budget.clone(),
            outbox: self.args.outbox.clone(),
            begin,
        };
        let (actor, _) = Actor::spawn_linked(None, OrgActor, args, myself.get_cell())
            .await
            .map_err(|e| SessionError::ActorFailed(e.to_string()))?;
        self.orgs_by_actor.insert(actor.get_id(), org.clone());
        self.args.registry.set_actor(org, Some(actor));
        Ok(())
    }

    /// Whether an actor may drive `org` here: always for a daemon on its own; with
    /// several on one database only while this node holds the org's lease.
    fn may_run(&self, org: &OrgId) -> Result<(), SessionError> {
        match &self.args.fencing {
            Some(fencing) if fencing.token(org).is_none() => Err(SessionError::Busy(
                "this node does not hold the organization's lease; retry in a moment".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Drops a terminated org actor from the tables; returns its org.
    fn forget(&mut self, cell: &ActorCell) -> Option<OrgId> {
        let org = self.orgs_by_actor.remove(&cell.get_id())?;
        self.args.registry.clear_actor(&org, cell.get_id());
        Some(org)
    }

    /// Puts a new actor in place of a crashed one at once; it waits out the
    /// restart backoff itself (as `reconnecting`), so only org actors ever write
    /// an org's status.
    async fn replace_crashed(&mut self, myself: &ActorRef<SupervisorMsg>, org: OrgId, error: &str) {
        let now = Instant::now();
        let backoff = self.args.config.actor_restart;
        let entry = self.crashes.entry(org.clone()).or_insert((0, now));
        // A crash long after the last one starts the backoff over.
        if now.duration_since(entry.1) > backoff.max * 4 {
            entry.0 = 0;
        }
        let after = backoff.delay(entry.0);
        *entry = (entry.0.saturating_add(1), now);
        tracing::error!(org_id = %org, error, restart_in_ms = after.as_millis() as u64, "org actor crashed; restarting it");
        if let Err(e) = self.spawn_org(myself, &org, Begin::Recover { after }).await {
            tracing::error!(org_id = %org, error = %e, "org actor could not be restarted");
        }
    }

    /// Backs up and wipes the store of an org whose actor is not running, in a
    /// task of its own: a crashed actor's connection may still be closing, and
    /// waiting for its lease must not hold the supervisor up.
    fn clean_stopped(
        &mut self,
        org: OrgId,
        reply: RpcReplyPort<Result<CleanOutcome, SessionError>>,
    ) {
        let lease = self.args.registry.lease(&org);
        let storage = self.storage.clone();
        let phones = self.phones.clone();
        let registry = self.args.registry.clone();
        tokio::spawn(async move {
            let _held = match lease {
                Some(lease) => Some(lease.lock_owned().await),
                None => None,
            };
            let org_id = org.clone();
            let result = storage::ask(&storage, |reply| StorageMsg::BackupAndWipe {
                org: org_id,
                reason: "force_clean".into(),
                recreate: false,
                reply,
            })
            .await
            .map(|backup| CleanOutcome { backup })
            .map_err(|e| SessionError::Storage(e.0));
            if result.is_ok() {
                phones.release(&org);
                registry.mark_removed(&org);
            }
            let _ = reply.send(result);
        });
    }
}
