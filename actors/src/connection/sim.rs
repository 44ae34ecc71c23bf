//! A scriptable fake phone: the connection used by tests, benchmarks and `--sim`.
//!
//! It behaves like WhatsApp where the org actor can tell the difference: QR codes in
//! WhatsApp's shape that rotate and run out, pairing followed by a 515 restart, a
//! credentials file in the org's directory, message ids, and every CONTRACT §9 fault
//! on demand. A [`SimConnector`] is cheap to clone; every clone drives the same phones.
//!
//! It also watches the one rule a real store cannot survive: two open connections on
//! one org's store. [`SimConnector::overlaps`] counts them; tests assert it stays 0.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{
    ConnectRequest, Connection, ConnectionError, ConnectionEvent, Connector, EventStream, StartMode,
};
use crate::OrgId;

/// The file the fake phone keeps its credentials in, inside the org's directory.
pub const CREDENTIALS_FILE: &str = "sim-credentials.json";

/// How the fake phone's QR codes rotate (WhatsApp: 60 s, then 20 s each, 6 in all).
#[derive(Clone, Copy, Debug)]
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

/// A fault of CONTRACT §9.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    BadMac,
    StreamError { code: Option<u16> },
    RestartRequired,
    ServerBusy { code: Option<u16> },
    NetworkDown,
    NetworkUp,
    Replaced,
    LoggedOut { code: Option<u16> },
    TemporaryBan { seconds: Option<u16> },
    ClientOutdated,
    QrExhausted,
    SendFails,
}

impl Fault {
    /// Every fault name CONTRACT §9 lists.
    pub const NAMES: [&'static str; 12] = [
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
    ];

    /// Parses a CONTRACT §9 fault name; `code` is the optional numeric code (for
    /// `temporary_ban`, the ban's length in seconds).
    pub fn parse(name: &str, code: Option<u16>) -> Option<Self> {
        Some(match name {
            "bad_mac" => Self::BadMac,
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
            _ => return None,
        })
    }
}

/// A message the fake phone sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SentRecord {
    pub to: String,
    pub text: String,
    pub message_id: String,
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

#[derive(Serialize, Deserialize)]
struct StoredCredentials {
    phone: String,
    device_id: u32,
    noise_key: String,
    identity_key: String,
}

/// One fake phone's world: it outlives each connection.
#[derive(Default)]
struct Phone {
    network_down: bool,
    send_fails: bool,
    link: Option<Arc<Link>>,
    sent: Vec<SentRecord>,
}

/// One connection of one phone.
struct Link {
    dir: PathBuf,
    pairing: bool,
    state: Mutex<LinkState>,
}

#[derive(Default)]
struct LinkState {
    events: Option<mpsc::UnboundedSender<ConnectionEvent>>,
    qr: Option<String>,
    online_as: Option<String>,
    qr_task: Option<JoinHandle<()>>,
}

impl Link {
    fn emit(&self, event: ConnectionEvent) {
        if let Some(tx) = &self.state.lock().unwrap().events {
            let _ = tx.send(event);
        }
    }

    fn is_open(&self) -> bool {
        self.state.lock().unwrap().events.is_some()
    }

    /// Ends the connection: no event follows and the stream closes.
    fn close(&self) {
        let mut st = self.state.lock().unwrap();
        st.events = None;
        st.qr = None;
        st.online_as = None;
        if let Some(task) = st.qr_task.take() {
            task.abort();
        }
    }

    /// Emits a final event and closes.
    fn end_with(&self, event: ConnectionEvent) {
        self.emit(event);
        self.close();
    }
}

/// The fake phones of every organization; the [`Connector`] of `--sim`.
#[derive(Clone, Default)]
pub struct SimConnector {
    phones: Arc<Mutex<HashMap<OrgId, Phone>>>,
    timing: SimTiming,
    overlaps: Arc<AtomicU64>,
}

impl SimConnector {
    pub fn new(timing: SimTiming) -> Self {
        Self {
            timing,
            ..Self::default()
        }
    }

