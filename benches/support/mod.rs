//! What `benches/real_sessions.rs` runs on: the daemon as a child process
//! ([`process`]) and the report's plumbing ([`report`]). (`benches/daemon.rs` shares
//! [`report`].)

pub mod process;
pub mod report;

pub const API_KEY: &str = "bench-key-3f9c2a7e5b1d4c608e7f9a0b1c2d3e4f";

pub use report::{least_squares_slope, mib, verdict};
