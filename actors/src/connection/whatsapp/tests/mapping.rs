//! CONTRACT §4 and §10 over real whatsapp-rust event values, built with the crate's
//! own builders.
//!
//! Long on purpose: one table of cases per direction (mapped, not mapped), a row
//! per contract row, so that the contract reads top to bottom in one place.

use std::sync::Arc;
use std::time::Duration;

use whatsapp_rust::transport::DisconnectReason;
use whatsapp_rust::types::events::{
    ClientOutdated, ConnectFailure, ConnectFailureReason, Connected, DecryptFailMode, Disconnected,
    Event, LoggedOut, OfflineSyncCompleted, PairError, PairSuccess, PairingCode, PairingCodeError,
    PairingQrCode, PairingQrCodesExhausted, Receipt, ServerAck, StreamError, StreamReplaced,
    TempBanReason, TemporaryBan, UnavailableType, UndecryptableMessage,
};
use whatsapp_rust::types::message::{MessageInfo, MessageSource};
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore_binary::marshal::marshal;
use whatsapp_rust::{Jid, NodeBuilder, OwnedNodeRef};

use super::super::{OwnAccount, map_event};
use crate::connection::{Class, ConnectionEvent as C, ReceiptKind, classify};

const ME: &str = "573001234567";

const ME_LID: &str = "100000000000001";

fn me() -> OwnAccount {
    OwnAccount {
        pn: Some(Jid::pn(ME)),
        lid: Some(Jid::lid(ME_LID)),
    }
}

fn map(event: &Event) -> Option<C> {
    map_event(event, me)
}

/// A stanza as whatsapp-rust's read loop hands it to `Event::RawNode`.
pub(super) fn raw(node: whatsapp_rust::wacore_binary::Node) -> Event {
    let bytes = marshal(&node).expect("marshal");
    // `marshal` writes the frame's format byte first; the decoder expects it gone.
    let owned = OwnedNodeRef::new(bytes[1..].to_vec()).expect("decode");
    Event::RawNode(Arc::new(owned))
}

pub(super) fn stream_error(code: &str) -> whatsapp_rust::wacore_binary::Node {
    NodeBuilder::new("stream:error").attr("code", code).build()
}

pub(super) fn undecryptable(is_unavailable: bool) -> Event {
    let info = MessageInfo {
        source: MessageSource {
            sender: Jid::pn("573009998877"),
            ..MessageSource::default()
        },
        ..MessageInfo::default()
    };
    Event::UndecryptableMessage(
        UndecryptableMessage::builder()
            .info(Arc::new(info))
            .is_unavailable(is_unavailable)
            .unavailable_type(if is_unavailable {
                UnavailableType::ViewOnce
            } else {
                UnavailableType::Unknown
            })
            .decrypt_fail_mode(DecryptFailMode::Show)
            .build(),
    )
}

fn connect_failure(reason: ConnectFailureReason) -> Event {
    Event::ConnectFailure(ConnectFailure::builder().reason(reason).build())
}

fn logged_out(
    reason: ConnectFailureReason,
    raw: Option<whatsapp_rust::wacore_binary::Node>,
) -> Event {
    Event::LoggedOut(
        LoggedOut::builder()
            .on_connect(raw.is_none())
            .reason(reason)
            .maybe_raw(raw)
            .build(),
    )
}

const CUSTOMER: &str = "573009998877";

fn server_ack(class: Option<&str>, id: &str, error: Option<&str>) -> Event {
    Event::ServerAck(
        ServerAck::builder()
            .id(id.to_owned())
            .maybe_class(class.map(str::to_owned))
            .from(Jid::pn(CUSTOMER))
            .maybe_error(error.map(str::to_owned))
            .build(),
    )
}

/// A receipt as the library dispatches it for `<receipt from=… [type=…]>` in a chat
/// with one person: `chat` and `sender` are both the stanza's `from`.
fn receipt(from: Jid, kind: ReceiptType, ids: &[&str]) -> Event {
    Event::Receipt(
        Receipt::builder()
            .source(MessageSource {
                chat: from.clone(),
                sender: from,
                ..MessageSource::default()
            })
            .message_ids(ids.iter().map(|id| id.to_string()).collect())
            .timestamp(whatsapp_rust::chrono::Utc::now())
            .r#type(kind)
            .offline(false)
            .build(),
    )
}

