//! The `wa-supervisor` binary: command line, `.env`, logging, configuration, then
//! [`daemon::run`] until SIGTERM/SIGINT.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use wa_supervisor::api_key::ENV_API_KEY;
use wa_supervisor::build_info::BuildInfo;
use wa_supervisor::cli::{Cli, Command, ServeArgs};
use wa_supervisor::config::{Config, ConnectionKind};
use wa_supervisor::{commands, daemon, instance_lock, telemetry};

fn main() -> ExitCode {
    let args = match Cli::parse().into_command() {
        Command::Serve(args) => args,
        Command::BuildInfo => {
            println!("{}", BuildInfo::of_this_build().to_json());
            return ExitCode::SUCCESS;
        }
        operator => return run_client(operator),
    };
    // Before any thread exists: dotenvy writes the process environment, and
    // RUST_LOG may come from `.env`.
    let dotenv = dotenvy::dotenv();
    // Held to the end of `main`: its drop writes out the last lines.
    let _log = match telemetry::init(args.log_format) {
        Ok((_, guard)) => guard,
        Err(e) => {
            eprintln!("error: cannot set up logging: {e}");
            return ExitCode::FAILURE;
        }
    };
    // First, so that a test build is flagged before anything can go wrong.
    BuildInfo::of_this_build().log();
    match serve(args, dotenv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, in the log format (journald keeps stdout); no backtrace:
            // every start-up error names what to fix, and each cause once.
            tracing::error!(
                error = telemetry::one_line(e.as_ref()),
                "wa-supervisor failed"
            );
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
        Err(e) => anyhow::bail!("cannot read .env: {e}"),
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
    runtime.block_on(async {
        // The directory first: a second daemon on it is told whose it is, rather
        // than that the port is taken.
        let lock = instance_lock::acquire(&config.sessions.dir)?;
        let listener = daemon::bind(config.server.listen).await?;
        daemon::run(
            listener,
            lock,
            config,
            env_api_key,
            daemon::shutdown_signal(),
        )
        .await
    })?;
    Ok(())
}

/// The operator's commands: one call to the running daemon, a clear message and
/// exit status 1 on failure (no log lines, no backtrace).
fn run_client(command: Command) -> ExitCode {
    let _ = dotenvy::dotenv();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        use Command as C;
        match &command {
            C::Serve(_) | C::BuildInfo => unreachable!("not a client command"),
            C::Status { org, client } => {
                commands::status(&commands::connect(client)?, org.as_deref()).await
            }
            C::Sessions { client } => commands::sessions(&commands::connect(client)?).await,
            C::Qr { org, client } => commands::qr(&commands::connect(client)?, org).await,
            C::Start { org, phone, client } => {
                commands::start(&commands::connect(client)?, org, phone.as_deref()).await
            }
            C::Clean { org, client } => commands::clean(&commands::connect(client)?, org).await,
            C::Logout { org, client } => commands::logout(&commands::connect(client)?, org).await,
            C::Backups { org, client } => commands::backups(&commands::connect(client)?, org).await,
            C::Restore { org, name, client } => {
                commands::restore(&commands::connect(client)?, org, name).await
            }
            C::Send {
                org,
                phone,
                text,
                client,
            } => commands::send(&commands::connect(client)?, org, phone, text).await,
            C::SendFile {
                org,
                phone,
                file,
                caption,
                client,
            } => {
                let client = commands::connect(client)?;
                commands::send_file(&client, org, phone, file, caption.as_deref()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
