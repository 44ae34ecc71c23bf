//! The actor core of wa-supervisor: one actor per organization owns its WhatsApp
//! connection and heals it by itself. No HTTP here; the daemon drives it through
//! the [`Supervisor`] handle.
//!
//! ```text
//!                         Supervisor (handle: Clone, used by the HTTP facade)
//!                              │ start / logout / clean        ▲ snapshots (watch)
//!                              ▼                               │
//!   ┌──────────────── SupervisorActor ───────────────┐         │
//!   │ org id → OrgActor, restarts crashed ones,      │         │
//!   │ cleanup intensity (quarantine), phone book     │         │
//!   └───────┬───────────────────┬────────────────────┘         │
//!      spawn_linked        spawn_linked                         │
//!           ▼                   ▼                               │
//!       OrgActor "2"        OrgActor "7" ── status ─────────────┘
//!        │  ▲ events(gen)       (state machine of CONTRACT §3, error windows)
//!  cmds  ▼  │
//!      driver task ── Connection (sim or whatsapp-rust)   ← the only await on the network
//!           │
//!           ▼
//!      StorageActor: org dirs 0700, backup = atomic rename, keep newest N, wipe
//! ```
//!
//! Message flow of a heal: the connection reports `Undecryptable` → the org actor
//! records it in its Bad MAC window → at the limit it bumps its generation (stale
//! events are ignored from then on) and tells its driver to wipe → the driver shuts
//! the connection down, asks the storage actor to back up and wipe, and reports
//! `Healed` → the org actor opens a fresh connection in pairing mode → `qr_ready`.

pub mod budget;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod error;
pub mod events;
pub mod healing;
pub mod media;
pub mod numbers;
pub mod org_id;
pub mod outbox;
mod phone_book;
mod session;
pub mod status;
pub mod storage;
mod supervisor;
pub mod window;

pub use budget::{BlockReason, Blocked, BudgetSpec, ConnectionBudget, GlobalBudget, OrgBudget};
pub use config::{Backoff, MediaSpec, OutboxSpec, SupervisorConfig};
pub use error::{NumberCheckError, SendError, SessionError};
pub use events::{EventKind, EventSink, MessageEvent, SessionEvent};
pub use org_id::{OrgId, OrgIdError};
pub use status::{SessionSnapshot, SessionStatus};
pub use supervisor::{
    CleanOutcome, MediaRequest, MessageRequest, RestoreOutcome, SentMessage, StartOutcome,
    Supervisor, SupervisorParts,
};
pub use window::{ErrorWindow, WindowSpec};
