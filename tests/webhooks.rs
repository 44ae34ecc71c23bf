//! Signed webhooks (issue 8), seen from a receiver like the Django app's: every
//! request's signature is checked here with `hmac` + `sha2` directly (not with the
//! daemon's own code).
//!
//! Delivery rules run in-process against `Webhooks` with tiny backoffs and are
//! awaited through `flush`, which returns only when every event is delivered or
//! dropped, so request counts are final without sleeping. The session walk and the
//! latency check run the real binary.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{Daemon, decode_qr_data_url};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, mpsc};
use wa_actors::{EventKind, EventSink, OrgId, SessionEvent, SessionStatus};
use wa_supervisor::webhook::{WebhookConfig, WebhookSecret, Webhooks};

const SECRET: &str = "test-webhook-secret-3b9f1c0e7a";

/// What the receiver answers.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

/// Decides the answer from the body and how often this event id was seen (1-based).
type Script = Arc<dyn Fn(&Value, usize) -> Answer + Send + Sync>;

#[derive(Clone, Debug)]
struct Hit {
    body: Value,
    header_event_id: String,
    signature_ok: bool,
}

#[derive(Clone)]
struct ReceiverState {
    script: Script,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    hits: Arc<Mutex<Vec<Hit>>>,
    tx: mpsc::UnboundedSender<Hit>,
    release: Arc<Notify>,
}

struct Receiver {
    url: String,
    rx: mpsc::UnboundedReceiver<Hit>,
    hits: Arc<Mutex<Vec<Hit>>>,
    /// Wakes requests held by `Answer::Hang` only when the script says so; see
    /// `blocking_receiver`.
    release: Arc<Notify>,
}

