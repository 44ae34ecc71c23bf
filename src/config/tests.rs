//! The configuration as a whole: loading, the environment, ranges and messages,
//! and the shipped `config.toml` and README kept in step with the code. (Over 400
//! lines: one table-driven test per concern, sharing the loading functions; the
//! tables' own rules are tested in their files.)

use std::collections::HashMap;
use std::time::Duration;

use wa_actors::{BudgetSpec, WindowSpec};

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn load_text(text: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    Config::load(Some(&write(&dir, text)), no_env)
}

/// The defaults are the contract's values, and the actor tree configured from the
/// defaults is exactly the actor crate's own default configuration: each default
/// is read from there, not copied.
#[test]
fn defaults_are_the_contract_values_from_one_source() {
    let c = Config::default();
    assert_eq!(c.server.listen, "127.0.0.1:3000".parse().unwrap());
    assert_eq!(c.server.api_key_file, None);
    assert_eq!(c.server.request_timeout_seconds, 30);
    assert_eq!(c.server.max_in_flight, 256);
    assert_eq!(
        (
            c.server.header_read_timeout_seconds,
            c.server.idle_timeout_seconds
        ),
        (10, 60)
    );
    assert_eq!(c.server.max_connections, None);
    assert_eq!(c.http_limits(), HttpLimits::default());
    assert_eq!(c.sessions.dir, PathBuf::from("auth_sessions"));
    assert_eq!(c.sessions.backups_kept, 3);
    assert_eq!(c.sessions.resume_gap_ms, 250);
    assert_eq!(c.connection.kind, ConnectionKind::Whatsapp);
    assert_eq!(
        (c.windows.bad_mac.limit, c.windows.bad_mac.seconds),
        (3, 30)
    );
    assert_eq!((c.windows.stream.limit, c.windows.stream.seconds), (2, 60));
    assert_eq!(
        (c.windows.cleanups.limit, c.windows.cleanups.seconds),
        (3, 3600)
    );
    let budget = &c.connection_budget;
    assert_eq!((budget.per_org.limit, budget.per_org.seconds), (10, 86400));
    assert_eq!((budget.global.limit, budget.global.seconds), (1000, 3600));
    assert_eq!((c.reconnect.initial_ms, c.reconnect.max_ms), (1000, 60_000));
    assert_eq!(c.send.wait_seconds, 20);
    assert_eq!(c.phone.default_region, "CO");
    assert_eq!(c.phone_rules().unwrap().region(), "CO");
    assert_eq!(
        (
            c.sim.first_qr_seconds,
            c.sim.next_qr_seconds,
            c.sim.qr_count
        ),
        (60, 20, 6)
    );

    let ours = c.supervisor_config();
    let theirs = SupervisorConfig::new("auth_sessions");
    assert_eq!(ours.sessions_dir, theirs.sessions_dir);
    assert_eq!(ours.backups_kept, theirs.backups_kept);
    assert_eq!(ours.healing, theirs.healing);
    assert_eq!(ours.cleanups, theirs.cleanups);
    assert_eq!(ours.budget, BudgetSpec::default());
    assert_eq!(ours.reconnect, theirs.reconnect);
    assert_eq!(ours.send_wait, theirs.send_wait);
    assert_eq!(ours.request_timeout, theirs.request_timeout);
    assert_eq!(ours.outbox, theirs.outbox);
    assert_eq!(ours.media, theirs.media);
    assert_eq!(c.media.max_bytes, 16 * 1024 * 1024);
    assert_eq!(
        ours.healing.bad_mac,
        WindowSpec::new(3, Duration::from_secs(30))
    );
    assert_eq!(ours.healing.distinct_senders, 2);
}

#[test]
fn every_default_is_in_its_range() {
    range::check_all(Config::default().numbers()).unwrap();
}

#[test]
fn without_config_flag_a_missing_default_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("config.toml");
    assert_eq!(
        Config::load_or(None, &absent, no_env).unwrap(),
        Config::default()
    );
    // ...and a present one is read.
    let path = write(&dir, "[sessions]\nbackups_kept = 5\n");
    assert_eq!(
        Config::load_or(None, &path, no_env)
            .unwrap()
            .sessions
            .backups_kept,
        5
    );
}

