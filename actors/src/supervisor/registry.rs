//! The table every reader shares: org id → its snapshot, its current actor, and the
//! things that must outlive one actor's crash (store lease, cleanup history).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use ractor::ActorRef;
use tokio::sync::watch;

use crate::session::OrgMsg;
use crate::{ErrorWindow, OrgId, SessionSnapshot};

pub(crate) type Registry = Arc<RwLock<HashMap<OrgId, OrgSlot>>>;

/// Everything about one org that lives longer than one incarnation of its actor.
pub(crate) struct OrgSlot {
    /// The latest snapshot; the org actor publishes, everyone else reads.
    pub snapshot: watch::Sender<SessionSnapshot>,
    /// The running actor, if any.
    pub actor: Option<ActorRef<OrgMsg>>,
    /// Held by whoever has the org's store open. A restarted actor's connection waits
    /// for the crashed one's to shut down, so two clients never share a store.
    pub lease: Arc<tokio::sync::Mutex<()>>,
    /// Automatic cleanups, for restart intensity (CONTRACT §5).
    pub cleanups: Arc<Mutex<ErrorWindow>>,
}