/// One case per CONTRACT §4 and §10 row (and per code it names), from the library's own
/// event values to the class the org actor acts on.
#[test]
fn contract_section_4_over_whatsapp_rust_events() {
    let cases: Vec<(&str, Event, C, Class)> = vec![
        (
            "undecryptable message (Bad MAC or any decrypt failure)",
            undecryptable(false),
            C::Undecryptable {
                sender: "573009998877@s.whatsapp.net".into(),
                reason: "decryption failed (Bad MAC or another libsignal error)".into(),
            },
            Class::DecryptError,
        ),
        (
            "stream error sent by the server, with a code",
            Event::StreamError(StreamError::builder().code("500".into()).build()),
            C::StreamError {
                code: Some(500),
                text: "500".into(),
            },
            Class::StreamError,
        ),
        (
            "stream error <ack> (no code)",
            Event::StreamError(
                StreamError::builder()
                    .code(String::new())
                    .raw(
                        NodeBuilder::new("stream:error")
                            .children([NodeBuilder::new("ack").attr("id", "1").build()])
                            .build(),
                    )
                    .build(),
            ),
            C::StreamError {
                code: None,
                text: "ack".into(),
            },
            Class::StreamError,
        ),
        (
            "stream error xml-not-well-formed",
            Event::StreamError(
                StreamError::builder()
                    .code(String::new())
                    .raw(
                        NodeBuilder::new("stream:error")
                            .children([NodeBuilder::new("xml-not-well-formed").build()])
                            .build(),
                    )
                    .build(),
            ),
            C::StreamError {
                code: None,
                text: "xml-not-well-formed".into(),
            },
            Class::StreamError,
        ),
        (
            "connect failure other than those below (400)",
            connect_failure(ConnectFailureReason::Generic),
            C::StreamError {
                code: Some(400),
                text: "connect failure Generic".into(),
            },
            Class::StreamError,
        ),
        (
            "connect failure 500",
            connect_failure(ConnectFailureReason::InternalServerError),
            C::StreamError {
                code: Some(500),
                text: "connect failure InternalServerError".into(),
            },
            Class::StreamError,
        ),
        (
            "stream error 515 (raw stanza: the library sends no event)",
            raw(stream_error("515")),
            C::RestartRequired,
            Class::Restart,
        ),
        (
            "stream error event 515",
            Event::StreamError(StreamError::builder().code("515".into()).build()),
            C::RestartRequired,
            Class::Restart,
        ),
        (
            "stream error 429 (raw stanza)",
            raw(stream_error("429")),
            C::ServerBusy { code: 429 },
            Class::ServerBusy,
        ),
        (
            "stream error 503 (raw stanza)",
            raw(stream_error("503")),
            C::ServerBusy { code: 503 },
            Class::ServerBusy,
        ),
        (
            "connect failure 503",
            connect_failure(ConnectFailureReason::ServiceUnavailable),
            C::StreamError {
                code: Some(503),
                text: "connect failure ServiceUnavailable".into(),
            },
            Class::ServerBusy,
        ),
        (
            "network failure: socket closed or read error without a stream error",
            Event::Disconnected(
                Disconnected::builder()
                    .reason(DisconnectReason::ReadError(
                        "connection reset by peer".into(),
                    ))
                    .build(),
            ),
            C::NetworkFailure {
                reason: "read error: connection reset by peer".into(),
            },
            Class::Transient,
        ),
        (
            "network failure: stream ended",
            Event::Disconnected(
                Disconnected::builder()
                    .reason(DisconnectReason::StreamEnded)
                    .build(),
            ),
            C::NetworkFailure {
                reason: "stream ended (EOF)".into(),
            },
            Class::Transient,
        ),
        (
            "conflict replaced (440 / 409)",
            Event::StreamReplaced(StreamReplaced::builder().build()),
            C::Replaced,
            Class::Conflict,
        ),
        (
            "logged out: 401 connect failure",
            logged_out(ConnectFailureReason::LoggedOut, None),
            C::LoggedOut { code: 401 },
            Class::LoggedOut,
        ),
        (
            "logged out: 403 account locked",
            logged_out(ConnectFailureReason::AccountLocked, None),
            C::LoggedOut { code: 403 },
            Class::LoggedOut,
        ),
        (
            "logged out: 406",
            logged_out(ConnectFailureReason::UnknownLogout, None),
            C::LoggedOut { code: 406 },
            Class::LoggedOut,
        ),
        (
            "logged out: stream error 516 (device removed)",
            logged_out(ConnectFailureReason::LoggedOut, Some(stream_error("516"))),
            C::LoggedOut { code: 516 },
            Class::LoggedOut,
        ),
        (
            "logged out: other conflict (device_removed)",
            logged_out(
                ConnectFailureReason::LoggedOut,
                Some(
                    NodeBuilder::new("stream:error")
                        .children([NodeBuilder::new("conflict")
                            .attr("type", "device_removed")
                            .build()])
                        .build(),
                ),
            ),
            C::LoggedOut { code: 401 },
            Class::LoggedOut,
        ),
        (
            "temporary ban (402) with its expiry",
            Event::TemporaryBan(
                TemporaryBan::builder()
                    .code(TempBanReason::SentToTooManyPeople)
                    .expire(whatsapp_rust::chrono::Duration::seconds(3600))
                    .build(),
            ),
            C::TemporaryBan {
                expires_in: Some(Duration::from_secs(3600)),
            },
            Class::Banned,
        ),
        (
            "temporary ban (402) without a usable expiry",
            connect_failure(ConnectFailureReason::TempBanned),
            C::StreamError {
                code: Some(402),
                text: "connect failure TempBanned".into(),
            },
            Class::Banned,
        ),
        (
            "client outdated (405)",
            Event::ClientOutdated(ClientOutdated::builder().build()),
            C::ClientOutdated,
            Class::Outdated,
        ),
        (
            "QR codes exhausted",
            Event::PairingQrCodesExhausted(
                PairingQrCodesExhausted::builder()
                    .disconnected(true)
                    .build(),
            ),
            C::QrExhausted,
            Class::QrExhausted,
        ),
        (
            "pairing QR code with its timeout",
            Event::PairingQrCode(
                PairingQrCode::builder()
                    .code("2@abc,def,ghi,jkl".into())
                    .timeout(Duration::from_secs(60))
                    .build(),
            ),
            C::QrCode {
                code: "2@abc,def,ghi,jkl".into(),
                timeout: Duration::from_secs(60),
            },
            Class::Progress,
        ),
        (
            "pairing code",
            Event::PairingCode(
                PairingCode::builder()
                    .code("ABCD1234".into())
                    .timeout(Duration::from_secs(180))
                    .build(),
            ),
            C::PairingCode {
                code: "ABCD1234".into(),
            },
            Class::Progress,
        ),
        (
            "pair success",
            Event::PairSuccess(
                PairSuccess::builder()
                    .id(Jid::pn_device(ME, 0))
                    .lid(Jid::lid("100000000000001"))
                    .business_name(String::new())
                    .platform("android".into())
                    .build(),
            ),
            C::Paired { phone: ME.into() },
            Class::Progress,
        ),
        (
            "connected, as the client's own number",
            Event::Connected(Connected::builder().build()),
            C::Connected { phone: ME.into() },
            Class::Progress,
        ),
        // CONTRACT §10: only the server's ack makes a message `sent`.
        (
            "server ack of a message we sent",
            server_ack(Some("message"), "3EB0AA01", None),
            C::ServerAck {
                message_id: "3EB0AA01".into(),
                error: None,
            },
            Class::Delivery,
        ),
        (
            "server nack of a message we sent, with its code",
            server_ack(Some("message"), "3EB0AA02", Some("479")),
            C::ServerAck {
                message_id: "3EB0AA02".into(),
                error: Some("479".into()),
            },
            Class::Delivery,
        ),
        (
            "delivery receipt from the recipient",
            receipt(Jid::pn(CUSTOMER), ReceiptType::Delivered, &["3EB0AA01"]),
            C::Receipt {
                message_ids: vec!["3EB0AA01".into()],
                kind: ReceiptKind::Delivered,
            },
            Class::Delivery,
        ),
        (
            "delivery receipt from one of the recipient's devices, offline, for several",
            receipt(
                Jid::pn_device(CUSTOMER, 3),
                ReceiptType::Delivered,
                &["3EB0AA01", "3EB0AA02"],
            ),
            C::Receipt {
                message_ids: vec!["3EB0AA01".into(), "3EB0AA02".into()],
                kind: ReceiptKind::Delivered,
            },
            Class::Delivery,
        ),
        (
            "read receipt from the recipient",
            receipt(Jid::pn(CUSTOMER), ReceiptType::Read, &["3EB0AA01"]),
            C::Receipt {
                message_ids: vec!["3EB0AA01".into()],
                kind: ReceiptKind::Read,
            },
            Class::Delivery,
        ),
        (
            "read receipt from a recipient addressed by LID",
            receipt(
                Jid::lid("200000000000002"),
                ReceiptType::Read,
                &["3EB0AA01"],
            ),
            C::Receipt {
                message_ids: vec!["3EB0AA01".into()],
                kind: ReceiptKind::Read,
            },
            Class::Delivery,
        ),
    ];
    for (name, event, want, class) in cases {
        let got = map(&event);
        assert_eq!(got.as_ref(), Some(&want), "{name}");
        assert_eq!(classify(&want), class, "{name}");
    }
}

