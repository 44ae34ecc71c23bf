//! Decrypted inbound messages waiting for the durability hook's commit, keyed by
//! `(chat, sender, id)` because a stanza id is only unique within a chat and sender.

use wacore::store::error::Result;
use wacore::store::traits::{PendingInboundKey, PendingInboundRow};

use super::count;
use crate::PostgresStore;
use crate::batch::last_wins;

/// Stores (or replaces, restarting its age) each row, in one statement.
pub(super) async fn store(store: &PostgresStore, rows: &[PendingInboundRow<'_>]) -> Result<()> {
    let rows = last_wins(rows, |r| (r.chat, r.sender, r.id));
    if rows.is_empty() {
        return Ok(());
    }
    let chats: Vec<&str> = rows.iter().map(|r| r.chat).collect();
    let senders: Vec<&str> = rows.iter().map(|r| r.sender).collect();
    let ids: Vec<&str> = rows.iter().map(|r| r.id).collect();
    let messages: Vec<&[u8]> = rows.iter().map(|r| r.message).collect();
    store
        .write_one(
            "INSERT INTO wa_pending_inbound (store_id, chat, sender, id, message, inserted_at)
             SELECT $1, chat, sender, id, message, $6
             FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[]) AS m(chat, sender, id, message)
             ON CONFLICT (store_id, chat, sender, id)
             DO UPDATE SET message = EXCLUDED.message, inserted_at = EXCLUDED.inserted_at",
            &[
                &store.id(),
                &chats,
                &senders,
                &ids,
                &messages,
                &wacore::time::now_secs(),
            ],
        )
        .await
        .map(drop)
}

pub(super) async fn get(
    store: &PostgresStore,
    chat: &str,
    sender: &str,
    id: &str,
) -> Result<Option<Vec<u8>>> {
    let row = store
        .read_opt(
            "SELECT message FROM wa_pending_inbound
             WHERE store_id = $1 AND chat = $2 AND sender = $3 AND id = $4",
            &[&store.id(), &chat, &sender, &id],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

pub(super) async fn delete(store: &PostgresStore, keys: &[PendingInboundKey<'_>]) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let chats: Vec<&str> = keys.iter().map(|k| k.chat).collect();
    let senders: Vec<&str> = keys.iter().map(|k| k.sender).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.id).collect();
    store
        .write_one(
            "DELETE FROM wa_pending_inbound p
             USING UNNEST($2::text[], $3::text[], $4::text[]) AS k(chat, sender, id)
             WHERE p.store_id = $1 AND p.chat = k.chat AND p.sender = k.sender AND p.id = k.id",
            &[&store.id(), &chats, &senders, &ids],
        )
        .await
        .map(drop)
}

/// Deletes rows stored before `cutoff` (unix seconds).
pub(super) async fn delete_older(store: &PostgresStore, cutoff: i64) -> Result<u32> {
    store
        .write_one(
            "DELETE FROM wa_pending_inbound WHERE store_id = $1 AND inserted_at < $2",
            &[&store.id(), &cutoff],
        )
        .await
        .map(count)
}
