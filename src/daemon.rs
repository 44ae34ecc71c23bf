//! Wires the daemon together: connector, API key, supervisor, HTTP server, and the
//! orderly stop. `main` parses the command line and the configuration, takes the
//! sessions directory's lock and binds the listener; [`run`] serves on what it is
//! given, so a test can hand it a listener on any port.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use wa_actors::events::FanOut;
use wa_actors::outbox::{OutboxStore, SqliteOutbox};
use wa_actors::storage::SessionStore;
use wa_actors::{EventSink, SessionError, Supervisor, SupervisorParts};
use wa_store_postgres::{PostgresMedia, PostgresOutbox, PostgresSessions};

/// The outbox's database, in the sessions directory (CONTRACT §10).
pub const OUTBOX_FILE: &str = "outbox.db";

use crate::api_key::{ApiKey, ApiKeyError};
use crate::cluster::{ClusterStartError, Database, Node};
use crate::config::{Config, ConfigError, StoreKind};
use crate::connector;
use crate::http::{self, AppState, AppStateParts};
use crate::instance_lock::{InstanceLock, LockError};
use crate::live_events::LiveEvents;
use crate::metrics::MetricsSink;
use crate::server::{self, open_files};
use crate::shared_events::SharedEvents;
use crate::systemd::{self, Notifier};
use crate::webhook::Webhooks;

/// The open-file limit assumed when it cannot be read (it always can on Linux).
const ASSUMED_OPEN_FILES: u64 = 1024;

/// Why the daemon could not start or stopped with an error. Every message is one
/// line that names its cause once: no variant has a `source`, so printing the
/// chain repeats nothing.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    #[error("cannot start webhooks: {0}")]
    Webhook(String),
    #[error("cannot start the session supervisor: {0}")]
    Supervisor(SessionError),
    #[error("cannot open the outbox {0}")]
    Outbox(String),
    #[error(transparent)]
    Cluster(#[from] ClusterStartError),
    #[error("cannot listen on {addr}: {cause}")]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds the configured address (`[server] listen`, port 0 for any free port),
/// with `SO_REUSEADDR` so that a restart is not refused while the last run's
/// connections linger in `TIME_WAIT`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, DaemonError> {
    TcpListener::bind(addr)
        .await
        .map_err(|cause| DaemonError::Bind { addr, cause })
}

