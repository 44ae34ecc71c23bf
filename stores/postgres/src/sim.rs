//! [`PostgresSimLedger`]: the fake phone's record in the shared database
//! (simulation mode with several nodes, CONTRACT §13).
//!
//! The credentials a pairing leaves are part of the org's store
//! (`wa_sim_credentials`, renamed with it by backups). What WhatsApp's server
//! would see is a log of its own: every delivery attempt (`wa_sim_sent`), the
//! connections open (`wa_sim_links`) and the overlaps counted
//! (`wa_sim_overlaps`). A node's acts on an org (pairing, opening a connection,
//! sending) are fenced by its lease: once another node owns the org, they are
//! refused, as the server would refuse a replaced connection.
//!
//! An overlap is a connection opened while another node still has one of the
//! org open and is alive (a heartbeat within the lease time). A node that died
//! or was paused past its lease cannot drive its old connection any more: the
//! next owner's connection replaces it, as WhatsApp's server replaces the older
//! of two connections of one device.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use wa_actors::OrgId;
use wa_actors::connection::ConnectionError;
use wa_actors::connection::sim::{SentRecord, SimCredentials, SimError, SimLedger};

use crate::error::Failure;
use crate::fence::{self, Checked, Fence};

/// The fake phones' record in PostgreSQL (see the module docs).
pub struct PostgresSimLedger {
    pool: Pool,
    fence: Arc<dyn Fence>,
    node_id: String,
    /// A node that sent no heartbeat for this long is not alive.
    lease: Duration,
}

impl PostgresSimLedger {
    pub fn new(pool: Pool, fence: Arc<dyn Fence>, node_id: String, lease: Duration) -> Self {
        Self {
            pool,
            fence,
            node_id,
            lease,
        }
    }
}

fn unavailable(e: &dyn Failure) -> ConnectionError {
    ConnectionError::StoreUnavailable(e.describe())
}

fn sim_store(e: &dyn Failure) -> SimError {
    SimError::Store(e.describe())
}

