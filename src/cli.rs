//! The command line.
//!
//! `serve` is the only subcommand for now and the default: systemd units and
//! operators can start the daemon as `wa-supervisor` or `wa-supervisor serve`, with
//! the same flags either way.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "wa-supervisor",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Flags of `serve`, when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: resume stored sessions and serve the HTTP API.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Configuration file; without it ./config.toml is used when present.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Simulation mode: fake phones instead of WhatsApp (forces [connection] kind = "sim").
    #[arg(long)]
    pub sim: bool,
    /// Log format; by default human-readable on a terminal, JSON lines otherwise.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (for journald and log shippers).
    Json,
    /// Human-readable.
    Pretty,
}

impl Cli {
    /// The command to run; `serve` when none was named.
    pub fn into_command(self) -> Command {
        self.command.unwrap_or(Command::Serve(self.serve))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(args).unwrap().into_command()
    }

    #[test]
    fn serve_is_the_default_subcommand() {
        let Command::Serve(a) = parse(&["wa-supervisor", "--sim", "--log-format", "pretty"]);
        assert!(a.sim);
        assert_eq!(a.log_format, Some(LogFormat::Pretty));

        let Command::Serve(a) = parse(&["wa-supervisor", "serve", "--config", "x.toml"]);
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
        assert!(!a.sim);

        let Command::Serve(a) = parse(&["wa-supervisor"]);
        assert!(a.config.is_none() && !a.sim && a.log_format.is_none());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(Cli::try_parse_from(["wa-supervisor", "--log-format", "xml"]).is_err());
        assert!(Cli::try_parse_from(["wa-supervisor", "serve", "--nope"]).is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
