//! The daemon as one node of several on one PostgreSQL database (CONTRACT §13,
//! `[store] kind = "postgres"`).
//!
//! [`Database::open`] connects and migrates; the supervisor then runs on the
//! database's sessions and outbox, with the [`Fencing`] of this node's leases.
//! [`Node::start`] joins the cluster ([`ClusterNode`]), listens to the
//! database's notifications and answers the requests other nodes hand over:
//!
//! | channel | payload | this node |
//! |---|---|---|
//! | `wa_outbox` | org | wakes the org's delivery lane (another node accepted a message) |
//! | `wa_message` | message id | tells a caller waiting on that message (a compatible send) |
//! | `wa_snapshot` | org | shows the org's newly published snapshot |
//! | `wa_leases` | node | claims its share of the leases that node freed |
//! | `wa_commands` | node | runs the requests handed to it |
//! | `wa_replies` | request id | hands the answer to the request waiting for it |
//! | `wa_events` | node, event | shows another node's event to this node's live listeners ([`crate::shared_events`]) |
//!
//! Notifications are only a shortcut: ticks, polls and a full refresh after the
//! listening connection comes back cover any that are lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use wa_actors::OrgId;
use wa_actors::Supervisor;
use wa_actors::cluster::{ClusterError, ClusterNode, ClusterSpec, Fencing};
use wa_actors::outbox::MessageId;
use wa_actors::storage::SessionStore;
use wa_store_postgres::cluster::{LEASES_CHANNEL, SNAPSHOT_CHANNEL};
use wa_store_postgres::commands::{COMMANDS_CHANNEL, REPLIES_CHANNEL};
use wa_store_postgres::deadpool_postgres::Pool;
use wa_store_postgres::events::EVENTS_CHANNEL;
use wa_store_postgres::outbox::{MESSAGE_CHANNEL, OUTBOX_CHANNEL};
use wa_store_postgres::{Heard, PostgresCommands, PostgresLeases, tokio_postgres};

use crate::config::Config;
use crate::http::cluster::{ClusterHttp, run_forwarded};
use crate::live_events::LiveEvents;
use crate::shared_events;

/// How often handed-over requests are looked for without a notification.
const COMMAND_POLL: Duration = Duration::from_secs(1);
/// How often an awaited answer is looked for without a notification.
const REPLY_POLL: Duration = Duration::from_millis(250);
/// How long requests between nodes are kept in the database.
const COMMANDS_KEPT: Duration = Duration::from_secs(3600);
/// How long a starting node waits to be listening before it goes on without.
const LISTENING_WAIT: Duration = Duration::from_secs(10);

/// Why the database could not be used at start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    #[error("cannot reach the PostgreSQL database: {0}")]
    Connect(String),
    #[error("cannot migrate the PostgreSQL database: {0}")]
    Migrate(String),
    #[error("cannot join the cluster: {0}")]
    Join(String),
}

/// The database this node shares with the others.
pub struct Database {
    pub pool: Pool,
    pub config: tokio_postgres::Config,
    pub node_id: String,
    pub fencing: Fencing,
    refused: Mutex<Option<mpsc::UnboundedReceiver<OrgId>>>,
}

impl Database {
    /// Connects (the pool of `[store] pool_size`) and brings the schema up to
    /// date. Never logs the URL.
    pub async fn open(config: &Config) -> Result<Self, ClusterStartError> {
        let db = config
            .store
            .database()
            .map_err(|e| ClusterStartError::Connect(e.to_string()))?;
        let pool = wa_store_postgres::pool_for(db.clone(), config.store.pool_size)
            .map_err(|e| ClusterStartError::Connect(e.to_string()))?;
        wa_store_postgres::migrate(&pool)
            .await
            .map_err(|e| match e {
                wa_store_postgres::Error::Connection(_) => {
                    ClusterStartError::Connect(source_chain(&e))
                }
                other => ClusterStartError::Migrate(source_chain(&other)),
            })?;
        let (fencing, refused) = Fencing::new();
        Ok(Self {
            pool,
            config: db,
            node_id: config.cluster.node_id(),
            fencing,
            refused: Mutex::new(Some(refused)),
        })
    }
}

