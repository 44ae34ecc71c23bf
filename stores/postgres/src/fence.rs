//! Fencing: every write on behalf of an org carries the token of the lease this
//! node holds for it, checked by the database in the write's own transaction.
//!
//! [`Fence`] says which token this node holds for an org (none: the write is
//! refused without a round trip) and hears of a refusal, so that the node stops
//! the org at once. [`check`] runs `wa_fence` (migration 0002): the lease row is
//! locked `FOR SHARE` until the transaction ends and must still have the token
//! and not have expired.

use tokio_postgres::GenericClient;
use wa_actors::OrgId;
use wa_actors::cluster::Fencing;

/// The tokens of the leases this node holds (implemented by
/// [`wa_actors::cluster::Fencing`]).
pub trait Fence: Send + Sync + 'static {
    /// The token of the org's lease while this node holds it. `org` is an
    /// organization id (a store id).
    fn token(&self, org: &str) -> Option<i64>;

    /// A write of `org` was refused: its lease moved on.
    fn refused(&self, org: &str);
}

impl Fence for Fencing {
    fn token(&self, org: &str) -> Option<i64> {
        OrgId::parse(org)
            .ok()
            .and_then(|org| Fencing::token(self, &org))
    }

    fn refused(&self, org: &str) {
        if let Ok(org) = OrgId::parse(org) {
            Fencing::refused(self, &org);
        }
    }
}

/// What a fence check found.
#[derive(Debug)]
pub(crate) enum Checked {
    /// The lease holds, and stays locked until the transaction ends.
    Held,
    /// Not this node's lease (any more): the write must not happen. The fence has
    /// been told.
    Refused,
}

/// Checks, inside the caller's transaction, that this node still holds `org`'s
/// lease.
pub(crate) async fn check(
    tx: &impl GenericClient,
    fence: &dyn Fence,
    org: &str,
) -> Result<Checked, tokio_postgres::Error> {
    let Some(token) = fence.token(org) else {
        fence.refused(org);
        return Ok(Checked::Refused);
    };
    let held: bool = tx
        .query_one("SELECT wa_fence($1, $2)", &[&org, &token])
        .await?
        .get(0);
    if held {
        Ok(Checked::Held)
    } else {
        fence.refused(org);
        Ok(Checked::Refused)
    }
}
