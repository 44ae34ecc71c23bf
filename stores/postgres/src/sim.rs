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
//! An overlap is a connection opened while a connection of the org opened by
//! another process is still open, whatever that process's leases and heartbeats
//! say: a node cut off from the cluster's tables, or one whose actor is still
//! stopping, counts. A connection is open from its `open` to its `close`, or,
//! for a process that stopped showing signs of life (killed or frozen: its
//! presence, refreshed every [`PRESENCE_EVERY`], is older than
//! [`SERVER_TIMEOUT`]), until then: WhatsApp's server drops a connection that
//! stopped answering its pings.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio::task::AbortHandle;
use wa_actors::OrgId;
use wa_actors::connection::ConnectionError;
use wa_actors::connection::sim::{SentRecord, SimCredentials, SimError, SimLedger};

use crate::error::Failure;
use crate::fence::{self, Checked, Fence};

/// How often a process shows it is alive (its connections still answer).
pub const PRESENCE_EVERY: Duration = Duration::from_secs(1);
/// How long after a process's last sign of life its connections count as
/// dropped by the server.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(3);

/// The fake phones' record in PostgreSQL (see the module docs).
pub struct PostgresSimLedger {
    pool: Pool,
    fence: Arc<dyn Fence>,
    node_id: String,
    /// This process's, new at every start (a restarted node is another process).
    instance: String,
    presence: AbortHandle,
}

impl Drop for PostgresSimLedger {
    fn drop(&mut self) {
        self.presence.abort();
    }
}

impl PostgresSimLedger {
    /// The record as node `node_id` writes it; shows this process alive from now
    /// on (a task, until the ledger is dropped).
    pub fn new(pool: Pool, fence: Arc<dyn Fence>, node_id: String) -> Self {
        let instance = format!("{node_id}/{:016x}", rand_u64());
        let presence = tokio::spawn(show_presence(pool.clone(), instance.clone())).abort_handle();
        Self {
            pool,
            fence,
            node_id,
            instance,
            presence,
        }
    }
}

impl PostgresSimLedger {
    /// Stops showing this process alive, as a frozen process would (tests of a
    /// node paused past its lease, in one process).
    pub fn freeze_presence(&self) {
        self.presence.abort();
    }

    /// This process's instance, as its connections and presence record it.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

async fn show_presence(pool: Pool, instance: String) {
    loop {
        let shown = async {
            let conn = pool.get().await.map_err(|e| e.describe())?;
            conn.execute(
                "INSERT INTO wa_sim_presence (instance, alive_at) VALUES ($1, now()) \
                 ON CONFLICT (instance) DO UPDATE SET alive_at = now()",
                &[&instance],
            )
            .await
            .map_err(|e| e.describe())
        };
        if let Err(e) = shown.await {
            tracing::debug!(error = %e, "sim: this process's presence could not be shown");
        }
        tokio::time::sleep(PRESENCE_EVERY).await;
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
        let others: i64 = tx
            .query_one(
                "SELECT count(*) FROM wa_sim_links l JOIN wa_sim_presence p USING (instance) \
                 WHERE l.org = $1 AND l.instance <> $2 \
                 AND p.alive_at > now() - make_interval(secs => $3)",
                &[&org.as_str(), &self.instance, &SERVER_TIMEOUT.as_secs_f64()],
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
                "INSERT INTO wa_sim_links (org, node_id, token, instance) \
                 VALUES ($1, $2, $3, $4) RETURNING link_id",
                &[&org.as_str(), &self.node_id, &token, &self.instance],
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
