//! [`LeaseStore`]: what a cluster node needs of the database it shares with the
//! other nodes (implemented on PostgreSQL by `wa-store-postgres`).
//!
//! Every method is one transaction. The rules the implementation keeps:
//!
//! - a lease is held by the node it names until its `expires_at`; an expired (or
//!   released) lease is free, and only a free lease (or an org without one) can
//!   be claimed, atomically: of two nodes claiming one org, one wins;
//! - every claim gives the org a token greater than any it had, so a write that
//!   carries an older token is refused;
//! - a renewal extends only leases that have not expired: a node that was paused
//!   past its lease has lost it, whether or not another node took it yet.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Token;
use crate::{OrgId, SessionSnapshot};

/// A lease a node holds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Held {
    pub org: OrgId,
    pub token: Token,
}

/// What claiming one org's lease came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This node holds it now, with this token.
    Won(Token),
    /// Another node holds it, and its lease has not expired.
    HeldBy(String),
}

/// A node seen recently, and how many leases it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLoad {
    pub node_id: String,
    pub last_seen: DateTime<Utc>,
    /// Leases it holds that have not expired.
    pub orgs: u64,
    /// Whether it sent a heartbeat within the lease time.
    pub live: bool,
}

/// The nodes and the leases, as one node sees them at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Recently seen nodes, by id.
    pub nodes: Vec<NodeLoad>,
    /// Every lease, held or free: the orgs the cluster runs.
    pub leases: u64,
}

impl Census {
    /// The live node that holds the fewest leases (by id among equals): where a
    /// new org goes.
    pub fn least_loaded(&self) -> Option<&NodeLoad> {
        self.nodes
            .iter()
            .filter(|n| n.live)
            .min_by(|a, b| a.orgs.cmp(&b.orgs).then_with(|| a.node_id.cmp(&b.node_id)))
    }

    /// How many leases one live node should hold: an even share, rounded up so
    /// the shares cover every lease.
    pub fn fair_share(&self) -> u64 {
        let live = self.nodes.iter().filter(|n| n.live).count().max(1) as u64;
        self.leases.div_ceil(live)
    }
}

/// Who owns one org now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    /// No lease: the org runs nowhere.
    Nobody,
    /// A lease that expired (or was released): the org waits to be taken over.
    Free,
    /// A node holds its lease.
    Node(String),
}

/// A snapshot another node published, and whether its lease still holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub snapshot: SessionSnapshot,
    /// The node that published it still holds the org's lease.
    pub owner_live: bool,
}

/// Why a lease operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The write carried a token the org's lease no longer has.
    #[error("the organization's lease is held by another node")]
    Fenced,
    /// The database could not be reached or refused the statement.
    #[error("the cluster database failed: {0}")]
    Store(String),
    /// Another running process uses this node id: two processes under one id
    /// would take each other's leases.
    #[error(
        "node id {0:?} is in use by another running daemon; give each node its own [cluster] node_id"
    )]
    NodeIdInUse(String),
}

/// The shared record of nodes, leases and published snapshots.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Records that `node` is alive now, as this process: refused with
    /// [`ClusterError::NodeIdInUse`] while another process runs under that id
    /// (its last heartbeat within `live_within`).
    async fn join(&self, node: &str, live_within: Duration) -> Result<(), ClusterError>;

    /// Records that `node` is alive now.
    async fn heartbeat(&self, node: &str) -> Result<(), ClusterError>;

    /// Removes `node` from the live nodes (it is stopping): no new org goes to it
    /// and the others' shares grow to cover its orgs.
    async fn leave(&self, node: &str) -> Result<(), ClusterError>;

    /// Extends each of `held` that `node` still holds with that token and that has
    /// not expired, to `lease` from now; returns those.
    async fn renew(
        &self,
        node: &str,
        held: &[Held],
        lease: Duration,
    ) -> Result<Vec<Held>, ClusterError>;

    /// The nodes seen within `recent` (live: within `live_within`) and the leases.
    async fn census(&self, live_within: Duration, recent: Duration)
    -> Result<Census, ClusterError>;

    /// Claims up to `limit` free leases for `node` (never one of `skip`), each
    /// with a new token.
    async fn claim_free(
        &self,
        node: &str,
        limit: u64,
        skip: &[OrgId],
        lease: Duration,
    ) -> Result<Vec<Held>, ClusterError>;

    /// Claims the lease of one org for `node`, with a new token: when it is free,
    /// when the org has none (it is created), or when it names `node` already (an
    /// earlier run of the node, whose token must not be reused).
    async fn claim(&self, node: &str, org: &OrgId, lease: Duration) -> Result<Claim, ClusterError>;

    /// Frees leases `node` holds with these tokens, for another node to claim at
    /// once.
    async fn release(&self, node: &str, held: &[Held]) -> Result<(), ClusterError>;

    /// The org's session was removed: its lease and its published snapshot are
    /// deleted, so no node runs it any more. Fenced by the token.
    async fn remove(&self, node: &str, held: &Held) -> Result<(), ClusterError>;

    /// Makes a free lease for every org of `orgs` that has none (sessions stored
    /// before the cluster ran them), for the nodes to claim.
    async fn seed(&self, orgs: &[OrgId]) -> Result<(), ClusterError>;

    /// Who owns the org now.
    async fn owner(&self, org: &OrgId) -> Result<Owner, ClusterError>;

    /// Publishes the org's snapshot as `node`'s, fenced by `token`.
    async fn publish(
        &self,
        node: &str,
        token: Token,
        snapshot: &SessionSnapshot,
    ) -> Result<(), ClusterError>;

    /// Every published snapshot.
    async fn published(&self) -> Result<Vec<Published>, ClusterError>;

    /// One org's published snapshot, if any.
    async fn published_of(&self, org: &OrgId) -> Result<Option<Published>, ClusterError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, orgs: u64, live: bool) -> NodeLoad {
        NodeLoad {
            node_id: id.into(),
            last_seen: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            orgs,
            live,
        }
    }

    #[test]
    fn shares_and_the_least_loaded_node() {
        // (nodes, leases) → (fair share, least loaded)
        #[rustfmt::skip]
        let table: Vec<(Vec<NodeLoad>, u64, u64, Option<&str>)> = vec![
            (vec![], 0, 0, None),
            (vec![], 5, 5, None),
            (vec![node("a", 0, true)], 0, 0, Some("a")),
            (vec![node("a", 3, true), node("b", 1, true)], 4, 2, Some("b")),
            (vec![node("a", 3, true), node("b", 3, true), node("c", 3, true)], 10, 4, Some("a")),
            (vec![node("a", 0, false), node("b", 5, true)], 5, 5, Some("b")),
            (vec![node("a", 334, true), node("b", 333, true), node("c", 0, false)], 1000, 500, Some("b")),
        ];
        for (nodes, leases, share, least) in table {
            let census = Census { nodes, leases };
            assert_eq!(census.fair_share(), share, "{census:?}");
            assert_eq!(
                census.least_loaded().map(|n| n.node_id.as_str()),
                least,
                "{census:?}"
            );
        }
    }
}
