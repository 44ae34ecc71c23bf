//! The org session actor: one per organization, a state machine over the statuses
//! of CONTRACT §3 that owns the org's connection (through its driver) and heals it.
//!
//! Every connection is tagged with a *generation*. Whenever the actor gives up on a
//! connection it bumps the generation, so late events of the old connection, timers
//! armed for it and its end-of-stream are recognised and ignored.

mod driver;
mod waiting;

use std::sync::{Arc, Mutex};

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::budget::{Blocked, ConnectionBudget};
use crate::connection::{
    Class, Connection, ConnectionError, ConnectionEvent, Connector, StartMode, classify,
};
use crate::events::{Emitter, EventKind, EventSink};
use crate::phone_book::PhoneBook;
use crate::storage::{StorageError, StorageMsg, fs_ops};
use crate::supervisor::{CleanOutcome, SentMessage, StartOutcome};
use crate::{
    ErrorWindow, OrgId, SendError, SessionError, SessionSnapshot, SessionStatus, SupervisorConfig,
};
use driver::{DriverCmd, DriverParts};
use waiting::WaitingSends;

/// Messages of an org actor: requests from the supervisor, reports from its driver.
pub(crate) enum OrgMsg {
    Start {
        phone_for_code: Option<String>,
        reply: RpcReplyPort<Result<StartOutcome, SessionError>>,
    },
    Send {
        phone: String,
        text: String,
        reply: RpcReplyPort<Result<SentMessage, SendError>>,
    },
    /// Logout (`logout: true`) or forced clean: back up, wipe, stop this actor.
    Remove {
        logout: bool,
        reply: RpcReplyPort<Result<CleanOutcome, SessionError>>,
    },
    Opened {
        generation: u64,
        conn: Arc<dyn Connection>,
    },
    OpenFailed {
        generation: u64,
        error: ConnectionError,
    },
    Event {
        generation: u64,
        event: ConnectionEvent,
    },
    Closed {
        generation: u64,
    },
    Wiped {
        generation: u64,
        reason: String,
        result: Result<Option<String>, StorageError>,
    },
    Reconnect {
        generation: u64,
    },
    SendExpired {
        id: u64,
    },
    /// A `blocked` org's `retry_at` has come: try to start again.
    BudgetRetry {
        generation: u64,
        phone_for_code: Option<String>,
    },
    #[cfg(test)]
    CrashForTest,
}

/// How a new incarnation of the actor begins.
pub(crate) enum Begin {
    /// Start the session (explicit start or resume at start-up).
    Start { phone_for_code: Option<String> },
    /// Restarted after a crash: pick up where the last snapshot left off.
    Recover,
}

pub(crate) struct OrgArgs {
    pub org: OrgId,
    pub config: Arc<SupervisorConfig>,
    pub connector: Arc<dyn Connector>,
    pub storage: ActorRef<StorageMsg>,
    pub snapshot: watch::Sender<SessionSnapshot>,
    pub lease: Arc<tokio::sync::Mutex<()>>,
    pub cleanups: Arc<Mutex<ErrorWindow>>,
    pub phones: PhoneBook,
    pub events: Arc<dyn EventSink>,
    pub budget: Arc<ConnectionBudget>,
    pub begin: Begin,
}

/// Whether starting a connection draws from the budget (CONTRACT §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Attempt {
    /// A new pairing, a start after `disconnected` etc., a resume at start-up.
    Counted,
    /// Picking a live session up again (after the org actor crashed).
    Reconnect,
}

/// What to do once the driver reports a wipe done.
enum AfterWipe {
    /// Heal: open a fresh connection in pairing mode.
    Pair,
    /// Stay in the current status (logged out, number in use).
    Stay,
    /// Answer the logout/clean request and stop.
    Remove(RpcReplyPort<Result<CleanOutcome, SessionError>>),
}

