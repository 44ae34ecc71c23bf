//! `DeviceStore`: this store's own device (keys, account, counters), one row.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use wacore::libsignal::protocol::{KeyPair, PrivateKey, PublicKey};
use wacore::stats::StorageResourceReport;
use wacore::store::Device;
use wacore::store::device::{CachedServerCertChain, DEVICE_PROPS, account_serde};
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::DeviceStore;

use crate::PostgresStore;
use crate::error::encode;
use crate::signal::u32_column;

/// The columns a `Device` is saved to, in the order of [`DeviceRow::params`] and
/// read back by [`device_from_row`].
const COLUMNS: [&str; 26] = [
    "pn",
    "lid",
    "registration_id",
    "noise_key",
    "identity_key",
    "signed_pre_key",
    "signed_pre_key_id",
    "signed_pre_key_signature",
    "adv_secret_key",
    "account",
    "push_name",
    "app_version_primary",
    "app_version_secondary",
    "app_version_tertiary",
    "app_version_last_fetched_ms",
    "edge_routing_info",
    "props_hash",
    "next_pre_key_id",
    "first_unupload_pre_key_id",
    "server_has_prekeys",
    "nct_salt",
    "server_cert_chain",
    "login_counter",
    "lid_migrated",
    "last_signed_pre_key_rotation_ms",
    "read_receipts_disabled",
];

/// `INSERT` of a new row (fails if the store has one: `create` twice is an error,
/// as upstream).
static INSERT: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (2..=COLUMNS.len() + 1).map(|i| format!("${i}")).collect();
    format!(
        "INSERT INTO wa_device (store_id, {}) VALUES ($1, {}) RETURNING id",
        COLUMNS.join(", "),
        placeholders.join(", ")
    )
});

/// `INSERT` or overwrite every column (`save` on a store without a row creates it).
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    let set: Vec<String> = COLUMNS
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    format!(
        "{} ON CONFLICT (store_id) DO UPDATE SET {}, updated_at = now()",
        INSERT.trim_end_matches(" RETURNING id"),
        set.join(", ")
    )
});

static SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM wa_device WHERE store_id = $1",
        COLUMNS.join(", ")
    )
});

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn save(&self, device: &Device) -> Result<()> {
        let row = DeviceRow::new(device)?;
        let id = self.id();
        self.write_one(&UPSERT, &row.params(&id)).await.map(drop)
    }

    async fn load(&self) -> Result<Option<Device>> {
        let row = self.read_opt(&SELECT, &[&self.id()]).await?;
        row.map(|row| device_from_row(&row)).transpose()
    }

    async fn exists(&self) -> Result<bool> {
        let row = self
            .read_opt("SELECT 1 FROM wa_device WHERE store_id = $1", &[&self.id()])
            .await?;
        Ok(row.is_some())
    }

    /// Inserts a freshly generated device and returns its row's `id`.
    async fn create(&self) -> Result<i32> {
        let device = Device::new();
        let row = DeviceRow::new(&device)?;
        let id = self.id();
        let rows = self.write_returning(&INSERT, &row.params(&id)).await?;
        rows.first()
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::Validation("INSERT returned no id".into()))
    }

    /// Nothing lives in this process: the data is in the database.
    async fn resource_report(&self) -> StorageResourceReport {
        StorageResourceReport {
            memory_bytes: Some(0),
            ..StorageResourceReport::default()
        }
    }
}

/// A `Device` encoded for its columns.
struct DeviceRow<'d> {
    device: &'d Device,
    pn: Option<String>,
    lid: Option<String>,
    noise_key: Vec<u8>,
    identity_key: Vec<u8>,
    signed_pre_key: Vec<u8>,
    signed_pre_key_signature: &'d [u8],
    adv_secret_key: &'d [u8],
    account: Option<Vec<u8>>,
    server_cert_chain: Option<serde_json::Value>,
    registration_id: i64,
    signed_pre_key_id: i64,
    app_version_primary: i64,
    app_version_secondary: i64,
    app_version_tertiary: i64,
    next_pre_key_id: i64,
    first_unupload_pre_key_id: i64,
}

impl<'d> DeviceRow<'d> {
    fn new(device: &'d Device) -> Result<Self> {
        Ok(Self {
            device,
            pn: device.pn.as_ref().map(ToString::to_string),
            lid: device.lid.as_ref().map(ToString::to_string),
            noise_key: key_pair_bytes(&device.noise_key),
            identity_key: key_pair_bytes(&device.identity_key),
            signed_pre_key: key_pair_bytes(&device.signed_pre_key),
            signed_pre_key_signature: &device.signed_pre_key_signature,
            adv_secret_key: &device.adv_secret_key,
            account: device.account.as_deref().map(account_serde::to_bytes),
            server_cert_chain: device
                .server_cert_chain
                .as_ref()
                .map(serde_json::to_value)
                .transpose()
                .map_err(encode)?,
            registration_id: device.registration_id.into(),
            signed_pre_key_id: device.signed_pre_key_id.into(),
            app_version_primary: device.app_version_primary.into(),
            app_version_secondary: device.app_version_secondary.into(),
            app_version_tertiary: device.app_version_tertiary.into(),
            next_pre_key_id: device.next_pre_key_id.into(),
            first_unupload_pre_key_id: device.first_unupload_pre_key_id.into(),
        })
    }