#[test]
fn an_empty_file_means_defaults() {
    assert_eq!(load_text("").unwrap(), Config::default());
}

#[test]
fn file_values_win_over_defaults_and_missing_keys_keep_theirs() {
    let c = load_text(
        r#"
        [server]
        listen = "0.0.0.0:8080"
        api_key_file = "/run/secrets/wa_key"
        idle_timeout_seconds = 5
        max_connections = 100
        [sessions]
        dir = "/var/lib/wa"
        [connection]
        kind = "sim"
        [windows.stream]
        limit = 4
        [reconnect]
        max_ms = 5000
        [sim]
        qr_count = 2
        "#,
    )
    .unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:8080".parse().unwrap());
    assert_eq!(
        c.server.api_key_file,
        Some(PathBuf::from("/run/secrets/wa_key"))
    );
    let limits = c.server.connection_limits(1024).unwrap();
    assert_eq!(limits.idle_timeout, Duration::from_secs(5));
    assert_eq!(limits.max_connections, 100);
    assert_eq!(c.sessions.dir, PathBuf::from("/var/lib/wa"));
    assert_eq!(c.sessions.backups_kept, 3);
    assert_eq!(c.connection.kind, ConnectionKind::Sim);
    // A window keeps its own default for the key not given.
    assert_eq!((c.windows.stream.limit, c.windows.stream.seconds), (4, 60));
    assert_eq!(c.windows.bad_mac, BadMacWindow::default());
    assert_eq!((c.reconnect.initial_ms, c.reconnect.max_ms), (1000, 5000));
    assert_eq!(c.supervisor_config().reconnect.max, Duration::from_secs(5));
    assert_eq!(c.sim.qr_count, 2);
}

#[test]
fn a_missing_named_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.toml");
    let err = Config::load(Some(&path), no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("nope.toml"));
}

/// The cause is in the message once, and the error has no `source` that a chain
/// printer (`{:#}`) would repeat.
#[test]
fn an_unreadable_file_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(Some(dir.path()), no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read config file {}: Is a directory (os error 21)",
            dir.path().display()
        )
    );
    assert!(std::error::Error::source(&err).is_none());
    assert_eq!(
        format!("{:#}", anyhow::Error::from(err)),
        format!(
            "cannot read config file {}: Is a directory (os error 21)",
            dir.path().display()
        )
    );
}

#[test]
fn toml_errors_are_one_line_with_where_and_what() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[windows.bad_mac]\nlimit = \"three\"\n");
    let err = Config::load(Some(&path), no_env).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid config file {}: line 2, column 9: invalid type: string \"three\", \
             expected usize",
            path.display()
        )
    );
    let path = write(&dir, "[server]\nlisten_addr = \"127.0.0.1:1\"\n");
    let text = Config::load(Some(&path), no_env).unwrap_err().to_string();
    assert!(
        text.starts_with(&format!(
            "invalid config file {}: line 2, column 1: unknown field `listen_addr`",
            path.display()
        )),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
}

#[test]
fn unknown_keys_are_rejected() {
    for text in [
        "[server]\nlisten_addr = \"127.0.0.1:1\"\n",
        "[windows.bad_mac]\nlimt = 3\n",
        "[typo]\nx = 1\n",
        "top_level = 1\n",
    ] {
        let err = load_text(text).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err}");
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}

