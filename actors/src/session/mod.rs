//! The org session actor: one per organization, an explicit state machine over
//! the phases of [`phase::Phase`], from which the statuses of CONTRACT §3 are
//! derived. It owns the org's connection through its driver ("the actor decides;
//! the driver does"), heals it, and tells the org's outbox lane when it may send.
//!
//! - [`actor`]: the state, how an incarnation begins, the one dispatch.
//! - [`transitions`]: requests, connection reports and timers, step by step.
//! - [`steps`]: what a transition ends in (probe, open, back off, wipe, enter).
//! - [`healing`]: error windows, corrupt stores and what follows a wipe.
//! - [`driver`]: the one task that awaits the org's network and disk.
//!
//! Every connection is tagged with a *generation*. Whenever the actor gives up on
//! a connection or arms a wait it bumps the generation, so late reports of an old
//! connection and timers armed for an old wait are recognised and ignored.

mod actor;
mod driver;
mod healing;
mod lane_link;
mod msg;
mod phase;
mod steps;
mod transitions;

pub(crate) use actor::{Begin, OrgActor, OrgArgs};
pub(crate) use msg::{LaneReport, OrgMsg, Removal, Request};
