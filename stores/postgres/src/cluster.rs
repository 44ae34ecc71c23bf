//! [`PostgresLeases`]: nodes, leases and published snapshots in PostgreSQL, the
//! actor crate's [`LeaseStore`] (see `wa_actors::cluster` for the rules).
//!
//! - `wa_nodes`: one row per node, `last_seen` refreshed by its heartbeat;
//! - `wa_leases`: one row per org the cluster runs; tokens come from the
//!   sequence `wa_lease_tokens`, so they grow with every new owner and are never
//!   reused, even for an org whose lease was removed and made again;
//! - `wa_snapshots`: what each org's owner publishes, fenced by its token.
//!
//! A freed lease notifies `wa_leases` (the other nodes claim it at once); a
//! published snapshot notifies `wa_snapshot` (payload: the org).

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;
use wa_actors::cluster::{
    Census, Claim, ClusterError, Held, LeaseStore, NodeLoad, Owner, Published, Token,
};
use wa_actors::{OrgId, SessionSnapshot, SessionStatus};

use crate::error::Failure;

/// The channel a freed lease is announced on (payload: the node that freed it).
pub const LEASES_CHANNEL: &str = "wa_leases";
/// The channel a published snapshot is announced on (payload: its org).
pub const SNAPSHOT_CHANNEL: &str = "wa_snapshot";

const SNAPSHOT_COLUMNS: &str = "s.org, s.node_id, s.status, s.phone_number, s.qr, \
    s.pairing_code, s.retry_at, s.next_attempt_at, s.reason, s.updated_at, \
    coalesce(l.token = s.token AND l.expires_at > now(), false)";

/// Nodes, leases and snapshots in PostgreSQL.
pub struct PostgresLeases {
    pool: Pool,
    /// This process's, new at every start: tells two processes under one node id
    /// apart.
    instance: String,
}

impl std::fmt::Debug for PostgresLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLeases").finish_non_exhaustive()
    }
}

impl PostgresLeases {
    pub fn new(pool: Pool) -> Self {
        use std::hash::{BuildHasher, RandomState};
        let instance = format!(
            "{:016x}",
            RandomState::new().hash_one(std::time::SystemTime::now())
        );
        Self { pool, instance }
    }

    async fn conn(&self) -> Result<Object, ClusterError> {
        self.pool.get().await.map_err(|e| failed(&e))
    }
}

