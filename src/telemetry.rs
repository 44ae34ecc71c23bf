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
    Filter(#[from] tracing_subscriber::filter::FromEnvError),
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
        .from_env()?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_format_wins() {
        assert_eq!(choose_format(Some(LogFormat::Json)), LogFormat::Json);
        assert_eq!(choose_format(Some(LogFormat::Pretty)), LogFormat::Pretty);
    }
}