#[test]
fn wrong_types_and_values_that_make_no_sense_together_are_rejected() {
    for text in [
        "[server]\nlisten = \"not an address\"\n",
        "[connection]\nkind = \"telegram\"\n",
        "[windows.bad_mac]\nlimit = \"three\"\n",
        "[sessions]\nbackups_kept = -1\n",
    ] {
        assert!(
            matches!(load_text(text), Err(ConfigError::Parse { .. })),
            "{text}"
        );
    }
    for (text, message) in [
        (
            "[reconnect]\ninitial_ms = 5000\nmax_ms = 1000\n",
            "invalid configuration: [reconnect] max_ms = 1000 is below initial_ms = 5000",
        ),
        (
            "[server]\nrequest_timeout_seconds = 20\n",
            "invalid configuration: [server] request_timeout_seconds = 20 must exceed [send] \
             wait_seconds = 20 (a send may wait that long for a reconnecting session)",
        ),
        (
            "[sessions]\ndir = \"\"\n",
            "invalid configuration: [sessions] dir is empty",
        ),
    ] {
        assert_eq!(load_text(text).unwrap_err().to_string(), message);
    }
    for text in [
        "[phone]\ndefault_region = \"XX\"\n",
        "[whatsapp]\nversion = \"2.x\"\n",
        "[whatsapp]\nws_url = \"http://x\"\n",
    ] {
        assert!(
            matches!(load_text(text), Err(ConfigError::Invalid(_))),
            "{text}"
        );
    }
}

/// Every numeric key, one past either end of its range, is refused with one line
/// naming the key, the value and the range.
#[test]
fn every_number_out_of_its_range_is_refused_naming_key_and_range() {
    let mut numbers = Config::default().numbers();
    numbers.push(Number::new(
        "server",
        "max_connections",
        1usize,
        server::MAX_CONNECTIONS,
    ));
    assert!(numbers.len() >= 28, "{}", numbers.len());
    for n in numbers {
        let mut outside = vec![n.range.max + 1];
        if n.range.min > 0 {
            outside.push(n.range.min - 1);
        }
        for value in outside {
            let text = format!("[{}]\n{} = {value}\n", n.table, n.key);
            let err = load_text(&text).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "[{}] {} = {value} is out of range {}",
                    n.table, n.key, n.range
                ),
                "{text}"
            );
        }
        // Both ends are in.
        for value in [n.range.min, n.range.max] {
            let text = format!("[{}]\n{} = {value}\n", n.table, n.key);
            if let Err(ConfigError::OutOfRange { key, .. }) = load_text(&text) {
                panic!("{key} = {value} is refused");
            }
        }
    }
}

/// What a hostile or careless configuration did before the ranges existed.
#[test]
fn values_that_would_wedge_the_daemon_are_refused() {
    for (text, message) in [
        (
            "[server]\nmax_in_flight = 2305843009213693952\n",
            "[server] max_in_flight = 2305843009213693952 is out of range 1–65536",
        ),
        (
            "[reconnect]\nmax_ms = 9223372036854775807\n",
            "[reconnect] max_ms = 9223372036854775807 is out of range 10–3600000",
        ),
        (
            "[sessions]\nresume_gap_ms = 9223372036854775807\n",
            "[sessions] resume_gap_ms = 9223372036854775807 is out of range 0–60000",
        ),
        (
            "[sessions]\nbackups_kept = 0\n",
            "[sessions] backups_kept = 0 is out of range 1–100",
        ),
    ] {
        assert_eq!(load_text(text).unwrap_err().to_string(), message);
    }
}

#[test]
fn port_and_sessions_dir_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, "[server]\nlisten = \"0.0.0.0:3000\"\n");
    let env = env_of(&[("PORT", "4010"), ("WA_SESSIONS_DIR", "/tmp/s")]);
    let c = Config::load(Some(&path), env).unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:4010".parse().unwrap());
    assert_eq!(c.sessions.dir, PathBuf::from("/tmp/s"));
    assert_eq!(c.supervisor_config().sessions_dir, PathBuf::from("/tmp/s"));

    let err = Config::load(Some(&path), env_of(&[("PORT", "http")])).unwrap_err();
    assert!(
        matches!(err, ConfigError::Env { name: "PORT", .. }),
        "{err}"
    );
}

/// `WA_DATABASE_URL` fills `[store] url` of a database store, and is ignored
/// (never a failure) by the default store.
#[test]
fn the_database_url_from_the_environment_only_serves_a_database_store() {
    let dir = tempfile::tempdir().unwrap();
    let env = || env_of(&[("WA_DATABASE_URL", "postgres://wa@db/optics")]);
    let files = write(&dir, "[server]\nlisten = \"0.0.0.0:3000\"\n");
    let c = Config::load(Some(&files), env()).unwrap();
    assert_eq!(c.store.kind, StoreKind::Sqlite);
    assert_eq!(c.store.url, "");

    let pg = write(&dir, "[store]\nkind = \"postgres\"\n");
    let c = Config::load(Some(&pg), env()).unwrap();
    assert_eq!(c.store.url, "postgres://wa@db/optics");
}

