//! The connection driver: the one task per org actor that awaits the network.
//!
//! The org actor decides; the driver does, one command at a time and in order. It
//! owns the open connection, so "shut the old connection down before opening a new
//! one" holds by construction, and it holds the org's store lease for its whole life,
//! so a restarted actor's driver waits until a crashed one's connection is closed.
//! When the actor goes away (stop, panic or kill) its command sender is dropped and
//! the driver shuts the connection down with its state flushed: no `post_stop` needed.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::{mpsc, oneshot};

use super::msg::{OrgMsg, Report};
use crate::OrgId;
use crate::connection::{ConnectRequest, Connection, ConnectionError, Connector, StartMode};
use crate::storage::{self, SessionStore, StorageMsg};

/// What the org actor asks its driver to do.
pub(crate) enum DriverCmd {
    /// Read the store (on the blocking pool): does it hold credentials?
    Probe { generation: u64 },
    /// Close the current connection (if any), then open a new one tagged `generation`.
    Open { generation: u64, mode: StartMode },
    /// Close the connection, then put the backup `backup` in place of the live
    /// session (keeping that one as a backup).
    Restore { generation: u64, backup: String },
    /// Close the current connection; `done` fires once it is closed.
    Close { done: Option<oneshot::Sender<()>> },
    /// Close the connection (unlinking the device first, if asked), then back the
    /// store up and wipe it.
    Wipe {
        generation: u64,
        reason: String,
        farewell: Farewell,
        afterwards: Afterwards,
    },
}

/// How a connection is left before a wipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Farewell {
    /// Tell WhatsApp to unlink this device, then close.
    Unlink,
    /// Just close, with the state flushed.
    Close,
}

/// What the live directory becomes after the backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Afterwards {
    /// An empty directory, for a new pairing.
    EmptyDir,
    /// Nothing: the org is removed.
    NoDir,
}

/// What the driver needs; the org actor builds it once.
pub(crate) struct DriverParts {
    pub org: OrgId,
    pub sessions: Arc<dyn SessionStore>,
    pub connector: Arc<dyn Connector>,
    pub storage: ActorRef<StorageMsg>,
    pub lease: Arc<tokio::sync::Mutex<()>>,
    pub grace: Duration,
}

pub(crate) fn spawn(
    parts: DriverParts,
    actor: ActorRef<OrgMsg>,
) -> mpsc::UnboundedSender<DriverCmd> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(run(parts, actor, rx));
    tx
}

async fn run(
    parts: DriverParts,
    actor: ActorRef<OrgMsg>,
    mut commands: mpsc::UnboundedReceiver<DriverCmd>,
) {
    let _lease = parts.lease.clone().lock_owned().await;
    let mut current: Option<Arc<dyn Connection>> = None;
    let report = |generation: u64, report: Report| {
        let _ = actor.cast(OrgMsg::Report { generation, report });
    };
    while let Some(command) = commands.recv().await {
        match command {
            DriverCmd::Probe { generation } => {
                let probed = parts.sessions.has_credentials(&parts.org).await;
                report(generation, Report::Probed(probed));
            }
            DriverCmd::Open { generation, mode } => {
                close(&mut current, parts.grace).await;
                let org = parts.org.clone();
                let prepared =
                    storage::ask(&parts.storage, |reply| StorageMsg::Prepare { org, reply }).await;
                let dir = match prepared {
                    Ok(dir) => dir,
                    Err(e) => {
                        let error = ConnectionError::StoreUnavailable(e.0);
                        report(generation, Report::OpenFailed(error));
                        continue;
                    }
                };
                let request = ConnectRequest {
                    org: parts.org.clone(),
                    dir,
                    mode,
                };
                match parts.connector.connect(request).await {
                    Ok((conn, mut events)) => {
                        current = Some(conn.clone());
                        // Enqueued before the pump starts, so the actor sees `Opened`
                        // before any event of this connection.
                        report(generation, Report::Opened(conn));
                        let actor = actor.clone();
                        tokio::spawn(async move {
                            while let Some(event) = events.recv().await {
                                let report = Report::Event(event);
                                if actor.cast(OrgMsg::Report { generation, report }).is_err() {
                                    return;
                                }
                            }
                            let report = Report::Closed;
                            let _ = actor.cast(OrgMsg::Report { generation, report });
                        });
                    }
                    Err(error) => report(generation, Report::OpenFailed(error)),
                }
            }
            DriverCmd::Restore { generation, backup } => {
                close(&mut current, parts.grace).await;
                let restored =
                    storage::ask_restore(&parts.storage, parts.org.clone(), backup).await;
                report(generation, Report::Restored(restored));
            }
            DriverCmd::Close { done } => {
                close(&mut current, parts.grace).await;
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            DriverCmd::Wipe {
                generation,
                reason,
                farewell,
                afterwards,
            } => {
                if farewell == Farewell::Unlink
                    && let Some(conn) = &current
                    && let Err(e) = with_grace(parts.grace, conn.logout()).await
                {
                    tracing::warn!(org_id = %parts.org, error = %e, "logout was not confirmed by WhatsApp");
                }
                close(&mut current, parts.grace).await;
                let org = parts.org.clone();
                let why = reason.clone();
                let result = storage::ask(&parts.storage, |reply| StorageMsg::BackupAndWipe {
                    org,
                    reason: why,
                    recreate: afterwards == Afterwards::EmptyDir,
                    reply,
                })
                .await;
                report(generation, Report::Wiped { reason, result });
            }
        }
    }
    close(&mut current, parts.grace).await;
}

/// Shuts the current connection down, flushing its state, within `grace`.
async fn close(current: &mut Option<Arc<dyn Connection>>, grace: Duration) {
    if let Some(conn) = current.take()
        && tokio::time::timeout(grace, conn.shutdown()).await.is_err()
    {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "connection shutdown timed out"
        );
    }
}

async fn with_grace(
    grace: Duration,
    work: impl Future<Output = Result<(), ConnectionError>>,
) -> Result<(), ConnectionError> {
    tokio::time::timeout(grace, work)
        .await
        .unwrap_or_else(|_| Err(ConnectionError::Failed("timed out".into())))
}
