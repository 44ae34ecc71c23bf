//! The org actor itself: its state, how it begins, and the one place every
//! message is dispatched (with the one generation check).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, oneshot, watch};

use super::driver::{self, DriverCmd, DriverParts};
use super::lane_link::LaneLink;
use super::msg::{OrgMsg, Request};
use super::phase::{Next, Phase, Rest};
use crate::budget::ConnectionBudget;
use crate::connection::Connector;
use crate::events::{Emitter, EventSink};
use crate::healing::Healer;
use crate::outbox::Outbox;
use crate::outbox::lane::LaneParts;
use crate::phone_book::PhoneBook;
use crate::storage::backups::Restored;
use crate::storage::{SessionStore, StorageMsg};
use crate::supervisor::{RestoreOutcome, StartOutcome};
use crate::{ErrorWindow, OrgId, SessionError, SessionSnapshot, SessionStatus, SupervisorConfig};

/// How a new incarnation of the actor begins.
pub(crate) enum Begin {
    /// Start the session (explicit start or resume at start-up); `reply` hears the
    /// outcome once the store has been read.
    Start {
        phone_for_code: Option<String>,
        reply: Option<RpcReplyPort<Result<StartOutcome, SessionError>>>,
    },
    /// Restarted after a crash: pick up where the last snapshot left off, after
    /// `after` (the supervisor's restart backoff).
    Recover { after: Duration },
    /// Another node drove the session until its lease ran out or it handed it
    /// over (CONTRACT §13): pick up where its last snapshot left off, after `after`
    /// (spreading many takeovers out), as a reconnect: no QR for a paired session.
    TakeOver { after: Duration },
    /// Put a backup in place of the (stopped) session and resume it.
    Restore {
        backup: String,
        reply: RpcReplyPort<Result<RestoreOutcome, SessionError>>,
    },
}

/// A request that is answered once the store has been read (the status then
/// says whether the session resumes or pairs).
pub(super) enum Waiter {
    Start(RpcReplyPort<Result<StartOutcome, SessionError>>),
    Restore {
        reply: RpcReplyPort<Result<RestoreOutcome, SessionError>>,
        restored: Restored,
    },
}

pub(crate) struct OrgArgs {
    pub org: OrgId,
    pub config: Arc<SupervisorConfig>,
    pub connector: Arc<dyn Connector>,
    pub storage: ActorRef<StorageMsg>,
    pub sessions: Arc<dyn SessionStore>,
    pub snapshot: watch::Sender<SessionSnapshot>,
    pub lease: Arc<tokio::sync::Mutex<()>>,
    pub cleanups: Arc<Mutex<ErrorWindow>>,
    pub healer: Arc<Mutex<Healer>>,
    pub phones: PhoneBook,
    pub events: Arc<dyn EventSink>,
    pub budget: Arc<ConnectionBudget>,
    pub outbox: Outbox,
    pub begin: Begin,
}

pub(crate) struct OrgState {
    pub(super) org: OrgId,
    pub(super) myself: ActorRef<OrgMsg>,
    pub(super) config: Arc<SupervisorConfig>,
    pub(super) snapshot: watch::Sender<SessionSnapshot>,
    pub(super) cleanups: Arc<Mutex<ErrorWindow>>,
    pub(super) healer: Arc<Mutex<Healer>>,
    pub(super) phones: PhoneBook,
    pub(super) emitter: Emitter,
    pub(super) budget: Arc<ConnectionBudget>,
    pub(super) driver: mpsc::UnboundedSender<DriverCmd>,
    /// Tags the connection (and timers) the actor currently cares about; anything
    /// reported for an older generation is ignored.
    pub(super) generation: u64,
    pub(super) phase: Phase,
    /// Why the session is in its phase, in words an operator can act on.
    pub(super) reason: String,
    /// The store holds credentials, so a drop is a reconnect, not a pairing.
    pub(super) paired: bool,
    /// The linked number, digits, once known.
    pub(super) phone: Option<String>,
    /// Consecutive failed reconnects, for the backoff.
    pub(super) attempt: u32,
    /// Requests that wait for the store probe to answer.
    pub(super) waiting: Vec<Waiter>,
    pub(super) lane: LaneLink,
}

pub(crate) struct OrgActor;

impl Actor for OrgActor {
    type Msg = OrgMsg;
    type State = OrgState;
    type Arguments = OrgArgs;

