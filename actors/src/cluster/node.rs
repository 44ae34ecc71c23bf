//! [`ClusterNode`]: one daemon's part in the cluster. It takes leases, keeps them,
//! gives them back, and starts and stops the org actors that go with them.
//!
//! Every `renew` period, one tick:
//!
//! 1. heartbeat;
//! 2. renew every lease held; a lease that did not renew (it expired, or another
//!    node holds it now), or every lease when the renewal itself failed, is lost:
//!    its token is forgotten first (from then on every write of the org is refused
//!    here) and its actor stopped at once;
//! 3. claim free leases up to this node's fair share, and start their orgs as
//!    takeovers (spread over `takeover_gap` each, never all at once);
//! 4. give up the leases of orgs whose session was removed;
//! 5. show the snapshots other nodes published.
//!
//! A write that the database refuses ([`Fencing::refused`]) loses its org at once,
//! without waiting for the tick. On SIGTERM, [`ClusterNode::leave`] stops being a
//! live node, stops every org with its state flushed, and frees their leases for
//! the others to take at once.
//!
//! The node's state sits behind one async mutex: a tick, a claim for a request,
//! and a loss never interleave. Nothing awaits a stopping actor under it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::AbortHandle;

use super::store::{Claim, ClusterError, Held, LeaseStore, Owner, Published};
use super::{Fencing, Token};
use crate::{OrgId, SessionSnapshot, SessionStatus, Supervisor};

/// How a node takes part (CONTRACT §13, `[cluster]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// This node's name.
    pub node_id: String,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
    /// How often leases are renewed (and free ones looked for).
    pub renew: Duration,
    /// Average gap between two orgs taken over at once, so that many orgs of a
    /// dead node do not all reconnect in the same instant.
    pub takeover_gap: Duration,
}

/// Where a request about one org is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Here: this node holds the org's lease (until [`ClusterNode::finish`]), or
    /// no node does and none needs to.
    Here,
    /// On this node, which holds (or is chosen to take) the org's lease.
    Node(String),
}

/// One daemon's part in the cluster (cheap to clone).
#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<Inner>,
}

struct Inner {
    spec: ClusterSpec,
    store: Arc<dyn LeaseStore>,
    supervisor: Supervisor,
    fencing: Fencing,
    state: Mutex<State>,
    /// Rung to run a tick now (a lease was released somewhere). Shared so the
    /// tick loop can wait on it without keeping the node alive.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    held: HashMap<OrgId, HeldOrg>,
    /// Orgs whose actor is being stopped after a loss; never claimed meanwhile.
    stopping: HashSet<OrgId>,
    /// Orgs shown from other nodes' snapshots.
    mirrored: HashSet<OrgId>,
    leaving: bool,
}

struct HeldOrg {
    token: Token,
    /// Requests about the org being answered here right now.
    busy: u32,
    publisher: AbortHandle,
}

impl Drop for HeldOrg {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

impl ClusterNode {
    /// Joins the cluster: seeds leases for sessions stored before, then ticks
    /// every `renew` until [`ClusterNode::leave`]. `refused` is the stream of
    /// [`Fencing::new`].
    pub async fn start(
        spec: ClusterSpec,
        store: Arc<dyn LeaseStore>,
        supervisor: Supervisor,
        fencing: Fencing,
        refused: mpsc::UnboundedReceiver<OrgId>,
        stored: Vec<OrgId>,
    ) -> Result<Self, ClusterError> {
        store.heartbeat(&spec.node_id).await?;
        store.seed(&stored).await?;
        let node = Self {
            inner: Arc::new(Inner {
                spec,
                store,
                supervisor,
                fencing,
                state: Mutex::new(State::default()),
                wake: Arc::new(Notify::new()),
            }),
        };
        tokio::spawn(ticks(Arc::downgrade(&node.inner)));
        tokio::spawn(refusals(Arc::downgrade(&node.inner), refused));
        Ok(node)
    }

    pub fn node_id(&self) -> &str {
        &self.inner.spec.node_id
    }

    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.inner.store
    }

    /// How long a lease lasts without renewal.
    pub fn lease(&self) -> Duration {
        self.inner.spec.lease
    }