    /// `store_id`, then the values of [`COLUMNS`] in order.
    fn params<'a>(&'a self, store_id: &'a &'a str) -> Vec<&'a (dyn ToSql + Sync)> {
        let d = self.device;
        vec![
            store_id,
            &self.pn,
            &self.lid,
            &self.registration_id,
            &self.noise_key,
            &self.identity_key,
            &self.signed_pre_key,
            &self.signed_pre_key_id,
            &self.signed_pre_key_signature,
            &self.adv_secret_key,
            &self.account,
            &d.push_name,
            &self.app_version_primary,
            &self.app_version_secondary,
            &self.app_version_tertiary,
            &d.app_version_last_fetched_ms,
            &d.edge_routing_info,
            &d.props_hash,
            &self.next_pre_key_id,
            &self.first_unupload_pre_key_id,
            &d.server_has_prekeys,
            &d.nct_salt,
            &self.server_cert_chain,
            &d.login_counter,
            &d.lid_migrated,
            &d.last_signed_pre_key_rotation_ms,
            &d.read_receipts_disabled,
        ]
    }
}

fn device_from_row(row: &Row) -> Result<Device> {
    let jid = |i: usize| {
        row.get::<_, Option<String>>(i)
            .and_then(|jid| jid.parse().ok())
    };
    let signature: &[u8] = row.get(7);
    let adv_secret: &[u8] = row.get(8);
    Ok(Device {
        pn: jid(0),
        lid: jid(1),
        registration_id: u32_column(row.get(2))?,
        noise_key: key_pair(row.get(3))?,
        identity_key: key_pair(row.get(4))?,
        signed_pre_key: key_pair(row.get(5))?,
        signed_pre_key_id: u32_column(row.get(6))?,
        signed_pre_key_signature: signature.try_into().map_err(|_| {
            StoreError::Validation("signed_pre_key_signature is not 64 bytes".into())
        })?,
        adv_secret_key: adv_secret
            .try_into()
            .map_err(|_| StoreError::Validation("adv_secret_key is not 32 bytes".into()))?,
        account: row
            .get::<_, Option<&[u8]>>(9)
            .map(|bytes| {
                account_serde::from_bytes(bytes)
                    .map(Arc::new)
                    .map_err(|e| StoreError::Serialization(Box::new(e)))
            })
            .transpose()?,
        push_name: row.get(10),
        app_version_primary: u32_column(row.get(11))?,
        app_version_secondary: u32_column(row.get(12))?,
        // As upstream: an out-of-range tertiary reads as 0 (re-fetched later).
        app_version_tertiary: u32::try_from(row.get::<_, i64>(13)).unwrap_or(0),
        app_version_last_fetched_ms: row.get(14),
        device_props: Arc::new(DEVICE_PROPS.clone()),
        client_profile: wacore::client_profile::ClientProfile::web(),
        edge_routing_info: row.get(15),
        props_hash: row.get(16),
        next_pre_key_id: u32_column(row.get(17))?,
        first_unupload_pre_key_id: u32_column(row.get(18))?,
        server_has_prekeys: row.get(19),
        nct_salt: row.get(20),
        nct_salt_sync_seen: false,
        server_cert_chain: cert_chain(row.get(21)),
        login_counter: row.get(22),
        lid_migrated: row.get(23),
        last_signed_pre_key_rotation_ms: row.get(24),
        read_receipts_disabled: row.get(25),
    })
}

/// The cached server certificate only saves a Noise XX round trip: an unreadable
/// one is dropped (the next connect uses XX and caches a new one), as upstream.
fn cert_chain(value: Option<serde_json::Value>) -> Option<CachedServerCertChain> {
    let value = value?;
    match serde_json::from_value(value) {
        Ok(chain) => Some(chain),
        Err(error) => {
            tracing::warn!(%error, "the cached server certificate is unreadable; dropping it");
            None
        }
    }
}

/// 32 private bytes, then 32 public bytes (upstream's layout).
fn key_pair_bytes(pair: &KeyPair) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(64);
    bytes.extend_from_slice(pair.private_key.serialize());
    bytes.extend_from_slice(pair.public_key.public_key_bytes());
    bytes
}

fn key_pair(bytes: Vec<u8>) -> Result<KeyPair> {
    if bytes.len() != 64 {
        return Err(StoreError::Validation(format!(
            "a key pair has {} bytes, not 64",
            bytes.len()
        )));
    }
    let private = PrivateKey::deserialize(&bytes[..32]).map_err(encode)?;
    let public = PublicKey::from_djb_public_key_bytes(&bytes[32..]).map_err(encode)?;
    Ok(KeyPair::new(public, private))
}