/// An error with its causes, on one line.
fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = match c.downcast_ref::<tokio_postgres::Error>() {
            Some(pg) => wa_store_postgres::describe(pg),
            None => c.to_string(),
        };
        text.push_str(": ");
        text.push_str(&more);
        cause = c.source();
    }
    text
}

/// Callers waiting for the answer of a request handed to another node.
#[derive(Clone, Default)]
pub struct Replies(Arc<Mutex<HashMap<i64, Arc<Notify>>>>);

impl Replies {
    /// Waits up to `within` for request `id`'s answer.
    pub async fn wait(
        &self,
        commands: &PostgresCommands,
        id: i64,
        within: Duration,
    ) -> Option<serde_json::Value> {
        let heard = self.0.lock().unwrap().entry(id).or_default().clone();
        let deadline = tokio::time::Instant::now() + within;
        let answer = loop {
            let notified = heard.notified();
            match commands.reply(id).await {
                Ok(Some(reply)) => break Some(reply),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "an answer could not be read"),
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break None;
            }
            let wait = (deadline - now).min(REPLY_POLL);
            let _ = tokio::time::timeout(wait, notified).await;
        };
        self.0.lock().unwrap().remove(&id);
        answer
    }

    fn heard(&self, id: i64) {
        if let Some(waiter) = self.0.lock().unwrap().get(&id) {
            waiter.notify_one();
        }
    }

    fn heard_all(&self) {
        for waiter in self.0.lock().unwrap().values() {
            waiter.notify_one();
        }
    }
}

/// This daemon's part in the cluster.
pub struct Node {
    pub node: ClusterNode,
    pub http: Arc<ClusterHttp>,
    executor: Arc<Notify>,
}

