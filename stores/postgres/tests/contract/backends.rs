//! The two backends under test, each as a database that holds several stores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use wa_store_postgres::testing::{TestDatabase, database};
use wa_store_postgres::{PostgresStore, migrate};
use wacore::store::traits::Backend;
use whatsapp_rust::store::SqliteStore;

/// One database holding the stores of several accounts.
#[async_trait]
pub trait Db: Send + Sync {
    /// The store `name`, with its device row created, as the client does before
    /// anything else (`PersistenceManager::new`).
    async fn store(&self, name: &str) -> Arc<dyn Backend> {
        let store = self.raw_store(name).await;
        if !store.exists().await.unwrap() {
            store.create().await.unwrap();
        }
        store
    }

    /// The store `name` as it is (no device row unless one was created).
    async fn raw_store(&self, name: &str) -> Arc<dyn Backend>;
}

/// Upstream's store: one SQLite file, a `device_id` per account.
pub struct Sqlite {
    dir: tempfile::TempDir,
    device_ids: Mutex<HashMap<String, i32>>,
}

impl Sqlite {
    pub async fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            device_ids: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl Db for Sqlite {
    async fn raw_store(&self, name: &str) -> Arc<dyn Backend> {
        let device_id = {
            let mut ids = self.device_ids.lock().unwrap();
            let next = i32::try_from(ids.len()).unwrap() + 1;
            *ids.entry(name.to_string()).or_insert(next)
        };
        let path = self.dir.path().join("whatsapp.db");
        Arc::new(
            SqliteStore::new_for_device(path.to_str().unwrap(), device_id)
                .await
                .unwrap(),
        )
    }
}

/// Ours: one PostgreSQL database, a `store_id` per account.
pub struct Postgres {
    db: TestDatabase,
}

impl Postgres {
    pub async fn new() -> Self {
        let db = database().await;
        migrate(db.pool()).await.unwrap();
        Self { db }
    }
}

#[async_trait]
impl Db for Postgres {
    async fn raw_store(&self, name: &str) -> Arc<dyn Backend> {
        Arc::new(
            PostgresStore::new(self.db.pool().clone(), name)
                .await
                .unwrap(),
        )
    }
}

/// The unix time now, as the stores read it.
pub fn now() -> i64 {
    wacore::time::now_secs()
}

pub fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}
