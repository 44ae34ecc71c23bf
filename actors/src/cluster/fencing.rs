//! [`Fencing`]: the leases this node holds, by org, as every store write of an org
//! reads them.
//!
//! A write on behalf of an org (its WhatsApp store, its sim credentials and
//! sends, its outbox progress, its snapshot) carries the token this table holds
//! for the org, and the database applies it only while the org's lease still has
//! that token and has not expired, in the same transaction. A write whose org is
//! not in the table is refused without asking the database: this node does not
//! own the org. A refused write is reported back with [`Fencing::refused`]: the
//! lease moved on, so the cluster node stops the org at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use crate::OrgId;

/// A lease's fencing token: it grows with every new owner of the org.
pub type Token = i64;

/// The tokens of the leases this node holds (cheap to clone; every clone is the
/// same table).
#[derive(Clone)]
pub struct Fencing {
    inner: Arc<Inner>,
}

struct Inner {
    tokens: RwLock<HashMap<OrgId, Token>>,
    refusals: mpsc::UnboundedSender<OrgId>,
}

impl std::fmt::Debug for Fencing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fencing")
            .field("held", &self.inner.tokens.read().unwrap().len())
            .finish()
    }
}

impl Fencing {
    /// An empty table, and the stream of orgs whose writes were refused.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<OrgId>) {
        let (refusals, refused) = mpsc::unbounded_channel();
        let fencing = Self {
            inner: Arc::new(Inner {
                tokens: RwLock::new(HashMap::new()),
                refusals,
            }),
        };
        (fencing, refused)
    }

    /// The token of the org's lease, while this node holds it.
    pub fn token(&self, org: &OrgId) -> Option<Token> {
        self.inner.tokens.read().unwrap().get(org).copied()
    }

    /// Records that this node holds the org's lease with `token`.
    pub fn hold(&self, org: &OrgId, token: Token) {
        self.inner
            .tokens
            .write()
            .unwrap()
            .insert(org.clone(), token);
    }

    /// Forgets the org's lease: from now on every write of the org is refused here.
    pub fn forget(&self, org: &OrgId) -> Option<Token> {
        self.inner.tokens.write().unwrap().remove(org)
    }

    /// Every lease held, by org id.
    pub fn held(&self) -> Vec<(OrgId, Token)> {
        let mut held: Vec<(OrgId, Token)> = self
            .inner
            .tokens
            .read()
            .unwrap()
            .iter()
            .map(|(org, token)| (org.clone(), *token))
            .collect();
        held.sort();
        held
    }

    /// A write of `org` was refused by the database: its lease is no longer this
    /// node's. Never blocks.
    pub fn refused(&self, org: &OrgId) {
        let _ = self.inner.refusals.send(org.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_forgets_and_reports_refusals() {
        let (fencing, mut refused) = Fencing::new();
        let a = OrgId::parse("a").unwrap();
        let b = OrgId::parse("b").unwrap();
        assert_eq!(fencing.token(&a), None);
        fencing.hold(&b, 7);
        fencing.hold(&a, 3);
        let clone = fencing.clone();
        assert_eq!(clone.token(&a), Some(3));
        assert_eq!(clone.held(), vec![(a.clone(), 3), (b.clone(), 7)]);
        fencing.hold(&a, 4);
        assert_eq!(fencing.token(&a), Some(4), "a new owner's token replaces");
        assert_eq!(clone.forget(&a), Some(4));
        assert_eq!(fencing.token(&a), None);
        clone.refused(&b);
        assert_eq!(refused.try_recv().unwrap(), b);
        assert!(refused.try_recv().is_err());
    }
}
