//! Log output (CONTRACT §8): JSON lines for journald, human-readable on a terminal.
//!
//! What an operator can rely on:
//!
//! - **One shop's story.** Every line about an org's session carries its
//!   `org_id`, ours and the WhatsApp library's alike: the connection runs the
//!   library's tasks in an `org` span, and the JSON formatter ([`json`]) lifts the
//!   span's `org_id` into the line's `fields` (and its top level). Status changes
//!   are `session status changed` with `from`, `to` and `reason`.
//! - **Levels that mean something.** `ERROR` is for what an operator must act on
//!   (a store that cannot be used, a cleanup that failed, a misconfiguration);
//!   expected trouble (offline, retries, a contact's undecryptable message) is
//!   `WARN` or `INFO`. The libraries log through `log` on a scale of their own;
//!   [`library`] maps their records onto ours. By default the WhatsApp stack logs
//!   at `warn` and the rest at `info` ([`DEFAULT_FILTER`]); `RUST_LOG` replaces
//!   that filter.
//! - **No patients' numbers** at `info` and above: numbers become keyed digests
//!   (`pn#1a2b3c4d`, the same for one number throughout a run; see [`mask`]).

pub mod json;
pub mod library;
pub mod mask;
pub mod pretty;

use std::io::IsTerminal;
use std::sync::LazyLock;

use tracing_log::AsLog as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::JsonFields;

use crate::cli::LogFormat;
use json::JsonLines;
use library::LibraryLog;
use mask::Masker;
use pretty::PrettyFields;

/// The filter when `RUST_LOG` is unset or empty: ours at `info`, the WhatsApp
/// stack and its SQLite plumbing at `warn` (their `info` is chatter about the
/// protocol). A directive names a crate and everything below it.
pub const DEFAULT_FILTER: &str =
    "info,whatsapp_rust=warn,wacore=warn,waproto=warn,diesel=warn,r2d2=warn";

/// One key per run: the same number gives the same token in every line.
static MASKER: LazyLock<Masker> = LazyLock::new(Masker::random);

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is invalid: {0}")]
    Filter(tracing_subscriber::filter::ParseError),
    #[error("a global logger is already installed: {0}")]
    Install(String),
}

/// The format to use: the one asked for, else pretty on a terminal and JSON
/// otherwise (systemd gives us a pipe to journald).
pub fn choose_format(asked: Option<LogFormat>) -> LogFormat {
    asked.unwrap_or_else(|| {
        if std::io::stdout().is_terminal() {
            LogFormat::Pretty
        } else {
            LogFormat::Json
        }
    })
}

/// The filter directives: `RUST_LOG` when it says something, else the default.
pub fn filter_directives(rust_log: Option<&str>) -> &str {
    match rust_log.map(str::trim) {
        Some(directives) if !directives.is_empty() => directives,
        _ => DEFAULT_FILTER,
    }
}

/// Keeps the log writer's thread; dropping it writes out every line still queued.
/// Hold it until the process ends.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Installs the global subscriber (writing to stdout) and the bridge that turns
/// the libraries' `log` records into its events.
///
/// Lines go to stdout from a writer thread of their own: a request's log line is
/// queued, not written while the request waits, and the lines queued meanwhile go
/// out in one write. None is ever dropped: should the queue fill up, the logging
/// thread waits for room as it waited for stdout before.
pub fn init(asked: Option<LogFormat>) -> Result<(LogFormat, LogGuard), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = EnvFilter::builder()
        .parse(filter_directives(rust_log.as_deref()))
        .map_err(TelemetryError::Filter)?;
    let most_verbose = filter.max_level_hint();
    let format = choose_format(asked);
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match format {
        LogFormat::Json => tracing::subscriber::set_global_default(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(JsonLines::new(&MASKER))
                .finish(),
        ),
        LogFormat::Pretty => tracing::subscriber::set_global_default(
            builder
                .compact()
                .with_ansi(std::io::stdout().is_terminal())
                .fmt_fields(PrettyFields::new(&MASKER))
                .finish(),
        ),
    };
    installed.map_err(|e| TelemetryError::Install(e.to_string()))?;
    log::set_boxed_logger(Box::new(LibraryLog::new(&MASKER)))
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    // Records above the filter's most verbose level are not even formatted.
    log::set_max_level(most_verbose.map_or(log::LevelFilter::Trace, |level| level.as_log()));
    Ok((format, LogGuard(guard)))
}

#[cfg(test)]
mod tests;

/// An error and its causes as one line, `outer: cause: cause`, without repeating a
/// cause whose text is already there (many errors print their cause in their own
/// message *and* return it as their `source`, and `{:#}` then shows it twice).
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = e.source();
    }
    line.replace('\n', " ")
}