    /// How many times a connection was opened on a store that another open
    /// connection still held. Anything but 0 is a bug in the caller.
    pub fn overlaps(&self) -> u64 {
        self.overlaps.load(Ordering::SeqCst)
    }

    /// The raw QR payload the phone currently shows for `org`.
    pub fn current_qr(&self, org: &OrgId) -> Option<String> {
        let phones = self.phones.lock().unwrap();
        let link = phones.get(org)?.link.as_ref()?;
        link.state.lock().unwrap().qr.clone()
    }

    /// The phone scans the QR on screen and pairs as `phone` (digits). Like WhatsApp,
    /// the connection then reports `Paired`, asks for a restart (515) and closes.
    pub fn scan(&self, org: &OrgId, phone: &str) -> Result<(), SimError> {
        let link = {
            let phones = self.phones.lock().unwrap();
            phones
                .get(org)
                .and_then(|p| p.link.clone())
                .ok_or(SimError::NoQrShown)?
        };
        if !link.pairing || link.state.lock().unwrap().qr.is_none() {
            return Err(SimError::NoQrShown);
        }
        write_credentials(&link.dir, phone).map_err(|e| SimError::Store(e.to_string()))?;
        link.emit(ConnectionEvent::Paired {
            phone: phone.to_owned(),
        });
        link.end_with(ConnectionEvent::RestartRequired);
        Ok(())
    }

    /// Makes the phone report a CONTRACT §9 fault.
    pub fn inject(&self, org: &OrgId, fault: Fault) -> Result<(), SimError> {
        use ConnectionEvent as E;
        let mut phones = self.phones.lock().unwrap();
        let phone = phones.entry(org.clone()).or_default();
        match fault {
            Fault::NetworkUp => {
                phone.network_down = false;
                return Ok(());
            }
            Fault::SendFails => {
                phone.send_fails = true;
                return Ok(());
            }
            Fault::NetworkDown => {
                phone.network_down = true;
                if let Some(link) = phone.link.as_ref().filter(|l| l.is_open()) {
                    link.end_with(E::NetworkFailure {
                        reason: "network unreachable".into(),
                    });
                }
                return Ok(());
            }
            _ => {}
        }
        let link = phone
            .link
            .clone()
            .filter(|l| l.is_open())
            .ok_or(SimError::NoConnection)?;
        drop(phones);
        match fault {
            Fault::BadMac => link.emit(E::Undecryptable {
                sender: "573000000000@s.whatsapp.net".into(),
                reason: "Bad MAC".into(),
            }),
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
            Fault::NetworkUp | Fault::NetworkDown | Fault::SendFails => unreachable!(),
        }
        Ok(())
    }

    /// Every message the phone of `org` sent, in order.
    pub fn sent(&self, org: &OrgId) -> Vec<SentRecord> {
        self.phones
            .lock()
            .unwrap()
            .get(org)
            .map(|p| p.sent.clone())
            .unwrap_or_default()
    }