impl Node {
    /// Joins the cluster: leases, notifications, requests from other nodes.
    /// `sessions` says which orgs have stored sessions (seeded as leases to
    /// claim, for a cluster that starts on sessions stored before); `live` hears
    /// the other nodes' events.
    pub async fn start(
        db: &Database,
        config: &Config,
        supervisor: Supervisor,
        sessions: &dyn SessionStore,
        live: LiveEvents,
    ) -> Result<Self, ClusterStartError> {
        let spec = ClusterSpec {
            node_id: db.node_id.clone(),
            lease: config.cluster.lease(),
            renew: config.cluster.renew(),
            takeover_gap: config.cluster.takeover_gap(),
            stop_bound: supervisor.release_bound(),
        };
        let stored = sessions
            .orgs_with_credentials()
            .await
            .map_err(|e| ClusterStartError::Join(e.0))?;
        let refused = db
            .refused
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| ClusterStartError::Join("started twice".into()))?;
        let node = ClusterNode::start(
            spec,
            Arc::new(PostgresLeases::new(db.pool.clone())),
            supervisor.clone(),
            db.fencing.clone(),
            refused,
            stored,
        )
        .await
        .map_err(|e: ClusterError| ClusterStartError::Join(e.to_string()))?;
        let commands = Arc::new(PostgresCommands::new(db.pool.clone(), db.node_id.clone()));
        let replies = Replies::default();
        let http = Arc::new(ClusterHttp {
            node: node.clone(),
            commands: commands.clone(),
            replies: replies.clone(),
            answer_within: config.supervisor_config().call_timeout(),
        });
        let executor = Arc::new(Notify::new());
        let mut heard = wa_store_postgres::listen(
            db.config.clone(),
            &[
                OUTBOX_CHANNEL,
                MESSAGE_CHANNEL,
                SNAPSHOT_CHANNEL,
                LEASES_CHANNEL,
                COMMANDS_CHANNEL,
                REPLIES_CHANNEL,
                EVENTS_CHANNEL,
            ],
        );
        // Ready once listening: what the other nodes announce from then on (their
        // events, the requests they hand over) is heard.
        let first = tokio::time::timeout(LISTENING_WAIT, heard.recv()).await;
        let first = first.unwrap_or_else(|_| {
            tracing::warn!("not yet listening to the cluster's notifications; going on");
            None
        });
        tokio::spawn(dispatch(
            first,
            heard,
            node.clone(),
            supervisor,
            replies,
            executor.clone(),
            live,
        ));
        tracing::info!(node_id = %db.node_id, "joined the cluster");
        Ok(Self {
            node,
            http,
            executor,
        })
    }

    /// Runs the requests other nodes hand to this one through `app` (this node's
    /// own router), until the process ends.
    pub fn serve_requests(&self, app: axum::Router) {
        let commands = self.http.commands.clone();
        let wake = self.executor.clone();
        tokio::spawn(async move {
            let mut last_cleanup = tokio::time::Instant::now();
            loop {
                match commands.take().await {
                    Ok(taken) => {
                        for command in taken {
                            let (app, commands) = (app.clone(), commands.clone());
                            tokio::spawn(async move {
                                let reply = run_forwarded(app, &command.request).await;
                                if let Err(e) = commands.answer(command.id, &reply).await {
                                    tracing::warn!(org_id = %command.org, error = %e, "a handed-over request could not be answered");
                                }
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "handed-over requests could not be read"),
                }
                if last_cleanup.elapsed() > COMMANDS_KEPT / 4 {
                    last_cleanup = tokio::time::Instant::now();
                    if let Err(e) = commands.forget_older_than(COMMANDS_KEPT).await {
                        tracing::debug!(error = %e, "old requests could not be deleted");
                    }
                }
                let _ = tokio::time::timeout(COMMAND_POLL, wake.notified()).await;
            }
        });
    }

    /// Leaves the cluster, handing every org over (SIGTERM).
    pub async fn leave(&self) {
        self.node.leave().await;
    }
}

/// Acts on what the listener hears (see the module docs), `first` first.
async fn dispatch(
    mut first: Option<Heard>,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    node: ClusterNode,
    supervisor: Supervisor,
    replies: Replies,
    executor: Arc<Notify>,
    live: LiveEvents,
) {
    loop {
        let next = match first.take() {
            Some(next) => next,
            None => match heard.recv().await {
                Some(next) => next,
                None => return,
            },
        };
        match next {
            Heard::Connected => {
                node.wake();
                executor.notify_one();
                replies.heard_all();
                let outbox = supervisor.outbox().clone();
                tokio::spawn(async move { outbox.catch_up().await });
            }
            Heard::Notice { channel, payload } => match channel.as_str() {
                OUTBOX_CHANNEL => {
                    if let Ok(org) = OrgId::parse(&payload) {
                        supervisor.outbox().nudge(&org);
                    }
                }
                MESSAGE_CHANNEL => {
                    if let Ok(id) = MessageId::parse(&payload) {
                        let outbox = supervisor.outbox().clone();
                        tokio::spawn(async move { outbox.refresh(&id).await });
                    }
                }
                SNAPSHOT_CHANNEL => {
                    if let Ok(org) = OrgId::parse(&payload) {
                        let node = node.clone();
                        tokio::spawn(async move { node.mirror_one(&org).await });
                    }
                }
                LEASES_CHANNEL if payload != node.node_id() => node.wake(),
                COMMANDS_CHANNEL if payload == node.node_id() => executor.notify_one(),
                REPLIES_CHANNEL => {
                    if let Ok(id) = payload.parse() {
                        replies.heard(id);
                    }
                }
                EVENTS_CHANNEL => shared_events::heard(&payload, node.node_id(), &live),
                _ => {}
            },
        }
    }
}