pub(crate) struct OrgState {
    org: OrgId,
    config: Arc<SupervisorConfig>,
    connector: Arc<dyn Connector>,
    snapshot: watch::Sender<SessionSnapshot>,
    cleanups: Arc<Mutex<ErrorWindow>>,
    phones: PhoneBook,
    emitter: Emitter,
    budget: Arc<ConnectionBudget>,
    driver: mpsc::UnboundedSender<DriverCmd>,
    generation: u64,
    conn: Option<Arc<dyn Connection>>,
    /// The store holds credentials (paired), so a drop is a reconnect, not a pairing.
    paired: bool,
    bad_mac: ErrorWindow,
    stream: ErrorWindow,
    /// Consecutive reconnect attempts, for the backoff.
    attempt: u32,
    waiting: WaitingSends,
    after_wipe: Option<AfterWipe>,
}

pub(crate) struct OrgActor;

impl Actor for OrgActor {
    type Msg = OrgMsg;
    type State = OrgState;
    type Arguments = OrgArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<OrgMsg>,
        args: OrgArgs,
    ) -> Result<OrgState, ActorProcessingErr> {
        let driver = driver::spawn(
            DriverParts {
                org: args.org.clone(),
                connector: args.connector.clone(),
                storage: args.storage,
                lease: args.lease,
                grace: args.config.shutdown_grace,
            },
            myself.clone(),
        );
        let emitter = Emitter {
            org: args.org.clone(),
            sink: args.events,
        };
        let mut state = OrgState {
            emitter,
            bad_mac: ErrorWindow::new(args.config.bad_mac),
            stream: ErrorWindow::new(args.config.stream),
            org: args.org,
            config: args.config,
            connector: args.connector,
            snapshot: args.snapshot,
            cleanups: args.cleanups,
            phones: args.phones,
            budget: args.budget,
            driver,
            generation: 0,
            conn: None,
            paired: false,
            attempt: 0,
            waiting: WaitingSends::default(),
            after_wipe: None,
        };
        match args.begin {
            Begin::Start { phone_for_code } => {
                state.start(&myself, phone_for_code, Attempt::Counted);
            }
            Begin::Recover => {
                let retry_at = state.snapshot.borrow().retry_at;
                if state.status().is_active() {
                    // The session was live when the actor crashed: picking it up
                    // again is a reconnect, not a new connection attempt.
                    state.set(SessionStatus::Disconnected, "recovering", |_| {});
                    state.start(&myself, None, Attempt::Reconnect);
                } else if let (SessionStatus::Banned, Some(at)) = (state.status(), retry_at) {
                    // The ban's own timer died with the crashed actor: arm it again.
                    let left = (at - Utc::now()).to_std().unwrap_or_default();
                    let generation = state.generation;
                    myself.send_after(left, move || OrgMsg::Reconnect { generation });
                } else if state.status() == SessionStatus::Blocked {
                    state.start(&myself, None, Attempt::Counted);
                }
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
        myself: ActorRef<OrgMsg>,
        msg: OrgMsg,
        state: &mut OrgState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            OrgMsg::Start {
                phone_for_code,
                reply,
            } => {
                let already_running = !state.start(&myself, phone_for_code, Attempt::Counted);
                let snapshot = state.snapshot.borrow().clone();
                let _ = reply.send(Ok(StartOutcome {
                    snapshot,
                    already_running,
                }));
            }
            OrgMsg::Send { phone, text, reply } => state.send(&myself, phone, text, reply),
            OrgMsg::Remove { logout, reply } => {
                let reason = if logout { "logout" } else { "force_clean" };
                state.wipe(reason, false, logout, AfterWipe::Remove(reply));
            }
            OrgMsg::Opened { generation, conn } if generation == state.generation => {
                state.conn = Some(conn);
            }
            OrgMsg::OpenFailed { generation, error } if generation == state.generation => {
                tracing::warn!(org_id = %state.org, error = %error, "connection could not be opened");
                state
                    .emitter
                    .emit(state.status(), EventKind::StreamError { code: None });
                state.stream_error(&myself, &format!("connect failed: {error}"));
            }
            OrgMsg::Event { generation, event } if generation == state.generation => {
                state.on_event(&myself, event);
            }
            OrgMsg::Closed { generation } if generation == state.generation => {
                state.reconnect_later(&myself, "connection closed");
            }
            OrgMsg::Wiped {
                generation,
                reason,
                result,
            } if generation == state.generation => state.on_wiped(&myself, &reason, result),
            OrgMsg::Reconnect { generation } if generation == state.generation => {
                let mode = state.resume_or_pair(None);
                state.open(mode);
            }
            OrgMsg::SendExpired { id } => {
                let status = state.status();
                state.waiting.expire(id, status);
            }
            OrgMsg::BudgetRetry {
                generation,
                phone_for_code,
            } if generation == state.generation && state.status() == SessionStatus::Blocked => {
                state.start(&myself, phone_for_code, Attempt::Counted);
            }
            OrgMsg::BudgetRetry { .. } => {}
            #[cfg(test)]
            OrgMsg::CrashForTest => panic!("crash injected by a test"),
            // A message about a connection this actor has already given up on.
            OrgMsg::Opened { .. }
            | OrgMsg::OpenFailed { .. }
            | OrgMsg::Event { .. }
            | OrgMsg::Closed { .. }
            | OrgMsg::Wiped { .. }
            | OrgMsg::Reconnect { .. } => {}
        }
        Ok(())
    }
}

