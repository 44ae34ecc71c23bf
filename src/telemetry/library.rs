//! The libraries' `log` records, as `tracing` events an operator can read.
//!
//! whatsapp-rust (and wacore, its SQLite store, r2d2, …) log through the `log`
//! crate, at levels of their own: whatsapp-rust says `error` for a phone that is
//! offline, a contact whose message does not decrypt, or a connect it will retry.
//! This bridge replaces `tracing-log`'s `LogTracer` and gives every record:
//!
//! - a level on the daemon's scale ([`library_level`]): `ERROR` only for what an
//!   operator must act on (a store that cannot be written), everything else the
//!   library calls an error is expected trouble and becomes `WARN`;
//! - its module path as its target (`whatsapp_rust::client::lifecycle`, not the
//!   library's free-form `Client/Recv`), so that `RUST_LOG=whatsapp_rust=debug`
//!   and the default filter select the library by crate;
//! - its numbers masked at `info` and above ([`Masker`]);
//! - no file or line, and no backtrace (anyhow appends one to an error's debug
//!   text when `RUST_BACKTRACE` is set: a hundred lines of Tokio frames).
//!
//! The record is then dispatched as `tracing-log` would, in the current span: a
//! library task of an org runs inside that org's span (the connection spawns the
//! library's tasks in it), so the line carries the org.

use log::Level;

use super::mask::Masker;

/// A level different from the library's own, for records whose module path starts
/// with `module` and whose text contains `text`. The first matching row wins;
/// without one, [`library_level`]'s default applies.
struct LevelRow {
    module: &'static str,
    text: &'static str,
    level: Level,
}

const fn row(module: &'static str, text: &'static str, level: Level) -> LevelRow {
    LevelRow {
        module,
        text,
        level,
    }
}

/// Known library messages whose level is not the default's.
const LEVELS: &[LevelRow] = &[
    // The store could not be written: state (Signal sessions, the device) is
    // lost or about to be. An operator must look at the disk.
    row("whatsapp_rust", "Background saver", Level::Error),
    row(
        "whatsapp_rust",
        "Failed to flush device state",
        Level::Error,
    ),
    row(
        "whatsapp_rust",
        "Failed to flush signal cache",
        Level::Error,
    ),
    row("whatsapp_rust", "signal cache flush failed", Level::Error),
    row(
        "whatsapp_rust",
        "Failed to store app state sync key",
        Level::Error,
    ),
    row(
        "whatsapp_rust",
        "Failed to buffer inbound batch",
        Level::Error,
    ),
    // Retried by the library until it works or one of the rows above gives up.
    row(
        "whatsapp_rust",
        "Coalesced signal flush failed",
        Level::Warn,
    ),
    // The connection asks for `unavailable` after every login; before the phone
    // has told the device its push name the library refuses, which is fine.
    row(
        "whatsapp_rust",
        "Cannot send presence: push_name is empty",
        Level::Debug,
    ),
];

/// The level a library record gets: the first row of [`LEVELS`] that matches,
/// else the library's own level with `error` lowered to `warn` (the library's
/// errors are connection trouble the daemon already handles).
pub fn library_level(module: &str, level: Level, text: &str) -> Level {
    LEVELS
        .iter()
        .find(|row| module.starts_with(row.module) && text.contains(row.text))
        .map(|row| row.level)
        .unwrap_or(match level {
            Level::Error => Level::Warn,
            other => other,
        })
}

/// Where anyhow's debug text of an error starts its backtrace.
const BACKTRACE: &str = "\n\nStack backtrace:";

/// The `log` logger of the daemon: records become `tracing` events.
pub struct LibraryLog {
    masker: &'static Masker,
}

impl LibraryLog {
    pub fn new(masker: &'static Masker) -> Self {
        Self { masker }
    }
}

impl log::Log for LibraryLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        // The level a record ends up with depends on its text: decide in `log`.
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let module = record.module_path().unwrap_or_else(|| record.target());
        let mut text = record.args().to_string();
        if let Some(start) = text.find(BACKTRACE) {
            text.truncate(start);
            text.push_str(" …");
        }
        let level = library_level(module, record.level(), &text);
        let text = if level <= Level::Info {
            self.masker.mask(&text)
        } else {
            text.as_str().into()
        };
        // Infallible: it only dispatches.
        let _ = tracing_log::format_trace(
            &log::Record::builder()
                .level(level)
                .target(module)
                .module_path(Some(module))
                .args(format_args!("{text}"))
                .build(),
        );
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One row per kind of library message: the level an operator sees.
    #[test]
    fn library_levels_follow_the_daemons_scale() {
        let rows: &[(&str, Level, &str, Level)] = &[
            // Expected trouble: the library's errors become warnings.
            (
                "whatsapp_rust::client::lifecycle",
                Level::Error,
                "Failed to connect: failed to resolve app version. Will retry...",
                Level::Warn,
            ),
            (
                "whatsapp_rust::message::receive",
                Level::Error,
                "[msg:ABC] Failed to parse msg Signal envelope from pn#1a2b3c4d: Bad MAC. Sending nack.",
                Level::Warn,
            ),
            (
                "whatsapp_rust::client::node_io",
                Level::Error,
                "Client is outdated and was rejected by server.",
                Level::Warn,
            ),
            (
                "r2d2",
                Level::Error,
                "unable to open database file",
                Level::Warn,
            ),
            // The library's other levels stay.
            (
                "whatsapp_rust::client",
                Level::Warn,
                "Failed to send initial presence",
                Level::Warn,
            ),
            (
                "whatsapp_rust::client",
                Level::Info,
                "Creating client...",
                Level::Info,
            ),
            ("wacore::send", Level::Debug, "anything", Level::Debug),
            // A store that cannot be written: an operator must act.
            (
                "whatsapp_rust::store::persistence_manager",
                Level::Error,
                "Background saver flush failed (2/5): database or disk is full",
                Level::Error,
            ),
            (
                "whatsapp_rust::store::persistence_manager",
                Level::Warn,
                "Background saver: 5 consecutive flush failures, halting",
                Level::Error,
            ),
            (
                "whatsapp_rust::client::lifecycle",
                Level::Error,
                "Failed to flush device state during disconnect: database is locked",
                Level::Error,
            ),
            (
                "whatsapp_rust::client::adapters",
                Level::Error,
                "Failed to flush signal cache (send 3EB0): disk I/O error",
                Level::Error,
            ),
            (
                "whatsapp_rust::message::commit_batch",
                Level::Error,
                "cleanup_connection_state: signal cache flush failed, keeping cache",
                Level::Error,
            ),
            // Retried by the library.
            (
                "whatsapp_rust::signal_flush",
                Level::Error,
                "Coalesced signal flush failed; retrying in 1s: locked",
                Level::Warn,
            ),
            // Our own doing, and harmless.
            (
                "whatsapp_rust::features::presence",
                Level::Warn,
                "Cannot send presence: push_name is empty!",
                Level::Debug,
            ),
            // A row's text under another crate does not match it.
            ("other_crate", Level::Error, "Background saver", Level::Warn),
        ];
        for (module, level, text, want) in rows {
            assert_eq!(
                library_level(module, *level, text),
                *want,
                "{module}: {text}"
            );
        }
    }
}
