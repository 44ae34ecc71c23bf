//! [`PostgresSessions`]: the organizations' stored sessions (a `wa_stores` row and
//! every row that references it: the WhatsApp store, or the fake phone's
//! credentials in simulation mode) as the actor tree's [`SessionStore`].
//!
//! A backup is the live store renamed to `<org>/<name>` (every referencing row
//! follows, `ON UPDATE CASCADE`) and listed in `wa_backups`: the copy and the
//! wipe in one statement. A restore renames the live store away as a
//! `before_restore` backup and the chosen backup into its place. Each operation is
//! one transaction, fenced by the org's lease: a crash at any point leaves either
//! everything before or everything after it, so no crash loses a session or a
//! backup, and there is nothing to recover at start.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use wa_actors::OrgId;
use wa_actors::connection::ConnectionError;
use wa_actors::storage::backups::{BEFORE_RESTORE, BackupInfo, RestoreError, Restored, parse_name};
use wa_actors::storage::fs_ops::{backup_name, beyond_keep, kept_by_a_wipe};
use wa_actors::storage::{SessionStore, StorageError};

use crate::error::Failure;
use crate::fence::{self, Checked, Fence};

/// Whether a store holds credentials: a paired WhatsApp device (as upstream's
/// rule: a phone-number JID and the signed device identity) or the fake phone's.
const HAS_CREDENTIALS: &str = "(EXISTS (SELECT 1 FROM wa_device d WHERE d.store_id = s.store_id \
     AND d.pn <> '' AND d.account IS NOT NULL) \
     OR EXISTS (SELECT 1 FROM wa_sim_credentials c WHERE c.store_id = s.store_id))";

/// The stored sessions in PostgreSQL (see the module docs).
pub struct PostgresSessions {
    pool: Pool,
    fence: Arc<dyn Fence>,
    backups_kept: usize,
}

impl PostgresSessions {
    /// The sessions on `pool`, keeping the newest `backups_kept` backups per org;
    /// every change is fenced by `fence`.
    pub fn new(pool: Pool, fence: Arc<dyn Fence>, backups_kept: usize) -> Self {
        Self {
            pool,
            fence,
            backups_kept,
        }
    }

    /// Begins a transaction in which this node holds `org`'s lease.
    async fn fenced<'c>(
        &self,
        conn: &'c mut deadpool_postgres::Object,
        org: &OrgId,
    ) -> Result<Transaction<'c>, String> {
        let tx = conn.transaction().await.map_err(|e| e.describe())?;
        match fence::check(&*tx, self.fence.as_ref(), org.as_str())
            .await
            .map_err(|e| e.describe())?
        {
            Checked::Held => Ok(tx),
            Checked::Refused => Err(
                "this node no longer holds the organization's lease; the change was refused".into(),
            ),
        }
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, String> {
        self.pool.get().await.map_err(|e| e.describe())
    }

    /// The live store moved to a new backup named for `reason`; `None` when it
    /// holds nothing (it is deleted then).
    async fn keep_live(
        &self,
        tx: &Transaction<'_>,
        org: &OrgId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, String> {
        let bytes: Option<i64> = tx
            .query_opt(
                "SELECT wa_store_bytes(store_id) FROM wa_stores WHERE store_id = $1 FOR UPDATE",
                &[&org.as_str()],
            )
            .await
            .map_err(|e| e.describe())?
            .map(|row| row.get(0));
        match bytes {
            None => return Ok(None),
            Some(0) => {
                tx.execute(
                    "DELETE FROM wa_stores WHERE store_id = $1",
                    &[&org.as_str()],
                )
                .await
                .map_err(|e| e.describe())?;
                return Ok(None);
            }
            Some(_) => {}
        }
        let taken = names(tx, org).await?;
        let name = backup_name(now, reason, &|n| taken.iter().any(|t| t == n));
        let (_, reason) = parse_name(&name).ok_or("a backup name that does not parse")?;
        let store_id = backup_store_id(org, &name);
        tx.execute(
            "UPDATE wa_stores SET store_id = $2 WHERE store_id = $1",
            &[&org.as_str(), &store_id],
        )
        .await
        .map_err(|e| e.describe())?;
        tx.execute(
            "INSERT INTO wa_backups (store_id, org, name, reason, created_at, bytes) \
             VALUES ($1, $2, $3, $4, $5, wa_store_bytes($1))",
            &[&store_id, &org.as_str(), &name, &reason, &now],
        )
        .await
        .map_err(|e| e.describe())?;
        Ok(Some(name))
    }

    /// Keeps the newest backups (never one of `protect`).
    async fn prune(
        &self,
        tx: &Transaction<'_>,
        org: &OrgId,
        protect: &[&str],
    ) -> Result<(), String> {
        let all = names(tx, org).await?;
        let doomed: Vec<String> = beyond_keep(all, self.backups_kept, protect)
            .iter()
            .map(|name| backup_store_id(org, name))
            .collect();
        if !doomed.is_empty() {
            tx.execute("DELETE FROM wa_stores WHERE store_id = ANY($1)", &[&doomed])
                .await
                .map_err(|e| e.describe())?;
        }
        Ok(())
    }
}

