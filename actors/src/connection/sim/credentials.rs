//! What the fake phone keeps on disk and shows on screen, in WhatsApp's shapes.

use std::io;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::connection::ConnectionError;

/// The file the fake phone keeps its credentials in, inside the org's directory.
pub const CREDENTIALS_FILE: &str = "sim-credentials.json";

/// What the fake phone's pairing leaves behind: the linked number and keys in
/// WhatsApp's shapes (random, never used for anything).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimCredentials {
    pub phone: String,
    pub device_id: u32,
    pub noise_key: String,
    pub identity_key: String,
}

impl SimCredentials {
    /// New credentials of a device linked to `phone` (digits).
    pub fn generate(phone: &str) -> Self {
        let mut rng = rand::rng();
        Self {
            phone: phone.to_owned(),
            device_id: rng.random_range(1..100),
            noise_key: B64.encode(rng.random::<[u8; 32]>()),
            identity_key: B64.encode(rng.random::<[u8; 32]>()),
        }
    }
}

/// The credentials in `dir`: `None` when there are none, an error when they cannot
/// be read (never taken for "none": that would pair a paired org anew).
pub(super) fn read(dir: &Path) -> Result<Option<SimCredentials>, ConnectionError> {
    match std::fs::read(dir.join(CREDENTIALS_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ConnectionError::StoreCorrupt(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConnectionError::StoreUnavailable(e.to_string())),
    }
}

/// Writes new credentials for `phone`, atomically; refuses to replace stored ones
/// (a pairing never overwrites a session: it is backed up and wiped first).
pub(super) fn write(dir: &Path, phone: &str) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let target = dir.join(CREDENTIALS_FILE);
    if target.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "credentials are already stored here",
        ));
    }
    let creds = SimCredentials::generate(phone);
    let tmp = dir.join(format!("{CREDENTIALS_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&serde_json::to_vec(&creds).expect("credentials serialize"))?;
    file.sync_all()?;
    std::fs::rename(&tmp, target)
}

/// A QR payload in WhatsApp's shape: `ref,noise public key,identity key,adv secret`.
pub(super) fn qr_payload() -> String {
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
pub(super) fn pairing_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A random sender for an undecryptable message: a Colombian mobile number.
pub(super) fn random_sender() -> String {
    format!("57300{:07}", rand::rng().random_range(0..10_000_000u32))
}
