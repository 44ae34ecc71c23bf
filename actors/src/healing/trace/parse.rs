//! The trace parser: pure, one pass, every error naming its line.

use std::time::Duration;

use super::duration::{duration, format_duration};
use super::{Delivery, Expect, Scheduled, Trace, WorldEvent, pool_sender};

/// A trace that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: Problem },
    #[error("the trace has no `{0}:` label")]
    MissingLabel(&'static str),
}

/// What is wrong with one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("unknown label `{0}:` (expect, old_rule, restarts)")]
    UnknownLabel(String),
    #[error("`{0}:` given twice")]
    DuplicateLabel(&'static str),
    #[error("labels come before the first event")]
    LabelAfterEvents,
    #[error("`expect: {0}`: want `no_wipe` or `wipe within <duration>`")]
    BadExpect(String),
    #[error("`old_rule: {0}`: want `wipe` or `no_wipe`")]
    BadOldRule(String),
    #[error("`{0}` is not a count")]
    BadCount(String),
    #[error("`{0}` is not a duration (e.g. 500ms, 12.5s, 10m, 2h, 1m30s)")]
    BadDuration(String),
    #[error("@{at} is before the time of the line above ({cursor})")]
    TimeGoesBack { at: String, cursor: String },
    #[error(
        "unknown event `{0}` (undecryptable, stream_error, network_drop, restart_required, server_busy)"
    )]
    UnknownEvent(String),
    #[error("`{keyword}` wants `{usage}`")]
    Usage {
        keyword: &'static str,
        usage: &'static str,
    },
    #[error("`{arg}` is not an argument of {event}")]
    UnknownArgument { event: &'static str, arg: String },
    #[error("`{0}` given twice")]
    DuplicateArgument(String),
    #[error("`{arg}={value}`: {why}")]
    BadValue {
        arg: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("undecryptable needs `sender=<digits>`{0}")]
    MissingSender(&'static str),
    #[error("`senders=` only in `burst` or `every`: one message has one sender")]
    PoolInOneOff,
    #[error("{0} events from one line; at most {MAX_PER_LINE}")]
    TooManyEvents(u128),
}

/// The most events one `burst` or `every` line may make, so that a typo such as
/// `every 1ms for 10h` is an error rather than billions of events.
pub const MAX_PER_LINE: u128 = 100_000;

/// Who sends the messages of one line.
enum Sender {
    One(String),
    /// A pool of `n` contacts taken in turn.
    Pool(usize),
}

/// One line's event, before it is placed in time.
enum Spec {
    Undecryptable(Sender),
    Stream {
        code: Option<u16>,
        reason: Option<String>,
    },
    Drop(Duration),
    Restart,
    Busy(u16),
}

impl Spec {
    /// The `k`-th occurrence of this line's event.
    fn instance(&self, k: usize) -> WorldEvent {
        match self {
            Spec::Undecryptable(Sender::One(s)) => WorldEvent::Undecryptable { sender: s.clone() },
            Spec::Undecryptable(Sender::Pool(n)) => WorldEvent::Undecryptable {
                sender: pool_sender(k % n),
            },
            Spec::Stream { code, reason } => WorldEvent::StreamError {
                code: *code,
                reason: reason.clone(),
            },
            Spec::Drop(down) => WorldEvent::NetworkDrop { down: *down },
            Spec::Restart => WorldEvent::RestartRequired,
            Spec::Busy(code) => WorldEvent::ServerBusy { code: *code },
        }
    }
}

#[derive(Default)]
struct Labels {
    expect: Option<Expect>,
    old_rule_wipes: Option<bool>,
    restarts: Option<usize>,
}

pub(super) fn parse(text: &str) -> Result<Trace, TraceError> {
    let mut labels = Labels::default();
    let mut events: Vec<Scheduled> = Vec::new();
    let mut cursor = Duration::ZERO;
    let mut end = Duration::ZERO;
    let mut in_events = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let at_line = |problem| TraceError::Line { line, problem };
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        if let Some((key, value)) = as_label(content) {
            if in_events {
                return Err(at_line(Problem::LabelAfterEvents));
            }
            label(&mut labels, key, value.trim()).map_err(at_line)?;
            continue;
        }
        in_events = true;
        let placed = event_line(content, &mut cursor, line).map_err(at_line)?;
        end = end.max(cursor);
        if let Some(last) = placed.last() {
            end = end.max(last.at);
        }
        events.extend(placed);
    }
    // Stable: events at the same time keep their line order.
    events.sort_by_key(|e| e.at);
    Ok(Trace {
        expect: labels.expect.ok_or(TraceError::MissingLabel("expect"))?,
        old_rule_wipes: labels
            .old_rule_wipes
            .ok_or(TraceError::MissingLabel("old_rule"))?,
        restarts: labels.restarts,
        events,
        end,
    })
}

