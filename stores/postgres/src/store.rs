//! [`PostgresStore`]: one organization's store in the shared database, and the two
//! doors every statement goes through, [`PostgresStore::read`] and [`Write`].

use std::sync::Arc;

use deadpool_postgres::{Object, Pool, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use wacore::store::error::Result;

use crate::Error;
use crate::error::{db, no_connection};
use crate::fence::{self, Checked, Fence};

/// Longest store id accepted (an organization id is far shorter).
const MAX_STORE_ID: usize = 200;

pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The whatsapp-rust store of one organization, in a database shared with others.
///
/// Cheap to clone (a pool handle and the id). Every row it reads or writes carries
/// its `store_id`, so two stores in one database never see each other's rows.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    store_id: Arc<str>,
    /// When organizations move between nodes: every write checks this node's
    /// lease of the org first (see [`PostgresStore::new_fenced`]).
    fence: Option<Arc<dyn Fence>>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("store_id", &self.store_id)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The store `store_id` (an organization id) on `pool`, registered in
    /// `wa_stores` if it is new. The schema must be current ([`migrate`](crate::migrate)
    /// once at start).
    pub async fn new(pool: Pool, store_id: &str) -> std::result::Result<Self, Error> {
        Self::open(pool, store_id, None).await
    }

    /// Like [`PostgresStore::new`], with every write fenced, its registration
    /// included: it happens only while this node holds the lease of the
    /// organization (the store id) with the token `fence` has for it, checked in
    /// the write's own transaction, and fails otherwise (telling `fence`). See
    /// the crate docs, "The fencing seam".
    pub async fn new_fenced(
        pool: Pool,
        store_id: &str,
        fence: Arc<dyn Fence>,
    ) -> std::result::Result<Self, Error> {
        Self::open(pool, store_id, Some(fence)).await
    }

    async fn open(
        pool: Pool,
        store_id: &str,
        fence: Option<Arc<dyn Fence>>,
    ) -> std::result::Result<Self, Error> {
        let len = store_id.chars().count();
        if len == 0 || len > MAX_STORE_ID {
            return Err(Error::InvalidStoreId {
                len,
                max: MAX_STORE_ID,
            });
        }
        let store = Self {
            pool,
            store_id: Arc::from(store_id),
            fence,
        };
        store
            .write_one(
                "INSERT INTO wa_stores (store_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&store.id()],
            )
            .await?;
        Ok(store)
    }

    /// The id every row of this store carries.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The pool this store runs on.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Deletes every row of this store (credentials, Signal state, everything): the
    /// organization starts over with a new pairing. Other stores are untouched.
    pub async fn wipe(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let w = Write::begin(&mut conn, self).await?;
        // The cascade empties every table; the registration comes back at once so
        // the store stays usable, as a new one would be.
        w.execute("DELETE FROM wa_stores WHERE store_id = $1", &[&self.id()])
            .await?;
        w.execute(
            "INSERT INTO wa_stores (store_id) VALUES ($1)",
            &[&self.id()],
        )
        .await?;
        w.commit().await
    }

    /// The id as a statement parameter.
    pub(crate) fn id(&self) -> &str {
        &self.store_id
    }

    pub(crate) async fn conn(&self) -> Result<Object> {
        self.pool.get().await.map_err(no_connection)
    }

    /// Runs a read-only statement and returns its rows.
    pub(crate) async fn read(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let conn = self.conn().await?;
        let statement = conn.prepare_cached(sql).await.map_err(db)?;
        conn.query(&statement, params).await.map_err(db)
    }

    /// Runs a read-only statement that yields at most one row.
    pub(crate) async fn read_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let conn = self.conn().await?;
        let statement = conn.prepare_cached(sql).await.map_err(db)?;
        conn.query_opt(&statement, params).await.map_err(db)
    }

    /// Runs one writing statement with a `RETURNING` clause in its own [`Write`].
    pub(crate) async fn write_returning(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let mut conn = self.conn().await?;
        let w = Write::begin(&mut conn, self).await?;
        let rows = w.query(sql, params).await?;
        w.commit().await?;
        Ok(rows)
    }

    /// Runs one writing statement in its own [`Write`]; returns the rows it changed.
    pub(crate) async fn write_one(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let mut conn = self.conn().await?;
        let w = Write::begin(&mut conn, self).await?;
        let changed = w.execute(sql, params).await?;
        w.commit().await?;
        Ok(changed)
    }
}

/// The only way rows change: a transaction on one store.
///
/// This is the fencing seam. For a [fenced](PostgresStore::new_fenced) store `begin`
/// first checks, inside the transaction, that this node still holds the store's
/// lease with its token (`wa_fence`: the lease row locked `FOR SHARE`, its token
/// compared, its expiry checked) and fails with a `StoreError` otherwise, so a
/// node that lost its lease cannot write a single row after the new owner took
/// over. Nothing writes around it: reads go through [`PostgresStore::read`],
/// every change through here.
pub(crate) struct Write<'c> {
    tx: Transaction<'c>,
}

impl<'c> Write<'c> {
    /// Starts a change of `store` on `conn` (the store is where the fencing check
    /// will find the token to compare).
    pub(crate) async fn begin(conn: &'c mut Object, store: &PostgresStore) -> Result<Self> {
        let tx = conn.transaction().await.map_err(db)?;
        if let Some(fence) = &store.fence {
            match fence::check(&*tx, fence.as_ref(), store.id())
                .await
                .map_err(db)?
            {
                Checked::Held => {}
                Checked::Refused => return Err(fenced()),
            }
        }
        Ok(Self { tx })
    }

    pub(crate) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let statement = self.tx.prepare_cached(sql).await.map_err(db)?;
        self.tx.execute(&statement, params).await.map_err(db)
    }

    pub(crate) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let statement = self.tx.prepare_cached(sql).await.map_err(db)?;
        self.tx.query(&statement, params).await.map_err(db)
    }

    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await.map_err(db)
    }
}

/// A write refused by the fence.
fn fenced() -> wacore::store::error::StoreError {
    wacore::store::error::StoreError::Database(Box::new(crate::Error::Fenced))
}
