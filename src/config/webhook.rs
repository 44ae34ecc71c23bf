//! The ranges of `[webhook]`'s numbers. The table itself, its defaults and its
//! other checks belong to the webhook module ([`crate::webhook::WebhookConfig`]).

use super::range::{Number, Range};
use crate::webhook::WebhookConfig;

const TABLE: &str = "webhook";
pub const TIMEOUT_MS: Range = Range::new(100, 60_000);
pub const MAX_ATTEMPTS: Range = Range::new(1, 100);
pub const INITIAL_BACKOFF_MS: Range = Range::new(1, 600_000);
pub const MAX_BACKOFF_MS: Range = Range::new(1, 3_600_000);
pub const QUEUE_SIZE: Range = Range::new(1, 100_000);

pub fn numbers(c: &WebhookConfig) -> Vec<Number> {
    vec![
        Number::new(TABLE, "timeout_ms", c.timeout_ms, TIMEOUT_MS),
        Number::new(TABLE, "max_attempts", c.max_attempts, MAX_ATTEMPTS),
        Number::new(
            TABLE,
            "initial_backoff_ms",
            c.initial_backoff_ms,
            INITIAL_BACKOFF_MS,
        ),
        Number::new(TABLE, "max_backoff_ms", c.max_backoff_ms, MAX_BACKOFF_MS),
        Number::new(TABLE, "queue_size", c.queue_size, QUEUE_SIZE),
    ]
}
