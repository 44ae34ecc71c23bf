//! The real connection, on whatsapp-rust 0.7.0 (crate feature `whatsapp`).
//!
//! Each connect builds one `Bot` on the org's SQLite store `<dir>/whatsapp.db` with
//! the library's auto-reconnect switched off, so every reconnect is the org actor's
//! decision (CONTRACT §4) and builds a new `Bot` on the same store. The library's
//! events are mapped by the pure [`map_event`] and sent, in dispatch order, into the
//! connection's event stream; the stream ends when the client's run loop does.
//!
//! Where the library is silent, the connection fills in: `<stream:error code=515>`
//! and `429`/`503` are read from the raw stanza, and a connect that never got a
//! socket (DNS, refused, TLS, handshake, timeout) ends with `NetworkFailure`.
//!
//! The store is checked before each connect and its faults come in two classes
//! ([`StoreFault`]): corrupt (wipe and pair again) or unavailable (wait). The
//! device never appears online unless `mark_online` is set (see `presence.rs`),
//! and it is named `device_name` on the phone. Every task of the client runs in
//! the org's `org` span (see `org_runtime.rs`), so the library's log lines carry
//! the org too.
//!
//! [`server_certificate_check_enabled`] tells a shipped build (the server's
//! certificate chain is checked against WhatsApp's key) from a test build (it is not).

mod cert_check;
mod connection;
mod connector;
mod events;
mod org_runtime;
mod presence;
mod store;
mod store_fault;

pub use cert_check::server_certificate_check_enabled;
pub use connection::WhatsAppConnection;
pub use connector::{
    BackendFactory, DEFAULT_DEVICE_NAME, MediaHttpClient, StoreBackend, WhatsAppConnector,
    WhatsAppOptions,
};
pub use events::{OwnAccount, map_event};
pub use store::STORE_FILE;
pub use store_fault::{StoreFault, classify_store_error};
/// The store trait a [`BackendFactory`] opens.
pub use whatsapp_rust::store::Backend;

#[cfg(test)]
mod tests;