fn failed(e: &dyn Failure) -> ClusterError {
    ClusterError::Store(e.describe())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn held(row: &Row) -> Option<Held> {
    Some(Held {
        org: OrgId::parse(row.get(0)).ok()?,
        token: row.get(1),
    })
}

#[async_trait]
impl LeaseStore for PostgresLeases {
    async fn join(&self, node: &str, live_within: Duration) -> Result<(), ClusterError> {
        let joined = self
            .conn()
            .await?
            .query_opt(
                "INSERT INTO wa_nodes (node_id, instance) VALUES ($1, $2) \
                 ON CONFLICT (node_id) DO UPDATE SET last_seen = now(), instance = $2 \
                 WHERE wa_nodes.instance = $2 \
                 OR wa_nodes.last_seen <= now() - make_interval(secs => $3) \
                 RETURNING 1",
                &[&node, &self.instance, &secs(live_within)],
            )
            .await
            .map_err(|e| failed(&e))?;
        match joined {
            Some(_) => Ok(()),
            None => Err(ClusterError::NodeIdInUse(node.to_owned())),
        }
    }

    async fn heartbeat(&self, node: &str) -> Result<(), ClusterError> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO wa_nodes (node_id, instance) VALUES ($1, $2) \
                 ON CONFLICT (node_id) DO UPDATE SET last_seen = now(), instance = $2",
                &[&node, &self.instance],
            )
            .await
            .map(drop)
            .map_err(|e| failed(&e))
    }

    async fn leave(&self, node: &str) -> Result<(), ClusterError> {
        self.conn()
            .await?
            .execute("DELETE FROM wa_nodes WHERE node_id = $1", &[&node])
            .await
            .map(drop)
            .map_err(|e| failed(&e))
    }

    async fn renew(
        &self,
        node: &str,
        leases: &[Held],
        lease: Duration,
    ) -> Result<Vec<Held>, ClusterError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let orgs: Vec<&str> = leases.iter().map(|h| h.org.as_str()).collect();
        let tokens: Vec<Token> = leases.iter().map(|h| h.token).collect();
        let rows = self
            .conn()
            .await?
            .query(
                "UPDATE wa_leases l SET expires_at = now() + make_interval(secs => $4) \
                 FROM unnest($2::text[], $3::bigint[]) AS h(org, token) \
                 WHERE l.org = h.org AND l.token = h.token AND l.node_id = $1 \
                 AND l.expires_at > now() RETURNING l.org, l.token",
                &[&node, &orgs, &tokens, &secs(lease)],
            )
            .await
            .map_err(|e| failed(&e))?;
        let mut renewed: Vec<Held> = rows.iter().filter_map(held).collect();
        renewed.sort();
        Ok(renewed)
    }

    async fn census(
        &self,
        live_within: Duration,
        recent: Duration,
    ) -> Result<Census, ClusterError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT n.node_id, n.last_seen, n.last_seen > now() - make_interval(secs => $1), \
                 (SELECT count(*) FROM wa_leases l \
                  WHERE l.node_id = n.node_id AND l.expires_at > now()) \
                 FROM wa_nodes n WHERE n.last_seen > now() - make_interval(secs => $2) \
                 ORDER BY n.node_id",
                &[&secs(live_within), &secs(recent.max(live_within))],
            )
            .await
            .map_err(|e| failed(&e))?;
        let nodes = rows
            .iter()
            .map(|row| NodeLoad {
                node_id: row.get(0),
                last_seen: row.get(1),
                live: row.get(2),
                orgs: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            })
            .collect();
        let leases: i64 = conn
            .query_one("SELECT count(*) FROM wa_leases", &[])
            .await
            .map_err(|e| failed(&e))?
            .get(0);
        Ok(Census {
            nodes,
            leases: u64::try_from(leases).unwrap_or(0),
        })
    }

    async fn claim_free(
        &self,
        node: &str,
        limit: u64,
        skip: &[OrgId],
        lease: Duration,
    ) -> Result<Vec<Held>, ClusterError> {
        let skip: Vec<&str> = skip.iter().map(OrgId::as_str).collect();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // SKIP LOCKED: nodes claiming at once take different orgs, and a lease
        // row a write still holds FOR SHARE is left for the next round.
        let rows = self
            .conn()
            .await?
            .query(
                "UPDATE wa_leases l SET node_id = $1, token = nextval('wa_lease_tokens'), \
                 expires_at = now() + make_interval(secs => $4) \
                 WHERE l.org IN (SELECT org FROM wa_leases WHERE expires_at <= now() \
                 AND NOT (org = ANY($3)) ORDER BY org LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING l.org, l.token",
                &[&node, &limit, &skip, &secs(lease)],
            )
            .await
            .map_err(|e| failed(&e))?;
        let mut claimed: Vec<Held> = rows.iter().filter_map(held).collect();
        claimed.sort();
        Ok(claimed)
    }

    async fn claim(&self, node: &str, org: &OrgId, lease: Duration) -> Result<Claim, ClusterError> {
        let conn = self.conn().await?;
        let won = conn
            .query_opt(
                "INSERT INTO wa_leases (org, node_id, token, expires_at) \
                 VALUES ($2, $1, nextval('wa_lease_tokens'), now() + make_interval(secs => $3)) \
                 ON CONFLICT (org) DO UPDATE SET node_id = EXCLUDED.node_id, \
                 token = EXCLUDED.token, expires_at = EXCLUDED.expires_at \
                 WHERE wa_leases.expires_at <= now() OR wa_leases.node_id = EXCLUDED.node_id \
                 RETURNING token",
                &[&node, &org.as_str(), &secs(lease)],
            )
            .await
            .map_err(|e| failed(&e))?;
        if let Some(row) = won {
            return Ok(Claim::Won(row.get(0)));
        }
        let holder: Option<String> = conn
            .query_opt(
                "SELECT node_id FROM wa_leases WHERE org = $1",
                &[&org.as_str()],
            )
            .await
            .map_err(|e| failed(&e))?
            .and_then(|row| row.get(0));
        Ok(Claim::HeldBy(holder.unwrap_or_default()))
    }

    async fn release(&self, node: &str, held: &[Held]) -> Result<(), ClusterError> {
        if held.is_empty() {
            return Ok(());
        }
        let orgs: Vec<&str> = held.iter().map(|h| h.org.as_str()).collect();
        let tokens: Vec<Token> = held.iter().map(|h| h.token).collect();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| failed(&e))?;
        tx.execute(
            "UPDATE wa_leases l SET expires_at = '-infinity' \
             FROM unnest($2::text[], $3::bigint[]) AS h(org, token) \
             WHERE l.org = h.org AND l.token = h.token AND l.node_id = $1",
            &[&node, &orgs, &tokens],
        )
        .await
        .map_err(|e| failed(&e))?;
        tx.execute("SELECT pg_notify($1, $2)", &[&LEASES_CHANNEL, &node])
            .await
            .map_err(|e| failed(&e))?;
        tx.commit().await.map_err(|e| failed(&e))
    }

    async fn remove(&self, node: &str, held: &Held) -> Result<(), ClusterError> {
        let _ = node;
        let org = held.org.as_str();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| failed(&e))?;
        let fenced: bool = tx
            .query_one("SELECT wa_fence($1, $2)", &[&org, &held.token])
            .await
            .map_err(|e| failed(&e))?
            .get(0);
        if !fenced {
            return Err(ClusterError::Fenced);
        }
        tx.execute("DELETE FROM wa_snapshots WHERE org = $1", &[&org])
            .await
            .map_err(|e| failed(&e))?;
        tx.execute(
            "DELETE FROM wa_leases WHERE org = $1 AND token = $2",
            &[&org, &held.token],
        )
        .await
        .map_err(|e| failed(&e))?;
        tx.execute("SELECT pg_notify($1, $2)", &[&SNAPSHOT_CHANNEL, &org])
            .await
            .map_err(|e| failed(&e))?;
        tx.commit().await.map_err(|e| failed(&e))
    }

    async fn seed(&self, orgs: &[OrgId]) -> Result<(), ClusterError> {
        if orgs.is_empty() {
            return Ok(());
        }
        let orgs: Vec<&str> = orgs.iter().map(OrgId::as_str).collect();
        self.conn()
            .await?
            .execute(
                "INSERT INTO wa_leases (org, node_id, token, expires_at) \
                 SELECT o, NULL, nextval('wa_lease_tokens'), '-infinity' FROM unnest($1::text[]) o \
                 ON CONFLICT (org) DO NOTHING",
                &[&orgs],
            )
            .await
            .map(drop)
            .map_err(|e| failed(&e))
    }

    async fn owner(&self, org: &OrgId) -> Result<Owner, ClusterError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT node_id, expires_at > now() FROM wa_leases WHERE org = $1",
                &[&org.as_str()],
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(match row {
            None => Owner::Nobody,
            Some(row) => match (row.get::<_, Option<String>>(0), row.get::<_, bool>(1)) {
                (Some(node), true) => Owner::Node(node),
                _ => Owner::Free,
            },
        })
    }

    async fn publish(
        &self,
        node: &str,
        token: Token,
        s: &SessionSnapshot,
    ) -> Result<(), ClusterError> {
        let org = s.organization_id.as_str();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| failed(&e))?;
        let fenced: bool = tx
            .query_one("SELECT wa_fence($1, $2)", &[&org, &token])
            .await
            .map_err(|e| failed(&e))?
            .get(0);
        if !fenced {
            return Err(ClusterError::Fenced);
        }
        tx.execute(
            "INSERT INTO wa_snapshots (org, node_id, token, status, phone_number, qr, \
             pairing_code, retry_at, next_attempt_at, reason, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (org) DO UPDATE SET node_id = EXCLUDED.node_id, \
             token = EXCLUDED.token, status = EXCLUDED.status, \
             phone_number = EXCLUDED.phone_number, qr = EXCLUDED.qr, \
             pairing_code = EXCLUDED.pairing_code, retry_at = EXCLUDED.retry_at, \
             next_attempt_at = EXCLUDED.next_attempt_at, reason = EXCLUDED.reason, \
             updated_at = EXCLUDED.updated_at",
            &[
                &org,
                &node,
                &token,
                &s.status.as_str(),
                &s.phone_number,
                &s.qr,
                &s.pairing_code,
                &s.retry_at,
                &s.next_attempt_at,
                &s.reason,
                &s.updated_at,
            ],
        )
        .await
        .map_err(|e| failed(&e))?;
        tx.execute("SELECT pg_notify($1, $2)", &[&SNAPSHOT_CHANNEL, &org])
            .await
            .map_err(|e| failed(&e))?;
        tx.commit().await.map_err(|e| failed(&e))
    }

    async fn published(&self) -> Result<Vec<Published>, ClusterError> {
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM wa_snapshots s LEFT JOIN wa_leases l USING (org)"
        );
        let rows = self
            .conn()
            .await?
            .query(&sql, &[])
            .await
            .map_err(|e| failed(&e))?;
        Ok(rows.iter().filter_map(published).collect())
    }

    async fn published_of(&self, org: &OrgId) -> Result<Option<Published>, ClusterError> {
        let sql = format!(
            "SELECT {SNAPSHOT_COLUMNS} FROM wa_snapshots s LEFT JOIN wa_leases l USING (org) \
             WHERE s.org = $1"
        );
        let row = self
            .conn()
            .await?
            .query_opt(&sql, &[&org.as_str()])
            .await
            .map_err(|e| failed(&e))?;
        Ok(row.as_ref().and_then(published))
    }
}

/// A published snapshot row; `None` for one this build cannot read.
fn published(row: &Row) -> Option<Published> {
    let status = SessionStatus::parse(row.get(2))?;
    Some(Published {
        snapshot: SessionSnapshot {
            organization_id: OrgId::parse(row.get(0)).ok()?,
            node_id: Some(row.get(1)),
            status,
            phone_number: row.get(3),
            qr: row.get(4),
            pairing_code: row.get(5),
            retry_at: row.get(6),
            next_attempt_at: row.get(7),
            reason: row.get(8),
            updated_at: row.get(9),
        },
        owner_live: row.get(10),
    })
}
