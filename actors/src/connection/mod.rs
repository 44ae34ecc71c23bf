//! The org actor's whole view of a WhatsApp client.
//!
//! A [`Connector`] opens [`Connection`]s; each connection reports what happens to it
//! as an ordered stream of [`ConnectionEvent`]s. The org actor never sees a protocol:
//! it reads events, asks [`classify`] what they mean (CONTRACT §4), and decides.
//!
//! Two implementations exist: [`sim`], a scriptable fake phone for tests, benchmarks
//! and the demo mode, and the real one on whatsapp-rust.

mod classify;
pub mod sim;
#[cfg(feature = "whatsapp")]
pub mod whatsapp;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

pub use classify::{Class, classify, classify_code};

use crate::OrgId;
use crate::media::Media;

/// How a connection is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// Log in with the credentials stored in the org's directory.
    Resume,
    /// Pair a new device: show QR codes, and a pairing code when a phone number is given.
    Pair { phone_for_code: Option<String> },
}

/// What a connector needs to open one org's connection.
#[derive(Clone, Debug)]
pub struct ConnectRequest {
    pub org: OrgId,
    /// The org's live session directory; it exists and belongs to this connection.
    pub dir: PathBuf,
    pub mode: StartMode,
}

/// Everything a connection can report, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A QR code to scan; the next one replaces it after `timeout`.
    QrCode { code: String, timeout: Duration },
    /// A code to type on the phone (pairing by phone number).
    PairingCode { code: String },
    /// The phone accepted this device; the number is its own (digits).
    Paired { phone: String },
    /// Logged in and online as this number (digits).
    Connected { phone: String },
    /// A message that could not be decrypted (libsignal's Bad MAC and its kin).
    Undecryptable { sender: String, reason: String },
    /// The server closed the stream with `<stream:error>` (code when it gave one) or
    /// a connect failure with a code.
    StreamError { code: Option<u16>, text: String },
    /// Stream error 515: reconnect from the same credentials (normal after pairing).
    RestartRequired,
    /// 429/503: the server asks us to come back later.
    ServerBusy { code: u16 },
    /// DNS, refused, TLS, timeout, socket closed without a stream error.
    NetworkFailure { reason: String },
    /// Another client took over these credentials.
    Replaced,
    /// The phone removed this device (or the server said so).
    LoggedOut { code: u16 },
    /// A temporary ban; `expires_in` when WhatsApp said how long.
    TemporaryBan { expires_in: Option<Duration> },
    /// WhatsApp rejected this client's version.
    ClientOutdated,
    /// Every QR code of this pairing expired unscanned.
    QrExhausted,
    /// WhatsApp's server took a message we sent (`error: None`) or refused it (a
    /// nack, with its code). Only an ack makes a message `sent` (CONTRACT §10).
    ServerAck {
        message_id: String,
        error: Option<String>,
    },
    /// The recipient's phone reported messages we sent delivered or read.
    Receipt {
        message_ids: Vec<String>,
        kind: ReceiptKind,
    },
}

/// What a recipient's receipt says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptKind {
    Delivered,
    Read,
}

/// A failure of a connection operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("not connected")]
    NotConnected,
    #[error("the connection failed: {0}")]
    Failed(String),
    /// The org's store is damaged (SQLite says it is not a database or is
    /// malformed, or an integrity check fails): it cannot be used again as it is.
    #[error("the session store is corrupt: {0}")]
    StoreCorrupt(String),
    /// The org's store cannot be used right now (no file descriptors left, disk
    /// full, permission denied, locked): a reason to wait and retry, never to wipe.
    #[error("the session store is unavailable: {0}")]
    StoreUnavailable(String),
    /// The operation did not finish in time.
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
}

/// The ordered stream of one connection's events; it ends when the connection ends.
pub type EventStream = mpsc::UnboundedReceiver<ConnectionEvent>;

/// One open (or opening) WhatsApp client.
///
/// All methods may wait on the network, so the org actor only calls them from
/// spawned tasks, never inside its message handler.
#[async_trait]
pub trait Connection: Send + Sync + 'static {
    /// Writes a text to a number (digits with country code) as message
    /// `message_id`. Returns once the message is handed to WhatsApp; the server's
    /// verdict arrives later as [`ConnectionEvent::ServerAck`] with the same id.
    /// Sending again with the same id is how a message is resent: WhatsApp keeps
    /// one copy.
    async fn send_text(
        &self,
        phone: &str,
        text: &str,
        message_id: &str,
    ) -> Result<(), ConnectionError>;

    /// Uploads a file to WhatsApp's media servers and sends it to a number
    /// (digits) as an image or a document message `message_id` (CONTRACT §14).
    /// Like [`Connection::send_text`], it returns once the message is handed to
    /// WhatsApp; the verdict comes as [`ConnectionEvent::ServerAck`].
    async fn send_media(
        &self,
        phone: &str,
        media: &Media,
        message_id: &str,
    ) -> Result<(), ConnectionError>;

    /// Whether a number (digits) has WhatsApp (the number check of CONTRACT §14).
    async fn is_on_whatsapp(&self, phone: &str) -> Result<bool, ConnectionError>;

    /// Tells WhatsApp to remove this device. The caller backs up and wipes afterwards.
    async fn logout(&self) -> Result<(), ConnectionError>;

    /// Closes the connection with its state flushed to the store. After this returns
    /// no event is sent and the store may be opened by a new connection.
    async fn shutdown(&self);
}

/// Opens connections, one kind per daemon (sim or WhatsApp).
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Opens a connection. An error here is a connect failure (CONTRACT §4: stream
    /// error class); everything after opening arrives on the event stream.
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, EventStream), ConnectionError>;

    /// Whether an org's directory holds credentials a connection can resume from.
    ///
    /// It reads the disk, so callers run it on the blocking pool, never on an
    /// actor's handler. A store that cannot be read is an error, never `false`:
    /// "no credentials" starts a new pairing, which must not happen to a paired org
    /// whose store is only unreadable for a moment.
    fn has_credentials(&self, dir: &std::path::Path) -> Result<bool, ConnectionError>;
}