impl OrgState {
    fn status(&self) -> SessionStatus {
        self.snapshot.borrow().status
    }

    /// Publishes a new status (and any other snapshot change) and logs the transition.
    fn set(
        &mut self,
        status: SessionStatus,
        reason: &str,
        change: impl FnOnce(&mut SessionSnapshot),
    ) {
        let before = self.status();
        self.snapshot.send_modify(|s| {
            s.status = status;
            s.reason = Some(reason.to_owned());
            if status != SessionStatus::QrReady {
                s.qr = None;
                s.pairing_code = None;
            }
            if !matches!(status, SessionStatus::Banned | SessionStatus::Blocked) {
                s.retry_at = None;
            }
            s.updated_at = Utc::now();
            change(s);
        });
        if before != status {
            tracing::info!(org_id = %self.org, from = %before, to = %status, reason, "session status changed");
            self.emitter.emit(
                status,
                EventKind::StatusChanged {
                    from: before,
                    reason: reason.to_owned(),
                },
            );
        }
        match status {
            SessionStatus::Connected => {
                if let Some(conn) = &self.conn {
                    self.waiting.flush(conn);
                }
            }
            s if self.may_wait(s) => {}
            s => self.waiting.fail_all(s),
        }
    }

    /// Whether sends may wait for the connection in this status.
    fn may_wait(&self, status: SessionStatus) -> bool {
        self.paired
            && matches!(
                status,
                SessionStatus::Reconnecting | SessionStatus::Connecting
            )
    }

    /// Starts the session unless it is running; returns whether it (re)started
    /// (or tried to, and found the connection-attempt budget spent: `blocked`).
    fn start(
        &mut self,
        myself: &ActorRef<OrgMsg>,
        phone_for_code: Option<String>,
        attempt: Attempt,
    ) -> bool {
        let status = self.status();
        let banned = status == SessionStatus::Banned
            && self
                .snapshot
                .borrow()
                .retry_at
                .is_some_and(|t| t > Utc::now());
        if status.is_active() || banned || self.after_wipe.is_some() {
            return false;
        }
        if status == SessionStatus::Quarantined {
            // An explicit start is the operator's word that the org may try again.
            self.cleanups.lock().unwrap().clear();
        }
        // The draw checks and records both budgets under one lock, so concurrent
        // starts of many orgs take exactly the budget and no more.
        if attempt == Attempt::Counted
            && let Err(blocked) = self.budget.try_draw(&self.org, Instant::now())
        {
            self.block(myself, blocked, phone_for_code);
            return true;
        }
        self.attempt = 0;
        let mode = self.resume_or_pair(phone_for_code);
        self.open(mode);
        true
    }

