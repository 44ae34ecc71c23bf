//! CONTRACT §14 through the real binary in simulation mode: files sent with
//! `POST /api/send-media` (multipart and JSON base64) go through the outbox like
//! texts, as image or document messages; refused files leave nothing on disk;
//! a number not on WhatsApp fails its message at once; and a file is kept only
//! while its message may still be sent.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{API_KEY, Daemon};
use serde_json::{Value, json};

const ORG: &str = "7";
const SHOP: &str = "573001234567";
const PATIENT: &str = "3009998877";

/// A 1×1 PNG.
fn png() -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(
        b"\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde",
    );
    png.extend_from_slice(
        b"\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef",
    );
    png.extend_from_slice(b"\x00\x00\x00\x00IEND\xaeB`\x82");
    png
}

/// A one-page PDF.
fn pdf() -> Vec<u8> {
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
        .to_vec()
}

const BOUNDARY: &str = "----wa-supervisor-media-test-2f9c";

/// A `multipart/form-data` body: text fields, then the file as `file`.
fn form(fields: &[(&str, &str)], filename: &str, file: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Posts a multipart form to `/api/send-media`; `None` on a transport error.
async fn send_form(daemon: &Daemon, body: Vec<u8>) -> Option<(u16, Value)> {
    let r = daemon
        .http
        .post(daemon.url("/api/send-media"))
        .header("X-API-Key", API_KEY)
        .header("Connection", "close")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
        .ok()?;
    let code = r.status().as_u16();
    Some((code, r.json().await.unwrap_or(Value::Null)))
}

/// Writes `request` on a new connection and reads the answer until the server
/// closes it.
async fn raw_exchange(daemon: &Daemon, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", daemon.port))
        .await
        .unwrap();
    socket.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

fn media_dir(daemon: &Daemon) -> PathBuf {
    daemon.sessions_dir().join("outbox.media")
}

/// The names in the media directory (none when it does not exist yet).
fn files(daemon: &Daemon) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(media_dir(daemon))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Polls `what` until it holds, for at most 20 s.
async fn eventually(what: &str, daemon: &Daemon, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "never: {what}\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn message(daemon: &Daemon, id: &str) -> Value {
    let (code, m) = daemon.get(&format!("/api/messages/{id}")).await;
    assert_eq!(code, 200, "{m}");
    m
}

async fn wait_message_status(daemon: &Daemon, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    eventually(&format!("{id} {status}"), daemon, async || {
        last = message(daemon, id).await;
        last["status"] == status
    })
    .await;
    last
}

async fn start_qr_ready(daemon: &Daemon) {
    let (code, body) = daemon
        .post("/api/start-session", json!({ "organization_id": ORG }))
        .await;
    assert_eq!(code, 200, "{body}");
    daemon.wait_status(ORG, "qr_ready").await;
}

#[tokio::test]
async fn a_png_and_a_pdf_queued_before_pairing_go_out_in_order() {
    let daemon = Daemon::start().await;
    start_qr_ready(&daemon).await;

    let (code, image) = send_form(
        &daemon,
        form(
            &[
                ("organization_id", ORG),
                ("phone", PATIENT),
                ("caption", "Su fórmula 👓"),
            ],
            "formula.png",
            &png(),
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 202, "{image}");
    assert_eq!(
        (&image["kind"], &image["status"], &image["mimetype"]),
        (&json!("image"), &json!("queued"), &json!("image/png"))
    );
    let (code, document) = daemon
        .post(
            "/api/send-media",
            json!({
                "organization_id": ORG,
                "phone": PATIENT,
                "media_base64": base64::engine::general_purpose::STANDARD.encode(pdf()),
                "mimetype": "application/pdf",
                "filename": "receta.pdf",
            }),
        )
        .await;
    assert_eq!(code, 202, "{document}");
    assert_eq!(
        (&document["kind"], &document["filename"]),
        (&json!("document"), &json!("receta.pdf"))
    );
    let (image_id, document_id) = (
        image["message_id"].as_str().unwrap(),
        document["message_id"].as_str().unwrap(),
    );
    assert_eq!(
        files(&daemon),
        {
            let mut both = vec![image_id.to_owned(), document_id.to_owned()];
            both.sort();
            both
        },
        "each queued file waits on disk under its message id"
    );

    let (code, body) = daemon
        .post(&format!("/sim/{ORG}/scan"), json!({ "phone": SHOP }))
        .await;
    assert_eq!(code, 200, "{body}");
    wait_message_status(&daemon, image_id, "sent").await;
    wait_message_status(&daemon, document_id, "sent").await;

    let (_, log) = daemon.get(&format!("/sim/{ORG}/sent")).await;
    let sent = log["messages"].as_array().unwrap();
    let seen: Vec<(&Value, &Value, &Value, &Value)> = sent
        .iter()
        .map(|m| (&m["message_id"], &m["kind"], &m["mimetype"], &m["to"]))
        .collect();
    assert_eq!(
        seen,
        [
            (
                &json!(image_id),
                &json!("image"),
                &json!("image/png"),
                &json!("573009998877")
            ),
            (
                &json!(document_id),
                &json!("document"),
                &json!("application/pdf"),
                &json!("573009998877")
            ),
        ]
    );
    assert_eq!(sent[0]["text"], "Su fórmula 👓");
    assert_eq!(sent[1]["filename"], "receta.pdf");
    assert_eq!(sent[0]["bytes"], png().len());
    eventually("sent files removed", &daemon, async || {
        files(&daemon).is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_file_over_the_limit_is_413_and_nothing_is_stored() {
    let daemon = Daemon::start().await;
    start_qr_ready(&daemon).await;
    let mut big = png();
    big.resize(17 * 1024 * 1024, 0);

    // Streamed: refused once 16 MiB have arrived.
    let (code, body) = send_form(
        &daemon,
        form(
            &[("organization_id", ORG), ("phone", PATIENT)],
            "big.png",
            &big,
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("16777216"),
        "{body}"
    );
    // Base64 in JSON: refused from its Content-Length alone, before any byte of
    // the body is read (so none is sent here).
    let json_length = big.len().div_ceil(3) * 4 + 100;
    let head = format!(
        "POST /api/send-media HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\nContent-Type: application/json\r\nContent-Length: {json_length}\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_exchange(&daemon, head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("[media] max_bytes"), "{answer}");

    // Nothing was queued, and no byte of either file is left.
    let (code, list) = daemon
        .get(&format!("/api/messages?organization_id={ORG}"))
        .await;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["messages"], json!([]), "{list}");
    assert!(files(&daemon).is_empty(), "{:?}", files(&daemon));

    // The limit is on the file: one just under it is taken.
    big.truncate(16 * 1024 * 1024);
    let (code, body) = send_form(
        &daemon,
        form(
            &[("organization_id", ORG), ("phone", PATIENT)],
            "big.png",
            &big,
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["size"], 16 * 1024 * 1024);
}

#[tokio::test]
async fn a_mismatching_or_unknown_type_is_400_naming_it() {
    let daemon = Daemon::start().await;
    start_qr_ready(&daemon).await;

    let (code, body) = send_form(
        &daemon,
        form(
            &[("organization_id", ORG), ("phone", PATIENT)],
            "receta.pdf",
            &png(),
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("receta.pdf") && error.contains("image/png"),
        "{error}"
    );

    let (code, body) = daemon
        .post(
            "/api/send-media",
            json!({
                "organization_id": ORG,
                "phone": PATIENT,
                "media_base64": base64::engine::general_purpose::STANDARD.encode(png()),
                "mimetype": "application/pdf",
            }),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("application/pdf"),
        "{body}"
    );

    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
    let (code, body) = send_form(
        &daemon,
        form(
            &[("organization_id", ORG), ("phone", PATIENT)],
            "ojo.gif",
            &gif,
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("image/gif"),
        "{body}"
    );

    let (_, list) = daemon
        .get(&format!("/api/messages?organization_id={ORG}"))
        .await;
    assert_eq!(list["messages"], json!([]), "{list}");
    assert!(files(&daemon).is_empty(), "{:?}", files(&daemon));
}

#[tokio::test]
async fn a_number_not_on_whatsapp_fails_without_attempts() {
    let daemon = Daemon::start().await;
    daemon.ensure_connected(ORG, SHOP).await;
    let (code, body) = daemon
        .post(
            &format!("/sim/{ORG}/contacts"),
            json!({ "phone": PATIENT, "on_whatsapp": false }),
        )
        .await;
    assert_eq!(code, 200, "{body}");

    let (code, checked) = daemon
        .post(
            "/api/check-number",
            json!({ "organization_id": ORG, "phone": PATIENT }),
        )
        .await;
    assert_eq!(code, 200, "{checked}");
    assert_eq!(
        checked,
        json!({ "phone": "573009998877", "on_whatsapp": false, "jid": null })
    );
    let (code, other) = daemon
        .post(
            "/api/check-number",
            json!({ "organization_id": ORG, "phone": "3001110000" }),
        )
        .await;
    assert_eq!(code, 200, "{other}");
    assert_eq!(other["on_whatsapp"], true);
    assert_eq!(other["jid"], "573001110000@s.whatsapp.net");

    let (code, queued) = send_form(
        &daemon,
        form(
            &[("organization_id", ORG), ("phone", PATIENT)],
            "formula.png",
            &png(),
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 202, "{queued}");
    let id = queued["message_id"].as_str().unwrap();
    let failed = wait_message_status(&daemon, id, "failed").await;
    assert_eq!(failed["error"], "the number is not on WhatsApp");
    assert_eq!(failed["attempts"], 0, "{failed}");
    let (_, log) = daemon.get(&format!("/sim/{ORG}/sent")).await;
    assert_eq!(log["messages"], json!([]));
    eventually("the failed message's file removed", &daemon, async || {
        files(&daemon).is_empty()
    })
    .await;

    // A session that is not connected cannot ask.
    let (code, body) = daemon
        .post(
            "/api/check-number",
            json!({ "organization_id": "8", "phone": PATIENT }),
        )
        .await;
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["status"], "not_started");
}

#[tokio::test]
async fn cancelled_and_expired_files_are_removed() {
    let daemon = Daemon::start().await;
    start_qr_ready(&daemon).await;

    let (code, cancelled) = send_form(
        &daemon,
        form(
            &[("organization_id", ORG), ("phone", PATIENT)],
            "formula.png",
            &png(),
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 202, "{cancelled}");
    let cancelled_id = cancelled["message_id"].as_str().unwrap().to_owned();
    // A few seconds ahead, with room for a slow upload on a loaded machine: it
    // must still be ahead when the daemon checks it.
    let expires_at = (chrono::Utc::now() + chrono::Duration::seconds(8)).to_rfc3339();
    let (code, expiring) = send_form(
        &daemon,
        form(
            &[
                ("organization_id", ORG),
                ("phone", PATIENT),
                ("expires_at", &expires_at),
            ],
            "receta.pdf",
            &pdf(),
        ),
    )
    .await
    .expect("an answer");
    assert_eq!(code, 202, "{expiring}");
    let expiring_id = expiring["message_id"].as_str().unwrap().to_owned();
    assert!(files(&daemon).contains(&cancelled_id));

    let r = daemon
        .http
        .delete(daemon.url(&format!("/api/messages/{cancelled_id}")))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(message(&daemon, &cancelled_id).await["status"], "cancelled");
    eventually("the cancelled file removed", &daemon, async || {
        !files(&daemon).contains(&cancelled_id)
    })
    .await;

    wait_message_status(&daemon, &expiring_id, "expired").await;
    eventually("the expired file removed", &daemon, async || {
        files(&daemon).is_empty()
    })
    .await;

    // Pairing afterwards sends neither.
    daemon.ensure_connected(ORG, SHOP).await;
    let (_, log) = daemon.get(&format!("/sim/{ORG}/sent")).await;
    assert_eq!(log["messages"], json!([]));
}