    /// Runs a tick now (another node released leases, or a test wants one).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs one tick and waits for it (tests, and the first tick at start).
    pub async fn tick(&self) {
        self.inner.tick().await;
    }

    /// Every lease this node holds.
    pub fn held(&self) -> Vec<(OrgId, Token)> {
        self.inner.fencing.held()
    }

    /// Where a request about `org` is answered. `may_place`: a request that starts
    /// a session (start, restore, clean) takes a lease for an org that has none;
    /// others are answered here when no node runs the org.
    ///
    /// [`Route::Here`] for an org held here marks it busy until
    /// [`ClusterNode::finish`], so it is not given up meanwhile.
    pub async fn route(&self, org: &OrgId, may_place: bool) -> Result<Route, ClusterError> {
        let inner = &self.inner;
        if let Some(route) = inner.busy_if_held(org).await {
            return Ok(route);
        }
        let me = &inner.spec.node_id;
        match inner.store.owner(org).await? {
            Owner::Node(node) if node != *me => return Ok(Route::Node(node)),
            // Ours in the database but not held here: a loss under way (the
            // claim waits for it), or a lease of an earlier run of this node.
            Owner::Node(_) => return self.acquire(org).await,
            Owner::Nobody if !may_place => return Ok(Route::Here),
            Owner::Nobody | Owner::Free => {}
        }
        let census = inner
            .store
            .census(inner.spec.lease, inner.spec.lease)
            .await?;
        match census.least_loaded() {
            Some(least) if least.node_id != *me => Ok(Route::Node(least.node_id.clone())),
            _ => self.acquire(org).await,
        }
    }

    /// Takes the org's lease for a request answered here (it may be free, or the
    /// org may have none): [`Route::Here`], busy until [`ClusterNode::finish`], or
    /// the node that holds it.
    pub async fn acquire(&self, org: &OrgId) -> Result<Route, ClusterError> {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        if state.leaving {
            return Err(ClusterError::Store("this node is stopping".into()));
        }
        if let Some(held) = state.held.get_mut(org) {
            held.busy += 1;
            return Ok(Route::Here);
        }
        if state.stopping.contains(org) {
            return Err(ClusterError::Store(
                "the organization is being handed over; retry in a moment".into(),
            ));
        }
        match inner
            .store
            .claim(&inner.spec.node_id, org, inner.spec.lease)
            .await?
        {
            Claim::Won(token) => {
                inner.hold(&mut state, org, token, 1);
                Ok(Route::Here)
            }
            Claim::HeldBy(node) => Ok(Route::Node(node)),
        }
    }

    /// A request answered here is done; an org left without a session (a clean
    /// or a logout, or nothing was started) gives its lease up at once.
    pub async fn finish(&self, org: &OrgId) {
        let inner = &self.inner;
        let mut state = inner.state.lock().await;
        if let Some(held) = state.held.get_mut(org) {
            held.busy = held.busy.saturating_sub(1);
        }
        inner.give_up_if_removed(&mut state, org).await;
    }

    /// Shows the snapshot another node published for `org` (its publication was
    /// announced), unless the org runs here.
    pub async fn mirror_one(&self, org: &OrgId) {
        let inner = &self.inner;
        match inner.store.published_of(org).await {
            Ok(published) => {
                let mut state = inner.state.lock().await;
                if !state.held.contains_key(org) {
                    inner.show(&mut state, org, published);
                }
            }
            Err(e) => {
                tracing::debug!(org_id = %org, error = %e, "a published snapshot could not be read")
            }
        }
    }