#[async_trait]
impl SimLedger for PostgresSimLedger {
    async fn credentials(&self, org: &OrgId) -> Result<Option<SimCredentials>, ConnectionError> {
        let conn = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let row = conn
            .query_opt(
                "SELECT credentials FROM wa_sim_credentials WHERE store_id = $1",
                &[&org.as_str()],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        row.map(|row| {
            serde_json::from_value(row.get(0))
                .map_err(|e| ConnectionError::StoreCorrupt(e.to_string()))
        })
        .transpose()
    }

    async fn pair(&self, org: &OrgId, credentials: &SimCredentials) -> Result<(), SimError> {
        let mut conn = self.pool.get().await.map_err(|e| sim_store(&e))?;
        let tx = conn.transaction().await.map_err(|e| sim_store(&e))?;
        if let Checked::Refused = fence::check(&*tx, self.fence.as_ref(), org.as_str())
            .await
            .map_err(|e| sim_store(&e))?
        {
            return Err(SimError::NoConnection);
        }
        let json = serde_json::to_value(credentials).expect("credentials serialize");
        tx.execute(
            "INSERT INTO wa_stores (store_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&org.as_str()],
        )
        .await
        .map_err(|e| sim_store(&e))?;
        let stored = tx
            .execute(
                "INSERT INTO wa_sim_credentials (store_id, credentials) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&org.as_str(), &json],
            )
            .await
            .map_err(|e| sim_store(&e))?;
        if stored == 0 {
            return Err(SimError::Store(
                "credentials are already stored for this organization".into(),
            ));
        }
        tx.commit().await.map_err(|e| sim_store(&e))
    }

    async fn open(&self, org: &OrgId) -> Result<i64, ConnectionError> {
        let mut conn = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let tx = conn.transaction().await.map_err(|e| unavailable(&e))?;
        if let Checked::Refused = fence::check(&*tx, self.fence.as_ref(), org.as_str())
            .await
            .map_err(|e| unavailable(&e))?
        {
            return Err(ConnectionError::StoreUnavailable(
                "this node no longer holds the organization's lease".into(),
            ));
        }
        let token = self.fence.token(org.as_str()).unwrap_or_default();
        let alive = self.lease.as_secs_f64();
        // Connections of nodes that are not alive are gone: forgotten.
        tx.execute(
            "DELETE FROM wa_sim_links l WHERE l.org = $1 AND NOT EXISTS (SELECT 1 FROM wa_nodes n \
             WHERE n.node_id = l.node_id AND n.last_seen > now() - make_interval(secs => $2))",
            &[&org.as_str(), &alive],
        )
        .await
        .map_err(|e| unavailable(&e))?;
        let others: i64 = tx
            .query_one(
                "SELECT count(*) FROM wa_sim_links WHERE org = $1 AND node_id <> $2",
                &[&org.as_str(), &self.node_id],
            )
            .await
            .map_err(|e| unavailable(&e))?
            .get(0);
        if others > 0 {
            tracing::error!(org_id = %org, others, "sim: a connection opened while another node still has one open");
            tx.execute(
                "INSERT INTO wa_sim_overlaps (org, count) VALUES ($1, 1) \
                 ON CONFLICT (org) DO UPDATE SET count = wa_sim_overlaps.count + 1",
                &[&org.as_str()],
            )
            .await
            .map_err(|e| unavailable(&e))?;
        }
        let link: i64 = tx
            .query_one(
                "INSERT INTO wa_sim_links (org, node_id, token) VALUES ($1, $2, $3) \
                 RETURNING link_id",
                &[&org.as_str(), &self.node_id, &token],
            )
            .await
            .map_err(|e| unavailable(&e))?
            .get(0);
        tx.commit().await.map_err(|e| unavailable(&e))?;
        Ok(link)
    }

    async fn close(&self, org: &OrgId, link: i64) {
        let closed = async {
            let conn = self.pool.get().await.map_err(|e| e.describe())?;
            conn.execute("DELETE FROM wa_sim_links WHERE link_id = $1", &[&link])
                .await
                .map_err(|e| e.describe())
        };
        if let Err(e) = closed.await {
            tracing::warn!(org_id = %org, error = %e, "sim: a closed connection could not be recorded");
        }
    }

    async fn record(
        &self,
        org: &OrgId,
        _link: i64,
        sent: &SentRecord,
    ) -> Result<(), ConnectionError> {
        let mut conn = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let tx = conn.transaction().await.map_err(|e| unavailable(&e))?;
        if let Checked::Refused = fence::check(&*tx, self.fence.as_ref(), org.as_str())
            .await
            .map_err(|e| unavailable(&e))?
        {
            // The server no longer takes this connection's stanzas.
            return Err(ConnectionError::NotConnected);
        }
        tx.execute(
            "INSERT INTO wa_sim_sent (org, node_id, to_phone, text, message_id, kind) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &org.as_str(),
                &self.node_id,
                &sent.to,
                &sent.text,
                &sent.message_id,
                &sent.kind,
            ],
        )
        .await
        .map_err(|e| unavailable(&e))?;
        tx.commit().await.map_err(|e| unavailable(&e))
    }

    async fn sent(&self, org: &OrgId) -> Result<Vec<SentRecord>, SimError> {
        let conn = self.pool.get().await.map_err(|e| sim_store(&e))?;
        let rows = conn
            .query(
                "SELECT to_phone, text, message_id, kind FROM wa_sim_sent WHERE org = $1 \
                 ORDER BY seq",
                &[&org.as_str()],
            )
            .await
            .map_err(|e| sim_store(&e))?;
        Ok(rows
            .into_iter()
            .filter_map(|row| SentRecord::of_kind(row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect())
    }

    async fn overlaps(&self) -> Result<u64, SimError> {
        let conn = self.pool.get().await.map_err(|e| sim_store(&e))?;
        let total: i64 = conn
            .query_one(
                "SELECT coalesce(sum(count), 0)::bigint FROM wa_sim_overlaps",
                &[],
            )
            .await
            .map_err(|e| sim_store(&e))?
            .get(0);
        Ok(u64::try_from(total).unwrap_or(0))
    }
}
