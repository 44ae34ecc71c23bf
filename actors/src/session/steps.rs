//! The steps a transition ends in: probing the store, opening a connection,
//! backing off, resting, wiping, and entering a phase, which publishes the
//! snapshot derived from it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::actor::{OrgState, Waiter};
use super::driver::{Afterwards, DriverCmd, Farewell};
use super::msg::{OrgMsg, Timer};
use super::phase::{AfterWipe, Next, OpenMode, Phase, Rest};
use crate::connection::StartMode;
use crate::events::EventKind;
use crate::supervisor::{RestoreOutcome, StartOutcome};
use crate::{SessionSnapshot, SessionStatus};

/// How a wipe leaves the connection and the live directory.
#[derive(Clone, Copy, Debug)]
pub(super) struct WipeSteps {
    pub farewell: Farewell,
    pub afterwards: Afterwards,
}

impl WipeSteps {
    /// Close the connection, keep an empty live directory: a new pairing follows.
    pub(super) const CLOSE_AND_EMPTY: Self = Self {
        farewell: Farewell::Close,
        afterwards: Afterwards::EmptyDir,
    };
}

impl OrgState {
    /// Reads the store (through the driver) to choose between resuming and pairing.
    pub(super) fn probe(&mut self, phone_for_code: Option<String>) {
        let generation = self.next_generation();
        // Readers keep the status they saw until the store answers, except that a
        // paired session coming back reads `reconnecting` (never `connecting`).
        let shown = if self.paired {
            SessionStatus::Reconnecting
        } else {
            self.snapshot.borrow().status
        };
        let reason = self.reason.clone();
        self.enter(
            Phase::Probing {
                shown,
                phone_for_code,
            },
            reason,
        );
        let _ = self.driver.send(DriverCmd::Probe { generation });
    }

    /// Opens a new connection (the driver closes the old one first).
    pub(super) fn open(&mut self, mode: OpenMode) {
        let reason = match &mode {
            OpenMode::Resume => "connecting with stored credentials",
            OpenMode::Pair { .. } => "waiting for the first QR code",
        };
        self.open_because(mode, reason.to_owned());
    }

    /// Opens a new connection, with `reason` as the status reason meanwhile.
    pub(super) fn open_because(&mut self, mode: OpenMode, reason: String) {
        let generation = self.next_generation();
        let start_mode = match &mode {
            OpenMode::Resume => StartMode::Resume,
            OpenMode::Pair { phone_for_code } => StartMode::Pair {
                phone_for_code: phone_for_code.clone(),
            },
        };
        self.enter(Phase::Opening { mode, conn: None }, reason);
        let _ = self.driver.send(DriverCmd::Open {
            generation,
            mode: start_mode,
        });
    }

    /// Gives up on the current connection (the driver closes it).
    pub(super) fn abandon(&mut self) {
        self.next_generation();
        let _ = self.driver.send(DriverCmd::Close { done: None });
    }

    /// Closes the connection and tries again after the reconnect backoff.
    pub(super) fn back_off(&mut self, why: &str) {
        let next = if self.paired {
            Next::Open(OpenMode::Resume)
        } else {
            Next::Open(OpenMode::Pair {
                phone_for_code: None,
            })
        };
        self.back_off_with(why, next);
    }

    pub(super) fn back_off_with(&mut self, why: &str, next: Next) {
        let delay = self.config.reconnect.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        self.back_off_for(delay, why, next);
    }

    pub(super) fn back_off_for(&mut self, delay: Duration, why: &str, next: Next) {
        self.abandon();
        let until = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let reason = format!("{why}; retrying in {} ms", delay.as_millis());
        self.enter(Phase::BackingOff { until, next }, reason);
        self.arm(delay, Timer::Retry);
    }

    /// Stops at rest: no connection, nothing opens by itself.
    pub(super) fn rest(&mut self, rest: Rest, reason: &str) {
        self.abandon();
        self.enter(Phase::Resting(rest), reason);
    }

