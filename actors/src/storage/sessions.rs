//! Where the organizations' sessions live: one trait, [`SessionStore`], for every
//! operation the actor tree makes on a stored session (make it ready, read whether
//! it holds credentials, back it up and wipe it, list and restore backups), and the
//! default implementation on files, [`FileSessions`] (CONTRACT §7).
//!
//! The other implementation keeps sessions in a database shared by several daemons
//! (`wa-store-postgres`, CONTRACT §13): a backup is then a renamed store, a restore
//! swaps two stores, each in one transaction. Both keep the same promise: at every
//! instant each set of credentials is whole in exactly one place an operator can
//! list, so no crash loses a session or a backup.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use super::backups::{self, BackupInfo, RestoreError, Restored};
use super::{StorageError, fs_ops};
use crate::OrgId;
use crate::connection::{ConnectionError, Connector};

/// The stored sessions of every organization.
///
/// Every method may wait on the disk or the network; the actor tree calls them
/// from tasks, never inside an actor's handler. Changes of one org are serialized
/// by the storage actor; reads may run beside them.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Runs once before any session starts: puts right what a crash left half
    /// done (a restore cut short).
    async fn recover(&self) -> Result<Vec<(OrgId, String)>, StorageError>;

    /// Makes the org's live session ready for a connection and returns the
    /// directory a connection on files opens (connections on a database store
    /// are given the org and do not read it).
    async fn prepare(&self, org: &OrgId) -> Result<PathBuf, StorageError>;

    /// Whether the org's live session holds credentials a connection can resume
    /// from. A store that cannot be read is an error, never `false` (see
    /// [`Connector::has_credentials`]).
    async fn has_credentials(&self, org: &OrgId) -> Result<bool, ConnectionError>;

    /// Every org whose live session holds credentials, by id. A session that
    /// cannot be read is listed: the connect decides.
    async fn orgs_with_credentials(&self) -> Result<Vec<OrgId>, StorageError>;

    /// Moves the live session into a new backup (named `<UTC timestamp>_<reason>`)
    /// and leaves an empty live session (`recreate`) or none. Returns the backup's
    /// name, or `None` when there was nothing to keep. Only the newest `keep`
    /// backups remain, never fewer than the one just made.
    async fn backup_and_wipe(
        &self,
        org: &OrgId,
        reason: &str,
        recreate: bool,
    ) -> Result<Option<String>, StorageError>;

    /// The org's backups, newest first.
    async fn list_backups(&self, org: &OrgId) -> Result<Vec<BackupInfo>, StorageError>;

    /// Makes the backup `name` the live session, keeping the live one (if any) as
    /// a `before_restore` backup. The org's session must be stopped.
    async fn restore(&self, org: &OrgId, name: &str) -> Result<Restored, RestoreError>;
}

/// Sessions as directories under the sessions directory (CONTRACT §7): the plain
/// functions of [`fs_ops`] and [`backups`], run on the blocking pool. Whether a
/// directory holds credentials is the connector's to say (a SQLite store, the
/// fake phone's file).
pub struct FileSessions {
    root: PathBuf,
    backups_kept: usize,
    connector: Arc<dyn Connector>,
}

impl FileSessions {
    pub fn new(
        root: impl Into<PathBuf>,
        backups_kept: usize,
        connector: Arc<dyn Connector>,
    ) -> Self {
        Self {
            root: root.into(),
            backups_kept,
            connector,
        }
    }
}

#[async_trait]
impl SessionStore for FileSessions {
    async fn recover(&self) -> Result<Vec<(OrgId, String)>, StorageError> {
        let root = self.root.clone();
        blocking(move || {
            fs_ops::ensure_private_dir(&root)?;
            backups::recover_interrupted_restores(&root)
        })
        .await
    }

    async fn prepare(&self, org: &OrgId) -> Result<PathBuf, StorageError> {
        let dir = fs_ops::live_dir(&self.root, org);
        blocking(move || fs_ops::ensure_private_dir(&dir).map(|()| dir)).await
    }

    async fn has_credentials(&self, org: &OrgId) -> Result<bool, ConnectionError> {
        let connector = self.connector.clone();
        let dir = fs_ops::live_dir(&self.root, org);
        tokio::task::spawn_blocking(move || connector.has_credentials(&dir))
            .await
            .unwrap_or_else(|e| {
                Err(ConnectionError::StoreUnavailable(format!(
                    "the store probe failed: {e}"
                )))
            })
    }

    async fn orgs_with_credentials(&self) -> Result<Vec<OrgId>, StorageError> {
        let root = self.root.clone();
        let connector = self.connector.clone();
        blocking(move || {
            fs_ops::orgs_with_credentials(&root, &|dir| {
                connector.has_credentials(dir).unwrap_or(true)
            })
        })
        .await
    }

    async fn backup_and_wipe(
        &self,
        org: &OrgId,
        reason: &str,
        recreate: bool,
    ) -> Result<Option<String>, StorageError> {
        let (root, org, reason, keep) = (
            self.root.clone(),
            org.clone(),
            reason.to_owned(),
            self.backups_kept,
        );
        let connector = self.connector.clone();
        blocking(move || {
            // A store that cannot be read is taken to hold a session: kept.
            let holds_session = |dir: &Path| connector.has_credentials(dir).unwrap_or(true);
            fs_ops::backup_and_wipe_keeping_a_session(
                &root,
                &org,
                &reason,
                Utc::now(),
                keep,
                recreate,
                &holds_session,
            )
        })
        .await
    }

    async fn list_backups(&self, org: &OrgId) -> Result<Vec<BackupInfo>, StorageError> {
        let (root, org) = (self.root.clone(), org.clone());
        blocking(move || backups::list(&root, &org)).await
    }

    async fn restore(&self, org: &OrgId, name: &str) -> Result<Restored, RestoreError> {
        let (root, org, name, keep) = (
            self.root.clone(),
            org.clone(),
            name.to_owned(),
            self.backups_kept,
        );
        let work = move || backups::restore(&root, &org, &name, Utc::now(), keep);
        match tokio::task::spawn_blocking(work).await {
            Ok(outcome) => outcome,
            Err(e) => Err(RestoreError::Storage(format!("storage task failed: {e}"))),
        }
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
