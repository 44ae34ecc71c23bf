//! A scriptable fake phone: the connection used by tests, benchmarks and `--sim`.
//!
//! It behaves like WhatsApp where the org actor can tell the difference: QR codes in
//! WhatsApp's shape that rotate and run out, pairing followed by a 515 restart, a
//! credentials file in the org's directory, server acks for every message (unless
//! told to play a zombie), receipts on demand, and every CONTRACT §9 fault. A
//! [`SimConnector`] is cheap to clone; every clone drives the same phones.
//!
//! It also watches the one rule a real store cannot survive: two open connections on
//! one org's store. [`SimConnector::overlaps`] counts them; tests assert it stays 0.
//!
//! With a [`SimLedger`] (several daemons on one database) the credentials, the
//! server's record of sends and the open connections live in the ledger instead,
//! so that they are one across nodes; see `ledger.rs`.

mod credentials;
mod fault;
mod ledger;
mod link;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{
    ConnectRequest, Connection, ConnectionError, ConnectionEvent, Connector, EventStream,
    ReceiptKind, StartMode,
};
use crate::OrgId;
use crate::media::Media;
pub use credentials::{CREDENTIALS_FILE, SimCredentials};
pub use fault::Fault;
pub use ledger::SimLedger;
use link::{Link, LinkState, Phone, SimConnection};

/// How the fake phone's QR codes rotate (WhatsApp: 60 s, then 20 s each, 6 in all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimTiming {
    pub first_qr: Duration,
    pub next_qr: Duration,
    pub qr_count: usize,
}

impl Default for SimTiming {
    fn default() -> Self {
        Self {
            first_qr: Duration::from_secs(60),
            next_qr: Duration::from_secs(20),
            qr_count: 6,
        }
    }
}

/// One delivery attempt the fake phone received (resends included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SentRecord {
    pub to: String,
    /// The text, or a file's caption (empty without one).
    pub text: String,
    pub message_id: String,
    /// `text`, `image` or `document`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mimetype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// A file's length in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<usize>,
}

impl SentRecord {
    /// The kinds a record may have.
    pub const KINDS: [&'static str; 3] = ["text", "image", "document"];

    pub fn text(to: &str, text: &str, message_id: &str) -> Self {
        Self {
            to: to.to_owned(),
            text: text.to_owned(),
            message_id: message_id.to_owned(),
            kind: "text",
            mimetype: None,
            filename: None,
            bytes: None,
        }
    }

    fn media(to: &str, media: &Media, message_id: &str) -> Self {
        Self {
            to: to.to_owned(),
            text: media.caption.clone().unwrap_or_default(),
            message_id: message_id.to_owned(),
            kind: media.kind.as_str(),
            mimetype: Some(media.mimetype.clone()),
            filename: media.filename.clone(),
            bytes: Some(media.bytes.len()),
        }
    }

    /// A record read back from a ledger (which keeps no file details); `None`
    /// for a kind this build does not know.
    pub fn of_kind(to: String, text: String, message_id: String, kind: &str) -> Option<Self> {
        let kind = Self::KINDS.into_iter().find(|k| *k == kind)?;
        Some(Self {
            to,
            text,
            message_id,
            kind,
            mimetype: None,
            filename: None,
            bytes: None,
        })
    }
}

/// Why the fake phone could not do what it was told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("no QR code is being shown for this organization")]
    NoQrShown,
    #[error("this organization has no open connection")]
    NoConnection,
    #[error("the credentials file could not be written: {0}")]
    Store(String),
}

/// The fake phones of every organization; the [`Connector`] of `--sim`.
#[derive(Clone, Default)]
pub struct SimConnector {
    phones: Arc<Mutex<HashMap<OrgId, Phone>>>,
    timing: SimTiming,
    overlaps: Arc<AtomicU64>,
    /// Where credentials, sends and open connections are kept when several
    /// daemons share them; `None`: files and memory of this process.
    ledger: Option<Arc<dyn SimLedger>>,
}

impl SimConnector {
    pub fn new(timing: SimTiming) -> Self {
        Self {
            timing,
            ..Self::default()
        }
    }

    /// Fake phones whose credentials, sends and connections are kept in `ledger`.
    pub fn with_ledger(timing: SimTiming, ledger: Arc<dyn SimLedger>) -> Self {
        Self {
            timing,
            ledger: Some(ledger),
            ..Self::default()
        }
    }

    /// How many times a connection was opened on a store that another open
    /// connection of this process still held. Anything but 0 is a bug in the
    /// caller. (With a ledger, [`SimConnector::overlap_count`] counts across nodes.)
    pub fn overlaps(&self) -> u64 {
        self.overlaps.load(Ordering::SeqCst)
    }

