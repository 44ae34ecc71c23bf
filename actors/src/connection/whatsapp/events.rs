//! whatsapp-rust's events as [`ConnectionEvent`]s: CONTRACT §4 and §10 on the library's side.
//!
//! [`map_event`] is pure; the org actor then asks [`classify`](super::super::classify)
//! what each mapped event means. What the library does not report as an event of
//! its own (515 "restart required", 429/503 stream errors, a connect that never got
//! a socket) is covered here from the raw `<stream:error>` stanza and by the
//! connection itself (see `connection.rs`).

use whatsapp_rust::types::events::{Event, EventInterest, EventKind};
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore_binary::NodeRef;
use whatsapp_rust::{Jid, Server};

use crate::connection::{ConnectionEvent, ReceiptKind};

/// The event kinds the connection listens to; the bus does not even build the others.
pub(super) const INTEREST_KINDS: &[EventKind] = &[
    EventKind::Connected,
    EventKind::Disconnected,
    EventKind::PairSuccess,
    EventKind::PairError,
    EventKind::LoggedOut,
    EventKind::PairingQrCode,
    EventKind::PairingCode,
    EventKind::PairingCodeRefresh,
    EventKind::PairingCodeError,
    EventKind::PairingQrCodesExhausted,
    EventKind::QrScannedWithoutMultidevice,
    EventKind::ClientOutdated,
    EventKind::UndecryptableMessage,
    EventKind::StreamReplaced,
    EventKind::TemporaryBan,
    EventKind::ConnectFailure,
    EventKind::StreamError,
    EventKind::RawNode,
    EventKind::ServerAck,
    EventKind::Receipt,
];

pub(super) fn interest() -> EventInterest {
    EventInterest::of(INTEREST_KINDS)
}

/// This device's own account, which some events need to be read: `Connected` names
/// no number, and a receipt from the account itself is not a recipient's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnAccount {
    /// The account's phone-number JID.
    pub pn: Option<Jid>,
    /// The account's LID, under which WhatsApp may address it instead.
    pub lid: Option<Jid>,
}

impl OwnAccount {
    /// Whether `jid` is one of this account's devices (by phone number or LID).
    fn owns(&self, jid: &Jid) -> bool {
        [&self.pn, &self.lid]
            .into_iter()
            .flatten()
            .any(|own| own.user == jid.user && own.server == jid.server)
    }
}