/// What the org actor must not see: withheld content is not a decrypt failure, the
/// codes the library reports through its own events are not doubled from the raw
/// stanza, and events nobody acts on stay out of the stream.
#[test]
fn events_without_a_contract_row_map_to_nothing() {
    let pair_error = Event::PairError(
        PairError::builder()
            .id(Jid::pn(ME))
            .lid(Jid::lid("1"))
            .business_name(String::new())
            .platform(String::new())
            .error("bad signature".into())
            .build(),
    );
    let code_error = Event::PairingCodeError(
        PairingCodeError::builder()
            .error("rate limited".into())
            .build(),
    );
    let synced = Event::OfflineSyncCompleted(OfflineSyncCompleted::builder().count(3).build());
    let customer = || Jid::pn(CUSTOMER);
    let nothing = [
        (
            "server ack of a receipt we sent",
            server_ack(Some("receipt"), "3EB0AA01", None),
        ),
        (
            "server ack of a notification",
            server_ack(Some("notification"), "n1", None),
        ),
        (
            "server ack without a class",
            server_ack(None, "3EB0AA01", None),
        ),
        (
            "read-self: this account read a message elsewhere",
            receipt(customer(), ReceiptType::ReadSelf, &["3EB0AA01"]),
        ),
        (
            "played",
            receipt(customer(), ReceiptType::Played, &["3EB0AA01"]),
        ),
        (
            "retry: the recipient could not decrypt (the library resends)",
            receipt(customer(), ReceiptType::Retry, &["3EB0AA01"]),
        ),
        (
            "server-error",
            receipt(customer(), ReceiptType::ServerError, &["3EB0AA01"]),
        ),
        (
            "sent: a delivery the recipient cannot take (feature-incapable)",
            receipt(customer(), ReceiptType::Sent, &["3EB0AA01"]),
        ),
        (
            "sender: this account's own fan-out",
            receipt(customer(), ReceiptType::Sender, &["3EB0AA01"]),
        ),
        (
            "inactive",
            receipt(customer(), ReceiptType::Inactive, &["3EB0AA01"]),
        ),
        (
            "delivery from this account's own phone",
            receipt(Jid::pn_device(ME, 0), ReceiptType::Delivered, &["3EB0AA01"]),
        ),
        (
            "read by this account under its LID",
            receipt(Jid::lid(ME_LID), ReceiptType::Read, &["3EB0AA01"]),
        ),
        (
            "delivery in a group",
            receipt(
                "120363012345678901@g.us".parse().unwrap(),
                ReceiptType::Delivered,
                &["3EB0AA01"],
            ),
        ),
        (
            "a receipt naming no message",
            receipt(customer(), ReceiptType::Delivered, &[]),
        ),
        ("view-once withheld by the phone", undecryptable(true)),
        (
            "raw 516 (LoggedOut event instead)",
            raw(stream_error("516")),
        ),
        (
            "raw 401 (LoggedOut event instead)",
            raw(stream_error("401")),
        ),
        (
            "raw 409 (StreamReplaced event instead)",
            raw(stream_error("409")),
        ),
        (
            "raw 500 (StreamError event instead)",
            raw(stream_error("500")),
        ),
        (
            "raw conflict (StreamReplaced/LoggedOut event instead)",
            raw(NodeBuilder::new("stream:error")
                .attr("code", "515")
                .children([NodeBuilder::new("conflict")
                    .attr("type", "replaced")
                    .build()])
                .build()),
        ),
        (
            "raw non-error stanza",
            raw(NodeBuilder::new("iq").attr("id", "1").build()),
        ),
        ("pair error", pair_error),
        ("pairing code error", code_error),
        ("offline sync completed", synced),
    ];
    for (name, event) in nothing {
        assert_eq!(map(&event), None, "{name}");
    }
    // Connected without a known own number cannot name the phone: nothing to claim.
    assert_eq!(
        map_event(
            &Event::Connected(Connected::builder().build()),
            OwnAccount::default
        ),
        None
    );
}
