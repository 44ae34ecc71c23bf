//! Never appear online (unless asked to).
//!
//! whatsapp-rust does what WhatsApp Web does when a person opens it: it sends
//! `<presence type="available">` on every login once the account's push name is
//! known (`client/node_io.rs`, before `Connected`), again when a push name first
//! arrives by app-state sync (`client/app_state.rs`) or by an `account_sync`
//! notification (`client/accessors.rs`), the last two at any time after
//! `Connected`. WhatsApp holds back notifications on the phone while a linked
//! device is online, so a daemon that stays "online" silences the shop's phone.
//!
//! The library has no switch for it, so the connection answers: after `Connected`
//! it sends `unavailable`, and a watcher sees every `available` the library
//! writes (`Client::wait_for_sent_node` resolves as the stanza is marshalled) and
//! sends `unavailable` after it. Stanzas go out in the order they are queued on
//! the socket, so ours is the last presence the server gets.

use std::sync::Weak;
use std::time::Duration;

use whatsapp_rust::{Client, NodeFilter};

/// Whether this device may appear online (`[whatsapp] mark_online`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Presence {
    /// Send `unavailable` after every login and after every `available` of the
    /// library's own.
    NeverOnline,
    /// Leave presence to the library, as WhatsApp Web.
    Online,
}

/// How long the watcher lets the library's own `available` reach the socket
/// queue before it sends `unavailable`. The waiter resolves while that stanza is
/// being marshalled, a few instructions before it is queued; without a pause the
/// two tasks could race for the queue.
const SETTLE: Duration = Duration::from_millis(250);

/// Sends `unavailable` now. Without a push name the library refuses any presence
/// (and sends none of its own either), which is fine.
pub(super) async fn go_unavailable(client: &Client) {
    match client.presence().set_unavailable().await {
        Ok(()) => tracing::debug!("presence unavailable sent"),
        Err(error) => tracing::debug!(%error, "presence unavailable not sent"),
    }
}

/// Answers every `available` the library sends with `unavailable`, for the
/// client's whole life. Holds the client only while sending, so an aborted or
/// forgotten watcher never keeps the store open.
pub(super) async fn watch(client: Weak<Client>) {
    loop {
        let sent = {
            let Some(client) = client.upgrade() else {
                return;
            };
            client.wait_for_sent_node(NodeFilter::tag("presence").attr("type", "available"))
        };
        // Cancelled when a connection ends (the library drops its waiters then):
        // arm again, the client may still connect.
        if sent.await.is_err() {
            if client.strong_count() == 0 {
                return;
            }
            tokio::time::sleep(SETTLE).await;
            continue;
        }
        tokio::time::sleep(SETTLE).await;
        let Some(client) = client.upgrade() else {
            return;
        };
        tracing::debug!("the library announced this device online; going unavailable");
        go_unavailable(&client).await;
    }
}
