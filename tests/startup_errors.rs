//! What an operator reads when the daemon cannot start: one `ERROR` line whose
//! `error` names what is wrong, each cause once, over the real binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;

use common::{API_KEY, Daemon, Launch, failed_start, failed_start_of};
use serde_json::Value;

fn sessions_toml(dir: &Path) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[sessions]\ndir = \"{}\"\n",
        dir.join("auth_sessions").display()
    )
}

#[test]
fn an_unreadable_config_file_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: readable by no one, root included.
    let config = dir.path().join("config.toml");
    let error = failed_start(dir.path(), "", |_| {
        std::fs::remove_file(&config).unwrap();
        std::fs::create_dir(&config).unwrap();
    });
    assert_eq!(
        error,
        format!(
            "cannot read config file {}: Is a directory (os error 21)",
            config.display()
        )
    );
}

#[test]
fn a_toml_error_is_one_line_with_where_and_what() {
    let dir = tempfile::tempdir().unwrap();
    let error = failed_start(dir.path(), "[windows.bad_mac]\nlimit = \"three\"\n", |_| {});
    assert_eq!(
        error,
        format!(
            "invalid config file {}: line 2, column 9: invalid type: string \"three\", \
             expected usize",
            dir.path().join("config.toml").display()
        )
    );
}

#[test]
fn a_number_out_of_range_names_the_key_and_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let error = failed_start(
        dir.path(),
        "[server]\nmax_in_flight = 2305843009213693952\n",
        |_| {},
    );
    assert_eq!(
        error,
        "[server] max_in_flight = 2305843009213693952 is out of range 1–65536"
    );
    let error = failed_start(dir.path(), "[sessions]\nbackups_kept = 0\n", |_| {});
    assert_eq!(error, "[sessions] backups_kept = 0 is out of range 1–100");
}

#[test]
fn a_file_where_the_sessions_directory_should_be_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("auth_sessions");
    std::fs::write(&sessions, b"").unwrap();
    let error = failed_start(dir.path(), &sessions_toml(dir.path()), |_| {});
    assert_eq!(
        error,
        format!(
            "the sessions directory {} is a file, not a directory; set [sessions] dir \
             (or WA_SESSIONS_DIR) to a directory",
            sessions.display()
        )
    );
}

/// A start-up failure of the binary run in `dir` by a user the file modes apply
/// to: as root (who reads anything) that is `nobody`, through a link to the
/// binary in `dir`, which it can reach.
fn failed_unprivileged_start(dir: &Path, config_toml: &str) -> String {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return failed_start(dir, config_toml, |_| {});
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.join("wa-supervisor");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_wa-supervisor"), &binary).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_wa-supervisor"), &binary).unwrap();
    }
    failed_start_of(&binary, dir, config_toml, |cmd| {
        cmd.uid(65534).gid(65534);
    })
}

#[test]
fn a_permission_denied_is_said_once() {
    // The sessions directory's parent cannot be written.
    let dir = tempfile::tempdir().unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let sessions = locked.join("auth_sessions");
    let error = failed_unprivileged_start(
        dir.path(),
        &format!("[sessions]\ndir = \"{}\"\n", sessions.display()),
    );
    assert_eq!(
        error,
        format!(
            "cannot create the sessions directory {}: Permission denied (os error 13)",
            sessions.display()
        )
    );

    // An `.env` that cannot be read.
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    std::fs::write(&env_file, "RUST_LOG=info\n").unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let error = failed_unprivileged_start(dir.path(), &sessions_toml(dir.path()));
    assert_eq!(error, "cannot read .env: Permission denied (os error 13)");
}

/// A key file others can read: the daemon starts, and says so once, naming the
/// file and its mode, never the key.
#[tokio::test]
async fn a_key_file_others_can_read_is_warned_about() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("api_key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let daemon = Daemon::start_as(Launch {
        server_keys: format!("api_key_file = \"{}\"", key_file.display()),
        no_env_key: true,
        ..Launch::default()
    })
    .await;
    let (code, _) = daemon.get("/api/sessions").await;
    assert_eq!(code, 200, "the key from the file is the key");

    let logs = daemon.logs();
    let warnings: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| {
            v["level"] == "WARN"
                && v["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("API key file"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert_eq!(
        warnings[0]["fields"]["message"],
        format!(
            "API key file {} is readable by other users (mode 644); chmod 600 it",
            key_file.display()
        )
    );
    assert_eq!(warnings[0]["fields"]["mode"], "644");
    assert!(!logs.contains(API_KEY), "the key is logged");
}
