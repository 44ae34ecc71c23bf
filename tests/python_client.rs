//! The Python client for Django (`clients/python`, CONTRACT §10) and its pytest
//! suite, run against the real binary in sim mode, configured the way the Django
//! app configures it (`WHATSAPP_SERVER_URL`, `WHATSAPP_SERVER_API_KEY`).
//! `pip install -r tests/python_client/requirements.txt` first (`scripts/test` does).

mod common;

use common::{API_KEY, Daemon};

#[tokio::test]
async fn the_python_client_passes_its_suite_against_the_daemon() {
    // Reconnects come quickly once the fake network is back.
    let daemon = Daemon::start_with("[reconnect]\ninitial_ms = 50\nmax_ms = 200\n").await;
    let client = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/python");
    let output = tokio::process::Command::new("python3")
        .args([
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests",
        ])
        .current_dir(client)
        .env("PYTHONPATH", client)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("WHATSAPP_SERVER_URL", daemon.url(""))
        .env("WHATSAPP_SERVER_API_KEY", API_KEY)
        .env("WA_SUPERVISOR_SIM", "1")
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the client's suite failed:\n{stdout}\n{stderr}\n--- daemon log ---\n{}",
        daemon.logs()
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains(" passed") && !summary.contains("skipped"),
        "every test ran, against the daemon too: {stdout}"
    );
}
