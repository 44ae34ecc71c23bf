//! A WhatsApp Web server on loopback, for testing the real whatsapp-rust client end
//! to end: the real Noise handshake, the real binary nodes, the real SQLite store.
//!
//! Dev-only. It plays both WhatsApp's server and the phone of each account: it shows
//! a device QR refs, links it like a phone that scanned the QR, logs it in, answers
//! its queries, records what it sends, and injects the faults a real server sends.

pub mod login;
pub mod pairing;
pub mod contacts;
