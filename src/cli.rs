//! The command line.
//!
//! `serve` is the default subcommand: systemd units and operators can start the
//! daemon as `wa-supervisor` or `wa-supervisor serve`, with the same flags either
//! way. `build-info` describes the binary itself; the others talk to a running daemon.

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
    /// Show one organization's session, or every session.
    Status {
        org: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List every session.
    Sessions {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Draw an organization's QR code in the terminal until it is scanned.
    Qr {
        org: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Start (or resume) an organization's session.
    Start {
        org: String,
        /// Also ask for a pairing code for this phone number.
        #[arg(long, value_name = "NUMBER")]
        phone: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Stop an organization's session, back it up and remove it.
    Clean {
        org: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Log an organization's device out of WhatsApp, back it up and remove it.
    Logout {
        org: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List an organization's backups, newest first.
    Backups {
        org: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Put a backup back as an organization's session and resume it; the session
    /// it replaces is kept as a new backup (before_restore).
    Restore {
        org: String,
        /// The backup's name, as `backups` lists it.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Send a text from an organization's number.
    Send {
        org: String,
        phone: String,
        text: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Queue a file (JPEG, PNG, WebP as an image; PDF, DOCX, XLSX, PPTX as a
    /// document) for a number from an organization's number; prints its message id.
    SendFile {
        org: String,
        phone: String,
        file: PathBuf,
        /// Text shown with the file.
        #[arg(long, value_name = "TEXT")]
        caption: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print, as JSON, this binary's version and whether it checks the WhatsApp
    /// server's certificate chain ("off" only in test builds, never to be deployed).
    /// Starts nothing and reads no configuration.
    BuildInfo,
}

/// How a client command finds the running daemon. The key comes from
/// `WHATSAPP_SERVER_API_KEY`, else `[server] api_key_file`, else the daemon's
/// generated `<sessions dir>/api_key`.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// The daemon's configuration file (for its address and key); default ./config.toml.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The daemon's base URL, instead of the one the configuration gives.
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
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
    fn send_file_takes_a_path_and_a_caption() {
        match parse(&[
            "wa-supervisor",
            "send-file",
            "7",
            "3001234567",
            "receta.pdf",
            "--caption",
            "Su fórmula",
        ]) {
            Command::SendFile {
                org,
                phone,
                file,
                caption,
                ..
            } => {
                assert_eq!((org.as_str(), phone.as_str()), ("7", "3001234567"));
                assert_eq!(file, PathBuf::from("receta.pdf"));
                assert_eq!(caption.as_deref(), Some("Su fórmula"));
            }
            other => panic!("{other:?}"),
        }
        match parse(&["wa-supervisor", "send-file", "7", "3001234567", "ojo.png"]) {
            Command::SendFile { caption, .. } => assert_eq!(caption, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serve_is_the_default_subcommand() {
        let serve = |args: &[&str]| match parse(args) {
            Command::Serve(a) => a,
            other => panic!("{other:?}"),
        };
        let a = serve(&["wa-supervisor", "--sim", "--log-format", "pretty"]);
        assert!(a.sim);
        assert_eq!(a.log_format, Some(LogFormat::Pretty));

        let a = serve(&["wa-supervisor", "serve", "--config", "x.toml"]);
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
        assert!(!a.sim);

        let a = serve(&["wa-supervisor"]);
        assert!(a.config.is_none() && !a.sim && a.log_format.is_none());
    }

    #[test]
    fn client_commands_parse() {
        match parse(&[
            "wa-supervisor",
            "send",
            "7",
            "3001234567",
            "hola",
            "--url",
            "http://x",
        ]) {
            Command::Send {
                org,
                phone,
                text,
                client,
            } => {
                assert_eq!(
                    (org.as_str(), phone.as_str(), text.as_str()),
                    ("7", "3001234567", "hola")
                );
                assert_eq!(client.url.as_deref(), Some("http://x"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["wa-supervisor", "start", "7", "--phone", "+57 300"]),
            Command::Start { phone: Some(_), .. }
        ));
        match parse(&["wa-supervisor", "restore", "7", "20261123T071533Z_bad_mac"]) {
            Command::Restore { org, name, .. } => {
                assert_eq!(
                    (org.as_str(), name.as_str()),
                    ("7", "20261123T071533Z_bad_mac")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["wa-supervisor", "backups", "7"]),
            Command::Backups { .. }
        ));
        assert!(Cli::try_parse_from(["wa-supervisor", "restore", "7"]).is_err());
        assert!(matches!(
            parse(&["wa-supervisor", "status"]),
            Command::Status { org: None, .. }
        ));
        assert!(Cli::try_parse_from(["wa-supervisor", "send", "7"]).is_err());
        assert!(matches!(
            parse(&["wa-supervisor", "build-info"]),
            Command::BuildInfo
        ));
        assert!(Cli::try_parse_from(["wa-supervisor", "build-info", "--config", "x"]).is_err());
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
