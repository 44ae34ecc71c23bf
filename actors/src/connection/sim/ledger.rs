//! [`SimLedger`]: what the fake phones keep outside one process when several
//! daemons share one database (CONTRACT §13).
//!
//! A fake phone is a process's own: its QR on screen, its faults. What a real
//! phone and WhatsApp's server would know of an account, though, must be the same
//! whichever node drives it: the credentials the pairing left, every message the
//! server received, and which connections of the account are open. With a ledger
//! the [`SimConnector`](super::SimConnector) keeps those there, so that a session
//! paired on one node resumes on another, and "sent exactly once, with its id"
//! and "never two connections at once" can be checked across processes.
//!
//! Without a ledger (the default) credentials are a file in the org's directory
//! and the rest lives in memory, as before.

use async_trait::async_trait;

use super::{SentRecord, SimCredentials, SimError};
use crate::OrgId;
use crate::connection::ConnectionError;

/// The shared record of every fake phone (see the module docs).
///
/// Writes on behalf of a connection are the connection's node's acts on the
/// account: an implementation refuses them once the node no longer owns the org
/// (`ConnectionError::NotConnected` for a send, as the server would drop a
/// replaced connection's stanza).
#[async_trait]
pub trait SimLedger: Send + Sync + 'static {
    /// The org's stored credentials; `None` when it has none.
    async fn credentials(&self, org: &OrgId) -> Result<Option<SimCredentials>, ConnectionError>;

    /// Stores the credentials a pairing made. Refuses to replace stored ones (a
    /// pairing never overwrites a session: it is backed up and wiped first).
    async fn pair(&self, org: &OrgId, credentials: &SimCredentials) -> Result<(), SimError>;

    /// A connection of `org` opens; returns its id. When another connection of
    /// the org is still open on a node that is alive, that is an overlap, and
    /// counted.
    async fn open(&self, org: &OrgId) -> Result<i64, ConnectionError>;

    /// Connection `link` of `org` is closed.
    async fn close(&self, org: &OrgId, link: i64);

    /// The server received a message from connection `link`.
    async fn record(
        &self,
        org: &OrgId,
        link: i64,
        sent: &SentRecord,
    ) -> Result<(), ConnectionError>;

    /// Every delivery attempt of `org`, in order.
    async fn sent(&self, org: &OrgId) -> Result<Vec<SentRecord>, SimError>;

    /// Overlaps counted so far, over every org.
    async fn overlaps(&self) -> Result<u64, SimError>;
}
