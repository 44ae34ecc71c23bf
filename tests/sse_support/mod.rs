//! Server-Sent Events read by the end-to-end tests: `GET /api/events` split into
//! frames. Shared by `tests/live_events.rs` and `tests/cluster_events.rs`.

#![allow(dead_code)]

use std::time::Duration;

use crate::common::{API_KEY, Daemon};

/// Opens `GET /api/events` on `daemon` (with the key) and checks it is a stream.
pub async fn listen(daemon: &Daemon) -> reqwest::Response {
    let resp = daemon
        .http
        .get(daemon.url("/api/events"))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    resp
}

/// One parsed SSE frame: `event`, `id`, `data`, or a `:` comment.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Frame {
    pub event: String,
    pub id: String,
    pub data: String,
    pub comment: bool,
}

/// Splits complete frames off the front of `buf`.
pub fn frames(buf: &mut String) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let block: String = buf.drain(..end + 2).collect();
        let mut frame = Frame::default();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                frame.event = v.into();
            } else if let Some(v) = line.strip_prefix("id: ") {
                frame.id = v.into();
            } else if let Some(v) = line.strip_prefix("data: ") {
                frame.data.push_str(v);
            } else if line.starts_with(':') {
                frame.comment = true;
            }
        }
        out.push(frame);
    }
    out
}

/// Reads an SSE response until a frame named `name` arrives; returns every frame
/// read so far.
pub async fn read_until(resp: &mut reqwest::Response, buf: &mut String, name: &str) -> Vec<Frame> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {name} in time; saw {seen:?}"))
            .unwrap()
            .expect("the stream is open");
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
        for frame in frames(buf) {
            let done = frame.event == name;
            seen.push(frame);
            if done {
                return seen;
            }
        }
    }
}
