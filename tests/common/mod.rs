//! Starts the real `wa-supervisor` binary in simulation mode with its own sessions
//! directory, and talks to it over HTTP.
//!
//! The daemon binds port 0 and names the port the kernel gave it in its
//! `listening` log line, which the harness reads: no port is ever picked here and
//! handed over (another process could take it in between).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Healing without a restart first (CONTRACT §11 `[healing] restart_first =
/// false`): for tests whose subject is what a wipe does, not when one happens.
pub const WIPE_AT_ONCE: &str = "[healing]\nrestart_first = false\n";

/// The old server's healing rule: a Bad MAC from anyone counts and every trip
/// wipes at once; for tests of the wipe itself with one undecryptable sender.
pub const OLD_HEALING: &str =
    "[healing]\nrestart_first = false\n[windows.bad_mac]\ndistinct_senders = 1\n";

pub const API_KEY: &str = "e2e-known-key-5f1c9a7b3d2e4f60a8b9c0d1e2f3a4b5";

pub struct Daemon {
    pub child: Child,
    pub port: u16,
    pub dir: TempDir,
    pub http: reqwest::Client,
    /// How it was started, so a restart starts it alike.
    launch: Launch,
}

#[derive(Clone, Default)]
pub struct Launch {
    /// The real whatsapp-rust connection instead of the sim.
    pub real: bool,
    pub server_keys: String,
    pub extra_toml: String,
    /// Give the key by `[server] api_key_file` (with `server_keys`) rather than
    /// `WHATSAPP_SERVER_API_KEY`.
    pub no_env_key: bool,
    /// The daemon's open-file limit (soft and hard), as `LimitNOFILE=` sets it.
    pub open_files: Option<u64>,
}

impl Daemon {
    /// Starts the daemon in sim mode and waits until `/health` answers.
    pub async fn start() -> Self {
        Self::start_with("").await
    }

    /// Like [`Daemon::start`], with extra TOML appended to the configuration.
    pub async fn start_with(extra_toml: &str) -> Self {
        Self::start_with_env(extra_toml, &[]).await
    }

    /// Like [`Daemon::start_with`], with extra environment variables.
    pub async fn start_with_env(extra_toml: &str, env: &[(&str, &str)]) -> Self {
        let launch = Launch {
            extra_toml: extra_toml.to_string(),
            ..Launch::default()
        };
        Self::launch(tempfile::tempdir().unwrap(), launch, env).await
    }

    /// Like [`Daemon::start_with`], with extra keys in the `[server]` table too.
    pub async fn start_with_server(server_keys: &str, extra_toml: &str) -> Self {
        let launch = Launch {
            server_keys: server_keys.to_string(),
            extra_toml: extra_toml.to_string(),
            ..Launch::default()
        };
        Self::launch(tempfile::tempdir().unwrap(), launch, &[]).await
    }

    /// Starts the daemon as `launch` says.
    pub async fn start_as(launch: Launch) -> Self {
        Self::launch(tempfile::tempdir().unwrap(), launch, &[]).await
    }

    /// Starts the daemon with the real whatsapp-rust connection pointed at the
    /// WebSocket `ws_url` (a loopback server), with a pinned version so nothing
    /// is looked up on the network.
    pub async fn start_real(ws_url: &str, extra_toml: &str) -> Self {
        Self::start_real_in(tempfile::tempdir().unwrap(), ws_url, extra_toml).await
    }

    /// Like [`Daemon::start_real`], in `dir`, whose `auth_sessions` a test may have
    /// prepared.
    pub async fn start_real_in(dir: TempDir, ws_url: &str, extra_toml: &str) -> Self {
        let launch = Launch {
            real: true,
            extra_toml: format!(
                "[connection]\nkind = \"whatsapp\"\n[whatsapp]\nversion = \"2.3000.1027000000\"\nws_url = \"{ws_url}\"\n{extra_toml}"
            ),
            ..Launch::default()
        };
        Self::launch(dir, launch, &[]).await
    }

    /// Stops this daemon (SIGTERM) and starts a new one on the same directory,
    /// the same way it was started.
    pub async fn restart(mut self) -> Self {
        let status = self.terminate();
        assert!(status.success(), "exit status {status:?}\n{}", self.logs());
        let dir = tempfile::tempdir().unwrap();
        let old = std::mem::replace(&mut self.dir, dir);
        Self::launch(old, self.launch.clone(), &[]).await
    }