    /// Leaves the cluster (SIGTERM): no longer a live node, then every org stopped
    /// with its state flushed and its lease freed for the others at once.
    pub async fn leave(&self) {
        let inner = &self.inner;
        let held: Vec<(OrgId, Token)> = {
            let mut state = inner.state.lock().await;
            state.leaving = true;
            state
                .held
                .iter()
                .map(|(org, h)| (org.clone(), h.token))
                .collect()
        };
        if let Err(e) = inner.store.leave(&inner.spec.node_id).await {
            tracing::warn!(error = %e, "could not leave the cluster's live nodes");
        }
        let mut stopping = tokio::task::JoinSet::new();
        for (org, token) in held {
            let inner = inner.clone();
            stopping.spawn(async move {
                if let Err(e) = inner.supervisor.release(&org).await {
                    tracing::warn!(org_id = %org, error = %e, "the session did not stop in time");
                }
                inner.fencing.forget(&org);
                let held = Held { org, token };
                if let Err(e) = inner
                    .store
                    .release(&inner.spec.node_id, std::slice::from_ref(&held))
                    .await
                {
                    tracing::warn!(org_id = %held.org, error = %e, "a lease could not be released; it expires by itself");
                }
            });
        }
        let count = stopping.len();
        while stopping.join_next().await.is_some() {}
        inner.state.lock().await.held.clear();
        tracing::info!(count, "left the cluster; every session handed over");
    }
}

async fn ticks(inner: Weak<Inner>) {
    let Some(period) = inner.upgrade().map(|i| i.spec.renew) else {
        return;
    };
    loop {
        let Some(node) = inner.upgrade() else { return };
        node.tick().await;
        if node.state.lock().await.leaving {
            return;
        }
        let wake = node.wake.clone().notified_owned();
        drop(node);
        let _ = tokio::time::timeout(period, wake).await;
    }
}

async fn refusals(inner: Weak<Inner>, mut refused: mpsc::UnboundedReceiver<OrgId>) {
    while let Some(org) = refused.recv().await {
        let Some(node) = inner.upgrade() else { return };
        let mut state = node.state.lock().await;
        if state.held.contains_key(&org) {
            tracing::warn!(org_id = %org, "a write was refused: the lease moved to another node; stopping the session");
            node.lose(&mut state, &org);
        }
    }
}

impl Inner {
    fn me(&self) -> &str {
        &self.spec.node_id
    }

    async fn busy_if_held(&self, org: &OrgId) -> Option<Route> {
        let mut state = self.state.lock().await;
        let held = state.held.get_mut(org)?;
        held.busy += 1;
        Some(Route::Here)
    }

    async fn tick(self: &Arc<Self>) {
        let mut state = self.state.lock().await;
        if state.leaving {
            return;
        }
        if let Err(e) = self.store.heartbeat(self.me()).await {
            tracing::warn!(error = %e, "cluster heartbeat failed");
        }
        self.renew(&mut state).await;
        self.claim_share(&mut state).await;
        // A removed session's actor may still have been stopping when its request
        // finished; whatever it left is given up here. No settling time: a lease
        // taken for a request is busy until it finishes, and one taken over has
        // its actor running from the claim on.
        let orgs: Vec<OrgId> = state.held.keys().cloned().collect();
        for org in orgs {
            self.give_up_if_removed(&mut state, &org).await;
        }
        match self.store.published().await {
            Ok(all) => self.show_all(&mut state, all),
            Err(e) => tracing::debug!(error = %e, "published snapshots could not be read"),
        }
    }

    /// Renews every lease; whatever did not renew is lost.
    async fn renew(self: &Arc<Self>, state: &mut State) {
        let renewed = match self.store.renew(self.me(), self.spec.lease).await {
            Ok(renewed) => renewed,
            Err(e) => {
                if !state.held.is_empty() {
                    tracing::error!(error = %e, held = state.held.len(), "leases could not be renewed; stopping every session of this node");
                }
                let all: Vec<OrgId> = state.held.keys().cloned().collect();
                for org in all {
                    self.lose(state, &org);
                }
                return;
            }
        };
        let renewed: HashMap<OrgId, Token> =
            renewed.into_iter().map(|h| (h.org, h.token)).collect();
        let lost: Vec<OrgId> = state
            .held
            .iter()
            .filter(|(org, held)| renewed.get(*org) != Some(&held.token))
            .map(|(org, _)| org.clone())
            .collect();
        for org in lost {
            tracing::warn!(org_id = %org, "the lease was not renewed (it expired or moved); stopping the session");
            self.lose(state, &org);
        }
        // Leases in our name that this process never took (a previous run under
        // the same node id): freed, for whoever claims them next with a new token.
        let strays: Vec<Held> = renewed
            .into_iter()
            .filter(|(org, _)| !state.held.contains_key(org))
            .map(|(org, token)| Held { org, token })
            .collect();
        if !strays.is_empty()
            && let Err(e) = self.store.release(self.me(), &strays).await
        {
            tracing::warn!(error = %e, "leases of an earlier run could not be freed");
        }
    }