    /// The budget refused this attempt: `blocked` until `retry_at`, then retry.
    fn block(
        &mut self,
        myself: &ActorRef<OrgMsg>,
        blocked: Blocked,
        phone_for_code: Option<String>,
    ) {
        self.abandon();
        let retry_at = Utc::now()
            + chrono::Duration::from_std(blocked.wait).unwrap_or(chrono::Duration::hours(1));
        let why = blocked.describe(&self.budget.spec());
        tracing::warn!(org_id = %self.org, reason = %why, "connection attempt refused by the budget");
        self.set(SessionStatus::Blocked, &why, |s| {
            s.retry_at = Some(retry_at)
        });
        let generation = self.generation;
        myself.send_after(blocked.wait, move || OrgMsg::BudgetRetry {
            generation,
            phone_for_code,
        });
    }

    /// Resume when the store holds credentials, pair otherwise.
    fn resume_or_pair(&mut self, phone_for_code: Option<String>) -> StartMode {
        let dir = fs_ops::live_dir(&self.config.sessions_dir, &self.org);
        // An unreadable store is resumed, never re-paired: the connect decides.
        self.paired = self.connector.has_credentials(&dir).unwrap_or(true);
        if self.paired {
            StartMode::Resume
        } else {
            StartMode::Pair { phone_for_code }
        }
    }

    /// Opens a new connection (the driver closes the old one first).
    fn open(&mut self, mode: StartMode) {
        self.generation += 1;
        self.conn = None;
        let (status, reason) = match mode {
            StartMode::Resume => (
                SessionStatus::Reconnecting,
                "connecting with stored credentials",
            ),
            StartMode::Pair { .. } => (SessionStatus::Connecting, "waiting for the first QR code"),
        };
        self.set(status, reason, |_| {});
        let _ = self.driver.send(DriverCmd::Open {
            generation: self.generation,
            mode,
        });
    }

    /// Gives up on the current connection and closes it.
    fn abandon(&mut self) {
        self.generation += 1;
        self.conn = None;
        let _ = self.driver.send(DriverCmd::Close { done: None });
    }

    /// Closes the connection and reconnects after a backoff.
    fn reconnect_later(&mut self, myself: &ActorRef<OrgMsg>, why: &str) {
        self.abandon();
        let delay = self.config.reconnect.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let status = if self.paired {
            SessionStatus::Reconnecting
        } else {
            SessionStatus::Connecting
        };
        let reason = format!("{why}; retrying in {} ms", delay.as_millis());
        self.set(status, &reason, |_| {});
        let generation = self.generation;
        myself.send_after(delay, move || OrgMsg::Reconnect { generation });
    }

    /// Backs up and wipes the store through the driver; `then` runs when it is done.
    fn wipe(&mut self, reason: &str, recreate: bool, logout: bool, then: AfterWipe) {
        self.generation += 1;
        self.conn = None;
        self.paired = false;
        self.phones.release(&self.org);
        self.after_wipe = Some(then);
        let _ = self.driver.send(DriverCmd::Wipe {
            generation: self.generation,
            reason: reason.to_owned(),
            recreate,
            logout,
        });
    }

    fn on_wiped(
        &mut self,
        myself: &ActorRef<OrgMsg>,
        reason: &str,
        result: Result<Option<String>, StorageError>,
    ) {
        let then = self.after_wipe.take();
        if let Ok(backup) = &result {
            self.bad_mac.clear();
            self.stream.clear();
            let cleaned = EventKind::Cleaned {
                reason: reason.to_owned(),
                backup: backup.clone(),
            };
            self.emitter.emit(self.status(), cleaned);
        }
        match then {
            Some(AfterWipe::Remove(reply)) => {
                let outcome = result
                    .map(|backup| CleanOutcome { backup })
                    .map_err(|e| SessionError::Storage(e.0));
                if outcome.is_ok() {
                    let org = self.org.clone();
                    self.snapshot
                        .send_replace(SessionSnapshot::not_started(org));
                    tracing::info!(org_id = %self.org, from = "-", to = "not_started", reason, "session removed");
                    myself.stop(Some(reason.to_owned()));
                } else {
                    self.set(
                        SessionStatus::Disconnected,
                        "the session could not be removed",
                        |_| {},
                    );
                }
                let _ = reply.send(outcome);
            }
            Some(AfterWipe::Pair) => match result {
                Ok(backup) => {
                    tracing::info!(org_id = %self.org, reason, backup = backup.as_deref().unwrap_or("-"), "session healed; pairing again");
                    self.attempt = 0;
                    self.open(StartMode::Pair {
                        phone_for_code: None,
                    });
                }
                Err(e) => {
                    tracing::error!(org_id = %self.org, error = %e, "cleanup failed; the session was left in place");
                    self.set(
                        SessionStatus::Disconnected,
                        "automatic cleanup failed",
                        |_| {},
                    );
                }
            },
            Some(AfterWipe::Stay) | None => {
                if let Err(e) = result {
                    tracing::error!(org_id = %self.org, error = %e, "wipe failed; the session was left in place");
                }
            }
        }
    }