/// Runs the daemon on `listener` until `shutdown` completes, then stops accepting
/// requests, lets the ones in flight finish and stops every session (flushed, not
/// logged out). `lock` is the sessions directory's, held until the end.
///
/// `env_api_key` is the value of `WHATSAPP_SERVER_API_KEY`, if set.
pub async fn run(
    listener: TcpListener,
    lock: InstanceLock,
    config: Config,
    env_api_key: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let _lock = lock;
    let open_files = open_files::soft_limit().unwrap_or_else(|e| {
        tracing::warn!(error = %e, assumed = ASSUMED_OPEN_FILES, "cannot read the open-file limit");
        ASSUMED_OPEN_FILES
    });
    let connection_limits = config.server.connection_limits(open_files)?;
    // With PostgreSQL, sessions, outbox and ownership are in the database the
    // nodes share (CONTRACT §13); the sessions directory keeps the lock and key.
    let database = match config.store.kind {
        StoreKind::Sqlite => None,
        StoreKind::Postgres => Some(Database::open(&config).await?),
    };
    let connection = connector::connect(&config, database.as_ref())?;
    let phone = config.phone_rules()?;
    let (api_key, _source) = ApiKey::resolve(
        env_api_key,
        config.server.api_key_file.as_deref(),
        &config.sessions.dir,
    )?;
    crate::metrics::handle();
    let webhooks = Webhooks::from_config(&config.webhook).map_err(DaemonError::Webhook)?;
    let live_events = LiveEvents::new();
    let mut sinks: Vec<Arc<dyn EventSink>> =
        vec![Arc::new(MetricsSink), Arc::new(live_events.clone())];
    if let Some(webhooks) = &webhooks {
        sinks.push(Arc::new(webhooks.clone()));
    }
    if let Some(db) = &database {
        // Every node's live listeners hear this node's events too.
        sinks.push(Arc::new(SharedEvents::start(
            db.pool.clone(),
            db.node_id.clone(),
        )));
    }
    // Every message accepted from now on is committed here before it is answered.
    let outbox: Arc<dyn OutboxStore> = match &database {
        None => {
            let outbox_path = config.sessions.dir.join(OUTBOX_FILE);
            let outbox = SqliteOutbox::open(&outbox_path)
                .await
                .map_err(|e| DaemonError::Outbox(format!("{}: {e}", outbox_path.display())))?;
            Arc::new(outbox)
        }
        Some(db) => Arc::new(PostgresOutbox::new(
            db.pool.clone(),
            Arc::new(db.fencing.clone()),
        )),
    };
    let mut actors = config.supervisor_config();
    let parts = |actors| SupervisorParts {
        config: actors,
        connector: connection.connector.clone(),
        outbox,
        events: Arc::new(FanOut(sinks)),
    };
    let (supervisor, node) = match &database {
        None => {
            let supervisor = Supervisor::spawn(parts(actors))
                .await
                .map_err(DaemonError::Supervisor)?;
            (supervisor, None)
        }
        Some(db) => {
            actors.node_id = Some(db.node_id.clone());
            let sessions = Arc::new(PostgresSessions::new(
                db.pool.clone(),
                Arc::new(db.fencing.clone()),
                config.sessions.backups_kept,
            ));
            let supervisor = Supervisor::spawn_in_cluster(
                parts(actors),
                sessions.clone() as Arc<dyn SessionStore>,
                db.fencing.clone(),
                Arc::new(PostgresMedia::new(db.pool.clone())),
            )
            .await
            .map_err(DaemonError::Supervisor)?;
            let node = Node::start(
                db,
                &config,
                supervisor.clone(),
                sessions.as_ref(),
                live_events.clone(),
            )
            .await?;
            (supervisor, Some(node))
        }
    };

    let local = listener.local_addr().map_err(DaemonError::Serve)?;
    // Tests and scripts that bind port 0 read the address from this line.
    tracing::info!(
        addr = %local,
        connection = config.connection.kind.as_str(),
        store = config.store.kind.as_str(),
        node_id = database.as_ref().map(|db| db.node_id.as_str()),
        sessions_dir = %config.sessions.dir.display(),
        max_connections = connection_limits.max_connections,
        open_files,
        "listening"
    );

    // Resuming may take a while (it is staggered); serve meanwhile. In a cluster
    // the node claims its share of the stored sessions instead.
    if node.is_none() {
        tokio::spawn(resume(supervisor.clone(), config.sessions.resume_gap()));
    }

    let app = http::router_with_limits(
        AppState::new(AppStateParts {
            supervisor: supervisor.clone(),
            api_key: Arc::new(api_key),
            sim: connection.fake_phones,
            phone,
            events: live_events.clone(),
            cluster: node.as_ref().map(|node| node.http.clone()),
        }),
        config.http_limits(),
    );
    if let Some(node) = &node {
        // Requests handed over by other nodes run through this same router.
        node.serve_requests(app.clone());
    }
    let notifier = Notifier::from_env();
    let period = systemd::watchdog_period(|name| std::env::var(name).ok());
    let watchdog = tokio::spawn(systemd::supervise(notifier, period, supervisor.clone()));
    notifier.ready();
    tracing::info!(watchdog_ms = period.map(|p| p.as_millis() as u64), "ready");

    let closing = live_events.clone();
    let served = server::serve(listener, app, connection_limits, async move {
        shutdown.await;
        notifier.stopping();
        // Open event streams would hold the graceful shutdown forever.
        closing.close();
    })
    .await;
    watchdog.abort();
    if let Some(node) = &node {
        tracing::info!("handing every session over to the other nodes");
        node.leave().await;
    }
    tracing::info!("stopping every session");
    supervisor.shutdown().await;
    if let Some(webhooks) = &webhooks {
        // Best effort, bounded: delivery state lives in memory only.
        let grace = config.webhook.timeout().min(Duration::from_secs(5));
        if !webhooks.flush(grace).await {
            tracing::warn!(
                pending = webhooks.pending(),
                "webhook events still queued at exit are lost"
            );
        }
    }
    tracing::info!("stopped");
    served.map_err(DaemonError::Serve)
}

async fn resume(supervisor: Supervisor, gap: Duration) {
    match supervisor.resume_stored(gap).await {
        Ok(orgs) => tracing::info!(count = orgs.len(), "stored sessions resumed"),
        Err(e) => tracing::error!(error = %e, "resuming stored sessions failed"),
    }
}

/// Completes on SIGTERM (systemd stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}