/// The store id of the org's backup `name`: not an org id (`/` is in none).
fn backup_store_id(org: &OrgId, name: &str) -> String {
    format!("{org}/{name}")
}

/// The name of the org's newest backup whose store holds a session.
async fn newest_holding_a_session(
    tx: &Transaction<'_>,
    org: &OrgId,
) -> Result<Option<String>, String> {
    let sql = format!(
        "SELECT b.name FROM wa_backups b JOIN wa_stores s ON s.store_id = b.store_id \
         WHERE b.org = $1 AND {HAS_CREDENTIALS} ORDER BY b.name DESC LIMIT 1"
    );
    Ok(tx
        .query_opt(&sql, &[&org.as_str()])
        .await
        .map_err(|e| e.describe())?
        .map(|row| row.get(0)))
}

/// The names of the org's backups.
async fn names(tx: &Transaction<'_>, org: &OrgId) -> Result<Vec<String>, String> {
    Ok(tx
        .query(
            "SELECT name FROM wa_backups WHERE org = $1",
            &[&org.as_str()],
        )
        .await
        .map_err(|e| e.describe())?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

#[async_trait]
impl SessionStore for PostgresSessions {
    async fn recover(&self) -> Result<Vec<(OrgId, String)>, StorageError> {
        // Every change is one transaction: nothing is ever left half done.
        Ok(Vec::new())
    }

    async fn prepare(&self, org: &OrgId) -> Result<PathBuf, StorageError> {
        let mut conn = self.conn().await.map_err(StorageError)?;
        let tx = self.fenced(&mut conn, org).await.map_err(StorageError)?;
        tx.execute(
            "INSERT INTO wa_stores (store_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&org.as_str()],
        )
        .await
        .map_err(|e| StorageError(e.describe()))?;
        tx.commit().await.map_err(|e| StorageError(e.describe()))?;
        // No directory: connections on this store are given the org.
        Ok(PathBuf::from(org.as_str()))
    }

    async fn has_credentials(&self, org: &OrgId) -> Result<bool, ConnectionError> {
        let conn = self
            .pool
            .get()
            .await
            .map_err(|e| ConnectionError::StoreUnavailable(e.describe()))?;
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM wa_stores s WHERE s.store_id = $1 AND {HAS_CREDENTIALS})"
        );
        conn.query_one(&sql, &[&org.as_str()])
            .await
            .map(|row| row.get(0))
            .map_err(|e| ConnectionError::StoreUnavailable(e.describe()))
    }

    async fn orgs_with_credentials(&self) -> Result<Vec<OrgId>, StorageError> {
        let conn = self.conn().await.map_err(StorageError)?;
        let sql = format!(
            "SELECT store_id FROM wa_stores s WHERE position('/' in store_id) = 0 \
             AND {HAS_CREDENTIALS} ORDER BY store_id"
        );
        let rows = conn
            .query(&sql, &[])
            .await
            .map_err(|e| StorageError(e.describe()))?;
        Ok(rows
            .iter()
            .filter_map(|row| OrgId::parse(row.get(0)).ok())
            .collect())
    }

    async fn backup_and_wipe(
        &self,
        org: &OrgId,
        reason: &str,
        recreate: bool,
    ) -> Result<Option<String>, StorageError> {
        let work = async {
            let mut conn = self.conn().await?;
            let tx = self.fenced(&mut conn, org).await?;
            let backup = self.keep_live(&tx, org, reason, Utc::now()).await?;
            if recreate {
                tx.execute(
                    "INSERT INTO wa_stores (store_id) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&org.as_str()],
                )
                .await
                .map_err(|e| e.describe())?;
            } else {
                tx.execute(
                    "DELETE FROM wa_stores WHERE store_id = $1",
                    &[&org.as_str()],
                )
                .await
                .map_err(|e| e.describe())?;
            }
            if let Some(name) = &backup {
                // Wipes of stores that never held a session (a pairing cut short,
                // a QR never scanned) must not push the org's last real session
                // out of its newest backups.
                let session = newest_holding_a_session(&tx, org).await?;
                let protect = kept_by_a_wipe(name, session.as_deref());
                self.prune(&tx, org, &protect).await?;
            }
            tx.commit().await.map_err(|e| e.describe())?;
            Ok::<_, String>(backup)
        };
        work.await.map_err(StorageError)
    }

    async fn list_backups(&self, org: &OrgId) -> Result<Vec<BackupInfo>, StorageError> {
        let conn = self.conn().await.map_err(StorageError)?;
        let rows = conn
            .query(
                "SELECT name, reason, created_at, bytes FROM wa_backups WHERE org = $1 \
                 ORDER BY name DESC",
                &[&org.as_str()],
            )
            .await
            .map_err(|e| StorageError(e.describe()))?;
        Ok(rows
            .iter()
            .map(|row| BackupInfo {
                name: row.get(0),
                reason: row.get(1),
                created_at: row.get(2),
                bytes: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            })
            .collect())
    }

    async fn restore(&self, org: &OrgId, name: &str) -> Result<Restored, RestoreError> {
        if parse_name(name).is_none() {
            return Err(RestoreError::InvalidName(name.to_owned()));
        }
        let mut conn = self.conn().await.map_err(RestoreError::Storage)?;
        let tx = self
            .fenced(&mut conn, org)
            .await
            .map_err(RestoreError::Storage)?;
        let chosen: Option<String> = tx
            .query_opt(
                "SELECT store_id FROM wa_backups WHERE org = $1 AND name = $2 FOR UPDATE",
                &[&org.as_str(), &name],
            )
            .await
            .map_err(|e| RestoreError::Storage(e.describe()))?
            .map(|row| row.get(0));
        let Some(chosen) = chosen else {
            return Err(RestoreError::UnknownBackup(name.to_owned()));
        };
        let before_restore = self
            .keep_live(&tx, org, BEFORE_RESTORE, Utc::now())
            .await
            .map_err(RestoreError::Storage)?;
        let put_in_place = async {
            tx.execute("DELETE FROM wa_backups WHERE store_id = $1", &[&chosen])
                .await?;
            tx.execute(
                "UPDATE wa_stores SET store_id = $2 WHERE store_id = $1",
                &[&chosen, &org.as_str()],
            )
            .await
        };
        put_in_place
            .await
            .map_err(|e| RestoreError::Storage(e.describe()))?;
        let protect: Vec<&str> = before_restore.iter().map(String::as_str).collect();
        self.prune(&tx, org, &protect)
            .await
            .map_err(RestoreError::Storage)?;
        tx.commit()
            .await
            .map_err(|e| RestoreError::Storage(e.describe()))?;
        Ok(Restored {
            restored: name.to_owned(),
            before_restore,
        })
    }
}
