//! Base keys saved during retry handling, to tell whether a sender regenerated its
//! session after our retry receipt (WA Web's collision detection).

use wacore::store::error::Result;

use crate::PostgresStore;

pub(super) async fn save(
    store: &PostgresStore,
    address: &str,
    message_id: &str,
    base_key: &[u8],
) -> Result<()> {
    store
        .write_one(
            "INSERT INTO wa_base_keys (store_id, address, message_id, base_key, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (store_id, address, message_id) DO UPDATE SET base_key = EXCLUDED.base_key",
            &[
                &store.id(),
                &address,
                &message_id,
                &base_key,
                &wacore::time::now_secs(),
            ],
        )
        .await
        .map(drop)
}

/// Whether a base key is saved for the pair and equals `current` (no saved key:
/// `false`).
pub(super) async fn is_same(
    store: &PostgresStore,
    address: &str,
    message_id: &str,
    current: &[u8],
) -> Result<bool> {
    let row = store
        .read_opt(
            "SELECT base_key FROM wa_base_keys
             WHERE store_id = $1 AND address = $2 AND message_id = $3",
            &[&store.id(), &address, &message_id],
        )
        .await?;
    Ok(row.is_some_and(|row| row.get::<_, &[u8]>(0) == current))
}

pub(super) async fn delete(store: &PostgresStore, address: &str, message_id: &str) -> Result<()> {
    store
        .write_one(
            "DELETE FROM wa_base_keys WHERE store_id = $1 AND address = $2 AND message_id = $3",
            &[&store.id(), &address, &message_id],
        )
        .await
        .map(drop)
}