    /// Overlaps counted in the ledger (every node's), or in this process without one.
    pub async fn overlap_count(&self) -> Result<u64, SimError> {
        match &self.ledger {
            Some(ledger) => Ok(ledger.overlaps().await? + self.overlaps()),
            None => Ok(self.overlaps()),
        }
    }

    /// Every delivery attempt of `org`, in order: from the ledger (every node's),
    /// or this process's without one.
    pub async fn sent_log(&self, org: &OrgId) -> Result<Vec<SentRecord>, SimError> {
        match &self.ledger {
            Some(ledger) => ledger.sent(org).await,
            None => Ok(self.sent(org)),
        }
    }

    fn with_phone<T>(&self, org: &OrgId, f: impl FnOnce(&mut Phone) -> T) -> T {
        let mut phones = self.phones.lock().unwrap();
        f(phones.entry(org.clone()).or_default())
    }

    fn open_link(&self, org: &OrgId) -> Option<Arc<Link>> {
        self.with_phone(org, |p| p.link.clone().filter(|l| l.is_open()))
    }

    /// The raw QR payload the phone currently shows for `org`.
    pub fn current_qr(&self, org: &OrgId) -> Option<String> {
        let link = self.with_phone(org, |p| p.link.clone())?;
        link.state.lock().unwrap().qr.clone()
    }

    /// The phone scans the QR on screen and pairs as `phone` (digits). Like WhatsApp,
    /// the connection then reports `Paired`, asks for a restart (515) and closes.
    /// A QR pairs once: of two scans racing for it, the second finds none.
    pub fn scan(&self, org: &OrgId, phone: &str) -> Result<(), SimError> {
        let link = self
            .with_phone(org, |p| p.link.clone())
            .ok_or(SimError::NoQrShown)?;
        link.take_qr().ok_or(SimError::NoQrShown)?;
        if let Some(ledger) = &self.ledger {
            // The QR is taken: the pairing goes on by itself, once the ledger
            // holds the credentials (the restart reads them back).
            let (ledger, org, phone) = (ledger.clone(), org.clone(), phone.to_owned());
            tokio::spawn(async move {
                let credentials = SimCredentials::generate(&phone);
                match ledger.pair(&org, &credentials).await {
                    Ok(()) => {
                        link.emit(ConnectionEvent::Paired { phone });
                        link.end_with(ConnectionEvent::RestartRequired);
                    }
                    Err(e) => {
                        tracing::warn!(org_id = %org, error = %e, "sim: the pairing could not be stored");
                        link.end_with(ConnectionEvent::NetworkFailure {
                            reason: format!("the pairing could not be stored: {e}"),
                        });
                    }
                }
            });
            return Ok(());
        }
        if let Err(e) = credentials::write(&link.dir, phone) {
            // The session was cleaned under the scan: there is no QR any more.
            return Err(if link.is_open() && link.dir.is_dir() {
                SimError::Store(e.to_string())
            } else {
                SimError::NoQrShown
            });
        }
        link.emit(ConnectionEvent::Paired {
            phone: phone.to_owned(),
        });
        link.end_with(ConnectionEvent::RestartRequired);
        Ok(())
    }

    /// Makes the phone report a CONTRACT §9 fault.
    pub fn inject(&self, org: &OrgId, fault: Fault) -> Result<(), SimError> {
        use ConnectionEvent as E;
        let link = match fault {
            Fault::NetworkUp => {
                self.with_phone(org, |p| p.network_down = false);
                return Ok(());
            }
            Fault::SendFails => {
                self.with_phone(org, |p| p.send_fails = true);
                return Ok(());
            }
            Fault::SendHangs => {
                self.with_phone(org, |p| p.send_hangs = true);
                return Ok(());
            }
            Fault::NetworkDown => {
                let link = self.with_phone(org, |p| {
                    p.network_down = true;
                    p.link.clone().filter(|l| l.is_open())
                });
                if let Some(link) = link {
                    link.end_with(E::NetworkFailure {
                        reason: "network unreachable".into(),
                    });
                }
                return Ok(());
            }
            _ => self.open_link(org).ok_or(SimError::NoConnection)?,
        };
        match fault {
            Fault::BadMac { sender } => link.emit(E::Undecryptable {
                sender: format!(
                    "{}@s.whatsapp.net",
                    sender.unwrap_or_else(credentials::random_sender)
                ),
                reason: "Bad MAC".into(),
            }),
            Fault::NoAck => link.state.lock().unwrap().no_ack = true,
            Fault::StreamError { code } => link.end_with(E::StreamError {
                code,
                text: "xml-not-well-formed".into(),
            }),
            Fault::RestartRequired => link.end_with(E::RestartRequired),
            Fault::ServerBusy { code } => link.end_with(E::ServerBusy {
                code: code.unwrap_or(503),
            }),
            Fault::Replaced => link.end_with(E::Replaced),
            Fault::LoggedOut { code } => link.end_with(E::LoggedOut {
                code: code.unwrap_or(401),
            }),
            Fault::TemporaryBan { seconds } => link.end_with(E::TemporaryBan {
                expires_in: Some(Duration::from_secs(seconds.unwrap_or(3600).into())),
            }),
            Fault::ClientOutdated => link.end_with(E::ClientOutdated),
            Fault::QrExhausted => link.end_with(E::QrExhausted),
            Fault::NetworkUp | Fault::NetworkDown | Fault::SendFails | Fault::SendHangs => {
                unreachable!("handled above")
            }
        }
        Ok(())
    }

