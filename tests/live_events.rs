//! `GET /api/events` (CONTRACT §12): the session events as Server-Sent Events,
//! over the real binary and in process (a tiny buffer, paused time).

mod common;
mod sse_support;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use common::Daemon;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sse_support::{Frame, frames, listen, read_until};
use tower::ServiceExt;
use wa_actors::connection::sim::{SimConnector, SimTiming};
use wa_actors::{EventKind, EventSink, OrgId, SessionEvent, SessionStatus, Supervisor};
use wa_supervisor::api_key::ApiKey;
use wa_supervisor::http::{AppState, AppStateParts, router};
use wa_supervisor::live_events::LiveEvents;

#[tokio::test]
async fn a_listener_sees_the_qr_then_the_connection_of_a_pairing() {
    let daemon = Daemon::start().await;
    let mut resp = listen(&daemon).await;
    let mut buf = String::new();

    daemon
        .post("/api/start-session", json!({ "organization_id": "2" }))
        .await;
    let seen = read_until(&mut resp, &mut buf, "session.qr").await;
    let qr = seen.last().unwrap();
    let body: Value = serde_json::from_str(&qr.data).unwrap();
    // The webhook's body, as it is posted: the same id, name and fields.
    assert_eq!(body["event"], "session.qr");
    assert_eq!(body["event_id"], qr.id.as_str());
    assert_eq!(body["organization_id"], "2");
    assert_eq!(body["status"], "qr_ready");
    let url = body["data"]["qr"].as_str().unwrap();
    let (_, shown) = daemon.get("/api/qr/2?format=raw").await;
    assert_eq!(
        common::decode_qr_data_url(url),
        shown["qr_raw"].as_str().unwrap()
    );

    daemon
        .post("/sim/2/scan", json!({ "phone": "573001234567" }))
        .await;
    let seen = read_until(&mut resp, &mut buf, "session.connected").await;
    let connected = seen.last().unwrap();
    let body: Value = serde_json::from_str(&connected.data).unwrap();
    assert_eq!(body["data"]["phone_number"], "573001234567");
    assert_eq!(body["event_id"], connected.id.as_str());
    assert!(
        seen.iter().all(|f| f.event != "session.qr"),
        "no QR after the scan: {seen:?}"
    );

    // The key is required, as on every /api route.
    let (code, _, body) = daemon.raw("GET", "/api/events", None, None).await;
    assert_eq!(code, 401, "{body}");
    let (code, _, _) = daemon
        .raw("GET", "/api/events", Some("wrong-key"), None)
        .await;
    assert_eq!(code, 401);

    // A daemon with an open stream still stops promptly on SIGTERM.
    let mut daemon = daemon;
    let status = daemon.terminate();
    assert!(status.success(), "{}", daemon.logs());
}

const KEY: &str = "in-process-key";

async fn app(events: LiveEvents) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sim = SimConnector::new(SimTiming::default());
    let sup = Supervisor::spawn(wa_actors::SupervisorParts {
        config: wa_actors::SupervisorConfig::new(dir.path().join("sessions")),
        connector: Arc::new(sim.clone()),
        outbox: Arc::new(wa_actors::outbox::MemoryStore::new()),
        events: Arc::new(wa_actors::events::NoEvents),
    })
    .await
    .unwrap();
    let state = AppState::new(AppStateParts {
        supervisor: sup,
        api_key: Arc::new(ApiKey::new(KEY)),
        sim: Some(sim),
        phone: Default::default(),
        events,
        cluster: None,
    });
    (router(state), dir)
}

async fn subscribe(app: &Router) -> Body {
    let req = Request::get("/api/events")
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body()
}

/// The next frame of an in-process SSE body (`None` once it ends).
async fn next_frame(body: &mut Body, buf: &mut String) -> Option<Frame> {
    loop {
        if let Some(frame) = frames(buf).into_iter().next() {
            return Some(frame);
        }
        let frame = tokio::time::timeout(Duration::from_secs(20), body.frame())
            .await
            .expect("a frame in time");
        match frame {
            Some(frame) => {
                let data = frame.unwrap().into_data().unwrap();
                buf.push_str(std::str::from_utf8(&data).unwrap());
            }
            None => return None,
        }
    }
}