    pub(super) fn ban_until(&mut self, retry_at: DateTime<Utc>) {
        self.abandon();
        self.enter(Phase::Banned { retry_at }, "WhatsApp sent a temporary ban");
        let left = (retry_at - Utc::now()).to_std().unwrap_or_default();
        self.arm(left, Timer::Retry);
    }

    pub(super) fn block_until(
        &mut self,
        retry_at: DateTime<Utc>,
        phone_for_code: Option<String>,
        why: &str,
    ) {
        self.abandon();
        let phase = Phase::Blocked {
            retry_at,
            phone_for_code,
        };
        self.enter(phase, why);
        let left = (retry_at - Utc::now()).to_std().unwrap_or_default();
        self.arm(left, Timer::BudgetRetry);
    }

    /// Backs the store up and wipes it through the driver; `then` follows when done.
    /// `reason` names the cleanup (in the backup's name and the `session.cleaned`
    /// event); `why` is the status reason meanwhile.
    pub(super) fn wipe(&mut self, reason: &str, why: String, steps: WipeSteps, then: AfterWipe) {
        let generation = self.next_generation();
        self.paired = false;
        self.phones.release(&self.org);
        let WipeSteps {
            farewell,
            afterwards,
        } = steps;
        self.enter(Phase::Wiping(then), why);
        let _ = self.driver.send(DriverCmd::Wipe {
            generation,
            reason: reason.to_owned(),
            farewell,
            afterwards,
        });
    }

    /// A timer for the current generation.
    fn arm(&self, after: Duration, timer: Timer) {
        let generation = self.generation;
        self.myself
            .send_after(after, move || OrgMsg::Timer { generation, timer });
    }

    pub(super) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    // ---- publishing -------------------------------------------------------------------

    /// Moves to `phase`: publishes the snapshot, logs and reports a status change,
    /// and answers starts that waited for the store to be read.
    pub(super) fn enter(&mut self, phase: Phase, reason: impl Into<String>) {
        let before = self.snapshot.borrow().status;
        self.phase = phase;
        self.reason = reason.into();
        self.publish();
        let status = self.status();
        if before != status {
            let reason = self.reason.as_str();
            tracing::info!(org_id = %self.org, from = %before, to = %status, reason, "session status changed");
            self.emitter.emit(
                status,
                EventKind::StatusChanged {
                    from: before,
                    reason: self.reason.clone(),
                    retry_at: self.phase.retry_at(),
                },
            );
        }
        self.lane_follows();
        if !matches!(self.phase, Phase::Probing { .. } | Phase::Restoring { .. }) {
            let snapshot = self.snapshot.borrow().clone();
            for waiter in self.waiting.drain(..) {
                match waiter {
                    Waiter::Start(reply) => {
                        let _ = reply.send(Ok(StartOutcome {
                            snapshot: snapshot.clone(),
                            already_running: false,
                        }));
                    }
                    Waiter::Restore { reply, restored } => {
                        let _ = reply.send(Ok(RestoreOutcome {
                            snapshot: snapshot.clone(),
                            restored: restored.restored,
                            before_restore: restored.before_restore,
                        }));
                    }
                }
            }
        }
    }

    /// Publishes the snapshot derived from the phase.
    pub(super) fn publish(&self) {
        let status = self.status();
        let (qr, pairing_code) = match &self.phase {
            Phase::ShowingQr { qr, pairing_code } => (Some(qr.clone()), pairing_code.clone()),
            _ => (None, None),
        };
        let snapshot = SessionSnapshot {
            organization_id: self.org.clone(),
            status,
            phone_number: self.phone.clone(),
            qr,
            pairing_code,
            retry_at: self.phase.retry_at(),
            next_attempt_at: self.phase.next_attempt_at(),
            reason: Some(self.reason.clone()).filter(|r| !r.is_empty()),
            updated_at: Utc::now(),
            node_id: self.config.node_id.clone(),
        };
        self.snapshot.send_replace(snapshot);
    }
}
