//! Where an org actor stands: its [`Phase`], from which the status every reader
//! sees is derived (CONTRACT §3), never stored beside it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::RpcReplyPort;

use crate::connection::Connection;
use crate::supervisor::{CleanOutcome, RestoreOutcome};
use crate::{SessionError, SessionStatus};

/// The state of one org's session, as its actor knows it.
///
/// Each variant holds exactly what exists in that phase (a live connection only
/// when live, a QR only while pairing, a retry time only while waiting), so no
/// flag can contradict it.
pub(crate) enum Phase {
    /// Nothing is open and nothing opens by itself; why, and what the status says.
    Resting(Rest),
    /// The driver is reading the store to choose between resuming and pairing;
    /// until it answers, readers keep seeing `shown` (what the session was).
    Probing {
        shown: SessionStatus,
        phone_for_code: Option<String>,
    },
    /// A connection is opening: resuming stored credentials (or logging in right
    /// after pairing), or pairing before its first QR code.
    Opening {
        mode: OpenMode,
        conn: Option<Arc<dyn Connection>>,
    },
    /// A QR code (and a pairing code, when one was asked for) waits to be scanned.
    ShowingQr {
        qr: String,
        pairing_code: Option<String>,
    },
    /// Logged in and online (as the state's `phone`).
    Live { conn: Arc<dyn Connection> },
    /// Waiting until `until`, then doing `next`.
    BackingOff { until: DateTime<Utc>, next: Next },
    /// The store is being backed up and wiped; `then` says what follows.
    Wiping(AfterWipe),
    /// A backup is being put in place of the live session; it resumes next, and
    /// `reply` hears how once the store has been read.
    Restoring {
        reply: RpcReplyPort<Result<RestoreOutcome, SessionError>>,
        /// The rest it was in before, to go back to if the restore fails (a
        /// session that was not resting resumes its live one instead).
        was: Option<Rest>,
    },
    /// The connection-attempt budget refused a start; it retries at `retry_at`.
    Blocked {
        retry_at: DateTime<Utc>,
        phone_for_code: Option<String>,
    },
    /// WhatsApp banned the number until `retry_at`; then it reconnects.
    Banned { retry_at: DateTime<Utc> },
}

/// Why a session rests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rest {
    /// QR codes ran out unscanned, a cleanup failed, or the session was never
    /// started by this actor (after a crash of one that was resting).
    Disconnected,
    Conflict,
    ClientOutdated,
    LoggedOut,
    NumberInUse,
    Quarantined,
}

/// How a connection opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OpenMode {
    Resume,
    Pair { phone_for_code: Option<String> },
}

/// What a backoff ends in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the store again (it could not be read, or the actor was restarted).
    Probe,
    /// Open a connection.
    Open(OpenMode),
}

/// What follows a wipe.
pub(crate) enum AfterWipe {
    /// Healing: pair a new device.
    Pair,
    /// Stay in this resting status (the phone removed the device; the number
    /// serves another org).
    Rest(Rest),
    /// Answer the logout or clean requests and stop the actor.
    Remove(Vec<RpcReplyPort<Result<CleanOutcome, SessionError>>>),
}

impl Rest {
    pub(crate) fn status(self) -> SessionStatus {
        match self {
            Self::Disconnected => SessionStatus::Disconnected,
            Self::Conflict => SessionStatus::Conflict,
            Self::ClientOutdated => SessionStatus::ClientOutdated,
            Self::LoggedOut => SessionStatus::LoggedOut,
            Self::NumberInUse => SessionStatus::NumberInUse,
            Self::Quarantined => SessionStatus::Quarantined,
        }
    }

    /// The resting phase a published status stands for, if it is one.
    pub(crate) fn of(status: SessionStatus) -> Option<Self> {
        Some(match status {
            SessionStatus::Disconnected => Self::Disconnected,
            SessionStatus::Conflict => Self::Conflict,
            SessionStatus::ClientOutdated => Self::ClientOutdated,
            SessionStatus::LoggedOut => Self::LoggedOut,
            SessionStatus::NumberInUse => Self::NumberInUse,
            SessionStatus::Quarantined => Self::Quarantined,
            _ => return None,
        })
    }
}

impl AfterWipe {
    /// The status while the wipe is under way.
    pub(crate) fn status(&self) -> SessionStatus {
        match self {
            Self::Pair => SessionStatus::Connecting,
            Self::Rest(rest) => rest.status(),
            // Being removed on request: not connected and not retrying.
            Self::Remove(_) => SessionStatus::Disconnected,
        }
    }
}

impl Phase {
    /// The status readers see (CONTRACT §3). `paired`: the store holds credentials,
    /// so a session that is not live is reconnecting, never connecting.
    pub(crate) fn status(&self, paired: bool) -> SessionStatus {
        use SessionStatus as S;
        match self {
            Self::Resting(rest) => rest.status(),
            Self::Probing { shown, .. } => *shown,
            Self::Opening {
                mode: OpenMode::Resume,
                ..
            } => S::Reconnecting,
            Self::Opening {
                mode: OpenMode::Pair { .. },
                ..
            } => S::Connecting,
            Self::ShowingQr { .. } => S::QrReady,
            Self::Live { .. } => S::Connected,
            Self::BackingOff { .. } if paired => S::Reconnecting,
            Self::BackingOff { .. } => S::Connecting,
            Self::Wiping(then) => then.status(),
            // Stored credentials come back: never `connecting` or `disconnected`
            // (the deployed client would clean the session on those).
            Self::Restoring { .. } => S::Reconnecting,
            Self::Blocked { .. } => S::Blocked,
            Self::Banned { .. } => S::Banned,
        }
    }

