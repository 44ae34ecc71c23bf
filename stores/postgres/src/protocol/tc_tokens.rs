//! Trusted-contact privacy tokens (WA Web's `Chat.tcToken*`). Two writers own one
//! field each and race: the privacy notification stores a received token
//! ([`store_received`]), sending issues ours ([`touch_sender`]). Each is one
//! atomic upsert, so neither drops what the other wrote.

use wacore::store::error::Result;
use wacore::store::traits::TcTokenEntry;

use super::count;
use crate::PostgresStore;

pub(super) async fn get(store: &PostgresStore, jid: &str) -> Result<Option<TcTokenEntry>> {
    let row = store
        .read_opt(
            "SELECT token, token_timestamp, sender_timestamp FROM wa_tc_tokens
             WHERE store_id = $1 AND jid = $2",
            &[&store.id(), &jid],
        )
        .await?;
    Ok(row.map(|row| TcTokenEntry {
        token: row.get(0),
        token_timestamp: row.get(1),
        sender_timestamp: row.get(2),
    }))
}

/// Overwrites all three fields.
pub(super) async fn put(store: &PostgresStore, jid: &str, entry: &TcTokenEntry) -> Result<()> {
    store
        .write_one(
            "INSERT INTO wa_tc_tokens
                 (store_id, jid, token, token_timestamp, sender_timestamp, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (store_id, jid) DO UPDATE SET token = EXCLUDED.token,
                 token_timestamp = EXCLUDED.token_timestamp,
                 sender_timestamp = EXCLUDED.sender_timestamp, updated_at = EXCLUDED.updated_at",
            &[
                &store.id(),
                &jid,
                &entry.token,
                &entry.token_timestamp,
                &entry.sender_timestamp,
                &wacore::time::now_secs(),
            ],
        )
        .await
        .map(drop)
}

pub(super) async fn delete(store: &PostgresStore, jid: &str) -> Result<()> {
    store
        .write_one(
            "DELETE FROM wa_tc_tokens WHERE store_id = $1 AND jid = $2",
            &[&store.id(), &jid],
        )
        .await
        .map(drop)
}

pub(super) async fn all_jids(store: &PostgresStore) -> Result<Vec<String>> {
    let rows = store
        .read(
            "SELECT jid FROM wa_tc_tokens WHERE store_id = $1 ORDER BY jid",
            &[&store.id()],
        )
        .await?;
    Ok(rows.into_iter().map(|row| row.get(0)).collect())
}

/// Deletes rows with nothing live left: the received token is expired or absent
/// (a placeholder) AND our sender bucket is expired or absent.
pub(super) async fn delete_expired(
    store: &PostgresStore,
    token_cutoff: i64,
    sender_cutoff: i64,
) -> Result<u32> {
    store
        .write_one(
            "DELETE FROM wa_tc_tokens WHERE store_id = $1
               AND (length(token) = 0 OR token_timestamp < $2)
               AND (sender_timestamp IS NULL OR sender_timestamp < $3)",
            &[&store.id(), &token_cutoff, &sender_cutoff],
        )
        .await
        .map(count)
}

/// Moves our sender timestamp forward only, inserting a token-less placeholder
/// for a new contact and never touching a stored token.
pub(super) async fn touch_sender(
    store: &PostgresStore,
    jid: &str,
    sender_timestamp: i64,
) -> Result<()> {
    store
        .write_one(
            "INSERT INTO wa_tc_tokens
                 (store_id, jid, token, token_timestamp, sender_timestamp, updated_at)
             VALUES ($1, $2, ''::bytea, $3, $3, $4)
             ON CONFLICT (store_id, jid) DO UPDATE SET
                 sender_timestamp = GREATEST(wa_tc_tokens.sender_timestamp, EXCLUDED.sender_timestamp),
                 updated_at = EXCLUDED.updated_at",
            &[&store.id(), &jid, &sender_timestamp, &wacore::time::now_secs()],
        )
        .await
        .map(drop)
}

/// Stores a received token, newer wins: it replaces a placeholder or a token at
/// most as new, never a fresher one, and keeps our sender timestamp.
pub(super) async fn store_received(
    store: &PostgresStore,
    jid: &str,
    token: &[u8],
    token_timestamp: i64,
) -> Result<()> {
    store
        .write_one(
            "INSERT INTO wa_tc_tokens
                 (store_id, jid, token, token_timestamp, sender_timestamp, updated_at)
             VALUES ($1, $2, $3, $4, NULL, $5)
             ON CONFLICT (store_id, jid) DO UPDATE SET token = EXCLUDED.token,
                 token_timestamp = EXCLUDED.token_timestamp, updated_at = EXCLUDED.updated_at
             WHERE length(wa_tc_tokens.token) = 0
                OR EXCLUDED.token_timestamp >= wa_tc_tokens.token_timestamp",
            &[
                &store.id(),
                &jid,
                &token,
                &token_timestamp,
                &wacore::time::now_secs(),
            ],
        )
        .await
        .map(drop)
}