    /// Builds the state and spawns the driver. It awaits nothing: the supervisor
    /// awaits this while spawning, and must stay free for other orgs' requests.
    async fn pre_start(
        &self,
        myself: ActorRef<OrgMsg>,
        args: OrgArgs,
    ) -> Result<OrgState, ActorProcessingErr> {
        let driver = driver::spawn(
            DriverParts {
                org: args.org.clone(),
                sessions: args.sessions,
                connector: args.connector,
                storage: args.storage,
                lease: args.lease,
                grace: args.config.shutdown_grace,
            },
            myself.clone(),
        );
        let lane = LaneLink::start(|inputs| LaneParts {
            org: args.org.clone(),
            outbox: args.outbox.clone(),
            spec: args.config.outbox.lane(args.config.reconnect),
            live: inputs.live,
            inbox: inputs.inbox,
            actor: myself.clone(),
        });
        let last = args.snapshot.borrow().clone();
        let mut state = OrgState {
            emitter: Emitter {
                org: args.org.clone(),
                sink: args.events,
            },
            org: args.org,
            myself,
            config: args.config,
            snapshot: args.snapshot,
            cleanups: args.cleanups,
            healer: args.healer,
            phones: args.phones,
            budget: args.budget,
            driver,
            generation: 0,
            phase: Phase::Probing {
                shown: last.status,
                phone_for_code: None,
            },
            reason: last.reason.clone().unwrap_or_default(),
            // A crash before this run's first connect leaves no number behind,
            // but `reconnecting` was only ever shown for a paired session.
            paired: last.phone_number.is_some() || last.status == SessionStatus::Reconnecting,
            phone: last.phone_number.clone(),
            attempt: 0,
            waiting: Vec::new(),
            lane,
        };
        match args.begin {
            Begin::Start {
                phone_for_code,
                reply,
            } => {
                state.phase = Phase::Resting(Rest::Disconnected);
                state.waiting.extend(reply.map(Waiter::Start));
                state.start(phone_for_code);
            }
            Begin::Recover { after } => {
                // A heal's wipe the crashed incarnation was making reports to
                // nobody, and the store may still be there: the healer must not
                // wait for that wipe for good.
                state.healer.lock().unwrap().wipe_failed();
                state.recover(&last, after, "restarting after an internal error");
            }
            Begin::TakeOver { after } => {
                if last.status == SessionStatus::NotStarted {
                    // Nothing was published of it (a lease seeded from stored
                    // credentials, or a node that died before its first
                    // snapshot): until the probe reads the store it may well be
                    // paired, so it reads `reconnecting`, never `connecting`, on
                    // which the deployed client cleans it (CONTRACT §3).
                    state.paired = true;
                }
                state.recover(&last, after, "taking the session over from another node");
            }
            Begin::Restore { backup, reply } => {
                state.phase = Phase::Resting(Rest::Disconnected);
                state.on_restore(backup, reply);
            }
        }
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<OrgMsg>,
        state: &mut OrgState,
    ) -> Result<(), ActorProcessingErr> {
        // A graceful stop waits for the connection to be flushed; a crash or kill
        // skips this, and the driver closes the connection when the state drops.
        let (done, closed) = oneshot::channel();
        if state
            .driver
            .send(DriverCmd::Close { done: Some(done) })
            .is_ok()
        {
            let _ = tokio::time::timeout(state.config.shutdown_grace * 2, closed).await;
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<OrgMsg>,
        msg: OrgMsg,
        state: &mut OrgState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OrgMsg::Request(Request::Start {
                phone_for_code,
                reply,
            }) => state.on_start(phone_for_code, reply),
            OrgMsg::Request(Request::Remove { how, reply }) => state.on_remove(how, reply),
            OrgMsg::Request(Request::Restore { backup, reply }) => state.on_restore(backup, reply),
            OrgMsg::Report { generation, report } if generation == state.generation => {
                state.on_report(report)
            }
            OrgMsg::Timer { generation, timer } if generation == state.generation => {
                state.on_timer(timer)
            }
            OrgMsg::Lane(report) => state.on_lane(report),
            // About a connection or a wait this actor has already given up on.
            OrgMsg::Report { .. } | OrgMsg::Timer { .. } => {}
            #[cfg(test)]
            OrgMsg::CrashForTest => panic!("crash injected by a test"),
        }
        Ok(())
    }
}

impl OrgState {
    pub(super) fn status(&self) -> SessionStatus {
        self.phase.status(self.paired)
    }

    /// Picks the session up after a crash of the previous incarnation (or from
    /// another node), from the snapshot it left: a session that was live reconnects (as `reconnecting`
    /// when it was paired: it never reports `disconnected` on its way back),
    /// a ban or a block waits out its time, a resting one stays at rest.
    fn recover(&mut self, last: &SessionSnapshot, after: Duration, why: &str) {
        match (last.status, last.retry_at) {
            (SessionStatus::Banned, Some(retry_at)) => self.ban_until(retry_at),
            (SessionStatus::Blocked, Some(retry_at)) => self.block_until(retry_at, None, why),
            (status, _) => match Rest::of(status) {
                Some(rest) => self.enter(
                    Phase::Resting(rest),
                    last.reason.clone().unwrap_or_default(),
                ),
                // Live, opening, pairing, or between two of those: try again.
                None => self.back_off_for(after, why, Next::Probe),
            },
        }
    }
}
