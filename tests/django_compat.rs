//! Runs the Python client that makes exactly the Django app's calls against the
//! real binary in sim mode (`pip install -r tests/compat/requirements.txt` first).

mod common;

use common::{API_KEY, Daemon};

#[tokio::test]
async fn the_django_client_works_unchanged() {
    let daemon = Daemon::start().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/django_client.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .arg(daemon.url(""))
        .arg(API_KEY)
        .output()
        .await
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Django client failed:\n{stdout}\n{stderr}\n--- daemon log ---\n{}",
        daemon.logs()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
