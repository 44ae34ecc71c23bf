//! Schemathesis against the real binary in simulation mode: requests generated from
//! `GET /openapi.json` (valid ones, boundary values and invalid ones), each answer
//! checked for a server error (any 5xx) and against the document (status code,
//! content type, body schema). Needs the Python package pinned in
//! `tests/schemathesis/requirements.txt`, which `scripts/test` installs.
//!
//! Left out, each for a reason of its own (see [`EXCLUDED`]): the live events
//! stream, which never ends, so no answer can be checked; `POST /sim/stall`, which
//! wedges the daemon on purpose, as the systemd watchdog's test; and the fault
//! injection of `POST /sim/{org}/inject`, whose faults exist to make the
//! daemon's answers fail as documented (`send_fails` is a `500` of the next send).

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{API_KEY, Daemon};

/// Operations left out of the run, as schemathesis's `--exclude-path` values.
const EXCLUDED: [&str; 3] = ["/api/events", "/sim/stall", "/sim/{org}/inject"];

/// The checks every answer must pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
     response_schema_conformance";

/// Test cases per operation in the fuzzing phase: enough to find what the
/// examples and boundary values miss, few enough for about a minute on 2 cores.
const MAX_EXAMPLES: &str = "40";

/// A fixed seed: the same cases on every run, so a failure reproduces.
const SEED: &str = "20261130";

/// Short waits wherever a request could block on a session, so that no answer
/// takes long (the checks are about what is answered, not when).
const CONFIG: &str = "[send]\nwait_seconds = 1\n";

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_no_mismatch_with_the_document() {
    let installed = std::process::Command::new("python3")
        .args(["-c", "import schemathesis"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed,
        "schemathesis is missing: pip install -r tests/schemathesis/requirements.txt \
         (scripts/test does it)"
    );

    let daemon = Daemon::start_with(CONFIG).await;
    let report = daemon.dir.path().join("schemathesis.xml");
    let mut command = tokio::process::Command::new("python3");
    command
        .args(["-m", "schemathesis.cli", "run"])
        .arg(daemon.url("/openapi.json"))
        .args(["--header", &format!("X-API-Key: {API_KEY}")])
        .args(["--checks", CHECKS])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--seed", SEED])
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "20"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&report)
        .args(["--no-color", "--output-truncate", "false"])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        // Its caches (`.schemathesis/`, `.hypothesis/`) go to the run's own
        // directory, not into the checkout.
        .current_dir(daemon.dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for path in EXCLUDED {
        command.args(["--exclude-path", path]);
    }
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("schemathesis finishes within 10 minutes")
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found problems (exit {:?}):\n{stdout}\n{stderr}",
        output.status.code()
    );
    // It ran the operations (not zero of them) and none failed.
    let junit = std::fs::read_to_string(&report).expect("the JUnit report");
    let testsuite = junit
        .lines()
        .find(|l| l.contains("<testsuite "))
        .expect("a test suite");
    let attribute = |name: &str| -> u32 {
        let at = testsuite
            .find(&format!(" {name}=\""))
            .unwrap_or_else(|| panic!("{name} in {testsuite}"));
        let rest = &testsuite[at + name.len() + 3..];
        rest[..rest.find('"').unwrap()].parse().unwrap()
    };
    assert!(attribute("tests") >= 20, "{testsuite}");
    assert_eq!(attribute("failures"), 0, "{testsuite}");
    assert_eq!(attribute("errors"), 0, "{testsuite}");
}
