//! Known devices per user (WA Web's `DeviceListRecord`), from usync answers.

use wacore::store::error::{Result, StoreError};
use wacore::store::traits::{DeviceInfo, DeviceListRecord};

use crate::PostgresStore;
use crate::batch::coalesce;
use crate::error::encode;

/// Upserts whole records; a user repeated in the batch ends as its last record.
pub(super) async fn put(store: &PostgresStore, records: Vec<DeviceListRecord>) -> Result<()> {
    let records = coalesce(records, |r| r.user.clone(), |kept, later| *kept = later);
    if records.is_empty() {
        return Ok(());
    }
    let users: Vec<&str> = records.iter().map(|r| r.user.as_str()).collect();
    let devices = records
        .iter()
        .map(|r| serde_json::to_value(&r.devices).map_err(encode))
        .collect::<Result<Vec<serde_json::Value>>>()?;
    let timestamps: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
    let phashes: Vec<Option<&str>> = records.iter().map(|r| r.phash.as_deref()).collect();
    let raw_ids: Vec<Option<i64>> = records.iter().map(|r| r.raw_id.map(i64::from)).collect();
    store
        .write_one(
            "INSERT INTO wa_device_registry
                 (store_id, user_id, devices, timestamp, phash, raw_id, updated_at)
             SELECT $1, user_id, devices, timestamp, phash, raw_id, $7
             FROM UNNEST($2::text[], $3::jsonb[], $4::bigint[], $5::text[], $6::bigint[])
                 AS r(user_id, devices, timestamp, phash, raw_id)
             ON CONFLICT (store_id, user_id) DO UPDATE SET devices = EXCLUDED.devices,
                 timestamp = EXCLUDED.timestamp, phash = EXCLUDED.phash,
                 raw_id = EXCLUDED.raw_id, updated_at = EXCLUDED.updated_at",
            &[
                &store.id(),
                &users,
                &devices,
                &timestamps,
                &phashes,
                &raw_ids,
                &wacore::time::now_secs(),
            ],
        )
        .await
        .map(drop)
}

pub(super) async fn get(store: &PostgresStore, user: &str) -> Result<Option<DeviceListRecord>> {
    let row = store
        .read_opt(
            "SELECT user_id, devices, timestamp, phash, raw_id FROM wa_device_registry
             WHERE store_id = $1 AND user_id = $2",
            &[&store.id(), &user],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let devices: Vec<DeviceInfo> =
        serde_json::from_value(row.get(1)).map_err(|e| StoreError::Serialization(Box::new(e)))?;
    let raw_id = row
        .get::<_, Option<i64>>(4)
        .map(crate::signal::u32_column)
        .transpose()?;
    Ok(Some(DeviceListRecord {
        user: row.get(0),
        devices,
        timestamp: row.get(2),
        phash: row.get(3),
        raw_id,
    }))
}

pub(super) async fn delete(store: &PostgresStore, user: &str) -> Result<()> {
    store
        .write_one(
            "DELETE FROM wa_device_registry WHERE store_id = $1 AND user_id = $2",
            &[&store.id(), &user],
        )
        .await
        .map(drop)
}
