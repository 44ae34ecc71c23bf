//! The root supervisor: org id → org actor, restarts crashed ones, stops them all.

mod actor;
mod handle;
mod media;
mod messages;
mod registry;

pub use handle::{CleanOutcome, RestoreOutcome, StartOutcome, Supervisor, SupervisorParts};
pub use media::MediaRequest;
pub use messages::{MessageRequest, SentMessage};

#[cfg(test)]
mod tests;
