//! The session statuses of CONTRACT §3 and the snapshot every reader sees.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::OrgId;

/// Where one organization's session stands (CONTRACT §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    NotStarted,
    Connecting,
    QrReady,
    Connected,
    Reconnecting,
    Disconnected,
    LoggedOut,
    Conflict,
    NumberInUse,
    Banned,
    ClientOutdated,
    Quarantined,
    Blocked,
}

impl SessionStatus {
    /// Every status, in CONTRACT §3 order (for metrics and status counts).
    pub const ALL: [SessionStatus; 13] = [
        Self::NotStarted,
        Self::Connecting,
        Self::QrReady,
        Self::Connected,
        Self::Reconnecting,
        Self::Disconnected,
        Self::LoggedOut,
        Self::Conflict,
        Self::NumberInUse,
        Self::Banned,
        Self::ClientOutdated,
        Self::Quarantined,
        Self::Blocked,
    ];

    /// The wire name, as in CONTRACT §3.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotStarted => "not_started",
            Self::Connecting => "connecting",
            Self::QrReady => "qr_ready",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Disconnected => "disconnected",
            Self::LoggedOut => "logged_out",
            Self::Conflict => "conflict",
            Self::NumberInUse => "number_in_use",
            Self::Banned => "banned",
            Self::ClientOutdated => "client_outdated",
            Self::Quarantined => "quarantined",
            Self::Blocked => "blocked",
        }
    }

    /// The status named `name` (its wire name), if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether a connection is open or being opened in this status.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Connecting | Self::QrReady | Self::Connected | Self::Reconnecting
        )
    }
}

impl std::fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known of one organization's session at one moment.
///
/// Each org actor publishes a new snapshot on every change, so readers (status,
/// sessions, QR) never wait on an actor's mailbox.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionSnapshot {
    pub organization_id: OrgId,
    pub status: SessionStatus,
    /// The linked number, digits only, once paired.
    pub phone_number: Option<String>,
    /// The raw QR payload to show while `qr_ready`.
    pub qr: Option<String>,
    /// The pairing code, when pairing by phone number was asked for.
    pub pairing_code: Option<String>,
    /// Until when `banned` or `blocked` lasts.
    pub retry_at: Option<DateTime<Utc>>,
    /// When the next connection attempt is due, while one is awaited (a backoff,
    /// a ban, a spent budget).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Why the session is in this status, in words an operator can act on.
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The node that drives the session, when several daemons share one database
    /// (CONTRACT §13); `None` for a daemon on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
}

impl SessionSnapshot {
    /// The snapshot of an organization that has no session.
    pub fn not_started(org: OrgId) -> Self {
        Self {
            organization_id: org,
            status: SessionStatus::NotStarted,
            phone_number: None,
            qr: None,
            pairing_code: None,
            retry_at: None,
            next_attempt_at: None,
            reason: None,
            updated_at: Utc::now(),
            node_id: None,
        }
    }

    pub fn connected(&self) -> bool {
        self.status == SessionStatus::Connected
    }

    pub fn has_qr(&self) -> bool {
        self.qr.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for status in SessionStatus::ALL {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::String(status.as_str().to_owned())
            );
            assert_eq!(SessionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(SessionStatus::parse("snoozing"), None);
    }
}