/// `key: value` where key is a lower-case word; event lines never look like that.
fn as_label(content: &str) -> Option<(&str, &str)> {
    let (key, value) = content.split_once(':')?;
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .then_some((key, value))
}

fn label(labels: &mut Labels, key: &str, value: &str) -> Result<(), Problem> {
    match key {
        "expect" => {
            let expect = match value.split_whitespace().collect::<Vec<_>>()[..] {
                ["no_wipe"] => Expect::NoWipe,
                ["wipe", "within", d] => Expect::WipeWithin(duration(d)?),
                _ => return Err(Problem::BadExpect(value.to_owned())),
            };
            set_once(&mut labels.expect, expect, "expect")
        }
        "old_rule" => {
            let wipes = match value {
                "wipe" => true,
                "no_wipe" => false,
                _ => return Err(Problem::BadOldRule(value.to_owned())),
            };
            set_once(&mut labels.old_rule_wipes, wipes, "old_rule")
        }
        "restarts" => set_once(&mut labels.restarts, count(value)?, "restarts"),
        _ => Err(Problem::UnknownLabel(key.to_owned())),
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), Problem> {
    if slot.replace(value).is_some() {
        return Err(Problem::DuplicateLabel(name));
    }
    Ok(())
}

/// One event line: an optional time, then nothing, one event, `burst` or `every`.
fn event_line(
    content: &str,
    cursor: &mut Duration,
    line: usize,
) -> Result<Vec<Scheduled>, Problem> {
    let mut tokens: Vec<&str> = content.split_whitespace().collect();
    if let Some(first) = tokens.first().copied() {
        if let Some(d) = first.strip_prefix('+') {
            *cursor += duration(d)?;
            tokens.remove(0);
        } else if let Some(d) = first.strip_prefix('@') {
            let at = duration(d)?;
            if at < *cursor {
                return Err(Problem::TimeGoesBack {
                    at: format_duration(at),
                    cursor: format_duration(*cursor),
                });
            }
            *cursor = at;
            tokens.remove(0);
        }
    }
    let start = *cursor;
    let mut cured_by_restart_since = None;
    if let Some(i) = tokens.iter().position(|t| *t == "until") {
        if tokens[i..] != ["until", "restart"] {
            return Err(Problem::Usage {
                keyword: "until",
                usage: "… until restart (at the end of the line)",
            });
        }
        tokens.truncate(i);
        cured_by_restart_since = Some(start);
    }
    let scheduled = |at, event, delivery| Scheduled {
        at,
        event,
        delivery,
        cured_by_restart_since,
        line,
    };
    Ok(match tokens[..] {
        [] => Vec::new(),
        ["every", period, "for", span, ref event @ ..] if !event.is_empty() => {
            let (period, span) = (duration(period)?, duration(span)?);
            if period.is_zero() {
                return Err(Problem::Usage {
                    keyword: "every",
                    usage: "every <period above 0> for <duration> <event>",
                });
            }
            let occurrences = span.as_nanos().div_ceil(period.as_nanos());
            if occurrences > MAX_PER_LINE {
                return Err(Problem::TooManyEvents(occurrences));
            }
            let spec = spec(event, true)?;
            (0..)
                .map(|k| (k, period * k))
                .take_while(|(_, offset)| *offset < span)
                .map(|(k, offset)| {
                    scheduled(
                        start + offset,
                        spec.instance(k as usize),
                        Delivery::WhileConnected,
                    )
                })
                .collect()
        }
        ["every", ..] => {
            return Err(Problem::Usage {
                keyword: "every",
                usage: "every <period> for <duration> <event>",
            });
        }
        ["burst", n, "over", span, ref event @ ..] if !event.is_empty() => {
            let (n, span) = (count(n)?, duration(span)?);
            if n == 0 {
                return Err(Problem::Usage {
                    keyword: "burst",
                    usage: "burst <count above 0> over <duration> <event>",
                });
            }
            if n as u128 > MAX_PER_LINE {
                return Err(Problem::TooManyEvents(n as u128));
            }
            let spec = spec(event, true)?;
            (0..n)
                .map(|i| {
                    let offset = span.mul_f64(i as f64 / n as f64);
                    scheduled(start + offset, spec.instance(i), Delivery::Once)
                })
                .collect()
        }
        ["burst", ..] => {
            return Err(Problem::Usage {
                keyword: "burst",
                usage: "burst <count> over <duration> <event>",
            });
        }
        ref event => vec![scheduled(
            start,
            spec(event, false)?.instance(0),
            Delivery::Once,
        )],
    })
}

/// `kind key=value…`.
fn spec(tokens: &[&str], pool_allowed: bool) -> Result<Spec, Problem> {
    let (kind, args) = tokens
        .split_first()
        .expect("callers pass at least the kind");
    let (event, allowed): (&'static str, &[&'static str]) = match *kind {
        "undecryptable" => ("undecryptable", &["sender", "senders"]),
        "stream_error" => ("stream_error", &["code", "reason"]),
        "network_drop" => ("network_drop", &["down"]),
        "restart_required" => ("restart_required", &[]),
        "server_busy" => ("server_busy", &["code"]),
        other => return Err(Problem::UnknownEvent(other.to_owned())),
    };
    let mut given: Vec<(&'static str, &str)> = Vec::new();
    for arg in args {
        let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
        let Some(&key) = allowed.iter().find(|a| **a == key) else {
            return Err(Problem::UnknownArgument {
                event,
                arg: (*arg).to_owned(),
            });
        };
        if given.iter().any(|(k, _)| *k == key) {
            return Err(Problem::DuplicateArgument(key.to_owned()));
        }
        if value.is_empty() {
            return Err(Problem::BadValue {
                arg: key,
                value: String::new(),
                why: "empty",
            });
        }
        given.push((key, value));
    }
    let get = |key: &str| given.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let code = |default: Option<u16>| -> Result<Option<u16>, Problem> {
        match get("code") {
            None => Ok(default),
            Some(v) => v.parse().map(Some).map_err(|_| Problem::BadValue {
                arg: "code",
                value: v.to_owned(),
                why: "a number from 0 to 65535",
            }),
        }
    };
    Ok(match event {
        "undecryptable" => Spec::Undecryptable(match (get("sender"), get("senders")) {
            (Some(_), Some(_)) => {
                return Err(Problem::Usage {
                    keyword: "undecryptable",
                    usage: "sender=<digits> or senders=<n>, not both",
                });
            }
            (Some(s), None) => Sender::One(digits(s)?),
            (None, Some(_)) if !pool_allowed => return Err(Problem::PoolInOneOff),
            (None, Some(n)) => match count(n)? {
                0 => {
                    return Err(Problem::BadValue {
                        arg: "senders",
                        value: n.to_owned(),
                        why: "at least 1",
                    });
                }
                n => Sender::Pool(n),
            },
            (None, None) if pool_allowed => {
                return Err(Problem::MissingSender(" or `senders=<n>`"));
            }
            (None, None) => return Err(Problem::MissingSender("")),
        }),
        "stream_error" => Spec::Stream {
            code: code(None)?,
            reason: get("reason").map(str::to_owned),
        },
        "network_drop" => Spec::Drop(get("down").map(duration).transpose()?.unwrap_or_default()),
        "restart_required" => Spec::Restart,
        _ => Spec::Busy(code(Some(503))?.unwrap_or(503)),
    })
}

fn digits(s: &str) -> Result<String, Problem> {
    if (7..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_owned())
    } else {
        Err(Problem::BadValue {
            arg: "sender",
            value: s.to_owned(),
            why: "7 to 15 digits, country code first",
        })
    }
}

fn count(s: &str) -> Result<usize, Problem> {
    s.parse().map_err(|_| Problem::BadCount(s.to_owned()))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