fn connected(n: usize) -> SessionEvent {
    SessionEvent {
        org: OrgId::parse("9").unwrap(),
        at: chrono::Utc::now(),
        status: SessionStatus::Connected,
        kind: EventKind::Connected {
            phone: format!("5730000{n:05}"),
        },
    }
}

#[tokio::test]
async fn a_listener_that_never_reads_holds_nobody_back_and_is_dropped() {
    let events = LiveEvents::with_capacity(4);
    let (app, _dir) = app(events.clone()).await;
    // Subscribed, then never read.
    let mut stuck = subscribe(&app).await;
    let mut reader = subscribe(&app).await;
    let mut buf = String::new();
    for n in 0..40 {
        // `emit` is what every org actor calls: it returns at once regardless.
        events.emit(connected(n));
        let frame = next_frame(&mut reader, &mut buf).await.unwrap();
        assert_eq!(frame.event, "session.connected");
        assert!(frame.data.contains(&format!("5730000{n:05}")), "{frame:?}");
    }
    // The one that never read is told it fell behind, and its stream ends.
    let mut stuck_buf = String::new();
    let frame = next_frame(&mut stuck, &mut stuck_buf).await.unwrap();
    assert_eq!(frame.event, "lagged", "{frame:?}");
    let missed: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(missed["missed"], 40 - 4);
    assert_eq!(next_frame(&mut stuck, &mut stuck_buf).await, None);
    // The reader is still served; the dropped listener is gone.
    events.emit(connected(99));
    let frame = next_frame(&mut reader, &mut buf).await.unwrap();
    assert!(frame.data.contains("573000000099"), "{frame:?}");
    assert_eq!(events.listeners(), 1);
    drop(reader);
    assert_eq!(
        events.listeners(),
        0,
        "a listener that leaves costs nothing"
    );
}

/// What a stream logs after its handler returned (a listener told it fell behind)
/// is logged in its request's span, so the line carries the request id.
#[tokio::test]
async fn a_lagging_stream_logs_with_its_request_id() {
    let lines = Lines::default();
    let _logs = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .json()
            .with_writer(lines.clone())
            .finish(),
    );
    let events = LiveEvents::with_capacity(2);
    let (app, _dir) = app(events.clone()).await;
    let req = Request::get("/api/events")
        .header("x-api-key", KEY)
        .header("x-request-id", "events-probe-7")
        .body(Body::empty())
        .unwrap();
    let mut stuck = app.oneshot(req).await.unwrap().into_body();
    for n in 0..10 {
        events.emit(connected(n));
    }
    let frame = next_frame(&mut stuck, &mut String::new()).await.unwrap();
    assert_eq!(frame.event, "lagged", "{frame:?}");
    let logged = lines.text();
    let line = logged
        .lines()
        .find(|l| l.contains("fell behind"))
        .unwrap_or_else(|| panic!("no line of the lag in {logged}"));
    let line: Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["span"]["request_id"], "events-probe-7", "{line}");
}

/// Log lines written by a test's own subscriber.
#[derive(Clone, Default)]
struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

impl Lines {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;

    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_quiet_stream_carries_a_keep_alive_every_15_seconds() {
    let events = LiveEvents::new();
    let (app, _dir) = app(events.clone()).await;
    let mut body = subscribe(&app).await;
    let mut buf = String::new();
    let started = tokio::time::Instant::now();
    let frame = next_frame(&mut body, &mut buf).await.unwrap();
    assert!(frame.comment, "{frame:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(15));
    let frame = next_frame(&mut body, &mut buf).await.unwrap();
    assert!(frame.comment, "{frame:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    // Closing (the daemon stopping) ends the stream.
    events.close();
    assert_eq!(next_frame(&mut body, &mut buf).await, None);
}
