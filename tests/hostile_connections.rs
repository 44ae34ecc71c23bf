//! The HTTP server under hostile clients, over the real binary: idle and slow
//! connections are closed, a flood of idle sockets cannot lock callers out, a stop
//! still answers what is in flight, and protocol errors are what README.md says.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Daemon, Launch};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(daemon: &Daemon) -> SocketAddr {
    ([127, 0, 0, 1], daemon.port).into()
}

/// Waits until the server closes `stream` (EOF or reset), at most `within`;
/// returns how long that took. Anything the server sends first is discarded.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = within
            .checked_sub(started.elapsed())
            .unwrap_or_else(|| panic!("the connection is still open after {within:?}"));
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => panic!("the connection is still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends `request` on a fresh connection and reads until the server closes it.
async fn exchange(daemon: &Daemon, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr(daemon)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_half_sent_request_head_is_closed_at_the_header_timeout() {
    let daemon = Daemon::start_with_server("header_read_timeout_seconds = 1", "").await;
    let mut stream = TcpStream::connect(addr(&daemon)).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let took = closed_within(&mut stream, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");

    // The server still serves.
    let (code, _) = daemon.get("/health").await;
    assert_eq!(code, 200);
}

/// A slowloris client trickles its head a byte at a time: every byte arrives
/// before any read timeout would fire, and the head never ends. The header
/// clock runs from the first byte, so it is cut all the same.
#[tokio::test]
async fn a_head_trickled_a_byte_at_a_time_is_cut_at_the_header_timeout() {
    let daemon = Daemon::start_with_server("header_read_timeout_seconds = 1", "").await;
    let stream = TcpStream::connect(addr(&daemon)).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        writer
            .write_all(b"GET /health HTTP/1.1\r\nX-Slow: ")
            .await
            .unwrap();
        let mut sent = 0u32;
        while writer.write_all(b"a").await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            if sent > 200 {
                break;
            }
        }
        sent
    });
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut buf))
        .await
        .expect("the trickling connection is closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let sent = trickle.await.unwrap();
    assert!(sent < 200, "the server kept reading for {sent} bytes");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let daemon = Daemon::start_with_server("idle_timeout_seconds = 1", "").await;
    let mut stream = TcpStream::connect(addr(&daemon)).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.contains("\"status\":\"ok\""),
        "the whole answer: {answer}"
    );
    let took = closed_within(&mut stream, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(900), "closed early: {took:?}");

    // A socket that connects and says nothing is closed too.
    let mut silent = TcpStream::connect(addr(&daemon)).await.unwrap();
    closed_within(&mut silent, Duration::from_secs(10)).await;
}

/// Raises this test process's own open-file limit to `want` (within its hard
/// limit): it holds more sockets than the daemon it attacks may.
fn raise_own_open_files(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= want,
        "this test needs {want} open files; the hard limit is {}",
        limit.rlim_max
    );
}

/// Under a 1,024-descriptor limit, 1,100 idle sockets from any local process once
/// made `/health` and every route time out (`accept error: Too many open files`).
/// Now the daemon holds at most half its descriptors in connections, closes the
/// longest-idle ones to admit new ones, and keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleven_hundred_idle_sockets_cannot_lock_callers_out() {
    raise_own_open_files(2048);
    let daemon = Daemon::start_as(Launch {
        open_files: Some(1024),
        ..Launch::default()
    })
    .await;
    let listening = daemon
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "listening")
        .expect("a listening line");
    assert_eq!(listening["fields"]["open_files"], 1024);
    assert_eq!(listening["fields"]["max_connections"], 512);

    let mut idle = Vec::new();
    for _ in 0..1100 {
        let stream =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr(&daemon)))
                .await
                .expect("connect does not hang")
                .expect("connected");
        idle.push(stream);
    }

    for path in ["/health", "/api/status/x"] {
        let (code, body) = tokio::time::timeout(Duration::from_secs(10), daemon.get(path))
            .await
            .unwrap_or_else(|_| panic!("{path} did not answer\n{}", daemon.logs()));
        assert_eq!(code, 200, "{path}: {body}");
    }
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": "flood" }))
        .await;
    assert_eq!(code, 200, "{body}");

    // The idle sockets beyond the bound were closed by the daemon.
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = loop {
        let mut closed = 0;
        let mut buf = [0u8; 1];
        for stream in &idle {
            match stream.try_read(&mut buf) {
                Ok(0) => closed += 1,
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => closed += 1,
                _ => {}
            }
        }
        if closed >= 1100 - 512 || Instant::now() > deadline {
            break closed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        closed >= 1100 - 512,
        "only {closed} idle sockets were closed"
    );

    let descriptors = std::fs::read_dir(format!("/proc/{}/fd", daemon.child.id()))
        .unwrap()
        .count();
    assert!(descriptors < 1024, "{descriptors} descriptors open");
    let logs = daemon.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    drop(idle);
}

/// SIGTERM while a request is in flight: the request is answered, then the
/// daemon exits 0.
#[tokio::test]
async fn a_stop_answers_the_request_in_flight() {
    let mut daemon = Daemon::start_with_env(
        "[send]\nwait_seconds = 2\n",
        // "started processing request" tells when the request is in the daemon.
        &[("RUST_LOG", "info,wa_supervisor::http::edge=debug")],
    )
    .await;
    daemon.ensure_connected("s", "573001234567").await;
    let (code, _) = daemon
        .post("/sim/s/inject", json!({ "fault": "network_down" }))
        .await;
    assert_eq!(code, 200);
    daemon.wait_status("s", "reconnecting").await;

    // A send waits (up to 2 s) for the reconnecting session.
    let http = daemon.http.clone();
    let url = daemon.url("/api/send-message");
    let in_flight = tokio::spawn(async move {
        http.post(url)
            .header("X-API-Key", common::API_KEY)
            .json(&json!({ "organization_id": "s", "phone": "3009998877", "message": "hola" }))
            .send()
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.logs().lines().any(|l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["fields"]["message"] == "started processing request"
                && v["span"]["path"] == "/api/send-message"
        })
    }) {
        assert!(
            Instant::now() < deadline,
            "the send never reached the daemon"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = daemon.terminate();
    let answer = in_flight
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(answer.status(), 400, "not connected, after the wait");
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["status"], "reconnecting", "{body}");
    assert!(status.success(), "exit status {status:?}");
}

/// What README.md says of protocol errors: those hyper answers before any route
/// runs have an empty body; from routing on, every error is JSON.
#[tokio::test]
async fn protocol_errors_are_as_documented() {
    let daemon = Daemon::start().await;

    // A request line that is not HTTP: hyper's bare 400.
    let answer = exchange(&daemon, b"NOT A REQUEST\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("content-length: 0\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "no body: {answer}");

    // A head over 64 KiB: hyper's bare 431.
    let mut big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 70 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let answer = exchange(&daemon, &big).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("content-length: 0\r\n"), "{answer}");

    // More than 100 headers: hyper's bare 431 too.
    let mut many = b"GET /health HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..101 {
        many.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let answer = exchange(&daemon, &many).await;
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("content-length: 0\r\n"), "{answer}");

    // A head that parses but a body that does not: the route answers, in JSON.
    let answer = exchange(
        &daemon,
        format!(
            "POST /api/start-session HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\n\
             Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            common::API_KEY
        )
        .as_bytes(),
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("content-type: application/json\r\n"),
        "{answer}"
    );
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap())
        .unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot read the request body"),
        "{body}"
    );

    // The daemon serves on.
    let (code, _) = daemon.get("/health").await;
    assert_eq!(code, 200);
}
