//! [`ClusterNode`]: one daemon's part in the cluster. It takes leases, keeps them,
//! gives them back, and starts and stops the org actors that go with them.
//!
//! Every `renew` period, one tick:
//!
//! 1. heartbeat;
//! 2. renew exactly the leases held (and those whose org is being stopped); a
//!    lease that did not renew (it expired, or another node holds it now) is
//!    lost: its actor is stopped at once;
//! 3. claim free leases up to this node's fair share, and start their orgs as
//!    takeovers (spread over `takeover_gap` each, never all at once);
//! 4. give up the leases of orgs whose session was removed;
//! 5. show the snapshots other nodes published.
//!
//! Every lease held has a local deadline: the instant its last confirmed renewal
//! was *sent*, plus the lease, less the time a stop may take (`stop_bound`) and a
//! margin. The database cannot have let the lease run out before that instant.
//! When it passes without a newer confirmed renewal (the database is slow,
//! unreachable, or its connection silently dead), the org is stopped at once,
//! without asking the database: its actor is gone before any other node can
//! claim the lease. Every call to the store is bounded in time, so a dead
//! connection never holds a tick for long either.
//!
//! A lost lease keeps its token until its actor stopped (an ack during the stop
//! still records the message as sent, while the database lets it), is renewed
//! meanwhile, and is released (with that token) only then: no other node claims
//! it while this node's connection may still be open.
//!
//! A write that the database refuses ([`Fencing::refused`]) loses its org at once,
//! without waiting for the tick. On SIGTERM, [`ClusterNode::leave`] stops being a
//! live node, keeps renewing while it stops every org with its state flushed, and
//! frees each lease as soon as its org stopped, for the others to take at once.
//!
//! The node's state sits behind one async mutex, never held across a call to the
//! store or an actor. Claims and give-ups, which must see the database and the
//! state agree, take a second mutex of their own.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::RngExt;
use tokio::sync::{Mutex, Notify, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::store::{Claim, ClusterError, Held, LeaseStore, Owner, Published};
use super::{Fencing, Token};
use crate::{OrgId, SessionSnapshot, SessionStatus, Supervisor};

/// Kept between a lease's local deadline and the end of its stop, for clocks that
/// drift and a stop that reports late.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

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
    /// The longest an org's actor takes to stop ([`Supervisor::release_bound`]).
    pub stop_bound: Duration,
}

impl ClusterSpec {
    /// How long after a renewal was sent its orgs may still be driven: the lease
    /// less the stop and the margin.
    pub fn drive_for(&self) -> Duration {
        self.lease
            .saturating_sub(self.stop_bound)
            .saturating_sub(DEADLINE_MARGIN)
    }

    /// How long one call to the store may take before it counts as failed.
    fn call_bound(&self) -> Duration {
        self.renew.max(Duration::from_secs(1))
    }
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
    /// Held by a claim or a give-up from its look at the state to the state
    /// changed after the store's answer, so that two never cross.
    claims: Mutex<()>,
    /// Rung to run a tick now (a lease was released somewhere). Shared so the
    /// tick loop can wait on it without keeping the node alive.
    wake: Arc<Notify>,
}

/// Whether this node still takes orgs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Membership {
    #[default]
    Member,
    /// SIGTERM: handing every org over; renewing, never claiming.
    Leaving,
}

#[derive(Default)]
struct State {
    held: HashMap<OrgId, HeldOrg>,
    /// Leases whose org's actor is being stopped (a loss or a handover), with
    /// their token: still renewed, never claimed meanwhile, released once the
    /// actor stopped.
    stopping: HashMap<OrgId, Token>,
    /// Orgs shown from other nodes' snapshots.
    mirrored: HashSet<OrgId>,
    membership: Membership,
}

struct HeldOrg {
    token: Token,
    /// Requests about the org being answered here right now.
    busy: u32,
    /// The org is stopped at this instant unless a renewal confirmed first.
    deadline: Instant,
    publisher: AbortHandle,
}

impl Drop for HeldOrg {
    fn drop(&mut self) {
        self.publisher.abort();
    }
}

