//! Which session events become webhooks, and the JSON each one posts:
//!
//! ```json
//! {"event":"session.connected","event_id":"<32 hex>","organization_id":"2",
//!  "status":"connected","timestamp":"2026-11-23T07:15:33.123Z",
//!  "data":{"phone_number":"573001234567"}}
//! ```

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use wa_actors::healing::Step;
use wa_actors::outbox::MessageStatus;
use wa_actors::{EventKind, MessageEvent, OrgId, SessionEvent, SessionStatus};

use crate::qr_render;

/// Every event name a receiver may see, for documentation and tests.
pub const EVENT_NAMES: [&str; 17] = [
    "session.qr",
    "session.connected",
    "session.reconnecting",
    "session.disconnected",
    "session.logged_out",
    "session.cleaned",
    "session.quarantined",
    "session.conflict",
    "session.number_in_use",
    "session.banned",
    "session.healing",
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "message.expired",
    "message.cancelled",
];

/// One event chosen for the webhook; its body is rendered by the delivery task,
/// never in the actor that emitted it (a QR PNG takes milliseconds to draw).
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookEvent {
    pub name: &'static str,
    /// 128 bits in hex, one per event ([`event_id_of`]): the receiver's
    /// de-duplication key.
    pub event_id: String,
    pub organization_id: OrgId,
    pub status: SessionStatus,
    pub timestamp: DateTime<Utc>,
    pub data: Data,
}

/// The `data` object, or what it is made from.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// A QR to draw as a PNG data URL at delivery.
    Qr {
        code: String,
        pairing_code: Option<String>,
    },
    Json(Map<String, Value>),
}

/// A fresh event id: 128 random bits as 32 lowercase hex digits.
#[cfg(test)]
pub fn new_event_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// An event's id, 32 lowercase hex digits: 128 bits of the SHA-256 of what makes
/// it this event (its org, its time to the nanosecond, its name and data). Every
/// sink of one event, the webhook and the live listeners of this node and of the
/// others, so carries the same id, and two events never share one.
fn event_id_of(org: &OrgId, at: DateTime<Utc>, name: &str, data: &Data) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in [org.as_str(), name] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.update(at.timestamp_nanos_opt().unwrap_or_default().to_be_bytes());
    match data {
        Data::Qr { code, pairing_code } => {
            hash.update(code.as_bytes());
            hash.update([0]);
            hash.update(pairing_code.as_deref().unwrap_or_default().as_bytes());
        }
        Data::Json(map) => hash.update(serde_json::to_vec(map).expect("a JSON map serializes")),
    }
    let digest = hash.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl WebhookEvent {
    /// The webhook for `event`, or `None` when receivers are not told of it (decrypt
    /// and stream errors, and status changes the other events already cover).
    pub fn from_session(event: SessionEvent) -> Option<Self> {
        let (name, data) = match event.kind {
            EventKind::Qr { code, pairing_code } => ("session.qr", Data::Qr { code, pairing_code }),
            EventKind::Connected { phone } => (
                "session.connected",
                object(json!({ "phone_number": phone })),
            ),
            EventKind::Cleaned { reason, backup } => (
                "session.cleaned",
                object(json!({ "reason": reason, "backup": backup })),
            ),
            EventKind::Message(message) => message_event(message),
            EventKind::Healing {
                step,
                window,
                events,
                senders,
            } => (
                "session.healing",
                object(json!({
                    "step": match step {
                        Step::Restart => "restart",
                        Step::Wipe => "wipe",
                    },
                    "window": window,
                    "events": events,
                    "senders": senders,
                })),
            ),
            EventKind::StatusChanged {
                from,
                reason,
                retry_at,
            } => {
                let name = status_event(event.status)?;
                let mut data = object(json!({ "from": from, "reason": reason }));
                if event.status == SessionStatus::Banned
                    && let Some(at) = retry_at
                    && let Data::Json(map) = &mut data
                {
                    map.insert("retry_at".into(), Value::String(rfc3339(at)));
                }
                (name, data)
            }
            EventKind::DecryptError | EventKind::StreamError { .. } => return None,
        };
        Some(Self {
            name,
            event_id: event_id_of(&event.org, event.at, name, &data),
            organization_id: event.org,
            status: event.status,
            timestamp: event.at,
            data,
        })
    }

    /// The event as one line of JSON for another node (see
    /// [`WebhookEvent::from_wire`]): its parts, not its body, so that a QR travels
    /// as its short code and each node draws it.
    pub fn to_wire(&self) -> String {
        let (qr, data) = match &self.data {
            Data::Qr { code, pairing_code } => (Some((code, pairing_code)), None),
            Data::Json(map) => (None, Some(map)),
        };
        json!({
            "name": self.name,
            "event_id": self.event_id,
            "organization_id": self.organization_id.as_str(),
            "status": self.status.as_str(),
            "timestamp": self.timestamp,
            "qr": qr,
            "data": data,
        })
        .to_string()
    }

    /// An event another node wrote with [`WebhookEvent::to_wire`]; `None` for
    /// one this build does not know (a newer node's event name or status).
    pub fn from_wire(wire: &str) -> Option<Self> {
        #[derive(serde::Deserialize)]
        struct Wire {
            name: String,
            event_id: String,
            organization_id: String,
            status: String,
            timestamp: DateTime<Utc>,
            qr: Option<(String, Option<String>)>,
            data: Option<Map<String, Value>>,
        }
        let wire: Wire = serde_json::from_str(wire).ok()?;
        let data = match (wire.qr, wire.data) {
            (Some((code, pairing_code)), None) => Data::Qr { code, pairing_code },
            (None, Some(map)) => Data::Json(map),
            _ => return None,
        };
        Some(Self {
            name: EVENT_NAMES.into_iter().find(|n| *n == wire.name)?,
            event_id: wire.event_id,
            organization_id: OrgId::parse(&wire.organization_id).ok()?,
            status: SessionStatus::parse(&wire.status)?,
            timestamp: wire.timestamp,
            data,
        })
    }

    pub fn is_qr(&self) -> bool {
        matches!(self.data, Data::Qr { .. })
    }

    /// The JSON body, exactly the bytes that are signed and sent.
    pub fn body(&self) -> Vec<u8> {
        let data = match &self.data {
            Data::Json(map) => Value::Object(map.clone()),
            Data::Qr { code, pairing_code } => {
                let qr = match qr_render::png_data_url(code) {
                    Ok(url) => Value::String(url),
                    Err(e) => {
                        tracing::warn!(org_id = %self.organization_id, error = %e, "QR code cannot be drawn for the webhook");
                        Value::Null
                    }
                };
                let mut map = Map::new();
                map.insert("qr".into(), qr);
                if let Some(code) = pairing_code {
                    map.insert("pairing_code".into(), Value::String(code.clone()));
                }
                Value::Object(map)
            }
        };
        let body = json!({
            "event": self.name,
            "event_id": self.event_id,
            "organization_id": self.organization_id.as_str(),
            "status": self.status.as_str(),
            "timestamp": rfc3339(self.timestamp),
            "data": data,
        });
        serde_json::to_vec(&body).expect("a JSON value serializes")
    }
}