    fn send(
        &mut self,
        myself: &ActorRef<OrgMsg>,
        phone: String,
        text: String,
        reply: RpcReplyPort<Result<SentMessage, SendError>>,
    ) {
        let reply = waiting::Reply::new(reply, self.emitter.clone());
        let status = self.status();
        match (&self.conn, status) {
            (Some(conn), SessionStatus::Connected) => waiting::send_now(conn, phone, text, reply),
            (_, s) if self.may_wait(s) => {
                let id = self.waiting.park(phone, text, reply);
                myself.send_after(self.config.send_wait, move || OrgMsg::SendExpired { id });
            }
            (_, status) => reply.finish(&phone, status, Err(SendError::NotConnected { status })),
        }
    }

    fn on_event(&mut self, myself: &ActorRef<OrgMsg>, event: ConnectionEvent) {
        let now = Instant::now();
        match classify(&event) {
            Class::Progress => self.on_progress(event),
            Class::DecryptError => {
                if let ConnectionEvent::Undecryptable { sender, reason } = &event {
                    tracing::warn!(org_id = %self.org, sender, reason, "message could not be decrypted");
                }
                self.emitter.emit(self.status(), EventKind::DecryptError);
                if self.bad_mac.record(now) {
                    self.heal("bad_mac");
                }
            }
            Class::StreamError => {
                let code = match &event {
                    ConnectionEvent::StreamError { code, .. } => *code,
                    _ => None,
                };
                self.emitter
                    .emit(self.status(), EventKind::StreamError { code });
                let text = match &event {
                    ConnectionEvent::StreamError { code, text } => {
                        format!(
                            "stream error {}{text}",
                            code.map(|c| format!("{c} ")).unwrap_or_default()
                        )
                    }
                    other => format!("{other:?}"),
                };
                self.stream_error(myself, &text);
            }
            Class::Restart => {
                // 515 after pairing: the credentials are fresh, log in with them now.
                self.paired = true;
                self.set(
                    SessionStatus::Reconnecting,
                    "restart required (515)",
                    |_| {},
                );
                self.open(StartMode::Resume);
            }
            Class::ServerBusy => self.reconnect_later(myself, "WhatsApp is busy"),
            Class::Transient => {
                let why = match &event {
                    ConnectionEvent::NetworkFailure { reason } => {
                        format!("network failure: {reason}")
                    }
                    _ => "network failure".to_owned(),
                };
                self.reconnect_later(myself, &why);
            }
            Class::Conflict => {
                self.abandon();
                self.set(
                    SessionStatus::Conflict,
                    "another client took over this session; start the session to take it back",
                    |_| {},
                );
            }
            Class::LoggedOut => {
                self.set(
                    SessionStatus::LoggedOut,
                    "the phone removed this device; start the session to scan a new QR code",
                    |s| s.phone_number = None,
                );
                self.wipe("logged_out", true, false, AfterWipe::Stay);
            }
            Class::Banned => {
                self.abandon();
                let expires_in = match event {
                    ConnectionEvent::TemporaryBan {
                        expires_in: Some(d),
                    } => d,
                    _ => self.config.default_ban,
                };
                let retry_at = Utc::now()
                    + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::hours(1));
                self.set(
                    SessionStatus::Banned,
                    "WhatsApp sent a temporary ban",
                    |s| s.retry_at = Some(retry_at),
                );
                let generation = self.generation;
                myself.send_after(expires_in, move || OrgMsg::Reconnect { generation });
            }
            Class::Outdated => {
                self.abandon();
                self.set(
                    SessionStatus::ClientOutdated,
                    "WhatsApp rejected this client version; upgrade wa-supervisor",
                    |_| {},
                );
            }
            // Sends answer when written; acks and receipts are not tracked yet.
            Class::Delivery => {}
            Class::QrExhausted => {
                self.abandon();
                self.set(
                    SessionStatus::Disconnected,
                    "no QR code was scanned in time; start the session again",
                    |_| {},
                );
            }
        }
    }

    fn on_progress(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::QrCode { code, .. } => {
                let keep = self.snapshot.borrow().pairing_code.clone();
                self.set(
                    SessionStatus::QrReady,
                    "scan the QR code with WhatsApp",
                    |s| {
                        s.qr = Some(code.clone());
                        s.pairing_code = keep.clone();
                    },
                );
                let qr = EventKind::Qr {
                    code,
                    pairing_code: keep,
                };
                self.emitter.emit(SessionStatus::QrReady, qr);
            }
            ConnectionEvent::PairingCode { code } => {
                let qr = self.snapshot.borrow().qr.clone();
                self.set(
                    SessionStatus::QrReady,
                    "enter the pairing code in WhatsApp",
                    |s| {
                        s.pairing_code = Some(code.clone());
                        s.qr = qr.clone();
                    },
                );
                if let Some(qr) = qr {
                    let event = EventKind::Qr {
                        code: qr,
                        pairing_code: Some(code),
                    };
                    self.emitter.emit(SessionStatus::QrReady, event);
                }
            }
            ConnectionEvent::Paired { phone } if self.claim(&phone) => {
                self.paired = true;
                self.set(SessionStatus::Reconnecting, "paired; logging in", |s| {
                    s.phone_number = Some(phone)
                });
            }
            ConnectionEvent::Connected { phone } if self.claim(&phone) => {
                self.paired = true;
                self.attempt = 0;
                self.set(SessionStatus::Connected, "connected", |s| {
                    s.phone_number = Some(phone.clone())
                });
                self.emitter
                    .emit(SessionStatus::Connected, EventKind::Connected { phone });
            }
            _ => {}
        }
    }

    /// Claims the number for this org; when another org holds it, this pairing is
    /// logged out and wiped and the status becomes `number_in_use`.
    fn claim(&mut self, phone: &str) -> bool {
        match self.phones.claim(phone, &self.org) {
            Ok(()) => true,
            Err(owner) => {
                tracing::warn!(org_id = %self.org, owner = %owner, "number already connected for another organization");
                self.set(
                    SessionStatus::NumberInUse,
                    "this number is already connected for another organization",
                    |s| s.phone_number = Some(phone.to_owned()),
                );
                self.wipe("number_in_use", true, true, AfterWipe::Stay);
                false
            }
        }
    }

    fn stream_error(&mut self, myself: &ActorRef<OrgMsg>, what: &str) {
        tracing::warn!(org_id = %self.org, error = what, "stream error");
        if self.stream.record(Instant::now()) {
            self.heal("stream_errors");
        } else {
            self.reconnect_later(myself, what);
        }
    }

    /// A window reached its limit: back up, wipe and pair again, unless the org has
    /// been cleaned too often lately, in which case it is quarantined as it is.
    fn heal(&mut self, reason: &str) {
        let now = Instant::now();
        {
            let mut cleanups = self.cleanups.lock().unwrap();
            let spec = cleanups.spec();
            if cleanups.count(now) >= spec.limit {
                drop(cleanups);
                self.abandon();
                let why = format!(
                    "more than {} automatic cleanups within {} s (last: {reason}); start the session to try again",
                    spec.limit,
                    spec.length.as_secs()
                );
                self.set(SessionStatus::Quarantined, &why, |_| {});
                return;
            }
            cleanups.record(now);
        }
        let why = format!("{reason} limit reached; backing up and wiping the session");
        self.set(SessionStatus::Connecting, &why, |s| s.phone_number = None);
        self.wipe(reason, true, false, AfterWipe::Pair);
    }
}