impl State {
    /// Every lease to renew: held, or held while its org stops.
    fn leases(&self) -> Vec<Held> {
        let held = self.held.iter().map(|(org, h)| (org, h.token));
        let stopping = self.stopping.iter().map(|(org, token)| (org, *token));
        held.chain(stopping)
            .map(|(org, token)| Held {
                org: org.clone(),
                token,
            })
            .collect()
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
        let bound = spec.call_bound();
        bounded(bound, store.join(&spec.node_id, spec.lease)).await?;
        bounded(bound, store.seed(&stored)).await?;
        let node = Self {
            inner: Arc::new(Inner {
                spec,
                store,
                supervisor,
                fencing,
                state: Mutex::new(State::default()),
                claims: Mutex::new(()),
                wake: Arc::new(Notify::new()),
            }),
        };
        tokio::spawn(ticks(Arc::downgrade(&node.inner)));
        tokio::spawn(deadlines(Arc::downgrade(&node.inner)));
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

    /// Orgs whose actor is being stopped, their lease still held.
    #[cfg(test)]
    pub(crate) async fn stopping(&self) -> Vec<OrgId> {
        let state = self.inner.state.lock().await;
        state.stopping.keys().cloned().collect()
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
        match inner.bounded(inner.store.owner(org)).await? {
            Owner::Node(node) if node != *me => return Ok(Route::Node(node)),
            // Ours in the database but not held here: a loss under way (the
            // claim waits for it), or a lease of an earlier run of this node.
            Owner::Node(_) => return self.acquire(org).await,
            Owner::Nobody if !may_place => return Ok(Route::Here),
            Owner::Nobody | Owner::Free => {}
        }
        let census = inner
            .bounded(inner.store.census(inner.spec.lease, inner.spec.lease))
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
        let _claiming = inner.claims.lock().await;
        {
            let mut state = inner.state.lock().await;
            if state.membership == Membership::Leaving {
                return Err(ClusterError::Store("this node is stopping".into()));
            }
            if let Some(held) = state.held.get_mut(org) {
                held.busy += 1;
                return Ok(Route::Here);
            }
            if state.stopping.contains_key(org) {
                return Err(ClusterError::Store(
                    "the organization is being handed over; retry in a moment".into(),
                ));
            }
        }
        let sent = Instant::now();
        let claim = inner
            .store
            .claim(&inner.spec.node_id, org, inner.spec.lease);
        match inner.bounded(claim).await? {
            Claim::Won(token) => {
                let mut state = inner.state.lock().await;
                if state.membership == Membership::Leaving {
                    drop(state);
                    inner.release(org, token).await;
                    return Err(ClusterError::Store("this node is stopping".into()));
                }
                inner.hold(&mut state, org, token, 1, sent);
                Ok(Route::Here)
            }
            Claim::HeldBy(node) => Ok(Route::Node(node)),
        }
    }

    /// A request answered here is done; an org left without a session (a clean
    /// or a logout, or nothing was started) gives its lease up at once.
    pub async fn finish(&self, org: &OrgId) {
        let inner = &self.inner;
        if let Some(held) = inner.state.lock().await.held.get_mut(org) {
            held.busy = held.busy.saturating_sub(1);
        }
        inner.give_up_if_removed(org).await;
    }

    /// Shows the snapshot another node published for `org` (its publication was
    /// announced), unless the org runs here.
    pub async fn mirror_one(&self, org: &OrgId) {
        let inner = &self.inner;
        match inner.bounded(inner.store.published_of(org)).await {
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
    /// with its state flushed and its lease freed for the others as soon as it
    /// stopped. The leases are renewed until then. Bounded: every call to the
    /// store, and every stop, has its time.
    pub async fn leave(&self) {
        let inner = &self.inner;
        let handed: Vec<(OrgId, Token)> = {
            let mut state = inner.state.lock().await;
            state.membership = Membership::Leaving;
            let orgs: Vec<OrgId> = state.held.keys().cloned().collect();
            orgs.into_iter()
                .filter_map(|org| {
                    let held = state.held.remove(&org)?;
                    state.stopping.insert(org.clone(), held.token);
                    Some((org, held.token))
                })
                .collect()
        };
        if let Err(e) = inner.bounded(inner.store.leave(&inner.spec.node_id)).await {
            tracing::warn!(error = %e, "could not leave the cluster's live nodes");
        }
        let mut stopping = tokio::task::JoinSet::new();
        for (org, token) in handed {
            stopping.spawn(stop_then_release(
                Arc::downgrade(inner),
                inner.supervisor.clone(),
                org,
                token,
            ));
        }
        let count = stopping.len();
        while stopping.join_next().await.is_some() {}
        tracing::info!(count, "left the cluster; every session handed over");
    }
}

/// Runs `call` on the store, for at most `bound`: a connection that went silent
/// counts as a failure instead of holding the caller.
async fn bounded<T>(
    bound: Duration,
    call: impl Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(bound, call).await {
        Ok(answer) => answer,
        Err(_) => Err(ClusterError::Store(format!(
            "no answer within {} ms",
            bound.as_millis()
        ))),
    }
}

async fn ticks(inner: Weak<Inner>) {
    let Some(period) = inner.upgrade().map(|i| i.spec.renew) else {
        return;
    };
    loop {
        let Some(node) = inner.upgrade() else { return };
        node.tick().await;
        let wake = node.wake.clone().notified_owned();
        drop(node);
        let _ = tokio::time::timeout(period, wake).await;
    }
}

/// Stops every org whose local deadline passed without a confirmed renewal.
async fn deadlines(inner: Weak<Inner>) {
    loop {
        let Some(node) = inner.upgrade() else { return };
        let next = {
            let mut state = node.state.lock().await;
            let now = Instant::now();
            let late: Vec<OrgId> = state
                .held
                .iter()
                .filter(|(_, held)| held.deadline <= now)
                .map(|(org, _)| org.clone())
                .collect();
            if !late.is_empty() {
                tracing::error!(
                    count = late.len(),
                    "no renewal of these leases was confirmed in time; stopping their sessions before the leases can run out"
                );
            }
            for org in late {
                node.lose(&mut state, &org);
            }
            state.held.values().map(|held| held.deadline).min()
        };
        // A lease taken from now on is due no earlier than this.
        let idle = Instant::now()
            + node
                .spec
                .renew
                .min(node.spec.drive_for())
                .max(Duration::from_millis(100));
        drop(node);
        tokio::time::sleep_until(next.map_or(idle, |next| next.min(idle))).await;
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

/// Stops the org's actor, then forgets its token and frees its lease (a lease
/// that moved on is left alone: the token no longer matches).
async fn stop_then_release(inner: Weak<Inner>, supervisor: Supervisor, org: OrgId, token: Token) {
    if let Err(e) = supervisor.release(&org).await {
        tracing::warn!(org_id = %org, error = %e, "a session did not stop in time");
    }
    let Some(inner) = inner.upgrade() else { return };
    if inner.fencing.token(&org) == Some(token) {
        inner.fencing.forget(&org);
    }
    inner.release(&org, token).await;
    inner.state.lock().await.stopping.remove(&org);
    inner.wake.notify_one();
}

impl Inner {
    fn me(&self) -> &str {
        &self.spec.node_id
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, ClusterError>>,
    ) -> Result<T, ClusterError> {
        bounded(self.spec.call_bound(), call).await
    }

    /// Frees one lease for the other nodes (it expires by itself when the store
    /// cannot be reached).
    async fn release(&self, org: &OrgId, token: Token) {
        let held = Held {
            org: org.clone(),
            token,
        };
        let release = self.store.release(self.me(), std::slice::from_ref(&held));
        if let Err(e) = self.bounded(release).await {
            tracing::warn!(org_id = %org, error = %e, "a lease could not be released; it expires by itself");
        }
    }

    async fn busy_if_held(&self, org: &OrgId) -> Option<Route> {
        let mut state = self.state.lock().await;
        let held = state.held.get_mut(org)?;
        held.busy += 1;
        Some(Route::Here)
    }

    async fn tick(self: &Arc<Self>) {
        let membership = self.state.lock().await.membership;
        if membership == Membership::Member
            && let Err(e) = self.bounded(self.store.heartbeat(self.me())).await
        {
            tracing::warn!(error = %e, "cluster heartbeat failed");
        }
        self.renew().await;
        if membership == Membership::Leaving {
            return;
        }
        // Read before claiming: a session taken over starts from what its last
        // node published (paired, banned until, logged out), also on this node's
        // first tick, when nothing else has been read yet.
        match self.bounded(self.store.published()).await {
            Ok(all) => {
                let mut state = self.state.lock().await;
                self.show_all(&mut state, all);
            }
            Err(e) => tracing::debug!(error = %e, "published snapshots could not be read"),
        }
        self.claim_share().await;
        // A removed session's actor may still have been stopping when its request
        // finished; whatever it left is given up here. No settling time: a lease
        // taken for a request is busy until it finishes, and one taken over has
        // its actor running from the claim on.
        let orgs: Vec<OrgId> = self.state.lock().await.held.keys().cloned().collect();
        for org in orgs {
            self.give_up_if_removed(&org).await;
        }
    }

    /// Renews exactly the leases held; a held one that did not renew is lost. A
    /// failed renewal changes nothing: the local deadlines stop the orgs in time
    /// unless a later renewal confirms first.
    async fn renew(self: &Arc<Self>) {
        let leases = self.state.lock().await.leases();
        if leases.is_empty() {
            return;
        }
        let sent = Instant::now();
        let renewal = self.store.renew(self.me(), &leases, self.spec.lease);
        let renewed: BTreeSet<Held> = match self.bounded(renewal).await {
            Ok(renewed) => renewed.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, count = leases.len(), "leases could not be renewed; their sessions stop at their deadline unless a renewal succeeds first");
                return;
            }
        };
        let deadline = sent + self.spec.drive_for();
        let mut state = self.state.lock().await;
        for lease in leases {
            let Some(held) = state.held.get_mut(&lease.org) else {
                continue;
            };
            if held.token != lease.token {
                continue;
            }
            if renewed.contains(&lease) {
                held.deadline = held.deadline.max(deadline);
            } else {
                tracing::warn!(org_id = %lease.org, "the lease was not renewed (it expired or moved); stopping the session");
                self.lose(&mut state, &lease.org);
            }
        }
    }

    /// Claims free leases up to this node's fair share and takes their orgs over.
    async fn claim_share(self: &Arc<Self>) {
        let census = match self
            .bounded(self.store.census(self.spec.lease, self.spec.lease))
            .await
        {
            Ok(census) => census,
            Err(e) => {
                tracing::warn!(error = %e, "the cluster's census failed");
                return;
            }
        };
        let _claiming = self.claims.lock().await;
        let (held, skip) = {
            let state = self.state.lock().await;
            if state.membership == Membership::Leaving {
                return;
            }
            let skip: Vec<OrgId> = state.stopping.keys().cloned().collect();
            (state.held.len() as u64, skip)
        };
        let share = census.fair_share();
        if held >= share {
            return;
        }
        let sent = Instant::now();
        let claim = self
            .store
            .claim_free(self.me(), share - held, &skip, self.spec.lease);
        let claimed = match self.bounded(claim).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "free leases could not be claimed");
                return;
            }
        };
        if claimed.is_empty() {
            return;
        }
        {
            let mut state = self.state.lock().await;
            if state.membership == Membership::Leaving {
                drop(state);
                for Held { org, token } in claimed {
                    self.release(&org, token).await;
                }
                return;
            }
            for Held { org, token } in &claimed {
                self.hold(&mut state, org, *token, 0, sent);
            }
        }
        tracing::info!(
            count = claimed.len(),
            "taking sessions over from other nodes"
        );
        let spread = self.spec.takeover_gap.saturating_mul(claimed.len() as u32);
        for Held { org, token } in claimed {
            let after = if spread.is_zero() {
                Duration::ZERO
            } else {
                spread.mul_f64(rand::rng().random_range(0.0..1.0))
            };
            if let Err(e) = self.supervisor.take_over(&org, after).await {
                tracing::error!(org_id = %org, error = %e, "a session could not be taken over; freeing its lease");
                let mut state = self.state.lock().await;
                if state.held.get(&org).is_some_and(|h| h.token == token) {
                    state.held.remove(&org);
                    self.fencing.forget(&org);
                    drop(state);
                    self.release(&org, token).await;
                }
            }
        }
    }

