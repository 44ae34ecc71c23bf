//! A whatsapp-rust store (`Backend`) on PostgreSQL: the stores of many
//! organizations, and later of many daemons, in one database.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use wa_store_postgres::{PostgresStore, connect, migrate};
//! use wacore::store::traits::Backend;
//!
//! let pool = connect("postgres://wa@db.internal/optics", 16)?;
//! migrate(&pool).await?; // once at start
//! let store: Arc<dyn Backend> = Arc::new(PostgresStore::new(pool.clone(), "optica-sol").await?);
//! // whatsapp_rust::bot::Bot::builder().with_backend_arc(store) ...
//! # Ok(()) }
//! ```
//!
//! # Schema and keys
//!
//! The tables mirror upstream's SQLite store (`whatsapp-rust-sqlite-storage`
//! 0.7.0), one per kind of state, all prefixed `wa_` so they sit beside other
//! applications' tables (see `src/migrations/`):
//!
//! - `wa_device`: the device itself (keys, account, counters), one row per store;
//! - Signal: `wa_identities`, `wa_sessions`, `wa_prekeys`, `wa_signed_prekeys`,
//!   `wa_sender_keys`;
//! - app state: `wa_app_state_keys`, `wa_app_state_versions`,
//!   `wa_app_state_mutation_macs`;
//! - protocol: `wa_sender_key_devices`, `wa_lid_pn_mappings`, `wa_base_keys`,
//!   `wa_device_registry`, `wa_group_metadata`, `wa_tc_tokens`,
//!   `wa_sent_messages`, `wa_pending_inbound`;
//! - `wa_msg_secrets`.
//!
//! Upstream keys every row by an integer `device_id` so that one file can hold
//! several accounts; here every row's primary key starts with `store_id`, the
//! organization id given to [`PostgresStore::new`], and every statement filters
//! on it, so two organizations never read or change each other's rows. The
//! stores themselves are listed in `wa_stores`, which every table references
//! with `ON DELETE CASCADE`: [`PostgresStore::wipe`] removes one organization's
//! state in one statement.
//!
//! Values keep upstream's encodings where they matter to the client (key pairs
//! as private‖public bytes, the account as protobuf, device lists as JSON);
//! structured values upstream packs into blobs get columns of their own (sync
//! keys, the ltHash state, with its index map as JSON). u32 ids and counters
//! are `BIGINT`, so none wraps; u64 versions are bit-cast into `BIGINT`.
//!
//! Semantics follow upstream method by method; `tests/contract` runs one suite
//! against both stores. Batches are one statement each (arrays through
//! `UNNEST`), with keys repeated in a batch folded first so the result is what
//! upstream's row-by-row writes leave (see `batch.rs`).
//!
//! # Migrations
//!
//! [`migrate`] applies the versioned SQL files in `src/migrations/`, compiled
//! into the binary, inside one transaction that holds an advisory lock: safe
//! when several processes start at once, all or nothing, recorded with a
//! checksum in `wa_store_schema_migrations`. It refuses a database migrated by a
//! newer build and a migration whose text changed.
//!
//! # The fencing seam
//!
//! When organizations move between daemons, a daemon that lost an
//! organization's lease must not write one more row of its store. Every change
//! goes through one place, `store::Write` (a transaction; reads go through
//! `PostgresStore::read*`, which cannot write). For a
//! [fenced](PostgresStore::new_fenced) store, `Write::begin` checks the lease inside
//! that same transaction (`wa_fence`: the lease row locked `FOR SHARE`, its
//! token compared with the one this node holds, its expiry checked) and fails
//! the write with a `StoreError` when the lease moved on, telling the [`Fence`].
//!
//! # Several daemons on one database
//!
//! Migration 0002 adds what the nodes of a cluster share (CONTRACT §13), each
//! behind a trait of the actor crate:
//!
//! - [`PostgresLeases`] (`wa_nodes`, `wa_leases`, `wa_snapshots`): heartbeats,
//!   ownership leases with fencing tokens, published session snapshots;
//! - [`PostgresOutbox`] (`wa_outbox`): the outbox, with fenced delivery updates;
//! - [`PostgresSessions`] (`wa_stores`, `wa_backups`): sessions, backups by
//!   renaming a store, restores by swapping two;
//! - [`PostgresSimLedger`] (`wa_sim_*`): the fake phone's record in sim mode;
//! - [`PostgresCommands`] (`wa_commands`): requests handed to an org's owner;
//! - [`PostgresMedia`] (`wa_media`, migration 0004): queued media files, read by
//!   whichever node delivers them;
//! - [`listen`]: the notifications that wake nodes (`wa_outbox`, `wa_message`,
//!   `wa_snapshot`, `wa_leases`, `wa_commands`, `wa_replies`).
//!
//! # Connections
//!
//! One [`deadpool_postgres::Pool`] serves every organization; [`connect`]
//! builds one over plain TCP or a Unix socket. For TLS, build the pool with a
//! TLS connector and pass it to [`PostgresStore::new`]. Statements are prepared
//! once per connection and cached.
//!
//! # Tests
//!
//! The `testing` feature provides `testing::database()`: a fresh database per
//! test on `WA_TEST_DATABASE_URL`, or on a private cluster started from
//! Debian's `postgresql` binaries and stopped when the test binary exits.

mod app_sync;
mod batch;
pub mod cluster;
pub mod commands;
mod device;
mod error;
pub mod events;
mod fence;
mod listen;
mod media;
mod migrate;
mod msg_secrets;
pub mod outbox;
mod pool;
mod protocol;
mod sessions;
mod signal;
mod sim;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

// The pool and client types of the API, for callers that build their own pool.
pub use deadpool_postgres;
pub use tokio_postgres;

pub use cluster::PostgresLeases;
pub use commands::{Command, PostgresCommands};
pub use error::{Error, describe};
pub use fence::Fence;
pub use listen::{Heard, listen};
pub use media::PostgresMedia;
pub use migrate::{MigrationReport, latest_version, migrate};
pub use outbox::PostgresOutbox;
pub use pool::{connect, pool_for};
pub use sessions::PostgresSessions;
pub use sim::PostgresSimLedger;
pub use store::PostgresStore;
