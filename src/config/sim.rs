//! `[sim]`: QR rotation of the fake phone.
//!
//! Plain numbers here; their defaults (the fake phone's own, which are WhatsApp's
//! timing) and their conversion live in [`crate::connector`], the one module that
//! knows the connections.

use serde::{Deserialize, Serialize};

use super::range::{Number, Range};

const TABLE: &str = "sim";
pub const QR_SECONDS: Range = Range::new(1, 600);
pub const QR_COUNT: Range = Range::new(1, 100);

/// `Default` is implemented in [`crate::connector`].
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub first_qr_seconds: u64,
    pub next_qr_seconds: u64,
    pub qr_count: usize,
}

impl SimConfig {
    pub fn numbers(&self) -> Vec<Number> {
        vec![
            Number::new(TABLE, "first_qr_seconds", self.first_qr_seconds, QR_SECONDS),
            Number::new(TABLE, "next_qr_seconds", self.next_qr_seconds, QR_SECONDS),
            Number::new(TABLE, "qr_count", self.qr_count, QR_COUNT),
        ]
    }
}
