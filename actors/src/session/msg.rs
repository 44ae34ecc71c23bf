//! The messages of an org actor, in three groups: requests from the supervisor,
//! reports about its connection, and its own timers. Reports and timers carry the
//! generation of the connection they are about, checked in one place.

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::SessionError;
use crate::connection::{Connection, ConnectionError, ConnectionEvent};
use crate::storage::StorageError;
use crate::storage::backups::{RestoreError, Restored};
use crate::supervisor::{CleanOutcome, RestoreOutcome, StartOutcome};

pub(crate) enum OrgMsg {
    Request(Request),
    /// From the driver (and the event pump it starts) about connection `generation`.
    Report {
        generation: u64,
        report: Report,
    },
    /// A timer the actor armed while at `generation`.
    Timer {
        generation: u64,
        timer: Timer,
    },
    /// From the org's outbox lane.
    Lane(LaneReport),
    #[cfg(test)]
    CrashForTest,
}

pub(crate) enum Request {
    /// Start or resume the session unless it is running.
    Start {
        phone_for_code: Option<String>,
        reply: RpcReplyPort<Result<StartOutcome, SessionError>>,
    },
    /// Back the session up, remove it, and stop this actor.
    Remove {
        how: Removal,
        reply: RpcReplyPort<Result<CleanOutcome, SessionError>>,
    },
    /// Make a backup the live session (keeping the live one as a backup), then
    /// resume it.
    Restore {
        backup: String,
        reply: RpcReplyPort<Result<RestoreOutcome, SessionError>>,
    },
}

/// How a session is removed on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// Tell WhatsApp to unlink the device first (`/api/logout`).
    Logout,
    /// Just stop and remove it (`/api/force-clean-session`).
    ForceClean,
}

impl Removal {
    /// The reason recorded in the backup's name and the `session.cleaned` event.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::ForceClean => "force_clean",
        }
    }
}

pub(crate) enum Report {
    /// The store was read: whether it holds credentials.
    Probed(Result<bool, ConnectionError>),
    Opened(Arc<dyn Connection>),
    OpenFailed(ConnectionError),
    Event(ConnectionEvent),
    /// The connection's event stream ended.
    Closed,
    /// A backup and wipe finished: the backup's name, if there was anything to keep.
    Wiped {
        reason: String,
        result: Result<Option<String>, StorageError>,
    },
    /// A restore finished (or was refused, changing nothing).
    Restored(Result<Restored, RestoreError>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// A backoff (or a ban) is over.
    Retry,
    /// A blocked start may draw from the budget again.
    BudgetRetry,
}

pub(crate) enum LaneReport {
    /// The connection of `generation` took a message but WhatsApp never
    /// acknowledged it in time: it is taken for dead although it looks up.
    NoAck { generation: u64, waited_secs: u64 },
}