    /// Claims free leases up to this node's fair share and takes their orgs over.
    async fn claim_share(self: &Arc<Self>, state: &mut State) {
        let census = match self.store.census(self.spec.lease, self.spec.lease).await {
            Ok(census) => census,
            Err(e) => {
                tracing::warn!(error = %e, "the cluster's census failed");
                return;
            }
        };
        let share = census.fair_share();
        let held = state.held.len() as u64;
        if held >= share {
            return;
        }
        let skip: Vec<OrgId> = state.stopping.iter().cloned().collect();
        let claimed = match self
            .store
            .claim_free(self.me(), share - held, &skip, self.spec.lease)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "free leases could not be claimed");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        tracing::info!(
            count = claimed.len(),
            "taking sessions over from other nodes"
        );
        let spread = self.spec.takeover_gap.saturating_mul(claimed.len() as u32);
        for Held { org, token } in claimed {
            self.hold(state, &org, token, 0);
            let after = if spread.is_zero() {
                Duration::ZERO
            } else {
                spread.mul_f64(rand::rng().random_range(0.0..1.0))
            };
            if let Err(e) = self.supervisor.take_over(&org, after).await {
                tracing::error!(org_id = %org, error = %e, "a session could not be taken over; freeing its lease");
                self.fencing.forget(&org);
                state.held.remove(&org);
                let held = Held { org, token };
                if let Err(e) = self.store.release(self.me(), &[held]).await {
                    tracing::warn!(error = %e, "the lease could not be freed; it expires by itself");
                }
            }
        }
    }

    /// Records a lease won, and starts publishing the org's snapshots.
    fn hold(self: &Arc<Self>, state: &mut State, org: &OrgId, token: Token, busy: u32) {
        self.fencing.hold(org, token);
        let publisher = tokio::spawn(publish(Arc::downgrade(self), org.clone(), token));
        state.mirrored.remove(org);
        state.held.insert(
            org.clone(),
            HeldOrg {
                token,
                busy,
                publisher: publisher.abort_handle(),
            },
        );
    }

    /// The lease of `org` is gone: every write is refused from now on, and the
    /// actor is stopped at once (in a task of its own: the stop may take the
    /// connection's grace).
    fn lose(self: &Arc<Self>, state: &mut State, org: &OrgId) {
        self.fencing.forget(org);
        state.held.remove(org);
        state.stopping.insert(org.clone());
        let inner = Arc::downgrade(self);
        let org = org.clone();
        let supervisor = self.supervisor.clone();
        tokio::spawn(async move {
            if let Err(e) = supervisor.release(&org).await {
                tracing::warn!(org_id = %org, error = %e, "a session that lost its lease did not stop in time");
            }
            if let Some(inner) = inner.upgrade() {
                inner.state.lock().await.stopping.remove(&org);
                inner.wake.notify_one();
            }
        });
    }

    /// Gives up the lease of an org whose session was removed (or never started
    /// by the request that claimed it), once no request is busy with it.
    async fn give_up_if_removed(&self, state: &mut State, org: &OrgId) {
        let Some(held) = state.held.get(org) else {
            return;
        };
        if held.busy > 0
            || self.supervisor.runs(org)
            || self.supervisor.status(org).status != SessionStatus::NotStarted
        {
            return;
        }
        let lease = Held {
            org: org.clone(),
            token: held.token,
        };
        match self.store.remove(self.me(), &lease).await {
            Ok(()) | Err(ClusterError::Fenced) => {
                self.fencing.forget(org);
                state.held.remove(org);
            }
            Err(e) => {
                tracing::warn!(org_id = %org, error = %e, "the lease of a removed session could not be given up");
            }
        }
    }

    fn show_all(&self, state: &mut State, all: Vec<Published>) {
        let mut seen = HashSet::new();
        for published in all {
            let org = published.snapshot.organization_id.clone();
            seen.insert(org.clone());
            if !state.held.contains_key(&org) {
                self.show(state, &org, Some(published));
            }
        }
        let gone: Vec<OrgId> = state
            .mirrored
            .iter()
            .filter(|org| !seen.contains(*org) && !state.held.contains_key(*org))
            .cloned()
            .collect();
        for org in gone {
            self.show(state, &org, None);
        }
    }

    /// Shows one org's published snapshot here (`None`: it has none any more).
    fn show(&self, state: &mut State, org: &OrgId, published: Option<Published>) {
        match published {
            Some(published) => {
                state.mirrored.insert(org.clone());
                self.supervisor.show_remote(as_seen(published));
            }
            None => {
                if state.mirrored.remove(org) {
                    self.supervisor
                        .show_remote(SessionSnapshot::not_started(org.clone()));
                }
            }
        }
    }
}

