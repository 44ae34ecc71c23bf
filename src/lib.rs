//! wa-supervisor: keeps one WhatsApp Web session per organization and serves the
//! HTTP API of the Node/Baileys server it replaces (CONTRACT §2).
//!
//! This crate is the daemon around the actor core in `wa_actors`; it knows nothing
//! of WhatsApp (only [`connector`] builds the connection, and the `/sim` routes
//! drive the simulator's fake phones). It is a library as well as a binary so that end-to-end tests and
//! benchmarks can build the same router and daemon that `main` runs.

pub mod api_key;
pub mod build_info;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod connector;
pub mod console;
pub mod daemon;
pub mod http;
pub mod instance_lock;
pub mod live_events;
pub mod metrics;
pub mod phone;
pub mod qr_render;
pub mod server;
pub mod shared_events;
pub mod systemd;
pub mod telemetry;
pub mod webhook;
