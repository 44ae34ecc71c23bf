//! Log output (CONTRACT §8): JSON lines for journald, human-readable on a terminal.
//!
//! The filter is `RUST_LOG` (default `info`). Session events carry `org_id` as a
//! field; in JSON, an event's fields sit under `"fields"` (tracing-subscriber's
//! layout, which the README's `jq '.fields.org_id'` examples rely on) and the
//! request span (method, path, request id) under `"span"`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::cli::LogFormat;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RUST_LOG is invalid: {0}")]
    Filter(tracing_subscriber::filter::FromEnvError),
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

/// Installs the global subscriber, writing to stdout.
pub fn init(asked: Option<LogFormat>) -> Result<LogFormat, TelemetryError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .map_err(TelemetryError::Filter)?;
    let format = choose_format(asked);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder
            .compact()
            .with_ansi(std::io::stdout().is_terminal())
            .try_init(),
    };
    installed.map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(format)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read .env: {0}")]
        struct Echoes(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("cannot start")]
        struct Quiet(#[source] std::io::Error);

        let denied = || std::io::Error::from_raw_os_error(13);
        let echoes = anyhow::Error::from(Echoes(denied()));
        assert_eq!(
            format!("{echoes:#}"),
            "cannot read .env: Permission denied (os error 13): Permission denied (os error 13)",
            "what this function exists for"
        );
        assert_eq!(
            one_line(echoes.as_ref()),
            "cannot read .env: Permission denied (os error 13)"
        );
        let quiet = anyhow::Error::from(Quiet(denied())).context("the daemon failed");
        assert_eq!(
            one_line(quiet.as_ref()),
            "the daemon failed: cannot start: Permission denied (os error 13)"
        );
    }

    #[test]
    fn an_explicit_format_wins() {
        assert_eq!(choose_format(Some(LogFormat::Json)), LogFormat::Json);
        assert_eq!(choose_format(Some(LogFormat::Pretty)), LogFormat::Pretty);
    }
}
