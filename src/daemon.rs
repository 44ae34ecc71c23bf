//! Wires the daemon together: connector, API key, supervisor, HTTP server, and the
//! orderly stop. `main` only parses the command line and the configuration.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use wa_actors::connection::Connector;
use wa_actors::connection::sim::SimConnector;
use wa_actors::connection::whatsapp::WhatsAppConnector;
use wa_actors::events::FanOut;
use wa_actors::{EventSink, SessionError, Supervisor};

use crate::api_key::{ApiKey, ApiKeyError};
use crate::config::{Config, ConnectionKind};
use crate::http::{self, AppState};
use crate::instance_lock::{self, LockError};
use crate::live_events::LiveEvents;
use crate::metrics::MetricsSink;
use crate::systemd::{self, Notifier};
use crate::webhook::Webhooks;

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    ApiKey(#[from] ApiKeyError),
    #[error("cannot start webhooks: {0}")]
    Webhook(String),
    #[error("cannot start the session supervisor: {0}")]
    Supervisor(#[from] SessionError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// The connection the org actors open, and the fake phones when it is the simulator.
pub struct Connection {
    pub connector: Arc<dyn Connector>,
    pub sim: Option<SimConnector>,
}

/// Builds the connector `[connection] kind` names.
pub fn connection(config: &Config) -> Result<Connection, DaemonError> {
    match config.connection.kind {
        ConnectionKind::Sim => {
            let sim = SimConnector::new(config.sim_timing());
            Ok(Connection {
                connector: Arc::new(sim.clone()),
                sim: Some(sim),
            })
        }
        ConnectionKind::Whatsapp => Ok(Connection {
            connector: Arc::new(WhatsAppConnector::new(config.whatsapp.options())),
            sim: None,
        }),
    }
}

/// Runs the daemon until `shutdown` completes, then stops accepting requests,
/// lets the ones in flight finish and stops every session (flushed, not logged out).
///
/// `env_api_key` is the value of `WHATSAPP_SERVER_API_KEY`, if set.
pub async fn run(
    config: Config,
    env_api_key: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let connection = connection(&config)?;
    // Before anything touches the directory: one daemon per sessions directory.
    let _lock = instance_lock::acquire(&config.sessions.dir)?;
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
    let supervisor = Supervisor::spawn_with_events(
        config.supervisor_config(),
        connection.connector,
        Arc::new(FanOut(sinks)),
    )
    .await?;
    if let Some(webhooks) = &webhooks {
        webhooks.attach(supervisor.clone());
    }
    live_events.attach(supervisor.clone());

    let addr = config.server.listen;
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(source) => {
            supervisor.shutdown().await;
            return Err(DaemonError::Bind { addr, source });
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(
        addr = %local,
        connection = config.connection.kind.as_str(),
        sessions_dir = %config.sessions.dir.display(),
        "listening"
    );

    // Resuming may take a while (it is staggered); serve meanwhile.
    let gap = std::time::Duration::from_millis(config.sessions.resume_gap_ms);
    tokio::spawn(resume(supervisor.clone(), gap));

    let limits = config.http_limits();
    let app = http::router_with_limits(
        AppState {
            supervisor: supervisor.clone(),
            api_key: Arc::new(api_key),
            sim: connection.sim,
            phone: config.phone_rules()?,
            events: live_events.clone(),
        },
        limits,
    );
    let notifier = Notifier::from_env();
    let period = systemd::watchdog_period(|name| std::env::var(name).ok());
    let watchdog = tokio::spawn(systemd::supervise(notifier, period, supervisor.clone()));
    notifier.ready();
    tracing::info!(watchdog_ms = period.map(|p| p.as_millis() as u64), "ready");

    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            notifier.stopping();
            // Open event streams would hold the graceful shutdown forever.
            live_events.close();
        })
        .await;
    watchdog.abort();
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

async fn resume(supervisor: Supervisor, gap: std::time::Duration) {
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
