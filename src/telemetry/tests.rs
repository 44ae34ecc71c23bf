//! The log lines themselves, captured from the real formatter and bridge: what an
//! operator's `jq` sees.

use std::io::Write;
use std::sync::{Arc, LazyLock, Mutex};

use serde_json::Value;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::JsonFields;

use super::*;

static TEST_MASKER: LazyLock<Masker> = LazyLock::new(|| Masker::with_key([3; 32]));

const PATIENT: &str = "573009998877";

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs `body` under the daemon's JSON subscriber with `directives`, writing
/// into a capture.
fn json_capture(directives: &str, body: impl FnOnce()) -> Capture {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::builder().parse(directives).unwrap())
        .with_writer(capture.clone())
        .fmt_fields(JsonFields::new())
        .event_format(JsonLines::new(&TEST_MASKER))
        .finish();
    tracing::subscriber::with_default(subscriber, body);
    capture
}

/// A record as whatsapp-rust's `log::error!(target: "Client/Recv", …)` makes it.
fn library_record(level: log::Level, text: &str) {
    let bridge = LibraryLog::new(&TEST_MASKER);
    log::Log::log(
        &bridge,
        &log::Record::builder()
            .level(level)
            .target("Client/Recv")
            .module_path(Some("whatsapp_rust::message::receive"))
            .file(Some("src/message/receive.rs"))
            .line(Some(713))
            .args(format_args!("{text}"))
            .build(),
    );
}

fn org_span(org: &str) -> tracing::Span {
    tracing::error_span!(parent: None, "org", org_id = %org)
}

#[test]
fn lines_in_an_org_span_carry_its_org_id_at_the_top_and_in_fields() {
    let capture = json_capture("info", || {
        let _org = org_span("2").entered();
        tracing::info!(attempt = 3, "connecting");
        library_record(
            log::Level::Error,
            "Failed to connect: failed to resolve app version. Will retry...",
        );
    });
    let lines = capture.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["org_id"], "2", "{line}");
        assert_eq!(line["fields"]["org_id"], "2", "{line}");
        assert_eq!(line["span"]["name"], "org", "{line}");
    }
    assert_eq!(lines[0]["fields"]["attempt"], 3);
    assert_eq!(lines[0]["level"], "INFO");
}

#[test]
fn library_lines_have_our_level_their_module_as_target_and_no_log_fields() {
    let capture = json_capture("info", || {
        let _org = org_span("2").entered();
        library_record(log::Level::Error, "Failed to decrypt frame: bad tag");
    });
    let line = &capture.lines()[0];
    assert_eq!(line["level"], "WARN", "library errors are expected trouble");
    assert_eq!(line["target"], "whatsapp_rust::message::receive");
    assert_eq!(
        line["fields"]["message"],
        "Failed to decrypt frame: bad tag"
    );
    let fields = line["fields"].as_object().unwrap();
    assert!(fields.keys().all(|k| !k.starts_with("log.")), "{line}");
    assert!(!capture.text().contains("receive.rs"), "no file");
}

#[test]
fn a_backtrace_in_a_library_message_is_cut() {
    let capture = json_capture("info", || {
        library_record(
            log::Level::Warn,
            "Failed to send nack: EncryptSend { source: Socket is closed\n\nStack backtrace:\n   0: anyhow::error\n   1: tokio::runtime }",
        );
    });
    let line = &capture.lines()[0];
    assert_eq!(
        line["fields"]["message"],
        "Failed to send nack: EncryptSend { source: Socket is closed …"
    );
}

