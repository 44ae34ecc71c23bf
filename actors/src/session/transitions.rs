//! How an org actor moves between phases: requests, connection reports, timers.
//!
//! Every step ends in [`OrgState::enter`], which publishes the snapshot derived
//! from the new phase, logs a status change and reports it as an event.

use chrono::Utc;
use ractor::RpcReplyPort;
use tokio::time::Instant;

use super::actor::{OrgState, Waiter};
use super::driver::{Afterwards, DriverCmd, Farewell};
use super::msg::{LaneReport, Removal, Report, Timer};
use super::phase::{AfterWipe, Next, OpenMode, Phase, Rest};
use super::steps::WipeSteps;
use crate::connection::{Class, ConnectionError, ConnectionEvent, classify};
use crate::events::EventKind;
use crate::storage::backups::{RestoreError, Restored};
use crate::supervisor::{CleanOutcome, RestoreOutcome, StartOutcome};
use crate::{SessionError, SessionStatus};

impl OrgState {
    // ---- requests -------------------------------------------------------------

    pub(super) fn on_start(
        &mut self,
        phone_for_code: Option<String>,
        reply: RpcReplyPort<Result<StartOutcome, SessionError>>,
    ) {
        let banned = matches!(self.phase, Phase::Banned { retry_at } if retry_at > Utc::now());
        if self.phase.is_running() || banned {
            let outcome = StartOutcome {
                snapshot: self.snapshot.borrow().clone(),
                already_running: true,
            };
            let _ = reply.send(Ok(outcome));
            return;
        }
        self.waiting.push(Waiter::Start(reply));
        self.start(phone_for_code);
    }

    /// Starts a session that is not running: draws one connection attempt from
    /// the budget (CONTRACT §6: a new pairing, a start after `disconnected` and the
    /// like, a resume at start-up), then reads the store to choose between
    /// resuming and pairing. Reconnects of a live session (backoffs, the end of a
    /// ban, picking a session up after a crash) come through `probe`/`open`
    /// directly and draw nothing.
    pub(super) fn start(&mut self, phone_for_code: Option<String>) {
        if matches!(self.phase, Phase::Resting(Rest::Quarantined)) {
            // An explicit start is the operator's word that the org may try again.
            self.cleanups.lock().unwrap().clear();
            self.healer.lock().unwrap().wiped();
        }
        // The draw checks and records both budgets under one lock, so concurrent
        // starts of many orgs take exactly the budget and no more.
        if let Err(blocked) = self.budget.try_draw(&self.org, Instant::now()) {
            let retry_at = Utc::now()
                + chrono::Duration::from_std(blocked.wait).unwrap_or(chrono::Duration::hours(1));
            let why = blocked.describe(&self.budget.spec());
            tracing::warn!(org_id = %self.org, reason = %why, "connection attempt refused by the budget");
            self.block_until(retry_at, phone_for_code, &why);
            return;
        }
        self.attempt = 0;
        self.probe(phone_for_code);
    }

    pub(super) fn on_restore(
        &mut self,
        backup: String,
        reply: RpcReplyPort<Result<RestoreOutcome, SessionError>>,
    ) {
        if matches!(self.phase, Phase::Wiping(_) | Phase::Restoring { .. }) {
            let _ = reply.send(Err(SessionError::Busy(
                "the session is being cleaned or restored; retry in a moment".into(),
            )));
            return;
        }
        let generation = self.next_generation();
        let why = format!("restoring backup {backup}");
        let was = match self.phase {
            Phase::Resting(rest) => Some(rest),
            _ => None,
        };
        self.enter(Phase::Restoring { reply, was }, why);
        let _ = self.driver.send(DriverCmd::Restore { generation, backup });
    }

    fn on_restored(&mut self, result: Result<Restored, RestoreError>) {
        let Phase::Restoring { reply, was } =
            std::mem::replace(&mut self.phase, Phase::Resting(Rest::Disconnected))
        else {
            return;
        };
        match result {
            Ok(restored) => {
                // Whatever number the restored credentials are, it is learnt anew;
                // the old session's error windows do not apply to them.
                self.phones.release(&self.org);
                self.healer.lock().unwrap().wiped();
                self.phone = None;
                self.paired = true;
                self.waiting.push(Waiter::Restore { reply, restored });
                self.start(None);
            }
            Err(e) => {
                let _ = reply.send(Err(match e {
                    RestoreError::InvalidName(name) => SessionError::InvalidBackupName(name),
                    RestoreError::UnknownBackup(name) => SessionError::UnknownBackup(name),
                    RestoreError::Storage(e) => SessionError::Storage(e),
                }));
                // Nothing changed on disk (or it was undone): a resting session
                // rests again (a failed restore is no reason to reconnect a
                // `conflict` or a `quarantined` one); any other resumes what is live.
                match was {
                    Some(rest) => self.rest(rest, "the backup could not be restored"),
                    None => self.probe(None),
                }
            }
        }
    }