    fn start_qr_rotation(&self, link: &Arc<Link>, phone_for_code: Option<String>) {
        let timing = self.timing;
        let weak = Arc::downgrade(link);
        let task = tokio::spawn(async move {
            for i in 0..timing.qr_count {
                let Some(link) = weak.upgrade() else { return };
                let code = qr_payload();
                let timeout = if i == 0 {
                    timing.first_qr
                } else {
                    timing.next_qr
                };
                link.state.lock().unwrap().qr = Some(code.clone());
                link.emit(ConnectionEvent::QrCode { code, timeout });
                if i == 0
                    && let Some(phone) = &phone_for_code
                {
                    link.emit(ConnectionEvent::PairingCode {
                        code: pairing_code(phone),
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
        let (tx, rx) = mpsc::unbounded_channel();
        let stored = read_credentials(&request.dir);
        let pairing = matches!(request.mode, StartMode::Pair { .. }) || stored.is_none();
        let link = Arc::new(Link {
            dir: request.dir.clone(),
            pairing,
            state: Mutex::new(LinkState {
                events: Some(tx),
                ..LinkState::default()
            }),
        });
        let network_down = {
            let mut phones = self.phones.lock().unwrap();
            let phone = phones.entry(request.org.clone()).or_default();
            if phone.link.as_ref().is_some_and(|l| l.is_open()) {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            phone.link = Some(link.clone());
            phone.network_down
        };
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
            connector: self.clone(),
        };
        Ok((Arc::new(conn), rx))
    }

    fn has_credentials(&self, dir: &Path) -> Result<bool, ConnectionError> {
        match std::fs::read(dir.join(CREDENTIALS_FILE)) {
            Ok(bytes) => serde_json::from_slice::<StoredCredentials>(&bytes)
                .map(|_| true)
                .map_err(|e| ConnectionError::StoreCorrupt(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ConnectionError::StoreUnavailable(e.to_string())),
        }
    }
}

/// One open connection of a fake phone.
struct SimConnection {
    org: OrgId,
    link: Arc<Link>,
    connector: SimConnector,
}

#[async_trait]
impl Connection for SimConnection {
    async fn send_text(
        &self,
        phone: &str,
        text: &str,
        message_id: &str,
    ) -> Result<(), ConnectionError> {
        if self.link.state.lock().unwrap().online_as.is_none() {
            return Err(ConnectionError::NotConnected);
        }
        let mut phones = self.connector.phones.lock().unwrap();
        let state = phones.entry(self.org.clone()).or_default();
        if std::mem::take(&mut state.send_fails) {
            return Err(ConnectionError::Failed(
                "the server did not accept the message".into(),
            ));
        }
        state.sent.push(SentRecord {
            to: phone.to_owned(),
            text: text.to_owned(),
            message_id: message_id.to_owned(),
        });
        drop(phones);
        // The fake phone's server acknowledges every message at once.
        self.link.emit(ConnectionEvent::ServerAck {
            message_id: message_id.to_owned(),
            error: None,
        });
        Ok(())
    }

    async fn is_on_whatsapp(&self, phone: &str) -> Result<bool, ConnectionError> {
        Ok(phone.len() >= 8 && phone.bytes().all(|b| b.is_ascii_digit()))
    }

    async fn logout(&self) -> Result<(), ConnectionError> {
        self.link.close();
        Ok(())
    }

    async fn shutdown(&self) {
        self.link.close();
    }
}

fn read_credentials(dir: &Path) -> Option<StoredCredentials> {
    let bytes = std::fs::read(dir.join(CREDENTIALS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_credentials(dir: &Path, phone: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut rng = rand::rng();
    let creds = StoredCredentials {
        phone: phone.to_owned(),
        device_id: rng.random_range(1..100),
        noise_key: B64.encode(rng.random::<[u8; 32]>()),
        identity_key: B64.encode(rng.random::<[u8; 32]>()),
    };
    let tmp = dir.join(format!("{CREDENTIALS_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec(&creds).expect("credentials serialize"))?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(CREDENTIALS_FILE))
}

/// A QR payload in WhatsApp's shape: `ref,noise public key,identity key,adv secret`.
fn qr_payload() -> String {
    let mut rng = rand::rng();
    let reference: [u8; 24] = rng.random();
    format!(
        "2@{},{},{},{}",
        B64.encode(reference),
        B64.encode(rng.random::<[u8; 32]>()),
        B64.encode(rng.random::<[u8; 32]>()),
        B64.encode(rng.random::<[u8; 32]>()),
    )
}

/// An 8-character pairing code like WhatsApp's (no look-alike characters).
fn pairing_code(_phone: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str) -> OrgId {
        OrgId::parse(id).unwrap()
    }

    async fn open(
        sim: &SimConnector,
        dir: &Path,
        mode: StartMode,
    ) -> (Arc<dyn Connection>, EventStream) {
        sim.connect(ConnectRequest {
            org: org("1"),
            dir: dir.to_owned(),
            mode,
        })
        .await
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn qr_codes_rotate_then_run_out() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimConnector::new(SimTiming {
            first_qr: Duration::from_secs(60),
            next_qr: Duration::from_secs(20),
            qr_count: 3,
        });
        let (_conn, mut events) = open(
            &sim,
            dir.path(),
            StartMode::Pair {
                phone_for_code: None,
            },
        )
        .await;
        let mut codes = Vec::new();
        while let Some(event) = events.recv().await {
            match event {
                ConnectionEvent::QrCode { code, .. } => {
                    assert_eq!(code.split(',').count(), 4, "{code}");
                    codes.push(code);
                }
                ConnectionEvent::QrExhausted => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(codes.len(), 3);
        assert_ne!(codes[0], codes[1]);
        assert!(
            events.recv().await.is_none(),
            "the stream ends after exhaustion"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn scan_pairs_writes_credentials_and_asks_for_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimConnector::default();
        let (_conn, mut events) = open(
            &sim,
            dir.path(),
            StartMode::Pair {
                phone_for_code: Some("573001234567".into()),
            },
        )
        .await;
        assert!(matches!(
            events.recv().await,
            Some(ConnectionEvent::QrCode { .. })
        ));
        assert!(
            matches!(events.recv().await, Some(ConnectionEvent::PairingCode { code }) if code.len() == 8)
        );
        sim.scan(&org("1"), "573001234567").unwrap();
        assert_eq!(
            events.recv().await,
            Some(ConnectionEvent::Paired {
                phone: "573001234567".into()
            })
        );
        assert_eq!(events.recv().await, Some(ConnectionEvent::RestartRequired));
        assert_eq!(events.recv().await, None);
        assert_eq!(sim.has_credentials(dir.path()), Ok(true));

        let (conn, mut events) = open(&sim, dir.path(), StartMode::Resume).await;
        assert_eq!(
            events.recv().await,
            Some(ConnectionEvent::Connected {
                phone: "573001234567".into()
            })
        );
        conn.send_text("573009999999", "hola", "3EB0AB")
            .await
            .unwrap();
        assert_eq!(
            events.recv().await,
            Some(ConnectionEvent::ServerAck {
                message_id: "3EB0AB".into(),
                error: None
            })
        );
        assert_eq!(
            sim.sent(&org("1")),
            vec![SentRecord {
                to: "573009999999".into(),
                text: "hola".into(),
                message_id: "3EB0AB".into()
            }]
        );
        assert_eq!(sim.overlaps(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_open_connection_on_one_store_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimConnector::default();
        let (first, _e1) = open(
            &sim,
            dir.path(),
            StartMode::Pair {
                phone_for_code: None,
            },
        )
        .await;
        let (_second, _e2) = open(
            &sim,
            dir.path(),
            StartMode::Pair {
                phone_for_code: None,
            },
        )
        .await;
        assert_eq!(sim.overlaps(), 1);
        first.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn faults_need_a_connection_and_network_down_fails_connects() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimConnector::default();
        assert_eq!(
            sim.inject(&org("1"), Fault::BadMac),
            Err(SimError::NoConnection)
        );
        sim.inject(&org("1"), Fault::NetworkDown).unwrap();
        let (_c, mut events) = open(&sim, dir.path(), StartMode::Resume).await;
        assert!(matches!(
            events.recv().await,
            Some(ConnectionEvent::NetworkFailure { .. })
        ));
        assert_eq!(events.recv().await, None);
        sim.inject(&org("1"), Fault::NetworkUp).unwrap();
        let (_c, mut events) = open(&sim, dir.path(), StartMode::Resume).await;
        assert!(matches!(
            events.recv().await,
            Some(ConnectionEvent::QrCode { .. })
        ));
    }

    #[test]
    fn every_contract_fault_name_parses() {
        for name in Fault::NAMES {
            assert!(Fault::parse(name, None).is_some(), "{name}");
        }
        assert_eq!(Fault::parse("melt", None), None);
        assert_eq!(
            Fault::parse("stream_error", Some(515)),
            Some(Fault::StreamError { code: Some(515) })
        );
    }
}