#[test]
fn the_default_filter_keeps_the_library_at_warn_and_ours_at_info() {
    let capture = json_capture(DEFAULT_FILTER, || {
        library_record(log::Level::Info, "Creating client...");
        library_record(log::Level::Warn, "Failed to send initial presence");
        tracing::info!("session status changed");
    });
    let messages: Vec<_> = capture
        .lines()
        .iter()
        .map(|l| l["fields"]["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        messages,
        ["Failed to send initial presence", "session status changed"]
    );
}

#[test]
fn rust_log_replaces_the_default_filter() {
    assert_eq!(filter_directives(None), DEFAULT_FILTER);
    assert_eq!(filter_directives(Some("  ")), DEFAULT_FILTER);
    assert_eq!(
        filter_directives(Some("debug,whatsapp_rust=trace")),
        "debug,whatsapp_rust=trace"
    );
    let capture = json_capture(filter_directives(Some("whatsapp_rust=info")), || {
        library_record(log::Level::Info, "Creating client...");
    });
    assert_eq!(capture.lines().len(), 1);
}

#[test]
fn no_number_survives_at_info_or_above_in_our_lines_or_the_librarys() {
    let jid = format!("{PATIENT}@s.whatsapp.net");
    let capture = json_capture("debug", || {
        let _org = org_span("2").entered();
        tracing::warn!(sender = %jid, reason = "Bad MAC", "message could not be decrypted");
        tracing::info!(phone = PATIENT, "a number in a field");
        tracing::error!("a number in the message: {PATIENT}");
        library_record(
            log::Level::Error,
            &format!("[msg:3EB0AA] Failed to parse msg Signal envelope from {jid}: Bad MAC"),
        );
        library_record(log::Level::Info, &format!("Received receipt from {jid}"));
    });
    let text = capture.text();
    assert!(!text.contains(PATIENT), "{text}");
    let token = TEST_MASKER.token(PATIENT);
    let lines = capture.lines();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0]["fields"]["sender"],
        format!("{token}@s.whatsapp.net"),
        "senders stay apart by their token"
    );
    assert_eq!(lines[1]["fields"]["phone"], token.as_str());
    assert!(
        lines[3]["fields"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{token}@s.whatsapp.net")),
        "{}",
        lines[3]
    );
    // The message id, an identifier of ours, is left alone.
    assert!(text.contains("3EB0AA"));
}

#[test]
fn debug_lines_keep_numbers_for_whoever_turns_debug_on() {
    let capture = json_capture("debug", || {
        tracing::debug!(phone = PATIENT, "looking the number up");
    });
    assert_eq!(capture.lines()[0]["fields"]["phone"], PATIENT);
}

#[test]
fn our_identifiers_are_never_masked() {
    let capture = json_capture("info", || {
        tracing::info!(
            org_id = "12345678",
            message_id = "3EB012345678",
            idempotency_key = "cita-12345678-recordatorio",
            "message sent"
        );
    });
    let line = &capture.lines()[0];
    assert_eq!(line["org_id"], "12345678");
    assert_eq!(line["fields"]["org_id"], "12345678");
    assert_eq!(
        line["fields"]["idempotency_key"],
        "cita-12345678-recordatorio"
    );
}

#[test]
fn an_event_keeps_its_own_org_id_and_lines_of_no_org_have_none() {
    let capture = json_capture("info", || {
        {
            let _org = org_span("2").entered();
            tracing::info!(org_id = "3", "about another org");
        }
        tracing::info!("stopping every session");
    });
    let lines = capture.lines();
    assert_eq!(lines[0]["org_id"], "3");
    assert_eq!(lines[0]["fields"]["org_id"], "3");
    assert!(lines[1].get("org_id").is_none(), "{}", lines[1]);
    assert!(lines[1]["fields"].get("org_id").is_none());
    assert!(lines[1].get("span").is_none());
}

#[test]
fn an_explicit_format_wins() {
    assert_eq!(choose_format(Some(LogFormat::Json)), LogFormat::Json);
    assert_eq!(choose_format(Some(LogFormat::Pretty)), LogFormat::Pretty);
}

#[test]
fn pretty_lines_mask_numbers_and_show_the_org_span() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::builder().parse("info").unwrap())
        .with_writer(capture.clone())
        .compact()
        .with_ansi(false)
        .fmt_fields(PrettyFields::new(&TEST_MASKER))
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let _org = org_span("2").entered();
        tracing::warn!(sender = PATIENT, "message could not be decrypted");
        library_record(log::Level::Error, &format!("Bad MAC from {PATIENT}"));
    });
    let text = capture.text();
    assert!(!text.contains(PATIENT), "{text}");
    assert!(text.contains("org_id=2"), "{text}");
    assert!(!text.contains("log."), "{text}");
    assert!(text.contains(&TEST_MASKER.token(PATIENT)), "{text}");
}

#[test]
fn a_cause_already_in_the_message_is_not_repeated() {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read .env: {0}")]
    struct Echoes(#[source] std::io::Error);
    #[derive(Debug, thiserror::Error)]
    #[error("cannot start")]
    struct Quiet(#[source] std::io::Error);

    let denied = || std::io::Error::from_raw_os_error(13);
    let echoes = anyhow::Error::from(Echoes(denied()));
    assert_eq!(
        format!("{echoes:#}"),
        "cannot read .env: Permission denied (os error 13): Permission denied (os error 13)",
        "what this function exists for"
    );
    assert_eq!(
        one_line(echoes.as_ref()),
        "cannot read .env: Permission denied (os error 13)"
    );
    let quiet = anyhow::Error::from(Quiet(denied())).context("the daemon failed");
    assert_eq!(
        one_line(quiet.as_ref()),
        "the daemon failed: cannot start: Permission denied (os error 13)"
    );
}