impl Receiver {
    async fn next(&mut self) -> Hit {
        tokio::time::timeout(Duration::from_secs(20), self.rx.recv())
            .await
            .expect("a webhook within 20 s")
            .expect("the receiver runs")
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Requests per `data.reason`.
    fn count_by_reason(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for hit in self.hits() {
            let reason = hit.body["data"]["reason"].as_str().unwrap_or("").to_owned();
            *out.entry(reason).or_default() += 1;
        }
        out
    }
}

fn signature_ok(body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == hex
}

async fn handle(State(st): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature_ok = signature_ok(
        &body,
        headers.get("x-signature-256").and_then(|v| v.to_str().ok()),
    );
    let header_event_id = headers
        .get("x-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let nth = {
        let mut seen = st.seen.lock().unwrap();
        let n = seen.entry(header_event_id.clone()).or_default();
        *n += 1;
        *n
    };
    let hit = Hit {
        body: value.clone(),
        header_event_id,
        signature_ok,
    };
    st.hits.lock().unwrap().push(hit.clone());
    let _ = st.tx.send(hit);
    if !signature_ok {
        return StatusCode::UNAUTHORIZED;
    }
    match (st.script)(&value, nth) {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
        Answer::Hang => {
            st.release.notified().await;
            StatusCode::OK
        }
    }
}

async fn receiver(script: impl Fn(&Value, usize) -> Answer + Send + Sync + 'static) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let hits = Arc::new(Mutex::new(Vec::new()));
    let release = Arc::new(Notify::new());
    let state = ReceiverState {
        script: Arc::new(script),
        seen: Arc::default(),
        hits: hits.clone(),
        tx,
        release: release.clone(),
    };
    let app = Router::new().route("/hook", post(handle)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url: format!("http://{addr}/hook"),
        rx,
        hits,
        release,
    }
}

fn fast_config(url: &str) -> WebhookConfig {
    WebhookConfig {
        url: url.to_owned(),
        timeout_ms: 5_000,
        max_attempts: 3,
        initial_backoff_ms: 1,
        max_backoff_ms: 4,
        queue_size: 100,
        secret: WebhookSecret::new(SECRET),
    }
}

fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

/// A `message.failed` whose reason tells the receiver's script what to answer.
fn failed(org_id: &str, reason: &str) -> SessionEvent {
    SessionEvent {
        org: org(org_id),
        at: chrono::Utc::now(),
        status: SessionStatus::Connected,
        kind: EventKind::Message(wa_actors::MessageEvent {
            status: wa_actors::outbox::MessageStatus::Failed,
            message_id: "3EB0F00D".into(),
            idempotency_key: None,
            to: "573009998877".into(),
            error: Some(reason.into()),
            accepted_at: chrono::Utc::now(),
            attempts: 1,
        }),
    }
}

fn qr(org_id: &str, code: &str) -> SessionEvent {
    SessionEvent {
        org: org(org_id),
        at: chrono::Utc::now(),
        status: SessionStatus::QrReady,
        kind: EventKind::Qr {
            code: code.into(),
            pairing_code: None,
        },
    }
}

#[tokio::test]
async fn retries_5xx_never_4xx_and_stays_within_max_attempts() {
    let rx = receiver(|body, nth| match body["data"]["reason"].as_str() {
        Some("flaky") if nth <= 2 => Answer::Status(500),
        Some("refused") => Answer::Status(400),
        Some("broken") => Answer::Status(503),
        _ => Answer::Status(200),
    })
    .await;
    let hooks = Webhooks::from_config(&fast_config(&rx.url))
        .unwrap()
        .unwrap();
    for reason in ["flaky", "refused", "broken", "fine"] {
        hooks.emit(failed("2", reason));
    }
    assert!(hooks.flush(Duration::from_secs(20)).await, "all settled");

    let counts = rx.count_by_reason();
    assert_eq!(counts["flaky"], 3, "two 500s, then delivered");
    assert_eq!(counts["refused"], 1, "a 400 is never retried");
    assert_eq!(counts["broken"], 3, "5xx forever: exactly max_attempts");
    assert_eq!(counts["fine"], 1);
    assert_eq!(counts.values().sum::<usize>(), 8);

    let hits = rx.hits();
    assert!(hits.iter().all(|h| h.signature_ok));
    // In order: each event's attempts finish before the next event is sent.
    let order: Vec<&str> = hits
        .iter()
        .map(|h| h.body["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "flaky", "flaky", "flaky", "refused", "broken", "broken", "broken", "fine"
        ]
    );
    // A retry is the same event: same id in the header and the body.
    for reason in ["flaky", "broken"] {
        let ids: std::collections::HashSet<_> = hits
            .iter()
            .filter(|h| h.body["data"]["reason"] == reason)
            .map(|h| {
                assert_eq!(h.header_event_id, h.body["event_id"].as_str().unwrap());
                h.header_event_id.clone()
            })
            .collect();
        assert_eq!(ids.len(), 1, "{reason}");
    }
    let stats = hooks.stats();
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 2);
    assert_eq!(stats.dropped.load(Ordering::Relaxed), 2);
    assert_eq!(stats.evicted.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn network_errors_are_retried_up_to_the_bound_then_dropped() {
    // A receiver that accepts and hangs up at once: a network error, every time.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let hooks = Webhooks::from_config(&fast_config(&format!("http://{addr}/hook")))
        .unwrap()
        .unwrap();
    hooks.emit(failed("2", "x"));
    assert!(hooks.flush(Duration::from_secs(20)).await);
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "max_attempts connections"
    );
    assert_eq!(hooks.stats().dropped.load(Ordering::Relaxed), 1);
    assert_eq!(hooks.stats().delivered.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_qr_first_and_never_blocks_emit() {
    // The first event hangs at the receiver until released; the rest queue up.
    let mut rx = receiver(|body, _| match body["data"]["reason"].as_str() {
        Some("first") => Answer::Hang,
        _ => Answer::Status(200),
    })
    .await;
    let config = WebhookConfig {
        queue_size: 3,
        timeout_ms: 60_000,
        ..fast_config(&rx.url)
    };
    let hooks = Webhooks::from_config(&config).unwrap().unwrap();
    hooks.emit(failed("2", "first"));
    assert_eq!(rx.next().await.body["data"]["reason"], "first");

    let started = Instant::now();
    hooks.emit(qr("2", "2@qr-one"));
    hooks.emit(failed("2", "m1"));
    hooks.emit(qr("2", "2@qr-two"));
    hooks.emit(failed("2", "m2")); // full: qr-one goes
    hooks.emit(failed("2", "m3")); // full: qr-two goes
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "emit returns at once"
    );
    assert_eq!(hooks.stats().evicted.load(Ordering::Relaxed), 2);
    assert_eq!(hooks.pending(), 4, "one in flight, three queued");

    // Another org is not held up by this one's stuck receiver.
    hooks.emit(failed("9", "other-org"));
    let hit = rx.next().await;
    assert_eq!(hit.body["organization_id"], "9");

    rx.release.notify_one();
    assert!(hooks.flush(Duration::from_secs(20)).await);
    let order: Vec<String> = rx
        .hits()
        .iter()
        .filter(|h| h.body["organization_id"] == "2")
        .map(|h| h.body["data"]["reason"].as_str().unwrap_or("qr").to_owned())
        .collect();
    assert_eq!(order, ["first", "m1", "m2", "m3"]);
    assert_eq!(hooks.stats().dropped.load(Ordering::Relaxed), 2);
}

fn webhook_toml(url: &str, extra: &str) -> String {
    format!(
        "[webhook]\nurl = \"{url}\"\nmax_attempts = 3\ninitial_backoff_ms = 5\nmax_backoff_ms = 20\n{extra}"
    )
}

#[tokio::test]
async fn the_binary_posts_a_session_walk_in_order_and_signed() {
    let mut rx = receiver(|_, _| Answer::Status(200)).await;
    let daemon = Daemon::start_with_env(
        &webhook_toml(&rx.url, ""),
        &[("WHATSAPP_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    let org = "7";
    let (code, _) = daemon
        .post("/api/start-session", json!({ "organization_id": 7 }))
        .await;
    assert_eq!(code, 200);
    daemon.wait_status(org, "qr_ready").await;
    let (_, raw) = daemon.get(&format!("/api/qr/{org}?format=raw")).await;
    let (code, _) = daemon
        .post(
            &format!("/sim/{org}/scan"),
            json!({ "phone": "573001234567" }),
        )
        .await;
    assert_eq!(code, 200);
    daemon.wait_status(org, "connected").await;
    let (code, sent) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": org, "phone": "3009998877", "message": "Su cita es mañana" }),
        )
        .await;
    assert_eq!(code, 200, "{sent}");
    let bad_macs = async || {
        for _ in 0..3 {
            let (code, _) = daemon
                .post(&format!("/sim/{org}/inject"), json!({ "fault": "bad_mac" }))
                .await;
            assert_eq!(code, 200);
        }
    };
    // Three from three senders: healing restarts the connection first…
    bad_macs().await;
    let mut got = Vec::new();
    while got
        .iter()
        .filter(|h: &&Hit| h.body["event"] == "session.connected")
        .count()
        < 2
    {
        got.push(rx.next().await);
    }
    // …and three more soon after back it up, wipe it and pair again.
    bad_macs().await;
    // Collect until the QR after the cleanup arrives.
    while got
        .iter()
        .filter(|h: &&Hit| h.body["event"] == "session.qr")
        .count()
        < 2
    {
        got.push(rx.next().await);
    }
    assert!(
        got.iter().all(|h| h.signature_ok),
        "every request is signed"
    );
    let names: Vec<&str> = got
        .iter()
        .map(|h| h.body["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "session.qr",
            "session.reconnecting",
            "session.connected",
            "message.sent",
            "session.healing",
            "session.reconnecting",
            "session.connected",
            "session.healing",
            "session.cleaned",
            "session.qr",
        ]
    );
    let mut ids = std::collections::HashSet::new();
    let mut last = chrono::DateTime::<chrono::FixedOffset>::MIN_UTC.fixed_offset();
    for h in &got {
        let b = &h.body;
        assert_eq!(b["organization_id"], org);
        assert_eq!(h.header_event_id, b["event_id"].as_str().unwrap());
        assert_eq!(h.header_event_id.len(), 32);
        assert!(
            ids.insert(h.header_event_id.clone()),
            "event ids are unique"
        );
        let at = chrono::DateTime::parse_from_rfc3339(b["timestamp"].as_str().unwrap()).unwrap();
        assert!(at >= last, "timestamps in order");
        last = at;
        let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "event",
            "event_id",
            "organization_id",
            "status",
            "timestamp",
            "data",
        ] {
            assert!(keys.contains(&key), "{key} in {b}");
        }
    }
    let first_qr = &got[0].body;
    assert_eq!(first_qr["status"], "qr_ready");
    assert_eq!(
        decode_qr_data_url(first_qr["data"]["qr"].as_str().unwrap()),
        raw["qr_raw"].as_str().unwrap()
    );
    assert_eq!(got[1].body["status"], "reconnecting");
    assert_eq!(got[2].body["data"]["phone_number"], "573001234567");
    assert_eq!(got[3].body["data"]["message_id"], sent["message_id"]);
    assert_eq!(got[3].body["data"]["to"], "573009998877");
    assert_eq!(got[4].body["data"]["step"], "restart");
    assert_eq!(got[4].body["data"]["window"], "bad_mac");
    assert_eq!(got[4].body["data"]["senders"], 3);
    assert_eq!(got[7].body["data"]["step"], "wipe");
    let cleaned = &got[8].body["data"];
    assert_eq!(cleaned["reason"], "bad_mac");
    let backup = cleaned["backup"].as_str().unwrap();
    assert!(
        daemon
            .sessions_dir()
            .join("_backups")
            .join(org)
            .join(backup)
            .is_dir(),
        "{backup}"
    );
    assert_ne!(
        got[5].body["data"]["qr"], first_qr["data"]["qr"],
        "a new QR"
    );
    assert!(
        !daemon.logs().contains(SECRET),
        "the secret is never logged"
    );
}

#[test]
fn the_binary_refuses_a_webhook_url_without_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[sessions]\ndir = \"{}\"\n{}",
            dir.path().join("s").display(),
            webhook_toml("http://127.0.0.1:9/hook", "")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
        .args(["serve", "--sim", "--config"])
        .arg(&config)
        .current_dir(dir.path())
        .env("WHATSAPP_SERVER_API_KEY", common::API_KEY)
        .env_remove("WHATSAPP_WEBHOOK_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("WHATSAPP_WEBHOOK_SECRET"), "{text}");
}

/// Starts `org` on `daemon` and pairs it.
async fn connect(daemon: &Daemon, org: &str, phone: &str) {
    let (code, _) = daemon
        .post("/api/start-session", json!({ "organization_id": org }))
        .await;
    assert_eq!(code, 200);
    daemon.wait_status(org, "qr_ready").await;
    let (code, _) = daemon
        .post(&format!("/sim/{org}/scan"), json!({ "phone": phone }))
        .await;
    assert_eq!(code, 200);
    daemon.wait_status(org, "connected").await;
}

async fn timed_send(daemon: &Daemon, org: &str) -> Duration {
    let started = Instant::now();
    let (code, body) = daemon
        .post(
            "/api/send-message",
            json!({ "organization_id": org, "phone": "3009998877", "message": "Recordatorio" }),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(code, 200, "{body}");
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_does_not_slow_send_message() {
    let mut rx = receiver(|_, _| Answer::Hang).await;
    let plain = Daemon::start().await;
    let hooked = Daemon::start_with_env(
        &webhook_toml(&rx.url, "timeout_ms = 60000\nqueue_size = 8\n"),
        &[("WHATSAPP_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    connect(&plain, "1", "573001111111").await;
    connect(&hooked, "1", "573002222222").await;
    for _ in 0..3 {
        timed_send(&plain, "1").await;
        timed_send(&hooked, "1").await;
    }
    // Interleaved, so load from elsewhere on the machine hits both alike.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        without.push(timed_send(&plain, "1").await);
        with.push(timed_send(&hooked, "1").await);
    }
    let (base, hooked_median) = (median(without), median(with));
    let bound = base * 5 + Duration::from_millis(5);
    eprintln!(
        "send-message median: {base:?} without webhooks, {hooked_median:?} with a dead receiver"
    );
    assert!(
        hooked_median <= bound,
        "median send with a dead receiver {hooked_median:?} > {bound:?} (without webhooks {base:?})"
    );
    // The webhooks were on: the first event is stuck at the receiver, and the
    // queue overflowed (8 places, 40+ sends) instead of growing.
    let first = rx.next().await;
    assert_eq!(first.body["event"], "session.qr");
    assert!(first.signature_ok);
    assert!(
        hooked.logs().contains("webhook queue full"),
        "{}",
        hooked.logs()
    );
}

#[tokio::test]
async fn a_ban_is_posted_with_its_retry_at() {
    let mut rx = receiver(|_, _| Answer::Status(200)).await;
    let daemon = Daemon::start_with_env(
        &webhook_toml(&rx.url, ""),
        &[("WHATSAPP_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    connect(&daemon, "5", "573005555555").await;
    let (code, _) = daemon
        .post(
            "/sim/5/inject",
            json!({ "fault": "temporary_ban", "code": 3600 }),
        )
        .await;
    assert_eq!(code, 200);
    let status = daemon.wait_status("5", "banned").await;
    let ban = loop {
        let hit = rx.next().await;
        assert!(hit.signature_ok);
        if hit.body["event"] == "session.banned" {
            break hit.body;
        }
    };
    assert_eq!(ban["status"], "banned");
    assert_eq!(ban["data"]["from"], "connected");
    let posted =
        chrono::DateTime::parse_from_rfc3339(ban["data"]["retry_at"].as_str().unwrap()).unwrap();
    let shown = chrono::DateTime::parse_from_rfc3339(status["retry_at"].as_str().unwrap()).unwrap();
    // The same instant (the webhook keeps milliseconds).
    assert!(
        (posted - shown).num_milliseconds().abs() < 1,
        "{posted} vs {shown}"
    );
    let from_now = posted.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(from_now > chrono::Duration::minutes(55), "{from_now}");
}

#[tokio::test]
async fn a_dead_receiver_does_not_hold_up_the_stop() {
    let mut rx = receiver(|_, _| Answer::Hang).await;
    let mut daemon = Daemon::start_with_env(
        &webhook_toml(&rx.url, "timeout_ms = 300\n"),
        &[("WHATSAPP_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    let (code, _) = daemon
        .post("/api/start-session", json!({ "organization_id": "3" }))
        .await;
    assert_eq!(code, 200);
    assert_eq!(rx.next().await.body["event"], "session.qr");
    // SIGTERM while that event hangs: the flush gives up after min(timeout, 5 s).
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{}", daemon.logs());
    assert!(
        daemon
            .logs()
            .contains("webhook events still queued at exit are lost"),
        "{}",
        daemon.logs()
    );
}
