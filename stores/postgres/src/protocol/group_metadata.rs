//! Serialized group metadata, kept so a group query can send a participant hash and
//! get "not modified" back. Opaque to the store.

use wacore::store::error::Result;

use crate::PostgresStore;

pub(super) async fn get(store: &PostgresStore, group_jid: &str) -> Result<Option<Vec<u8>>> {
    let row = store
        .read_opt(
            "SELECT info FROM wa_group_metadata WHERE store_id = $1 AND group_jid = $2",
            &[&store.id(), &group_jid],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

pub(super) async fn put(store: &PostgresStore, group_jid: &str, blob: &[u8]) -> Result<()> {
    store
        .write_one(
            "INSERT INTO wa_group_metadata (store_id, group_jid, info, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (store_id, group_jid)
             DO UPDATE SET info = EXCLUDED.info, updated_at = EXCLUDED.updated_at",
            &[&store.id(), &group_jid, &blob, &wacore::time::now_secs()],
        )
        .await
        .map(drop)
}

pub(super) async fn delete(store: &PostgresStore, group_jid: &str) -> Result<()> {
    store
        .write_one(
            "DELETE FROM wa_group_metadata WHERE store_id = $1 AND group_jid = $2",
            &[&store.id(), &group_jid],
        )
        .await
        .map(drop)
}