    pub(super) fn on_remove(
        &mut self,
        how: Removal,
        reply: RpcReplyPort<Result<CleanOutcome, SessionError>>,
    ) {
        if let Phase::Restoring { .. } = self.phase {
            let _ = reply.send(Err(SessionError::Busy(
                "a backup is being restored; retry in a moment".into(),
            )));
            return;
        }
        if let Phase::Wiping(AfterWipe::Remove(replies)) = &mut self.phase {
            // Already being removed: this request hears the same outcome.
            replies.push(reply);
            return;
        }
        if let Phase::Wiping(_) = self.phase {
            // A heal's wipe is under way: removing is what follows it.
            self.phase = Phase::Wiping(AfterWipe::Remove(vec![reply]));
            self.reason = format!("removing the session on request ({})", how.reason());
            self.publish();
            return;
        }
        let farewell = match how {
            Removal::Logout => Farewell::Unlink,
            Removal::ForceClean => Farewell::Close,
        };
        self.wipe(
            how.reason(),
            format!("removing the session on request ({})", how.reason()),
            WipeSteps {
                farewell,
                afterwards: Afterwards::NoDir,
            },
            AfterWipe::Remove(vec![reply]),
        );
    }

    // ---- reports ----------------------------------------------------------------

    pub(super) fn on_report(&mut self, report: Report) {
        match report {
            Report::Probed(result) => self.on_probed(result),
            Report::Opened(conn) => {
                if let Phase::Opening { conn: slot, .. } = &mut self.phase {
                    *slot = Some(conn);
                }
            }
            Report::OpenFailed(error) => self.on_open_failed(error),
            Report::Event(event) => self.on_event(event),
            Report::Closed => self.back_off("connection closed"),
            Report::Wiped { reason, result } => self.on_wiped(&reason, result),
            Report::Restored(result) => self.on_restored(result),
        }
    }

    fn on_probed(&mut self, result: Result<bool, ConnectionError>) {
        let Phase::Probing { phone_for_code, .. } = &mut self.phase else {
            return;
        };
        let phone_for_code = phone_for_code.take();
        match result {
            Ok(true) => {
                self.paired = true;
                self.open(OpenMode::Resume);
            }
            Ok(false) => {
                self.paired = false;
                self.phone = None;
                self.open(OpenMode::Pair { phone_for_code });
            }
            Err(ConnectionError::StoreCorrupt(detail)) => self.store_corrupt(&detail),
            Err(error) => {
                tracing::warn!(org_id = %self.org, error = %error, "the session store could not be read");
                // Something is stored that cannot be read right now: it may well be
                // a paired session, so it reads `reconnecting` ("wait, do not
                // clean"), never `connecting`, on which the deployed client cleans.
                self.paired = true;
                self.back_off_with(&error.to_string(), Next::Probe);
            }
        }
    }

    fn on_open_failed(&mut self, error: ConnectionError) {
        tracing::warn!(org_id = %self.org, error = %error, "connection could not be opened");
        match error {
            ConnectionError::StoreCorrupt(detail) => self.store_corrupt(&detail),
            // A store we cannot use right now is never a reason to wipe it.
            ConnectionError::StoreUnavailable(_) => self.back_off(&error.to_string()),
            // CONTRACT §4: a connect failure counts as a stream error.
            _ => {
                self.emitter
                    .emit(self.status(), EventKind::StreamError { code: None });
                self.stream_error(&format!("connect failed: {error}"));
            }
        }
    }

    fn on_event(&mut self, event: ConnectionEvent) {
        match classify(&event) {
            Class::Progress => self.on_progress(event),
            Class::DecryptError => {
                if let ConnectionEvent::Undecryptable { sender, .. } = &event {
                    self.decrypt_error(sender);
                }
            }
            Class::StreamError => {
                let (code, text) = match &event {
                    ConnectionEvent::StreamError { code, text } => (*code, text.as_str()),
                    _ => (None, "stream error"),
                };
                self.emitter
                    .emit(self.status(), EventKind::StreamError { code });
                let what = match code {
                    Some(code) => format!("stream error {code} {text}"),
                    None => format!("stream error {text}"),
                };
                self.stream_error(&what);
            }
            Class::Restart => {
                // 515 after pairing: the credentials are fresh, log in with them now.
                self.paired = true;
                self.open_because(OpenMode::Resume, "restart required (515)".into());
            }
            Class::ServerBusy => self.back_off("WhatsApp is busy"),
            Class::Transient => {
                let why = match &event {
                    ConnectionEvent::NetworkFailure { reason } => {
                        format!("network failure: {reason}")
                    }
                    _ => "network failure".to_owned(),
                };
                self.back_off(&why);
            }
            Class::Conflict => self.rest(
                Rest::Conflict,
                "another client took over this session; start the session to take it back",
            ),
            Class::LoggedOut => {
                self.phone = None;
                self.wipe(
                    "logged_out",
                    "the phone removed this device; start the session to scan a new QR code".into(),
                    WipeSteps::CLOSE_AND_EMPTY,
                    AfterWipe::Rest(Rest::LoggedOut),
                );
            }
            Class::Banned => {
                let expires_in = match event {
                    ConnectionEvent::TemporaryBan {
                        expires_in: Some(d),
                    } => d,
                    _ => self.config.default_ban,
                };
                let retry_at = Utc::now()
                    + chrono::Duration::from_std(expires_in).unwrap_or(chrono::Duration::hours(1));
                self.ban_until(retry_at);
            }
            Class::Outdated => self.rest(
                Rest::ClientOutdated,
                "WhatsApp rejected this client version; upgrade wa-supervisor",
            ),
            Class::QrExhausted => self.rest(
                Rest::Disconnected,
                "no QR code was scanned in time; start the session again",
            ),
            Class::Delivery => self.to_lane(event),
        }
    }