    /// The recipient's phone reports a message delivered or read.
    pub fn receipt(
        &self,
        org: &OrgId,
        message_id: &str,
        kind: ReceiptKind,
    ) -> Result<(), SimError> {
        let link = self.open_link(org).ok_or(SimError::NoConnection)?;
        link.emit(ConnectionEvent::Receipt {
            message_ids: vec![message_id.to_owned()],
            kind,
        });
        Ok(())
    }

    /// Marks a number (digits) as on WhatsApp or not.
    pub fn set_on_whatsapp(&self, org: &OrgId, phone: &str, on_whatsapp: bool) {
        self.with_phone(org, |p| {
            if on_whatsapp {
                p.not_on_whatsapp.remove(phone);
            } else {
                p.not_on_whatsapp.insert(phone.to_owned());
            }
        });
    }

    /// Every delivery attempt the phone of `org` received, in order.
    pub fn sent(&self, org: &OrgId) -> Vec<SentRecord> {
        self.with_phone(org, |p| p.sent.clone())
    }

    fn start_qr_rotation(&self, link: &Arc<Link>, phone_for_code: Option<String>) {
        let timing = self.timing;
        let weak = Arc::downgrade(link);
        let task = tokio::spawn(async move {
            for i in 0..timing.qr_count {
                let Some(link) = weak.upgrade() else { return };
                let code = credentials::qr_payload();
                let timeout = if i == 0 {
                    timing.first_qr
                } else {
                    timing.next_qr
                };
                link.state.lock().unwrap().qr = Some(code.clone());
                link.emit(ConnectionEvent::QrCode { code, timeout });
                if i == 0 && phone_for_code.is_some() {
                    link.emit(ConnectionEvent::PairingCode {
                        code: credentials::pairing_code(),
                    });
                }
                drop(link);
                tokio::time::sleep(timeout).await;
            }
            if let Some(link) = weak.upgrade() {
                link.end_with(ConnectionEvent::QrExhausted);
            }
        });
        link.state.lock().unwrap().qr_task = Some(task);
    }
}

#[async_trait]
impl Connector for SimConnector {
    async fn connect(
        &self,
        request: ConnectRequest,
    ) -> Result<(Arc<dyn Connection>, EventStream), ConnectionError> {
        // Credentials that cannot be read fail the connect: never a new pairing
        // beside a session that is only unreadable for a moment.
        let (stored, link_id) = match &self.ledger {
            Some(ledger) => {
                let stored = ledger.credentials(&request.org).await?;
                (stored, Some(ledger.open(&request.org).await?))
            }
            None => (credentials::read(&request.dir)?, None),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let pairing = matches!(request.mode, StartMode::Pair { .. }) || stored.is_none();
        let link = Arc::new(Link {
            dir: request.dir.clone(),
            pairing,
            state: Mutex::new(LinkState {
                events: Some(tx),
                ..LinkState::default()
            }),
        });
        let network_down = self.with_phone(&request.org, |phone| {
            if phone.link.as_ref().is_some_and(|l| l.is_open()) {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            phone.link = Some(link.clone());
            phone.network_down
        });
        if network_down {
            link.end_with(ConnectionEvent::NetworkFailure {
                reason: "network unreachable".into(),
            });
        } else if pairing {
            let phone_for_code = match request.mode {
                StartMode::Pair { phone_for_code } => phone_for_code,
                StartMode::Resume => None,
            };
            self.start_qr_rotation(&link, phone_for_code);
        } else if let Some(creds) = stored {
            link.state.lock().unwrap().online_as = Some(creds.phone.clone());
            link.emit(ConnectionEvent::Connected { phone: creds.phone });
        }
        let conn = SimConnection {
            org: request.org,
            link,
            link_id,
            connector: self.clone(),
        };
        Ok((Arc::new(conn), rx))
    }

    fn has_credentials(&self, dir: &Path) -> Result<bool, ConnectionError> {
        credentials::read(dir).map(|c| c.is_some())
    }
}

#[cfg(test)]
mod tests;
