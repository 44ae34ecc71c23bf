//! What only the PostgreSQL store has: the schema's migrations, the registry of
//! stores, wipe, and its resource report.

use std::sync::Arc;

use wa_store_postgres::testing::database;
use wa_store_postgres::{Error, PostgresStore, latest_version, migrate};
use wacore::store::traits::{DeviceStore, SignalStore};

async fn applied_versions(pool: &deadpool_postgres::Pool) -> Vec<i64> {
    let client = pool.get().await.unwrap();
    client
        .query(
            "SELECT version FROM wa_store_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn migrating_twice_applies_each_migration_once() {
    let db = database().await;
    let first = migrate(db.pool()).await.unwrap();
    assert_eq!(first.applied, (1..=latest_version()).collect::<Vec<_>>());
    assert_eq!(first.version, latest_version());

    let second = migrate(db.pool()).await.unwrap();
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.version, latest_version());
    assert_eq!(
        applied_versions(db.pool()).await,
        (1..=latest_version()).collect::<Vec<_>>()
    );
}

/// Processes starting at once: each waits for the advisory lock, and exactly one
/// applies the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_apply_the_schema_exactly_once() {
    let db = database().await;
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let pool = db.pool().clone();
            tokio::spawn(async move { migrate(&pool).await })
        })
        .collect();
    let mut applied = Vec::new();
    for run in runs {
        let report = run
            .await
            .unwrap()
            .expect("every concurrent migrate succeeds");
        assert_eq!(report.version, latest_version());
        applied.extend(report.applied);
    }
    assert_eq!(applied, (1..=latest_version()).collect::<Vec<_>>());
    assert_eq!(
        applied_versions(db.pool()).await,
        (1..=latest_version()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_schema_migrated_by_a_newer_build_is_refused() {
    let db = database().await;
    migrate(db.pool()).await.unwrap();
    let newer = latest_version() + 1;
    db.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO wa_store_schema_migrations (version, name, checksum) VALUES ($1, 'future', '')",
            &[&newer],
        )
        .await
        .unwrap();
    match migrate(db.pool()).await {
        Err(Error::SchemaTooNew { found, known }) => {
            assert_eq!((found, known), (newer, latest_version()));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn an_applied_migration_whose_text_changed_is_refused() {
    let db = database().await;
    migrate(db.pool()).await.unwrap();
    db.pool()
        .get()
        .await
        .unwrap()
        .execute(
            "UPDATE wa_store_schema_migrations SET checksum = '\\x00' WHERE version = 1",
            &[],
        )
        .await
        .unwrap();
    assert!(
        matches!(
            migrate(db.pool()).await,
            Err(Error::MigrationChanged { version: 1, .. })
        ),
        "an edited migration must not pass"
    );
}

#[tokio::test]
async fn a_store_id_must_be_non_empty_and_short() {
    let db = database().await;
    migrate(db.pool()).await.unwrap();
    for bad in [String::new(), "x".repeat(201)] {
        assert!(
            matches!(
                PostgresStore::new(db.pool().clone(), &bad).await,
                Err(Error::InvalidStoreId { .. })
            ),
            "{} characters",
            bad.len()
        );
    }
    let ok = PostgresStore::new(db.pool().clone(), &"x".repeat(200)).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn opening_a_store_twice_is_the_same_store() {
    let db = database().await;
    migrate(db.pool()).await.unwrap();
    let first = PostgresStore::new(db.pool().clone(), "optica-sol")
        .await
        .unwrap();
    first
        .put_identity("5511@s.whatsapp.net", [7; 32])
        .await
        .unwrap();
    let again = PostgresStore::new(db.pool().clone(), "optica-sol")
        .await
        .unwrap();
    assert_eq!(
        again.load_identity("5511@s.whatsapp.net").await.unwrap(),
        Some([7; 32])
    );
}

/// Wiping one organization's store removes its device and Signal state and
/// nothing of another's; the wiped store stays usable.
#[tokio::test]
async fn wipe_empties_one_store_and_leaves_the_others() {
    let db = database().await;
    migrate(db.pool()).await.unwrap();
    let sol = Arc::new(
        PostgresStore::new(db.pool().clone(), "optica-sol")
            .await
            .unwrap(),
    );
    let luna = Arc::new(
        PostgresStore::new(db.pool().clone(), "optica-luna")
            .await
            .unwrap(),
    );
    for store in [&sol, &luna] {
        store.create().await.unwrap();
        store
            .put_session("5511@s.whatsapp.net", b"session")
            .await
            .unwrap();
    }

    sol.wipe().await.unwrap();
    assert!(!sol.exists().await.unwrap());
    assert_eq!(sol.get_session("5511@s.whatsapp.net").await.unwrap(), None);
    assert!(luna.exists().await.unwrap());
    assert!(luna.has_session("5511@s.whatsapp.net").await.unwrap());

    sol.create().await.expect("a wiped store pairs again");
    assert!(sol.exists().await.unwrap());
}

/// The data lives in the database: nothing is held in this process.
#[tokio::test]
async fn the_resource_report_claims_no_process_memory() {
    let db = database().await;
    migrate(db.pool()).await.unwrap();
    let store = PostgresStore::new(db.pool().clone(), "optica-sol")
        .await
        .unwrap();
    let report = store.resource_report().await;
    assert_eq!(
        (report.memory_bytes, report.pages),
        (Some(0), None),
        "{report:?}"
    );
}
