//! The `wa-supervisor` binary: command line, `.env`, logging, configuration, then
//! [`daemon::run`] until SIGTERM/SIGINT.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use wa_supervisor::api_key::ENV_API_KEY;
use wa_supervisor::cli::{Cli, Command, ServeArgs};
use wa_supervisor::config::{Config, ConnectionKind};
use wa_supervisor::{daemon, telemetry};

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().into_command();
    // Before any thread exists: dotenvy writes the process environment, and
    // RUST_LOG may come from `.env`.
    let dotenv = dotenvy::dotenv();
    if let Err(e) = telemetry::init(args.log_format) {
        eprintln!("error: cannot set up logging: {e}");
        return ExitCode::FAILURE;
    }
    match serve(args, dotenv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, in the log format (journald keeps stdout); no backtrace:
            // every start-up error names what to fix.
            tracing::error!(error = format!("{e:#}"), "wa-supervisor failed");
            ExitCode::FAILURE
        }
    }
}

fn serve(
    args: ServeArgs,
    dotenv: Result<std::path::PathBuf, dotenvy::Error>,
) -> anyhow::Result<()> {
    match dotenv {
        Ok(path) => tracing::info!(path = %path.display(), "environment read from .env"),
        Err(e) if e.not_found() => {}
        // dotenvy's message quotes the offending line, which may hold the API key.
        Err(dotenvy::Error::LineParse(_, index)) => anyhow::bail!(
            "cannot read .env: a line does not parse (at character {index}; \
             the line is not shown as it may hold a secret)"
        ),
        Err(e) => return Err(e).context("cannot read .env"),
    }
    let mut config = Config::load(args.config.as_deref(), |name| std::env::var(name).ok())?;
    if args.sim {
        config.connection.kind = ConnectionKind::Sim;
    }
    let env_api_key = std::env::var(ENV_API_KEY).ok();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(daemon::run(config, env_api_key, daemon::shutdown_signal()))?;
    Ok(())
}
