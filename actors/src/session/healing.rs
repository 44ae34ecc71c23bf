//! Self-healing (CONTRACT §5, §11): what the org's [`Healer`](crate::healing::Healer)
//! decides is carried out here — a restart from the same credentials, or a backup,
//! wipe and new pairing (or quarantine, when the org was cleaned too often) — and
//! what follows a finished wipe.

use tokio::time::Instant;

use super::actor::OrgState;
use super::phase::{AfterWipe, OpenMode, Phase, Rest};
use super::steps::WipeSteps;
use crate::events::EventKind;
use crate::healing::{Step, Trip};
use crate::storage::StorageError;
use crate::supervisor::CleanOutcome;
use crate::{SessionError, SessionSnapshot};

impl OrgState {
    pub(super) fn decrypt_error(&mut self, sender: &str) {
        // The log formatter turns the sender's number into a keyed token: senders
        // can be told apart, numbers cannot be read.
        tracing::warn!(org_id = %self.org, sender, "message could not be decrypted");
        self.emitter.emit(self.status(), EventKind::DecryptError);
        let trip = self
            .healer
            .lock()
            .unwrap()
            .on_decrypt_error(Instant::now(), sender);
        if let Some(trip) = trip {
            self.heal(trip);
        }
    }

    pub(super) fn stream_error(&mut self, what: &str) {
        tracing::warn!(org_id = %self.org, error = what, "stream error");
        let trip = self.healer.lock().unwrap().on_stream_error(Instant::now());
        match trip {
            Some(trip) => self.heal(trip),
            None => self.back_off(what),
        }
    }

    /// The restarted connection is up: the healer starts its confirmation time.
    pub(super) fn healthy(&self) {
        self.healer.lock().unwrap().restart_done(Instant::now());
    }

    /// The store says it is damaged: keep a backup, wipe it and pair again at once.
    /// Neither waiting nor a restart would mend it.
    pub(super) fn store_corrupt(&mut self, detail: &str) {
        tracing::error!(org_id = %self.org, error = detail, "the session store is corrupt; backing it up and pairing again");
        self.clean_up("store_corrupt", 1, 0);
    }

    fn heal(&mut self, trip: Trip) {
        let window = trip.window.as_str();
        match trip.step {
            Step::Restart => {
                self.emitter.emit(
                    self.status(),
                    EventKind::Healing {
                        step: Step::Restart,
                        window,
                        events: trip.events,
                        senders: trip.senders,
                    },
                );
                let why = format!(
                    "{window} limit reached ({} events from {} senders); restarting the connection \
                     from the same credentials",
                    trip.events, trip.senders
                );
                let mode = if self.paired {
                    OpenMode::Resume
                } else {
                    OpenMode::Pair {
                        phone_for_code: None,
                    }
                };
                self.open_because(mode, why);
                // Logged once the restart is under way: whoever reads it and then
                // the status finds the new connection's, never the old one's.
                tracing::warn!(org_id = %self.org, step = "restart", window, events = trip.events, senders = trip.senders, "healing: restarting the connection");
            }
            Step::Wipe => self.clean_up(window, trip.events, trip.senders),
        }
    }

    /// Back up, wipe and pair again, unless the org has been cleaned too often
    /// lately: then it is quarantined as it is.
    fn clean_up(&mut self, reason: &'static str, events: usize, senders: usize) {
        let now = Instant::now();
        {
            let mut cleanups = self.cleanups.lock().unwrap();
            let spec = cleanups.spec();
            if cleanups.count(now) >= spec.limit {
                drop(cleanups);
                self.healer.lock().unwrap().wiped();
                let why = format!(
                    "more than {} automatic cleanups within {} s (last: {reason}); start the session to try again",
                    spec.limit,
                    spec.length.as_secs()
                );
                return self.rest(Rest::Quarantined, &why);
            }
            cleanups.record(now);
        }
        tracing::warn!(org_id = %self.org, step = "wipe", window = reason, events, senders, "healing: backing up and wiping the session");
        self.emitter.emit(
            self.status(),
            EventKind::Healing {
                step: Step::Wipe,
                window: reason,
                events,
                senders,
            },
        );
        self.phone = None;
        self.wipe(
            reason,
            format!("{reason} limit reached; backing up and wiping the session"),
            WipeSteps::CLOSE_AND_EMPTY,
            AfterWipe::Pair,
        );
    }

    pub(super) fn on_wiped(&mut self, reason: &str, result: Result<Option<String>, StorageError>) {
        let Phase::Wiping(then) =
            std::mem::replace(&mut self.phase, Phase::Resting(Rest::Disconnected))
        else {
            return;
        };
        if result.is_err() {
            // The store is still in place: a healer left waiting for the wipe would
            // ignore every error of this session from now on.
            self.healer.lock().unwrap().wipe_failed();
        }
        if let Ok(backup) = &result {
            self.healer.lock().unwrap().wiped();
            let status = match &then {
                AfterWipe::Remove(_) => crate::SessionStatus::NotStarted,
                then => then.status(),
            };
            let cleaned = EventKind::Cleaned {
                reason: reason.to_owned(),
                backup: backup.clone(),
            };
            self.emitter.emit(status, cleaned);
        }
        match (then, result) {
            (AfterWipe::Remove(replies), Ok(backup)) => {
                self.snapshot.send_replace(SessionSnapshot {
                    node_id: self.config.node_id.clone(),
                    ..SessionSnapshot::not_started(self.org.clone())
                });
                tracing::info!(org_id = %self.org, from = "-", to = "not_started", reason, "session removed");
                self.myself.stop(Some(reason.to_owned()));
                for reply in replies {
                    let _ = reply.send(Ok(CleanOutcome {
                        backup: backup.clone(),
                    }));
                }
            }
            (AfterWipe::Remove(replies), Err(e)) => {
                tracing::error!(org_id = %self.org, error = %e, "the session could not be removed");
                let why = format!("the session could not be removed: {e}");
                self.enter(Phase::Resting(Rest::Disconnected), why);
                for reply in replies {
                    let _ = reply.send(Err(SessionError::Storage(e.0.clone())));
                }
            }
            (AfterWipe::Pair, Ok(backup)) => {
                tracing::info!(org_id = %self.org, reason, backup = backup.as_deref().unwrap_or("-"), "session healed; pairing again");
                self.attempt = 0;
                self.open(OpenMode::Pair {
                    phone_for_code: None,
                });
            }
            (AfterWipe::Pair, Err(e)) => {
                tracing::error!(org_id = %self.org, error = %e, "cleanup failed; the session was left in place");
                let why = format!("automatic cleanup failed ({e}); the session was left in place");
                self.enter(Phase::Resting(Rest::Disconnected), why);
            }
            (AfterWipe::Rest(rest), Ok(_)) => {
                let why = std::mem::take(&mut self.reason);
                self.enter(Phase::Resting(rest), why);
            }
            (AfterWipe::Rest(rest), Err(e)) => {
                tracing::error!(org_id = %self.org, error = %e, "wipe failed; the session was left in place");
                let why = format!("{}; the wipe failed ({e})", self.reason);
                self.enter(Phase::Resting(rest), why);
            }
        }
    }
}
