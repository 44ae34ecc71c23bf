//! The root supervisor: org id → org actor, restarts crashed ones, stops them all.

mod actor;
mod handle;
mod registry;

pub use handle::{CleanOutcome, RestoreOutcome, SentMessage, StartOutcome, Supervisor};

#[cfg(test)]
mod tests;
