//! Sliding-window tables: `[windows.*]` (the error windows and the restart
//! intensity, CONTRACT §5) and, with the same shape, `[connection_budget.*]`.
//!
//! Each window has its own defaults, taken from the actor crate's configuration,
//! and its own ranges. They are a type parameter so that a table giving only
//! `limit` keeps its own `seconds` (with one shared `Default`,
//! `[windows.stream] limit = 4` alone would silently get the Bad MAC window's 30 s).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use wa_actors::{SupervisorConfig, WindowSpec};

use super::range::{Number, Range};

/// What sets one kind of window apart: its table, its defaults, its ranges.
pub trait WindowKind {
    /// The table, as in `config.toml`.
    const TABLE: &'static str;
    const LIMIT: Range;
    const SECONDS: Range;
    /// The actor crate's default for this window.
    fn default_spec() -> WindowSpec;
}

/// Any window's limit: at least one event, and a bound that keeps the window's
/// memory small.
pub const LIMIT: Range = Range::new(1, 1_000_000);
/// Error windows measure bursts: a day at most.
pub const BURST_SECONDS: Range = Range::new(1, 86_400);
/// Periods of cleanups and connection budgets: a week at most.
pub const PERIOD_SECONDS: Range = Range::new(1, 604_800);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream;
impl WindowKind for Stream {
    const TABLE: &'static str = "windows.stream";
    const LIMIT: Range = LIMIT;
    const SECONDS: Range = BURST_SECONDS;
    fn default_spec() -> WindowSpec {
        super::actor_defaults().healing.stream
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cleanups;
impl WindowKind for Cleanups {
    const TABLE: &'static str = "windows.cleanups";
    const LIMIT: Range = LIMIT;
    const SECONDS: Range = PERIOD_SECONDS;
    fn default_spec() -> WindowSpec {
        super::actor_defaults().cleanups
    }
}

/// One sliding window: `limit` events within `seconds`.
pub struct Window<K> {
    pub limit: usize,
    pub seconds: u64,
    kind: PhantomData<K>,
}

impl<K: WindowKind> Window<K> {
    pub fn new(limit: usize, seconds: u64) -> Self {
        Self {
            limit,
            seconds,
            kind: PhantomData,
        }
    }

    pub fn spec(&self) -> WindowSpec {
        WindowSpec::new(self.limit, Duration::from_secs(self.seconds))
    }

    pub fn numbers(&self) -> [Number; 2] {
        [
            Number::new(K::TABLE, "limit", self.limit, K::LIMIT),
            Number::new(K::TABLE, "seconds", self.seconds, K::SECONDS),
        ]
    }
}

impl<K: WindowKind> Default for Window<K> {
    fn default() -> Self {
        let spec = K::default_spec();
        Self::new(spec.limit, spec.length.as_secs())
    }
}

// By hand: a derive would ask the marker type for the same traits.
impl<K> Clone for Window<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Window<K> {}
impl<K> PartialEq for Window<K> {
    fn eq(&self, other: &Self) -> bool {
        (self.limit, self.seconds) == (other.limit, other.seconds)
    }
}
impl<K> fmt::Debug for Window<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Window")
            .field("limit", &self.limit)
            .field("seconds", &self.seconds)
            .finish()
    }
}

/// The TOML shape of a [`Window`]; a missing key takes the window's default.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    limit: Option<usize>,
    seconds: Option<u64>,
}

impl<'de, K: WindowKind> Deserialize<'de> for Window<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawWindow::deserialize(d)?;
        let default = Self::default();
        Ok(Self::new(
            raw.limit.unwrap_or(default.limit),
            raw.seconds.unwrap_or(default.seconds),
        ))
    }
}

impl<K> Serialize for Window<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RawWindow {
            limit: Some(self.limit),
            seconds: Some(self.seconds),
        }
        .serialize(s)
    }
}

/// `[windows.bad_mac]`: a window of undecryptable messages that trips only with
/// `limit` events from at least `distinct_senders` senders (CONTRACT §11).
///
/// Without `distinct_senders`, a configured `limit` below the default senders
/// (`limit = 1`) lowers it to the limit, so a configuration written before the key
/// existed keeps meaning what it meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BadMacWindow {
    pub limit: usize,
    pub seconds: u64,
    pub distinct_senders: usize,
}

const BAD_MAC: &str = "windows.bad_mac";

impl Default for BadMacWindow {
    fn default() -> Self {
        let policy = super::actor_defaults().healing;
        Self {
            limit: policy.bad_mac.limit,
            seconds: policy.bad_mac.length.as_secs(),
            distinct_senders: policy.distinct_senders,
        }
    }
}

/// The TOML shape of a [`BadMacWindow`]; a missing key takes its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBadMac {
    limit: Option<usize>,
    seconds: Option<u64>,
    distinct_senders: Option<usize>,
}

impl<'de> Deserialize<'de> for BadMacWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawBadMac::deserialize(d)?;
        let default = Self::default();
        let limit = raw.limit.unwrap_or(default.limit);
        Ok(Self {
            limit,
            seconds: raw.seconds.unwrap_or(default.seconds),
            distinct_senders: raw
                .distinct_senders
                .unwrap_or_else(|| default.distinct_senders.min(limit.max(1))),
        })
    }
}

impl BadMacWindow {
    pub fn spec(&self) -> WindowSpec {
        WindowSpec::new(self.limit, Duration::from_secs(self.seconds))
    }

    /// `distinct_senders` is checked against `limit` with the healing policy.
    pub fn numbers(&self) -> [Number; 3] {
        [
            Number::new(BAD_MAC, "limit", self.limit, LIMIT),
            Number::new(BAD_MAC, "seconds", self.seconds, BURST_SECONDS),
            Number::new(BAD_MAC, "distinct_senders", self.distinct_senders, LIMIT),
        ]
    }
}

/// `[windows.*]`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsConfig {
    pub bad_mac: BadMacWindow,
    pub stream: Window<Stream>,
    pub cleanups: Window<Cleanups>,
}

impl WindowsConfig {
    pub fn numbers(&self) -> Vec<Number> {
        [
            self.bad_mac.numbers().to_vec(),
            self.stream.numbers().to_vec(),
            self.cleanups.numbers().to_vec(),
        ]
        .concat()
    }

    /// Sets what these tables configure of the actor tree.
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.healing.bad_mac = self.bad_mac.spec();
        actors.healing.distinct_senders = self.bad_mac.distinct_senders;
        actors.healing.stream = self.stream.spec();
        actors.cleanups = self.cleanups.spec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_given_in_part_keeps_its_own_defaults() {
        let w: WindowsConfig = toml::from_str("[stream]\nlimit = 4\n").unwrap();
        assert_eq!((w.stream.limit, w.stream.seconds), (4, 60));
        assert_eq!(w.bad_mac, BadMacWindow::default());
        assert_eq!(w.cleanups.spec(), SupervisorConfig::new("x").cleanups);
    }

    #[test]
    fn distinct_senders_follow_a_lower_limit_unless_given() {
        let w: WindowsConfig = toml::from_str("[bad_mac]\nlimit = 1\n").unwrap();
        assert_eq!((w.bad_mac.limit, w.bad_mac.distinct_senders), (1, 1));
        let w: WindowsConfig =
            toml::from_str("[bad_mac]\nlimit = 5\ndistinct_senders = 3\n").unwrap();
        assert_eq!((w.bad_mac.limit, w.bad_mac.distinct_senders), (5, 3));
        let w: WindowsConfig = toml::from_str("").unwrap();
        assert_eq!(w.bad_mac.distinct_senders, 2);
    }
}
