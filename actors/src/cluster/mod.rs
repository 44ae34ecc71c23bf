//! Several daemons on one database (CONTRACT §13): each org is driven by at most
//! one node, the one that holds its lease.
//!
//! - [`Fencing`]: the leases this node holds, which every store write of an org
//!   carries and the database checks in the same transaction;
//! - [`LeaseStore`]: what the nodes share (leases, heartbeats, published
//!   snapshots), implemented on PostgreSQL by `wa-store-postgres`;
//! - [`ClusterNode`]: takes, renews and gives up leases, and starts and stops the
//!   org actors with them through the [`Supervisor`](crate::Supervisor).
//!
//! The guarantee, and why it holds:
//!
//! - *At most one owner.* A lease names one node until it expires; only an
//!   expired (or released) lease can be claimed, in one statement, so two nodes
//!   never hold one at once in the database.
//! - *An owner that lost its lease stops driving at once.* A node stops an org as
//!   soon as a renewal does not extend its lease, and a node that was paused
//!   finds out at its first renewal after waking: before that, anything it would
//!   write is refused.
//! - *An owner cut off from the database stops by itself, in time.* Each lease
//!   held has a local deadline: when its last confirmed renewal was sent, plus
//!   the lease, less the longest stop and a margin. The database's own expiry
//!   cannot come earlier (it counted from a later instant), so a node whose
//!   renewals go unanswered has stopped the org before any other node can claim
//!   it, without needing the database to say so.
//! - *A write after the loss is impossible, not unlikely.* Every write on behalf
//!   of an org locks the lease row (`FOR SHARE`) and checks the token it carries
//!   and the expiry in the same transaction. A claim needs that row (`FOR
//!   UPDATE`): a write in flight finishes before the claim, a write after it sees
//!   the new token and is refused, and the refusal stops the org.
//! - *No takeover while the old connection may still be driven.* A lease is
//!   claimed only after it expired or was released; its owner released it only
//!   after the org's actor stopped, and stopped it before the local deadline
//!   otherwise (the configuration makes sure a lease holds a renewal period and
//!   a stop, [`ClusterSpec::drive_for`]).

mod fencing;
mod node;
mod store;
#[cfg(test)]
mod tests;

pub use fencing::{Fencing, Token};
pub use node::{ClusterNode, ClusterSpec, DEADLINE_MARGIN, Route};
pub use store::{Census, Claim, ClusterError, Held, LeaseStore, NodeLoad, Owner, Published};