/// What a reader is shown of a published snapshot: while its node's lease is
/// lost and no node has taken the session over yet, a session that was live is
/// on its way back, as `reconnecting` (never `connecting` or `disconnected`, on
/// which the deployed client wipes it, CONTRACT §3).
fn as_seen(published: Published) -> SessionSnapshot {
    let mut snapshot = published.snapshot;
    if !published.owner_live && snapshot.status.is_active() && snapshot.phone_number.is_some() {
        snapshot.status = SessionStatus::Reconnecting;
        snapshot.qr = None;
        snapshot.pairing_code = None;
        snapshot.reason =
            Some("the node that drove this session stopped; another node takes it over".into());
    }
    snapshot
}

/// Publishes the org's snapshots while its lease is held here: each new one its
/// actor makes (those stamped with this node's id), fenced by `token`. A
/// refusal loses the org.
async fn publish(inner: Weak<Inner>, org: OrgId, token: Token) {
    let Some(mut snapshots) = inner.upgrade().map(|i| i.supervisor.follow(&org)) else {
        return;
    };
    loop {
        let snapshot = snapshots.borrow_and_update().clone();
        let Some(node) = inner.upgrade() else { return };
        if snapshot.node_id.as_deref() == Some(node.me()) {
            match node.store.publish(node.me(), token, &snapshot).await {
                Ok(()) => {}
                Err(ClusterError::Fenced) => {
                    node.fencing.refused(&org);
                    return;
                }
                Err(e) => {
                    tracing::warn!(org_id = %org, error = %e, "the session's snapshot could not be published; retrying");
                    drop(node);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        drop(node);
        if snapshots.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn snapshot(status: SessionStatus, phone: Option<&str>) -> SessionSnapshot {
        SessionSnapshot {
            status,
            phone_number: phone.map(str::to_owned),
            qr: Some("2@qr".into()),
            reason: Some("why".into()),
            node_id: Some("a".into()),
            updated_at: Utc::now(),
            ..SessionSnapshot::not_started(OrgId::parse("x").unwrap())
        }
    }

    /// A lost owner's live session reads `reconnecting`; anything else as published.
    #[test]
    fn what_readers_see_of_a_published_snapshot() {
        use SessionStatus as S;
        #[rustfmt::skip]
        let table = [
            // (status, paired, owner live) → (shown, told another node takes over)
            (S::Connected,    true,  true,  S::Connected,    false),
            (S::Connected,    true,  false, S::Reconnecting, true),
            (S::Reconnecting, true,  false, S::Reconnecting, true),
            (S::QrReady,      false, false, S::QrReady,      false),
            (S::Connecting,   false, false, S::Connecting,   false),
            (S::LoggedOut,    false, false, S::LoggedOut,    false),
            (S::Conflict,     true,  false, S::Conflict,     false),
            (S::Disconnected, true,  false, S::Disconnected, false),
        ];
        for (status, paired, owner_live, shown, told) in table {
            let published = Published {
                snapshot: snapshot(status, paired.then_some("573001234567")),
                owner_live,
            };
            let seen = as_seen(published.clone());
            assert_eq!(
                seen.status, shown,
                "{status} paired {paired} live {owner_live}"
            );
            if told {
                assert_eq!(seen.qr, None);
                assert!(seen.reason.unwrap().contains("another node"));
            } else {
                assert_eq!(seen, published.snapshot);
            }
        }
    }
}