/// What the library said, as the org actor understands it (CONTRACT §4, §10), or
/// `None` for everything the actor does not act on.
///
/// `own` yields this device's own account; it is only called for `Connected` and
/// receipts.
///
/// | whatsapp-rust event | `ConnectionEvent` |
/// |---|---|
/// | `PairingQrCode { code, timeout }` | `QrCode { code, timeout }` |
/// | `PairingCode { code, .. }` | `PairingCode { code }` |
/// | `PairSuccess { id, .. }` | `Paired { phone: id.user }` |
/// | `Connected` | `Connected { phone }` from `own_pn` (digits) |
/// | `Disconnected { reason }` (socket lost without a stream error) | `NetworkFailure` |
/// | `StreamError { code, .. }` | `StreamError { code }` (`515` → `RestartRequired`) |
/// | `RawNode(<stream:error code=515>)` (the library sends no event for it) | `RestartRequired` |
/// | `RawNode(<stream:error code=429/503>)` (likewise) | `ServerBusy { code }` |
/// | `StreamReplaced` (`<conflict type=replaced>`, 409) | `Replaced` |
/// | `LoggedOut { reason, .. }` (401/403/406 failure, 516, 401, other conflict) | `LoggedOut { code }` |
/// | `TemporaryBan { expire, .. }` | `TemporaryBan { expires_in }` |
/// | `ClientOutdated` | `ClientOutdated` |
/// | `ConnectFailure { reason, .. }` (any other `<failure>`) | `StreamError { code: reason }` |
/// | `PairingQrCodesExhausted` | `QrExhausted` |
/// | `UndecryptableMessage` (a real decrypt failure) | `Undecryptable { sender, reason }` |
/// | `UndecryptableMessage { is_unavailable: true }` (view-once etc. withheld by the phone) | none |
/// | `ServerAck { class: "message", id, error }` (the server took a message we sent, or nacked it with `error`) | `ServerAck { message_id: id, error }` |
/// | `ServerAck` of any other class (receipt, notification, call, none) | none |
/// | `Receipt { type: Delivered, message_ids }` from a recipient (a user, not this account) | `Receipt { message_ids, kind: Delivered }` |
/// | `Receipt { type: Read, message_ids }` from a recipient | `Receipt { message_ids, kind: Read }` |
/// | `Receipt` from this account's own devices, from a group or broadcast, or of any other type (`read-self`, `played`, `sender`, `retry`, `server-error`, `inactive`, the `sent` downgrade, …) | none |
/// | `PairingCodeError`, `PairError`, `PairingCodeRefresh`, everything else | none |
pub fn map_event(event: &Event, own: impl FnOnce() -> OwnAccount) -> Option<ConnectionEvent> {
    use ConnectionEvent as C;
    Some(match event {
        Event::PairingQrCode(qr) => C::QrCode {
            code: qr.code.clone(),
            timeout: qr.timeout,
        },
        Event::PairingCode(code) => C::PairingCode {
            code: code.code.clone(),
        },
        Event::PairSuccess(pair) => C::Paired {
            phone: digits(&pair.id)?,
        },
        Event::Connected(_) => C::Connected {
            phone: digits(&own().pn?)?,
        },
        Event::Disconnected(gone) => C::NetworkFailure {
            reason: gone.reason.to_string(),
        },
        Event::StreamError(error) => {
            let code = error.code.trim().parse::<u16>().ok();
            if code == Some(515) {
                C::RestartRequired
            } else {
                C::StreamError {
                    code,
                    text: stream_error_text(
                        &error.code,
                        error.raw.as_ref().and_then(|n| n.children()?.first()),
                    ),
                }
            }
        }
        Event::RawNode(node) => return map_raw_stream_error(node.get()),
        Event::StreamReplaced(_) => C::Replaced,
        Event::LoggedOut(out) => C::LoggedOut {
            // A `<stream:error code="516">` is reported with reason 401; keep its own code.
            code: out
                .raw
                .as_ref()
                .filter(|n| n.tag == "stream:error")
                .and_then(|n| {
                    n.attrs()
                        .optional_string("code")?
                        .trim()
                        .parse::<u16>()
                        .ok()
                })
                .or_else(|| u16::try_from(out.reason.code()).ok())
                .unwrap_or(401),
        },
        Event::TemporaryBan(ban) => C::TemporaryBan {
            expires_in: ban.expire.to_std().ok(),
        },
        Event::ClientOutdated(_) => C::ClientOutdated,
        Event::ConnectFailure(failure) => {
            // `Unknown(0)` is the library's stand-in for a `<failure>` without a reason.
            let code = u16::try_from(failure.reason.code())
                .ok()
                .filter(|c| *c != 0);
            C::StreamError {
                code,
                text: match &failure.message {
                    Some(message) => format!("connect failure {:?}: {message}", failure.reason),
                    None => format!("connect failure {:?}", failure.reason),
                },
            }
        }
        Event::PairingQrCodesExhausted(_) => C::QrExhausted,
        Event::UndecryptableMessage(undecryptable) => {
            if undecryptable.is_unavailable {
                // The server withheld the content (view-once, hosted, bot fan-out):
                // nothing failed to decrypt, so it must not count as a Bad MAC.
                return None;
            }
            C::Undecryptable {
                sender: undecryptable.info.source.sender.to_string(),
                // 0.7.0 logs whether libsignal said Bad MAC, InvalidMessage or
                // NoSession, but the event does not carry it.
                reason: "decryption failed (Bad MAC or another libsignal error)".to_owned(),
            }
        }
        Event::ServerAck(ack) if ack.class.as_deref() == Some("message") => C::ServerAck {
            message_id: ack.id.clone(),
            error: ack.error.clone(),
        },
        Event::Receipt(receipt) => {
            let kind = match receipt.r#type {
                ReceiptType::Delivered => ReceiptKind::Delivered,
                ReceiptType::Read => ReceiptKind::Read,
                _ => return None,
            };
            // A recipient is a person: receipts in groups, broadcasts and status
            // name messages this daemon never sends.
            let from = &receipt.source.chat;
            if !matches!(from.server, Server::Pn | Server::Lid)
                || receipt.message_ids.is_empty()
                || own().owns(&receipt.source.sender)
            {
                return None;
            }
            C::Receipt {
                message_ids: receipt.message_ids.clone(),
                kind,
            }
        }
        _ => return None,
    })
}

/// The `<stream:error>` codes whatsapp-rust handles without an event of its own.
fn map_raw_stream_error(node: &NodeRef<'_>) -> Option<ConnectionEvent> {
    if node.tag.as_ref() != "stream:error" || node.get_optional_child("conflict").is_some() {
        return None;
    }
    let code = node.get_attr("code")?.as_str().trim().parse::<u16>().ok()?;
    match code {
        515 => Some(ConnectionEvent::RestartRequired),
        429 | 503 => Some(ConnectionEvent::ServerBusy { code }),
        // Every other code reaches us as `StreamError`, `LoggedOut` or `StreamReplaced`.
        _ => None,
    }
}

fn stream_error_text(
    code: &str,
    first_child: Option<&whatsapp_rust::wacore_binary::Node>,
) -> String {
    match (code.trim(), first_child) {
        ("", Some(child)) => child.tag.to_string(),
        ("", None) => "stream error".to_owned(),
        (code, Some(child)) => format!("{code} {}", child.tag),
        (code, None) => code.to_owned(),
    }
}

/// The phone number of a JID, digits only, when it is one.
fn digits(jid: &Jid) -> Option<String> {
    let user: String = jid.user.chars().filter(char::is_ascii_digit).collect();
    (!user.is_empty()).then_some(user)
}