    /// Until when `banned` or `blocked` lasts.
    pub(crate) fn retry_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Blocked { retry_at, .. } | Self::Banned { retry_at } => Some(*retry_at),
            _ => None,
        }
    }

    /// When the next connection attempt of a backing-off session is due.
    pub(crate) fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::BackingOff { until, .. } => Some(*until),
            Self::Blocked { retry_at, .. } | Self::Banned { retry_at } => Some(*retry_at),
            _ => None,
        }
    }

    /// Whether a connection is open, opening, or due to open by itself soon: a
    /// start request then leaves the session alone.
    pub(crate) fn is_running(&self) -> bool {
        matches!(
            self,
            Self::Probing { .. }
                | Self::Opening { .. }
                | Self::ShowingQr { .. }
                | Self::Live { .. }
                | Self::BackingOff { .. }
                | Self::Wiping(_)
                | Self::Restoring { .. }
        )
    }

    /// A short name for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Resting(_) => "resting",
            Self::Probing { .. } => "probing",
            Self::Opening { .. } => "opening",
            Self::ShowingQr { .. } => "showing_qr",
            Self::Live { .. } => "live",
            Self::BackingOff { .. } => "backing_off",
            Self::Wiping(_) => "wiping",
            Self::Restoring { .. } => "restoring",
            Self::Blocked { .. } => "blocked",
            Self::Banned { .. } => "banned",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionStatus as S;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    /// Every phase's status, unpaired and paired: one row per line.
    #[test]
    fn status_is_a_function_of_the_phase() {
        let pair = OpenMode::Pair {
            phone_for_code: None,
        };
        #[rustfmt::skip]
        let rows: Vec<(Phase, S, S)> = vec![
            // phase                                                    unpaired         paired
            (Phase::Resting(Rest::Disconnected),                        S::Disconnected, S::Disconnected),
            (Phase::Resting(Rest::Conflict),                            S::Conflict,     S::Conflict),
            (Phase::Resting(Rest::ClientOutdated),                      S::ClientOutdated, S::ClientOutdated),
            (Phase::Resting(Rest::LoggedOut),                           S::LoggedOut,    S::LoggedOut),
            (Phase::Resting(Rest::NumberInUse),                         S::NumberInUse,  S::NumberInUse),
            (Phase::Resting(Rest::Quarantined),                         S::Quarantined,  S::Quarantined),
            (Phase::Probing { shown: S::NotStarted, phone_for_code: None }, S::NotStarted, S::NotStarted),
            (Phase::Probing { shown: S::Reconnecting, phone_for_code: None }, S::Reconnecting, S::Reconnecting),
            (Phase::Opening { mode: OpenMode::Resume, conn: None },     S::Reconnecting, S::Reconnecting),
            (Phase::Opening { mode: pair.clone(), conn: None },         S::Connecting,   S::Connecting),
            (Phase::ShowingQr { qr: "q".into(), pairing_code: None },   S::QrReady,      S::QrReady),
            (Phase::BackingOff { until: t(), next: Next::Probe },       S::Connecting,   S::Reconnecting),
            (Phase::BackingOff { until: t(), next: Next::Open(pair) },  S::Connecting,   S::Reconnecting),
            (Phase::Wiping(AfterWipe::Pair),                            S::Connecting,   S::Connecting),
            (Phase::Wiping(AfterWipe::Rest(Rest::LoggedOut)),           S::LoggedOut,    S::LoggedOut),
            (Phase::Wiping(AfterWipe::Remove(Vec::new())),              S::Disconnected, S::Disconnected),
            (Phase::Blocked { retry_at: t(), phone_for_code: None },    S::Blocked,      S::Blocked),
            (Phase::Banned { retry_at: t() },                           S::Banned,       S::Banned),
            (Phase::Restoring { reply: tokio::sync::oneshot::channel().0.into(), was: None }, S::Reconnecting, S::Reconnecting),
        ];
        for (phase, unpaired, paired) in rows {
            assert_eq!(phase.status(false), unpaired, "{} unpaired", phase.name());
            assert_eq!(phase.status(true), paired, "{} paired", phase.name());
        }
    }

    #[test]
    fn a_resting_status_maps_back_to_its_phase() {
        for status in S::ALL {
            if let Some(rest) = Rest::of(status) {
                assert_eq!(rest.status(), status);
            }
        }
        assert_eq!(Rest::of(S::Connected), None);
    }

    #[test]
    fn only_waiting_phases_have_times() {
        let until = t();
        let backoff = Phase::BackingOff {
            until,
            next: Next::Probe,
        };
        assert_eq!(backoff.next_attempt_at(), Some(until));
        assert_eq!(backoff.retry_at(), None);
        let banned = Phase::Banned { retry_at: until };
        assert_eq!(banned.retry_at(), Some(until));
        assert_eq!(Phase::Resting(Rest::Conflict).next_attempt_at(), None);
    }
}
