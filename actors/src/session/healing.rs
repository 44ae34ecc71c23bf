//! Self-healing (CONTRACT §5): the error windows, and what a full window, a
//! corrupt store and a finished wipe lead to.

use tokio::time::Instant;

use super::actor::OrgState;
use super::phase::{AfterWipe, OpenMode, Phase, Rest};
use super::transitions::WipeSteps;
use crate::events::EventKind;
use crate::storage::StorageError;
use crate::supervisor::CleanOutcome;
use crate::{ErrorWindow, SessionError, SessionSnapshot, SupervisorConfig};

/// The two sliding windows of one org. A reconnect does not reset them; a wipe does.
pub(crate) struct Windows {
    bad_mac: ErrorWindow,
    stream: ErrorWindow,
}

impl Windows {
    pub(crate) fn new(config: &SupervisorConfig) -> Self {
        Self {
            bad_mac: ErrorWindow::new(config.bad_mac),
            stream: ErrorWindow::new(config.stream),
        }
    }

    fn clear(&mut self) {
        self.bad_mac.clear();
        self.stream.clear();
    }
}

impl OrgState {
    pub(super) fn decrypt_error(&mut self, sender: &str) {
        tracing::warn!(org_id = %self.org, sender = %crate::privacy::mask_phone(sender), "message could not be decrypted");
        self.emitter.emit(self.status(), EventKind::DecryptError);
        if self.windows.bad_mac.record(Instant::now()) {
            self.heal("bad_mac");
        }
    }

    pub(super) fn stream_error(&mut self, what: &str) {
        tracing::warn!(org_id = %self.org, error = what, "stream error");
        if self.windows.stream.record(Instant::now()) {
            self.heal("stream_errors");
        } else {
            self.back_off(what);
        }
    }

    /// The store says it is damaged: keep a backup, wipe it and pair again at once.
    /// Waiting would not mend it, so it is not retried first.
    pub(super) fn store_corrupt(&mut self, detail: &str) {
        tracing::error!(org_id = %self.org, error = detail, "the session store is corrupt; backing it up and pairing again");
        self.heal("store_corrupt");
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
                let why = format!(
                    "more than {} automatic cleanups within {} s (last: {reason}); start the session to try again",
                    spec.limit,
                    spec.length.as_secs()
                );
                return self.rest(Rest::Quarantined, &why);
            }
            cleanups.record(now);
        }
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
        if let Ok(backup) = &result {
            self.windows.clear();
            let cleaned = EventKind::Cleaned {
                reason: reason.to_owned(),
                backup: backup.clone(),
            };
            let status = match &then {
                AfterWipe::Remove(_) => crate::SessionStatus::NotStarted,
                then => then.status(),
            };
            self.emitter.emit(status, cleaned);
        }
        match (then, result) {
            (AfterWipe::Remove(replies), Ok(backup)) => {
                self.snapshot
                    .send_replace(SessionSnapshot::not_started(self.org.clone()));
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
