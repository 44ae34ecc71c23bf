//! The operator's console in a real browser: headless Chromium driven through
//! chromedriver (WebDriver) against the real binary in sim mode. Needs Debian's
//! `chromium` and `chromium-driver` packages; without them the test fails with one
//! line naming them.
//!
//! Each step's screenshot is kept under a temporary directory whose path is
//! printed. `cargo test --test console_browser -- --ignored` also rewrites
//! `docs/console.png`, the README's picture of the console.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{API_KEY, Daemon};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser session, with the directory its profile and screenshots live in.
struct Browser {
    client: Client,
    _driver: Driver,
    shots: PathBuf,
    step: usize,
}

impl Browser {
    async fn open(shots: PathBuf) -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver; {package} provides it)"
            );
        }
        let port = unused_port();
        let log = std::fs::File::create(shots.join("chromedriver.log")).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver { child, port };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{}/status", driver.port))
                .send()
                .await;
            if let Ok(r) = ready
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = shots.join("profile");
        std::fs::create_dir_all(&profile).unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .expect("a Chromium session through chromedriver");
        Self {
            client,
            _driver: driver,
            shots,
            step: 0,
        }
    }

    async fn shot(&mut self, name: &str) -> PathBuf {
        self.step += 1;
        let path = self.shots.join(format!("{:02}-{name}.png", self.step));
        std::fs::write(&path, self.client.screenshot().await.unwrap()).unwrap();
        path
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls `script` until it returns `want` (20 s at most).
    async fn wait_js(&self, script: &str, want: Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.js(script).await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{script}` never gave {want}; last {got}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn row_status(&self, org: &str, status: &str) {
        let script = format!(
            "const b = document.querySelector('tr[data-org=\"{org}\"] [data-field=status] span');\
             return b ? b.dataset.status : null;"
        );
        self.wait_js(&script, json!(status)).await;
    }

    async fn click(&self, css: &str) {
        self.client
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.unwrap();
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// Answers the open confirmation dialog with "Confirm".
    async fn confirm(&mut self, name: &str) {
        self.wait_js(
            "return document.querySelector('#confirm').open",
            json!(true),
        )
        .await;
        // The safe answer has the focus.
        self.wait_js("return document.activeElement.id", json!("confirm-no"))
            .await;
        self.shot(name).await;
        self.click("#confirm-yes").await;
        self.wait_js(
            "return document.querySelector('#confirm').open",
            json!(false),
        )
        .await;
    }

    async fn sign_in(&mut self, daemon: &Daemon) {
        self.client.goto(&daemon.url("/console")).await.unwrap();
        self.type_into("#api-key", API_KEY).await;
        self.click("#connect").await;
        self.wait_js("return document.querySelector('#app').hidden", json!(false))
            .await;
        self.wait_js(
            "return document.querySelector('#conn-state').textContent",
            json!("Live"),
        )
        .await;
    }

    async fn start(&self, org: &str) {
        self.type_into("#org-input", org).await;
        self.click("#start").await;
        self.row_status(org, "qr_ready").await;
    }
}

fn shots_dir(prefix: &str) -> PathBuf {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    dir.keep()
}

#[tokio::test]
async fn an_operator_pairs_cleans_and_restores_from_the_console() {
    let daemon = Daemon::start().await;
    let shots = shots_dir("console-browser-");
    println!("screenshots: {}", shots.display());
    let mut b = Browser::open(shots.clone()).await;

    // The page and its assets need no key, and carry the strict policy.
    let (code, headers, _) = daemon.raw("GET", "/console", None, None).await;
    assert_eq!(code, 200);
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'; script-src 'self'")
    );

    b.sign_in(&daemon).await;
    b.wait_js("return document.activeElement.id", json!("org-input"))
        .await;
    b.shot("signed-in").await;

    // Start: the QR shown is the one the phone would scan right now.
    b.start("7").await;
    b.wait_js(
        "return (document.querySelector('#qr-img').getAttribute('src') || '').startsWith('data:image/png;base64,')",
        json!(true),
    )
    .await;
    let src = b
        .js("return document.querySelector('#qr-img').getAttribute('src')")
        .await;
    let (_, raw) = daemon.get("/api/qr/7?format=raw").await;
    assert_eq!(
        common::decode_qr_data_url(src.as_str().unwrap()),
        raw["qr_raw"].as_str().unwrap(),
        "the console shows the current QR"
    );
    b.shot("qr").await;

    // Messages accepted while the QR waits are queued, and the outbox shows them.
    let enqueue = |text: &'static str| {
        daemon.post(
            "/api/messages",
            json!({ "organization_id": "7", "phone": "+57 300 765 4321", "message": text }),
        )
    };
    let (code, kept) = enqueue("Your appointment is tomorrow at 10:00").await;
    assert_eq!(code, 202, "{kept}");
    assert_eq!(kept["status"], "queued");
    let kept_id = kept["message_id"].as_str().unwrap().to_owned();
    let (code, dropped) = enqueue("Your appointment is cancelled").await;
    assert_eq!(code, 202, "{dropped}");
    let dropped_id = dropped["message_id"].as_str().unwrap().to_owned();
    // The text of a message's row in the outbox view, or null without one.
    let row = |id: &str| {
        format!(
            "const li = document.querySelector('#outbox li[data-message=\"{id}\"]');\
             return li ? li.textContent : null;"
        )
    };
    // Accepting a message is no event (CONTRACT §2, §10), so the operator opens
    // the organization again to read its outbox.
    b.click("tr[data-org=\"7\"] button[data-action=details]")
        .await;
    for id in [&kept_id, &dropped_id] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = b.js(&row(id)).await;
            if text
                .as_str()
                .is_some_and(|t| t.starts_with("573007654321 — queued"))
            {
                break;
            }
            assert!(Instant::now() < deadline, "{id} in the outbox: {text}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    b.shot("outbox-queued").await;

    // One is cancelled from the console, with a confirmation; the other stays.
    b.click(&format!("#outbox li[data-message=\"{dropped_id}\"] button"))
        .await;
    b.confirm("confirm-cancel").await;
    b.wait_js(&row(&dropped_id), Value::Null).await;
    let (_, cancelled) = daemon.get(&format!("/api/messages/{dropped_id}")).await;
    assert_eq!(cancelled["status"], "cancelled");
    assert!(
        b.js(&row(&kept_id)).await.is_string(),
        "the other message is still queued in the console"
    );

    // The phone scans: connected, live, with its number; the QR goes away.
    daemon
        .post("/sim/7/scan", json!({ "phone": "573001234567" }))
        .await;
    b.row_status("7", "connected").await;
    b.wait_js(
        "return document.querySelector('tr[data-org=\"7\"] [data-field=phone]').textContent",
        json!("573001234567"),
    )
    .await;
    b.wait_js(
        "return document.querySelector('#qr-box').hidden",
        json!(true),
    )
    .await;
    assert_eq!(
        b.js("return document.querySelector('#announcer').textContent")
            .await,
        json!("Organization 7: connected"),
        "the change is announced to screen readers"
    );
    // Connected, the queued message is sent, once, and leaves the outbox's view.
    b.wait_js(
        "return document.querySelector('#outbox').textContent",
        json!("QueuedNone.FailedNone."),
    )
    .await;
    let (_, sent) = daemon.get(&format!("/api/messages/{kept_id}")).await;
    assert!(
        ["sent", "delivered", "read"].contains(&sent["status"].as_str().unwrap()),
        "{sent}"
    );
    let (_, on_the_phone) = daemon.get("/sim/7/sent").await;
    let attempts: Vec<&Value> = on_the_phone["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{on_the_phone}"))
        .iter()
        .filter(|r| r["message_id"] == kept_id.as_str())
        .collect();
    assert_eq!(attempts.len(), 1, "{on_the_phone}");
    assert_eq!(attempts[0]["text"], "Your appointment is tomorrow at 10:00");
    assert!(
        !on_the_phone.to_string().contains(&dropped_id),
        "the cancelled message was never sent: {on_the_phone}"
    );
    b.shot("connected").await;

    // Clean, with a confirmation: backed up and removed.
    b.click("tr[data-org=\"7\"] button[data-action=clean]")
        .await;
    b.confirm("confirm-clean").await;
    b.row_status("7", "not_started").await;
    b.wait_js(
        "return document.querySelectorAll('#backups li[data-backup]').length",
        json!(1),
    )
    .await;
    let backup = b
        .js("return document.querySelector('#backups li[data-backup]').dataset.backup")
        .await;
    let backup = backup.as_str().unwrap().to_owned();
    assert!(backup.ends_with("_force_clean"), "{backup}");
    b.shot("cleaned").await;

    // Restore it, with a confirmation: connected again, and no QR on the way.
    b.click("#backups li[data-backup] button[data-action=restore]")
        .await;
    b.confirm("confirm-restore").await;
    b.row_status("7", "connected").await;
    b.wait_js(
        "return document.querySelector('#message').textContent.includes('restored (connected)')",
        json!(true),
    )
    .await;
    b.wait_js(
        "return document.querySelector('#qr-box').hidden",
        json!(true),
    )
    .await;
    let (_, qr) = daemon.get("/api/qr/7").await;
    assert_eq!(qr["qr"], Value::Null);
    let (_, status) = daemon.get("/api/status/7").await;
    assert_eq!(status["phone_number"], "573001234567");
    b.shot("restored").await;

    // The key went nowhere but the tab's memory.
    let kept = b
        .js("return [location.href, localStorage.length, sessionStorage.length, document.cookie]")
        .await;
    assert_eq!(kept, json!([daemon.url("/console"), 0, 0, ""]));
    let profile = shots.join("profile");
    for file in common::files_below(&profile) {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(
                !bytes
                    .windows(API_KEY.len())
                    .any(|w| w == API_KEY.as_bytes()),
                "the key is in the browser profile: {}",
                file.display()
            );
        }
    }
    b.client.clone().close().await.unwrap();
    println!("screenshots: {}", shots.display());
}

/// `GET /docs`: Swagger UI runs in the browser from the binary's own files and
/// shows every operation of `/openapi.json`, with the key as its way to authorize.
#[tokio::test]
async fn swagger_ui_shows_the_document_in_a_browser() {
    let daemon = Daemon::start().await;
    let shots = shots_dir("docs-browser-");
    let mut b = Browser::open(shots.clone()).await;
    let (_, doc) = daemon.get("/openapi.json").await;
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert!(operations > 20, "{operations}");

    b.client.goto(&daemon.url("/docs")).await.unwrap();
    b.wait_js(
        "return document.querySelectorAll('.opblock').length",
        json!(operations),
    )
    .await;
    b.wait_js(
        "return !!document.querySelector('.btn.authorize')",
        json!(true),
    )
    .await;
    // Every resource the page loaded came from the daemon.
    let origins = b
        .js("return performance.getEntriesByType('resource').map(e => new URL(e.name).origin)")
        .await;
    let own = daemon.url("");
    for origin in origins.as_array().unwrap() {
        assert_eq!(origin.as_str(), Some(own.as_str()), "{origins}");
    }
    b.shot("docs").await;
    b.client.clone().close().await.unwrap();
}

/// Not a test: rewrites `docs/console.png` with organizations in several statuses.
#[tokio::test]
#[ignore = "writes docs/console.png; run with --ignored"]
async fn console_screenshot_for_the_readme() {
    let config = "[windows.cleanups]\nlimit = 1\nseconds = 3600\n\
                  [connection_budget.per_org]\nlimit = 1\nseconds = 86400\n";
    let daemon = Daemon::start_with(config).await;
    let post = |path: &'static str, body: Value| daemon.post(path, body);
    // 2 connected; 4 banned; 5 reconnecting; 6 quarantined; 8 blocked; 3 qr_ready.
    for (org, phone) in [
        ("2", "573001110002"),
        ("4", "573001110004"),
        ("5", "573001110005"),
        ("6", "573001110006"),
    ] {
        daemon.ensure_connected(org, phone).await;
    }
    post(
        "/sim/4/inject",
        json!({ "fault": "temporary_ban", "code": 5400 }),
    )
    .await;
    post("/sim/5/inject", json!({ "fault": "network_down" })).await;
    for _ in 0..3 {
        post("/sim/6/inject", json!({ "fault": "bad_mac" })).await;
    }
    daemon.wait_status("6", "qr_ready").await;
    post("/sim/6/scan", json!({ "phone": "573001110006" })).await;
    daemon.wait_status("6", "connected").await;
    for _ in 0..3 {
        post("/sim/6/inject", json!({ "fault": "bad_mac" })).await;
    }
    daemon.wait_status("6", "quarantined").await;
    post("/api/start-session", json!({ "organization_id": "8" })).await;
    daemon.wait_status("8", "qr_ready").await;
    post(
        "/api/force-clean-session",
        json!({ "organization_id": "8" }),
    )
    .await;
    post("/api/start-session", json!({ "organization_id": "8" })).await;
    daemon.wait_status("8", "blocked").await;
    daemon.wait_status("4", "banned").await;
    daemon.wait_status("5", "reconnecting").await;

    let shots = shots_dir("console-screenshot-");
    let mut b = Browser::open(shots).await;
    b.sign_in(&daemon).await;
    b.start("3").await;
    b.wait_js(
        "return (document.querySelector('#qr-img').getAttribute('src') || '').startsWith('data:')",
        json!(true),
    )
    .await;
    for org in ["2", "4", "5", "6", "8"] {
        b.wait_js(
            &format!("return !!document.querySelector('tr[data-org=\"{org}\"]')"),
            json!(true),
        )
        .await;
    }
    // Tall enough for the table and the selected organization's QR.
    b.client.set_window_size(1280, 1320).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = b.client.screenshot().await.unwrap();
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.png");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, png).unwrap();
    println!("wrote {}", out.display());
    b.client.clone().close().await.unwrap();
}

/// A port nothing listens on right now, for chromedriver, which binds its own
/// socket (`--port`) and cannot be handed one: the daemon under test never needs
/// this, it binds port 0 itself.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