    fn on_progress(&mut self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::QrCode { code, .. } => {
                let pairing_code = match &self.phase {
                    Phase::ShowingQr { pairing_code, .. } => pairing_code.clone(),
                    _ => None,
                };
                let shown = Phase::ShowingQr {
                    qr: code.clone(),
                    pairing_code: pairing_code.clone(),
                };
                self.enter(shown, "scan the QR code with WhatsApp");
                let qr = EventKind::Qr { code, pairing_code };
                self.emitter.emit(SessionStatus::QrReady, qr);
            }
            ConnectionEvent::PairingCode { code } => {
                let qr = match &self.phase {
                    Phase::ShowingQr { qr, .. } => Some(qr.clone()),
                    _ => None,
                };
                if let Some(qr) = qr {
                    let shown = Phase::ShowingQr {
                        qr: qr.clone(),
                        pairing_code: Some(code.clone()),
                    };
                    self.enter(shown, "enter the pairing code in WhatsApp");
                    let event = EventKind::Qr {
                        code: qr,
                        pairing_code: Some(code),
                    };
                    self.emitter.emit(SessionStatus::QrReady, event);
                }
            }
            ConnectionEvent::Paired { phone } if self.claim(&phone) => {
                self.paired = true;
                self.phone = Some(phone);
                // Still the same connection: WhatsApp restarts the stream (515) next.
                let conn = match &mut self.phase {
                    Phase::Opening { conn, .. } => conn.take(),
                    _ => None,
                };
                let logging_in = Phase::Opening {
                    mode: OpenMode::Resume,
                    conn,
                };
                self.enter(logging_in, "paired; logging in");
            }
            ConnectionEvent::Connected { phone } if self.claim(&phone) => {
                let conn = match &mut self.phase {
                    Phase::Opening { conn, .. } => conn.take(),
                    _ => None,
                };
                let Some(conn) = conn else {
                    // The driver reports `Opened` before any event; a connection
                    // we never saw open cannot be served.
                    tracing::error!(org_id = %self.org, phase = self.phase.name(), "connected without an open connection; reconnecting");
                    return self.back_off("internal: connected without an open connection");
                };
                self.paired = true;
                self.attempt = 0;
                self.phone = Some(phone.clone());
                self.healthy();
                self.enter(Phase::Live { conn }, "connected");
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
                self.phone = Some(phone.to_owned());
                self.wipe(
                    "number_in_use",
                    "this number is already connected for another organization".into(),
                    WipeSteps {
                        farewell: Farewell::Unlink,
                        afterwards: Afterwards::EmptyDir,
                    },
                    AfterWipe::Rest(Rest::NumberInUse),
                );
                false
            }
        }
    }

    // ---- timers and the lane -----------------------------------------------------

    pub(super) fn on_timer(&mut self, timer: Timer) {
        match (timer, &self.phase) {
            (Timer::Retry, Phase::BackingOff { next, .. }) => match next.clone() {
                Next::Probe => self.probe(None),
                Next::Open(mode) => self.open(mode),
            },
            (Timer::Retry, Phase::Banned { .. }) => self.probe(None),
            (Timer::BudgetRetry, Phase::Blocked { phone_for_code, .. }) => {
                let phone_for_code = phone_for_code.clone();
                self.start(phone_for_code);
            }
            _ => {}
        }
    }

    pub(super) fn on_lane(&mut self, report: LaneReport) {
        match report {
            LaneReport::NoAck {
                generation,
                waited_secs,
            } if generation == self.generation && matches!(self.phase, Phase::Live { .. }) => {
                let why = format!(
                    "WhatsApp did not acknowledge a message within {waited_secs} s; \
                     the connection is taken for dead"
                );
                tracing::warn!(org_id = %self.org, waited_secs, "no server ack; reconnecting");
                self.back_off(&why);
            }
            LaneReport::NoAck { .. } => {}
        }
    }
}
