//! What can go wrong when the daemon asks the actor tree for something.
//!
//! Each variant maps to one HTTP answer in the daemon; errors about a session carry
//! its status so the caller can show it (CONTRACT §2).

use crate::SessionStatus;
use crate::media::MediaError;
use crate::outbox::OutboxError;

/// A failed session operation (start, logout, clean).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The organization has no session.
    #[error("no session for this organization")]
    NoSession,
    /// The sessions directory could not be changed.
    #[error("the session store failed: {0}")]
    Storage(String),
    /// The org's actor could not be started.
    #[error("the session could not be started: {0}")]
    ActorFailed(String),
    /// The request was not answered within its time.
    #[error("the session did not answer in time")]
    TimedOut,
    /// The supervisor is stopping.
    #[error("the supervisor is unavailable")]
    Unavailable,
    /// The session is in the middle of something that this request would undo.
    #[error("{0}")]
    Busy(String),
    /// Not a backup's name at all (restore).
    #[error("{0:?} is not a backup name (expected <UTC timestamp>_<reason>, as listed)")]
    InvalidBackupName(String),
    /// A well-formed name that is not among the org's backups (restore).
    #[error("this organization has no backup named {0:?}")]
    UnknownBackup(String),
}

/// A failed send or enqueue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The organization has no session (and no stored credentials).
    #[error("no session for this organization")]
    NoSession,
    /// The session is not connected (and did not come back within the wait).
    #[error("the session is not connected (status {status})")]
    NotConnected { status: SessionStatus },
    /// WhatsApp (or the connection) refused the message.
    #[error("the message could not be sent: {reason}")]
    Failed { reason: String },
    /// The outbox refused or failed (an idempotency key reused, the store).
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// A file that cannot be sent as it is (type, name).
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// A failed number check (CONTRACT §14).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberCheckError {
    /// Only a connected session can ask WhatsApp.
    #[error("the session is not connected (status {status})")]
    NotConnected { status: SessionStatus },
    /// WhatsApp did not answer (network, timeout) or refused the question.
    #[error("the number could not be checked: {0}")]
    Failed(String),
}
