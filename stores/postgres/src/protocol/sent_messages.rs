//! Our sent messages, kept for answering retry receipts (WA Web's message table).

use wacore::store::error::Result;

use super::count;
use crate::PostgresStore;

/// Stores (or replaces, restarting its age) the payload of a sent message.
pub(super) async fn store(
    store: &PostgresStore,
    chat_jid: &str,
    message_id: &str,
    payload: &[u8],
) -> Result<()> {
    store
        .write_one(
            "INSERT INTO wa_sent_messages (store_id, chat_jid, message_id, payload, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (store_id, chat_jid, message_id)
             DO UPDATE SET payload = EXCLUDED.payload, created_at = EXCLUDED.created_at",
            &[
                &store.id(),
                &chat_jid,
                &message_id,
                &payload,
                &wacore::time::now_secs(),
            ],
        )
        .await
        .map(drop)
}

/// Removes and returns the payload: of two concurrent takes only one gets it, so a
/// message is resent once per retry receipt.
pub(super) async fn take(
    store: &PostgresStore,
    chat_jid: &str,
    message_id: &str,
) -> Result<Option<Vec<u8>>> {
    let rows = store
        .write_returning(
            "DELETE FROM wa_sent_messages
             WHERE store_id = $1 AND chat_jid = $2 AND message_id = $3
             RETURNING payload",
            &[&store.id(), &chat_jid, &message_id],
        )
        .await?;
    Ok(rows.into_iter().next().map(|row| row.get(0)))
}

/// Deletes messages stored before `cutoff` (unix seconds).
pub(super) async fn delete_older(store: &PostgresStore, cutoff: i64) -> Result<u32> {
    store
        .write_one(
            "DELETE FROM wa_sent_messages WHERE store_id = $1 AND created_at < $2",
            &[&store.id(), &cutoff],
        )
        .await
        .map(count)
}
