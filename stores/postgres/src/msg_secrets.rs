//! `MsgSecretStore`: the `messageSecret` of messages, for decrypting the add-ons
//! (poll votes, reactions, edits, bot replies) that later refer to them.

use async_trait::async_trait;
use wacore::store::error::Result;
use wacore::store::traits::{
    MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use crate::PostgresStore;
use crate::batch::coalesce;
use crate::protocol::count;

#[async_trait]
impl MsgSecretStore for PostgresStore {
    /// Upserts the batch in one statement. On a known key the secret is replaced,
    /// the deadline only ever grows (`0`, never, wins) and the parent time keeps
    /// the later known value, as `merge_msg_secret_expiry` and
    /// `merge_msg_secret_message_ts` say. Returns the number of entries written,
    /// counting a key repeated in the batch once per entry (as upstream's
    /// row count does).
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let written = entries.len();
        let rows = coalesce(
            entries,
            |e| (e.chat.clone(), e.sender.clone(), e.msg_id.clone()),
            |kept, later| {
                kept.expires_at = merge_msg_secret_expiry(kept.expires_at, later.expires_at);
                kept.message_ts = merge_msg_secret_message_ts(kept.message_ts, later.message_ts);
                kept.secret = later.secret;
            },
        );
        if rows.is_empty() {
            return Ok(0);
        }
        let chats: Vec<&str> = rows.iter().map(|e| &*e.chat).collect();
        let senders: Vec<&str> = rows.iter().map(|e| &*e.sender).collect();
        let ids: Vec<&str> = rows.iter().map(|e| &*e.msg_id).collect();
        let secrets: Vec<&[u8]> = rows.iter().map(|e| &e.secret[..]).collect();
        let expires: Vec<i64> = rows.iter().map(|e| e.expires_at).collect();
        let parent_ts: Vec<i64> = rows.iter().map(|e| e.message_ts).collect();
        self.write_one(
            "INSERT INTO wa_msg_secrets
                 (store_id, chat, sender, msg_id, secret, expires_at, message_ts, created_at)
             SELECT $1, *, $8 FROM UNNEST($2::text[], $3::text[], $4::text[], $5::bytea[],
                                          $6::bigint[], $7::bigint[])
             ON CONFLICT (store_id, chat, sender, msg_id) DO UPDATE SET
                 secret = EXCLUDED.secret,
                 created_at = EXCLUDED.created_at,
                 expires_at = CASE
                     WHEN wa_msg_secrets.expires_at = 0 OR EXCLUDED.expires_at = 0 THEN 0
                     ELSE GREATEST(wa_msg_secrets.expires_at, EXCLUDED.expires_at) END,
                 message_ts = GREATEST(wa_msg_secrets.message_ts, EXCLUDED.message_ts)",
            &[
                &self.id(),
                &chats,
                &senders,
                &ids,
                &secrets,
                &expires,
                &parent_ts,
                &wacore::time::now_secs(),
            ],
        )
        .await?;
        Ok(written)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let row = self
            .read_opt(
                "SELECT secret, message_ts FROM wa_msg_secrets
                 WHERE store_id = $1 AND chat = $2 AND sender = $3 AND msg_id = $4",
                &[&self.id(), &chat, &sender, &msg_id],
            )
            .await?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    /// Deletes rows whose deadline is set and at or before `cutoff_timestamp`.
    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.write_one(
            "DELETE FROM wa_msg_secrets
             WHERE store_id = $1 AND expires_at <> 0 AND expires_at <= $2",
            &[&self.id(), &cutoff_timestamp],
        )
        .await
        .map(count)
    }
}
