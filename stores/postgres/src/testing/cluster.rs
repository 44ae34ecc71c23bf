//! A private PostgreSQL cluster from Debian's server binaries, for one test process.
//!
//! `initdb` and `pg_ctl` run in a temporary directory; the server listens only on a
//! Unix socket in that directory (no TCP port, so nothing can clash with another
//! server or test run) and trusts local connections. `initdb` refuses to run as
//! root, so as root every command runs as the `postgres` user (`runuser`), which
//! then owns the directory.
//!
//! The cluster never outlives the process: an `atexit` handler stops it when the
//! test binary exits, and a watchdog process (in its own process group, so a
//! Ctrl-C to the test run does not take it down first) stops it within a second
//! if the process dies in a way that skips `atexit`.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The socket's port number: it only names the socket file in the private dir.
pub(super) const PORT: u16 = 5432;

const MISSING: &str = "PostgreSQL's server binaries are missing (no /usr/lib/postgresql/*/bin/initdb): \
     install the Debian package `postgresql`, or set WA_TEST_DATABASE_URL";

/// A running private cluster.
pub(super) struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// Initializes and starts a cluster, or says in one line why it cannot.
    pub(super) fn start() -> Result<Self, String> {
        let bin = server_bin_dir().ok_or_else(|| MISSING.to_string())?;
        let dir = tempfile::Builder::new()
            .prefix("wa-test-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory for the test cluster: {e}"))?
            .keep();
        let as_postgres = running_as_root();
        let cluster = Self {
            bin,
            dir,
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&cluster.dir))
            .map_err(|e| {
                format!("{e} (the `postgres` user comes with the Debian package `postgresql`)")
            })?;
        }
        cluster.init_and_start().inspect_err(|_| cluster.stop())?;
        cluster.watch_over(std::process::id());
        Ok(cluster)
    }

    /// The directory holding the server's socket: the `host` to connect to.
    pub(super) fn socket_dir(&self) -> &Path {
        &self.dir
    }

    fn init_and_start(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        run(self
            .pg_command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync"))?;
        // Durability is of no use in a throwaway cluster; speed is.
        let options = format!(
            "-k {} -p {PORT} -c listen_addresses='' -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.dir.display()
        );
        run(self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"]))
        .map(drop)
        .map_err(|e| {
            format!(
                "{e}\n(server log: {})",
                self.dir.join("server.log").display()
            )
        })
    }

    /// Stops the server at once and removes its directory. Idempotent.
    pub(super) fn stop(&self) {
        let _ = self
            .pg_command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Starts a process that stops the cluster once `pid` is gone.
    fn watch_over(&self, pid: u32) {
        let stop = shell_words(&self.pg_argv("pg_ctl"));
        let data = shell_quote(&self.dir.join("data"));
        let dir = shell_quote(&self.dir);
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {stop} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}"
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
    }

    fn pg_argv(&self, program: &str) -> Vec<String> {
        let program = self.bin.join(program).display().to_string();
        if self.as_postgres {
            vec![
                "runuser".into(),
                "-u".into(),
                "postgres".into(),
                "--".into(),
                program,
            ]
        } else {
            vec![program]
        }
    }

    fn pg_command(&self, program: &str) -> Command {
        let argv = self.pg_argv(program);
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        command
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` and `pg_ctl`.
fn server_bin_dir() -> Option<PathBuf> {
    newest_bin_dir(Path::new("/usr/lib/postgresql"))
}

/// The `<root>/<version>/bin` of the highest version that has both programs.
fn newest_bin_dir(root: &Path) -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| shell_quote(Path::new(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn install(root: &Path, version: &str, programs: &[&str]) {
        let bin = root.join(version).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for program in programs {
            std::fs::write(bin.join(program), "").unwrap();
        }
    }

    #[test]
    fn the_newest_complete_version_is_chosen() {
        let root = tempfile::tempdir().unwrap();
        install(root.path(), "13", &["initdb", "pg_ctl"]);
        install(root.path(), "15", &["initdb", "pg_ctl"]);
        install(root.path(), "9", &["initdb", "pg_ctl"]);
        install(root.path(), "17", &["initdb"]);
        install(root.path(), "common", &["initdb", "pg_ctl"]);
        assert_eq!(
            newest_bin_dir(root.path()),
            Some(root.path().join("15").join("bin"))
        );
    }

    #[test]
    fn no_server_binaries_means_none() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(newest_bin_dir(root.path()), None);
        install(root.path(), "15", &["pg_ctl"]);
        assert_eq!(newest_bin_dir(root.path()), None);
        assert_eq!(newest_bin_dir(&root.path().join("absent")), None);
    }

    #[test]
    fn the_missing_binaries_message_names_the_debian_package() {
        assert!(MISSING.contains("`postgresql`"), "{MISSING}");
        assert!(!MISSING.contains('\n'), "one line");
    }

    #[test]
    fn shell_quoting_survives_quotes_in_paths() {
        let quoted = shell_quote(Path::new("/tmp/it's here"));
        let out = Command::new("sh")
            .args(["-c", &format!("printf %s {quoted}")])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "/tmp/it's here");
    }
}
