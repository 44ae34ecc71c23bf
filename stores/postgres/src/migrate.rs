//! Versioned schema migrations, applied at start.
//!
//! The migrations are SQL files compiled into the binary, applied in version order,
//! each recorded in `wa_store_schema_migrations` with a checksum of its text. All
//! pending ones run in one transaction that first takes a transaction-scoped advisory
//! lock, so two processes starting at once apply each migration exactly once (the
//! second waits, then finds nothing left to do), and a failure applies none.
//!
//! The table is this crate's own: other parts of the daemon that keep tables in the
//! same database keep their own migration records, so neither mistakes the other's
//! versions for unknown ones.

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use crate::Error;

/// One schema change. Versions only grow; an applied migration is never edited (a
/// change is a new migration), which the checksum enforces.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "wa_store",
        sql: include_str!("migrations/0001_wa_store.sql"),
    },
    Migration {
        version: 2,
        name: "cluster",
        sql: include_str!("migrations/0002_cluster.sql"),
    },
    Migration {
        version: 3,
        name: "cluster_processes",
        sql: include_str!("migrations/0003_cluster_processes.sql"),
    },
    Migration {
        version: 4,
        name: "media",
        sql: include_str!("migrations/0004_media.sql"),
    },
];

/// The advisory lock key serializing migrations ("wa_store" in ASCII), distinct from
/// any other user of advisory locks in a shared database.
const MIGRATION_LOCK: i64 = 0x7761_5f73_746f_7265;

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS wa_store_schema_migrations (
    version    BIGINT PRIMARY KEY,
    name       TEXT NOT NULL,
    checksum   BYTEA NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// Versions applied by this call, in order (empty when the schema was current).
    pub applied: Vec<i64>,
    /// The schema version now.
    pub version: i64,
}

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database's schema up to this build's: idempotent, and safe when
/// several processes call it at once.
///
/// Fails, changing nothing, when the database has a migration this build does not
/// know (a newer build migrated it) or one whose text differs from this build's.
pub async fn migrate(pool: &Pool) -> Result<MigrationReport, Error> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(CREATE_LEDGER).await?;
    let rows = tx
        .query(
            "SELECT version, name, checksum FROM wa_store_schema_migrations ORDER BY version",
            &[],
        )
        .await?;
    let mut applied_before = Vec::with_capacity(rows.len());
    for row in rows {
        let (version, name, checksum): (i64, String, Vec<u8>) =
            (row.get(0), row.get(1), row.get(2));
        let Some(known) = MIGRATIONS.iter().find(|m| m.version == version) else {
            return Err(Error::SchemaTooNew {
                found: version,
                known: latest_version(),
            });
        };
        if checksum != self::checksum(known.sql) {
            return Err(Error::MigrationChanged { version, name });
        }
        applied_before.push(version);
    }

    let mut applied = Vec::new();
    for migration in MIGRATIONS
        .iter()
        .filter(|m| !applied_before.contains(&m.version))
    {
        tx.batch_execute(migration.sql).await?;
        tx.execute(
            "INSERT INTO wa_store_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
            &[
                &migration.version,
                &migration.name,
                &checksum(migration.sql),
            ],
        )
        .await?;
        applied.push(migration.version);
    }
    tx.commit().await?;
    if !applied.is_empty() {
        tracing::info!(?applied, "PostgreSQL store schema migrated");
    }
    Ok(MigrationReport {
        applied,
        version: latest_version(),
    })
}

fn checksum(sql: &str) -> Vec<u8> {
    Sha256::digest(sql.as_bytes()).to_vec()
}
