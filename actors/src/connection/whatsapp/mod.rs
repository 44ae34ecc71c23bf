//! The real connection, on whatsapp-rust 0.7.0 (crate feature `whatsapp`).
//!
//! The library's events are mapped by the pure [`map_event`] (CONTRACT §4).

mod events;

pub use events::map_event;

#[cfg(test)]
mod tests;
