//! The handler on whatsapp-rust's event bus: order, the end of the stream, and the
//! failure it reports for a connect the library only logs.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::{Event, EventHandler, PairSuccess, PairingQrCode, StreamError};

use super::super::connection::Forwarder;
use super::super::presence::Presence;
use super::mapping::{raw, stream_error, undecryptable};
use crate::OrgId;
use crate::connection::ConnectionEvent as C;

fn forwarder() -> (Forwarder, mpsc::UnboundedReceiver<C>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (
        Forwarder::new(OrgId::parse("fw").unwrap(), tx, None, Presence::Online),
        rx,
    )
}

fn qr() -> Arc<Event> {
    Arc::new(Event::PairingQrCode(
        PairingQrCode::builder()
            .code("2@qr".into())
            .timeout(Duration::from_secs(60))
            .build(),
    ))
}

fn drain(rx: &mut mpsc::UnboundedReceiver<C>) -> Vec<C> {
    let mut out = Vec::new();
    while let Ok(event) = rx.try_recv() {
        out.push(event);
    }
    out
}

#[test]
fn pairing_then_restart_arrive_in_order_and_the_stream_ends() {
    let (fw, mut rx) = forwarder();
    fw.handle_event(qr());
    fw.handle_event(Arc::new(Event::PairSuccess(
        PairSuccess::builder()
            .id(Jid::pn("573001234567"))
            .lid(Jid::lid("1"))
            .business_name(String::new())
            .platform(String::new())
            .build(),
    )));
    fw.handle_event(Arc::new(raw(stream_error("515"))));
    // The run loop stops (no auto-reconnect): nothing is added, the stream ends.
    fw.finish();
    assert_eq!(
        drain(&mut rx),
        vec![
            C::QrCode {
                code: "2@qr".into(),
                timeout: Duration::from_secs(60)
            },
            C::Paired {
                phone: "573001234567".into()
            },
            C::RestartRequired,
        ]
    );
    assert!(matches!(
        rx.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
}

#[test]
fn a_run_that_ends_without_a_reason_reports_a_network_failure() {
    // The connect never got a socket: whatsapp-rust only logs why.
    let (fw, mut rx) = forwarder();
    fw.finish();
    assert_eq!(
        drain(&mut rx),
        vec![C::NetworkFailure {
            reason: "could not connect to WhatsApp (network, TLS or handshake failure)".into()
        }]
    );

    // A decrypt error does not end a connection; the end still needs a reason.
    let (fw, mut rx) = forwarder();
    fw.handle_event(qr());
    fw.handle_event(Arc::new(undecryptable(false)));
    fw.finish();
    let events = drain(&mut rx);
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(
        events[2],
        C::NetworkFailure {
            reason: "the connection to WhatsApp ended".into()
        }
    );
}

#[test]
fn a_stream_error_is_the_reason_and_nothing_is_added() {
    let (fw, mut rx) = forwarder();
    fw.handle_event(Arc::new(Event::StreamError(
        StreamError::builder().code("500".into()).build(),
    )));
    fw.finish();
    assert_eq!(
        drain(&mut rx),
        vec![C::StreamError {
            code: Some(500),
            text: "500".into()
        }]
    );
}

#[test]
fn after_close_nothing_is_sent() {
    let (fw, mut rx) = forwarder();
    fw.close();
    fw.handle_event(qr());
    fw.finish();
    assert!(matches!(
        rx.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
}