#[test]
fn a_webhook_url_needs_the_secret_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "[webhook]\nurl = \"http://127.0.0.1:8000/wa/events/\"\nmax_attempts = 3\n",
    );
    let err = Config::load(Some(&path), no_env).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("WHATSAPP_WEBHOOK_SECRET"), "{err}");

    let env = env_of(&[("WHATSAPP_WEBHOOK_SECRET", "k3y-never-shown")]);
    let c = Config::load(Some(&path), env).unwrap();
    assert!(c.webhook.enabled());
    assert_eq!(c.webhook.max_attempts, 3);
    assert_eq!(c.webhook.timeout_ms, WebhookConfig::default().timeout_ms);
    assert_eq!(c.webhook.secret, WebhookSecret::new("k3y-never-shown"));
    assert!(!format!("{c:?}").contains("k3y-never-shown"));
}

fn shipped_config() -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The shipped `config.toml` loads, equals the defaults, and spells out every
/// key the daemon knows (so an operator can see them all in one place).
#[test]
fn the_shipped_config_file_has_every_key_with_its_default() {
    let (path, text) = shipped_config();
    assert_eq!(
        Config::load(Some(&path), no_env).unwrap(),
        Config::default()
    );

    let shipped: toml::Table = toml::from_str(&text).unwrap();
    let defaults: toml::Table =
        toml::from_str(&toml::to_string(&Config::default()).unwrap()).expect("defaults serialize");
    fn missing(want: &toml::Table, have: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in want {
            let name = format!("{prefix}{key}");
            match (value, have.get(key)) {
                (toml::Value::Table(w), Some(toml::Value::Table(h))) => {
                    missing(w, h, &format!("{name}."), out)
                }
                (_, None) => out.push(name),
                _ => {}
            }
        }
    }
    let mut absent = Vec::new();
    missing(&defaults, &shipped, "", &mut absent);
    assert!(absent.is_empty(), "config.toml lacks {absent:?}");
    // The optional keys are documented, commented out.
    assert!(text.contains("# api_key_file = "));
    assert!(text.contains("# max_connections = "));
}

/// The comment right above each numeric key of the shipped `config.toml` states
/// its range, and so does the README's configuration table.
#[test]
fn every_range_is_documented_in_config_toml_and_the_readme() {
    let (_, text) = shipped_config();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut numbers = Config::default().numbers();
    numbers.push(Number::new(
        "server",
        "max_connections",
        0usize,
        server::MAX_CONNECTIONS,
    ));
    for n in numbers {
        let range = n.range.to_string();
        let lines: Vec<&str> = text.lines().collect();
        let header = format!("[{}]", n.table);
        let start = lines
            .iter()
            .position(|l| l.trim() == header)
            .unwrap_or_else(|| panic!("config.toml has no {header}"));
        let at = lines[start + 1..]
            .iter()
            .take_while(|l| !l.starts_with('['))
            .position(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{} = ", n.key))
            })
            .map(|i| start + 1 + i)
            .unwrap_or_else(|| panic!("config.toml has no {} in {header}", n.key));
        let comment: Vec<&str> = lines[..at]
            .iter()
            .rev()
            .take_while(|l| l.starts_with('#'))
            .copied()
            .collect();
        assert!(
            comment.iter().any(|l| l.contains(&range)),
            "the comment above {} in config.toml does not state its range {range}: {comment:?}",
            n.name()
        );
        let row = format!("| `{}` |", n.name());
        let in_readme = readme
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("README's configuration table has no row {row}"));
        assert!(
            in_readme.contains(&format!("| {range} |")),
            "README's row for {} does not state its range {range}: {in_readme}",
            n.name()
        );
    }
}
