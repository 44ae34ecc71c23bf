//! Healing precisely (CONTRACT §11): decide, from the errors a connection reports,
//! when to restart it from the same credentials and when to back up, wipe and pair
//! again. Pure decision logic ([`Healer`]); the org actor carries the steps out.
//!
//! # The rules
//!
//! - The Bad MAC window trips only with at least `limit` undecryptable messages from at
//!   least `distinct_senders` different senders inside it (one contact's broken Signal
//!   session is that contact's problem; only our own broken store fails many contacts).
//!   The stream window trips as in CONTRACT §5.
//! - With `restart_first`, a trip hands out [`Step::Restart`]: restart the connection
//!   from the same credentials and clear both windows. A trip before the restart is
//!   done, or within `confirm` of it, hands out [`Step::Wipe`]. Once `confirm` has passed
//!   without a trip, the next trip restarts again.
//! - Restart intensity: with `restarts.limit` restarts already done within
//!   `restarts.length`, the next trip wipes even with `restart_first`, so a session
//!   cannot loop on restarts.
//! - Cleanup intensity (CONTRACT §5: more than 3 cleanups within an hour quarantine
//!   the org) is not here: the supervisor keeps that window per org so that it survives
//!   actor crashes. The caller applies it to a `Wipe` step, as below.
//!
//! # Configuration
//!
//! | key | default | range | field |
//! |---|---|---|---|
//! | `[windows.bad_mac] limit`, `seconds` | `3`, `30` | as before | `bad_mac` |
//! | `[windows.bad_mac] distinct_senders` | `2` | 1 to `limit` (1 = the old rule) | `distinct_senders` |
//! | `[windows.stream] limit`, `seconds` | `2`, `60` | as before | `stream` |
//! | `[healing] restart_first` | `true` | | `restart_first` |
//! | `[healing] confirm_seconds` | `900` | 60 to 86400 | `confirm` |
//! | `[healing.restarts] limit` | `3` | 0 to 100 (0 = never restart) | `restarts.limit` |
//! | `[healing.restarts] seconds` | `86400` | `confirm_seconds` to 604800 | `restarts.length` |
//!
//! [`HealingPolicy::validate`] checks the new keys and names the one at fault. Why the
//! restart intensity defaults: see [`HealingPolicy::default`].
//!
//! # What survives what
//!
//! | | Bad MAC / stream windows | restart history | phase |
//! |---|---|---|---|
//! | a reconnect (network, 515, 429/503, a stream error below the limit) | kept | kept | kept |
//! | a trip handing out `Restart` | cleared | kept | `Restarting` |
//! | [`Healer::restart_done`] | – | + this restart | `Confirming` |
//! | `confirm` passing without a trip | kept | kept | `Watching` |
//! | a trip handing out `Wipe` | cleared; new errors ignored | kept | `Wiping` |
//! | [`Healer::wiped`] (after the wipe, or starting a quarantined org again) | cleared | cleared | `Watching` |
//! | [`Healer::wipe_failed`] (the wipe failed, or the actor crashed during it) | – | kept | `Watching` |
//! | the org actor crashing | whatever the caller keeps: a `Healer` held in the supervisor's registry entry (beside the cleanup window) survives, one inside the actor does not | | |
//! | the supervisor's cleanup window | not the healer's; survives actor crashes | | |
//!
//! # Calling it
//!
//! ```
//! use std::time::Duration;
//! use tokio::time::Instant;
//! use wa_actors::healing::{Healer, HealingPolicy, Step};
//! use wa_actors::{ErrorWindow, WindowSpec};
//!
//! enum Action { Restart, Wipe, Quarantine }
//!
//! // The supervisor's per-org cleanup window (CONTRACT §5), checked on a wipe only.
//! fn act(step: Step, cleanups: &mut ErrorWindow, now: Instant) -> Action {
//!     match step {
//!         Step::Restart => Action::Restart,
//!         Step::Wipe if cleanups.count(now) >= cleanups.spec().limit => Action::Quarantine,
//!         Step::Wipe => {
//!             cleanups.record(now);
//!             Action::Wipe
//!         }
//!     }
//! }
//!
//! let mut healer = Healer::new(HealingPolicy::default());
//! let mut cleanups = ErrorWindow::new(WindowSpec::new(3, Duration::from_secs(3600)));
//! let t0 = Instant::now();
//! let s = Duration::from_secs;
//! assert!(healer.on_decrypt_error(t0, "573001112233@s.whatsapp.net").is_none());
//! assert!(healer.on_decrypt_error(t0 + s(1), "573004445566@s.whatsapp.net").is_none());
//! let trip = healer.on_decrypt_error(t0 + s(2), "573001112233@s.whatsapp.net").unwrap();
//! assert!(matches!(act(trip.step, &mut cleanups, t0 + s(2)), Action::Restart));
//! healer.restart_done(t0 + s(4)); // the restarted connection is up
//! healer.on_stream_error(t0 + s(60));
//! let trip = healer.on_stream_error(t0 + s(90)).unwrap(); // within confirm
//! assert!(matches!(act(trip.step, &mut cleanups, t0 + s(90)), Action::Wipe));
//! healer.wiped();
//! ```
//!
//! # The corpus
//!
//! [`trace`] reads labelled event traces, [`replay`] runs one through a `Healer` in
//! virtual time with a model of the actor's reconnects, [`live`] walks one through the
//! real actor tree over the fake phone in paused time, and [`corpus`] holds the traces
//! (`corpus/*.trace`) that the tests check against their labels both ways (and the model
//! against the tree) and that `cargo bench -p wa-actors --bench healing_corpus`
//! tabulates beside the old rule.

pub mod corpus;
mod healer;
pub mod live;
mod policy;
pub mod replay;
pub mod trace;

pub use healer::{Healer, Phase, Step, Trip, WindowKind};
pub use policy::{
    CONFIRM_SECONDS, HealingPolicy, PolicyError, RESTARTS_LIMIT_MAX, RESTARTS_SECONDS_MAX,
};
