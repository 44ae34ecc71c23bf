//! The storage actor: the only writer of the sessions directory's layout.
//!
//! Serializing every create, backup and wipe through one mailbox means two org
//! operations can never interleave on the disk. The file work itself runs on the
//! blocking pool so the runtime's workers stay free.

pub mod backups;
pub mod fs_ops;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::OrgId;
use backups::{BackupInfo, RestoreError, Restored};

/// A storage failure, with the io error's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

pub struct StorageArgs {
    pub root: PathBuf,
    pub backups_kept: usize,
}

pub enum StorageMsg {
    /// Creates the org's live directory (0700) and returns its path.
    Prepare {
        org: OrgId,
        reply: RpcReplyPort<Result<PathBuf, StorageError>>,
    },
    /// Backs the live session up and wipes it (see [`fs_ops::backup_and_wipe`]).
    BackupAndWipe {
        org: OrgId,
        reason: String,
        recreate: bool,
        reply: RpcReplyPort<Result<Option<String>, StorageError>>,
    },
    /// An org's backups, newest first.
    ListBackups {
        org: OrgId,
        reply: RpcReplyPort<Result<Vec<BackupInfo>, StorageError>>,
    },
    /// Makes a backup the live session (see [`backups::restore`]); the org's
    /// session must be stopped.
    Restore {
        org: OrgId,
        name: String,
        reply: RpcReplyPort<Result<Restored, RestoreError>>,
    },
}

pub struct StorageActor;

pub struct StorageState {
    args: Arc<StorageArgs>,
}

impl Actor for StorageActor {
    type Msg = StorageMsg;
    type State = StorageState;
    type Arguments = StorageArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: StorageArgs,
    ) -> Result<StorageState, ActorProcessingErr> {
        fs_ops::ensure_private_dir(&args.root)?;
        // Before any session starts: a restore cut short by a crash is undone.
        for (org, backup) in backups::recover_interrupted_restores(&args.root)? {
            tracing::warn!(org_id = %org, backup = %backup, "a restore was interrupted; the session it replaced is live again");
        }
        Ok(StorageState {
            args: Arc::new(args),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: StorageMsg,
        state: &mut StorageState,
    ) -> Result<(), ActorProcessingErr> {
        let args = state.args.clone();
        match msg {
            StorageMsg::Prepare { org, reply } => {
                let result = blocking(move || {
                    let dir = fs_ops::live_dir(&args.root, &org);
                    fs_ops::ensure_private_dir(&dir).map(|()| dir)
                })
                .await;
                let _ = reply.send(result);
            }
            StorageMsg::BackupAndWipe {
                org,
                reason,
                recreate,
                reply,
            } => {
                let result = blocking(move || {
                    let outcome = fs_ops::backup_and_wipe(
                        &args.root,
                        &org,
                        &reason,
                        Utc::now(),
                        args.backups_kept,
                        recreate,
                    );
                    if let Ok(Some(name)) = &outcome {
                        tracing::info!(org_id = %org, backup = %name, reason = %reason, "session backed up and wiped");
                    }
                    outcome
                })
                .await;
                let _ = reply.send(result);
            }
            StorageMsg::ListBackups { org, reply } => {
                let result = blocking(move || backups::list(&args.root, &org)).await;
                let _ = reply.send(result);
            }
            StorageMsg::Restore { org, name, reply } => {
                let work = move || {
                    let outcome =
                        backups::restore(&args.root, &org, &name, Utc::now(), args.backups_kept);
                    if let Ok(done) = &outcome {
                        tracing::info!(org_id = %org, backup = %done.restored, before_restore = done.before_restore.as_deref().unwrap_or("-"), "backup restored");
                    }
                    outcome
                };
                let result = match tokio::task::spawn_blocking(work).await {
                    Ok(outcome) => outcome,
                    Err(e) => Err(RestoreError::Storage(format!("storage task failed: {e}"))),
                };
                let _ = reply.send(result);
            }
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StorageError(e.to_string())),
        Err(e) => Err(StorageError(format!("storage task failed: {e}"))),
    }
}

/// Calls the storage actor and flattens every failure into a [`StorageError`].
pub(crate) async fn ask<T: Send + 'static>(
    storage: &ActorRef<StorageMsg>,
    msg: impl FnOnce(RpcReplyPort<Result<T, StorageError>>) -> StorageMsg,
) -> Result<T, StorageError> {
    match storage.call(msg, None).await {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        Ok(_) => Err(StorageError("the storage actor did not answer".into())),
        Err(e) => Err(StorageError(format!("the storage actor is gone: {e}"))),
    }
}

/// Asks the storage actor to restore a backup; every failure of the call itself is
/// a [`RestoreError::Storage`].
pub(crate) async fn ask_restore(
    storage: &ActorRef<StorageMsg>,
    org: OrgId,
    name: String,
) -> Result<Restored, RestoreError> {
    match storage
        .call(|reply| StorageMsg::Restore { org, name, reply }, None)
        .await
    {
        Ok(ractor::rpc::CallResult::Success(result)) => result,
        Ok(_) => Err(RestoreError::Storage(
            "the storage actor did not answer".into(),
        )),
        Err(e) => Err(RestoreError::Storage(format!(
            "the storage actor is gone: {e}"
        ))),
    }
}
