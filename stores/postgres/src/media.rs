//! [`PostgresMedia`]: the files of queued media messages in `wa_media`, the
//! actor crate's [`SharedMedia`]: a file accepted by any node is read by the
//! org's owner when it delivers the message, and survives the node that
//! accepted it.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use wa_actors::media::SharedMedia;
use wa_actors::outbox::MessageId;

use crate::error::Failure;

/// A file stored this long ago belongs to a committed message, or to none: the
/// upload that stored it committed its message (or gave up) long before.
pub const SETTLED_AFTER: Duration = Duration::from_secs(600);

/// Queued files in PostgreSQL.
pub struct PostgresMedia {
    pool: Pool,
}

impl PostgresMedia {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> io::Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| other(&e))
    }
}

fn other(e: &dyn Failure) -> io::Error {
    io::Error::other(e.describe())
}

#[async_trait]
impl SharedMedia for PostgresMedia {
    async fn put(&self, id: &MessageId, bytes: Vec<u8>) -> io::Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO wa_media (message_id, bytes) VALUES ($1, $2) \
                 ON CONFLICT (message_id) DO UPDATE SET bytes = EXCLUDED.bytes",
                &[&id.as_str(), &bytes],
            )
            .await
            .map(drop)
            .map_err(|e| other(&e))
    }

    async fn get(&self, id: &MessageId) -> io::Result<Option<Vec<u8>>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT bytes FROM wa_media WHERE message_id = $1",
                &[&id.as_str()],
            )
            .await
            .map_err(|e| other(&e))?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn delete(&self, id: &MessageId) -> io::Result<()> {
        self.conn()
            .await?
            .execute(
                "DELETE FROM wa_media WHERE message_id = $1",
                &[&id.as_str()],
            )
            .await
            .map(drop)
            .map_err(|e| other(&e))
    }

    async fn settled_ids(&self) -> io::Result<Vec<MessageId>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT message_id FROM wa_media \
                 WHERE created_at < now() - make_interval(secs => $1)",
                &[&SETTLED_AFTER.as_secs_f64()],
            )
            .await
            .map_err(|e| other(&e))?;
        Ok(rows
            .iter()
            .filter_map(|row| MessageId::parse(row.get(0)).ok())
            .collect())
    }
}
