//! `wa-supervisor build-info` and the start-up line, on the binary `cargo test` built.
//!
//! `cargo test` builds this binary with the daemon's dev-dependency on wacore-noise's
//! `danger-skip-cert-chain-verify` (Cargo unifies features per invocation), so here
//! the honest answer is "off": the server's certificate chain is not checked. That
//! is what these tests assert, and they fail if the probe does not see the feature.
//! The other half, that a binary built as README.md says reports "on", is checked
//! by `.ci/run` on such a build.

mod common;

use std::process::Command;

use common::Daemon;
use serde_json::Value;

#[test]
fn build_info_prints_json_and_says_a_test_build_skips_the_check() {
    // Nothing to read or start: no configuration, no sessions directory.
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wa-supervisor"))
        .arg("build-info")
        .current_dir(empty.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one line: {stdout}");
    let info: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{info}");
    assert_eq!(info["server_certificate_check"], "off", "{info}");
    assert!(
        std::fs::read_dir(empty.path()).unwrap().next().is_none(),
        "build-info wrote nothing"
    );
}

#[tokio::test]
async fn a_test_build_warns_at_start_up_that_it_must_not_be_deployed() {
    let daemon = Daemon::start().await;
    let logs = daemon.logs();
    let line: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"].get("server_certificate_check").is_some())
        .unwrap_or_else(|| panic!("no start-up line with the check:\n{logs}"));
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["fields"]["server_certificate_check"], "off", "{line}");
    assert!(
        line["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("must not be deployed")),
        "{line}"
    );
}
