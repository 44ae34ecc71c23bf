//! The allowed range of every numeric key, checked at start so that the daemon
//! never starts half-configured (a `max_in_flight` of 2^61 starts, then panics in
//! the semaphore; a backoff of `u64::MAX` ms leaves a session waiting forever).

use std::fmt;

use super::ConfigError;

/// An inclusive range of a key's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    pub const fn new(min: u64, max: u64) -> Self {
        Self { min, max }
    }

    pub fn contains(self, value: u64) -> bool {
        (self.min..=self.max).contains(&value)
    }
}

/// As written in the messages, `config.toml` and the README: `1–65536`.
impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}–{}", self.min, self.max)
    }
}

/// One numeric key of a table, with its value and range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// The table, as in `config.toml`: `server`, `windows.bad_mac`, …
    pub table: &'static str,
    pub key: &'static str,
    pub value: u64,
    pub range: Range,
}

impl Number {
    pub fn new(
        table: &'static str,
        key: &'static str,
        value: impl TryInto<u64>,
        range: Range,
    ) -> Self {
        Self {
            table,
            key,
            // Every key is a u64, u32 or usize: only a usize wider than u64 could
            // fail, and it is out of any range.
            value: value.try_into().unwrap_or(u64::MAX),
            range,
        }
    }

    /// `[table] key`, as the messages name a key.
    pub fn name(&self) -> String {
        format!("[{}] {}", self.table, self.key)
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        if self.range.contains(self.value) {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange {
                key: self.name(),
                value: self.value,
                range: self.range,
            })
        }
    }
}

/// Checks every number, stopping at the first one out of its range.
pub fn check_all(numbers: impl IntoIterator<Item = Number>) -> Result<(), ConfigError> {
    numbers.into_iter().try_for_each(|n| n.check())
}
