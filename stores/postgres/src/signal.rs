//! `SignalStore`: identities, sessions, one-time and signed pre-keys, sender keys.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::SignalStore;

use crate::PostgresStore;
use crate::batch::last_wins;

#[async_trait]
impl SignalStore for PostgresStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put_identities_batch(&[(Arc::from(address), key)])
            .await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let rows = last_wins(identities, |(address, _)| address.clone());
        if rows.is_empty() {
            return Ok(());
        }
        let addresses: Vec<&str> = rows.iter().map(|(a, _)| &**a).collect();
        let keys: Vec<&[u8]> = rows.iter().map(|(_, k)| &k[..]).collect();
        self.write_one(
            "INSERT INTO wa_identities (store_id, address, key)
             SELECT $1, * FROM UNNEST($2::text[], $3::bytea[])
             ON CONFLICT (store_id, address) DO UPDATE SET key = EXCLUDED.key",
            &[&self.id(), &addresses, &keys],
        )
        .await
        .map(drop)
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        let row = self
            .read_opt(
                "SELECT key FROM wa_identities WHERE store_id = $1 AND address = $2",
                &[&self.id(), &address],
            )
            .await?;
        row.map(|row| {
            let key: Vec<u8> = row.get(0);
            <[u8; 32]>::try_from(key.as_slice()).map_err(|_| {
                StoreError::Validation(format!("an identity key has {} bytes, not 32", key.len()))
            })
        })
        .transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.write_one(
            "DELETE FROM wa_identities WHERE store_id = $1 AND address = $2",
            &[&self.id(), &address],
        )
        .await
        .map(drop)
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        let row = self
            .read_opt(
                "SELECT record FROM wa_sessions WHERE store_id = $1 AND address = $2",
                &[&self.id(), &address],
            )
            .await?;
        Ok(row.map(|row| Bytes::from(row.get::<_, Vec<u8>>(0))))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put_sessions_batch(&[(Arc::from(address), Bytes::copy_from_slice(session))])
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let rows = last_wins(sessions, |(address, _)| address.clone());
        if rows.is_empty() {
            return Ok(());
        }
        let addresses: Vec<&str> = rows.iter().map(|(a, _)| &**a).collect();
        let records: Vec<&[u8]> = rows.iter().map(|(_, r)| &r[..]).collect();
        self.write_one(
            "INSERT INTO wa_sessions (store_id, address, record)
             SELECT $1, * FROM UNNEST($2::text[], $3::bytea[])
             ON CONFLICT (store_id, address) DO UPDATE SET record = EXCLUDED.record",
            &[&self.id(), &addresses, &records],
        )
        .await
        .map(drop)
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.write_one(
            "DELETE FROM wa_sessions WHERE store_id = $1 AND address = $2",
            &[&self.id(), &address],
        )
        .await
        .map(drop)
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        let row = self
            .read_opt(
                "SELECT 1 FROM wa_sessions WHERE store_id = $1 AND address = $2",
                &[&self.id(), &address],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // Addresses are `user@server` (device 0) or `user:device@server`. A plain
        // prefix test, where upstream's LIKE would also read `_`/`%` in `user` as
        // wildcards (users are digits, so the two agree).
        let at = format!("{user}@");
        let device = format!("{user}:");
        let row = self
            .read_opt(
                "SELECT 1 WHERE EXISTS (
                     SELECT 1 FROM wa_sessions WHERE store_id = $1
                       AND (starts_with(address, $2) OR starts_with(address, $3))
                 ) OR EXISTS (
                     SELECT 1 FROM wa_identities WHERE store_id = $1
                       AND (starts_with(address, $2) OR starts_with(address, $3))
                 )",
                &[&self.id(), &at, &device],
            )
            .await?;
        Ok(row.is_some())
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.store_prekeys_batch(&[(id, Bytes::copy_from_slice(record))], uploaded)
            .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let rows = last_wins(keys, |(id, _)| *id);
        if rows.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = rows.iter().map(|(id, _)| i64::from(*id)).collect();
        let records: Vec<&[u8]> = rows.iter().map(|(_, r)| &r[..]).collect();
        self.write_one(
            "INSERT INTO wa_prekeys (store_id, id, record, uploaded)
             SELECT $1, id, record, $4 FROM UNNEST($2::bigint[], $3::bytea[]) AS k(id, record)
             ON CONFLICT (store_id, id)
             DO UPDATE SET record = EXCLUDED.record, uploaded = EXCLUDED.uploaded",
            &[&self.id(), &ids, &records, &uploaded],
        )
        .await
        .map(drop)
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        let row = self
            .read_opt(
                "SELECT record FROM wa_prekeys WHERE store_id = $1 AND id = $2",
                &[&self.id(), &i64::from(id)],
            )
            .await?;
        Ok(row.map(|row| Bytes::from(row.get::<_, Vec<u8>>(0))))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        let rows = self
            .read(
                "SELECT id, record FROM wa_prekeys WHERE store_id = $1 AND id = ANY($2)
                 ORDER BY id",
                &[&self.id(), &ids],
            )
            .await?;
        rows.into_iter()
            .map(|row| {
                Ok((
                    u32_column(row.get(0))?,
                    Bytes::from(row.get::<_, Vec<u8>>(1)),
                ))
            })
            .collect()
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = ids.iter().map(|&id| i64::from(id)).collect();
        // UPDATE only: a key consumed since the upload snapshot stays consumed.
        self.write_one(
            "UPDATE wa_prekeys SET uploaded = TRUE WHERE store_id = $1 AND id = ANY($2)",
            &[&self.id(), &ids],
        )
        .await
        .map(drop)
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.write_one(
            "DELETE FROM wa_prekeys WHERE store_id = $1 AND id = $2",
            &[&self.id(), &i64::from(id)],
        )
        .await
        .map(drop)
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let rows = self
            .read(
                "SELECT COALESCE(MAX(id), 0) FROM wa_prekeys WHERE store_id = $1",
                &[&self.id()],
            )
            .await?;
        rows.first().map_or(Ok(0), |row| u32_column(row.get(0)))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.write_one(
            "INSERT INTO wa_signed_prekeys (store_id, id, record) VALUES ($1, $2, $3)
             ON CONFLICT (store_id, id) DO UPDATE SET record = EXCLUDED.record",
            &[&self.id(), &i64::from(id), &record],
        )
        .await
        .map(drop)
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        let row = self
            .read_opt(
                "SELECT record FROM wa_signed_prekeys WHERE store_id = $1 AND id = $2",
                &[&self.id(), &i64::from(id)],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let rows = self
            .read(
                "SELECT id, record FROM wa_signed_prekeys WHERE store_id = $1 ORDER BY id",
                &[&self.id()],
            )
            .await?;
        rows.into_iter()
            .map(|row| Ok((u32_column(row.get(0))?, row.get(1))))
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.write_one(
            "DELETE FROM wa_signed_prekeys WHERE store_id = $1 AND id = $2",
            &[&self.id(), &i64::from(id)],
        )
        .await
        .map(drop)
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put_sender_keys_batch(&[(Arc::from(address), Bytes::copy_from_slice(record))])
            .await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let rows = last_wins(sender_keys, |(address, _)| address.clone());
        if rows.is_empty() {
            return Ok(());
        }
        let addresses: Vec<&str> = rows.iter().map(|(a, _)| &**a).collect();
        let records: Vec<&[u8]> = rows.iter().map(|(_, r)| &r[..]).collect();
        self.write_one(
            "INSERT INTO wa_sender_keys (store_id, address, record)
             SELECT $1, * FROM UNNEST($2::text[], $3::bytea[])
             ON CONFLICT (store_id, address) DO UPDATE SET record = EXCLUDED.record",
            &[&self.id(), &addresses, &records],
        )
        .await
        .map(drop)
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        let row = self
            .read_opt(
                "SELECT record FROM wa_sender_keys WHERE store_id = $1 AND address = $2",
                &[&self.id(), &address],
            )
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.write_one(
            "DELETE FROM wa_sender_keys WHERE store_id = $1 AND address = $2",
            &[&self.id(), &address],
        )
        .await
        .map(drop)
    }
}

/// A u32 kept in a BIGINT column.
pub(crate) fn u32_column(value: i64) -> Result<u32> {
    u32::try_from(value)
        .map_err(|_| StoreError::Validation(format!("{value} does not fit a u32 column")))
}
