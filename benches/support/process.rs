//! The daemon as a child process of a bench: started on a loopback port it picks
//! itself (port 0) with its own configuration, read from `/proc`, and killed on
//! every way out (dropped handles kill it, SIGINT/SIGTERM/SIGHUP kill every daemon
//! still running, and `PR_SET_PDEATHSIG` kills it if the bench is killed outright).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::API_KEY;

/// The test harness, for reading the address a daemon listens on.
#[path = "../../tests/common/mod.rs"]
mod common;

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static TOP_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Connection budgets large enough for every org a bench connects: it connects
/// up to 10,000 orgs in a few seconds, which the anti-ban budget rightly refuses.
const BUDGET_TOML: &str = "[connection_budget.per_org]\nlimit = 1000000\n\
                           [connection_budget.global]\nlimit = 1000000\n";

/// On SIGINT, SIGTERM or SIGHUP: kill every daemon, remove `top`, exit.
pub fn kill_children_on_signals(top: &Path) {
    use tokio::signal::unix::{SignalKind, signal};
    let _ = TOP_DIR.set(top.to_owned());
    tokio::spawn(async {
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        for pid in CHILDREN.lock().unwrap().drain(..) {
            // SAFETY: kill(2) on a pid we spawned and have not reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        if let Some(dir) = TOP_DIR.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
        eprintln!("interrupted: every daemon killed");
        std::process::exit(130);
    });
}

/// A small HTTP client on one daemon (setup calls, not the measured load).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(port: u16) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value), reqwest::Error> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("X-API-Key", API_KEY)
            .send()
            .await?;
        let code = r.status().as_u16();
        Ok((code, r.json().await.unwrap_or(Value::Null)))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("X-API-Key", API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }
}

/// How to start a daemon: always on the real whatsapp-rust connection.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// The WebSocket URL of the WhatsApp Web server (a loopback one).
    pub ws_url: String,
    /// Extra keys of `[sessions]`.
    pub sessions: String,
    /// Extra tables.
    pub tables: String,
}

impl Launch {
    pub fn real(ws_url: &str) -> Self {
        Self {
            ws_url: ws_url.to_owned(),
            ..Self::default()
        }
    }

    pub fn sessions(mut self, keys: &str) -> Self {
        self.sessions.push_str(keys);
        self.sessions.push('\n');
        self
    }

    pub fn tables(mut self, toml: &str) -> Self {
        self.tables.push_str(toml);
        self.tables.push('\n');
        self
    }

    fn config(&self, sessions_dir: &Path) -> String {
        // A pinned version: nothing is looked up on the network.
        let connection = format!(
            "[connection]\nkind = \"whatsapp\"\n[whatsapp]\n\
             version = \"2.3000.1027000000\"\nws_url = \"{}\"\n",
            self.ws_url
        );
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[sessions]\ndir = \"{}\"\n{}{connection}{}\
             {BUDGET_TOML}",
            sessions_dir.display(),
            self.sessions,
            self.tables,
        )
    }
}

/// One running daemon. Dropping it kills the process.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub api: Api,
}

impl Daemon {
    /// Starts the binary on `root` (sessions in `root/auth_sessions`) and waits
    /// only for its listening address.
    pub async fn spawn(root: &Path, launch: &Launch) -> Self {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let config = root.join(format!("config-{n}.toml"));
        std::fs::write(&config, launch.config(&root.join("auth_sessions")))
            .expect("the configuration is written");
        let log_path = root.join(format!("daemon-{n}.log"));
        let log = std::fs::File::create(&log_path).expect("a log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wa-supervisor"));
        cmd.arg("serve");
        cmd.arg("--config")
            .arg(&config)
            .current_dir(root)
            .env("WHATSAPP_SERVER_API_KEY", API_KEY)
            // The production default: every send is one JSON log line.
            .env("RUST_LOG", "info")
            .env_remove("PORT")
            .env_remove("WA_SESSIONS_DIR")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log file"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = {
            // Held across the spawn, so an interrupt never misses this child.
            let mut children = CHILDREN.lock().unwrap();
            let child = cmd.spawn().expect("the daemon binary starts");
            children.push(child.id());
            child
        };
        let port = match common::listening_addr(&log_path, 0, &mut child).await {
            Ok(addr) => addr.port(),
            Err(why) => panic!("{why}; its log:\n{}", tail(&log_path)),
        };
        Self {
            child,
            log: log_path,
            api: Api::new(port),
        }
    }

    /// Starts the binary and waits until `/health` answers.
    pub async fn start(root: &Path, launch: &Launch) -> Self {
        std::fs::create_dir_all(root).expect("the daemon's directory");
        let daemon = Self::spawn(root, launch).await;
        daemon.wait_healthy(Duration::from_secs(30)).await;
        daemon
    }

    pub async fn wait_healthy(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok((200, _)) = self.api.get("/health").await {
                return;
            }
            self.assert_alive();
            assert!(
                Instant::now() < deadline,
                "the daemon did not become healthy; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn assert_alive(&self) {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(
            !status.is_empty() && !status.contains("State:\tZ"),
            "the daemon exited; its log:\n{}",
            tail(&self.log)
        );
    }

    /// Resident memory (VmRSS) in bytes.
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the daemon's /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("a VmRSS line");
        kib * 1024
    }

    /// Open file descriptors.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Threads.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// User + system CPU time so far.
    pub fn cpu_time(&self) -> Duration {
        stat_cpu_time(&format!("/proc/{}/stat", self.child.id()))
    }

    /// SIGTERM, then SIGKILL if it has not exited within `limit`. Returns how
    /// long it took to exit.
    pub async fn stop_within(mut self, limit: Duration) -> Duration {
        let t = Instant::now();
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = t + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return t.elapsed(); // Drop forgets the pid.
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!(
            "the daemon did not stop within {} s of SIGTERM; killed",
            limit.as_secs()
        );
        t.elapsed()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        CHILDREN.lock().unwrap().retain(|&p| p != self.child.id());
    }
}

pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// User + system CPU time from a /proc/…/stat file.
pub fn stat_cpu_time(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(total as f64 / hz as f64)
}
