//! The storage actor: the only writer of the stored sessions' layout.
//!
//! Serializing every create, backup and wipe through one mailbox means two org
//! operations can never interleave on the disk. The work itself is the
//! [`SessionStore`]'s (files by default, see [`sessions`]), which keeps the
//! runtime's workers free (the blocking pool, or the network).

pub mod backups;
pub mod fs_ops;
pub mod sessions;

use std::path::PathBuf;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::OrgId;
use backups::{BackupInfo, RestoreError, Restored};
pub use sessions::{FileSessions, SessionStore};

/// A storage failure, with the io error's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StorageError(pub String);

pub struct StorageArgs {
    pub store: Arc<dyn SessionStore>,
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
    store: Arc<dyn SessionStore>,
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
        // Before any session starts: a restore cut short by a crash is undone.
        for (org, backup) in args.store.recover().await? {
            tracing::warn!(org_id = %org, backup = %backup, "a restore was interrupted; the session it replaced is live again");
        }
        Ok(StorageState { store: args.store })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: StorageMsg,
        state: &mut StorageState,
    ) -> Result<(), ActorProcessingErr> {
        let store = state.store.clone();
        match msg {
            StorageMsg::Prepare { org, reply } => {
                let _ = reply.send(store.prepare(&org).await);
            }
            StorageMsg::BackupAndWipe {
                org,
                reason,
                recreate,
                reply,
            } => {
                let outcome = store.backup_and_wipe(&org, &reason, recreate).await;
                if let Ok(Some(name)) = &outcome {
                    tracing::info!(org_id = %org, backup = %name, reason = %reason, "session backed up and wiped");
                }
                let _ = reply.send(outcome);
            }
            StorageMsg::ListBackups { org, reply } => {
                let _ = reply.send(store.list_backups(&org).await);
            }
            StorageMsg::Restore { org, name, reply } => {
                let outcome = store.restore(&org, &name).await;
                if let Ok(done) = &outcome {
                    tracing::info!(org_id = %org, backup = %done.restored, before_restore = done.before_restore.as_deref().unwrap_or("-"), "backup restored");
                }
                let _ = reply.send(outcome);
            }
        }
        Ok(())
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