/// `message.sent`, `.delivered`, `.read`, `.failed`, `.expired`, `.cancelled`
/// (CONTRACT §10); `reason` repeats `error` for receivers of the first version.
fn message_event(m: MessageEvent) -> (&'static str, Data) {
    let name = match m.status {
        MessageStatus::Sent => "message.sent",
        MessageStatus::Delivered => "message.delivered",
        MessageStatus::Read => "message.read",
        MessageStatus::Failed => "message.failed",
        MessageStatus::Expired => "message.expired",
        MessageStatus::Cancelled => "message.cancelled",
        MessageStatus::Queued | MessageStatus::Sending => {
            unreachable!("MessageEvent::of never makes one for a pending message")
        }
    };
    let mut data = json!({
        "message_id": m.message_id,
        "idempotency_key": m.idempotency_key,
        "to": m.to,
        "status": m.status,
        "attempts": m.attempts,
    });
    if let Some(error) = m.error {
        data["error"] = Value::String(error.clone());
        data["reason"] = Value::String(error);
    }
    (name, object(data))
}

/// The event a status change is announced as; `None` for the statuses that other
/// events cover (`qr_ready` → `session.qr`, `connected` → `session.connected`) or
/// that receivers are not told of.
fn status_event(status: SessionStatus) -> Option<&'static str> {
    use SessionStatus as S;
    Some(match status {
        S::Reconnecting => "session.reconnecting",
        S::Disconnected => "session.disconnected",
        S::LoggedOut => "session.logged_out",
        S::Quarantined => "session.quarantined",
        S::Conflict => "session.conflict",
        S::NumberInUse => "session.number_in_use",
        S::Banned => "session.banned",
        S::NotStarted
        | S::Connecting
        | S::QrReady
        | S::Connected
        | S::ClientOutdated
        | S::Blocked => return None,
    })
}