    /// Stops this daemon (SIGTERM), runs `between` on its sessions directory while
    /// no daemon holds it, and starts a new one there the same way.
    pub async fn restart_with(mut self, between: impl FnOnce(&Path)) -> Self {
        let status = self.terminate();
        assert!(status.success(), "exit status {status:?}\n{}", self.logs());
        between(&self.sessions_dir());
        let dir = tempfile::tempdir().unwrap();
        let old = std::mem::replace(&mut self.dir, dir);
        Self::launch(old, self.launch.clone(), &[]).await
    }

    /// Kills this daemon outright (SIGKILL: no cleanup at all) and starts a new one
    /// on the same directory with `extra_toml`.
    pub async fn kill_and_restart(mut self, extra_toml: &str) -> Self {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let old = std::mem::replace(&mut self.dir, dir);
        let launch = Launch {
            extra_toml: extra_toml.to_string(),
            ..self.launch.clone()
        };
        Self::launch(old, launch, &[]).await
    }

    /// Any request: `key` is the `X-API-Key` value (none when `None`), `body` is
    /// sent as is. Returns the status, the headers and the raw body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        // One connection per request: a server that answers before reading a body
        // (413, 401) closes it, and a pooled connection would fail the next request.
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("Connection", "close");
        if let Some(key) = key {
            req = req.header("X-API-Key", key);
        }
        if let Some(body) = body {
            req = req.header("Content-Type", "application/json").body(body);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        let headers = r.headers().clone();
        (code, headers, r.text().await.unwrap())
    }

