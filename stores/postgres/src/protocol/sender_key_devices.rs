//! Which devices of a group hold our current sender key (WA Web's
//! `participant.senderKey` map): `true` after SKDM went out, `false` when a device
//! needs a fresh one.

use wacore::store::error::Result;

use crate::PostgresStore;
use crate::batch::last_wins;

pub(super) async fn get(store: &PostgresStore, group_jid: &str) -> Result<Vec<(String, bool)>> {
    let rows = store
        .read(
            "SELECT device_jid, has_key FROM wa_sender_key_devices
             WHERE store_id = $1 AND group_jid = $2 ORDER BY device_jid",
            &[&store.id(), &group_jid],
        )
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

pub(super) async fn set(
    store: &PostgresStore,
    group_jid: &str,
    entries: &[(&str, bool)],
) -> Result<()> {
    let rows = last_wins(entries, |(device_jid, _)| *device_jid);
    if rows.is_empty() {
        return Ok(());
    }
    let device_jids: Vec<&str> = rows.iter().map(|(jid, _)| *jid).collect();
    let has_key: Vec<bool> = rows.iter().map(|(_, has)| *has).collect();
    store
        .write_one(
            "INSERT INTO wa_sender_key_devices (store_id, group_jid, device_jid, has_key, updated_at)
             SELECT $1, $2, device_jid, has_key, $5
             FROM UNNEST($3::text[], $4::bool[]) AS d(device_jid, has_key)
             ON CONFLICT (store_id, group_jid, device_jid)
             DO UPDATE SET has_key = EXCLUDED.has_key, updated_at = EXCLUDED.updated_at",
            &[
                &store.id(),
                &group_jid,
                &device_jids,
                &has_key,
                &wacore::time::now_secs(),
            ],
        )
        .await
        .map(drop)
}

pub(super) async fn clear_group(store: &PostgresStore, group_jid: &str) -> Result<()> {
    store
        .write_one(
            "DELETE FROM wa_sender_key_devices WHERE store_id = $1 AND group_jid = $2",
            &[&store.id(), &group_jid],
        )
        .await
        .map(drop)
}

/// Forgets the devices in every group.
pub(super) async fn delete_devices(store: &PostgresStore, device_jids: &[&str]) -> Result<()> {
    if device_jids.is_empty() {
        return Ok(());
    }
    store
        .write_one(
            "DELETE FROM wa_sender_key_devices WHERE store_id = $1 AND device_jid = ANY($2)",
            &[&store.id(), &device_jids],
        )
        .await
        .map(drop)
}

pub(super) async fn clear_all(store: &PostgresStore) -> Result<()> {
    store
        .write_one(
            "DELETE FROM wa_sender_key_devices WHERE store_id = $1",
            &[&store.id()],
        )
        .await
        .map(drop)
}
