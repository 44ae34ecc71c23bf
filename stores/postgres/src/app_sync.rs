//! `AppSyncStore`: app-state sync keys, collection versions (ltHash state) and the
//! mutation MACs behind them.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio_postgres::Row;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::Result;
use wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use crate::PostgresStore;
use crate::batch::last_wins;

/// An app-state master key is 32 bytes. Upstream reads any other length as absent
/// (an old or corrupt row), so the key is re-requested rather than used.
const SYNC_KEY_LEN: i32 = 32;
/// Length of a `HashState` ltHash.
const HASH_LEN: usize = 128;

#[async_trait]
impl AppSyncStore for PostgresStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        let row = self
            .read_opt(
                "SELECT key_data, fingerprint, timestamp FROM wa_app_state_keys
                 WHERE store_id = $1 AND key_id = $2",
                &[&self.id(), &key_id],
            )
            .await?;
        Ok(row.and_then(|row| {
            let key = AppStateSyncKey {
                key_data: row.get(0),
                fingerprint: row.get(1),
                timestamp: row.get(2),
            };
            if key.key_data.len() == SYNC_KEY_LEN as usize {
                Some(key)
            } else {
                tracing::warn!(
                    len = key.key_data.len(),
                    "an app-state sync key is not 32 bytes; treating it as absent"
                );
                None
            }
        }))
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.write_one(
            "INSERT INTO wa_app_state_keys (store_id, key_id, key_data, fingerprint, timestamp)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (store_id, key_id) DO UPDATE SET key_data = EXCLUDED.key_data,
                 fingerprint = EXCLUDED.fingerprint, timestamp = EXCLUDED.timestamp",
            &[
                &self.id(),
                &key_id,
                &key.key_data,
                &key.fingerprint,
                &key.timestamp,
            ],
        )
        .await
        .map(drop)
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        let row = self
            .read_opt(
                "SELECT version, hash, index_value_map, mac_mismatch_fatal
                 FROM wa_app_state_versions WHERE store_id = $1 AND name = $2",
                &[&self.id(), &name],
            )
            .await?;
        // As upstream: an unreadable state resets the collection, which then
        // re-syncs from version 0.
        Ok(row.and_then(hash_state).unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        let index_value_map: serde_json::Map<String, serde_json::Value> = state
            .index_value_map
            .iter()
            .map(|(index, value)| (index.clone(), BASE64.encode(value).into()))
            .collect();
        self.write_one(
            "INSERT INTO wa_app_state_versions
                 (store_id, name, version, hash, index_value_map, mac_mismatch_fatal)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (store_id, name) DO UPDATE SET version = EXCLUDED.version,
                 hash = EXCLUDED.hash, index_value_map = EXCLUDED.index_value_map,
                 mac_mismatch_fatal = EXCLUDED.mac_mismatch_fatal",
            &[
                &self.id(),
                &name,
                // u64 in a BIGINT: bit-cast both ways, so every value round-trips.
                &(state.version as i64),
                &&state.hash[..],
                &serde_json::Value::Object(index_value_map),
                &state.mac_mismatch_fatal,
            ],
        )
        .await
        .map(drop)
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let rows = last_wins(mutations, |m| m.index_mac.clone());
        if rows.is_empty() {
            return Ok(());
        }
        let index_macs: Vec<&[u8]> = rows.iter().map(|m| &m.index_mac[..]).collect();
        let value_macs: Vec<&[u8]> = rows.iter().map(|m| &m.value_mac[..]).collect();
        self.write_one(
            "INSERT INTO wa_app_state_mutation_macs (store_id, name, version, index_mac, value_mac)
             SELECT $1, $2, $3, * FROM UNNEST($4::bytea[], $5::bytea[])
             ON CONFLICT (store_id, name, index_mac)
             DO UPDATE SET version = EXCLUDED.version, value_mac = EXCLUDED.value_mac",
            &[
                &self.id(),
                &name,
                &(version as i64),
                &index_macs,
                &value_macs,
            ],
        )
        .await
        .map(drop)
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        let row = self
            .read_opt(
                "SELECT value_mac FROM wa_app_state_mutation_macs
                 WHERE store_id = $1 AND name = $2 AND index_mac = $3",
                &[&self.id(), &name, &index_mac],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        if index_macs.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<&[u8]> = index_macs.iter().map(|m| &m[..]).collect();
        let rows = self
            .read(
                "SELECT index_mac, value_mac FROM wa_app_state_mutation_macs
                 WHERE store_id = $1 AND name = $2 AND index_mac = ANY($3)",
                &[&self.id(), &name, &wanted],
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let index_mac: Vec<u8> = row.get(0);
                Some((<[u8; 32]>::try_from(index_mac).ok()?, row.get(1)))
            })
            .collect())
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        if index_macs.is_empty() {
            return Ok(());
        }
        self.write_one(
            "DELETE FROM wa_app_state_mutation_macs
             WHERE store_id = $1 AND name = $2 AND index_mac = ANY($3)",
            &[&self.id(), &name, &index_macs],
        )
        .await
        .map(drop)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.write_one(
            "DELETE FROM wa_app_state_mutation_macs WHERE store_id = $1 AND name = $2",
            &[&self.id(), &name],
        )
        .await
        .map(drop)
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        // Byte order of the id, skipping keys `get_sync_key` would not return, so
        // outbound patches use the newest key that is usable (as upstream).
        let row = self
            .read_opt(
                "SELECT key_id FROM wa_app_state_keys
                 WHERE store_id = $1 AND length(key_data) = $2
                 ORDER BY key_id DESC LIMIT 1",
                &[&self.id(), &SYNC_KEY_LEN],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }
}

/// A stored `HashState`, or `None` (with a warning) when it cannot be read back.
fn hash_state(row: Row) -> Option<HashState> {
    let hash: Vec<u8> = row.get(1);
    let Ok(hash) = <[u8; HASH_LEN]>::try_from(hash.as_slice()) else {
        tracing::warn!(
            len = hash.len(),
            "an app-state hash is not 128 bytes; the collection re-syncs from 0"
        );
        return None;
    };
    let map: serde_json::Value = row.get(2);
    let index_value_map = map
        .as_object()?
        .iter()
        .map(|(index, value)| Some((index.clone(), BASE64.decode(value.as_str()?).ok()?)))
        .collect::<Option<HashMap<_, _>>>();
    let Some(index_value_map) = index_value_map else {
        tracing::warn!("an app-state index map is unreadable; the collection re-syncs from 0");
        return None;
    };
    Some(HashState {
        version: row.get::<_, i64>(0) as u64,
        hash,
        index_value_map,
        mac_mismatch_fatal: row.get(3),
    })
}