    async fn launch(dir: TempDir, launch: Launch, env: &[(&str, &str)]) -> Self {
        let Launch {
            real,
            server_keys,
            extra_toml,
            no_env_key,
            open_files,
        } = &launch;
        let sessions = dir.path().join("auth_sessions");
        let config = dir.path().join("config.toml");
        // Deliveries unpaced unless a test asks for pacing: the anti-ban gap of a
        // second per message has its own tests, and would only slow the others.
        let pacing = if extra_toml.contains("[outbox]") {
            ""
        } else {
            "[outbox]\nmin_gap_ms = 0\n"
        };
        // A table appears once in TOML: a test's own `[sessions]` gets the directory.
        let dir_key = format!("dir = \"{}\"\n", sessions.display());
        let text = if extra_toml.contains("[sessions]\n") {
            let extra = extra_toml.replacen("[sessions]\n", &format!("[sessions]\n{dir_key}"), 1);
            format!("[server]\nlisten = \"127.0.0.1:0\"\n{server_keys}\n{pacing}{extra}")
        } else {
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n{server_keys}\n[sessions]\n{dir_key}{pacing}{extra_toml}"
            )
        };
        std::fs::write(&config, text).unwrap();
        let log_path = dir.path().join("daemon.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        // Only this start's lines: a restart appends to the same log.
        let log_start = log.metadata().unwrap().len();
        let mut command = Command::new(env!("CARGO_BIN_EXE_wa-supervisor"));
        command
            .args(if *real {
                &["serve", "--config"][..]
            } else {
                &["serve", "--sim", "--config"][..]
            })
            .arg(&config)
            .current_dir(dir.path())
            .env("WHATSAPP_SERVER_API_KEY", API_KEY)
            .env("RUST_LOG", "info")
            .env_remove("PORT")
            .env_remove("WA_SESSIONS_DIR")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("WHATSAPP_WEBHOOK_SECRET")
            .envs(env.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        if *no_env_key {
            command.env_remove("WHATSAPP_SERVER_API_KEY");
        }
        if let Some(limit) = *open_files {
            limit_open_files(&mut command, limit);
        }
        let mut child = command.spawn().expect("the binary starts");
        let addr = match listening_addr(&log_path, log_start, &mut child).await {
            Ok(addr) => addr,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{why}:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        let daemon = Self {
            child,
            port: addr.port(),
            dir,
            http: reqwest::Client::new(),
            launch,
        };
        daemon.wait_healthy().await;
        daemon
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = self.http.get(self.url("/health")).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not become healthy:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The configuration file this daemon was started with (its `listen` has
    /// port 0: the daemon took a free one).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// A configuration as an operator's would read on this daemon's host: the same
    /// sessions directory, and `listen` naming the port the daemon got.
    pub fn operator_config_path(&self) -> PathBuf {
        let path = self.dir.path().join("operator.toml");
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:{}\"\n[sessions]\ndir = \"{}\"\n",
                self.port,
                self.sessions_dir().display()
            ),
        )
        .unwrap();
        path
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn sessions_dir(&self) -> PathBuf {
        self.dir.path().join("auth_sessions")
    }

    pub fn logs(&self) -> String {
        let mut logs = std::fs::read(self.dir.path().join("daemon.log")).unwrap_or_default();
        // A line the daemon is still writing (maybe cut inside a character) is
        // left for the next read.
        let whole = logs
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |end| end + 1);
        logs.truncate(whole);
        String::from_utf8_lossy(&logs).into_owned()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .header("X-API-Key", API_KEY)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .header("X-API-Key", API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Brings an org to `connected` as `phone`, from whatever status it is in.
    pub async fn ensure_connected(&self, org: &str, phone: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.get(&format!("/api/status/{org}")).await;
            match body["status"].as_str().unwrap_or_default() {
                "connected" => return,
                "qr_ready" => {
                    self.post(
                        &format!("/sim/{org}/scan"),
                        serde_json::json!({ "phone": phone }),
                    )
                    .await;
                }
                "connecting" | "reconnecting" => {}
                _ => {
                    self.post(
                        "/api/start-session",
                        serde_json::json!({ "organization_id": org }),
                    )
                    .await;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{org} never got connected; last {body}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `/api/status/{org}` until it reports `status` (20 s at most).
    pub async fn wait_status(&self, org: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (code, body) = self.get(&format!("/api/status/{org}")).await;
            assert_eq!(code, 200, "{body}");
            if body["status"] == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{org} never reached {status}; last {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets the open-file limit (soft and hard) of the process `command` starts.
pub fn limit_open_files(command: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The address in the `listening` line the daemon logs once it serves, read from
/// `log` after byte `from`. Fails if the daemon exits first or takes over 20 s.
pub async fn listening_addr(
    log: &Path,
    from: u64,
    child: &mut Child,
) -> Result<SocketAddr, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        let fresh = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned();
        for line in fresh.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["fields"]["message"] == "listening"
                && let Some(addr) = v["fields"]["addr"].as_str()
            {
                return addr
                    .parse()
                    .map_err(|e| format!("the listening line's addr {addr:?}: {e}"));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the daemon exited ({status}) before listening"));
        }
        if Instant::now() > deadline {
            return Err("the daemon did not log its listening address within 20 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback port that refuses connections: bound (so no one else gets it) but
/// not listening. Keep the socket for as long as the port must refuse.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Runs the binary with this configuration until it exits, expecting a failed
/// start: returns the `error` of its one `ERROR` log line (the whole start-up
/// failure, as an operator reads it).
pub fn failed_start(dir: &Path, config_toml: &str, setup: impl FnOnce(&mut Command)) -> String {
    failed_start_of(
        Path::new(env!("CARGO_BIN_EXE_wa-supervisor")),
        dir,
        config_toml,
        setup,
    )
}

/// [`failed_start`] of the binary at `binary`.
pub fn failed_start_of(
    binary: &Path,
    dir: &Path,
    config_toml: &str,
    setup: impl FnOnce(&mut Command),
) -> String {
    let config = dir.join("config.toml");
    std::fs::write(&config, config_toml).unwrap();
    let mut command = Command::new(binary);
    command
        .args(["serve", "--sim", "--config"])
        .arg(&config)
        .current_dir(dir)
        .env("WHATSAPP_SERVER_API_KEY", API_KEY)
        .env("RUST_LOG", "info")
        .env_remove("PORT")
        .env_remove("WA_SESSIONS_DIR")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WHATSAPP_WEBHOOK_SECRET");
    setup(&mut command);
    let output = command.output().expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let errors: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "one ERROR line: {stdout}");
    assert_eq!(
        errors[0]["fields"]["message"], "wa-supervisor failed",
        "{stdout}"
    );
    errors[0]["fields"]["error"]
        .as_str()
        .expect("an error field")
        .to_owned()
}

/// Every file below `dir`, relative to it.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Decodes a PNG holding one QR code back to its payload.
pub fn decode_png_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).expect("a PNG").to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(img);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().expect("the QR decodes").1
}

/// Decodes a `data:image/png;base64,…` QR back to its payload.
pub fn decode_qr_data_url(url: &str) -> String {
    use base64::Engine;
    let b64 = url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    decode_png_qr(&png)
}

/// The phone of a whole, parseable credentials file; panics on a torn one.
pub fn credentials_phone(file: &Path) -> String {
    let bytes = std::fs::read(file).unwrap();
    let v: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{} is torn ({e}): {bytes:?}", file.display()));
    v["phone"].as_str().expect("a phone").to_owned()
}