fn object(value: Value) -> Data {
    match value {
        Value::Object(map) => Data::Json(map),
        _ => unreachable!("json!({{…}}) is an object"),
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: SessionStatus, kind: EventKind) -> SessionEvent {
        SessionEvent {
            org: OrgId::parse("2").unwrap(),
            at: "2026-11-23T07:15:33.123Z".parse().unwrap(),
            status,
            kind,
        }
    }

    fn body(ev: &WebhookEvent) -> Value {
        serde_json::from_slice(&ev.body()).unwrap()
    }

    /// What another node reads of an event is the event: a QR keeps its code and
    /// pairing code, any other its data; an unknown name or status is skipped.
    #[test]
    fn an_event_crosses_to_another_node_whole() {
        let qr = EventKind::Qr {
            code: "2@abc,def".into(),
            pairing_code: Some("ABCD-1234".into()),
        };
        let cleaned = EventKind::Cleaned {
            reason: "bad_mac".into(),
            backup: Some("2026-11-23T07-15-33Z_bad_mac".into()),
        };
        for (status, kind) in [
            (SessionStatus::QrReady, qr),
            (SessionStatus::Connecting, cleaned),
        ] {
            let sent = WebhookEvent::from_session(event(status, kind)).unwrap();
            let read = WebhookEvent::from_wire(&sent.to_wire()).expect("read back");
            assert_eq!(read, sent);
            assert_eq!(read.body(), sent.body());
        }
        let sent = changed(SessionStatus::Banned).unwrap().to_wire();
        for (from, to) in [
            ("\"session.banned\"", "\"session.renamed\""),
            ("\"status\":\"banned\"", "\"status\":\"snoozing\""),
            ("\"organization_id\":\"2\"", "\"organization_id\":\"../x\""),
        ] {
            assert!(sent.contains(from), "{sent}");
            assert_eq!(
                WebhookEvent::from_wire(&sent.replace(from, to)),
                None,
                "{to}"
            );
        }
        assert_eq!(WebhookEvent::from_wire("not json"), None);
    }

    fn changed(status: SessionStatus) -> Option<WebhookEvent> {
        let kind = EventKind::StatusChanged {
            from: SessionStatus::Connected,
            reason: "why".into(),
            retry_at: None,
        };
        WebhookEvent::from_session(event(status, kind))
    }

    #[test]
    fn the_envelope_and_a_connected_event() {
        let ev = WebhookEvent::from_session(event(
            SessionStatus::Connected,
            EventKind::Connected {
                phone: "573001234567".into(),
            },
        ))
        .unwrap();
        let b = body(&ev);
        assert_eq!(b["event"], "session.connected");
        assert_eq!(b["event_id"], ev.event_id.as_str());
        assert_eq!(b["organization_id"], "2");
        assert_eq!(b["status"], "connected");
        assert_eq!(b["timestamp"], "2026-11-23T07:15:33.123Z");
        assert_eq!(b["data"], json!({ "phone_number": "573001234567" }));
        assert_eq!(b.as_object().unwrap().len(), 6);
    }

    #[test]
    fn event_ids_are_128_bit_hex_one_per_event() {
        let at: DateTime<Utc> = "2026-11-23T07:15:33.123Z".parse().unwrap();
        let connected = |org: &str, phone: &str, at| {
            let kind = EventKind::Connected {
                phone: phone.into(),
            };
            let e = SessionEvent {
                org: OrgId::parse(org).unwrap(),
                at,
                ..event(SessionStatus::Connected, kind)
            };
            WebhookEvent::from_session(e).unwrap().event_id
        };
        let a = connected("2", "1", at);
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        // One event, whichever sink shapes it: one id.
        assert_eq!(a, connected("2", "1", at));
        let later = at + chrono::Duration::nanoseconds(1);
        for other in [
            connected("3", "1", at),
            connected("2", "9", at),
            connected("2", "1", later),
        ] {
            assert_ne!(a, other);
        }
    }

    #[test]
    fn a_qr_posts_a_png_data_url_and_the_pairing_code_if_any() {
        let qr = |pairing_code: Option<&str>| {
            let kind = EventKind::Qr {
                code: "2@abc,def,ghi,jkl".into(),
                pairing_code: pairing_code.map(str::to_owned),
            };
            WebhookEvent::from_session(event(SessionStatus::QrReady, kind)).unwrap()
        };
        let ev = qr(None);
        assert!(ev.is_qr());
        let b = body(&ev);
        assert_eq!(b["event"], "session.qr");
        assert!(
            b["data"]["qr"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        assert!(b["data"].get("pairing_code").is_none());
        assert_eq!(
            body(&qr(Some("ABCD-1234")))["data"]["pairing_code"],
            "ABCD-1234"
        );
    }

    #[test]
    fn status_changes_map_to_their_events() {
        use SessionStatus as S;
        for (status, name) in [
            (S::Reconnecting, "session.reconnecting"),
            (S::Disconnected, "session.disconnected"),
            (S::LoggedOut, "session.logged_out"),
            (S::Quarantined, "session.quarantined"),
            (S::Conflict, "session.conflict"),
            (S::NumberInUse, "session.number_in_use"),
            (S::Banned, "session.banned"),
        ] {
            let ev = changed(status).unwrap();
            assert_eq!(ev.name, name);
            let b = body(&ev);
            assert_eq!(b["status"], status.as_str());
            assert_eq!(b["data"], json!({ "from": "connected", "reason": "why" }));
        }
        for status in [S::Connecting, S::QrReady, S::Connected, S::NotStarted] {
            assert!(changed(status).is_none(), "{status}");
        }
    }

    #[test]
    fn a_ban_carries_retry_at_when_known() {
        let at: DateTime<Utc> = "2026-11-23T09:00:00Z".parse().unwrap();
        let kind = EventKind::StatusChanged {
            from: SessionStatus::Connected,
            reason: "ban".into(),
            retry_at: Some(at),
        };
        let ev = WebhookEvent::from_session(event(SessionStatus::Banned, kind));
        assert_eq!(
            body(&ev.unwrap())["data"]["retry_at"],
            "2026-11-23T09:00:00.000Z"
        );
    }

    #[test]
    fn cleaned_and_message_events() {
        let mk = |status, kind| body(&WebhookEvent::from_session(event(status, kind)).unwrap());
        let b = mk(
            SessionStatus::Connecting,
            EventKind::Cleaned {
                reason: "bad_mac".into(),
                backup: Some("20261123T071533Z_bad_mac".into()),
            },
        );
        assert_eq!(b["event"], "session.cleaned");
        assert_eq!(
            b["data"],
            json!({ "reason": "bad_mac", "backup": "20261123T071533Z_bad_mac" })
        );
        let message = |status, error: Option<&str>| {
            EventKind::Message(MessageEvent {
                status,
                message_id: "3EB0ABC".into(),
                idempotency_key: Some("appointment-123-reminder".into()),
                to: "573009998877".into(),
                error: error.map(str::to_owned),
                accepted_at: "2026-11-23T07:15:30Z".parse().unwrap(),
                attempts: 1,
            })
        };
        for (status, name) in [
            (MessageStatus::Sent, "message.sent"),
            (MessageStatus::Delivered, "message.delivered"),
            (MessageStatus::Read, "message.read"),
            (MessageStatus::Expired, "message.expired"),
            (MessageStatus::Cancelled, "message.cancelled"),
        ] {
            let b = mk(SessionStatus::Connected, message(status, None));
            assert_eq!(b["event"], name);
            assert_eq!(
                b["data"],
                json!({
                    "message_id": "3EB0ABC",
                    "idempotency_key": "appointment-123-reminder",
                    "to": "573009998877",
                    "status": status.as_str(),
                    "attempts": 1,
                })
            );
        }
        let b = mk(
            SessionStatus::Connected,
            message(MessageStatus::Failed, Some("boom")),
        );
        assert_eq!(b["event"], "message.failed");
        assert_eq!(b["data"]["error"], "boom");
        assert_eq!(b["data"]["reason"], "boom");
        let b = mk(
            SessionStatus::Connected,
            EventKind::Healing {
                step: Step::Restart,
                window: "bad_mac",
                events: 3,
                senders: 3,
            },
        );
        assert_eq!(b["event"], "session.healing");
        assert_eq!(
            b["data"],
            json!({ "step": "restart", "window": "bad_mac", "events": 3, "senders": 3 })
        );
    }

    #[test]
    fn errors_are_not_posted() {
        for kind in [
            EventKind::DecryptError,
            EventKind::StreamError { code: Some(500) },
        ] {
            assert!(WebhookEvent::from_session(event(SessionStatus::Connected, kind)).is_none());
        }
    }
}
