//! The faults of CONTRACT §9 the fake phone can be told to report.

/// A fault of CONTRACT §9.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An undecryptable message from `sender` (digits), or from a new random
    /// sender each time when none is given.
    BadMac {
        sender: Option<String>,
    },
    StreamError {
        code: Option<u16>,
    },
    RestartRequired,
    ServerBusy {
        code: Option<u16>,
    },
    NetworkDown,
    NetworkUp,
    Replaced,
    LoggedOut {
        code: Option<u16>,
    },
    TemporaryBan {
        seconds: Option<u16>,
    },
    ClientOutdated,
    QrExhausted,
    SendFails,
    /// The connection stays up but swallows every send without a server ack until
    /// it is reconnected (a zombie).
    NoAck,
    /// The next send never returns (a hung socket write): not in CONTRACT §9's list,
    /// it shows that a hung connection holds up neither the caller nor a shutdown.
    SendHangs,
}

impl Fault {
    /// Every fault name CONTRACT §9 lists.
    pub const NAMES: [&'static str; 14] = [
        "bad_mac",
        "stream_error",
        "restart_required",
        "server_busy",
        "network_down",
        "network_up",
        "replaced",
        "logged_out",
        "temporary_ban",
        "client_outdated",
        "qr_exhausted",
        "send_fails",
        "no_ack",
        "send_hangs",
    ];

    /// Parses a CONTRACT §9 fault name; `code` is the optional numeric code (for
    /// `temporary_ban`, the ban's length in seconds), `sender` the optional sender
    /// of a `bad_mac`.
    pub fn parse(name: &str, code: Option<u16>, sender: Option<String>) -> Option<Self> {
        Some(match name {
            "bad_mac" => Self::BadMac { sender },
            "stream_error" => Self::StreamError { code },
            "restart_required" => Self::RestartRequired,
            "server_busy" => Self::ServerBusy { code },
            "network_down" => Self::NetworkDown,
            "network_up" => Self::NetworkUp,
            "replaced" => Self::Replaced,
            "logged_out" => Self::LoggedOut { code },
            "temporary_ban" => Self::TemporaryBan { seconds: code },
            "client_outdated" => Self::ClientOutdated,
            "qr_exhausted" => Self::QrExhausted,
            "send_fails" => Self::SendFails,
            "no_ack" => Self::NoAck,
            "send_hangs" => Self::SendHangs,
            _ => return None,
        })
    }
}
