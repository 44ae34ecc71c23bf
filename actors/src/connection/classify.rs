//! CONTRACT §4 as one pure function: what an event means for the session.

use super::ConnectionEvent;

/// The class of a connection event, which decides the org actor's action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    /// QR, pairing code, paired, connected: progress, nothing to heal.
    Progress,
    /// Counts in the Bad MAC window.
    DecryptError,
    /// Counts in the stream window; below the limit, reconnect with backoff.
    StreamError,
    /// Reconnect at once from the same credentials; not counted.
    Restart,
    /// Back off; not counted.
    ServerBusy,
    /// Network trouble: back off with jitter; never counted.
    Transient,
    /// Another client took over: status `conflict`, no reconnect, no wipe.
    Conflict,
    /// Back up, wipe, status `logged_out`.
    LoggedOut,
    /// Status `banned` until the expiry.
    Banned,
    /// Status `client_outdated`.
    Outdated,
    /// Status `disconnected`.
    QrExhausted,
    /// A server ack or a receipt: the outbox's business, nothing for the session.
    Delivery,
}

/// The class of a numeric failure code from WhatsApp (stream error or connect failure).
pub fn classify_code(code: u16) -> Class {
    match code {
        515 => Class::Restart,
        429 | 503 => Class::ServerBusy,
        440 | 409 => Class::Conflict,
        401 | 403 | 406 | 516 => Class::LoggedOut,
        402 => Class::Banned,
        405 => Class::Outdated,
        _ => Class::StreamError,
    }
}

/// The class of an event (CONTRACT §4).
pub fn classify(event: &ConnectionEvent) -> Class {
    use ConnectionEvent as E;
    match event {
        E::QrCode { .. } | E::PairingCode { .. } | E::Paired { .. } | E::Connected { .. } => {
            Class::Progress
        }
        E::Undecryptable { .. } => Class::DecryptError,
        E::StreamError {
            code: Some(code), ..
        } => classify_code(*code),
        E::StreamError { code: None, .. } => Class::StreamError,
        E::RestartRequired => Class::Restart,
        E::ServerBusy { .. } => Class::ServerBusy,
        E::NetworkFailure { .. } => Class::Transient,
        E::Replaced => Class::Conflict,
        E::LoggedOut { .. } => Class::LoggedOut,
        E::TemporaryBan { .. } => Class::Banned,
        E::ClientOutdated => Class::Outdated,
        E::QrExhausted => Class::QrExhausted,
        E::ServerAck { .. } | E::Receipt { .. } => Class::Delivery,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use ConnectionEvent as E;

    fn stream(code: u16) -> E {
        E::StreamError {
            code: Some(code),
            text: String::new(),
        }
    }

    /// One row per line of CONTRACT §4 (and every code it names).
    #[test]
    fn contract_section_4_table() {
        let table: Vec<(&str, E, Class)> = vec![
            (
                "undecryptable message",
                E::Undecryptable {
                    sender: "573001234567".into(),
                    reason: "Bad MAC".into(),
                },
                Class::DecryptError,
            ),
            (
                "stream error without code",
                E::StreamError {
                    code: None,
                    text: "xml-not-well-formed".into(),
                },
                Class::StreamError,
            ),
            ("stream error other code", stream(500), Class::StreamError),
            ("stream error 515", stream(515), Class::Restart),
            ("restart required", E::RestartRequired, Class::Restart),
            ("429", stream(429), Class::ServerBusy),
            ("503", stream(503), Class::ServerBusy),
            (
                "server busy",
                E::ServerBusy { code: 503 },
                Class::ServerBusy,
            ),
            (
                "network failure",
                E::NetworkFailure {
                    reason: "connection refused".into(),
                },
                Class::Transient,
            ),
            ("replaced", E::Replaced, Class::Conflict),
            ("440", stream(440), Class::Conflict),
            ("409", stream(409), Class::Conflict),
            ("logged out", E::LoggedOut { code: 401 }, Class::LoggedOut),
            ("401", stream(401), Class::LoggedOut),
            ("403", stream(403), Class::LoggedOut),
            ("406", stream(406), Class::LoggedOut),
            ("516", stream(516), Class::LoggedOut),
            ("402", stream(402), Class::Banned),
            (
                "temporary ban",
                E::TemporaryBan {
                    expires_in: Some(Duration::from_secs(60)),
                },
                Class::Banned,
            ),
            ("405", stream(405), Class::Outdated),
            ("client outdated", E::ClientOutdated, Class::Outdated),
            ("qr exhausted", E::QrExhausted, Class::QrExhausted),
            (
                "qr",
                E::QrCode {
                    code: "x".into(),
                    timeout: Duration::from_secs(20),
                },
                Class::Progress,
            ),
            (
                "pairing code",
                E::PairingCode {
                    code: "ABCD".into(),
                },
                Class::Progress,
            ),
            ("paired", E::Paired { phone: "57".into() }, Class::Progress),
            (
                "server ack",
                E::ServerAck {
                    message_id: "3EB0".into(),
                    error: None,
                },
                Class::Delivery,
            ),
            (
                "server nack",
                E::ServerAck {
                    message_id: "3EB0".into(),
                    error: Some("479".into()),
                },
                Class::Delivery,
            ),
            (
                "receipt",
                E::Receipt {
                    message_ids: vec!["3EB0".into()],
                    kind: crate::connection::ReceiptKind::Read,
                },
                Class::Delivery,
            ),
            (
                "connected",
                E::Connected { phone: "57".into() },
                Class::Progress,
            ),
        ];
        for (name, event, want) in table {
            assert_eq!(classify(&event), want, "{name}");
        }
    }
}
