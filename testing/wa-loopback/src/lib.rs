//! A WhatsApp Web server on loopback, for testing the real whatsapp-rust client end
//! to end: the real Noise handshake, the real binary nodes, the real SQLite store.
//!
//! Dev-only. It plays both WhatsApp's server and the phone of each account: it shows
//! a fresh device QR refs, links it like a phone that scanned the QR, logs a paired
//! device in, answers its queries, records what it sends (messages, presence, the
//! device name it registers with, the files it uploads), acks its messages (or withholds the acks, or
//! nacks them: [`AckMode`]), relays recipients' receipts and push names on command,
//! and sends the faults the real server sends.
//!
//! Pairing needs a client built with wacore-noise's `danger-skip-cert-chain-verify`
//! (the server cannot sign its certificate with WhatsApp's key); a device that is
//! already paired resumes with IK, which does not look at the certificate.

pub mod contacts;
mod error;
mod handshake;
pub mod login;
pub mod media;
pub mod pairing;
mod server;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wacore_binary::Jid;

pub use contacts::{ReceiptKind, SentMessage};
pub use error::LoopbackError;
pub use handshake::Pattern;
pub use media::{MEDIA_AUTH, MEDIA_HOST, MediaHttp, Upload};
pub use server::{AckMode, ServerEvent};
use server::{Command, Shared, now};

/// A fault the server can send to a connected account.
#[derive(Clone, Debug)]
pub enum Fault {
    /// `<stream:error code=…/>`, then the socket closes.
    StreamError(u16),
    /// `<stream:error><conflict type="replaced"/>`: another device took over.
    Replaced,
    /// `<failure reason=…/>` (401 logged out, 405 client outdated, …).
    Failure(u16),
    /// `<failure reason="402" code=… expire=…/>`: banned for `expire_secs`.
    TemporaryBan { expire_secs: u64 },
    /// A message from `from` (digits) that the device cannot decrypt.
    Undecryptable { from: String },
    /// The TCP connection drops without a word.
    DropSocket,
}

/// A running server. Dropping it stops accepting connections.
pub struct Loopback {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Loopback {
    /// Listens on an ephemeral port of 127.0.0.1.
    pub async fn start() -> Result<Self, LoopbackError> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new());
        let accept = tokio::spawn(server::accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// The URL to give the client (`TokioWebSocketTransportFactory::with_url`).
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.addr)
    }

    /// The `HttpClient` through which a client reaches this server's upload host
    /// (give it to whatsapp-rust's `BotBuilder::with_http_client`).
    pub fn media_http(&self) -> MediaHttp {
        MediaHttp {
            shared: self.shared.clone(),
        }
    }

    /// Everything that happened so far, in order.
    pub fn events(&self) -> Vec<ServerEvent> {
        self.shared.events()
    }

    /// What happened after the first `from` events, in order: a reader that
    /// follows a long log (a benchmark counting thousands of acks) takes only what
    /// is new each time.
    pub fn events_since(&self, from: usize) -> Vec<ServerEvent> {
        self.shared.events_since(from)
    }

    /// Makes `phone` (digits) a registered WhatsApp account, as every recipient
    /// on the real server is: it gets a LID, which usync reports, so a client
    /// learns it once and addresses the contact by it from then on (a contact
    /// without one is looked up again on every send).
    pub fn add_contact(&self, phone: &str) {
        self.shared.add_contact(phone);
    }

    /// Waits until `pick` finds something in the event log.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&[ServerEvent]) -> Option<T>,
    ) -> Result<T, LoopbackError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed();
            if let Some(found) = pick(&self.shared.events()) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(LoopbackError::Timeout(timeout, what.to_string()));
            }
        }
    }

    /// Scans `qr` (the string the client put in its QR) with the phone of `phone`
    /// (digits): the server links the device to that number, then restarts its
    /// stream with a 515 as WhatsApp does.
    pub fn scan(&self, qr: &str, phone: &str) -> Result<(), LoopbackError> {
        let qr = pairing::parse_qr(qr).map_err(|e| LoopbackError::BadQr(e.to_string()))?;
        let key = qr.noise_pub;
        self.shared.command_device(
            &key,
            Command::Pair {
                qr,
                phone: phone.to_string(),
            },
        )
    }

    /// How the server answers the messages of `phone`'s device from now on:
    /// acks (the default), nothing, or a nack with a code. Every ack and nack sent
    /// is recorded as [`ServerEvent::Acked`].
    pub fn set_acks(&self, phone: &str, mode: AckMode) {
        self.shared.set_ack_mode(phone, mode);
    }

    /// The phone of `from` (digits) reports the message `id` of `phone`'s device
    /// delivered or read: the server relays its `<receipt>` to every live
    /// connection of `phone`.
    pub fn receipt(
        &self,
        phone: &str,
        from: &str,
        id: &str,
        kind: ReceiptKind,
    ) -> Result<(), LoopbackError> {
        let node = contacts::receipt(&Jid::pn(from), id, kind, now());
        self.shared
            .command_account(phone, || Command::Send(node.clone()))?;
        self.shared.record(ServerEvent::ReceiptSent {
            phone: phone.to_string(),
            id: id.to_string(),
            from: from.to_string(),
            kind,
        });
        Ok(())
    }

    /// Tells `phone`'s device the account's push name (`account_sync`), as the
    /// server does when the phone changes it; the client then announces itself
    /// online.
    pub fn push_name(&self, phone: &str, name: &str) -> Result<(), LoopbackError> {
        let id = format!("loopback-pushname-{}", rand::random::<u32>());
        let node = login::push_name_notification(&id, name, now());
        self.shared
            .command_account(phone, || Command::Send(node.clone()))?;
        self.shared.record(ServerEvent::PushNameSent {
            phone: phone.to_string(),
            name: name.to_string(),
        });
        Ok(())
    }

    /// The presences `phone`'s device announced, in order (`available`,
    /// `unavailable`).
    pub fn presences(&self, phone: &str) -> Vec<String> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                ServerEvent::Presence { phone: p, kind, .. } if p == phone => Some(kind),
                _ => None,
            })
            .collect()
    }

    /// Sends `fault` to every live connection of the account `phone`.
    pub fn fault(&self, phone: &str, fault: Fault) -> Result<(), LoopbackError> {
        self.shared.command_account(phone, || match &fault {
            Fault::StreamError(code) => Command::SendAndClose(login::stream_error(*code)),
            Fault::Replaced => Command::SendAndClose(login::replaced()),
            Fault::Failure(reason) => Command::SendAndClose(login::failure(*reason, None, None)),
            Fault::TemporaryBan { expire_secs } => {
                Command::SendAndClose(login::failure(402, Some(101), Some(*expire_secs)))
            }
            Fault::Undecryptable { from } => Command::Send(contacts::undecryptable_message(
                &Jid::pn(from.as_str()),
                &format!("loopback-junk-{}", rand::random::<u32>()),
                now(),
            )),
            Fault::DropSocket => Command::Drop,
        })
    }
}