    /// Records a lease won by a claim sent at `sent`, and starts publishing the
    /// org's snapshots.
    fn hold(
        self: &Arc<Self>,
        state: &mut State,
        org: &OrgId,
        token: Token,
        busy: u32,
        sent: Instant,
    ) {
        self.fencing.hold(org, token);
        let publisher = tokio::spawn(publish(Arc::downgrade(self), org.clone(), token));
        state.mirrored.remove(org);
        state.held.insert(
            org.clone(),
            HeldOrg {
                token,
                busy,
                deadline: sent + self.spec.drive_for(),
                publisher: publisher.abort_handle(),
            },
        );
    }

    /// The lease of `org` is gone, or about to be: its actor is stopped at once
    /// (in a task of its own: the stop may take the connection's grace), and its
    /// token kept until then, so that what the stop flushes is still written
    /// while the database lets it.
    fn lose(self: &Arc<Self>, state: &mut State, org: &OrgId) {
        let Some(held) = state.held.remove(org) else {
            return;
        };
        state.stopping.insert(org.clone(), held.token);
        tokio::spawn(stop_then_release(
            Arc::downgrade(self),
            self.supervisor.clone(),
            org.clone(),
            held.token,
        ));
    }

    /// Gives up the lease of an org whose session was removed (or never started
    /// by the request that claimed it), once no request is busy with it.
    async fn give_up_if_removed(&self, org: &OrgId) {
        let _claiming = self.claims.lock().await;
        let held = {
            let mut state = self.state.lock().await;
            let Some(held) = state.held.get(org) else {
                return;
            };
            if held.busy > 0
                || self.supervisor.runs(org)
                || self.supervisor.status(org).status != SessionStatus::NotStarted
            {
                return;
            }
            // Out of the table while the store answers: a request for the org
            // waits for the claim mutex, then claims afresh.
            state.held.remove(org).expect("just seen")
        };
        let lease = Held {
            org: org.clone(),
            token: held.token,
        };
        match self.bounded(self.store.remove(self.me(), &lease)).await {
            Ok(()) | Err(ClusterError::Fenced) => {
                self.fencing.forget(org);
            }
            Err(e) => {
                tracing::warn!(org_id = %org, error = %e, "the lease of a removed session could not be given up");
                self.state.lock().await.held.insert(org.clone(), held);
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
            match node
                .bounded(node.store.publish(node.me(), token, &snapshot))
                .await
            {
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
